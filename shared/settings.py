"""Configuration from environment variables (prefix `XINYONG_`), with defaults that work on
a laptop running the stack from `deploy/`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.catalogue import DEFAULT_CATALOGUE_PATH

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XINYONG_", extra="ignore")

    home: Path = REPO_ROOT / ".local"
    catalogue_path: Path = DEFAULT_CATALOGUE_PATH

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Prefixed to every topic and consumer group name; empty in production (the contract's
    # names), set by the test suite so that a run never sees another run's events.
    topic_namespace: str = ""

    # How long the group waits for a worker that stopped answering (one killed, say)
    # before its partitions go to another.
    kafka_session_timeout_ms: int = 30_000

    pg_host: str = "127.0.0.1"
    pg_port: int = 5433
    # One database and one role per service: <db_prefix><service>.
    db_prefix: str = "xinyong_"
    pg_password: str = "xinyong"
    pg_admin_user: str = "xinyong_admin"
    pg_admin_password: str = "xinyong"
    pg_pool_max: int = 10

    # Stream workers take batches and write each batch in one transaction.
    batch_max: int = 1000
    batch_wait_ms: int = 20
    outbox_batch: int = 2000
    # The largest event (value and key) the outbox takes: below the broker's default
    # message.max.bytes (1048588) and the producer's max_request_size (1048576), so that the
    # broker never refuses an event for its size. A larger one is refused when it is written
    # (shared/outbox.py::enqueue), and the input that caused it goes to dead letters.
    max_event_bytes: int = 1_000_000
    # Processed event ids are kept this long: far longer than any producer retries an event
    # (records are also guarded by their revision, for good).
    processed_events_days: int = 14

    ingest_http_port: int = 8001
    registry_http_port: int = 8002
    publisher_http_port: int = 8000
    objection_http_port: int = 8003
    http_host: str = "127.0.0.1"

    public_rate_limit: str = "120/minute"
    # Where people reach the objection forms (linked from the public site's pages).
    objection_public_url: str = "http://127.0.0.1:8003"
    log_level: str = "INFO"

    def db_name(self, service: str) -> str:
        return f"{self.db_prefix}{service}"

    def dsn(self, service: str) -> str:
        name = self.db_name(service)
        return f"postgresql://{name}:{self.pg_password}@{self.pg_host}:{self.pg_port}/{name}"

    def admin_dsn(self, database: str = "postgres") -> str:
        return (f"postgresql://{self.pg_admin_user}:{self.pg_admin_password}@"
                f"{self.pg_host}:{self.pg_port}/{database}")

    def http_port(self, service: str) -> int:
        return int(getattr(self, f"{service}_http_port"))

    def topic(self, name: str) -> str:
        return self.topic_namespace + name

    def group_id(self, service: str) -> str:
        return f"{self.topic_namespace}xinyong-{service}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

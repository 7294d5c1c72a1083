"""Configuration from environment variables (prefix `XINYONG_`), with defaults that work on
a laptop running the stack from `deploy/`."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.catalogue import DEFAULT_CATALOGUE_PATH

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XINYONG_", extra="ignore")

    home: Path = REPO_ROOT / ".local"
    catalogue_path: Path = DEFAULT_CATALOGUE_PATH

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Every client authenticates (CONTRACT.md, "Connecting"): SASL/SCRAM-SHA-512, over TLS in
    # production (SASL_SSL with `kafka_ssl_cafile`), plain SASL on a local stack's loopback.
    kafka_security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = "SASL_PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    # This process's own principal; a local stack's processes get theirs from `xinyong up`.
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    # Or the file that holds it (a container's secret): read when the password is empty.
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None
    # The broker's bootstrap administrator (created when its storage is formatted); only the
    # operators' command line uses it. Empty password: read from the local secrets folder.
    kafka_admin_username: str = "admin"
    kafka_admin_password: str = ""
    # Prefixed to every topic and consumer group name; empty in production (the contract's
    # names), set by the test suite so that a run never sees another run's events.
    topic_namespace: str = ""

    # Copies of every partition, and how many of them must hold a write before the broker
    # acknowledges it (every producer asks acks=all): 1 and 1 on one local node; 3 and 2 on
    # three (`./xinyong up --brokers 3`, deploy/k8s). Topics are created with them
    # (deploy/kafka_admin.py); an existing topic keeps its replicas (`./xinyong status` says).
    kafka_replication_factor: int = 1
    kafka_min_insync_replicas: int = 1

    # How long the group waits for a worker that stopped answering (one killed, say)
    # before its partitions go to another.
    kafka_session_timeout_ms: int = 30_000
    # How often a worker checks that the cluster and its topics are still the ones its
    # positions were counted on (a topic created again keeps its partitions, so nothing
    # else tells), and picks up operators' resolutions of paused partitions.
    position_check_seconds: float = 10.0
    # A stream worker's consumer that has been out of its group this long (never joined,
    # or left by a rebalance that never finished) is closed and a new one joins instead
    # (shared/worker.py, `StreamWorker._mind_group`).
    group_rejoin_seconds: float = 90.0
    # A process whose stop has not finished this long after it began ends itself
    # (shared/lifecycle.py): a Kafka client's close can wait for ever on its coordinator.
    stop_deadline_seconds: float = 30.0

    pg_host: str = "127.0.0.1"
    pg_port: int = 5433
    # libpq's sslmode for every connection (asyncpg reads it from the DSN).
    pg_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca",
                        "verify-full"] = "prefer"
    # One database and one role per service: <db_prefix><service>.
    db_prefix: str = "xinyong_"
    pg_password: str = "xinyong"
    pg_admin_user: str = "xinyong_admin"
    pg_admin_password: str = "xinyong"
    pg_pool_max: int = 10
    # HTTP requests have a pool of their own, so that public traffic cannot take the
    # connections the stream worker, relay and timers need; each statement an HTTP request
    # runs is cancelled past the timeout (answered 503 with Retry-After, never a 500).
    http_pool_max: int = 10
    http_statement_timeout_ms: int = 2000

    # Stream workers take batches and write each batch in one transaction.
    batch_max: int = 1000
    # Behind a backlog (a replay into an empty registry, a consumer catching up) batches
    # grow, doubling while they come full, up to this many messages, and fall back to
    # `batch_max` at the first batch that is not full: fewer transactions, and a subject's
    # snapshot built once for more of its records (docs/performance.md, "Replay (issue 9)").
    batch_max_backlog: int = 5000
    batch_wait_ms: int = 20
    # A batch of fewer than `batch_linger_records` messages waits for more, for as long as
    # the worker's last batch transaction took, at most `batch_linger_ms`: next to nothing
    # while the stack is quiet (its batches take a few ms), and fewer, larger transactions
    # once they slow down under load (docs/decisions.md, "A batch lingers as long as the
    # last one took"). 0 turns it off.
    batch_linger_ms: int = 25
    batch_linger_records: int = 200
    # Services off the notice path (statistics, objection's projections) gather each batch
    # for this long instead, up to a full batch: fewer, larger transactions on cores the
    # notice path shares, for figures half a second later (docs/decisions.md, "Services off
    # the notice path gather their batches"). JSON in the environment,
    # e.g. XINYONG_BATCH_GATHER_MS='{"stats": 1000}'; a service left out lingers as above.
    batch_gather_ms: dict[str, int] = {"stats": 500, "objection": 500}
    outbox_batch: int = 2000
    # How often a stream worker commits its consumer group's offsets (the database holds the
    # positions it resumes from; the group's offsets trail them by at most this long).
    offset_commit_seconds: float = 1.0
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
    stats_http_port: int = 8004
    # stats-windows (faust) serves only its readiness and metrics, on an internal port.
    stats_windows_http_port: int = 9405
    http_host: str = "127.0.0.1"

    # Prometheus metrics on their own ports, never on the public ones.
    metrics_host: str = "127.0.0.1"
    ingest_metrics_port: int = 9401
    registry_metrics_port: int = 9402
    publisher_metrics_port: int = 9400
    objection_metrics_port: int = 9403
    stats_metrics_port: int = 9404
    stats_windows_metrics_port: int = 9405
    # How often a service probes its database and Kafka and refreshes its gauges
    # (shared/probes.py).
    probe_interval_seconds: float = 15.0

    # Agencies report what they did with a notice within its measure's `feedback_within`
    # working days (the catalogue); a notice of a measure the catalogue no longer has (a
    # revocation after the measure was removed) takes this many.
    notice_feedback_working_days: int = 10

    # Lifetimes of credentials when `credentials issue` is given no --expires-in
    # (docs/decisions.md, "Credentials").
    credential_days_department: int = 365
    credential_days_agency: int = 365
    credential_days_operator: int = 90
    credential_days_subject: int = 30
    # Keyed hash of a subject's key on credit.credentials: a subject credential carries no
    # identity number in clear there. Empty: read from the local secrets folder.
    subject_key_secret: str = ""

    # The lifecycle sweeps (shared/sweeps.py): how often they look for what is due (they act
    # on the Zhuhai date, so this only bounds how soon after midnight), and how many
    # subjects one pass of the purge takes.
    sweep_interval_seconds: float = 300.0
    purge_batch: int = 100
    # The statistics keep no subject to erase by: their dead letters and refused events
    # (whatever personal data the unreadable message held) are deleted this many days on.
    stats_dead_letter_days: int = Field(default=30, ge=1)
    # The public changes feed names an entry's subject while the entry is on its list and
    # this many days after it ends; a cursor older than that is `410 cursor_expired`
    # (docs/decisions.md, "The changes feed").
    list_changes_identity_days: int = 14
    # An objection's contact (phone, e-mail) is erased this many days after it is decided
    # (docs/decisions.md, "Objections and repair").
    objection_contact_days: int = 180
    # Telling a subject before it is listed (docs/decisions.md, "The subject is told before
    # listing"): the sender adapter (`file`: one JSON line per message under the spool
    # folder, `<home>/notifications` by default), and how long deliveries may fail before
    # the public announcement page serves instead.
    notification_sender: Literal["file"] = "file"
    notification_spool_dir: Path | None = None
    # The file sender's spool holds each message whole (contact, name, record): a day's file
    # is deleted this many days on, as a gateway's own log would be.
    notification_spool_days: int = Field(default=30, ge=1)
    notification_fallback_hours: float = 72.0

    # The subject's own view: /api/v1/me/queries pages (default and most rows).
    me_page_size: int = 50
    me_page_max: int = 200

    public_rate_limit: str = "120/minute"
    # Credit reports (信用报告, services/publisher/report_api.py): a stricter per-client limit
    # than the public pages (each costs a PDF rendering), the rendering processes, how many
    # reports may wait for one beyond those (more: 503 with Retry-After), how long one render
    # may take, and how long a report is kept (docs/decisions.md, "Credit reports").
    report_rate_limit: str = "20/minute"
    report_workers: int = 2
    report_queue_max: int = 4
    report_render_timeout_s: float = 30.0
    report_retention_days: int = 365
    # Where people reach the public site: printed on a report as its verify URL and QR code.
    public_site_url: str = "http://127.0.0.1:8080"
    # Name searches running at once in one publisher process, and how long one waits for a
    # turn before it is answered 503 with Retry-After: searches never take every connection
    # of the HTTP pool, so profiles are answered whatever the searches (docs/decisions.md,
    # "Public search").
    public_search_concurrency: int = 6
    public_search_wait_ms: int = 1000
    # The public objection and repair forms (JSON and HTML): attempts per client address, and
    # requests that name a record correctly (its real subject), per record; fixed windows
    # counted in the objection database, so every process of the service shares them.
    # "<count>/<second|minute|hour|day>".
    objection_rate_limit_client: str = "30/hour"
    objection_rate_limit_record: str = "10/hour"
    # A request body larger than this is refused (413) before it is read.
    objection_body_max_bytes: int = 64 * 1024
    # Proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated).
    # Empty: the client is the immediate peer, whatever the header says.
    trusted_proxies: Annotated[list[str], NoDecode] = []
    # The front door of the local stack (deploy/frontdoor.py, nginx): one base URL per group
    # of CONTRACT.md's "Where", in front of the services' own ports.
    frontdoor_public_port: int = 8080
    frontdoor_ingest_port: int = 8081
    frontdoor_operator_port: int = 8082
    frontdoor_objection_port: int = 8083
    # Where people reach the objection forms (linked from the public site's pages).
    objection_public_url: str = "http://127.0.0.1:8003"
    log_level: str = "INFO"
    # "production" refuses what only tests may do (a test clock).
    environment: Literal["production", "development", "test"] = "development"
    # A file whose content (seconds) moves the clock forward: tests only (shared/clock.py).
    test_clock_file: Path | None = None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            for v in value:
                ipaddress.ip_network(str(v), strict=False)  # a typo stops the service at start
        return value

    @model_validator(mode="after")
    def _replication(self) -> Settings:
        if not 1 <= self.kafka_min_insync_replicas <= self.kafka_replication_factor:
            raise ValueError(
                f"kafka_min_insync_replicas ({self.kafka_min_insync_replicas}) must be 1 to "
                f"kafka_replication_factor ({self.kafka_replication_factor})")
        return self

    @model_validator(mode="after")
    def _password_from_file(self) -> Settings:
        if not self.kafka_sasl_password and self.kafka_sasl_password_file:
            self.kafka_sasl_password = self.kafka_sasl_password_file.read_text().strip()
        return self

    def db_name(self, service: str) -> str:
        return f"{self.db_prefix}{service}"

    def dsn(self, service: str) -> str:
        name = self.db_name(service)
        return (f"postgresql://{name}:{self.pg_password}@{self.pg_host}:{self.pg_port}/{name}"
                f"?sslmode={self.pg_sslmode}")

    def admin_dsn(self, database: str = "postgres") -> str:
        return (f"postgresql://{self.pg_admin_user}:{self.pg_admin_password}@"
                f"{self.pg_host}:{self.pg_port}/{database}")

    def http_port(self, service: str) -> int:
        return int(getattr(self, f"{service.replace('-', '_')}_http_port"))

    def metrics_port(self, service: str) -> int:
        return int(getattr(self, f"{service.replace('-', '_')}_metrics_port"))

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def kafka_heartbeat_interval_ms(self) -> int:
        # A tenth of the session: a member misses several heartbeats before it is given up.
        return max(500, self.kafka_session_timeout_ms // 10)

    def topic(self, name: str) -> str:
        return self.topic_namespace + name

    def group_id(self, service: str) -> str:
        return f"{self.topic_namespace}xinyong-{service}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

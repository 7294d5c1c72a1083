"""Kafka clients, configured once: authenticated connections, idempotent producers,
manual-commit consumers.

Every client of the project (services, command line, tests, benchmark) connects through
`client_options` (aiokafka) or `admin_config` (confluent-kafka, for what aiokafka's admin
cannot do: SCRAM users, ACLs, topic ids), so the security settings are in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context

from shared.settings import Settings


def client_options(settings: Settings, username: str | None = None,
                   password: str | None = None) -> dict[str, Any]:
    """aiokafka connection options: this process's principal, or the one given."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_sasl_username if username is None else username,
        "sasl_plain_password": settings.kafka_sasl_password if password is None else password,
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    return options


def admin_config(settings: Settings, username: str | None = None,
                 password: str | None = None) -> dict[str, str]:
    """confluent-kafka (librdkafka) configuration for the same connection."""
    config = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        "sasl.mechanism": settings.kafka_sasl_mechanism,
        "sasl.username": settings.kafka_sasl_username if username is None else username,
        "sasl.password": settings.kafka_sasl_password if password is None else password,
        "socket.timeout.ms": "10000",
    }
    if settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_ssl_cafile:
        config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
    return config


def make_producer(settings: Settings, **principal: str) -> AIOKafkaProducer:
    # aiokafka's defaults are acks=1 and no idempotence: both are set explicitly here.
    return AIOKafkaProducer(
        **client_options(settings, **principal),
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type=None,
    )


def make_consumer(settings: Settings, group: str, topics: Iterable[str]) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *[settings.topic(t) for t in topics],
        **client_options(settings),
        group_id=group,
        enable_auto_commit=False,  # offsets are committed after the effects are durable
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(500, settings.kafka_session_timeout_ms // 10),
    )

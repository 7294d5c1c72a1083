"""Kafka clients, configured once: idempotent producers, manual-commit consumers, topics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from shared.settings import Settings
from shared.topics import Topic

log = logging.getLogger(__name__)


def client_options(settings: Settings) -> dict[str, Any]:
    """How any aiokafka client (producer, consumer, admin) reaches and authenticates to the
    broker: the one place connection settings are read, so that a client built by hand (the
    benchmark's, say) connects like the services do."""
    return {"bootstrap_servers": settings.kafka_bootstrap}


def make_producer(settings: Settings) -> AIOKafkaProducer:
    # aiokafka's defaults are acks=1 and no idempotence: both are set explicitly here.
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type=None,
    )


def make_consumer(settings: Settings, service: str, topics: Iterable[str]) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *[settings.topic(t) for t in topics],
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.group_id(service),
        enable_auto_commit=False,  # offsets are committed after the effects are durable
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(500, settings.kafka_session_timeout_ms // 10),
    )


async def create_topics(settings: Settings, topics: Iterable[Topic]) -> list[str]:  # type: ignore[type-arg]
    """Create the topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    for attempt in range(30):
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if attempt == 29:
                raise
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(settings.topic(t.name), t.partitions, 1) for t in topics
                  if settings.topic(t.name) not in existing]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def delete_topics(settings: Settings, names: Iterable[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([settings.topic(n) for n in names])
    finally:
        await admin.close()

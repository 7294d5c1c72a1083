"""Kafka clients, configured once: authenticated connections, idempotent producers,
manual-commit consumers, and the admin client that reads what aiokafka cannot (cluster and
topic ids, log starts and ends).

Every client of the project (services, command line, tests, benchmark) connects through
`client_options` (aiokafka) or `admin_config` (confluent-kafka, for what aiokafka's admin
cannot do: SCRAM users, ACLs, topic ids), so the security settings are in one place.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from functools import lru_cache
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as GroupPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka import TopicPartition as AdminPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec  # not re-exported in the stubs
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared.positions import LogState, committed_on
from shared.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# How long one admin request may take before the caller retries it.
ADMIN_TIMEOUT_S = 10.0


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
    """librdkafka configuration of every confluent-kafka client the project builds: the same
    broker and credentials as aiokafka's."""
    config = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        "sasl.mechanism": settings.kafka_sasl_mechanism,
        "sasl.username": settings.kafka_sasl_username if username is None else username,
        "sasl.password": settings.kafka_sasl_password if password is None else password,
        "client.id": "xinyong-admin",
        "socket.timeout.ms": "10000",
        # A broker that is down is retried by the callers; librdkafka need not log each try.
        "log.connection.close": "false",
    }
    if settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_ssl_cafile:
        config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
    return config


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


@lru_cache(maxsize=65_536)
def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's `Utils.murmur2`, which picks a key's partition),
    read four bytes at a time: the same hashes as aiokafka's byte-by-byte version in a
    fraction of the time, and each key hashed once while it is in the cache (every event
    about a subject has its key: a record's feedback, its acceptance, the notices)."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[words * 4:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_of(key: bytes | None, all_partitions: Sequence[int],
                 available: Sequence[int]) -> int:
    """The partitioner of every producer: the Java client's choice for a key (so a key maps
    to the same partition whoever writes it), a random available partition without one."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


def make_producer(settings: Settings, **principal: str) -> AIOKafkaProducer:
    # aiokafka's defaults are acks=1 and no idempotence: both are set explicitly here.
    return AIOKafkaProducer(
        **client_options(settings, **principal),
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type=None,
        partitioner=partition_of,
    )


def make_consumer(settings: Settings, group: str, topics: Iterable[str]) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *[settings.topic(t) for t in topics],
        **client_options(settings),
        group_id=group,
        enable_auto_commit=False,  # offsets are committed after the effects are durable
        # Never moved by the client: the worker seeks every partition to the position its
        # database holds (shared/positions.py), and a position the log no longer has is
        # reported (OffsetOutOfRangeError) instead of silently reset to either end.
        auto_offset_reset="none",
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        # A topic deleted drops out of the assignment at once (fetches fail); created again,
        # only a metadata refresh brings it back (aiokafka's default: every 5 minutes).
        metadata_max_age_ms=int(settings.position_check_seconds * 1000),
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )


def make_admin(settings: Settings) -> AdminClient:
    # librdkafka's messages go through Python logging, like everything else the service logs.
    return AdminClient({**admin_config(settings), "logger": log})


async def _result(future: Future[T]) -> T:
    return await asyncio.wrap_future(future)


async def log_ids(admin: AdminClient, topics: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The cluster id and the id of each topic (names as on the broker; at least one).

    The cluster id comes from the classic metadata call, not from DescribeCluster: when a
    metadata answer lists no broker (one just fenced, as after a stall), librdkafka's
    DescribeCluster parser (2.16, rdkafka_admin.c) returns neither a result nor an error
    and its caller's assertion aborts the process (seen in CI: every service at once). The
    classic call reports the same answer as an error."""
    names = sorted(set(topics))
    metadata = await asyncio.to_thread(admin.list_topics, names[0], ADMIN_TIMEOUT_S)
    described = admin.describe_topics(TopicCollection(names), request_timeout=ADMIN_TIMEOUT_S)
    ids = {name: str((await _result(future)).topic_id) for name, future in described.items()}
    return str(metadata.cluster_id), ids


async def observe_logs(admin: AdminClient, group: str, partitions: Sequence[tuple[str, int]],
                       login: dict[str, Any]) -> dict[tuple[str, int], LogState]:
    """What the broker says of each (topic, partition) now: cluster and topic ids, the log's
    start and end (through `admin`), and the group's committed offset with the log its
    commit names (through aiokafka, as `login`: `client_options`). Retried a few times: a
    topic just created has no leader for a moment."""
    if not partitions:
        return {}
    async for attempt in AsyncRetrying(retry=retry_if_exception_type((KafkaException,
                                                                      KafkaError)),
                                       stop=stop_after_attempt(3), reraise=True,
                                       wait=wait_exponential(multiplier=0.2, max=2)):
        with attempt:
            return await _observe(admin, group, partitions, login)
    raise AssertionError("unreachable")  # AsyncRetrying re-raises the last failure


async def _observe(admin: AdminClient, group: str, partitions: Sequence[tuple[str, int]],
                   login: dict[str, Any]) -> dict[tuple[str, int], LogState]:
    cluster_id, topic_ids = await log_ids(admin, [t for t, _ in partitions])
    wanted = [AdminPartition(t, p) for t, p in partitions]
    starts = await _offsets(admin, wanted, OffsetSpec.earliest())
    ends = await _offsets(admin, wanted, OffsetSpec.latest())
    committed = await committed_offsets(login, group, partitions)
    return {(t, p): _log_state(cluster_id, topic_ids[t], starts[(t, p)], ends[(t, p)],
                               committed.get((t, p)))
            for t, p in partitions}


async def committed_offsets(login: dict[str, Any], group: str,
                            partitions: Sequence[tuple[str, int]]
                            ) -> dict[tuple[str, int], tuple[int, tuple[str, str] | None]]:
    """The group's committed offsets, each with the log its commit names (its metadata:
    `positions.commit_metadata`). Read with aiokafka: confluent-kafka's admin (2.16) copies
    an offset's metadata with `strdup` from a buffer librdkafka does not terminate, and
    returns what follows it in memory or fails to decode it."""
    client = AIOKafkaAdminClient(**login, request_timeout_ms=int(ADMIN_TIMEOUT_S * 1000))
    try:
        await client.start()
        answer = await client.list_consumer_group_offsets(
            group, partitions=[GroupPartition(t, p) for t, p in partitions])
    finally:
        await client.close()
    return {(tp.topic, tp.partition): (o.offset, committed_on(o.metadata))
            for tp, o in answer.items() if o.offset >= 0}  # -1: nothing committed


def _log_state(cluster_id: str, topic_id: str, start: int, end: int,
               committed: tuple[int, tuple[str, str] | None] | None) -> LogState:
    offset, counted_on = committed if committed is not None else (None, None)
    return LogState(cluster_id=cluster_id, topic_id=topic_id, log_start=start, log_end=end,
                    committed=offset, committed_on=counted_on)


async def _offsets(admin: AdminClient, partitions: Sequence[AdminPartition],
                   spec: OffsetSpec) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({tp: spec for tp in partitions},
                                 request_timeout=ADMIN_TIMEOUT_S)
    return {(tp.topic, tp.partition): int((await _result(f)).offset)
            for tp, f in futures.items()}

"""The outbox relay against a real broker that refuses some rows: those are set aside with
the error while the rest are sent, and `replay` puts them back (issue 6, item 7).

One of the two files of this tier that need the broker (the `kafka` fixture of conftest.py);
the outbox rows live in a rolled-back transaction as elsewhere in this tier.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from deploy import secrets
from deploy.credentials import admin
from shared import inbox, outbox
from shared.access import Principal, username
from shared.contract import RecordFeedback
from shared.kafka import client_options
from shared.messages import OutboundEvent
from shared.settings import Settings
from shared.topics import FEEDBACK, Topic
from tests.db.conftest import OpenTransaction

pytestmark = pytest.mark.db

FEEDBACK_TOPIC = FEEDBACK.of("court").name
LATE_TOPIC = "credit.feedback.late"  # exists only once the test creates it


@pytest_asyncio.fixture
async def relay_settings(db_settings: Settings, kafka: None) -> AsyncIterator[Settings]:
    """A namespace of its own, the relay running as ingest's principal there and the reads
    done as an observer: no super user."""
    namespace = f"relay{uuid.uuid4().hex[:8]}."
    settings = db_settings.model_copy(update={"topic_namespace": namespace})
    kafka_admin = admin(settings)
    kafka_admin.create_topics([FEEDBACK.of("court")])
    logins = {}
    for kind, code in (("service", "ingest"), ("observer", "")):
        name, password = username(kind, code, namespace), secrets.new_password()
        kafka_admin.create_principal(Principal(kind, code, name), password)  # type: ignore[arg-type]
        logins[kind] = {"username": name, "password": password}
    OBSERVERS[namespace] = logins["observer"]
    yield settings.model_copy(update={"kafka_sasl_username": logins["service"]["username"],
                                      "kafka_sasl_password": logins["service"]["password"]})
    kafka_admin.delete_topics([FEEDBACK_TOPIC, LATE_TOPIC])
    for login in logins.values():
        kafka_admin.remove_principal(login["username"])
    del OBSERVERS[namespace]


# The observer's login per namespace: who reads back what the relay sent.
OBSERVERS: dict[str, dict[str, str]] = {}


@pytest_asyncio.fixture
async def producer(relay_settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    # A short metadata wait: a missing topic is found out in seconds, not the default 40.
    p = AIOKafkaProducer(**client_options(relay_settings),
                         enable_idempotence=True, acks="all", request_timeout_ms=3000)
    await p.start()
    yield p
    await p.stop()


async def read_topic(settings: Settings, topic: str, count: int, partitions: int = 3
                     ) -> list[bytes]:
    consumer = AIOKafkaConsumer(**client_options(settings, **OBSERVERS[settings.topic_namespace]),
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic(topic), p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(values) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                values += [r.value for r in records]
        await asyncio.sleep(0.5)  # anything more would be a resend
        for records in (await consumer.getmany(timeout_ms=200)).values():
            values += [r.value for r in records]
        return values
    finally:
        await consumer.stop()


def set_aside_total() -> float:
    return REGISTRY.get_sample_value("xinyong_outbox_set_aside_total",
                                     {"service": "ingest"}) or 0.0


async def test_rows_the_broker_refuses_are_set_aside_and_the_rest_sent_in_order(
        tx: OpenTransaction, relay_settings: Settings, producer: AIOKafkaProducer) -> None:
    conn = await tx("ingest")
    # Written straight into the outbox, past enqueue's cap: a row from before the cap, or a
    # broker whose limit is lower than the setting.
    rows = [("e1", FEEDBACK_TOPIC, b"first"), ("e2", FEEDBACK_TOPIC, b"x" * 1_200_000),
            ("e3", LATE_TOPIC, b"late"), ("e4", FEEDBACK_TOPIC, b"fourth")]
    await conn.executemany("INSERT INTO outbox (event_id, topic, key, value)"
                           " VALUES ($1, $2, 'same-subject', $3)", rows)
    relay = outbox.OutboxRelay(relay_settings, "ingest", producer)
    counted = set_aside_total()

    assert await relay.relay_batch(conn) == 4
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
    aside = await outbox.set_aside(conn)
    assert [(r["event_id"], r["topic"]) for r in aside] == [("e2", FEEDBACK_TOPIC),
                                                            ("e3", LATE_TOPIC)]
    assert aside[0]["error"].startswith("MessageSizeTooLargeError")
    assert aside[0]["size"] == 1_200_000
    assert aside[1]["error"].startswith("UnknownTopicOrPartitionError")
    assert set_aside_total() == counted + 2
    # The same key: one partition, in the order written, each once.
    assert await read_topic(relay_settings, FEEDBACK_TOPIC, 2) == [b"first", b"fourth"]

    # Once the cause is fixed (the topic exists), replaying one row sends it.
    admin(relay_settings).create_topics([Topic(LATE_TOPIC, FEEDBACK.event_type, RecordFeedback,
                                               1, True, FEEDBACK.writer)])
    assert await outbox.replay(conn, aside[1]["id"]) == 1
    assert await relay.relay_batch(conn) == 1
    assert await read_topic(relay_settings, LATE_TOPIC, 1, partitions=1) == [b"late"]
    assert [r["event_id"] for r in await outbox.set_aside(conn)] == ["e2"]

    # Replaying what is still refused sets it aside again; nothing else is held up.
    assert await outbox.replay(conn) == 1
    await conn.execute("INSERT INTO outbox (event_id, topic, key, value)"
                       " VALUES ('e5', $1, 'same-subject', 'fifth')", FEEDBACK_TOPIC)
    assert await relay.relay_batch(conn) == 2
    assert [r["event_id"] for r in await outbox.set_aside(conn)] == ["e2"]
    assert await read_topic(relay_settings, FEEDBACK_TOPIC, 3) == [b"first", b"fourth",
                                                                   b"fifth"]


async def _foreign(conn: Any, topic: str, values: list[bytes]) -> None:
    """Rows another process of the service committed (the relay holds none of them)."""
    await conn.executemany("INSERT INTO outbox (event_id, topic, key, value)"
                           " VALUES ($1, $2, 'one-subject', $3)",
                           [(f"f-{v.decode()}", topic, v) for v in values])


async def _ours(conn: Any, relay: outbox.OutboxRelay, topic: str, values: list[bytes]) -> list[
        outbox.OutboxRow]:
    """Rows this process's transaction wrote, handed to the relay as after its commit."""
    with outbox.collecting() as written:
        await outbox.enqueue(conn, [OutboundEvent(topic, "one-subject", f"o-{v.decode()}", v)
                                    for v in values])
    relay.committed(written)
    return written


async def test_rows_held_in_memory_never_pass_earlier_rows_of_the_table(
        tx: OpenTransaction, relay_settings: Settings, producer: AIOKafkaProducer) -> None:
    """The direct path and the table merge in id order: rows another process committed
    earlier (lower ids) go before this process's rows about the same subject, a late hand-off
    of rows already read from the table is not sent again, and a round cut short by its
    limit keeps its own rows back until the earlier ones are out."""
    conn = await tx("ingest")
    relay = outbox.OutboxRelay(relay_settings.model_copy(update={"outbox_batch": 2}),
                               "ingest", producer)
    relay._leading = True  # as `run` sets it once the relay holds the database's lock
    await _foreign(conn, FEEDBACK_TOPIC, [b"1", b"2", b"3"])
    await _ours(conn, relay, FEEDBACK_TOPIC, [b"4", b"5"])
    relay._poll = False  # only what the hand-off calls for: the gaps below its rows

    sent = await relay._round(conn, [])  # the limit (2) cuts the table's rows: 1, 2
    assert len(sent) == 2
    sent = await relay._round(conn, sent)  # then 3, and only then the rows in memory
    assert len(sent) == 3
    assert await read_topic(relay_settings, FEEDBACK_TOPIC, 5) == [b"1", b"2", b"3", b"4",
                                                                   b"5"]

    # Rows committed by this process whose hand-off comes after a round read them from the
    # table: sent once, in order.
    relay._poll = True
    late = await _ours(conn, relay, FEEDBACK_TOPIC, [b"6"])
    relay._handed.clear()  # the hand-off has not arrived yet
    sent = await relay._round(conn, sent)
    assert len(sent) == 1
    relay.committed(late)  # ... and now it does
    assert await relay._round(conn, sent) == []
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
    assert await read_topic(relay_settings, FEEDBACK_TOPIC, 6) == [
        b"1", b"2", b"3", b"4", b"5", b"6"]


async def test_a_rolled_back_savepoint_hands_nothing_to_the_relay(tx: OpenTransaction) -> None:
    """Rows of a savepoint rolled back are not in the table; the worker's last statement
    tells which collected rows are (and only those go to the relay)."""
    conn = await tx("ingest")
    event = OutboundEvent(FEEDBACK_TOPIC, "k", "e-kept", b"kept")
    with outbox.collecting() as written:
        await outbox.enqueue(conn, [event])
        with contextlib.suppress(RuntimeError):
            async with conn.transaction():
                await outbox.enqueue(conn, [OutboundEvent(FEEDBACK_TOPIC, "k", "e-undone",
                                                          b"undone")])
                raise RuntimeError("the handler's savepoint fails")
    assert len(written) == 2
    kept = await inbox.advance(conn, [], outbox_ids=[r.id for r in written])
    assert [r.value for r in written if r.id in kept] == [b"kept"]

"""Dead letters that keep the message's bytes, events capped when they are written, and the
stream worker's dead-letter path, on a real database (issue 6, item 7)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from services.ingest import handlers
from services.ingest.main import SPEC as INGEST
from shared import outbox
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.db import SHARED_MIGRATIONS, create_pool, drop_database, ensure_database, migrate
from shared.envelope import submission_json
from shared.messages import InboundMessage, OutboundEvent
from shared.settings import Settings
from shared.worker import StreamWorker
from tests.db.conftest import OpenTransaction
from tests.integration.helpers import enterprise, record

pytestmark = pytest.mark.db


def message(value: bytes, offset: int = 0, key: bytes | None = b"k", topic: str = "t"
            ) -> InboundMessage:
    return InboundMessage(topic=topic, partition=0, offset=offset,
                          key=key.decode("utf-8", "replace") if key is not None else None,
                          value=value, timestamp_ms=0, raw_key=key)


def event_of(value: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(value)
    return doc


async def test_an_event_over_max_event_bytes_is_refused_and_nothing_is_written(
        tx: OpenTransaction) -> None:
    conn = await tx("ingest")
    small = OutboundEvent(topic="credit.feedback.tax", key="k", event_id="e1", value=b"x" * 90)
    large = OutboundEvent(topic="credit.feedback.tax", key="k", event_id="e2", value=b"x" * 101)
    await outbox.enqueue(conn, [small], max_event_bytes=100)
    with pytest.raises(outbox.EventTooLarge) as refused:
        await outbox.enqueue(conn, [small, large], max_event_bytes=100)
    assert (refused.value.size, refused.value.limit) == (102, 100)  # the key counts too
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 1


async def test_a_dead_letter_keeps_the_bytes_and_its_event_names_the_stored_row(
        tx: OpenTransaction) -> None:
    conn = await tx("registry")
    body = b"\x00\xff{not json" + bytes(range(256)) * 8000  # 2 MB, over any event
    poison = message(body, offset=41, key=b"enterprise:\x00\xfe")
    await outbox.enqueue(conn, [outbox.dead_letter("registry", poison, "boom\x00 " * 1000)])

    row = await conn.fetchrow("SELECT * FROM dead_letters")
    assert (bytes(row["value"]), bytes(row["key"])) == (body, b"enterprise:\x00\xfe")
    assert (row["service"], row["topic"], row["partition"], row["offset"]) == (
        "registry", "t", 0, 41)
    assert "\x00" not in row["reason"] and len(row["reason"]) <= outbox.REASON_MAX_CHARS

    [sent] = await conn.fetch("SELECT topic, key, value FROM outbox")
    assert sent["topic"] == "credit.deadletter.registry"
    assert "\x00" not in sent["key"]
    assert len(sent["value"]) < 8 * 1024
    letter = event_of(sent["value"])["data"]
    assert letter["stored_id"] == row["id"]
    assert letter["size"] == len(body)
    assert letter["sha256"] == hashlib.sha256(body).hexdigest()
    assert letter["preview"].startswith("\N{REPLACEMENT CHARACTER}\N{REPLACEMENT CHARACTER}{not")
    assert (letter["topic"], letter["offset"]) == ("t", 41)


# --- the stream worker's dead-letter path, committed: on a database of its own -------------


@pytest_asyncio.fixture
async def own_ingest_db(db_settings: Settings) -> AsyncIterator[tuple[Settings, asyncpg.Pool]]:
    settings = db_settings.model_copy(
        update={"db_prefix": f"{db_settings.db_prefix}w{uuid.uuid4().hex[:6]}_",
                "max_event_bytes": 4000})
    await ensure_database(settings, "ingest")
    pool = await create_pool(settings, "ingest")
    try:
        async with pool.acquire() as conn:
            await migrate(conn, SHARED_MIGRATIONS, INGEST.migrations)
        yield settings, pool
    finally:
        await pool.close()
        await drop_database(settings, "ingest")


def worker(settings: Settings, pool: asyncpg.Pool, handler: Any) -> StreamWorker:
    # The consumer is not used by the path under test (apply, fall back, dead-letter).
    return StreamWorker(settings, "ingest", pool, None, [], handler)  # type: ignore[arg-type]


async def test_a_message_whose_event_is_too_large_gets_its_feedback_and_a_dead_letter(
        own_ingest_db: tuple[Settings, asyncpg.Pool], catalogue: Catalogue) -> None:
    """One record makes an accepted event over max_event_bytes (4000 here): the batch is
    retried one by one, the good record is accepted, the large one rejected naming
    `data`/`too_large`, its message kept as a dead letter, and both positions advance."""
    settings, pool = own_ingest_db
    ctx = ServiceContext("ingest", settings, catalogue, pool)
    good = record(enterprise(), "amr.admin_penalty")
    large = record(enterprise(), "amr.admin_penalty", summary="长" * 1300)  # ~3.9 KB of UTF-8
    topic = "credit.inbound.amr"
    batch = [message(submission_json("amr", good), 0, topic=topic),
             message(submission_json("amr", large), 1, topic=topic)]
    await worker(settings, pool, handlers.make_handler(ctx))._apply_with_fallback(batch)

    async with pool.acquire() as conn:
        events = [event_of(r["value"]) | {"_topic": r["topic"]}
                  for r in await conn.fetch("SELECT topic, value FROM outbox ORDER BY id")]
        feedback = {e["data"]["record_id"]: e["data"] for e in events
                    if e["_topic"] == "credit.feedback.amr"}
        assert feedback[good["record_id"]]["status"] == "accepted"
        rejected = feedback[large["record_id"]]
        assert rejected["status"] == "rejected"
        assert [(x["field"], x["code"]) for x in rejected["errors"]] == [("data", "too_large")]
        assert rejected["raw"] == {"topic": topic, "partition": 0, "offset": 1}
        [dead] = [e["data"] for e in events if e["_topic"] == "credit.deadletter.ingest"]
        stored = await conn.fetchrow("SELECT * FROM dead_letters WHERE id = $1",
                                     dead["stored_id"])
        assert bytes(stored["value"]) == batch[1].value and stored["offset"] == 1
        assert "EventTooLarge" in stored["reason"]
        assert await conn.fetchval(
            "SELECT count(*) FROM submissions WHERE topic = $1", topic) == 2
        assert await conn.fetchval(
            "SELECT next_offset FROM consumed_positions WHERE topic = $1", topic) == 2


async def test_a_message_no_handler_can_take_is_dead_lettered_and_passed(
        own_ingest_db: tuple[Settings, asyncpg.Pool]) -> None:
    settings, pool = own_ingest_db

    async def broken(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        await outbox.enqueue(conn, [OutboundEvent("credit.records.accepted", "k", "e",
                                                  b"x" * 5000)], settings.max_event_bytes)

    poison = message(b"\x00" * 10, 7, key=b"\x00", topic="credit.records.accepted")
    await worker(settings, pool, broken)._apply_with_fallback([poison])
    async with pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT * FROM dead_letters")
        assert (bytes(stored["key"]), bytes(stored["value"])) == (b"\x00", b"\x00" * 10)
        assert stored["reason"].startswith("EventTooLarge")
        [letter] = await conn.fetch("SELECT key, value FROM outbox")
        assert letter["key"] == "\N{REPLACEMENT CHARACTER}"
        assert event_of(letter["value"])["data"]["stored_id"] == stored["id"]
        assert await conn.fetchval("SELECT next_offset FROM consumed_positions") == 8

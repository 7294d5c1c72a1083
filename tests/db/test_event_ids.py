"""Every event a service emits has an id that is a function of its cause: the same input
applied again in a fresh database (a replay from Kafka, a restored database) re-emits the
same ids, so consumers and agencies de-duplicate it. Each run below is its own rolled-back
transaction, run at another moment (ids that mixed in the clock would differ)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, timedelta

import asyncpg
import pytest

from services.ingest import handlers as ingest
from services.objection import handlers as objection
from services.objection import store as objection_store
from services.publisher import handlers as publisher
from services.registry import handlers as registry
from shared import clock
from shared.context import ServiceContext
from shared.contract import ObjectionDecision, SubjectRef
from shared.envelope import submission_json
from shared.messages import InboundMessage
from shared.topics import REQUESTS_CHANGED
from tests.unit.factories import ENTERPRISE, PERSON, uscc

pytestmark = pytest.mark.db

OTHER = SubjectRef(type="enterprise", id=uscc("91440400MA4W8KXX7"), name="珠海市另一家有限公司")
Outbox = list[tuple[str, str, dict[str, object]]]  # (topic, event id, event)


def submissions() -> list[tuple[SubjectRef, dict[str, object]]]:
    decided = (clock.today() - timedelta(days=20)).isoformat()
    base = {"action": "upsert", "catalogue_item": "court.dishonest_debtor",
            "decided_on": decided, "document_no": "（2026）粤04执1号", "district": "440402",
            "attributes": {}}
    return [
        (ENTERPRISE, {**base, "record_id": "C-1", "revision": 1,
                      "subject": ENTERPRISE.model_dump()}),
        (PERSON, {**base, "record_id": "C-2", "revision": 1, "subject": PERSON.model_dump()}),
        (ENTERPRISE, {**base, "record_id": "C-1", "revision": 2,
                      "subject": ENTERPRISE.model_dump()}),
        (OTHER, {**base, "record_id": "C-3", "revision": 1, "subject": OTHER.model_dump()}),
        (OTHER, {**base, "record_id": "C-3", "revision": 1, "subject": OTHER.model_dump()}),
        (ENTERPRISE, {"record_id": "bad", "revision": 1, "action": "upsert",
                      "subject": {"type": "enterprise", "id": "123"}}),
    ]


def inbound_log() -> list[InboundMessage]:
    """The departments' messages as they sit in a log: fixed event ids, offsets, topic id."""
    return [InboundMessage(topic="credit.inbound.court", partition=0, offset=offset,
                           key=subject.key, topic_id="court-topic-id",
                           value=submission_json("court", data, f"court-ev-{offset}"),
                           timestamp_ms=0)
            for offset, (subject, data) in enumerate(submissions())]


async def drain(conn: asyncpg.Connection) -> Outbox:
    rows = await conn.fetch("DELETE FROM outbox RETURNING id, topic, event_id, value")
    return [(r["topic"], r["event_id"], json.loads(r["value"]))
            for r in sorted(rows, key=lambda r: r["id"])]


def as_log(events: Outbox, topic: str) -> list[InboundMessage]:
    """Events one service emitted, as the next one reads them from its topic."""
    return [InboundMessage(topic=topic, partition=0, offset=i, key=e.get("subject"),  # type: ignore[arg-type]
                           value=json.dumps(e, ensure_ascii=False).encode(), timestamp_ms=0)
            for i, (t, _, e) in enumerate(x for x in events if x[0] == topic)]


def batches(messages: list[InboundMessage], size: int | None) -> list[list[InboundMessage]]:
    size = size or len(messages)
    return [messages[i:i + size] for i in range(0, len(messages), size)]


async def pipeline(pools: dict[str, asyncpg.Pool], context_of: Callable[[str], ServiceContext],
                   batch: int | None = None) -> dict[str, Outbox]:
    """The departments' log through ingest, registry and publisher, each in a transaction
    of its own database that is rolled back: what each emitted."""
    emitted: dict[str, Outbox] = {}
    feed, previous = inbound_log(), ""
    for service, handler, topic in (
            ("ingest", ingest.make_handler, None),
            ("registry", registry.make_handler, "credit.records.accepted"),
            ("publisher", publisher.make_handler, "credit.subjects.changed")):
        async with pools[service].acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                messages = feed if topic is None else as_log(emitted[previous], topic)
                for part in batches(messages, batch):
                    await handler(context_of(service))(conn, part)
                emitted[service] = await drain(conn)
            finally:
                await transaction.rollback()
        previous = service
    return emitted


def ids(emitted: Outbox, topic_prefix: str) -> list[str]:
    return [event_id for topic, event_id, _ in emitted if topic.startswith(topic_prefix)]


async def test_the_same_log_applied_again_emits_the_same_ids(
        pools: dict[str, asyncpg.Pool], context_of: Callable[[str], ServiceContext]) -> None:
    first = await pipeline(pools, context_of)
    again = await pipeline(pools, context_of)
    # Something of every kind was emitted, so the comparison below means something.
    assert len(ids(first["ingest"], "credit.feedback.court")) == len(submissions())
    assert len(ids(first["ingest"], "credit.records.accepted")) == 4  # 2 distinct + rev 2
    assert ids(first["registry"], "credit.subjects.changed")
    assert ids(first["publisher"], "credit.lists.changed")
    assert ids(first["publisher"], "credit.notices.")
    for service in ("ingest", "registry", "publisher"):
        assert [i for _, i, _ in first[service]] == [i for _, i, _ in again[service]], service
    # ... and never two events under one id.
    for service in ("ingest", "registry", "publisher"):
        assert len({i for _, i, _ in first[service]}) == len(first[service]), service


async def test_each_delivery_gets_its_own_feedback_id(
        pools: dict[str, asyncpg.Pool], context_of: Callable[[str], ServiceContext]) -> None:
    """The same event sent twice (offsets 3 and 4) is two deliveries, two feedback ids."""
    emitted = await pipeline(pools, context_of)
    feedback = [(e["data"]["status"], i) for t, i, e in emitted["ingest"]  # type: ignore[index]
                if t == "credit.feedback.court"]
    assert [s for s, _ in feedback] == [
        "accepted", "accepted", "accepted", "accepted", "duplicate", "rejected"]
    assert len({i for _, i in feedback}) == len(feedback)


async def test_snapshot_ids_do_not_depend_on_how_the_log_was_batched(
        pools: dict[str, asyncpg.Pool], context_of: Callable[[str], ServiceContext]) -> None:
    """A replay reads the same messages in other batches: each subject reaches the same
    versions, so its last snapshot, and the lists and notices it causes, keep their ids."""
    whole = await pipeline(pools, context_of)
    one_by_one = await pipeline(pools, context_of, batch=1)

    def last_per_subject(emitted: Outbox) -> dict[str, tuple[str, object]]:
        return {e["subject"]: (i, e["data"]["version"])  # type: ignore[index,misc]
                for t, i, e in emitted if t == "credit.subjects.changed"}

    assert last_per_subject(whole["registry"]) == last_per_subject(one_by_one["registry"])
    assert sorted(ids(whole["publisher"], "credit.notices.")) == sorted(
        ids(one_by_one["publisher"], "credit.notices."))


async def test_objection_events_are_named_by_the_objection(
        pools: dict[str, asyncpg.Pool]) -> None:
    objection_id = str(uuid.UUID(int=42))

    async def decided() -> list[str]:
        async with pools["objection"].acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                await objection_store.create(
                    conn, objection_id=objection_id, kind="objection", subject=ENTERPRISE,
                    department="court", record_id="C-1", revision=1, reason="不实", contact="x",
                    requester="r", token_hash="h", due_by=date(2030, 1, 1),
                    received_at=clock.now())
                await objection.decide(conn, "court", ObjectionDecision(
                    objection_id=objection_id, decision="upheld", reason="核实", withdraw=True))
                return [i for t, i, _ in await drain(conn) if t != REQUESTS_CHANGED.name]
            finally:
                await transaction.rollback()

    first, again = await decided(), await decided()
    # The record's withdrawal and the decision for the statistics (credit.objections.closed).
    assert len(first) == 2 and first == again

"""The erasure of a person's negative information (shared/purge.py) in each service, on a
real database (rolled back): what each plan erases, the ledger that keeps it erased, and a
sweep item that fails."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.ingest import handlers as ingest
from services.ingest import sweeps as ingest_sweeps
from services.objection import handlers as objection
from services.objection import store as objection_store
from services.objection import sweeps as objection_sweeps
from services.publisher import domain as publisher_domain
from services.publisher import lifecycle as publisher_lifecycle
from services.publisher import rights_store
from services.publisher import store as publisher_store
from services.publisher import sweeps as publisher_sweeps
from services.publisher.handlers import apply_snapshots
from services.registry import handlers as registry
from services.registry import sweeps as registry_sweeps
from shared import clock, purge, sweeps
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import (
    AcceptedRecord,
    ArchivedRecord,
    NoticeFeedback,
    ObjectionDecision,
    RecordSubmission,
    RelatedSubject,
    SubjectRef,
)
from shared.envelope import submission_json
from shared.messages import InboundMessage, OutboundEvent
from shared.topics import RECORDS_ACCEPTED
from tests import polling
from tests.db import builders
from tests.db.builders import snapshot_message
from tests.db.conftest import OpenTransaction
from tests.unit.factories import ENTERPRISE, archived, resident_id, snapshot

pytestmark = pytest.mark.db

KEY = b"test-erasure-key"
TODAY = clock.today()
DECIDED = TODAY - timedelta(days=30)
ERASE_ON = DECIDED.replace(year=DECIDED.year + 5) if (DECIDED.month, DECIDED.day) != (2, 29) \
    else DECIDED.replace(year=DECIDED.year + 5, day=28)


def person() -> tuple[str, str]:
    pid = resident_id(birth=date(1980, 1, 1), sequence=int(uuid.uuid4().int % 900) + 10)
    return pid, f"individual:{pid}"


def wage_record(pid: str, record_id: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "record_id": record_id, "revision": 1, "action": "upsert",
        "catalogue_item": "hrss.wage_arrears",
        "subject": {"type": "individual", "id": pid, "name": "王某"},
        "decided_on": DECIDED.isoformat(), "district": "440402", "attributes": {}}
    data.update(extra)
    return data


def accepted(pid: str, record_id: str, offset: int = 0, revision: int = 1) -> InboundMessage:
    payload = AcceptedRecord(department="hrss",
                             submission=RecordSubmission.model_validate(
                                 wage_record(pid, record_id, revision=revision)),
                             source_event_id=f"ev-{record_id}",
                             accepted_at=datetime.now(UTC))
    event = OutboundEvent.of(RECORDS_ACCEPTED, "xinyong/ingest", f"individual:{pid}", payload,
                             event_id=str(uuid.uuid4()))
    return InboundMessage(topic=RECORDS_ACCEPTED.name, partition=0, offset=offset,
                          key=event.key, value=event.value, timestamp_ms=0)


async def erase(ctx: ServiceContext, conn: asyncpg.Connection, plan: purge.Plan,
                subject_key: str, today: date = ERASE_ON) -> str:
    await conn.execute("DELETE FROM outbox")  # as if relayed
    return await purge.erase_subject(ctx, conn, plan, KEY, subject_key, today)


async def holds(conn: asyncpg.Connection, needle: str, tables: dict[str, str]) -> list[str]:
    return [t for t, column in tables.items() if await conn.fetchval(
        f"SELECT count(*) FROM {t} WHERE {column}::text LIKE $1", f"%{needle}%")]


async def _clear(conn: asyncpg.Connection, needle: str, tables: dict[str, str],
                 references: list[str]) -> None:
    """What a test with committed rows left where `holds` looks, and its ledger lines."""
    for t, column in tables.items():
        await conn.execute(f"DELETE FROM {t} WHERE {column}::text LIKE $1", f"%{needle}%")
    await conn.execute("DELETE FROM erasure_ledger WHERE reference = ANY($1::text[])",
                       references)


async def test_ingest_erases_revisions_and_every_audit_line_and_refuses_the_record_again(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("ingest")
    pid, key = person()
    good = ingest.Delivery("hrss", ingest.domain.parse_message(
        submission_json("hrss", wage_record(pid, "W-1"))))
    bad = ingest.Delivery("hrss", ingest.domain.parse_message(
        submission_json("hrss", wage_record(pid, "W-2", act_ended_on="1999-01-01"))))
    outcomes = await ingest.ingest_deliveries(conn, catalogue, [good, bad], erasure_key=KEY)
    assert [o.feedback.status for o in outcomes] == ["accepted", "rejected"]
    assert await conn.fetchval("SELECT purge_on FROM purge_schedule WHERE record_id = 'W-1'") \
        == ERASE_ON
    assert await erase(context_of("ingest"), conn, ingest_sweeps.PLAN, key,
                       ERASE_ON - timedelta(days=1)) == "deferred"  # nothing due yet

    assert await erase(context_of("ingest"), conn, ingest_sweeps.PLAN, key) == "done"
    assert await holds(conn, pid, {"records": "subject_key", "submissions": "subject_key",
                                   "purge_schedule": "subject_key"}) == []
    assert await conn.fetchval("SELECT count(*) FROM submissions WHERE record_id LIKE 'W-%'") \
        == 0
    # A later revision of the erased record, whatever it says, is refused naming record_id.
    again = ingest.Delivery("hrss", ingest.domain.parse_message(submission_json(
        "hrss", wage_record(pid, "W-1", revision=2, act_ended_on=TODAY.isoformat()))))
    [refused] = await ingest.ingest_deliveries(conn, catalogue, [again], erasure_key=KEY)
    assert [(e.field, e.code) for e in refused.feedback.errors] == [("record_id", "erased")]
    assert await conn.fetchval(
        "SELECT subject_key FROM submissions WHERE record_id = 'W-1'") is None


async def test_the_registry_erases_record_history_and_archive_and_drops_a_replay(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("registry")
    pid, key = person()
    changes, _ = registry.parse_changes([accepted(pid, "W-1"), accepted(pid, "W-2", 1)])
    await registry.apply_changes(conn, catalogue, changes, KEY)
    version = await conn.fetchval("SELECT version FROM subjects WHERE subject_key = $1", key)
    assert version == 2
    # One of two records is due: the archive keeps the other and says so in a new snapshot.
    await conn.execute("UPDATE purge_schedule SET purge_on = purge_on + 1 WHERE record_id = 'W-2'")
    assert await erase(context_of("registry"), conn, registry_sweeps.PLAN, key) == "done"
    assert [r["record_id"] for r in await conn.fetch(
        "SELECT record_id FROM records WHERE subject_key = $1", key)] == ["W-2"]
    assert await conn.fetchval("SELECT count(*) FROM record_history WHERE record_id = 'W-1'") \
        == 0
    [event] = await conn.fetch("SELECT value FROM outbox")
    assert b'"W-2"' in bytes(event["value"]) and b'"W-1"' not in bytes(event["value"])
    # The other one a day later: nothing is left, and the version is kept in the ledger.
    assert await erase(context_of("registry"), conn, registry_sweeps.PLAN, key,
                       ERASE_ON + timedelta(days=1)) == "done"
    assert await conn.fetchval("SELECT count(*) FROM subjects WHERE subject_key = $1", key) == 0
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
    counters = await purge.subject_counters(conn, KEY, [key])
    assert counters[key] == {"version": 3}
    # A replay of the accepted records changes nothing; a new record about the person
    # continues the versions.
    changes, _ = registry.parse_changes([accepted(pid, "W-1", 2), accepted(pid, "W-3", 3)])
    await registry.apply_changes(conn, catalogue, changes, KEY)
    assert [r["record_id"] for r in await conn.fetch(
        "SELECT record_id FROM records WHERE subject_key = $1", key)] == ["W-3"]
    assert await conn.fetchval("SELECT version FROM subjects WHERE subject_key = $1", key) == 4


async def test_the_publisher_exits_first_then_erases_and_scrubs_the_feed(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("publisher")
    pid, key = person()
    subject = {"type": "individual", "id": pid, "name": "王某"}
    record = archived("court.dishonest_debtor", department="court", record_id="C-1",
                      decided_on=DECIDED, public_until=ERASE_ON, purge_on=ERASE_ON,
                      attributes={"extension_years": 3})
    snap = snapshot(record and ENTERPRISE.model_validate(subject), [record])
    await apply_snapshots(conn, catalogue, [snap], erasure_key=KEY)
    assert await conn.fetchval(
        "SELECT count(*) FROM list_entries WHERE subject_key = $1 AND status = 'active'",
        key) == 1
    ctx = context_of("publisher")
    plan = publisher_sweeps.plan(catalogue)
    # An agency's answer, its note naming the person.
    land = await conn.fetchval("SELECT notice_id::text FROM notices WHERE subject_key = $1"
                               " AND agency = 'land'", key)
    await publisher_store.answer_notices(conn, [("land", NoticeFeedback(
        notice_id=land, status="applied", note=f"已限制王某（{pid}）参与土地出让"))], "http")
    await conn.execute("DELETE FROM outbox")
    # First pass: the entry exits (DEL, revocations) and the erasure waits for them.
    assert await purge.erase_subject(ctx, conn, plan, KEY, key, ERASE_ON) == "deferred"
    assert await conn.fetchval(
        "SELECT exit_reason FROM list_entries WHERE subject_key = $1", key) == \
        "retention_expired"
    assert await conn.fetchval("SELECT count(*) FROM notices WHERE kind = 'revocation'"
                               " AND subject_key = $1", key) == 5
    assert await purge.erase_subject(ctx, conn, plan, KEY, key, ERASE_ON) == "deferred"
    assert await erase(ctx, conn, plan, key) == "done"
    assert await holds(conn, pid, {"subjects": "snapshot", "notices": "body",
                                   "list_changes": "body", "list_entries": "subject_key",
                                   "served_decisions": "subject_key",
                                   "subject_versions": "snapshot",
                                   "entry_history": "subject_key",
                                   "notice_feedback_history": "note"}) == []
    rows = await conn.fetch("SELECT op, subject_key, body::jsonb ->> 'since' AS since"
                            " FROM list_changes WHERE body::jsonb -> 'subject' = 'null'"
                            " ORDER BY seq")
    assert [(r["op"], r["subject_key"]) for r in rows][-2:] == [("ADD", None), ("DEL", None)]
    assert all(r["since"] for r in rows)
    # A replayed snapshot of the erased subject is dropped whole.
    await apply_snapshots(conn, catalogue, [snap.model_copy(update={"version": 9})],
                          erasure_key=KEY)
    assert await conn.fetchval("SELECT count(*) FROM subjects WHERE subject_key = $1", key) == 0
    # Listed again later, the person's entry gets an id the erased one never had.
    counts = await publisher_lifecycle.erased_counts(conn, KEY,
                                                     [("court.dishonest_debtor", key)])
    assert counts == {("court.dishonest_debtor", key): 1}


async def test_a_subject_keeps_its_snapshot_without_the_erased_record(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    """Only one of a person's records is due: the publisher rewrites the snapshot without it
    (the statement once failed to prepare: `$3 IS NOT NULL` has no type)."""
    conn = await tx("publisher")
    pid, key = person()
    subject = ENTERPRISE.model_validate({"type": "individual", "id": pid, "name": "王某"})
    due = archived("hrss.wage_arrears", record_id="W-1", decided_on=DECIDED,
                   public_until=ERASE_ON, purge_on=ERASE_ON)
    later = ERASE_ON + timedelta(days=400)
    kept = archived("hrss.wage_arrears", record_id="W-2", decided_on=DECIDED + timedelta(days=1),
                    public_until=later, purge_on=later)
    await apply_snapshots(conn, catalogue, [snapshot(subject, [due, kept])], erasure_key=KEY)
    plan = publisher_sweeps.plan(catalogue)
    outcomes = [await erase(context_of("publisher"), conn, plan, key) for _ in range(3)]
    assert "done" in outcomes
    row = await conn.fetchrow("SELECT snapshot::text AS body, discoverable, discoverable_until"
                              " FROM subjects WHERE subject_key = $1", key)
    assert row is not None
    assert '"W-2"' in row["body"] and '"W-1"' not in row["body"]
    assert row["discoverable"] is True and row["discoverable_until"] == later


async def test_an_erasure_and_a_batch_about_the_same_subject_take_turns(
        pools: dict[str, asyncpg.Pool], catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    """The erasure takes the subject's row first, as a stream batch does (its snapshot
    upsert), so a batch's writes about the subject land wholly before or after it. Here a
    batch holds the subject and writes a notification of its entry while the erasure runs.
    Taking the entries first, the erasure deleted the entry while the batch held the
    subject: they deadlocked (a moment later, the DELETE of the entry failed on the
    notification's foreign key and the subject waited a day). Committed rows, two
    connections."""
    pool, ctx, plan = pools["publisher"], context_of("publisher"), \
        publisher_sweeps.plan(catalogue)
    pid, key = person()
    record_id = f"C-{uuid.uuid4().hex[:8]}"
    record = archived("court.dishonest_debtor", department="court", record_id=record_id,
                      decided_on=DECIDED, public_until=ERASE_ON, purge_on=ERASE_ON,
                      attributes={"extension_years": 3})
    subject = ENTERPRISE.model_validate({"type": "individual", "id": pid, "name": "王某"})
    await _committed(pool, catalogue, subject, record)
    async with pool.acquire() as conn:
        async with conn.transaction():  # the entry exits first
            assert await purge.erase_subject(ctx, conn, plan, KEY, key, ERASE_ON) == "deferred"
        await conn.execute("DELETE FROM outbox WHERE key = $1", key)
        assert await conn.fetchval("SELECT exit_reason FROM list_entries"
                                   " WHERE subject_key = $1", key) == "retention_expired"
        entry = await conn.fetchrow("SELECT entry_id::text, list FROM list_entries"
                                    " WHERE subject_key = $1", key)
    assert entry is not None
    try:
        async with pool.acquire() as batch, pool.acquire() as sweep:
            holding = batch.transaction()
            await holding.start()
            await batch.execute("SELECT 1 FROM subjects WHERE subject_key = $1 FOR UPDATE",
                                key)

            async def erasure() -> str:
                async with sweep.transaction():
                    return await purge.erase_subject(ctx, sweep, plan, KEY, key, ERASE_ON)

            erasing = asyncio.create_task(erasure())
            await polling.until(lambda: pool.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                sweep.get_server_pid()), "the erasure waits for the batch", timeout=10,
                interval=0.05)
            await rights_store.create_notifications(batch, [(
                str(uuid.uuid4()), entry["entry_id"], key, entry["list"])])
            await holding.commit()
            assert await asyncio.wait_for(erasing, 30) == "done"
        async with pool.acquire() as conn:
            assert await holds(conn, key, {"notifications": "subject_key",
                                           "list_entries": "subject_key",
                                           "subjects": "subject_key"}) == []
    finally:
        async with pool.acquire() as conn:
            await _forget(conn, key, entry["entry_id"], [
                purge.record_reference(KEY, "court", record_id),
                purge.subject_reference(KEY, key)])


async def test_a_snapshot_arriving_during_an_erasure_waits_and_leaves_the_record_out(
        pools: dict[str, asyncpg.Pool], catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    """A snapshot still carrying a record (one on its way, a redelivery) reaches the
    publisher while the record's erasure is being written. The batch waits for the subject
    as the erasure holds it, then reads the ledger: the record stays erased. Read before
    the wait, the ledger said nothing and the batch wrote the subject back until the next
    sweep pass. Committed rows, two connections."""
    pool, ctx, plan = pools["publisher"], context_of("publisher"), \
        publisher_sweeps.plan(catalogue)
    pid, key = person()
    record_id = f"P-{uuid.uuid4().hex[:8]}"
    record = archived("amr.admin_penalty", record_id=record_id, decided_on=DECIDED,
                      public_until=ERASE_ON, purge_on=ERASE_ON)
    subject = ENTERPRISE.model_validate({"type": "individual", "id": pid, "name": "王某"})
    await _committed(pool, catalogue, subject, record)
    try:
        await _applied_during_erasure(pool, ctx, plan, key, lambda batch: apply_snapshots(
            batch, catalogue, [snapshot(subject, [record], version=2)], erasure_key=KEY))
        async with pool.acquire() as conn:
            assert await holds(conn, key, {"subjects": "subject_key",
                                           "purge_schedule": "subject_key"}) == []
    finally:
        async with pool.acquire() as conn:
            await _forget(conn, key, str(uuid.uuid4()), [
                purge.record_reference(KEY, "amr", record_id),
                purge.subject_reference(KEY, key)])


@pytest.mark.parametrize("redelivered", ["accepted record", "snapshot"])
async def test_a_record_redelivered_to_objection_during_its_erasure_stays_erased(
        redelivered: str, pools: dict[str, asyncpg.Pool], catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    """Objection's copies of a record (`known_records`, `record_facts`) and the schedule
    that erases them: a record re-sent while its erasure is written waits for the erasure,
    then finds it in the ledger. Read before the wait, the ledger said nothing and the
    copy came back until the next pass. Committed rows, two connections."""
    pool, ctx = pools["objection"], context_of("objection")
    pid, key = person()
    record_id = f"W-{uuid.uuid4().hex[:8]}"

    def snapshot_of(version: int) -> InboundMessage:
        return snapshot_message(pid, builders.archived(
            record_id, department="hrss", item="hrss.wage_arrears", decided_on=DECIDED),
            version=version, subject_type="individual")

    async def again(batch: asyncpg.Connection) -> None:
        if redelivered == "snapshot":
            await objection.remember(batch, [snapshot_of(2)], erasure_key=KEY)
        else:
            await objection.remember(batch, [accepted(pid, record_id, 7)], catalogue, KEY)

    async with pool.acquire() as conn:
        async with conn.transaction():
            await objection.remember(conn, [accepted(pid, record_id)], catalogue, KEY)
            await objection.remember(conn, [snapshot_of(1)], erasure_key=KEY)
    copies = {"known_records": "subject_id", "record_facts": "subject_key",
              "purge_schedule": "subject_key"}
    try:
        await _applied_during_erasure(pool, ctx, objection_sweeps.plan(ctx), key, again)
        async with pool.acquire() as conn:
            assert await holds(conn, pid, copies) == []
    finally:
        async with pool.acquire() as conn:
            await _clear(conn, pid, copies, [purge.record_reference(KEY, "hrss", record_id),
                                             purge.subject_reference(KEY, key)])


async def test_a_batch_about_two_records_of_a_subject_cannot_deadlock_with_its_erasure(
        pools: dict[str, asyncpg.Pool], catalogue: Catalogue) -> None:
    """Objection locks the rows of every record a batch is about at once, in the order an
    erasure takes a subject's rows (`lock_known_of_subject`). Locked per topic, an accepted
    record about the second record was locked before a snapshot's first: an erasure that
    took the first row in between waited for the second, the batch for the first, and
    PostgreSQL aborted one of them. A third connection holds the second record's erasure
    schedule, which the batch writes between the two, to make that order certain.
    Committed rows, three connections."""
    pool = pools["objection"]
    pid, key = person()
    tag = uuid.uuid4().hex[:8]
    first, second = f"W-{tag}-a", f"W-{tag}-b"

    def waits(conn: asyncpg.Connection, what: str) -> Awaitable[None]:
        return polling.until(lambda: pool.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
            conn.get_server_pid()), what, timeout=10, interval=0.05)

    async with pool.acquire() as conn, conn.transaction():
        await objection.remember(conn, [accepted(pid, first), accepted(pid, second)],
                                 catalogue, KEY)
    batch_messages = [accepted(pid, second, revision=2), snapshot_message(pid, *(builders.archived(
        r, department="hrss", item="hrss.wage_arrears", decided_on=DECIDED)
        for r in (first, second)), subject_type="individual")]
    copies = {"known_records": "subject_id", "record_facts": "subject_key",
              "purge_schedule": "subject_key"}
    try:
        async with pool.acquire() as holder, pool.acquire() as batch, \
                pool.acquire() as sweep:
            holding = holder.transaction()
            await holding.start()
            await holder.execute("SELECT 1 FROM purge_schedule WHERE department = 'hrss'"
                                 " AND record_id = $1 FOR UPDATE", second)

            async def applied() -> None:
                async with batch.transaction():
                    await objection.remember(batch, batch_messages, catalogue, KEY)

            async def erasing() -> None:
                async with sweep.transaction():
                    await objection_store.lock_known_of_subject(sweep, key)

            applying = asyncio.create_task(applied())
            await waits(batch, "the batch waits at the erasure schedule")
            erased = asyncio.create_task(erasing())
            await waits(sweep, "the erasure waits for the batch")
            await holding.commit()
            outcomes = await asyncio.wait_for(
                asyncio.gather(applying, erased, return_exceptions=True), 30)
            # A side aborted by a deadlock: DeadlockDetectedError.
            assert [o for o in outcomes if o is not None] == []
        async with pool.acquire() as conn:
            assert await conn.fetchval(
                "SELECT count(*) FROM record_facts WHERE subject_key = $1", key) == 2
    finally:
        async with pool.acquire() as conn:
            await _clear(conn, pid, copies, [])


async def test_a_decision_sent_during_its_objections_erasure_is_dropped(
        pools: dict[str, asyncpg.Pool], catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    """A department's decision about an objection whose erasure is being written waits for
    the erasure, then finds the objection in the ledger and is dropped. Read before the
    wait, the ledger said nothing, the objection was gone, and the decision went to dead
    letters with its content. Committed rows, two connections."""
    pool, ctx = pools["objection"], context_of("objection")
    pid, key = person()
    record_id, objection_id = f"W-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    async with pool.acquire() as conn:
        async with conn.transaction():
            await objection.remember(conn, [accepted(pid, record_id)], catalogue, KEY)
            known = await objection_store.known_record(conn, "hrss", record_id)
            assert known is not None
            assert await objection_store.create(
                conn, objection_id=objection_id, kind="objection", subject=known.subject,
                department="hrss", record_id=record_id, revision=1, reason="有误",
                contact="13800000000", requester="r", token_hash="h", due_by=TODAY,
                received_at=clock.now())
        await conn.execute("DELETE FROM outbox WHERE key = $1", key)  # as if relayed
    message = builders.decision_message("hrss", key, ObjectionDecision(
        objection_id=objection_id, decision="rejected", reason="核实无误"))
    handle = objection.make_handler(ctx)
    dead_letters = ("SELECT count(*) FROM outbox WHERE topic LIKE 'credit.deadletter.%'"
                    " AND position($1::bytea IN value) > 0")
    copies = {"known_records": "subject_id", "objections": "subject_key",
              "purge_schedule": "subject_key"}
    try:
        await _applied_during_erasure(pool, ctx, objection_sweeps.plan(ctx), key,
                                      lambda batch: handle(batch, [message]))
        async with pool.acquire() as conn:
            assert await conn.fetchval(dead_letters, objection_id.encode()) == 0
            assert await holds(conn, pid, copies) == []
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM outbox WHERE topic LIKE 'credit.deadletter.%'"
                               " AND position($1::bytea IN value) > 0", objection_id.encode())
            await _clear(conn, pid, copies, [
                purge.record_reference(KEY, "hrss", record_id),
                purge.subject_reference(KEY, key),
                purge.objection_reference(purge.erasure_key(ctx.settings), objection_id)])


async def test_a_submission_during_its_records_erasure_is_refused(
        pools: dict[str, asyncpg.Pool], catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    """Ingest takes a submission's record row before it reads the ledger: a later revision
    sent while the record's erasure is written waits, then is refused naming `record_id`,
    and nothing of it is kept. Committed rows, two connections."""
    pool, ctx = pools["ingest"], context_of("ingest")
    pid, key = person()
    record_id = f"W-{uuid.uuid4().hex[:8]}"

    def delivery(revision: int) -> ingest.Delivery:
        return ingest.Delivery("hrss", ingest.domain.parse_message(submission_json(
            "hrss", wage_record(pid, record_id, revision=revision))))

    outcomes: list[ingest.Outcome] = []

    async def again(batch: asyncpg.Connection) -> None:
        outcomes.extend(await ingest.ingest_deliveries(batch, catalogue, [delivery(2)],
                                                       erasure_key=KEY))

    async with pool.acquire() as conn:
        async with conn.transaction():
            [first] = await ingest.ingest_deliveries(conn, catalogue, [delivery(1)],
                                                     erasure_key=KEY)
        assert first.feedback.status == "accepted"
        await conn.execute("DELETE FROM outbox WHERE key = $1", key)
    copies = {"records": "subject_key", "submissions": "subject_key",
              "purge_schedule": "subject_key"}
    try:
        await _applied_during_erasure(pool, ctx, ingest_sweeps.PLAN, key, again)
        assert [(e.field, e.code) for o in outcomes for e in o.feedback.errors] \
            == [("record_id", "erased")]
        async with pool.acquire() as conn:
            assert await holds(conn, pid, copies) == []
    finally:
        async with pool.acquire() as conn:
            await _clear(conn, pid, {**copies, "outbox": "key"},
                         [purge.record_reference(KEY, "hrss", record_id),
                          purge.subject_reference(KEY, key)])


async def _applied_during_erasure(pool: asyncpg.Pool, ctx: ServiceContext, plan: purge.Plan,
                                  key: str,
                                  apply: Callable[[asyncpg.Connection], Awaitable[Any]]
                                  ) -> None:
    """The subject's erasure written and held open on one connection; `apply`, in a
    transaction on another, until it waits for the erasure; then the erasure committed and
    `apply` let finish."""
    async with pool.acquire() as batch, pool.acquire() as sweep:
        erasing = sweep.transaction()
        await erasing.start()
        assert await purge.erase_subject(ctx, sweep, plan, KEY, key, ERASE_ON) == "done"

        async def applied() -> None:
            async with batch.transaction():
                await apply(batch)

        applying = asyncio.create_task(applied())
        await polling.until(lambda: pool.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
            batch.get_server_pid()), "the batch waits for the erasure", timeout=10,
            interval=0.05)
        await erasing.commit()
        await asyncio.wait_for(applying, 30)


async def _committed(pool: asyncpg.Pool, catalogue: Catalogue, subject: SubjectRef,
                     record: ArchivedRecord) -> None:
    """The subject's snapshot with the record, committed, and its events as if relayed."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await apply_snapshots(conn, catalogue, [snapshot(subject, [record])],
                                  erasure_key=KEY)
        await conn.execute("DELETE FROM outbox WHERE key = $1", subject.key)


async def _forget(conn: asyncpg.Connection, key: str, entry_id: str,
                  references: list[str]) -> None:
    """Whatever a test with committed rows left about the subject, in foreign-key order."""
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND column_name = 'subject_key'")
    first = ["notification_deliveries", "notifications", "notices", "entry_history"]
    last = ["list_entries", "subjects"]
    names = sorted((t["table_name"] for t in tables), key=lambda t: (
        first.index(t) - len(first) if t in first else last.index(t) + 1 if t in last else 0))
    await conn.execute("DELETE FROM list_changes WHERE entry_id = $1::uuid", entry_id)
    for table in names:
        await conn.execute(f"DELETE FROM {table} WHERE subject_key = $1", key)
    await conn.execute("DELETE FROM erasure_ledger WHERE reference = ANY($1::text[])",
                       references)


async def test_a_person_named_beside_a_notices_subject_is_erased_from_it_5_years_on(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("publisher")
    pid, _ = person()
    rep = RelatedSubject(type="individual", id=pid, name="王某", role="legal_representative")
    record = archived("court.dishonest_debtor", department="court", record_id="C-9",
                      decided_on=DECIDED, public_until=DECIDED + timedelta(days=730))
    firm = snapshot(ENTERPRISE, [record], related=[rep])
    await apply_snapshots(conn, catalogue, [firm], erasure_key=KEY)
    [hiring] = await conn.fetch(
        "SELECT notice_id, related_until FROM notices WHERE measure = 'hiring.restrict'"
        " AND subject_key = $1", ENTERPRISE.key)
    assert hiring["related_until"] == ERASE_ON
    assert await publisher_lifecycle.scrub_related(conn, ERASE_ON - timedelta(days=1), 10) == 0
    assert await publisher_lifecycle.scrub_related(conn, ERASE_ON, 10) == 1
    body = await conn.fetchval("SELECT body::text FROM notices WHERE notice_id = $1",
                               hiring["notice_id"])
    assert pid not in body and ENTERPRISE.id in body


async def test_the_objection_service_erases_objections_timelines_and_its_copy(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("objection")
    pid, key = person()
    await objection.remember(conn, [accepted(pid, "W-1")], catalogue, KEY)
    assert await conn.fetchval("SELECT purge_on FROM purge_schedule WHERE record_id = 'W-1'") \
        == ERASE_ON
    objection_id = str(uuid.uuid4())
    known = await objection_store.known_record(conn, "hrss", "W-1")
    assert known is not None
    assert await objection_store.create(
        conn, objection_id=objection_id, kind="objection", subject=known.subject,
        department="hrss", record_id="W-1", revision=1, reason="有误", contact="13800000000",
        requester="r", token_hash="h", due_by=TODAY, received_at=clock.now())
    assert await erase(context_of("objection"), conn,
                       objection_sweeps.plan(context_of("objection")), key) == "done"
    assert await holds(conn, pid, {"objections": "subject_key", "known_records": "subject_id",
                                   "purge_schedule": "subject_key"}) == []
    assert await conn.fetchval("SELECT count(*) FROM objection_events WHERE objection_id = $1",
                               uuid.UUID(objection_id)) == 0
    # The plan hashes with the deployment's key (its settings'), like the service.
    service_key = purge.erasure_key(context_of("objection").settings)
    assert await purge.erased_references(
        conn, [purge.objection_reference(service_key, objection_id)])
    # A replay of the accepted record does not bring the copy back.
    await objection.remember(conn, [accepted(pid, "W-1", 5)], catalogue, KEY)
    assert await objection_store.known_record(conn, "hrss", "W-1") is None


async def test_kept_messages_about_a_whole_subject_are_erased(
        tx: OpenTransaction, context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("ingest")
    pid, key = person()
    for k, value in ((key.encode(), b"{}"), (None, f'{{"id": "{pid}"'.encode()),
                     (b"enterprise:x", b"{}")):
        await conn.execute(
            'INSERT INTO dead_letters (service, topic, partition, "offset", key, value, reason)'
            " VALUES ('ingest', 't', 0, 0, $1, $2, 'r')", k, value)
    # Kept about another subject, but naming this one in why (the registry's reasons do).
    await conn.execute(
        'INSERT INTO dead_letters (service, topic, partition, "offset", key, value, reason)'
        " VALUES ('ingest', 't', 0, 0, 'enterprise:y', '{}', $1)",
        f"record W-9 belongs to {key}, not to enterprise:y")
    await conn.execute("INSERT INTO purge_schedule VALUES ('hrss', 'W-1', $1, $2)", key,
                       ERASE_ON)
    assert await erase(context_of("ingest"), conn, ingest_sweeps.PLAN, key) == "done"
    assert [bytes(r["key"]) for r in await conn.fetch(
        "SELECT key FROM dead_letters")] == [b"enterprise:x"]


async def test_an_erasure_waits_while_the_subject_has_events_to_send(
        tx: OpenTransaction, context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("ingest")
    _, key = person()
    await conn.execute("INSERT INTO purge_schedule VALUES ('hrss', 'W-1', $1, $2)", key,
                       ERASE_ON)
    await conn.execute("INSERT INTO outbox (event_id, topic, key, value) VALUES"
                       " ('e', 't', $1, '\\x00')", key)
    assert await purge.erase_subject(context_of("ingest"), conn, ingest_sweeps.PLAN, KEY, key,
                                     ERASE_ON) == "deferred"
    assert await conn.fetchval("SELECT count(*) FROM purge_schedule WHERE subject_key = $1",
                               key) == 1


async def test_a_failing_sweep_item_is_dead_lettered_once_and_skipped_for_the_day(
        tx: OpenTransaction) -> None:
    conn = await tx("registry")
    for _ in range(2):
        await sweeps.record_failure(conn, "registry", "purge", "hrss/W-1", "KeyError: boom")
    letters = await conn.fetch("SELECT topic, key, value, reason FROM dead_letters"
                               " WHERE topic = 'sweep/purge'")
    assert len(letters) == 1
    assert letters[0]["key"] is None and b"hrss/W-1" in bytes(letters[0]["value"])
    assert "boom" in letters[0]["reason"]
    assert await sweeps.failed_today(conn, "purge", clock.today()) == {"hrss/W-1"}
    [event] = await conn.fetch("SELECT topic FROM outbox")
    assert event["topic"] == "credit.deadletter.registry"


def test_every_plan_declares_its_tables(catalogue: Catalogue,
                                        context_of: Callable[[str], ServiceContext]) -> None:
    """What each service erases is declared, so the docs and the scan can list it."""
    plans = {"ingest": ingest_sweeps.PLAN, "registry": registry_sweeps.PLAN,
             "publisher": publisher_sweeps.plan(catalogue),
             "objection": objection_sweeps.plan(context_of("objection"))}
    tables = {service: [t for t, _ in purge.describe(p)] for service, p in plans.items()}
    assert tables["registry"][:3] == ["records", "record_history", "subjects"]
    assert {"notices", "list_changes", "list_entries", "subjects"} <= set(tables["publisher"])
    assert all(t[-2:] == ["dead_letters", "outbox_set_aside"] for t in tables.values())
    assert publisher_domain.feed_names_subject(None, None, TODAY, 14) is False


async def test_a_subject_that_fails_is_dead_lettered_and_the_sweep_goes_on(
        pools: dict[str, asyncpg.Pool], context_of: Callable[[str], ServiceContext]) -> None:
    """A whole pass of the sweep (it commits, like the service: the rows are its own and are
    removed after)."""
    ctx = context_of("ingest")
    (_, good), (_, bad) = person(), person()

    async def erase_or_fail(conn: asyncpg.Connection, e: purge.Erasure) -> None:
        if e.subject_key == bad:
            raise KeyError("a bug in a target")
        await conn.execute("DELETE FROM records WHERE subject_key = $1", e.subject_key)

    plan = purge.Plan("ingest", (purge.Target("records", "delete", erase_or_fail),),
                      holds_more=ingest_sweeps.PLAN.holds_more)
    async with pools["ingest"].acquire() as conn:
        for key, record_id in ((good, "SW-GOOD"), (bad, "SW-BAD")):
            await conn.execute("INSERT INTO purge_schedule VALUES ('hrss', $1, $2, $3)",
                               record_id, key, TODAY - timedelta(days=1))
        try:
            assert await purge.purge_due(ctx, plan, TODAY) == 1
            left = await conn.fetch("SELECT subject_key FROM purge_schedule"
                                    " WHERE record_id LIKE 'SW-%'")
            assert [r["subject_key"] for r in left] == [bad]
            [letter] = await conn.fetch("SELECT value, reason FROM dead_letters"
                                        " WHERE topic = 'sweep/purge' AND reason LIKE '%bug%'")
            assert b"hrss/SW-BAD" in bytes(letter["value"])
            # The rest of the day it is skipped: the next pass finds nothing to do.
            assert await purge.purge_due(ctx, plan, TODAY) == 0
        finally:
            await conn.execute("DELETE FROM purge_schedule WHERE record_id LIKE 'SW-%'")
            await conn.execute("DELETE FROM sweep_failures WHERE item LIKE 'hrss/SW-%'")
            await conn.execute("DELETE FROM dead_letters WHERE topic = 'sweep/purge'")
            await conn.execute("DELETE FROM erasure_ledger")
            await conn.execute("DELETE FROM outbox")


async def test_the_schedule_takes_the_later_of_two_revisions_in_one_batch(
        tx: OpenTransaction) -> None:
    conn = await tx("ingest")
    _, key = person()
    await purge.schedule(conn, [("hrss", "TWICE", key, ERASE_ON),
                                ("hrss", "TWICE", key, ERASE_ON + timedelta(days=9)),
                                ("amr", "KEPT", "enterprise:x", None)])
    assert await conn.fetchval("SELECT purge_on FROM purge_schedule WHERE record_id = 'TWICE'") \
        == ERASE_ON + timedelta(days=9)
    await purge.schedule(conn, [("hrss", "TWICE", key, None)])  # no longer to erase
    assert await conn.fetchval("SELECT count(*) FROM purge_schedule WHERE record_id = 'TWICE'") \
        == 0

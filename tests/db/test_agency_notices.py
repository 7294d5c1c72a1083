"""Agencies' notices on the real publisher database (rolled back): feedback moves only
forward with every answer kept; the sequencer numbers and dates notices; notices follow
the catalogue (measures added and removed) and the archive (a legal representative
changed, revocation first)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import asyncpg
import pytest

from services.publisher import agencies, domain, follow, handlers, store
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import NoticeFeedback, RelatedSubject, SubjectRef
from tests.db.conftest import OpenTransaction
from tests.unit.factories import archived, resident_id, snapshot, uscc

pytestmark = pytest.mark.db


def _firm() -> SubjectRef:
    return SubjectRef(type="enterprise", id=uscc("91440400" + uuid.uuid4().hex[:9].upper()
                                                 .replace("I", "1").replace("O", "0")
                                                 .replace("S", "5").replace("V", "7")
                                                 .replace("Z", "2")),
                      name="珠海市测试有限公司")


def _rep(sequence: int) -> RelatedSubject:
    return RelatedSubject(type="individual", id=resident_id(birth=date(1980, 1, 1),
                                                           sequence=sequence),
                          name="法人", role="legal_representative")


async def _notices(conn: asyncpg.Connection, firm: SubjectRef) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT notice_id::text, agency, kind, measure, revokes::text, body FROM notices"
        " WHERE subject_key = $1 ORDER BY written", firm.key)


async def _outbox_notices(conn: asyncpg.Connection, firm: SubjectRef) -> list[dict[str, object]]:
    rows = await conn.fetch("SELECT value FROM outbox WHERE key = $1 AND topic LIKE"
                            " 'credit.notices.%' ORDER BY id", firm.key)
    return [json.loads(r["value"])["data"] for r in rows]


async def _listed(conn: asyncpg.Connection, catalogue: Catalogue, firm: SubjectRef,
                  related: list[RelatedSubject] | None = None, version: int = 1) -> None:
    await handlers.apply_snapshots(conn, catalogue, [snapshot(
        firm, [archived("court.dishonest_debtor")], related, version)])


async def test_feedback_moves_only_forward_and_every_answer_is_kept(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    firm = _firm()
    await _listed(conn, catalogue, firm)
    land = next(r for r in await _notices(conn, firm) if r["agency"] == "land")
    answers = [("land", "received"), ("land", "applied"), ("land", "received"),
               ("land", "not_applicable"), ("land", "applied"),
               ("housing-bidding", "applied")]  # not its notice
    outcomes = await store.answer_notices(conn, [
        (agency, NoticeFeedback(notice_id=land["notice_id"], status=status))
        for agency, status in answers], "http")
    assert [o for _, o in outcomes] == ["applied", "applied", "refused", "refused",
                                        "repeated", None]
    assert await conn.fetchval("SELECT feedback_status FROM notices WHERE notice_id = $1::uuid",
                               land["notice_id"]) == "applied"
    history = await conn.fetch(
        "SELECT status, outcome, channel FROM notice_feedback_history"
        " WHERE notice_id = $1::uuid ORDER BY id", land["notice_id"])
    assert [(h["status"], h["outcome"]) for h in history] == [
        ("received", "applied"), ("applied", "applied"), ("received", "refused"),
        ("not_applicable", "refused"), ("applied", "repeated")]
    assert {h["channel"] for h in history} == {"http"}


async def test_notices_are_numbered_in_written_order_and_dated_by_measure_as_written(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    before = await store.last_notice_seq(conn)
    firm = _firm()
    await _listed(conn, catalogue, firm)
    rows = await conn.fetch("SELECT notice_id, seq, measure, issued_at, due_by FROM notices"
                            " WHERE subject_key = $1 ORDER BY written", firm.key)
    assert len(rows) >= 5
    seqs = [r["seq"] for r in rows]
    assert None not in seqs and seqs == sorted(set(seqs)) and seqs[0] > before
    for r in rows:
        due = catalogue.measures[r["measure"]].feedback_within
        assert r["due_by"] > r["issued_at"].date()
        assert (r["due_by"] - r["issued_at"].date()).days >= due  # weekends only add days
    # Written once: the sequencer finds nothing of theirs to number or date.
    await agencies.sequence_once(conn, catalogue, 10)
    again = await conn.fetch("SELECT notice_id, seq, due_by FROM notices"
                             " WHERE subject_key = $1 ORDER BY written", firm.key)
    assert [(r["notice_id"], r["seq"], r["due_by"]) for r in again] == [
        (r["notice_id"], r["seq"], r["due_by"]) for r in rows]
    page = await store.agency_notices(conn, "land", before, 1000)
    assert [json.loads(json.dumps(p["body"]))["subject"]["id"] for p in page
            ].count(firm.id) == 1


async def test_notices_stored_otherwise_are_numbered_by_the_sequencer_after_the_others(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    firm = _firm()
    await _listed(conn, catalogue, firm)
    entry = await conn.fetchval("SELECT entry_id FROM notices WHERE subject_key = $1 LIMIT 1",
                                firm.key)
    by_hand = uuid.uuid4()
    await conn.execute(
        "INSERT INTO notices (notice_id, agency, kind, list, measure, entry_id, subject_key,"
        " body, issued_at) VALUES ($1, 'land', 'penalty', 'court.dishonest_debtor',"
        " 'land.restrict', $2, $3, '{}'::json, now())", by_hand, entry, firm.key)
    highest = await store.last_notice_seq(conn)
    assert await agencies.sequence_once(conn, catalogue, 10) >= 1
    row = await conn.fetchrow("SELECT seq, due_by FROM notices WHERE notice_id = $1", by_hand)
    assert row["seq"] > highest and row["due_by"] is not None


async def test_writing_notices_holds_the_sequencers_lock_to_the_commit(
        pools: dict[str, asyncpg.Pool], catalogue: Catalogue) -> None:
    """The guarantee behind the agencies' cursors: a transaction that numbers notices holds
    the sequencer's lock until it ends, so another one numbering its own notices waits, then
    reads the highest number only once the first has ended."""
    pool = pools["publisher"]
    async with pool.acquire() as first, pool.acquire() as second, pool.acquire() as watch:
        first_tx, second_tx = first.transaction(), second.transaction()
        await first_tx.start()
        await second_tx.start()
        first_open = True
        try:
            await _listed(first, catalogue, _firm())
            waiting = asyncio.create_task(_listed(second, catalogue, _firm()))
            pid = second.get_server_pid()
            for _ in range(200):
                if await watch.fetchval(
                        "SELECT count(*) FROM pg_locks WHERE pid = $1 AND locktype = 'advisory'"
                        " AND NOT granted", pid):
                    break
                await asyncio.sleep(0.05)
            else:
                await asyncio.wait_for(waiting, 30)  # its connection free for the rollback
                raise AssertionError("the second transaction's notices did not wait")
            assert not waiting.done()
            await first_tx.rollback()
            first_open = False
            await asyncio.wait_for(waiting, 30)
        finally:
            if first_open:
                await first_tx.rollback()
            await second_tx.rollback()


async def test_a_measure_added_then_removed_follows_the_catalogue(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    firm = _firm()
    await _listed(conn, catalogue, firm)
    before = {(r["agency"], r["measure"]) for r in await _notices(conn, firm)}
    assert ("land", "land.notify") not in before

    measures = dict(catalogue.measures)
    measures["land.notify"] = measures["land.restrict"].model_copy(update={"lists": (
        "court.dishonest_debtor",)})
    added = catalogue.model_copy(update={"measures": measures})
    version = follow.catalogue_version(added) + uuid.uuid4().hex  # a version of this test
    while await follow.follow_catalogue_batch(conn, added, version, batch=1000):
        pass
    after = await _notices(conn, firm)
    new = [r for r in after if r["measure"] == "land.notify"]
    assert len(new) == 1 and new[0]["kind"] == "penalty" and new[0]["agency"] == "land"
    # A second start with the same catalogue sends nothing.
    assert not await follow.follow_catalogue_batch(conn, added, version)
    assert len(await _notices(conn, firm)) == len(after)

    removed_version = follow.catalogue_version(catalogue) + uuid.uuid4().hex
    while await follow.follow_catalogue_batch(conn, catalogue, removed_version, batch=1000):
        pass
    revocations = [r for r in await _notices(conn, firm) if r["kind"] == "revocation"]
    assert [(r["measure"], r["revokes"]) for r in revocations] == [
        ("land.notify", new[0]["notice_id"])]
    # Added again: a new notice, under an id of its own.
    again_version = follow.catalogue_version(added) + uuid.uuid4().hex
    while await follow.follow_catalogue_batch(conn, added, again_version, batch=1000):
        pass
    notify = [r for r in await _notices(conn, firm)
              if r["measure"] == "land.notify" and r["kind"] == "penalty"]
    assert len(notify) == 2 and notify[0]["notice_id"] != notify[1]["notice_id"]


async def test_a_new_legal_representative_replaces_the_notices_naming_the_old_one(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("publisher")
    firm = _firm()
    old, new = _rep(101), _rep(203)
    await _listed(conn, catalogue, firm, [old], version=1)
    [hiring] = [r for r in await _notices(conn, firm) if r["measure"] == "hiring.restrict"]
    assert hiring["body"]["related_subjects"][0]["id"] == old.id
    sent_before = len(await _outbox_notices(conn, firm))

    await _listed(conn, catalogue, firm, [new], version=2)
    sent = (await _outbox_notices(conn, firm))[sent_before:]
    assert [(n["kind"], n["measure"]) for n in sent] == [
        ("revocation", "hiring.restrict"), ("penalty", "hiring.restrict")]  # revocation first
    revocation, replacement = sent
    assert revocation["revokes"] == hiring["notice_id"]
    assert replacement["supersedes"] == hiring["notice_id"]
    assert replacement["notice_id"] not in (hiring["notice_id"], revocation["notice_id"])
    assert [r["id"] for r in replacement["related_subjects"]] == [new.id]
    # The same snapshot again changes nothing; measures without extends_to were not touched.
    await _listed(conn, catalogue, firm, [new], version=3)
    assert len(await _outbox_notices(conn, firm)) == sent_before + 2


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", ()) for n in _plan_nodes(child))]


# The statements a snapshot batch runs with its subjects' keys: (statement, its parameters).
_BY_KEYS = {
    "notices naming related subjects": (store.UNREVOKED_NOTICES_NAMING, 2),
    "open entries, locked": (store.open_entries_of_keys(lock=True), 1),
    "pending entries": (store.open_entries_of_keys(status="pending"), 1),
    "open entries": (store.open_entries_of_keys(), 1),
}


@pytest.mark.parametrize("name", sorted(_BY_KEYS))
async def test_a_batchs_keys_are_each_looked_up_whatever_the_statistics(
        tx: OpenTransaction, catalogue: Catalogue, name: str) -> None:
    """As in a city's first hours: statistics taken while the lists were nearly empty, a
    generic plan, thousands of open entries. Each of the batch's keys is looked up in an
    index that leads with it; no entry is compared with the whole batch of keys (a
    thousand keys: 50 ms to 1.8 s a batch, seen in the bench)."""
    sql, parameters = _BY_KEYS[name]
    conn = await tx("publisher")
    await conn.execute("ANALYZE list_entries")
    await conn.execute(
        "WITH s AS (INSERT INTO subjects (subject_key, type, id, name, version, snapshot,"
        "  discoverable) SELECT 'enterprise:P' || i, 'enterprise', 'P' || i, 'x', 1,"
        "  '{}'::json, false FROM generate_series(1, 3000) AS i RETURNING subject_key)"
        " INSERT INTO list_entries (entry_id, list, subject_key, status, basis)"
        " SELECT gen_random_uuid(), 'court.dishonest_debtor', subject_key,"
        "  CASE WHEN random() < 0.2 THEN 'pending' ELSE 'active' END, '[]'::jsonb FROM s")
    measures = sorted(m for m, measure in catalogue.measures.items() if measure.extends_to)
    arguments = ["'{enterprise:P1,enterprise:P2}'", f"'{{{','.join(measures)}}}'"][:parameters]
    statement = f"by_keys_{uuid.uuid4().hex}"
    await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    await conn.execute(f"PREPARE {statement}({', '.join(['text[]'] * parameters)}) AS {sql}")
    try:
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) EXECUTE {statement}({', '.join(arguments)})")
    finally:
        await conn.execute(f"DEALLOCATE {statement}")
    nodes = _plan_nodes(plan[0]["Plan"])
    entries = [n for n in nodes if n.get("Relation Name") == "list_entries"]
    assert entries and all("subject_key" in n.get("Index Cond", "") for n in entries), [
        (n["Node Type"], n.get("Index Name"), n.get("Index Cond"), n.get("Filter"))
        for n in entries]
    assert not [n for n in nodes if "subject_key" in n.get("Filter", "") + n.get("Join Filter", "")]


async def test_the_publisher_keys_the_entry_ids_it_makes(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    """The public changes feed shows entry ids: the publisher makes them with the
    deployment's key, so no one computes them from a subject's code."""
    conn = await tx("publisher")
    firm = _firm()
    await handlers.apply_snapshots(conn, catalogue, [snapshot(
        firm, [archived("court.dishonest_debtor")])], erasure_key=b"the deployment's key")
    entry_id = await conn.fetchval("SELECT entry_id::text FROM list_entries"
                                   " WHERE subject_key = $1", firm.key)
    assert entry_id == domain.entry_id_for("court.dishonest_debtor", firm.key, 0,
                                           b"the deployment's key")
    assert entry_id != domain.entry_id_for("court.dishonest_debtor", firm.key, 0)

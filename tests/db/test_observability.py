"""What services report from their databases (rolled back): starts, the notices awaiting
their agencies' feedback and past its deadline, open objections."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from services.objection import gauges as objection_gauges
from services.publisher import agencies as agency_history
from services.publisher import gauges as publisher_gauges
from services.publisher import store as publisher_store
from shared import clock
from shared.context import ServiceContext
from shared.probes import Probes, record_start
from tests.db.conftest import OpenTransaction

pytestmark = pytest.mark.db


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_starts_are_counted_per_service_across_restarts(tx: OpenTransaction) -> None:
    conn = await tx("ingest")
    assert [await record_start(conn, "ingest") for _ in range(3)] == [1, 2, 3]
    assert await record_start(conn, "other") == 1


async def _listed_subject(conn: asyncpg.Connection) -> tuple[str, uuid.UUID]:
    """A subject with an active entry on the dishonest-debtor list, for notices to rest on:
    (subject key, entry id)."""
    subject = f"enterprise:T{uuid.uuid4().hex[:16].upper()}"
    await conn.execute(
        "INSERT INTO subjects (subject_key, type, id, name, version, snapshot, discoverable)"
        " VALUES ($1, 'enterprise', $2, 'x', 1, '{}'::json, false)", subject, subject[11:])
    entry = uuid.uuid4()
    await conn.execute(
        "INSERT INTO list_entries (entry_id, list, subject_key, status, basis)"
        " VALUES ($1, 'court.dishonest_debtor', $2, 'active', '[]'::jsonb)", entry, subject)
    return subject, entry


async def test_notices_awaiting_feedback_and_past_its_deadline_per_agency(
        tx: OpenTransaction, context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("publisher")
    ctx = context_of("publisher")
    agencies = sorted(ctx.catalogue.agencies)
    late, early = agencies[0], agencies[1]
    measure_of = {m.agency: name for name, m in ctx.catalogue.measures.items()}
    subject, entry = await _listed_subject(conn)
    now = clock.now()
    long_ago = now - timedelta(days=40)  # past any measure's working days
    notices = [
        (late, long_ago, None),              # overdue
        (late, long_ago, "received"),        # received is not an answer: overdue
        (late, long_ago, "applied"),         # closed
        (late, long_ago, "not_applicable"),  # closed
        (late, now, None),                   # awaiting, not yet due
        (early, now - timedelta(hours=1), "received"),  # awaiting, not yet due
    ]
    await conn.executemany(
        "INSERT INTO notices (notice_id, agency, kind, list, measure, entry_id, subject_key,"
        " body, issued_at, feedback_status) VALUES ($1, $2, 'penalty',"
        " 'court.dishonest_debtor', $3, $4, $5, $6::text::json, $7, $8)",
        [(uuid.uuid4(), agency, measure_of[agency], entry, subject, json.dumps({}), issued,
          status) for agency, issued, status in notices])
    # The sequencer dates each notice's deadline from its measure (services/publisher).
    assert await agency_history.sequence_once(conn, ctx.catalogue, 10) == len(notices)

    await publisher_gauges.notice_feedback(ctx, conn)

    def reported(name: str, agency: str, **labels: str) -> float | None:
        return _gauge(name, service="publisher", agency=agency, **labels)
    assert reported("xinyong_notices_awaiting_feedback", late) == 3
    assert reported("xinyong_notices_overdue", late, measure=measure_of[late]) == 2
    assert reported("xinyong_notices_awaiting_feedback", early) == 1
    assert reported("xinyong_notices_overdue", early, measure=measure_of[early]) == 0
    # Every agency of the catalogue is reported, 0 where nothing waits.
    for agency in agencies[2:]:
        assert reported("xinyong_notices_awaiting_feedback", agency) == 0


async def test_the_kept_counts_of_notices_awaiting_follow_every_kind_of_statement(
        tx: OpenTransaction, context_of: Callable[[str], ServiceContext]) -> None:
    """The gauge reads counts kept by triggers (migration 096), not the notices: after
    inserts (some repeated), answers of every status, deadlines dated and moved, updates
    that change nothing it counts, deletions and a truncation, the counts equal a count of
    the notices themselves, folded or not."""
    conn = await tx("publisher")
    ctx = context_of("publisher")
    rng = random.Random(96)
    measures = sorted((m.agency, name) for name, m in ctx.catalogue.measures.items())
    subject, entry = await _listed_subject(conn)
    today = clock.today()

    async def counted() -> dict[tuple[str, str], tuple[int, int]]:
        rows = await conn.fetch(
            "SELECT agency, measure, count(*) AS awaiting,"
            " count(*) FILTER (WHERE due_by < $1) AS overdue FROM notices"
            " WHERE feedback_status IS NULL OR feedback_status = 'received'"
            " GROUP BY agency, measure", today)
        return {(r["agency"], r["measure"]): (r["awaiting"], r["overdue"]) for r in rows}

    async def kept() -> dict[tuple[str, str], tuple[int, int]]:
        counts = await publisher_store.awaiting_counts(conn, today)
        return {k: v for k, v in counts.items() if v != (0, 0)}

    ids = [uuid.uuid4() for _ in range(60)]
    statuses = [None, "received", "applied", "not_applicable"]
    insert = ("INSERT INTO notices (notice_id, agency, kind, list, measure, entry_id,"
              " subject_key, body, issued_at, feedback_status, due_by) SELECT i, a,"
              " 'penalty', 'court.dishonest_debtor', m, $5, $6, '{}'::json, now(), f, d"
              " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $7::date[])"
              " AS r(i, a, m, f, d) ON CONFLICT (notice_id) DO NOTHING")

    def rows(chosen: list[uuid.UUID]) -> list[Any]:
        picked = [rng.choice(measures) for _ in chosen]
        return [chosen, [a for a, _ in picked], [m for _, m in picked],
                [rng.choice(statuses) for _ in chosen], entry, subject,
                [rng.choice([None, today - timedelta(days=3), today + timedelta(days=3)])
                 for _ in chosen]]

    steps = [
        (insert, lambda: rows(ids[:40])),
        (insert, lambda: rows(ids[30:])),  # ten of them again: nothing
        ("UPDATE notices SET feedback_status = $2 WHERE notice_id = ANY($1::uuid[])",
         lambda: [rng.sample(ids, 25), rng.choice(statuses)]),
        ("UPDATE notices SET due_by = $2 WHERE notice_id = ANY($1::uuid[])",
         lambda: [rng.sample(ids, 20), today - timedelta(days=1)]),
        ("UPDATE notices SET supersedes = notice_id WHERE notice_id = ANY($1::uuid[])",
         lambda: [rng.sample(ids, 30)]),
        ("UPDATE notices SET agency = $2 WHERE notice_id = ANY($1::uuid[])",
         lambda: [rng.sample(ids, 10), measures[0][0]]),
        ("DELETE FROM notices WHERE notice_id = ANY($1::uuid[])", lambda: [ids[:15]]),
    ]
    for n, (statement, args) in enumerate(steps * 3):
        await conn.execute(statement, *args())
        expected = await counted()
        assert expected, "nothing awaits: the test would show nothing"
        if n % 2:  # folded at this probe; the deltas read as they are at the others
            assert await kept() == expected, statement
        else:
            assert {(r["agency"], r["measure"]): r["n"] for r in await conn.fetch(
                "SELECT agency, measure, sum(n) AS n FROM (SELECT * FROM notices_awaiting_counts"
                " UNION ALL SELECT * FROM notices_awaiting_deltas) c GROUP BY 1, 2"
                " HAVING sum(n) <> 0")} == {k: a for k, (a, _) in expected.items()}, statement
    await conn.execute("TRUNCATE notices CASCADE")
    assert await counted() == {} and await kept() == {}


async def test_open_objections_are_those_routed_and_undecided(
        tx: OpenTransaction, context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("objection")
    rows = [("routed", None), ("routed", None), ("upheld", clock.now())]
    await conn.executemany(
        "INSERT INTO objections (objection_id, kind, subject_key, subject, department,"
        " record_id, reason, contact, token_hash, status, due_by, received_at, decided_at)"
        " VALUES ($1, 'objection', 'enterprise:X', '{}'::jsonb, 'amr', 'R', 'r', 'c', 'h',"
        " $2, current_date, now(), $3)",
        [(uuid.uuid4(), status, decided) for status, decided in rows])
    await objection_gauges.open_objections(context_of("objection"), conn)
    assert _gauge("xinyong_objections_open", service="objection") == 2


async def test_gauges_run_without_parallel_workers_and_leave_the_connection_as_it_was(
        context_of: Callable[[str], ServiceContext]) -> None:
    """A gauge counts over tables that grow with the city every probe: a parallel scan took
    both cores from the public API. One core at most, and nothing left on the pooled
    connection afterwards."""
    ctx = context_of("publisher")
    seen: list[str] = []

    async def setting(_: ServiceContext, conn: asyncpg.Connection) -> None:
        seen.append(await conn.fetchval(
            "SELECT current_setting('max_parallel_workers_per_gather')"))

    await Probes(ctx, set, [], gauges=(setting, setting))._from_database()
    assert seen == ["0", "0"]
    async with ctx.pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT current_setting('max_parallel_workers_per_gather')") != "0"

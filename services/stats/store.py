"""The stats service's database: facts, the early warning's state, the windows' sink, and
the official figures as SQL over the facts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

import asyncpg

from services.stats.domain import Counted
from shared.contract import (
    AcceptedRecord,
    ListChanged,
    ObjectionClosed,
    ObjectionRouted,
    RecordFeedback,
    StatsDelta,
    StatsWarning,
    StatsWindow,
)
from shared.db import Json

# --- facts -------------------------------------------------------------------------------


async def save_feedback(conn: asyncpg.Connection,
                        rows: Sequence[tuple[str, str, RecordFeedback, datetime]]) -> None:
    """(event id, department, feedback, when). One statement for the batch; each verdict's
    error codes travel as the text of a JSON array (unnest takes no array of arrays of
    different lengths)."""
    if rows:
        await conn.execute(
            "INSERT INTO feedback_facts (event_id, department, status, error_codes, record_id,"
            " revision, at) SELECT e, d, s, ARRAY(SELECT jsonb_array_elements_text(c::jsonb)), r,"
            " v, t FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            "  $6::int[], $7::timestamptz[]) AS u(e, d, s, c, r, v, t)"
            " ON CONFLICT DO NOTHING",
            [event_id for event_id, _, _, _ in rows], [dept for _, dept, _, _ in rows],
            [f.status for _, _, f, _ in rows],
            # Most verdicts carry no error: their "[]" is not encoded row by row.
            [json.dumps(sorted({e.code for e in f.errors})) if f.errors else "[]"
             for _, _, f, _ in rows],
            [f.record_id for _, _, f, _ in rows], [f.revision for _, _, f, _ in rows],
            [at for _, _, _, at in rows])


async def save_records(conn: asyncpg.Connection,
                       rows: Sequence[tuple[str, AcceptedRecord]]) -> list[AcceptedRecord]:
    """(event id, accepted revision); returns those not stored before."""
    if not rows:
        return []
    stored = await conn.fetch(
        "INSERT INTO record_facts (department, record_id, revision, action, catalogue_item,"
        " subject_type, district, decided_on, accepted_at, event_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[],"
        "  $6::text[], $7::text[], $8::date[], $9::timestamptz[], $10::text[])"
        " ON CONFLICT DO NOTHING RETURNING department, record_id, revision",
        [a.department for _, a in rows], [a.submission.record_id for _, a in rows],
        [a.submission.revision for _, a in rows], [a.submission.action for _, a in rows],
        [a.submission.catalogue_item for _, a in rows],
        [a.submission.subject.type for _, a in rows], [a.submission.district for _, a in rows],
        [a.submission.decided_on for _, a in rows], [a.accepted_at for _, a in rows],
        [event_id for event_id, _ in rows])
    new = {(r["department"], r["record_id"], r["revision"]) for r in stored}
    return [a for _, a in rows
            if (a.department, a.submission.record_id, a.submission.revision) in new]


async def save_list_changes(conn: asyncpg.Connection,
                            rows: Sequence[tuple[str, str, ListChanged]]) -> None:
    """(event id, list kind, change)."""
    if rows:
        await conn.execute(
            "INSERT INTO list_facts (event_id, list, kind, op, entry_id, subject_type, since,"
            " basis) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            "  $5::uuid[], $6::text[], $7::date[], $8::jsonb[]) ON CONFLICT DO NOTHING",
            [event_id for event_id, _, _ in rows], [c.list for _, _, c in rows],
            [kind for _, kind, _ in rows], [c.op for _, _, c in rows],
            [c.entry_id for _, _, c in rows], [c.subject.type for _, _, c in rows],
            [c.since for _, _, c in rows],
            # Each basis as its JSON text: a list here would make a two-dimensional array.
            [Json(json.dumps([b.model_dump() for b in c.basis], ensure_ascii=False))
             for _, _, c in rows])


async def save_objections(conn: asyncpg.Connection, routed: Sequence[ObjectionRouted]) -> None:
    if routed:
        await conn.execute(
            "INSERT INTO objection_facts (objection_id, kind, department, record_id, due_by,"
            " received_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
            "  $4::text[], $5::date[], $6::timestamptz[]) ON CONFLICT DO NOTHING",
            [o.objection_id for o in routed], [o.kind for o in routed],
            [o.record.department for o in routed], [o.record.record_id for o in routed],
            [o.due_by for o in routed], [o.received_at for o in routed])


async def save_closed(conn: asyncpg.Connection, closed: Sequence[ObjectionClosed]) -> None:
    if closed:
        await conn.execute(
            "INSERT INTO objection_closed_facts (objection_id, kind, department, decision,"
            " due_by, decided_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
            "  $4::text[], $5::date[], $6::timestamptz[]) ON CONFLICT DO NOTHING",
            [c.objection_id for c in closed], [c.kind for c in closed],
            [c.department for c in closed], [c.decision for c in closed],
            [c.due_by for c in closed], [c.decided_at for c in closed])


# --- early warning -------------------------------------------------------------------------


async def lock_counted(conn: asyncpg.Connection, records: Sequence[tuple[str, str]]
                       ) -> dict[tuple[str, str], dict[str, Counted]]:
    """What each record counts for now, per rule (locked for the batch)."""
    rows = await conn.fetch(
        'SELECT department, record_id, rule, district, "on", revision FROM warning_counted'
        " WHERE (department, record_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        " FOR UPDATE", [d for d, _ in records], [r for _, r in records])
    out: dict[tuple[str, str], dict[str, Counted]] = {}
    for r in rows:
        out.setdefault((r["department"], r["record_id"]), {})[r["rule"]] = Counted(
            r["district"], r["on"], r["revision"])
    return out


async def set_counted(conn: asyncpg.Connection,
                      counted: dict[tuple[str, str], dict[str, Counted]]) -> None:
    """What each (department, record id) counts for now, per rule: two statements for the
    batch (a statement per record was the stats service's largest cost, docs/performance.md
    "Statistics side-car")."""
    if not counted:
        return
    keys = list(counted)
    await conn.execute(
        "DELETE FROM warning_counted WHERE (department, record_id) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))",
        [d for d, _ in keys], [r for _, r in keys])
    rows = [(department, record_id, rule, c.district, c.on, c.revision)
            for (department, record_id), rules in counted.items() for rule, c in rules.items()]
    if rows:
        await conn.execute(
            'INSERT INTO warning_counted (department, record_id, rule, district, "on",'
            " revision) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            "  $5::timestamptz[], $6::int[])",
            *(list(column) for column in zip(*rows, strict=True)))


async def save_deltas(conn: asyncpg.Connection, deltas: Sequence[StatsDelta]) -> list[StatsDelta]:
    """Returns the deltas not stored before (those to send)."""
    if not deltas:
        return []
    stored = await conn.fetch(
        'INSERT INTO deltas (fact_id, district, measure, "on", delta)'
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],"
        "  $5::int[]) ON CONFLICT DO NOTHING RETURNING fact_id",
        [d.fact_id for d in deltas], [d.district for d in deltas], [d.measure for d in deltas],
        [d.on for d in deltas], [d.delta for d in deltas])
    new = {r["fact_id"] for r in stored}
    return [d for d in deltas if d.fact_id in new]


async def save_windows(conn: asyncpg.Connection, windows: Sequence[StatsWindow]) -> None:
    """The last count of each window (a compacted topic's latest value per key wins; in
    topic order the later one is the later count). One statement for the batch: each delta
    brings a snapshot of every window it falls in, most of them overwritten within the
    batch by the next delta of the same district."""
    last = {(w.district, w.measure, w.window.from_): w for w in windows}
    if not last:
        return
    rows = [(w.district, w.measure, w.window.from_, w.window.to, w.count, w.threshold)
            for w in last.values()]
    await conn.execute(
        "INSERT INTO windows (district, measure, window_from, window_to, count, threshold)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[],"
        "  $4::timestamptz[], $5::int[], $6::int[])"
        " ON CONFLICT (district, measure, window_from)"
        " DO UPDATE SET window_to = EXCLUDED.window_to, count = EXCLUDED.count,"
        " threshold = EXCLUDED.threshold, updated_at = now()",
        *(list(column) for column in zip(*rows, strict=True)))


async def save_warnings(conn: asyncpg.Connection, warnings: Sequence[StatsWarning]) -> None:
    if warnings:
        await conn.executemany(
            "INSERT INTO warnings (district, measure, window_from, window_to, count, threshold,"
            " status) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (district, measure, window_from) DO UPDATE SET"
            " window_to = EXCLUDED.window_to, count = EXCLUDED.count,"
            " threshold = EXCLUDED.threshold, status = EXCLUDED.status, updated_at = now()",
            [(w.district, w.measure, w.window.from_, w.window.to, w.count, w.threshold,
              w.status) for w in warnings])


async def current_warnings(conn: asyncpg.Connection, now: datetime) -> list[asyncpg.Record]:
    """Per (district, rule), the raised window containing `now` (the latest such)."""
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT DISTINCT ON (district, measure) district, measure, window_from, window_to,"
        " count, threshold FROM warnings WHERE status = 'raised' AND window_from <= $1"
        " AND $1 < window_to ORDER BY district, measure, window_from DESC", now)


async def window_drift(conn: asyncpg.Connection, closed_before: datetime,
                       since: datetime) -> dict[str, int]:
    """Per rule, the sum over closed windows (ended before `closed_before`, started after
    `since`) of |the window's count - the SQL count of its deltas|."""
    rows = await conn.fetch(
        'SELECT w.measure, sum(abs(w.count - coalesce((SELECT sum(d.delta) FROM deltas d'
        '  WHERE d.measure = w.measure AND d.district = w.district'
        '  AND d."on" >= w.window_from AND d."on" < w.window_to), 0))) AS drift'
        " FROM windows w WHERE w.window_to <= $1 AND w.window_from >= $2"
        " GROUP BY w.measure", closed_before, since)
    return {r["measure"]: int(r["drift"]) for r in rows}


# --- official figures ----------------------------------------------------------------------


async def district_counts(conn: asyncpg.Connection, start: date, end: date,
                          negative_items: Sequence[str]) -> list[asyncpg.Record]:
    """(district, subject type, what, count): negative records once per (department,
    record_id) at their latest revision, not withdrawn, decided in the period; list entries
    (ADD) whose `since` is in it, by their first basis record's district."""
    return await conn.fetch(  # type: ignore[no-any-return]
        "WITH latest AS (SELECT DISTINCT ON (department, record_id) * FROM record_facts"
        "  ORDER BY department, record_id, revision DESC)"
        " SELECT district, subject_type, 'negative_records' AS what, count(*) AS n"
        " FROM latest WHERE action = 'upsert' AND catalogue_item = ANY($3::text[])"
        " AND decided_on BETWEEN $1 AND $2 GROUP BY district, subject_type"
        " UNION ALL"
        " SELECT r.district, l.subject_type, l.kind || '_list_entries', count(*)"
        " FROM list_facts l LEFT JOIN record_facts r"
        "  ON r.department = l.basis -> 0 ->> 'department'"
        "  AND r.record_id = l.basis -> 0 ->> 'record_id'"
        "  AND r.revision = (l.basis -> 0 ->> 'revision')::int"
        " WHERE l.op = 'ADD' AND l.since BETWEEN $1 AND $2"
        " GROUP BY r.district, l.subject_type, l.kind",
        start, end, list(negative_items))


async def feedback_month(conn: asyncpg.Connection, start: datetime,
                         end: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT department, count(*) AS submissions,"
        " count(*) FILTER (WHERE status = 'accepted') AS accepted,"
        " count(*) FILTER (WHERE status = 'rejected') AS rejected,"
        " count(*) FILTER (WHERE status = 'duplicate') AS duplicates,"
        " count(*) FILTER (WHERE status = 'stale') AS stale"
        " FROM feedback_facts WHERE at >= $1 AND at < $2 GROUP BY department", start, end)


async def rejections_by_code(conn: asyncpg.Connection, start: datetime,
                             end: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT department, code, count(*) AS n FROM feedback_facts, unnest(error_codes) code"
        " WHERE status = 'rejected' AND at >= $1 AND at < $2 GROUP BY department, code",
        start, end)


async def first_deliveries(conn: asyncpg.Connection, start: datetime,
                           end: datetime) -> list[asyncpg.Record]:
    """Each record whose first accepted delivery is in the period: its department, item,
    decision day and when it was accepted."""
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT * FROM (SELECT DISTINCT ON (department, record_id) department, record_id,"
        "  catalogue_item, decided_on, accepted_at FROM record_facts WHERE action = 'upsert'"
        "  ORDER BY department, record_id, accepted_at, revision) f"
        " WHERE accepted_at >= $1 AND accepted_at < $2", start, end)


async def objections_month(conn: asyncpg.Connection, start: datetime,
                           end: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT department, 'received' AS what, count(*) AS n FROM objection_facts"
        " WHERE kind = 'objection' AND received_at >= $1 AND received_at < $2"
        " GROUP BY department"
        " UNION ALL SELECT department, 'upheld', count(*) FROM objection_closed_facts"
        " WHERE kind = 'objection' AND decision = 'upheld' AND decided_at >= $1"
        " AND decided_at < $2 GROUP BY department"
        " UNION ALL SELECT department, 'decided_late', count(*) FROM objection_closed_facts"
        " WHERE kind = 'objection' AND decided_at >= $1 AND decided_at < $2"
        " AND (decided_at AT TIME ZONE 'Asia/Shanghai')::date > due_by GROUP BY department",
        start, end)

"""The stats service's database: facts, the early warning's state, the windows' sink, and
the official figures as SQL over the facts."""

from __future__ import annotations

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

# --- facts -------------------------------------------------------------------------------


async def save_feedback(conn: asyncpg.Connection,
                        rows: Sequence[tuple[str, str, RecordFeedback, datetime]]) -> None:
    """(event id, department, feedback, when)."""
    if rows:
        await conn.executemany(
            "INSERT INTO feedback_facts (event_id, department, status, error_codes, record_id,"
            " revision, at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            [(event_id, dept, f.status, sorted({e.code for e in f.errors}), f.record_id,
              f.revision, at) for event_id, dept, f, at in rows])


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
        await conn.executemany(
            "INSERT INTO list_facts (event_id, list, kind, op, entry_id, subject_type, since,"
            " basis) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            [(event_id, c.list, kind, c.op, c.entry_id, c.subject.type, c.since,
              [b.model_dump() for b in c.basis]) for event_id, kind, c in rows])


async def save_objections(conn: asyncpg.Connection, routed: Sequence[ObjectionRouted]) -> None:
    if routed:
        await conn.executemany(
            "INSERT INTO objection_facts (objection_id, kind, department, record_id, due_by,"
            " received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            [(o.objection_id, o.kind, o.record.department, o.record.record_id, o.due_by,
              o.received_at) for o in routed])


async def save_closed(conn: asyncpg.Connection, closed: Sequence[ObjectionClosed]) -> None:
    if closed:
        await conn.executemany(
            "INSERT INTO objection_closed_facts (objection_id, kind, department, decision,"
            " due_by, decided_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            [(c.objection_id, c.kind, c.department, c.decision, c.due_by, c.decided_at)
             for c in closed])


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


async def set_counted(conn: asyncpg.Connection, department: str, record_id: str,
                      counted: dict[str, Counted]) -> None:
    await conn.execute("DELETE FROM warning_counted WHERE department = $1 AND record_id = $2",
                       department, record_id)
    if counted:
        await conn.executemany(
            'INSERT INTO warning_counted (department, record_id, rule, district, "on",'
            " revision) VALUES ($1, $2, $3, $4, $5, $6)",
            [(department, record_id, rule, c.district, c.on, c.revision)
             for rule, c in counted.items()])


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
    topic order the later one is the later count)."""
    if windows:
        await conn.executemany(
            "INSERT INTO windows (district, measure, window_from, window_to, count, threshold)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (district, measure, window_from)"
            " DO UPDATE SET window_to = EXCLUDED.window_to, count = EXCLUDED.count,"
            " threshold = EXCLUDED.threshold, updated_at = now()",
            [(w.district, w.measure, w.window.from_, w.window.to, w.count, w.threshold)
             for w in windows])


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

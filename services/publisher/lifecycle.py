"""The publisher's own bookkeeping of the lifecycle: decisions whose listing ran its term,
notices that supersede others or name persons to erase later, the changes feed as the
public may read it, and what the erasure ledger says about incoming snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import asyncpg

from services.publisher.domain import ListEffects, Served
from shared import purge
from shared.contract import SubjectChanged


async def served_decisions(conn: asyncpg.Connection,
                           subject_keys: Sequence[str]) -> dict[str, Served]:
    rows = await conn.fetch(
        "SELECT list, subject_key, department, record_id, decided_on FROM served_decisions"
        " WHERE subject_key = ANY($1::text[])", list(subject_keys))
    out: dict[str, dict[str, set[tuple[str, str, date]]]] = {}
    for r in rows:
        out.setdefault(r["subject_key"], {}).setdefault(r["list"], set()).add(
            (r["department"], r["record_id"], r["decided_on"]))
    return dict(out)


async def save(conn: asyncpg.Connection, fx: ListEffects) -> None:
    """What `store.save_effects` does not keep: served decisions, which notice supersedes
    which, and when related persons leave a notice."""
    if fx.served:
        await conn.execute(
            "INSERT INTO served_decisions (list, subject_key, department, record_id, decided_on)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[])"
            " ON CONFLICT DO NOTHING",
            *(list(column) for column in zip(*fx.served, strict=True)))
    links = [(n.notice_id, n.supersedes, fx.related_until.get(n.notice_id))
             for _, n, _ in fx.notices
             if n.supersedes is not None or n.notice_id in fx.related_until]
    if links:
        # A notice just written holds them already (store._insert_notices); one stored
        # before under the same id (the same cause again) is brought in line.
        await conn.execute(
            "UPDATE notices n SET supersedes = l.supersedes, related_until = l.until"
            " FROM unnest($1::uuid[], $2::uuid[], $3::date[]) AS l(id, supersedes, until)"
            " WHERE n.notice_id = l.id AND (n.supersedes IS DISTINCT FROM l.supersedes"
            "  OR n.related_until IS DISTINCT FROM l.until)",
            [i for i, _, _ in links], [sp for _, sp, _ in links], [u for _, _, u in links])


async def erased_counts(conn: asyncpg.Connection, key: bytes,
                        keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Entries (list, subject) had before the subject was erased: a subject listed again
    numbers its entries on, so no new notice reuses an id of the erased past."""
    counters = await purge.subject_counters(conn, key, {k for _, k in keys})
    out = {}
    for list_name, subject_key in keys:
        n = int((counters.get(subject_key) or {}).get("entries", {}).get(list_name, 0))
        if n:
            out[(list_name, subject_key)] = n
    return out


async def without_erased(conn: asyncpg.Connection, key: bytes,
                         snapshots: Sequence[SubjectChanged]
                         ) -> tuple[list[SubjectChanged], int]:
    """Snapshots with the records the ledger says were erased taken out (a replay of the
    archive's topic, a snapshot that was on its way), and how many were; a subject with
    nothing else left is dropped whole."""
    erased = await purge.erased_records(
        conn, key, {(r.department, r.record_id) for s in snapshots for r in s.records})
    if not erased:
        return list(snapshots), 0
    kept, dropped = [], 0
    for s in snapshots:
        records = [r for r in s.records if (r.department, r.record_id) not in erased]
        dropped += len(s.records) - len(records)
        if len(records) == len(s.records):
            kept.append(s)
        elif records:
            kept.append(s.model_copy(update={"records": records}))
    return kept, dropped


async def feed(conn: asyncpg.Connection, list_name: str, after_seq: int,
               limit: int) -> list[asyncpg.Record]:
    """The changes feed with the state of each row's entry (the public names a subject only
    while its entry is on the list, and a while after)."""
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT c.seq, c.op, c.entry_id::text, c.body, c.at, e.status, e.until"
        " FROM list_changes c LEFT JOIN list_entries e USING (entry_id)"
        " WHERE c.list = $1 AND c.seq > $2 ORDER BY c.seq LIMIT $3",
        list_name, after_seq, limit)


async def scrub_related(conn: asyncpg.Connection, today: date, limit: int) -> int:
    """Erase the persons named beside a notice's subject (a legal representative) once its
    basis' acts ended 5 years ago (征信业管理条例 art. 16); the notice itself stays."""
    status = await conn.execute(
        "UPDATE notices SET related_until = NULL,"
        "  body = (body::jsonb || '{\"related_subjects\": []}'::jsonb)::json"
        " WHERE notice_id IN (SELECT notice_id FROM notices WHERE related_until <= $1"
        "  ORDER BY related_until LIMIT $2 FOR UPDATE SKIP LOCKED)", today, limit)
    return int(status.split()[-1])

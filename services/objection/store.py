"""The objection service's database: objections and their timelines, the records they may
name (a projection of credit.records.accepted), and the public forms' rate windows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from services.objection.domain import KnownRecord
from shared import clock
from shared.contract import SubjectRef


async def create(conn: asyncpg.Connection, *, objection_id: str, kind: str, subject: SubjectRef,
                 department: str, record_id: str, revision: int, reason: str, contact: str,
                 requester: str, token_hash: str, due_by: date, received_at: datetime) -> bool:
    """Store a new open objection; False (nothing stored) when this requester already has
    one open of this kind about the record."""
    created = await conn.fetchval(
        "INSERT INTO objections (objection_id, kind, subject_key, subject, department, record_id,"
        " revision, reason, contact, requester, token_hash, status, due_by, received_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'routed', $12, $13)"
        " ON CONFLICT (kind, department, record_id, requester) WHERE status = 'routed'"
        " DO NOTHING RETURNING true",
        objection_id, kind, subject.key, subject.model_dump(mode="json"), department, record_id,
        revision, reason, contact, requester, token_hash, due_by, received_at)
    if not created:
        return False
    await add_event(conn, objection_id, "routed", f"已转交{department}核查")
    return True


async def open_objection(conn: asyncpg.Connection, kind: str, department: str, record_id: str,
                         requester: str) -> str | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT objection_id::text FROM objections WHERE kind = $1 AND department = $2"
        " AND record_id = $3 AND requester = $4 AND status = 'routed'",
        kind, department, record_id, requester)


async def known_record(conn: asyncpg.Connection, department: str,
                       record_id: str) -> KnownRecord | None:
    row = await conn.fetchrow(
        "SELECT subject_type, subject_id, revision, catalogue_item, withdrawn"
        " FROM known_records WHERE department = $1 AND record_id = $2", department, record_id)
    if row is None:
        return None
    return KnownRecord(
        department=department, record_id=record_id,
        subject=SubjectRef(type=row["subject_type"], id=row["subject_id"]),
        revision=row["revision"], catalogue_item=row["catalogue_item"],
        withdrawn=row["withdrawn"])


async def remember_records(conn: asyncpg.Connection, records: Sequence[KnownRecord]) -> None:
    """Upsert records (one row per record in `records`): a higher revision replaces what is
    kept, a lower or equal one (a replay, a late delivery) changes nothing."""
    if not records:
        return
    await conn.execute(
        "INSERT INTO known_records (department, record_id, subject_type, subject_id, revision,"
        " catalogue_item, withdrawn, purge_on)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],"
        "   $6::text[], $7::bool[], $8::date[])"
        " ON CONFLICT (department, record_id) DO UPDATE SET"
        "   subject_type = EXCLUDED.subject_type, subject_id = EXCLUDED.subject_id,"
        "   revision = EXCLUDED.revision,"
        "   catalogue_item = COALESCE(EXCLUDED.catalogue_item, known_records.catalogue_item),"
        "   withdrawn = EXCLUDED.withdrawn,"
        "   purge_on = COALESCE(EXCLUDED.purge_on, known_records.purge_on)"
        " WHERE known_records.revision < EXCLUDED.revision",
        [r.department for r in records], [r.record_id for r in records],
        [r.subject.type for r in records], [r.subject.id for r in records],
        [r.revision for r in records], [r.catalogue_item for r in records],
        [r.withdrawn for r in records], [r.purge_on for r in records])


async def mark_withdrawn(conn: asyncpg.Connection, department: str, record_id: str) -> None:
    """An upheld objection withdrew the record: no new objection can name it (a later
    revision from the department brings it back)."""
    await conn.execute(
        "UPDATE known_records SET withdrawn = true WHERE department = $1 AND record_id = $2",
        department, record_id)


async def hit(conn: asyncpg.Connection, bucket: str, window_start: datetime,
              window_end: datetime) -> int:
    """Count one request in the bucket's window; returns the window's count with it. One
    statement, so concurrent processes count each request once."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO rate_windows (bucket, window_start, window_end, hits)"
        " VALUES ($1, $2, $3, 1)"
        " ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_windows.hits + 1"
        " RETURNING hits", bucket, window_start, window_end)


async def forget_windows(conn: asyncpg.Connection, now: datetime) -> int:
    status = await conn.execute("DELETE FROM rate_windows WHERE window_end < $1", now)
    return int(status.split()[-1])


async def add_event(conn: asyncpg.Connection, objection_id: str, status: str,
                    note: str | None) -> None:
    await conn.execute(
        "INSERT INTO objection_events (objection_id, status, note) VALUES ($1, $2, $3)",
        objection_id, status, note)


async def lock(conn: asyncpg.Connection, objection_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT objection_id::text, kind, subject, department, record_id, status, due_by,"
        " token_hash, received_at FROM objections WHERE objection_id = $1::uuid FOR UPDATE",
        objection_id)


async def set_decided(conn: asyncpg.Connection, objection_id: str, status: str,
                      note: str) -> None:
    await conn.execute(
        # The service's clock (shared/clock.py): the contact is erased counting from it.
        "UPDATE objections SET status = $2, decided_at = $3 WHERE objection_id = $1::uuid",
        objection_id, status, clock.now())
    await add_event(conn, objection_id, status, note)


async def with_timeline(conn: asyncpg.Connection, objection_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT objection_id::text, kind, status, due_by, department, record_id, token_hash"
        " FROM objections WHERE objection_id = $1::uuid", objection_id)
    if row is None:
        return None
    events = await conn.fetch(
        "SELECT status, note, at FROM objection_events WHERE objection_id = $1::uuid"
        " ORDER BY id", objection_id)
    return {**dict(row), "timeline": [dict(e) for e in events]}


async def mark_overdue(conn: asyncpg.Connection, today: date) -> list[str]:
    """Objections still undecided after their due date, marked once, with a timeline
    entry; returns their ids."""
    rows = await conn.fetch(
        "UPDATE objections SET overdue_at = now() WHERE status = 'routed' AND due_by < $1"
        " AND overdue_at IS NULL RETURNING objection_id::text, department", today)
    for r in rows:
        await add_event(conn, r["objection_id"], "overdue",
                        f"{r['department']}未在法定期限内答复")
    return [r["objection_id"] for r in rows]


async def count_overdue(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM objections WHERE status = 'routed' AND overdue_at IS NOT NULL"))

"""The objection service's database: objections and their timelines."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

from shared.contract import SubjectRef


async def create(conn: asyncpg.Connection, *, objection_id: str, kind: str, subject: SubjectRef,
                 department: str, record_id: str, reason: str, contact: str, token_hash: str,
                 due_by: date, received_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO objections (objection_id, kind, subject_key, subject, department, record_id,"
        " reason, contact, token_hash, status, due_by, received_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'routed', $10, $11)",
        objection_id, kind, subject.key, subject.model_dump(mode="json"), department, record_id,
        reason, contact, token_hash, due_by, received_at)
    await add_event(conn, objection_id, "routed", f"已转交{department}核查")


async def add_event(conn: asyncpg.Connection, objection_id: str, status: str,
                    note: str | None) -> None:
    await conn.execute(
        "INSERT INTO objection_events (objection_id, status, note) VALUES ($1, $2, $3)",
        objection_id, status, note)


async def lock(conn: asyncpg.Connection, objection_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT objection_id::text, kind, subject, department, record_id, status, due_by,"
        " token_hash FROM objections WHERE objection_id = $1::uuid FOR UPDATE", objection_id)


async def set_decided(conn: asyncpg.Connection, objection_id: str, status: str,
                      note: str) -> None:
    await conn.execute(
        "UPDATE objections SET status = $2, decided_at = now() WHERE objection_id = $1::uuid",
        objection_id, status)
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

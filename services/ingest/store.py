"""Ingest's database: latest revision per record, and every delivery's fate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

RecordKey = tuple[str, str]


async def lock_current_revisions(conn: asyncpg.Connection,
                                 keys: Sequence[RecordKey]) -> dict[RecordKey, int]:
    rows = await conn.fetch(
        "SELECT department, record_id, revision FROM records"
        " WHERE (department, record_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        " FOR UPDATE",
        [d for d, _ in keys], [r for _, r in keys])
    return {(r["department"], r["record_id"]): r["revision"] for r in rows}


async def commitment_states(conn: asyncpg.Connection, keys: Sequence[RecordKey]
                            ) -> dict[RecordKey, tuple[str, str | None]]:
    """(action, commitment state) of the latest accepted revision of each record held (read
    once the records are locked by `lock_current_revisions`)."""
    rows = await conn.fetch(
        "SELECT department, record_id, action, commitment_state FROM records"
        " WHERE (department, record_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [d for d, _ in keys], [r for _, r in keys])
    return {(r["department"], r["record_id"]): (r["action"], r["commitment_state"])
            for r in rows}


async def save_revisions(conn: asyncpg.Connection,
                         rows: Sequence[tuple[str, str, int, str, str, datetime, str | None]]
                         ) -> None:
    """Upsert (department, record_id, revision, subject_key, action, accepted_at,
    commitment_state)."""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        "INSERT INTO records (department, record_id, revision, subject_key, action, accepted_at,"
        " commitment_state)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[],"
        " $6::timestamptz[], $7::text[])"
        " ON CONFLICT (department, record_id) DO UPDATE SET revision = EXCLUDED.revision,"
        " subject_key = EXCLUDED.subject_key, action = EXCLUDED.action,"
        " accepted_at = EXCLUDED.accepted_at, commitment_state = EXCLUDED.commitment_state"
        " WHERE records.revision < EXCLUDED.revision",
        *[list(c) for c in columns])


async def log_submissions(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]],
                          received_at: datetime) -> None:
    """(department, topic, partition, offset, channel, event_id, record_id, revision, status,
    errors, subject_key), received at `received_at`: the time an accepted record's
    provenance states, so that the department finds the same time in its audit."""
    if not rows:
        return
    await conn.copy_records_to_table(
        "submissions",
        columns=["department", "topic", "partition", "offset", "channel", "event_id",
                 "record_id", "revision", "status", "errors", "subject_key", "received_at"],
        records=[(*r, received_at) for r in rows])


async def submission_history(conn: asyncpg.Connection, department: str,
                             record_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT channel, event_id, revision, status, errors, received_at FROM submissions"
        " WHERE department = $1 AND record_id = $2 ORDER BY id", department, record_id)
    return [dict(r) for r in rows]

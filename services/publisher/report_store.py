"""The credit reports' table (migration 091): the PDF as served, its hash and its code."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Issued:
    report_id: str
    code: str
    subject_key: str
    subject: dict[str, Any]
    purpose: str
    own: bool
    issued_at: datetime
    data_as_of: datetime
    records: Sequence[str]
    sha256: str
    pdf: bytes


async def data_as_of(conn: asyncpg.Connection, subject_key: str) -> datetime | None:
    """When the publisher last took the subject's archive from the registry."""
    at: datetime | None = await conn.fetchval(
        "SELECT updated_at FROM subjects WHERE subject_key = $1", subject_key)
    return at


async def insert(conn: asyncpg.Connection, r: Issued) -> None:
    await conn.execute(
        "INSERT INTO credit_reports (report_id, code, subject_key, subject, purpose, own,"
        " issued_at, data_as_of, records, sha256, pdf)"
        " VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        r.report_id, r.code, r.subject_key, r.subject, r.purpose, r.own, r.issued_at,
        r.data_as_of, list(r.records), r.sha256, r.pdf)


async def pdf(conn: asyncpg.Connection, report_id: uuid.UUID) -> bytes | None:
    found: bytes | None = await conn.fetchval(
        "SELECT pdf FROM credit_reports WHERE report_id = $1", report_id)
    return found


async def by_code(conn: asyncpg.Connection, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT report_id::text AS report_id, subject::text AS subject, issued_at, sha256"
        " FROM credit_reports WHERE code = $1", code)


async def erase(conn: asyncpg.Connection, subject_key: str, records: Sequence[str],
                whole: bool) -> int:
    """The subject's reports that show an erased record (a whole subject: all of them)."""
    done = await conn.execute(
        "DELETE FROM credit_reports WHERE subject_key = $1 AND ($3 OR records && $2::text[])",
        subject_key, list(records), whole)
    return int(done.split()[-1])


async def expire(conn: asyncpg.Connection, before: datetime, batch: int) -> int:
    """Reports issued before `before` (retention), at most `batch` at a time."""
    done = await conn.execute(
        "DELETE FROM credit_reports WHERE report_id IN (SELECT report_id FROM credit_reports"
        " WHERE issued_at < $1 ORDER BY issued_at LIMIT $2)", before, batch)
    return int(done.split()[-1])

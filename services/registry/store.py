"""The registry's database: subjects, their records and every change of a record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from shared import disclosure
from shared.contract import ArchivedRecord, SubjectRef
from shared.db import Json

RecordKey = tuple[str, str]


@dataclass(frozen=True)
class StoredRecord:
    """A record and its JSON as stored (`json` keeps the text it was given): the same bytes
    go into snapshots, never serialized again."""

    record: ArchivedRecord
    body: str


async def lock_records(conn: asyncpg.Connection,
                       keys: Sequence[RecordKey]) -> dict[RecordKey, tuple[str, StoredRecord]]:
    """Current records by (department, record_id), with their subject key, locked."""
    rows = await conn.fetch(
        "SELECT department, record_id, subject_key, body::text FROM records"
        " WHERE (department, record_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        " FOR UPDATE",
        [d for d, _ in keys], [r for _, r in keys])
    return {(r["department"], r["record_id"]):
            (r["subject_key"], StoredRecord(ArchivedRecord.model_validate_json(r["body"]),
                                            r["body"])) for r in rows}


async def upsert_subjects(conn: asyncpg.Connection, subjects: Sequence[tuple[SubjectRef, int]]
                          ) -> dict[str, tuple[SubjectRef, int]]:
    """Create or rename subjects and add to their version the number of changes made to
    each; returns each subject as stored now, with its new version."""
    rows = await conn.fetch(
        "INSERT INTO subjects (subject_key, type, id, name, version)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])"
        " ON CONFLICT (subject_key) DO UPDATE SET version = subjects.version + EXCLUDED.version,"
        "   name = COALESCE(EXCLUDED.name, subjects.name), updated_at = now()"
        " RETURNING subject_key, type, id, name, version",
        [s.key for s, _ in subjects], [s.type for s, _ in subjects],
        [s.id for s, _ in subjects], [s.name for s, _ in subjects],
        [n for _, n in subjects])
    return {r["subject_key"]: (SubjectRef(type=r["type"], id=r["id"], name=r["name"]),
                               r["version"]) for r in rows}


async def other_records(conn: asyncpg.Connection, subject_keys: Sequence[str],
                        but: Sequence[RecordKey]) -> dict[str, list[StoredRecord]]:
    """The stored records of the subjects, except those named in `but` (the batch holds
    their state), per subject."""
    rows = await conn.fetch(
        "SELECT department, record_id, subject_key, body::text FROM records"
        " WHERE subject_key = ANY($1::text[])"
        " AND (department, record_id) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        list(subject_keys), [d for d, _ in but], [r for _, r in but])
    out: dict[str, list[StoredRecord]] = {}
    for r in rows:
        out.setdefault(r["subject_key"], []).append(
            StoredRecord(ArchivedRecord.model_validate_json(r["body"]), r["body"]))
    return out


async def save_records(conn: asyncpg.Connection,
                       rows: Sequence[tuple[str, ArchivedRecord, str, str, str]],
                       today: date) -> None:
    """Upsert (subject_key, record, its JSON, cause, event_id) and append each to the
    history; the JSON is the record's one serialization (also in the snapshot). The display
    columns (`public_until`, `display_ended`: a record already past its display is marked
    swept, and the snapshot of this very change says so) are written by the same statement:
    a second UPDATE of the rows just inserted wrote each row and its indexes twice."""
    if not rows:
        return
    latest = {(r.department, r.record_id): (k, r, body) for k, r, body, _, _ in rows}
    await conn.execute(
        "INSERT INTO records (department, record_id, subject_key, revision, body,"
        " public_until, display_ended)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::json[],"
        " $6::date[], $7::bool[])"
        " ON CONFLICT (department, record_id) DO UPDATE SET subject_key = EXCLUDED.subject_key,"
        " revision = EXCLUDED.revision, body = EXCLUDED.body, updated_at = now(),"
        " public_until = EXCLUDED.public_until, display_ended = EXCLUDED.display_ended",
        [d for d, _ in latest], [i for _, i in latest], [k for k, _, _ in latest.values()],
        [r.revision for _, r, _ in latest.values()],
        [Json(body) for _, _, body in latest.values()],
        [r.public_until for _, r, _ in latest.values()],
        [not disclosure.is_displayed(r, today) for _, r, _ in latest.values()])
    await conn.copy_records_to_table(
        "record_history", columns=["department", "record_id", "revision", "cause", "event_id",
                                   "body"],
        records=[(r.department, r.record_id, r.revision, cause, event_id, Json(body))
                 for _, r, body, cause, event_id in rows])


async def archive(conn: asyncpg.Connection, subject_key: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM subjects WHERE subject_key = $1", subject_key)
    if row is None:
        return None
    records = await conn.fetch("SELECT body FROM records WHERE subject_key = $1", subject_key)
    return {**dict(row), "records": [r["body"] for r in records]}

"""The objection service's database: objections and their timelines, the records they may
name (a projection of credit.records.accepted), and the public forms' rate windows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from services.objection.domain import KnownRecord, RecordFacts
from shared import clock
from shared.contract import SubjectRef
from shared.identifiers import is_uuid


async def create(conn: asyncpg.Connection, *, objection_id: str, kind: str, subject: SubjectRef,
                 department: str, record_id: str, revision: int, reason: str, contact: str,
                 requester: str, token_hash: str, due_by: date, received_at: datetime,
                 commitment: dict[str, Any] | None = None,
                 obligations: dict[str, Any] | None = None,
                 steps: Sequence[tuple[str, str]] = (), holds_flag: bool = False) -> bool:
    """Store a new open objection; False (nothing stored) when this requester already has
    one open of this kind about the record. `steps` are timeline entries before the routing
    (a repair request's acceptance and check); `holds_flag`: it marks the record disputed."""
    created = await conn.fetchval(
        "INSERT INTO objections (objection_id, kind, subject_key, subject, department, record_id,"
        " revision, reason, contact, requester, token_hash, status, due_by, received_at,"
        " commitment, obligations, holds_flag)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'routed', $12, $13, $14, $15,"
        " $16)"
        " ON CONFLICT (kind, department, record_id, requester) WHERE status = 'routed'"
        " DO NOTHING RETURNING true",
        objection_id, kind, subject.key, subject.model_dump(mode="json"), department, record_id,
        revision, reason, contact, requester, token_hash, due_by, received_at, commitment,
        obligations, holds_flag)
    if not created:
        return False
    for status, note in steps:
        await add_event(conn, objection_id, status, note, received_at)
    await add_event(conn, objection_id, "routed", f"已转交{department}核查", received_at)
    return True


async def open_request(conn: asyncpg.Connection, kind: str, department: str, record_id: str,
                       requester: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT objection_id::text, status, due_by, result_by FROM objections WHERE kind = $1"
        " AND department = $2 AND record_id = $3 AND requester = $4 AND status = 'routed'",
        kind, department, record_id, requester)


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


async def lock_known_records(conn: asyncpg.Connection,
                             keys: Iterable[tuple[str, str]]) -> None:
    """The rows of the records a batch is about, before it reads the erasure ledger: an
    erasure holds its records' rows until it commits (`lock_known_of_subject`), so the
    ledger the batch reads after the wait has them. In key order, one probe per key."""
    ordered = sorted(set(keys))
    if not ordered:
        return
    await conn.execute(
        "SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(department, record_id)"
        " CROSS JOIN LATERAL (SELECT 1 FROM known_records r WHERE r.department = k.department"
        "  AND r.record_id = k.record_id FOR NO KEY UPDATE) AS l",
        [d for d, _ in ordered], [r for _, r in ordered])


async def lock_known_of_subject(conn: asyncpg.Connection, subject_key: str) -> None:
    """What an erasure takes first: the rows of every record known of the subject, in the
    order a batch takes them (`lock_known_records`), so that a batch's writes about the
    subject land wholly before or wholly after the erasure, and the two cannot deadlock."""
    subject_type, _, identifier = subject_key.partition(":")
    await conn.execute(
        "SELECT 1 FROM known_records WHERE subject_type = $1 AND subject_id = $2"
        " ORDER BY department, record_id FOR UPDATE", subject_type, identifier)


async def remember_records(conn: asyncpg.Connection,
                           records: Sequence[KnownRecord]) -> set[tuple[str, str]]:
    """Upsert records (one row per record in `records`): a higher revision replaces what is
    kept, a lower or equal one (a replay, a late delivery) changes nothing. Returns the
    (department, record_id) of the rows written."""
    if not records:
        return set()
    rows = await conn.fetch(
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
        " WHERE known_records.revision < EXCLUDED.revision"
        " RETURNING department, record_id",
        [r.department for r in records], [r.record_id for r in records],
        [r.subject.type for r in records], [r.subject.id for r in records],
        [r.revision for r in records], [r.catalogue_item for r in records],
        [r.withdrawn for r in records], [r.purge_on for r in records])
    return {(r["department"], r["record_id"]) for r in rows}


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
                    note: str | None, at: datetime | None = None) -> None:
    await conn.execute(
        "INSERT INTO objection_events (objection_id, status, note, at) VALUES ($1, $2, $3, $4)",
        objection_id, status, note, at or clock.now())


async def lock_objections(conn: asyncpg.Connection, objection_ids: Iterable[str]) -> None:
    """The rows of the objections a batch's decisions are about, before it reads the erasure
    ledger (as `lock_known_records`): an erasure holds them until it commits."""
    ordered = sorted({i for i in objection_ids if is_uuid(i)})
    if not ordered:
        return
    await conn.execute(
        "SELECT 1 FROM unnest($1::uuid[]) AS k(objection_id) CROSS JOIN LATERAL"
        " (SELECT 1 FROM objections o WHERE o.objection_id = k.objection_id"
        "  FOR NO KEY UPDATE) AS l", ordered)


async def record_of(conn: asyncpg.Connection, objection_id: str) -> tuple[str, str] | None:
    """(department, record_id) an objection is about, read without a lock."""
    row = await conn.fetchrow("SELECT department, record_id FROM objections"
                              " WHERE objection_id = $1::uuid", objection_id)
    return (row["department"], row["record_id"]) if row is not None else None


async def lock(conn: asyncpg.Connection, objection_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT objection_id::text, kind, subject, department, record_id, revision, status,"
        " due_by, token_hash, received_at, commitment, holds_flag FROM objections"
        " WHERE objection_id = $1::uuid FOR UPDATE",
        objection_id)


async def set_decided(conn: asyncpg.Connection, objection_id: str, status: str,
                      note: str, result_by: date | None = None,
                      correction_awaited: bool = False) -> None:
    """The decision; an objection awaiting its correction goes on holding the flag."""
    await conn.execute(
        # The service's clock (shared/clock.py): the contact is erased counting from it.
        "UPDATE objections SET status = $2, decided_at = $3, result_by = $4,"
        " correction_awaited = $5, holds_flag = $5 WHERE objection_id = $1::uuid",
        objection_id, status, clock.now(), result_by, correction_awaited)
    await add_event(conn, objection_id, status, note)


async def flag_held(conn: asyncpg.Connection, department: str, record_id: str) -> bool:
    """Whether an objection still keeps the record disputed (after this transaction's own
    changes: the deciding objection's has been let go)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT EXISTS (SELECT 1 FROM objections WHERE department = $1 AND record_id = $2"
        " AND holds_flag)", department, record_id)


async def rejected_on(conn: asyncpg.Connection, department: str, record_id: str,
                      revision: int) -> bool:
    """Whether the department has examined this revision of the record (or a later one) on
    an objection and rejected it."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT EXISTS (SELECT 1 FROM objections WHERE department = $1 AND record_id = $2"
        " AND kind = 'objection' AND status = 'rejected' AND coalesce(revision, 0) >= $3)",
        department, record_id, revision)


async def corrections_arrived(conn: asyncpg.Connection, records: Sequence[KnownRecord]
                              ) -> list[tuple[str, KnownRecord]]:
    """The upheld objections awaiting a correction that these newly kept revisions bring (a
    revision above the one objected to), each with its record; they await it no longer."""
    if not records:
        return []
    by_key = {(r.department, r.record_id): r for r in records}
    rows = await conn.fetch(
        "UPDATE objections o SET correction_awaited = false, holds_flag = false"
        " FROM unnest($1::text[], $2::text[], $3::int[]) AS k(department, record_id, revision)"
        " WHERE o.correction_awaited AND o.department = k.department"
        "  AND o.record_id = k.record_id AND coalesce(o.revision, 0) < k.revision"
        " RETURNING o.objection_id::text, o.department, o.record_id",
        [r.department for r in records], [r.record_id for r in records],
        [r.revision for r in records])
    return [(r["objection_id"], by_key[(r["department"], r["record_id"])]) for r in rows]


async def with_timeline(conn: asyncpg.Connection, objection_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT objection_id::text, kind, status, due_by, department, record_id, token_hash,"
        " subject, received_at, decided_at, overdue_at, result_by"
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
        "UPDATE objections SET overdue_at = $2 WHERE status = 'routed' AND due_by < $1"
        " AND overdue_at IS NULL RETURNING objection_id::text, department", today, clock.now())
    for r in rows:
        await add_event(conn, r["objection_id"], "overdue",
                        f"{r['department']}未在法定期限内答复")
    return [r["objection_id"] for r in rows]


async def count_overdue(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM objections WHERE status = 'routed' AND overdue_at IS NOT NULL"))


# --- what the registry says of records (credit.subjects.changed) ---------------------------


async def remember_facts(conn: asyncpg.Connection, facts: Sequence[RecordFacts]) -> None:
    """Upsert each record's facts: a higher revision wins, and at the same revision a later
    snapshot of the same subject (a flag lifted, a repair granted)."""
    if not facts:
        return
    await conn.execute(
        "INSERT INTO record_facts (department, record_id, subject_key, revision, version,"
        " status, catalogue_item, repair_from, public_until)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[],"
        "   $6::text[], $7::text[], $8::date[], $9::date[])"
        " ON CONFLICT (department, record_id) DO UPDATE SET"
        "   subject_key = EXCLUDED.subject_key, revision = EXCLUDED.revision,"
        "   version = EXCLUDED.version, status = EXCLUDED.status,"
        "   catalogue_item = EXCLUDED.catalogue_item, repair_from = EXCLUDED.repair_from,"
        "   public_until = EXCLUDED.public_until"
        " WHERE record_facts.revision < EXCLUDED.revision"
        "   OR (record_facts.revision = EXCLUDED.revision"
        "       AND record_facts.subject_key = EXCLUDED.subject_key"
        "       AND record_facts.version < EXCLUDED.version)",
        [f.department for f in facts], [f.record_id for f in facts],
        [f.subject_key for f in facts], [f.revision for f in facts],
        [f.version for f in facts], [f.status for f in facts],
        [f.catalogue_item for f in facts], [f.repair_from for f in facts],
        [f.public_until for f in facts])


async def record_facts(conn: asyncpg.Connection, department: str,
                       record_id: str) -> RecordFacts | None:
    row = await conn.fetchrow(
        "SELECT department, record_id, subject_key, revision, version, status, catalogue_item,"
        " repair_from, public_until FROM record_facts WHERE department = $1 AND record_id = $2",
        department, record_id)
    return RecordFacts(**dict(row)) if row else None


async def repairs_passed_on(conn: asyncpg.Connection, objection_ids: Sequence[str]) -> list[str]:
    """Granted repairs that the registry now shows in force: their result has been passed
    on. Returns the ids marked now (each once)."""
    if not objection_ids:
        return []
    rows = await conn.fetch(
        "UPDATE objections SET passed_on_at = $2 WHERE objection_id = ANY($1::uuid[])"
        " AND kind = 'repair' AND status = 'upheld' AND passed_on_at IS NULL"
        " RETURNING objection_id::text", list(objection_ids), clock.now())
    ids = [r["objection_id"] for r in rows]
    for objection_id in ids:
        await add_event(conn, objection_id, "passed_on",
                        "修复结果已反馈：该信息已停止公示、共享和惩戒")
    return ids


async def passing_on_overdue(conn: asyncpg.Connection, today: date) -> list[str]:
    """Granted repairs whose result was not passed on by `result_by`, marked once."""
    rows = await conn.fetch(
        "UPDATE objections SET overdue_at = $2 WHERE kind = 'repair' AND status = 'upheld'"
        " AND passed_on_at IS NULL AND result_by < $1 AND overdue_at IS NULL"
        " RETURNING objection_id::text", today, clock.now())
    for r in rows:
        await add_event(conn, r["objection_id"], "overdue", "修复结果未在规定期限内反馈")
    return [r["objection_id"] for r in rows]


# --- complaints (投诉) ------------------------------------------------------------------


async def create_complaint(conn: asyncpg.Connection, *, complaint_id: str, about_kind: str,
                           about: dict[str, Any], about_key: str, subject: SubjectRef | None,
                           department: str | None, text: str, contact: str, requester: str,
                           token_hash: str, due_by: date, received_at: datetime) -> bool:
    created = await conn.fetchval(
        "INSERT INTO complaints (complaint_id, about_kind, about, about_key, subject_key,"
        " subject, department, text, contact, requester, token_hash, status, due_by,"
        " received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'routed', $12, $13)"
        " ON CONFLICT (about_key, requester) WHERE status = 'routed' DO NOTHING RETURNING true",
        complaint_id, about_kind, about, about_key, subject.key if subject else None,
        subject.model_dump(mode="json") if subject else None, department, text, contact,
        requester, token_hash, due_by, received_at)
    if not created:
        return False
    await add_complaint_event(conn, complaint_id, "routed",
                              f"已转交{department or '平台运营方'}办理", received_at)
    return True


async def open_complaint(conn: asyncpg.Connection, about_key: str,
                         requester: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT complaint_id::text, department, due_by FROM complaints"
        " WHERE about_key = $1 AND requester = $2 AND status = 'routed'", about_key, requester)


async def add_complaint_event(conn: asyncpg.Connection, complaint_id: str, status: str,
                              note: str | None, at: datetime | None = None) -> None:
    await conn.execute(
        "INSERT INTO complaint_events (complaint_id, status, note, at) VALUES ($1, $2, $3, $4)",
        complaint_id, status, note, at or clock.now())


async def complaint(conn: asyncpg.Connection, complaint_id: str,
                    lock: bool = False) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT complaint_id::text, about_kind, about, subject, department, status, due_by,"
        " received_at, answered_at, answer, overdue_at, token_hash FROM complaints"
        " WHERE complaint_id = $1::uuid" + (" FOR UPDATE" if lock else ""), complaint_id)
    if row is None:
        return None
    events = await conn.fetch(
        "SELECT status, note, at FROM complaint_events WHERE complaint_id = $1::uuid"
        " ORDER BY id", complaint_id)
    return {**dict(row), "timeline": [dict(e) for e in events]}


async def answer_complaint(conn: asyncpg.Connection, complaint_id: str, by: str,
                           answer: str) -> None:
    await conn.execute(
        "UPDATE complaints SET status = 'answered', answered_at = $2, answered_by = $3,"
        " answer = $4 WHERE complaint_id = $1::uuid", complaint_id, clock.now(), by, answer)
    await add_complaint_event(conn, complaint_id, "answered", answer)


async def open_complaints(conn: asyncpg.Connection, department: str | None,
                          limit: int = 200) -> list[dict[str, Any]]:
    """Open complaints routed to a department, or to the operators (None), oldest first."""
    rows = await conn.fetch(
        "SELECT complaint_id::text, about_kind, about, subject, text, due_by, received_at,"
        " overdue_at FROM complaints WHERE status = 'routed'"
        " AND department IS NOT DISTINCT FROM $1 ORDER BY received_at LIMIT $2",
        department, limit)
    return [dict(r) for r in rows]


async def mark_complaints_overdue(conn: asyncpg.Connection, today: date) -> list[str]:
    rows = await conn.fetch(
        "UPDATE complaints SET overdue_at = $2 WHERE status = 'routed' AND due_by < $1"
        " AND overdue_at IS NULL RETURNING complaint_id::text, department", today, clock.now())
    for r in rows:
        await add_complaint_event(conn, r["complaint_id"], "overdue",
                                  f"{r['department'] or '平台运营方'}未在30日内答复")
    return [r["complaint_id"] for r in rows]


async def count_complaints_overdue(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM complaints WHERE status = 'routed' AND overdue_at IS NOT NULL"))


async def objection_brief(conn: asyncpg.Connection, objection_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT objection_id::text, kind, subject, department, record_id FROM objections"
        " WHERE objection_id = $1::uuid", objection_id)


# --- list entries (credit.lists.changed) -------------------------------------------------


async def remember_entries(conn: asyncpg.Connection,
                           entries: Sequence[tuple[str, str, str]]) -> None:
    """(entry id, list, subject key): an entry keeps its list and subject for life."""
    if entries:
        await conn.execute(
            "INSERT INTO known_entries (entry_id, list, subject_key)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])"
            " ON CONFLICT (entry_id) DO NOTHING",
            [e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries])


async def forget_entries(conn: asyncpg.Connection, entry_ids: Sequence[str]) -> None:
    if entry_ids:
        await conn.execute("DELETE FROM known_entries WHERE entry_id = ANY($1::uuid[])",
                           list(entry_ids))


async def known_entry(conn: asyncpg.Connection, entry_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT entry_id::text, list, subject_key FROM known_entries WHERE entry_id = $1::uuid",
        entry_id)

"""The publisher's database: subject snapshots, list entries, the changes feed, notices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from services.publisher.domain import Entry, ListEffects
from shared.contract import BasisRecord, Notice, NoticeFeedback, SubjectChanged
from shared.db import Json

_ENTRY_COLUMNS = ("entry_id::text, list, subject_key, status, basis, publish_at, since, until,"
                  " exit_reason")


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        entry_id=row["entry_id"], list=row["list"], subject_key=row["subject_key"],
        status=row["status"], basis=tuple(BasisRecord.model_validate(b) for b in row["basis"]),
        publish_at=row["publish_at"], since=row["since"], until=row["until"],
        exit_reason=row["exit_reason"])


async def save_snapshots(
        conn: asyncpg.Connection,
        rows: Sequence[tuple[SubjectChanged, date | None, str, list[str]]]) -> set[str]:
    """Store (snapshot, the last day it may be found, normalized name, grams) where newer than
    what is stored; returns the subject keys that changed."""
    if not rows:
        return set()
    applied = await conn.fetch(
        "INSERT INTO subjects (subject_key, type, id, name, version, snapshot, discoverable,"
        " discoverable_until, name_norm, name_grams)"
        " SELECT k, t, i, n, v, s, du IS NOT NULL, du, nn, string_to_array(g, E'\\x1f')"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],"
        "  $6::json[], $7::date[], $8::text[], $9::text[]) AS u(k, t, i, n, v, s, du, nn, g)"
        " ON CONFLICT (subject_key) DO UPDATE SET name = EXCLUDED.name,"
        "  version = EXCLUDED.version, snapshot = EXCLUDED.snapshot,"
        "  discoverable = EXCLUDED.discoverable,"
        "  discoverable_until = EXCLUDED.discoverable_until, name_norm = EXCLUDED.name_norm,"
        "  name_grams = EXCLUDED.name_grams, updated_at = now()"
        " WHERE subjects.version < EXCLUDED.version"
        " RETURNING subject_key",
        [s.subject.key for s, *_ in rows], [s.subject.type for s, *_ in rows],
        [s.subject.id for s, *_ in rows], [s.subject.name for s, *_ in rows],
        [s.version for s, *_ in rows], [Json(s.model_dump_json()) for s, *_ in rows],
        [d for _, d, _, _ in rows], [n for _, _, n, _ in rows],
        ["\x1f".join(g) for *_, g in rows])  # normalized names hold no control characters
    return {r["subject_key"] for r in applied}


async def snapshots(conn: asyncpg.Connection, keys: Sequence[str]) -> dict[str, SubjectChanged]:
    rows = await conn.fetch(
        "SELECT subject_key, snapshot::text FROM subjects WHERE subject_key = ANY($1::text[])",
        list(keys))
    return {r["subject_key"]: SubjectChanged.model_validate_json(r["snapshot"]) for r in rows}


async def lock_open_entries(conn: asyncpg.Connection,
                            subject_keys: Sequence[str]) -> dict[str, dict[str, Entry]]:
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM list_entries WHERE subject_key = ANY($1::text[])"
        " AND status IN ('pending', 'active') FOR UPDATE", list(subject_keys))
    out: dict[str, dict[str, Entry]] = {}
    for r in rows:
        out.setdefault(r["subject_key"], {})[r["list"]] = _entry(r)
    return out


async def pending_entries(conn: asyncpg.Connection, subject_keys: Sequence[str]) -> list[Entry]:
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM list_entries WHERE subject_key = ANY($1::text[])"
        " AND status = 'pending'", list(subject_keys))
    return [_entry(r) for r in rows]


async def served_basis(conn: asyncpg.Connection, subject_keys: Sequence[str]
                       ) -> dict[str, dict[str, set[tuple[str, str, int]]]]:
    """Per subject and list, the basis records of entries that exited at the end of their
    term: those records have had their listing."""
    rows = await conn.fetch(
        "SELECT subject_key, list, basis FROM list_entries WHERE subject_key = ANY($1::text[])"
        " AND status = 'exited' AND exit_reason = 'expired'", list(subject_keys))
    out: dict[str, dict[str, set[tuple[str, str, int]]]] = {}
    for r in rows:
        served = out.setdefault(r["subject_key"], {}).setdefault(r["list"], set())
        served.update((b["department"], b["record_id"], b["revision"]) for b in r["basis"])
    return out


async def lock_due_entries(conn: asyncpg.Connection, now: datetime,
                           today: date, limit: int = 500) -> tuple[list[Entry], list[Entry]]:
    """Pending entries whose notice period is over, and active ones past their validity."""
    # A held entry (an objection about its basis) waits; one with no publish_at yet waits
    # for its notification (services/publisher/rights.py).
    due = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM list_entries WHERE status = 'pending'"
        " AND publish_at <= $1 AND NOT held ORDER BY publish_at LIMIT $2"
        " FOR UPDATE SKIP LOCKED", now, limit)
    expired = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM list_entries WHERE status = 'active'"
        " AND until < $1 ORDER BY until LIMIT $2 FOR UPDATE SKIP LOCKED", today, limit)
    return [_entry(r) for r in due], [_entry(r) for r in expired]


async def unrevoked_notices(conn: asyncpg.Connection,
                            entry_ids: Sequence[str]) -> dict[str, list[tuple[str, Notice]]]:
    rows = await conn.fetch(
        "SELECT n.entry_id::text, n.agency, n.body FROM notices n"
        " WHERE n.entry_id = ANY($1::uuid[]) AND n.kind <> 'revocation'"
        " AND NOT EXISTS (SELECT 1 FROM notices r WHERE r.revokes = n.notice_id)"
        " ORDER BY n.issued_at, n.notice_id", list(entry_ids))
    out: dict[str, list[tuple[str, Notice]]] = {}
    for r in rows:
        out.setdefault(r["entry_id"], []).append((r["agency"], Notice.model_validate(r["body"])))
    return out


async def entry_counts(conn: asyncpg.Connection,
                       keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """How many entries, of any status, each (list, subject key) has had."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT list, subject_key, count(*) AS n FROM list_entries"
        " WHERE (list, subject_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        " GROUP BY list, subject_key", [k[0] for k in keys], [k[1] for k in keys])
    return {(r["list"], r["subject_key"]): r["n"] for r in rows}


async def change_counts(conn: asyncpg.Connection, entry_ids: Sequence[str]) -> dict[str, int]:
    """How many list changes (ADD, MOD, DEL) each entry has had."""
    if not entry_ids:
        return {}
    rows = await conn.fetch(
        "SELECT entry_id::text, count(*) AS n FROM list_changes"
        " WHERE entry_id = ANY($1::uuid[]) GROUP BY entry_id", list(entry_ids))
    return {r["entry_id"]: r["n"] for r in rows}


async def save_effects(conn: asyncpg.Connection, fx: ListEffects) -> None:
    entries = [*fx.new_entries, *fx.changed_entries]
    if entries:
        await conn.executemany(
            "INSERT INTO list_entries (entry_id, list, subject_key, status, basis, publish_at,"
            " since, until, exit_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (entry_id) DO UPDATE SET status = EXCLUDED.status,"
            " basis = EXCLUDED.basis, publish_at = EXCLUDED.publish_at, since = EXCLUDED.since,"
            " until = EXCLUDED.until, exit_reason = EXCLUDED.exit_reason, updated_at = now()",
            [(e.entry_id, e.list, e.subject_key, e.status,
              [b.model_dump() for b in e.basis], e.publish_at, e.since, e.until, e.exit_reason)
             for e in entries])
    if fx.list_changes:
        await conn.executemany(
            "INSERT INTO list_changes (list, op, entry_id, subject_key, body)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(c.list, c.op, c.entry_id, c.subject.key, Json(c.model_dump_json()))
             for c in fx.list_changes])
    if fx.notices:
        await conn.executemany(
            "INSERT INTO notices (notice_id, agency, kind, list, measure, entry_id, subject_key,"
            " revokes, body, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (notice_id) DO NOTHING",
            [(n.notice_id, agency, n.kind, n.list, n.measure, entry_id, n.subject.key,
              n.revokes, Json(n.model_dump_json()), n.issued_at)
             for agency, n, entry_id in fx.notices])


async def feedback_backlog(conn: asyncpg.Connection, closing: Sequence[str],
                           overdue_before: datetime) -> dict[str, tuple[int, int]]:
    """Per agency: notices without closing feedback, and those of them issued before
    `overdue_before`."""
    rows = await conn.fetch(
        "SELECT agency, count(*) AS awaiting, count(*) FILTER (WHERE issued_at < $2) AS overdue"
        " FROM notices WHERE feedback_status IS NULL OR feedback_status <> ALL($1::text[])"
        " GROUP BY agency", list(closing), overdue_before)
    return {r["agency"]: (r["awaiting"], r["overdue"]) for r in rows}


async def record_feedback(conn: asyncpg.Connection,
                          feedback: Sequence[tuple[str, NoticeFeedback]]) -> set[str]:
    """Apply (agency, feedback) to the agency's own notices; returns the notice ids updated
    (feedback about another agency's notice, or an unknown one, changes nothing)."""
    if not feedback:
        return set()
    rows = await conn.fetch(
        "UPDATE notices n SET feedback_status = f.status, feedback_note = f.note,"
        " feedback_at = now()"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])"
        "  AS f(id, agency, status, note)"
        " WHERE n.notice_id = f.id AND n.agency = f.agency RETURNING n.notice_id::text",
        [f.notice_id for _, f in feedback], [a for a, _ in feedback],
        [f.status for _, f in feedback], [f.note for _, f in feedback])
    return {r["notice_id"] for r in rows}


# --- public queries ------------------------------------------------------------------------


async def search_subjects(conn: asyncpg.Connection, query_norm: str, grams: list[str],
                          exact_id: str | None, subject_type: str | None, today: date,
                          limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT subject_key, type, id, name, snapshot FROM subjects"
        " WHERE discoverable AND discoverable_until >= $7"
        "  AND ($5::text IS NULL OR type = $5)"
        "  AND ((cardinality($2::text[]) > 0 AND name_grams @> $2::text[]"
        "        AND strpos(name_norm, $1) > 0)"
        "       OR id = $3)"
        " ORDER BY (id = $3) DESC, strpos(name_norm, $1), length(name_norm), subject_key"
        " LIMIT $4 OFFSET $6",
        query_norm, grams, exact_id, limit, subject_type, offset, today)


async def subject(conn: asyncpg.Connection, key: str) -> SubjectChanged | None:
    row = await conn.fetchrow("SELECT snapshot FROM subjects WHERE subject_key = $1", key)
    return SubjectChanged.model_validate(row["snapshot"]) if row else None


async def active_entries(conn: asyncpg.Connection,
                         subject_keys: Sequence[str]) -> dict[str, list[Entry]]:
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM list_entries WHERE subject_key = ANY($1::text[])"
        " AND status = 'active' ORDER BY since", list(subject_keys))
    out: dict[str, list[Entry]] = {}
    for r in rows:
        out.setdefault(r["subject_key"], []).append(_entry(r))
    return out


async def list_members(conn: asyncpg.Connection, list_name: str, limit: int,
                       offset: int) -> tuple[int, list[asyncpg.Record]]:
    total = await conn.fetchval(
        "SELECT count(*) FROM list_entries WHERE list = $1 AND status = 'active'", list_name)
    rows = await conn.fetch(
        "SELECT e.entry_id::text, e.since, e.until, s.snapshot FROM list_entries e"
        " JOIN subjects s USING (subject_key) WHERE e.list = $1 AND e.status = 'active'"
        " ORDER BY e.since DESC, e.entry_id LIMIT $2 OFFSET $3", list_name, limit, offset)
    return total, rows


async def list_changes(conn: asyncpg.Connection, list_name: str, after_seq: int,
                       limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT seq, op, body, at FROM list_changes WHERE list = $1 AND seq > $2"
        " ORDER BY seq LIMIT $3", list_name, after_seq, limit)


async def notices_of_subject(conn: asyncpg.Connection, key: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT agency, body, feedback_status, feedback_note, feedback_at FROM notices"
        " WHERE subject_key = $1 ORDER BY issued_at, notice_id", key)
    return [dict(r) for r in rows]

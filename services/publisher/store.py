"""The publisher's database: subject snapshots, list entries, the changes feed, notices."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from services.publisher.domain import (
    Entry,
    FeedbackOutcome,
    ListEffects,
    feedback_due,
    feedback_outcome,
)
from shared.catalogue import Catalogue
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
    due = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM list_entries WHERE status = 'pending'"
        " AND publish_at <= $1 ORDER BY publish_at LIMIT $2 FOR UPDATE SKIP LOCKED", now, limit)
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


async def open_entries(conn: asyncpg.Connection,
                       subject_keys: Sequence[str]) -> dict[str, dict[str, Entry]]:
    """As `lock_open_entries`, without locking (what-if reads in a read-only transaction)."""
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM list_entries WHERE subject_key = ANY($1::text[])"
        " AND status IN ('pending', 'active')", list(subject_keys))
    out: dict[str, dict[str, Entry]] = {}
    for r in rows:
        out.setdefault(r["subject_key"], {})[r["list"]] = _entry(r)
    return out


async def subjects_for_what_if(conn: asyncpg.Connection, lists: Sequence[str],
                               items: Sequence[str]) -> list[str]:
    """Subjects a change of these lists could move: those on them now, and those with an
    active record of an item that feeds them (a scan of the snapshots: an operator's tool)."""
    rows = await conn.fetch(
        "SELECT subject_key FROM list_entries WHERE list = ANY($1::text[])"
        " AND status IN ('pending', 'active')"
        " UNION SELECT s.subject_key FROM subjects s WHERE EXISTS ("
        "  SELECT 1 FROM json_array_elements(s.snapshot -> 'records') r"
        "  WHERE r ->> 'catalogue_item' = ANY($2::text[]) AND r ->> 'status' = 'active')"
        " ORDER BY 1", list(lists), list(items))
    return [r["subject_key"] for r in rows]


def entry_of(row: asyncpg.Record) -> Entry:
    return _entry(row)


async def notice_ids_of_entries(conn: asyncpg.Connection, entry_ids: Sequence[str]) -> set[str]:
    """Every notice id the entries ever used (revoked ones too)."""
    rows = await conn.fetch("SELECT notice_id::text FROM notices WHERE entry_id = ANY($1::uuid[])",
                            list(entry_ids))
    return {r["notice_id"] for r in rows}


async def unrevoked_notices_naming(
        conn: asyncpg.Connection, subject_keys: Sequence[str], measures: Sequence[str]
        ) -> tuple[dict[str, list[tuple[str, Notice]]], dict[str, str]]:
    """The unrevoked notices of these measures sent for the subjects' active entries, by
    entry; and each such entry's subject key."""
    rows = await conn.fetch(
        "SELECT n.entry_id::text, e.subject_key, n.agency, n.body FROM notices n"
        " JOIN list_entries e ON e.entry_id = n.entry_id"
        " WHERE e.subject_key = ANY($1::text[]) AND e.status = 'active'"
        " AND n.measure = ANY($2::text[]) AND n.kind <> 'revocation'"
        " AND NOT EXISTS (SELECT 1 FROM notices r WHERE r.revokes = n.notice_id)"
        " ORDER BY n.written", list(subject_keys), list(measures))
    issued: dict[str, list[tuple[str, Notice]]] = {}
    subject_of: dict[str, str] = {}
    for r in rows:
        issued.setdefault(r["entry_id"], []).append((r["agency"],
                                                     Notice.model_validate(r["body"])))
        subject_of[r["entry_id"]] = r["subject_key"]
    return issued, subject_of


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


async def record_feedback(conn: asyncpg.Connection,
                          feedback: Sequence[tuple[str, NoticeFeedback]],
                          channel: str = "kafka",
                          event_ids: Sequence[str | None] | None = None) -> set[str]:
    """Apply (agency, feedback) to the agency's own notices; returns the ids of the notices
    it was about (feedback about another agency's notice, or an unknown one, is not
    recorded). Feedback only moves forward (`answer_notices`)."""
    outcomes = await answer_notices(conn, feedback, channel, event_ids)
    return {notice_id for notice_id, _ in outcomes if notice_id is not None}


async def answer_notices(conn: asyncpg.Connection,
                         feedback: Sequence[tuple[str, NoticeFeedback]],
                         channel: str = "kafka",
                         event_ids: Sequence[str | None] | None = None,
                         ) -> list[tuple[str | None, FeedbackOutcome | None]]:
    """Each answer in order: (the notice id it was about, or None when the agency has no
    such notice; what it did: applied, repeated or refused). Every answer about a notice of
    the agency is kept in `notice_feedback_history`; only a forward one changes the notice
    (services/publisher/domain.py::feedback_outcome)."""
    if not feedback:
        return []
    ids = [str(uuid.UUID(f.notice_id)) for _, f in feedback]
    rows = await conn.fetch(
        "SELECT notice_id::text, agency, feedback_status FROM notices"
        " WHERE notice_id = ANY($1::uuid[]) ORDER BY notice_id FOR UPDATE", sorted(set(ids)))
    current = {(r["notice_id"], r["agency"]): r["feedback_status"] for r in rows}
    outcomes: list[tuple[str | None, FeedbackOutcome | None]] = []
    history: list[tuple[str, str, str, str | None, str, str | None, str]] = []
    changed: dict[str, tuple[str, str | None]] = {}
    for i, ((agency, answer), notice_id) in enumerate(zip(feedback, ids, strict=True)):
        if (notice_id, agency) not in current:
            outcomes.append((None, None))
            continue
        outcome = feedback_outcome(current[(notice_id, agency)], answer.status)
        if outcome == "applied":
            current[(notice_id, agency)] = answer.status
            changed[notice_id] = (answer.status, answer.note)
        outcomes.append((notice_id, outcome))
        history.append((notice_id, agency, answer.status, answer.note, channel,
                        event_ids[i] if event_ids else None, outcome))
    if changed:
        await conn.execute(
            "UPDATE notices n SET feedback_status = f.status, feedback_note = f.note,"
            " feedback_at = now()"
            " FROM unnest($1::uuid[], $2::text[], $3::text[]) AS f(id, status, note)"
            " WHERE n.notice_id = f.id",
            list(changed), [s for s, _ in changed.values()], [n for _, n in changed.values()])
    if history:
        await conn.executemany(
            "INSERT INTO notice_feedback_history"
            " (notice_id, agency, status, note, channel, event_id, outcome)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)", history)
    return outcomes


# --- agencies over HTTP: their notices in order, their deadlines --------------------------

_SEQUENCE_LOCK = 727_060


async def sequence_notices(conn: asyncpg.Connection, catalogue: Catalogue,
                           fallback_working_days: int, limit: int = 2000) -> int:
    """Number the committed notices that have no place in the agencies' history yet, in the
    order they were written, and date their feedback deadline; returns how many. One
    sequencer at a time (a lock held to the commit): a number given here is above every
    number committed before, so a reader's cursor never passes a notice numbered later."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEQUENCE_LOCK)
        rows = await conn.fetch(
            "SELECT notice_id, measure, issued_at FROM notices WHERE seq IS NULL"
            " ORDER BY written LIMIT $1", limit)
        if not rows:
            return await _date_older_notices(conn, catalogue, fallback_working_days, limit)
        base = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM notices")
        dues = [feedback_due(catalogue, r["measure"], r["issued_at"], fallback_working_days)
                for r in rows]
        await conn.execute(
            "UPDATE notices n SET seq = u.seq, due_by = u.due, due_provisional = u.provisional"
            " FROM unnest($1::uuid[], $2::bigint[], $3::date[], $4::bool[])"
            "  AS u(id, seq, due, provisional) WHERE n.notice_id = u.id",
            [r["notice_id"] for r in rows], [base + i + 1 for i in range(len(rows))],
            [d.day for d in dues], [d.provisional for d in dues])
        return len(rows)


async def _date_older_notices(conn: asyncpg.Connection, catalogue: Catalogue,
                              fallback_working_days: int, limit: int) -> int:
    """Notices numbered by the migration, before deadlines existed: dated once."""
    rows = await conn.fetch(
        "SELECT notice_id, measure, issued_at FROM notices WHERE due_by IS NULL"
        " ORDER BY written LIMIT $1 FOR UPDATE SKIP LOCKED", limit)
    dues = [feedback_due(catalogue, r["measure"], r["issued_at"], fallback_working_days)
            for r in rows]
    if rows:
        await conn.execute(
            "UPDATE notices n SET due_by = u.due, due_provisional = u.provisional"
            " FROM unnest($1::uuid[], $2::date[], $3::bool[]) AS u(id, due, provisional)"
            " WHERE n.notice_id = u.id",
            [r["notice_id"] for r in rows], [d.day for d in dues],
            [d.provisional for d in dues])
    return len(rows)


async def last_notice_seq(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM notices"))


_NOTICE_ROW = ("seq, body, feedback_status, feedback_note, feedback_at, due_by,"
               " due_provisional")


async def agency_notices(conn: asyncpg.Connection, agency: str, after_seq: int,
                         limit: int) -> list[asyncpg.Record]:
    """The agency's notices after a place in its history, in the order they were sent."""
    return await conn.fetch(  # type: ignore[no-any-return]
        f"SELECT {_NOTICE_ROW} FROM notices WHERE agency = $1 AND seq > $2"
        " ORDER BY seq LIMIT $3", agency, after_seq, limit)


async def agency_overdue(conn: asyncpg.Connection, agency: str, today: date, after_seq: int,
                         limit: int, closing: Sequence[str]) -> list[asyncpg.Record]:
    """The agency's notices without closing feedback whose deadline is behind `today`."""
    return await conn.fetch(  # type: ignore[no-any-return]
        f"SELECT {_NOTICE_ROW} FROM notices WHERE agency = $1 AND seq > $2"
        " AND due_by < $3 AND (feedback_status IS NULL OR feedback_status <> ALL($5::text[]))"
        " ORDER BY seq LIMIT $4", agency, after_seq, today, limit, list(closing))


async def feedback_backlog(conn: asyncpg.Connection, closing: Sequence[str], today: date
                           ) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Notices without closing feedback: per agency, and per (agency, measure) those past
    their deadline."""
    rows = await conn.fetch(
        "SELECT agency, measure, count(*) AS awaiting,"
        " count(*) FILTER (WHERE due_by < $2) AS overdue"
        " FROM notices WHERE feedback_status IS NULL OR feedback_status <> ALL($1::text[])"
        " GROUP BY agency, measure", list(closing), today)
    awaiting: dict[str, int] = {}
    overdue: dict[tuple[str, str], int] = {}
    for r in rows:
        awaiting[r["agency"]] = awaiting.get(r["agency"], 0) + r["awaiting"]
        overdue[(r["agency"], r["measure"])] = r["overdue"]
    return awaiting, overdue


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

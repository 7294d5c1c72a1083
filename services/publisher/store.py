"""The publisher's database: subject snapshots, list entries, the changes feed, notices."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import asyncpg

from services.publisher import domain
from services.publisher.domain import (
    Entry,
    FeedbackOutcome,
    GramStatistics,
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
        rows: Sequence[tuple[SubjectChanged, bytes, date | None, str, list[str]]],
        at: datetime) -> set[str]:
    """Store (snapshot, its JSON as received, the last day it may be found, normalized name,
    grams) where newer than what is stored; returns the subject keys that changed. Each
    version stored is kept in `subject_versions` too, as taking effect `at` (the as-of
    profile's history): in the same statement, the JSON sent once."""
    if not rows:
        return set()
    applied = await conn.fetch(
        "WITH applied AS ("
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
        " RETURNING subject_key, version, snapshot),"
        " kept AS (INSERT INTO subject_versions (subject_key, version, effective_at, snapshot)"
        "  SELECT subject_key, version, $10, snapshot FROM applied"
        "  ON CONFLICT (subject_key, version) DO NOTHING)"
        " SELECT subject_key FROM applied",
        [s.subject.key for s, *_ in rows], [s.subject.type for s, *_ in rows],
        [s.subject.id for s, *_ in rows], [s.subject.name for s, *_ in rows],
        [s.version for s, *_ in rows], [Json(body.decode()) for _, body, *_ in rows],
        [d for _, _, d, _, _ in rows], [n for *_, n, _ in rows],
        ["\x1f".join(g) for *_, g in rows],  # normalized names hold no control characters
        at)
    return {r["subject_key"] for r in applied}


async def snapshots(conn: asyncpg.Connection, keys: Sequence[str]) -> dict[str, SubjectChanged]:
    rows = await conn.fetch(
        "SELECT subject_key, snapshot::text FROM subjects WHERE subject_key = ANY($1::text[])",
        list(keys))
    return {r["subject_key"]: SubjectChanged.model_validate_json(r["snapshot"]) for r in rows}


async def lock_subject(conn: asyncpg.Connection, subject_key: str) -> None:
    """The subject's row, as a stream batch takes it first (`lock_subjects`)."""
    await conn.execute("SELECT 1 FROM subjects WHERE subject_key = $1 FOR UPDATE", subject_key)


async def lock_subjects(conn: asyncpg.Connection, subject_keys: Sequence[str]) -> None:
    """The rows of a batch's subjects, before it reads the erasure ledger: an erasure holds
    its subject's row until it commits, so the ledger the batch reads next has it. In key
    order, one probe per key (a plan that cannot turn the keys into a filter). The lock is
    the one the snapshot upsert takes anyway; it blocks an erasure, not a reader."""
    await conn.execute(
        "SELECT 1 FROM unnest($1::text[]) AS k(subject_key) CROSS JOIN LATERAL"
        " (SELECT 1 FROM subjects s WHERE s.subject_key = k.subject_key FOR NO KEY UPDATE) AS l",
        sorted(set(subject_keys)))


def open_entries_of_keys(*, lock: bool = False,
                         status: Literal["pending", "active"] | None = None) -> str:
    """The open (pending or active) entries of the subjects `$1`, one index probe per key
    whatever the statistics say. On tables that grew since their last ANALYZE the planner
    took `subject_key = ANY($1)` as a filter over a partial index that looked small (a
    generic plan: the keys a parameter, compared one by one), every entry against each of a
    batch's thousand keys: 0.1-1.8 s a batch. Asked for open entries, the LATERAL subquery
    matches only the indexes that lead with the subject key; `status` narrows outside it,
    where the partial indexes of one status cannot be brought in, and OFFSET 0 keeps it from
    being flattened. Locked in the order of the keys given (the callers give them sorted,
    each once)."""
    return ("SELECT e.* FROM unnest($1::text[]) AS k(subject_key) CROSS JOIN LATERAL"
            f" (SELECT {_ENTRY_COLUMNS} FROM list_entries WHERE subject_key = k.subject_key"
            f"  AND status IN ('pending', 'active') {'FOR UPDATE' if lock else 'OFFSET 0'}) AS e"
            + (f" WHERE e.status = '{status}'" if status else ""))


async def lock_open_entries(conn: asyncpg.Connection,
                            subject_keys: Sequence[str]) -> dict[str, dict[str, Entry]]:
    return await _open_entries_by_subject(conn, subject_keys, lock=True)


async def _open_entries_by_subject(conn: asyncpg.Connection, subject_keys: Sequence[str],
                                   lock: bool) -> dict[str, dict[str, Entry]]:
    rows = await conn.fetch(open_entries_of_keys(lock=lock), sorted(set(subject_keys)))
    out: dict[str, dict[str, Entry]] = {}
    for r in rows:
        out.setdefault(r["subject_key"], {})[r["list"]] = _entry(r)
    return out


async def pending_entries(conn: asyncpg.Connection, subject_keys: Sequence[str]) -> list[Entry]:
    rows = await conn.fetch(open_entries_of_keys(status="pending"), sorted(set(subject_keys)))
    return [_entry(r) for r in rows]


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
        " AND NOT EXISTS (SELECT 1 FROM notices r WHERE r.revokes = n.notice_id"
        "  AND r.revokes IS NOT NULL)"  # the partial index notices_revokes (093)
        " AND NOT EXISTS (SELECT 1 FROM notices s WHERE s.supersedes = n.notice_id)"
        " ORDER BY n.issued_at, n.notice_id", list(entry_ids))
    out: dict[str, list[tuple[str, Notice]]] = {}
    for r in rows:
        out.setdefault(r["entry_id"], []).append((r["agency"], Notice.model_validate(r["body"])))
    return out


async def open_entries(conn: asyncpg.Connection,
                       subject_keys: Sequence[str]) -> dict[str, dict[str, Entry]]:
    """As `lock_open_entries`, without locking (what-if reads in a read-only transaction)."""
    return await _open_entries_by_subject(conn, subject_keys, lock=False)


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


# The batch's active entries as `open_entries_of_keys` reads them (one probe per key): joined
# to the notices directly, the keys were a filter over every active entry (50-450 ms a batch).
UNREVOKED_NOTICES_NAMING = (
    "SELECT n.entry_id::text, e.subject_key, n.agency, n.body"
    f" FROM ({open_entries_of_keys(status='active')}) AS e"
    " JOIN notices n ON n.entry_id = e.entry_id::uuid"
    " WHERE n.measure = ANY($2::text[]) AND n.kind <> 'revocation'"
    " AND NOT EXISTS (SELECT 1 FROM notices r WHERE r.revokes = n.notice_id"
    "  AND r.revokes IS NOT NULL)"  # the partial index notices_revokes (093)
    " ORDER BY n.written")


async def unrevoked_notices_naming(
        conn: asyncpg.Connection, subject_keys: Sequence[str], measures: Sequence[str]
        ) -> tuple[dict[str, list[tuple[str, Notice]]], dict[str, str]]:
    """The unrevoked notices of these measures sent for the subjects' active entries, by
    entry; and each such entry's subject key."""
    rows = await conn.fetch(UNREVOKED_NOTICES_NAMING, list(subject_keys), list(measures))
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


async def save_effects(conn: asyncpg.Connection, fx: ListEffects, change_bodies: Sequence[str],
                       notice_bodies: Sequence[str], at: datetime | None = None, *,
                       catalogue: Catalogue, fallback_working_days: int) -> None:
    """Entries, list changes and notices, a statement each (rows as arrays); the bodies are
    each change's and notice's one serialization, the same JSON as its event's data. Each
    entry's new state goes to `entry_history` too, as of `at` (the as-of profile's lists).
    Notices are numbered and dated as they are written (`_insert_notices`)."""
    entries = [*fx.new_entries, *fx.changed_entries]
    if entries:
        assert at is not None  # entries change only with the time they change at
        await conn.execute(
            "WITH written AS ("
            "INSERT INTO list_entries (entry_id, list, subject_key, status, basis, publish_at,"
            " since, until, exit_reason)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[],"
            "  $6::timestamptz[], $7::date[], $8::date[], $9::text[])"
            " ON CONFLICT (entry_id) DO UPDATE SET status = EXCLUDED.status,"
            " basis = EXCLUDED.basis, publish_at = EXCLUDED.publish_at, since = EXCLUDED.since,"
            " until = EXCLUDED.until, exit_reason = EXCLUDED.exit_reason, updated_at = now()"
            " RETURNING entry_id, subject_key, list, status, since, until, basis)"
            " INSERT INTO entry_history (entry_id, subject_key, list, status, since, until,"
            "  basis, at) SELECT entry_id, subject_key, list, status, since, until, basis, $10"
            " FROM written",
            [e.entry_id for e in entries], [e.list for e in entries],
            [e.subject_key for e in entries], [e.status for e in entries],
            [Json("[" + ",".join(b.model_dump_json() for b in e.basis) + "]") for e in entries],
            [e.publish_at for e in entries], [e.since for e in entries],
            [e.until for e in entries], [e.exit_reason for e in entries], at)
    if fx.list_changes:
        # In the order made: `seq` numbers the changes feed.
        await conn.execute(
            "INSERT INTO list_changes (list, op, entry_id, subject_key, body)"
            " SELECT l, o, e, k, b FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[],"
            "  $5::json[]) WITH ORDINALITY AS u(l, o, e, k, b, n) ORDER BY n",
            [c.list for c in fx.list_changes], [c.op for c in fx.list_changes],
            [c.entry_id for c in fx.list_changes], [c.subject.key for c in fx.list_changes],
            [Json(body) for body in change_bodies])
    if fx.notices:
        await _insert_notices(conn, fx, notice_bodies, catalogue, fallback_working_days)


async def _insert_notices(conn: asyncpg.Connection, fx: ListEffects, bodies: Sequence[str],
                          catalogue: Catalogue, fallback_working_days: int) -> None:
    """Each notice written once, with its place in the agencies' history (`seq`), its
    feedback deadline, what it supersedes and when related persons leave it: numbering and
    dating them after the commit (`sequence_notices`) wrote every notice and all its indexes
    a second time (not a HOT update: `seq` and `due_by` are indexed). The numbers keep the
    sequencer's guarantee: they are given under its lock, held from here to this
    transaction's commit, and above the highest number visible once the lock is held, which
    is every number committed before; a reader's cursor never passes a notice numbered
    later. A notice already stored (the same cause again) is left as it is and its number
    skipped: numbers need not be consecutive, only increasing."""
    notices = [n for _, n, _ in fx.notices]
    dues = [domain.feedback_due(catalogue, n.measure, n.issued_at, fallback_working_days)
            for n in notices]
    # A statement of its own: a statement's snapshot is taken when it starts, so the
    # `max(seq)` below must start after the lock is granted to see the last holder's commit.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEQUENCE_LOCK)
    await conn.execute(
        "INSERT INTO notices (notice_id, agency, kind, list, measure, entry_id, subject_key,"
        " revokes, body, issued_at, supersedes, related_until, due_by, due_provisional, seq)"
        " SELECT i, a, k, l, m, e, s, r, b, t, sp, ru, d, p,"
        "  (SELECT coalesce(max(seq), 0) FROM notices) + n"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],"
        "  $6::uuid[], $7::text[], $8::uuid[], $9::json[], $10::timestamptz[], $11::uuid[],"
        "  $12::date[], $13::date[], $14::bool[])"
        "  WITH ORDINALITY AS u(i, a, k, l, m, e, s, r, b, t, sp, ru, d, p, n)"
        " ORDER BY n"  # in the order made: `written` and `seq` follow it
        " ON CONFLICT (notice_id) DO NOTHING",
        [n.notice_id for n in notices], [a for a, _, _ in fx.notices],
        [n.kind for n in notices], [n.list for n in notices], [n.measure for n in notices],
        [e for _, _, e in fx.notices], [n.subject.key for n in notices],
        [n.revokes for n in notices], [Json(body) for body in bodies],
        [n.issued_at for n in notices], [n.supersedes for n in notices],
        [fx.related_until.get(n.notice_id) for n in notices],
        [d.day for d in dues], [d.provisional for d in dues])


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
        # In the order answered: the history's ids follow the ordinality.
        await conn.execute(
            "INSERT INTO notice_feedback_history"
            " (notice_id, agency, status, note, channel, event_id, outcome)"
            " SELECT i, a, s, n, c, e, o FROM unnest($1::uuid[], $2::text[], $3::text[],"
            "  $4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY"
            "  AS h(i, a, s, n, c, e, o, k) ORDER BY k",
            *(list(column) for column in zip(*history, strict=True)))
    return outcomes


# --- agencies over HTTP: their notices in order, their deadlines --------------------------

_SEQUENCE_LOCK = 727_060


async def sequence_notices(conn: asyncpg.Connection, catalogue: Catalogue,
                           fallback_working_days: int, limit: int = 2000) -> int:
    """Number the committed notices that have no place in the agencies' history yet, in the
    order they were written, and date their feedback deadline; returns how many. One
    sequencer at a time (a lock held to the commit): a number given here is above every
    number committed before, so a reader's cursor never passes a notice numbered later.
    Notices are numbered as they are written (`_insert_notices`, under the same lock); this
    numbers those stored otherwise (before that, or by hand)."""
    async with conn.transaction():
        # Not waited for: writers of notices hold it to their commit (`_insert_notices`), and
        # what this numbers (notices stored otherwise) can wait for the next round.
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _SEQUENCE_LOCK):
            return 0
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


async def awaiting_counts(conn: asyncpg.Connection, today: date
                          ) -> dict[tuple[str, str], tuple[int, int]]:
    """Notices without closing feedback (none yet, or only `received`) per agency and
    measure: (awaiting, past their deadline). Read from the counts the triggers of migration
    096 keep, after folding their deltas in: a few rows, whatever the backlog. Run in a
    transaction."""
    await conn.execute(
        "WITH moved AS (DELETE FROM notices_awaiting_deltas"
        "  RETURNING agency, measure, due_by, n)"
        " INSERT INTO notices_awaiting_counts (agency, measure, due_by, n)"
        " SELECT agency, measure, due_by, sum(n) FROM moved GROUP BY agency, measure, due_by"
        " ON CONFLICT (agency, measure, due_by)"
        " DO UPDATE SET n = notices_awaiting_counts.n + EXCLUDED.n")
    await conn.execute("DELETE FROM notices_awaiting_counts WHERE n = 0")
    # Deltas committed since the fold count too.
    rows = await conn.fetch(
        "SELECT agency, measure, sum(n) AS awaiting,"
        " coalesce(sum(n) FILTER (WHERE due_by < $1), 0) AS overdue FROM ("
        "  SELECT agency, measure, due_by, n FROM notices_awaiting_counts UNION ALL"
        "  SELECT agency, measure, due_by, n FROM notices_awaiting_deltas) c"
        " GROUP BY agency, measure", today)
    return {(r["agency"], r["measure"]): (r["awaiting"], r["overdue"]) for r in rows}


# --- public queries ------------------------------------------------------------------------


# What a search or list page shows of a subject: the columns, not the snapshot. A person's
# snapshot is read too, for the full discoverability rule (api.py); an organization is
# always discoverable.
_FOUND_COLUMNS = (
    "s.subject_key, s.type, s.id, s.name,"
    " array(SELECT e.list FROM list_entries e WHERE e.subject_key = s.subject_key"
    "       AND e.status = 'active' ORDER BY e.since, e.list) AS lists,"
    " CASE WHEN s.type = 'individual' THEN s.snapshot::text END AS person_snapshot")



def _findable(subject_type: str, today: str) -> str:
    """Who may be found at all, of the type in parameter `subject_type` (NULL: any), on the
    day in parameter `today`."""
    return (f"discoverable AND discoverable_until >= {today}::date"
            f" AND ({subject_type}::text IS NULL OR type = {subject_type}::text)")


async def search_ranked(conn: asyncpg.Connection, query_norm: str, grams: Sequence[str],
                        exact_id: str | None, subject_type: str | None, today: date,
                        limit: int, offset: int) -> list[asyncpg.Record]:
    """Every match ranked, for a query that few names match (the bigram GIN index finds
    them): the subject whose code is the query, then names by where the query starts in
    them, shorter names first, then subject key."""
    return await conn.fetch(  # type: ignore[no-any-return]
        f"SELECT {_FOUND_COLUMNS} FROM ("
        "  SELECT subject_key, id = $3 AS code, strpos(name_norm, $1) AS at,"
        "         length(name_norm) AS size FROM subjects"
        f"  WHERE {_findable('$4', '$5')}"
        "   AND ((cardinality($2::text[]) > 0 AND name_grams @> $2::text[]"
        "         AND strpos(name_norm, $1) > 0) OR id = $3)"
        "  ORDER BY code DESC NULLS LAST, at, size, subject_key LIMIT $6 OFFSET $7) h"
        " JOIN subjects s USING (subject_key)"
        " ORDER BY h.code DESC NULLS LAST, h.at, h.size, h.subject_key",
        query_norm, list(grams), exact_id, subject_type, today, limit, offset)


async def search_in_order(conn: asyncpg.Connection, query_norm: str,
                          exact_id: str | None, subject_type: str | None, today: date,
                          limit: int, offset: int) -> list[asyncpg.Record]:
    """A query that many names match, without ranking them all: the subject whose code is
    the query, then the names equal to it (by subject key), then the other names holding it
    in a fixed order (domain.search_order_key; migration 040's index), read until the page
    is full."""
    needed = limit + offset
    findable = _findable("$3", "$4")
    return await conn.fetch(  # type: ignore[no-any-return]
        f"SELECT {_FOUND_COLUMNS} FROM ("
        f"  (SELECT subject_key, 0 AS class, '' COLLATE \"C\" AS k FROM subjects"
        f"   WHERE id = $2 AND {findable})"
        "  UNION ALL"
        "  (SELECT subject_key, 1, subject_key COLLATE \"C\" AS k FROM subjects"
        "   WHERE name_norm = $1"
        f"   AND id IS DISTINCT FROM $2 AND {findable} ORDER BY subject_key LIMIT $5)"
        "  UNION ALL"
        "  (SELECT subject_key, 2, left(md5(subject_key), 8) || subject_key COLLATE \"C\" AS k"
        f"   FROM subjects WHERE {findable} AND strpos(name_norm, $1) > 0"
        "   AND name_norm <> $1 AND id IS DISTINCT FROM $2"
        "   ORDER BY left(md5(subject_key), 8) COLLATE \"C\", subject_key LIMIT $5)"
        "  ORDER BY class, k LIMIT $6 OFFSET $7) h"
        " JOIN subjects s USING (subject_key)"
        " ORDER BY h.class, h.k",
        query_norm, exact_id, subject_type, today, needed, limit, offset)


Membership = domain.Membership  # where the profile's rules read it


async def subject_name(conn: asyncpg.Connection, key: str) -> str | None:
    """The name the archive holds for a subject (its departments'), None if none."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT name FROM subjects WHERE subject_key = $1", key)


def _memberships(rows: Sequence[Any]) -> list[domain.Membership]:
    """(entry_id, list, status, since, until, basis JSON) rows, as memberships."""
    out = []
    for entry_id, list_name, status, since, until, basis_json in rows:
        basis = tuple(BasisRecord.model_validate(b) for b in json.loads(basis_json))
        out.append(domain.Membership(
            list=list_name, since=since, until=until,
            basis=frozenset((b.department, b.record_id) for b in basis),
            entry_id=str(entry_id), status=status, basis_records=basis))
    return out


async def profile(conn: asyncpg.Connection, key: str) -> tuple[str, list[Membership]] | None:
    """A subject's snapshot (JSON text, parsed once by the caller) and its active list
    memberships, in one statement."""
    row = await conn.fetchrow(
        "SELECT s.snapshot::text AS snapshot,"
        " array(SELECT row(e.entry_id, e.list, e.status, e.since, e.until, e.basis::text)"
        "       FROM list_entries e"
        "       WHERE e.subject_key = s.subject_key AND e.status = 'active'"
        "       ORDER BY e.since, e.list) AS lists"
        " FROM subjects s WHERE s.subject_key = $1", key)
    if row is None:
        return None
    return row["snapshot"], _memberships(row["lists"])


@dataclass(frozen=True)
class PastProfile:
    """What the as-of profile needs, read in one statement: the snapshot version in effect at
    a moment and the entries' states then, beside today's snapshot and active entries."""

    history_from: datetime | None
    past: str | None  # the snapshot JSON in effect then, None before the subject's history
    past_entries: list[Membership]  # every entry's state then (any status)
    current: str | None
    current_entries: list[Membership]


async def profile_at(conn: asyncpg.Connection, key: str, at: datetime) -> PastProfile:
    """A subject's profile as stored history holds it at `at` (services/publisher/
    migrations/090_history.sql), with today's for comparison."""
    row = await conn.fetchrow(
        "SELECT (SELECT min(effective_at) FROM subject_versions WHERE subject_key = $1)"
        "  AS history_from,"
        " (SELECT snapshot::text FROM subject_versions WHERE subject_key = $1"
        "  AND effective_at <= $2 ORDER BY version DESC LIMIT 1) AS past,"
        " array(SELECT row(h.entry_id, h.list, h.status, h.since, h.until, h.basis::text)"
        "  FROM (SELECT DISTINCT ON (entry_id) * FROM entry_history"
        "        WHERE subject_key = $1 AND at <= $2 ORDER BY entry_id, at DESC, id DESC) h"
        "  ORDER BY h.since, h.list) AS past_entries,"
        " (SELECT snapshot::text FROM subjects WHERE subject_key = $1) AS current,"
        " array(SELECT row(e.entry_id, e.list, e.status, e.since, e.until, e.basis::text)"
        "  FROM list_entries e WHERE e.subject_key = $1 AND e.status = 'active'"
        "  ORDER BY e.since, e.list) AS current_entries", key, at)
    assert row is not None  # a SELECT without FROM always answers one row
    return PastProfile(row["history_from"], row["past"], _memberships(row["past_entries"]),
                       row["current"], _memberships(row["current_entries"]))


async def list_members(conn: asyncpg.Connection, list_name: str, limit: int,
                       offset: int) -> list[asyncpg.Record]:
    """A page of a list's active members, newest first (migration 040's index), with the
    columns a page shows; the caller asks for one row more than it shows to know whether
    another page follows."""
    return await conn.fetch(  # type: ignore[no-any-return]
        "SELECT e.since, e.until, s.type, s.id, s.name FROM ("
        "  SELECT subject_key, since, until, entry_id FROM list_entries"
        "  WHERE list = $1 AND status = 'active'"
        "  ORDER BY since DESC, entry_id LIMIT $2 OFFSET $3) e"
        " JOIN subjects s USING (subject_key) ORDER BY e.since DESC, e.entry_id",
        list_name, limit, offset)


async def list_size(conn: asyncpg.Connection, list_name: str) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT count(*) FROM list_entries WHERE list = $1 AND status = 'active'", list_name)


async def gram_statistics(conn: asyncpg.Connection) -> GramStatistics:
    """What the planner's statistics say about names (ANALYZE, by autovacuum or migration
    040): the findable subjects, each common gram's share of names, each type's share. A
    table never analyzed gives none, and every query then takes the bigram index."""
    row = await conn.fetchrow(
        "SELECT greatest(c.reltuples, 0) AS rows,"
        " (SELECT most_common_elems::text::text[] FROM pg_stats WHERE schemaname = n.nspname"
        "   AND tablename = 'subjects' AND attname = 'name_grams') AS grams,"
        " (SELECT most_common_elem_freqs FROM pg_stats WHERE schemaname = n.nspname"
        "   AND tablename = 'subjects' AND attname = 'name_grams') AS gram_freqs,"
        " (SELECT most_common_vals::text::text[] FROM pg_stats WHERE schemaname = n.nspname"
        "   AND tablename = 'subjects' AND attname = 'type') AS types,"
        " (SELECT most_common_freqs FROM pg_stats WHERE schemaname = n.nspname"
        "   AND tablename = 'subjects' AND attname = 'type') AS type_freqs,"
        " (SELECT most_common_freqs[array_position(most_common_vals::text::text[], 't')]"
        "   FROM pg_stats WHERE schemaname = n.nspname AND tablename = 'subjects'"
        "   AND attname = 'discoverable') AS discoverable"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = 'subjects'::regclass")
    if row is None or not row["grams"]:
        return GramStatistics()
    # most_common_elem_freqs ends with the minimum and maximum of the frequencies and the
    # share of empty arrays; the first ones go with most_common_elems.
    shares = dict(zip(row["grams"], row["gram_freqs"], strict=False))
    types = dict(zip(row["types"] or [], row["type_freqs"] or [], strict=False))
    findable = row["discoverable"] if row["discoverable"] is not None else 1.0
    return GramStatistics(subjects=float(row["rows"]) * findable, gram_shares=shares,
                          type_shares=types)


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

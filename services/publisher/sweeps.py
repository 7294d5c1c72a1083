"""What the publisher erases of a person's negative information (shared/purge.py), and the
persons named beside a notice's subject once its basis is 5 years past (征信业管理条例
art. 16).

Before anything is erased, an entry resting on the erased records leaves its list
(`retention_expired`: a DEL, and a revocation of each notice in force), or keeps the rest
of its basis; the erasure waits until those events have left. Then the entries resting only
on erased records go with their notices, their rows in the changes feed keep only the op,
the entry and the dates, and the subject's snapshot and name index go (a whole subject) or
lose the records (the archive's next snapshot follows)."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from services.publisher import handlers, lifecycle, report_api, report_store, store
from shared import clock, grading, metrics, purge, sweeps
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import SubjectChanged
from shared.db import Json
from shared.purge import Erasure, Target

RELATED = "related_persons"
RETENTION_EXPIRED = "retention_expired"

# Entries of the subject whose every basis record is being erased.
_ERASED_ENTRIES = (
    "SELECT entry_id FROM list_entries e WHERE e.subject_key = $1 AND ($4 OR NOT EXISTS ("
    "  SELECT 1 FROM jsonb_array_elements(e.basis) b WHERE (b ->> 'department', b ->> 'record_id')"
    "  NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))))")


def _args(e: Erasure) -> tuple[str, list[str], list[str], bool]:
    return (e.subject_key, [d for d, _ in e.records], [r for _, r in e.records], e.whole)


async def _stored(conn: asyncpg.Connection, subject_key: str) -> SubjectChanged | None:
    return (await store.snapshots(conn, [subject_key])).get(subject_key)


def _without(snapshot: SubjectChanged, e: Erasure) -> SubjectChanged:
    erased = set(e.records)
    return snapshot.model_copy(update={"records": [
        r for r in snapshot.records if (r.department, r.record_id) not in erased]})


def plan(catalogue: Catalogue) -> purge.Plan:
    async def exit_first(ctx: ServiceContext, conn: asyncpg.Connection, e: Erasure) -> bool:
        snapshot = await _stored(conn, e.subject_key)
        if snapshot is None:
            return False
        done = await handlers.replan(conn, catalogue, {e.subject_key: _without(snapshot, e)},
                                     clock.today(), purge.erasure_key(ctx.settings),
                                     gone=RETENTION_EXPIRED)
        return done > 0

    async def erase_notice_feedback(conn: asyncpg.Connection, e: Erasure) -> None:
        # An agency's notes may name the subject: they go with the notices they answer.
        await conn.execute(
            "DELETE FROM notice_feedback_history WHERE notice_id IN (SELECT notice_id FROM"
            f" notices WHERE entry_id IN ({_ERASED_ENTRIES}))", *_args(e))

    async def erase_notices(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(f"DELETE FROM notices WHERE entry_id IN ({_ERASED_ENTRIES})",
                           *_args(e))

    async def scrub_changes(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(
            "UPDATE list_changes SET subject_key = NULL,"
            "  body = (body::jsonb || '{\"subject\": null}'::jsonb)::json"
            f" WHERE entry_id IN ({_ERASED_ENTRIES})", *_args(e))

    async def erase_entry_history(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(
            f"DELETE FROM entry_history WHERE entry_id IN ({_ERASED_ENTRIES})"
            " OR ($4 AND subject_key = $1)", *_args(e))

    async def erase_versions(conn: asyncpg.Connection, e: Erasure) -> None:
        if e.whole:
            await conn.execute("DELETE FROM subject_versions WHERE subject_key = $1",
                               e.subject_key)
            return
        rows = await conn.fetch(
            "SELECT version, effective_at, snapshot::text AS snapshot FROM subject_versions"
            " WHERE subject_key = $1 FOR UPDATE", e.subject_key)
        for r in rows:
            past = SubjectChanged.model_validate_json(r["snapshot"])
            kept = _without(past, e)
            if len(kept.records) == len(past.records):
                continue
            # The grade then, given again without the erased records: its explanation
            # named them.
            day = r["effective_at"].astimezone(clock.ZHUHAI).date()
            kept = kept.model_copy(update={"grade": grading.grade(
                catalogue, kept.subject, kept.records, day)})
            await conn.execute(
                "UPDATE subject_versions SET snapshot = $3 WHERE subject_key = $1"
                " AND version = $2", e.subject_key, r["version"], Json(kept.model_dump_json()))

    async def erase_deliveries(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(
            "DELETE FROM notification_deliveries WHERE notification_id IN ("
            f" SELECT notification_id FROM notifications WHERE entry_id IN ({_ERASED_ENTRIES})"
            " OR ($4 AND subject_key = $1))", *_args(e))

    async def erase_notifications(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(
            f"DELETE FROM notifications WHERE entry_id IN ({_ERASED_ENTRIES})"
            " OR ($4 AND subject_key = $1)", *_args(e))

    async def erase_own_view(conn: asyncpg.Connection, e: Erasure) -> None:
        # What the subject's own view holds: its requests about erased records; for a whole
        # subject, also the map from its token, the log of who looked and where its
        # own contact points (kept by its token's party: the subject set it).
        await conn.execute(
            "DELETE FROM subject_requests WHERE subject_key = $1 AND ($4 OR"
            " (body::jsonb -> 'about' ->> 'department', body::jsonb -> 'about' ->> 'record_id')"
            " IN (SELECT * FROM unnest($2::text[], $3::text[])))", *_args(e))
        if e.whole:
            await conn.execute("DELETE FROM query_log WHERE subject_key = $1", e.subject_key)
            await conn.execute("DELETE FROM subject_parties WHERE subject_key = $1",
                               e.subject_key)
            await conn.execute(
                "UPDATE subject_contacts SET subject_key = NULL WHERE subject_key = $1",
                e.subject_key)

    async def erase_entries(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(f"DELETE FROM list_entries WHERE entry_id IN ({_ERASED_ENTRIES})",
                           *_args(e))

    async def erase_served(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(
            "DELETE FROM served_decisions WHERE subject_key = $1 AND ($4 OR"
            " (department, record_id) IN (SELECT * FROM unnest($2::text[], $3::text[])))",
            *_args(e))

    async def erase_snapshot(conn: asyncpg.Connection, e: Erasure) -> None:
        if e.whole:
            await conn.execute("DELETE FROM subjects WHERE subject_key = $1", e.subject_key)
            return
        snapshot = await _stored(conn, e.subject_key)
        if snapshot is None:
            return
        kept, until, norm, grams = handlers.stored_fields(catalogue, _without(snapshot, e),
                                                          clock.today())
        # The same version: the archive's next snapshot (without the records) replaces it.
        await conn.execute(
            "UPDATE subjects SET snapshot = $2, discoverable = $3::date IS NOT NULL,"
            " discoverable_until = $3, name_norm = $4, name_grams = $5, updated_at = now()"
            " WHERE subject_key = $1",
            e.subject_key, Json(kept.model_dump_json()), until, norm, grams)

    async def erase_reports(conn: asyncpg.Connection, e: Erasure) -> None:
        await report_store.erase(conn, e.subject_key,
                                 [f"{d}/{r}" for d, r in e.records], e.whole)

    async def holds_more(conn: asyncpg.Connection, e: Erasure) -> bool:
        snapshot = await _stored(conn, e.subject_key)
        return snapshot is not None and bool(_without(snapshot, e).records)

    async def entry_counts(conn: asyncpg.Connection, e: Erasure) -> dict[str, Any]:
        rows = await conn.fetch(
            "SELECT list, count(*) AS n FROM list_entries WHERE subject_key = $1 GROUP BY list",
            e.subject_key)
        return {"entries": {r["list"]: r["n"] for r in rows}}

    return purge.Plan(
        service="publisher",
        targets=(
            Target("notice_feedback_history", "delete the agencies' answers (and notes) to "
                   "the notices erased next", erase_notice_feedback),
            Target("notices", "delete the notices of entries resting only on erased records "
                   "(a whole subject: all its notices)", erase_notices),
            Target("list_changes", "keep op, entry and dates; erase subject and name",
                   scrub_changes),
            Target("entry_history", "delete the past states of the entries resting only "
                   "on erased records (a whole subject: all its entries')",
                   erase_entry_history),
            Target("notification_deliveries", "delete the delivery log of the notifications "
                   "erased", erase_deliveries),
            Target("notifications", "delete the notifications of the entries erased (a whole "
                   "subject: all of its)", erase_notifications),
            Target("list_entries", "delete the entries resting only on erased records",
                   erase_entries),
            Target("subject_requests", "delete the subject's requests about erased records; "
                   "a whole subject: also its token map, query log and contact's link",
                   erase_own_view),
            Target("served_decisions", "delete the erased decisions", erase_served),
            Target("subjects", "delete the snapshot and name index (a whole subject), else "
                   "take the records out of the snapshot", erase_snapshot),
            Target("subject_versions", "delete the snapshot history (a whole subject), else "
                   "take the records out of every past snapshot and grade it again",
                   erase_versions),
            Target("credit_reports", "delete the reports (PDF, hash, code) that show an "
                   "erased record (a whole subject: all its reports); verify then answers "
                   "404", erase_reports),
        ),
        holds_more=holds_more,
        # A batch that wrote a notification of an entry between the erasure's DELETE of
        # notifications and its DELETE of entries made the second fail on the foreign key
        # (seen in PostgreSQL's log), and the subject waited a day.
        lock=store.lock_subject,
        before=exit_first,
        counters=entry_counts,
    )


async def scrub_related_once(ctx: ServiceContext, today: date | None = None) -> int:
    async with ctx.pool.acquire() as conn:
        done = await lifecycle.scrub_related(conn, today or clock.today(),
                                             ctx.settings.purge_batch)
    metrics.SWEEP_ITEMS.labels("publisher", RELATED, "done").inc(done)
    return done


def all_sweeps(ctx: ServiceContext) -> tuple[sweeps.Sweep, ...]:
    return (purge.sweep(plan(ctx.catalogue)), sweeps.Sweep(RELATED, scrub_related_once),
            report_api.retention_sweep())

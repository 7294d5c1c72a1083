"""The archive's daily sweeps: expiry at rest (a record passing its end of public display
gets the subject a new snapshot, so that every stored grade, search entry and listing
downstream is recomputed) and what the archive erases of a person's negative information
(shared/purge.py)."""

from __future__ import annotations

import logging
from datetime import date

import asyncpg

from services.registry import handlers, lifecycle, store
from shared import clock, metrics, outbox, purge, sweeps
from shared.context import ServiceContext
from shared.contract import SubjectRef
from shared.db import TRANSIENT
from shared.purge import Erasure, Target

log = logging.getLogger(__name__)
EXPIRY = "expiry"


# --- expiry at rest ---------------------------------------------------------------------


async def expire_once(ctx: ServiceContext, today: date | None = None) -> int:
    """One pass: the records whose display ended before `today` and that no snapshot has
    shown so yet (a batch of them, whole subjects), marked, and a new snapshot per subject.
    Returns how many records."""
    today = today or clock.today()
    async with ctx.pool.acquire() as conn:
        failed = await sweeps.failed_today(conn, EXPIRY, today)
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT department, record_id, subject_key FROM records"
                " WHERE NOT display_ended AND public_until < $1"
                "  AND NOT (department || '/' || record_id = ANY($3::text[]))"
                " ORDER BY subject_key LIMIT $2 FOR UPDATE SKIP LOCKED",
                today, ctx.settings.purge_batch, list(failed))
            by_subject: dict[str, list[tuple[str, str]]] = {}
            for r in rows:
                by_subject.setdefault(r["subject_key"], []).append(
                    (r["department"], r["record_id"]))
            for subject_key, records in by_subject.items():
                try:
                    async with conn.transaction():  # a savepoint: one subject at a time
                        await _expire_subject(ctx, conn, subject_key, records)
                except TRANSIENT:
                    raise
                except Exception as exc:
                    for department, record_id in records:
                        await sweeps.record_failure(conn, "registry", EXPIRY,
                                                    f"{department}/{record_id}",
                                                    f"{type(exc).__name__}: {exc}")
                    continue
                metrics.SWEEP_ITEMS.labels("registry", EXPIRY, "done").inc(len(records))
    return len(rows)


async def _expire_subject(ctx: ServiceContext, conn: asyncpg.Connection, subject_key: str,
                          records: list[tuple[str, str]]) -> None:
    await conn.execute(
        "UPDATE records SET display_ended = true WHERE (department, record_id) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))",
        [d for d, _ in records], [r for _, r in records])
    current = await store.lock_records(conn, records)
    await lifecycle.append_history(conn, [rec.record for _, rec in current.values()],
                                   "display_ended",
                                   f"display-ended/{clock.today()}")
    subject_type, _, identifier = subject_key.partition(":")
    versions = await store.upsert_subjects(
        conn, [(SubjectRef.model_validate({"type": subject_type, "id": identifier}), 1)])
    await outbox.enqueue(conn, await handlers.snapshots(conn, ctx.catalogue, versions))


EXPIRY_SWEEP = sweeps.Sweep(EXPIRY, expire_once)


# --- the purge ----------------------------------------------------------------------------


async def _erase_records(conn: asyncpg.Connection, e: Erasure) -> None:
    await conn.execute(
        "DELETE FROM records WHERE (department, record_id) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))", *e.record_columns())


async def _erase_history(conn: asyncpg.Connection, e: Erasure) -> None:
    await conn.execute(
        "DELETE FROM record_history WHERE (department, record_id) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))", *e.record_columns())


async def _erase_subject(conn: asyncpg.Connection, e: Erasure) -> None:
    if e.whole:
        await conn.execute("DELETE FROM subjects WHERE subject_key = $1", e.subject_key)


async def _holds_more(conn: asyncpg.Connection, e: Erasure) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM records WHERE subject_key = $1"
        "  AND (department, record_id) NOT IN (SELECT * FROM unnest($2::text[], $3::text[])))",
        e.subject_key, *e.record_columns()))


async def _version(conn: asyncpg.Connection, e: Erasure) -> dict[str, int]:
    version = await conn.fetchval("SELECT version FROM subjects WHERE subject_key = $1",
                                  e.subject_key)
    return {"version": int(version or 0)}


async def _new_snapshot(ctx: ServiceContext, conn: asyncpg.Connection, e: Erasure) -> None:
    """What remains of a subject's archive goes out as a new snapshot (grade recomputed); a
    whole subject's archive is gone, and each service erases its own copy."""
    if e.whole:
        return
    subject_type, _, identifier = e.subject_key.partition(":")
    versions = await store.upsert_subjects(
        conn, [(SubjectRef.model_validate({"type": subject_type, "id": identifier}), 1)])
    await outbox.enqueue(conn, await handlers.snapshots(conn, ctx.catalogue, versions))


PLAN = purge.Plan(
    service="registry",
    targets=(
        Target("records", "delete the record", _erase_records),
        Target("record_history", "delete every change of the record", _erase_history),
        Target("subjects", "delete the archive of a subject with nothing left", _erase_subject),
    ),
    holds_more=_holds_more,
    after=_new_snapshot,
    counters=_version,
)

SWEEPS = (EXPIRY_SWEEP, purge.sweep(PLAN))

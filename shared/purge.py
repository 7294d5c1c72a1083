"""Erasure of a person's negative information five years after the act ended (征信业管理条例
art. 16), the same way in every service.

Each service writes a `purge_schedule` row for every record of a person's negative
information it stores (shared/disclosure.py::purge_on), and declares a `Plan`: the tables it
erases and how (`Target`s, in order), whether it still holds something else about the
subject, what must happen before (the publisher's listings exit first) or after (the
registry's new snapshot). One sweep (`sweep`) runs every plan: each day it takes the
subjects with records due and erases them, one subject per transaction, so that a subject
is never half erased whatever happens to the process. Tables added later (a query log,
complaints, notifications) join by adding a `Target` to their service's plan.

The dead letters and refused events every service keeps (shared/outbox.py) are erased by
`SHARED_TARGETS`, added to every plan. An erasure waits while the subject has events in the
outbox: what was decided about it (a revocation, a snapshot) leaves first.

What was erased stays known in `erasure_ledger` as a keyed hash of its reference (a record,
an objection, a subject) and dates, nothing personal: ingest refuses an erased record sent
again, and the registry, the publisher and the objection service drop a replayed or
redelivered event about one (counted in `xinyong_erased_dropped_total`). A record that
slips back all the same (a restored backup, a race with the sweep) brings its schedule row
with it, already due: the next pass erases it again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import asyncpg

from shared import clock, metrics, sweeps
from shared.context import ServiceContext
from shared.db import TRANSIENT
from shared.settings import Settings

log = logging.getLogger(__name__)
SWEEP = "purge"
RecordKey = tuple[str, str]  # (department, record_id)


@dataclass(frozen=True)
class Erasure:
    """What one pass erases about one subject: the records due, and whether nothing else about
    the subject remains in this service afterwards (`whole`)."""

    subject_key: str
    records: tuple[RecordKey, ...]
    purge_on: date
    whole: bool = False

    @property
    def identifier(self) -> str:
        return self.subject_key.partition(":")[2]

    def record_columns(self) -> tuple[list[str], list[str]]:
        """The records as two arrays (departments, record ids), for `unnest($1, $2)`."""
        return [d for d, _ in self.records], [r for _, r in self.records]


Step = Callable[[asyncpg.Connection, Erasure], Awaitable[Any]]


@dataclass(frozen=True)
class Target:
    """One table a service erases from, and how (for the docs and the operators)."""

    table: str
    how: str
    erase: Step


@dataclass(frozen=True)
class Plan:
    service: str
    targets: Sequence[Target]
    # Whether the service holds something about the subject besides `erasure.records`.
    holds_more: Callable[[asyncpg.Connection, Erasure], Awaitable[bool]]
    # Before anything about the subject is read: takes the row the service's
    # stream batches lock first for a subject (the same order, so no deadlock), so that a
    # batch's writes about it land wholly before or wholly after the erasure.
    lock: Callable[[asyncpg.Connection, str], Awaitable[None]] | None = None
    # Run first; True when it did something whose events must leave before the erasure
    # (which then waits for the next pass).
    before: Callable[[ServiceContext, asyncpg.Connection, Erasure],
                     Awaitable[bool]] | None = None
    # Run last, in the same transaction (e.g. the archive's new snapshot).
    after: Callable[[ServiceContext, asyncpg.Connection, Erasure],
                    Awaitable[None]] | None = None
    # What a subject recorded again later continues from (kept in the ledger for a whole
    # subject, nothing personal).
    counters: Callable[[asyncpg.Connection, Erasure],
                       Awaitable[dict[str, Any]]] | None = None


# --- the ledger ---------------------------------------------------------------------------


def erasure_key(settings: Settings) -> bytes:
    """The key of the ledger's hashes: the deployment's subject key (the one that keeps
    identity numbers off credit.credentials). Identity numbers and record ids are guessable,
    so a plain hash would not hide them."""
    return _key(settings.subject_key_secret, settings.secrets_dir / "subject-key.secret")


@cache
def _key(secret: str, path: Path) -> bytes:
    if secret:
        return secret.encode()
    if not path.exists():
        # The first process makes it, whole, under its final name at once (a link fails if
        # another process got there first: then that one's key is the key).
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(hashlib.sha256(os.urandom(32)).hexdigest() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


def reference(key: bytes, kind: str, *parts: str) -> str:
    # `hmac.new(...).hexdigest()`, by the one-shot C digest: asked for every record of every
    # batch (erased_records), where building an HMAC object per record showed in profiles.
    return hmac.digest(key, "|".join((kind, *parts)).encode(), "sha256").hex()


@lru_cache(maxsize=1 << 16)
def record_reference(key: bytes, department: str, record_id: str) -> str:
    # Kept for the records seen lately: a consumer checks each record of every snapshot of
    # its subject, and the record when it was accepted, against the ledger.
    return reference(key, "record", department, record_id)


def subject_reference(key: bytes, subject_key: str) -> str:
    return reference(key, "subject", subject_key)


def objection_reference(key: bytes, objection_id: str) -> str:
    return reference(key, "objection", objection_id)


async def erased_records(conn: asyncpg.Connection, key: bytes,
                         records: Iterable[RecordKey]) -> set[RecordKey]:
    """The records among these that were erased."""
    by_ref = {record_reference(key, d, r): (d, r) for d, r in records}
    if not by_ref:
        return set()
    rows = await conn.fetch("SELECT reference FROM erasure_ledger WHERE reference = ANY($1)",
                            list(by_ref))
    return {by_ref[r["reference"]] for r in rows}


async def erased_references(conn: asyncpg.Connection, references: Sequence[str]) -> set[str]:
    if not references:
        return set()
    rows = await conn.fetch("SELECT reference FROM erasure_ledger WHERE reference = ANY($1)",
                            list(references))
    return {r["reference"] for r in rows}


async def subject_counters(conn: asyncpg.Connection, key: bytes,
                           subject_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Counters left by the erasure of these subjects, if they were erased before."""
    by_ref = {subject_reference(key, k): k for k in subject_keys}
    if not by_ref:
        return {}
    rows = await conn.fetch(
        "SELECT reference, counters FROM erasure_ledger WHERE reference = ANY($1)",
        list(by_ref))
    return {by_ref[r["reference"]]: r["counters"] for r in rows}


async def note(conn: asyncpg.Connection, kind: str, references: Sequence[str],
               purge_on: date, counters: dict[str, Any] | None = None) -> None:
    if references:
        await conn.execute(
            "INSERT INTO erasure_ledger (reference, kind, purge_on, counters)"
            " SELECT r, $2, $3, $4 FROM unnest($1::text[]) AS r"
            " ON CONFLICT (reference) DO UPDATE SET erased_at = now(),"
            "  counters = erasure_ledger.counters || EXCLUDED.counters",
            list(references), kind, purge_on, counters or {})


# --- the schedule -------------------------------------------------------------------------


async def schedule(conn: asyncpg.Connection,
                   rows: Sequence[tuple[str, str, str, date | None]]) -> None:
    """(department, record_id, subject_key, purge_on) as the service now stores each record:
    due on `purge_on`, or kept (None: a record that is no longer a person's negative
    information drops out). One statement, whatever the mix."""
    if not rows:
        return
    await conn.execute(
        "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[])"
        "  WITH ORDINALITY AS r(department, record_id, subject_key, purge_on, n)),"
        " kept AS (DELETE FROM purge_schedule p USING r WHERE r.purge_on IS NULL"
        "  AND p.department = r.department AND p.record_id = r.record_id)"
        " INSERT INTO purge_schedule (department, record_id, subject_key, purge_on)"
        # A record twice in one batch (two revisions): the later one.
        " SELECT DISTINCT ON (department, record_id) department, record_id, subject_key,"
        "  purge_on FROM r WHERE purge_on IS NOT NULL ORDER BY department, record_id, n DESC"
        " ON CONFLICT (department, record_id) DO UPDATE SET"
        "  subject_key = EXCLUDED.subject_key, purge_on = EXCLUDED.purge_on",
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])


# --- what every service erases -------------------------------------------------------------


async def _erase_kept_messages(conn: asyncpg.Connection, table: str, key_type: str,
                               why: str, e: Erasure) -> None:
    """Rows of dead letters or refused events about the subject: for a whole subject, any
    keyed by it or holding its identifier, in the message or in why it was kept (a reason
    may name the subject: the registry's names both owners of a record); else those keyed by
    it that name an erased record."""
    key: Any = e.subject_key.encode() if key_type == "bytea" else e.subject_key
    if e.whole:
        await conn.execute(
            f"DELETE FROM {table} WHERE key = $1 OR position($2::bytea IN value) > 0"
            f" OR strpos({why}, $3) > 0", key, e.identifier.encode(), e.identifier)
        return
    await conn.execute(
        f"DELETE FROM {table} WHERE key = $1 AND EXISTS (SELECT 1 FROM unnest($2::bytea[]) r"
        "  WHERE position(r IN value) > 0)",
        key, [r.encode() for _, r in e.records])


SHARED_TARGETS: tuple[Target, ...] = (
    Target("dead_letters", "delete the messages kept about the subject (whole) or naming an "
           "erased record",
           lambda conn, e: _erase_kept_messages(conn, "dead_letters", "bytea", "reason", e)),
    Target("outbox_set_aside", "delete the refused events about the subject (whole) or "
           "naming an erased record",
           lambda conn, e: _erase_kept_messages(conn, "outbox_set_aside", "text", "error",
                                                e)),
)


# --- the sweep ----------------------------------------------------------------------------


def sweep(plan: Plan) -> sweeps.Sweep:
    async def run_once(ctx: ServiceContext) -> int:
        return await purge_due(ctx, plan)

    return sweeps.Sweep(SWEEP, run_once)


async def purge_due(ctx: ServiceContext, plan: Plan, today: date | None = None) -> int:
    """One pass: erase the subjects with records due (a batch of them); returns how many
    were erased (those that wait for their events, or failed, do not count)."""
    today = today or clock.today()
    key = erasure_key(ctx.settings)
    async with ctx.pool.acquire() as conn:
        failed = await sweeps.failed_today(conn, SWEEP, today)
        due = await conn.fetch(
            "SELECT subject_key, string_agg(department || '/' || record_id, ','"
            "  ORDER BY department, record_id) AS item"
            " FROM purge_schedule WHERE purge_on <= $1 GROUP BY subject_key"
            " ORDER BY min(purge_on), subject_key LIMIT $2",
            today, ctx.settings.purge_batch + len(failed))
        done = 0
        for row in due:
            if row["item"] in failed:
                continue
            try:
                async with conn.transaction():
                    outcome = await erase_subject(ctx, conn, plan, key, row["subject_key"],
                                                   today)
            except TRANSIENT:
                raise
            except Exception as exc:
                async with conn.transaction():
                    await sweeps.record_failure(conn, plan.service, SWEEP, row["item"],
                                                f"{type(exc).__name__}: {exc}")
                continue
            metrics.SWEEP_ITEMS.labels(plan.service, SWEEP, outcome).inc()
            done += outcome == "done"
        return done


async def erase_subject(ctx: ServiceContext, conn: asyncpg.Connection, plan: Plan,
                        key: bytes, subject_key: str, today: date) -> str:
    """Erase what is due about one subject, in the caller's transaction: "done", or
    "deferred" (another process has it, its events have not left yet, or what `before` did
    must leave first)."""
    if plan.lock is not None:
        await plan.lock(conn, subject_key)
    rows = await conn.fetch(
        "SELECT department, record_id, purge_on FROM purge_schedule"
        " WHERE subject_key = $1 AND purge_on <= $2 ORDER BY department, record_id"
        " FOR UPDATE SKIP LOCKED", subject_key, today)
    if not rows:
        return "deferred"  # another process of the service has it
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox WHERE key = $1)", subject_key):
        return "deferred"  # what was decided about the subject leaves first
    erasure = Erasure(subject_key, tuple((r["department"], r["record_id"]) for r in rows),
                      max(r["purge_on"] for r in rows))
    later = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM purge_schedule WHERE subject_key = $1 AND purge_on > $2)",
        subject_key, today)
    erasure = replace(erasure, whole=not later and not await plan.holds_more(conn, erasure))
    if plan.before is not None and await plan.before(ctx, conn, erasure):
        return "deferred"
    counters = (await plan.counters(conn, erasure)
                if erasure.whole and plan.counters is not None else {})
    for target in (*plan.targets, *SHARED_TARGETS):
        await target.erase(conn, erasure)
    for (department, record_id), r in zip(erasure.records, rows, strict=True):
        await note(conn, "record", [record_reference(key, department, record_id)],
                   r["purge_on"])
    if erasure.whole:
        await note(conn, "subject", [subject_reference(key, subject_key)], erasure.purge_on,
                   counters)
    await conn.execute(
        "DELETE FROM purge_schedule WHERE (department, record_id) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))",
        [d for d, _ in erasure.records], [r for _, r in erasure.records])
    if plan.after is not None:
        await plan.after(ctx, conn, erasure)
    log.info("%s: erased %d record(s)%s past %s", plan.service, len(erasure.records),
             " and the whole subject" if erasure.whole else "", erasure.purge_on)
    return "done"


def describe(plan: Plan) -> list[tuple[str, str]]:
    """(table, how) of everything the plan erases, shared targets included."""
    return [(t.table, t.how) for t in (*plan.targets, *SHARED_TARGETS)]

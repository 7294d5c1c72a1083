"""The objection service's sweeps: what it erases of a person's negative information
(shared/purge.py): the objections and repair requests about an erased record with their
timelines, and its copy of the record; and the contacts of decided objections, a while after
the decision."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from services.objection import store
from shared import clock, metrics, purge, sweeps
from shared.context import ServiceContext
from shared.purge import Erasure, Target

CONTACTS = "objection_contacts"

_OBJECTIONS = (
    "SELECT objection_id FROM objections WHERE ($3 AND subject_key = $4) OR"
    " (department, record_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))")


_COMPLAINTS = (
    "SELECT complaint_id FROM complaints WHERE ($3 AND subject_key = $4) OR"
    " (about_kind = 'record' AND (about ->> 'department', about ->> 'record_id') IN"
    "  (SELECT * FROM unnest($1::text[], $2::text[])))")


def _args(e: Erasure) -> tuple[list[str], list[str], bool, str]:
    return [d for d, _ in e.records], [r for _, r in e.records], e.whole, e.subject_key


def plan(ctx: ServiceContext) -> purge.Plan:
    key = purge.erasure_key(ctx.settings)

    async def erase_timelines(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(f"DELETE FROM objection_events WHERE objection_id IN ({_OBJECTIONS})",
                           *_args(e))

    async def erase_objections(conn: asyncpg.Connection, e: Erasure) -> None:
        rows = await conn.fetch(
            f"DELETE FROM objections WHERE objection_id IN ({_OBJECTIONS})"
            " RETURNING objection_id::text", *_args(e))
        # A department's late decision about one of them is dropped, not dead-lettered.
        await purge.note(conn, "objection",
                         [purge.objection_reference(key, r["objection_id"]) for r in rows],
                         e.purge_on)

    async def erase_known(conn: asyncpg.Connection, e: Erasure) -> None:
        subject_type, _, identifier = e.subject_key.partition(":")
        await conn.execute(
            "DELETE FROM known_records WHERE (department, record_id) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[]))"
            " OR ($3 AND subject_type = $4 AND subject_id = $5)",
            *_args(e)[:3], subject_type, identifier)

    async def erase_facts(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(
            "DELETE FROM record_facts WHERE (department, record_id) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[])) OR ($3 AND subject_key = $4)",
            *_args(e))

    async def erase_complaint_timelines(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(
            f"DELETE FROM complaint_events WHERE complaint_id IN ({_COMPLAINTS})", *_args(e))

    async def erase_complaints(conn: asyncpg.Connection, e: Erasure) -> None:
        await conn.execute(f"DELETE FROM complaints WHERE complaint_id IN ({_COMPLAINTS})",
                           *_args(e))

    async def erase_entries(conn: asyncpg.Connection, e: Erasure) -> None:
        # The entries a complaint may name: gone with the last record the service knows of
        # the subject (it knows no entry's basis; the publisher erases the entries).
        subject_type, _, identifier = e.subject_key.partition(":")
        await conn.execute(
            "DELETE FROM known_entries WHERE subject_key = $1 AND ($2 OR NOT EXISTS ("
            " SELECT 1 FROM known_records WHERE subject_type = $3 AND subject_id = $4))",
            e.subject_key, e.whole, subject_type, identifier)

    async def holds_more(conn: asyncpg.Connection, e: Erasure) -> bool:
        subject_type, _, identifier = e.subject_key.partition(":")
        departments, records, _, _ = _args(e)
        return bool(await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM known_records WHERE subject_type = $3"
            "  AND subject_id = $4 AND (department, record_id) NOT IN"
            "  (SELECT * FROM unnest($1::text[], $2::text[])))"
            " OR EXISTS (SELECT 1 FROM objections WHERE subject_key = $5"
            "  AND (department, record_id) NOT IN (SELECT * FROM unnest($1::text[], $2::text[])))",
            departments, records, subject_type, identifier, e.subject_key))

    return purge.Plan(
        service="objection",
        targets=(
            Target("objection_events", "delete the timelines of the objections erased",
                   erase_timelines),
            Target("objections", "delete the objections and repair requests about erased "
                   "records (a whole subject: all about it); their ids go to the ledger",
                   erase_objections),
            Target("known_records", "delete the service's copy of the record", erase_known),
            Target("record_facts", "delete what the registry said of the record",
                   erase_facts),
            Target("complaint_events", "delete the timelines of the complaints erased",
                   erase_complaint_timelines),
            Target("complaints", "delete the complaints about erased records (a whole "
                   "subject: all about it)", erase_complaints),
            Target("known_entries", "delete the subject's list entries once no record of it "
                   "is known",
                   erase_entries),
        ),
        holds_more=holds_more,
        lock=store.lock_known_of_subject,
    )


async def erase_contacts_once(ctx: ServiceContext) -> int:
    """The contact (phone, e-mail) of an objection decided, or a complaint answered, more
    than `objection_contact_days` ago is erased: it served to answer the requester, and the
    time to contest the answer has passed (docs/decisions.md)."""
    before = clock.now() - timedelta(days=ctx.settings.objection_contact_days)
    async with ctx.pool.acquire() as conn:
        done = await erase_contacts(conn, before, ctx.settings.purge_batch)
    metrics.SWEEP_ITEMS.labels("objection", CONTACTS, "done").inc(done)
    return done


async def erase_contacts(conn: asyncpg.Connection, before: datetime, batch: int) -> int:
    """A batch of each: objections decided and complaints answered before `before`. The
    requester (a hash of the contact, for one open request per requester) goes too: it is
    no longer needed, and would link the person's requests."""
    objections = await conn.execute(
        "UPDATE objections SET contact = NULL, requester = NULL, contact_erased_at = now()"
        " WHERE objection_id IN (SELECT objection_id FROM objections"
        "  WHERE contact IS NOT NULL AND status <> 'routed' AND decided_at < $1"
        "  ORDER BY decided_at LIMIT $2 FOR UPDATE SKIP LOCKED)", before, batch)
    complaints = await conn.execute(
        "UPDATE complaints SET contact = NULL, requester = NULL, contact_erased_at = now()"
        " WHERE complaint_id IN (SELECT complaint_id FROM complaints"
        "  WHERE contact IS NOT NULL AND status = 'answered' AND answered_at < $1"
        "  ORDER BY answered_at LIMIT $2 FOR UPDATE SKIP LOCKED)", before, batch)
    return int(objections.split()[-1]) + int(complaints.split()[-1])


def all_sweeps(ctx: ServiceContext) -> tuple[sweeps.Sweep, ...]:
    return (purge.sweep(plan(ctx)), sweeps.Sweep(CONTACTS, erase_contacts_once))

"""Notices follow the catalogue and the archive.

- A measure or agency added to the catalogue: on start with a catalogue other than the one
  last followed, every active entry of the lists it names gets its notice; a measure
  removed: its notices are revoked. In batches of entries, each its own transaction,
  resumable (`catalogue_sync` records how far the run got), so a second start with the same
  catalogue sends nothing.
- A listed enterprise's legal representative changed: every notice whose
  `related_subjects` differ is replaced in the snapshot's own transaction, revocation first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence

import asyncpg

from services.publisher import domain, store
from shared import clock, outbox
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import SubjectChanged
from shared.db import TRANSIENT
from shared.messages import OutboundEvent
from shared.settings import get_settings
from shared.topics import NOTICES

log = logging.getLogger(__name__)
SOURCE = "xinyong/publisher"
BATCH = 500


def catalogue_version(catalogue: Catalogue) -> str:
    """The catalogue's version and a digest of what decides notices (lists and measures), so
    that an edit without a new version number is followed too."""
    decisive = json.dumps({"lists": {k: v.model_dump(mode="json")
                                     for k, v in catalogue.lists.items()},
                           "measures": {k: v.model_dump(mode="json")
                                        for k, v in catalogue.measures.items()}},
                          sort_keys=True, ensure_ascii=False)
    return f"{catalogue.version}/{hashlib.sha256(decisive.encode()).hexdigest()[:16]}"


async def enqueue_notices(conn: asyncpg.Connection, catalogue: Catalogue,
                          sent: Sequence[domain.Sent]) -> None:
    """Store and send notices (and revocations), in the order given."""
    if not sent:
        return
    bodies = [n.model_dump_json() for _, n, _ in sent]  # once: the row's body and the event's
    await store.save_effects(
        conn, domain.ListEffects(notices=list(sent)), [], bodies, catalogue=catalogue,
        fallback_working_days=get_settings().notice_feedback_working_days)
    await outbox.enqueue(conn, [
        OutboundEvent.of_json(NOTICES.of(agency), SOURCE, n.subject.key, body.encode(),
                              event_id=n.notice_id)
        for (agency, n, _), body in zip(sent, bodies, strict=True)])


async def catalogue_follower(ctx: ServiceContext) -> None:
    """Once per start: bring the notices of the active entries in line with the catalogue;
    then nothing more (a timer that ends would end the service)."""
    version = catalogue_version(ctx.catalogue)
    while True:
        try:
            while await follow_catalogue_once(ctx.pool, ctx.catalogue, version):
                pass
            break
        except TRANSIENT as exc:
            log.warning("catalogue follower: database unavailable (%s)", exc)
            await asyncio.sleep(5)
    await asyncio.Event().wait()


async def follow_catalogue_once(pool: asyncpg.Pool, catalogue: Catalogue, version: str,
                                batch: int = BATCH) -> bool:
    """One batch of entries under this catalogue version, in a transaction of its own; False
    when the version is done."""
    async with pool.acquire() as conn, conn.transaction():
        return await follow_catalogue_batch(conn, catalogue, version, batch)


async def follow_catalogue_batch(conn: asyncpg.Connection, catalogue: Catalogue,
                                 version: str, batch: int = BATCH) -> bool:
    """One batch of entries, in the caller's transaction; False when the version is done."""
    # A catalogue followed before and since replaced (a measure added, then removed) is
    # followed again: what counts is whether the latest run was this catalogue's.
    await conn.execute("LOCK TABLE catalogue_sync IN SHARE ROW EXCLUSIVE MODE")
    latest = await conn.fetchval(
        "SELECT version FROM catalogue_sync ORDER BY started_at DESC LIMIT 1")
    if latest != version:
        await conn.execute(
            "INSERT INTO catalogue_sync (version) VALUES ($1) ON CONFLICT (version) DO UPDATE"
            " SET after_entry = NULL, sent = 0, revoked = 0, started_at = clock_timestamp(),"
            " finished_at = NULL", version)
    progress = await conn.fetchrow(
        "SELECT after_entry::text, finished_at FROM catalogue_sync WHERE version = $1"
        " FOR UPDATE", version)
    if progress["finished_at"] is not None:
        return False
    rows = await conn.fetch(
        "SELECT entry_id::text, list, subject_key, status, basis, publish_at, since, until,"
        " exit_reason FROM list_entries WHERE status = 'active'"
        " AND ($1::uuid IS NULL OR entry_id > $1::uuid) ORDER BY entry_id LIMIT $2"
        " FOR UPDATE", progress["after_entry"], batch)
    if not rows:
        await conn.execute("UPDATE catalogue_sync SET finished_at = now() WHERE version = $1",
                           version)
        done = await conn.fetchrow(
            "SELECT sent, revoked FROM catalogue_sync WHERE version = $1", version)
        log.info("notices follow catalogue %s: %d sent, %d revoked", version, done["sent"],
                 done["revoked"])
        return False
    entries = [store.entry_of(r) for r in rows]
    ids = [e.entry_id for e in entries]
    issued = await store.unrevoked_notices(conn, ids)
    subjects = await store.snapshots(conn, sorted({e.subject_key for e in entries}))
    taken = await store.notice_ids_of_entries(conn, ids)
    sent = domain.follow_catalogue(catalogue, entries, issued, subjects, taken,
                                   clock.now(), clock.today())
    await enqueue_notices(conn, catalogue, sent)
    revoked = sum(1 for _, n, _ in sent if n.kind == "revocation")
    await conn.execute(
        "UPDATE catalogue_sync SET after_entry = $2::uuid, sent = sent + $3,"
        " revoked = revoked + $4 WHERE version = $1",
        version, ids[-1], len(sent) - revoked, revoked)
    return True


async def replace_changed_related(conn: asyncpg.Connection, catalogue: Catalogue,
                                  snapshots: Mapping[str, SubjectChanged]) -> None:
    """In the snapshots' transaction: notices of the subjects' active entries whose
    `related_subjects` no longer match the archive are revoked and replaced."""
    measures = sorted(name for name, m in catalogue.measures.items() if m.extends_to)
    if not snapshots or not measures:
        return
    issued, subject_of_entry = await store.unrevoked_notices_naming(
        conn, sorted(snapshots), measures)
    sent = domain.replace_related(
        catalogue, issued, {e: snapshots[k] for e, k in subject_of_entry.items()},
        clock.now(), clock.today())
    await enqueue_notices(conn, catalogue, sent)


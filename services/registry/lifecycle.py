"""The archive's own bookkeeping of the lifecycle (shared/disclosure.py, shared/purge.py):
its purge date, versions continued after an erasure (the display columns of each record are
written with the record, store.save_records)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared import purge
from shared.contract import ArchivedRecord
from shared.db import Json


async def after_save(conn: asyncpg.Connection,
                     rows: Sequence[tuple[str, ArchivedRecord, str, str, str]]) -> None:
    """Keep the purge schedule in step with what was just saved ((subject_key, record, its
    JSON, cause, event_id), as store.save_records takes them; the display columns are
    written with the records themselves)."""
    latest = {(r.department, r.record_id): (k, r) for k, r, *_ in rows}
    await purge.schedule(conn, [(r.department, r.record_id, k, r.purge_on)
                                for k, r in latest.values()])


async def continue_erased(conn: asyncpg.Connection, versions: dict[str, int],
                          changed: dict[str, int], key: bytes) -> dict[str, int]:
    """A subject archived anew after it was erased continues its versions from where the
    erased archive stopped: no snapshot reuses an event id of the erased past."""
    new = [k for k, v in versions.items() if v == changed.get(k)]
    earlier = await purge.subject_counters(conn, key, new)
    bumps = {k: int(c.get("version", 0)) for k, c in earlier.items() if c.get("version")}
    if not bumps:
        return {}
    rows = await conn.fetch(
        "UPDATE subjects s SET version = s.version + b.by"
        " FROM unnest($1::text[], $2::bigint[]) AS b(subject_key, by)"
        " WHERE s.subject_key = b.subject_key RETURNING s.subject_key, s.version",
        list(bumps), list(bumps.values()))
    return {r["subject_key"]: r["version"] for r in rows}


async def append_history(conn: asyncpg.Connection, records: Sequence[ArchivedRecord],
                         cause: str, event_id: str) -> None:
    """A change of the records' lifecycle that is no new revision (their display ended)."""
    await conn.copy_records_to_table(
        "record_history", columns=["department", "record_id", "revision", "cause", "event_id",
                                   "body"],
        records=[(r.department, r.record_id, r.revision, cause, event_id,
                  Json(r.model_dump_json())) for r in records])

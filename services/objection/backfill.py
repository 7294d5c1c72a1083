"""One-off upgrade step: fill the objection service's projection of accepted records from the
registry's archive.

The projection is fed by `credit.records.accepted`, which the broker keeps for 7 days: a
service upgraded on a stack older than that would otherwise refuse objections about every
older record (`record_not_found`). Run once after the upgrade, while the services run:

    python -m services.objection.backfill

It is idempotent and safe beside the running consumer: a row is written only where the
registry holds a higher revision than the projection.
"""

from __future__ import annotations

import asyncio

import asyncpg

from services.objection import store
from services.objection.domain import KnownRecord
from shared import purge
from shared.contract import SubjectRef
from shared.settings import Settings, get_settings

_BATCH = 5000


async def backfill(registry: asyncpg.Connection, objection: asyncpg.Connection) -> int:
    """Copy every record the registry holds into the projection; returns the rows read."""
    read = 0
    async with registry.transaction():  # a cursor needs one
        cursor = registry.cursor(
            "SELECT r.department, r.record_id, s.type, s.id, r.revision,"
            " r.body->>'catalogue_item' AS item, r.body->>'status' AS status,"
            " (r.body->>'purge_on')::date AS purge_on"
            " FROM records r JOIN subjects s USING (subject_key)")
        batch: list[KnownRecord] = []
        async for row in cursor:
            batch.append(KnownRecord(
                department=row["department"], record_id=row["record_id"],
                subject=SubjectRef(type=row["type"], id=row["id"]), revision=row["revision"],
                catalogue_item=row["item"], withdrawn=row["status"] == "withdrawn",
                purge_on=row["purge_on"]))
            if len(batch) >= _BATCH:
                read += await _write(objection, batch)
                batch = []
        read += await _write(objection, batch)
    return read


async def _write(objection: asyncpg.Connection, batch: list[KnownRecord]) -> int:
    async with objection.transaction():
        await store.remember_records(objection, batch)
        await purge.schedule(objection, [(k.department, k.record_id, k.subject.key, k.purge_on)
                                         for k in batch if k.purge_on is not None])
    return len(batch)


async def run(settings: Settings) -> int:
    registry = await asyncpg.connect(settings.dsn("registry"))
    objection = await asyncpg.connect(settings.dsn("objection"))
    try:
        return await backfill(registry, objection)
    finally:
        await registry.close()
        await objection.close()


def main() -> None:
    count = asyncio.run(run(get_settings()))
    print(f"objection: {count} records from the registry's archive checked into the projection")


if __name__ == "__main__":
    main()

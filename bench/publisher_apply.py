"""The publisher's batch handler alone: CPU per snapshot of the service and of its
PostgreSQL backend (docs/performance.md, "Publisher (issue 9)").

What `bench pipeline` brings the publisher, without Kafka: one snapshot of a new
enterprise per record, one in ten with a court dishonest-debtor record (a listing and its
notices), the others an administrative penalty. Each batch is one transaction on a
database of its own, as the worker would apply it (without the positions); after each, the
notice sequencer runs until it has nothing left, as its loop would. `--freeze` freezes what
exists before the batches out of the garbage collector, as a service does once started
(shared/service.py). The figures are this process's CPU time and its PostgreSQL backend's
(/proc), and the WAL written.

    python -m bench.publisher_apply --records 4000 --batch 500 [--freeze]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
import uuid
from datetime import timedelta
from itertools import count
from typing import Any

from bench.stats_windows import cpu_seconds
from services.publisher import agencies, handlers
from services.publisher.main import SPEC
from shared import clock
from shared.catalogue import load_catalogue
from shared.context import ServiceContext
from shared.contract import ArchivedRecord, Grade, SubjectChanged, SubjectRef
from shared.db import SHARED_MIGRATIONS, create_pool, drop_database, ensure_database, migrate
from shared.envelope import encode_event
from shared.messages import InboundMessage
from shared.settings import Settings
from shared.topics import SUBJECTS_CHANGED

_offsets = count()


def workload(records: int) -> list[InboundMessage]:
    """A snapshot of a new enterprise per record, as the registry sends them."""
    decided = clock.today() - timedelta(days=30)
    run = uuid.uuid4().int % 10**6
    out = []
    for k in range(records):
        court = k % 10 == 0
        item = "court.dishonest_debtor" if court else "amr.admin_penalty"
        subject = SubjectRef(type="enterprise", id=f"914404{run:06d}{k:06d}",
                             name=f"珠海市基准测试{run}{k}有限公司")
        record = ArchivedRecord(
            department=item.split(".")[0], record_id=f"BENCH-{k:06d}", revision=1,
            catalogue_item=item, decided_on=decided, district="440402", status="active",
            summary="示例数据", public_until=decided + timedelta(days=3 * 365),
            attributes={} if court else {"penalty_class": "criticism"})
        snapshot = SubjectChanged(subject=subject, version=1, records=[record],
                                  grade=Grade(grade="C", explanation=["示例"]))
        _, value = encode_event(SUBJECTS_CHANGED.event_type, SUBJECTS_CHANGED.writer,
                                subject.key, snapshot)
        out.append(InboundMessage(topic=SUBJECTS_CHANGED.name, partition=0,
                                  offset=next(_offsets), key=subject.key, value=value,
                                  timestamp_ms=0, raw_key=subject.key.encode()))
    return out


async def run(records: int, batch: int, freeze: bool) -> dict[str, Any]:
    settings = Settings(db_prefix=f"xinyong_benchpa{uuid.uuid4().hex[:8]}_")
    catalogue = load_catalogue(settings.catalogue_path)
    await ensure_database(settings, "publisher")
    pool = await create_pool(settings, "publisher")
    try:
        async with pool.acquire() as conn:
            await migrate(conn, SHARED_MIGRATIONS, SPEC.migrations)
            handle = handlers.make_handler(ServiceContext("publisher", settings, catalogue, pool))
            if freeze:
                gc.collect()
                gc.freeze()
            # Made after the freeze, as a service's messages are.
            messages = workload(records)
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            wal = await conn.fetchval("SELECT pg_current_wal_lsn()")
            own, pg, started = time.process_time(), cpu_seconds(backend), time.monotonic()
            for at in range(0, len(messages), batch):
                async with conn.transaction():
                    await handle(conn, messages[at:at + batch])
                while await agencies.sequence_once(
                        conn, catalogue, settings.notice_feedback_working_days):
                    pass
            own, pg = time.process_time() - own, cpu_seconds(backend) - pg
            elapsed = time.monotonic() - started
            wal_bytes = await conn.fetchval("SELECT pg_current_wal_lsn() - $1::pg_lsn", wal)
            notices = await conn.fetchval("SELECT count(*) FROM notices")
    finally:
        if freeze:
            gc.unfreeze()
        await pool.close()
        await drop_database(settings, "publisher")
    return {"records": records, "batch": batch, "freeze": freeze, "notices": notices,
            "seconds": round(elapsed, 2),
            "publisher_cpu_ms_per_record": round(own * 1000 / records, 3),
            "postgres_cpu_ms_per_record": round(pg * 1000 / records, 3),
            "wal_kb_per_record": round(int(wal_bytes) / 1000 / records, 2),
            "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=4_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--freeze", action="store_true")
    args = parser.parse_args()
    print(asyncio.run(run(args.records, args.batch, args.freeze)))


if __name__ == "__main__":
    main()

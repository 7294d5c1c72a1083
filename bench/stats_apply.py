"""The stats service's batch handler alone: CPU per record of the service and of its
PostgreSQL backend (docs/performance.md, "Statistics side-car").

What `bench pipeline` brings the stats service per record, without Kafka, in the batches
the worker would make: the feedback and the accepted revision of each record (seven in ten
negative, counted by the early warning), a list change for one in ten, and the four window
snapshots stats-windows sends back per delta (in three districts: most overwrite one another
within the batch). Each batch is one transaction on a database of its own, as the worker
would apply it (without the positions, which are the worker's and the same for any
handler); the figures are this process's CPU time and its PostgreSQL backend's (/proc).

`--summed R`: the snapshots as stats-windows sends them for the stats service's sums (one per
district and window every R records) instead of one per case.

    python -m bench.stats_apply --records 20000 --batch 500 --summed 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import date, datetime, timedelta
from itertools import count
from typing import Any

from pydantic import BaseModel

from bench.stats_windows import cpu_seconds
from services.stats import handlers
from services.stats.main import SPEC
from shared import clock
from shared.catalogue import load_catalogue
from shared.contract import (
    AcceptedRecord,
    BasisRecord,
    ListChanged,
    RecordFeedback,
    RecordSubmission,
    StatsWindow,
    SubjectRef,
    WindowRange,
)
from shared.db import SHARED_MIGRATIONS, create_pool, drop_database, ensure_database, migrate
from shared.envelope import encode_event
from shared.messages import InboundMessage
from shared.settings import Settings
from shared.topics import FEEDBACK, LISTS_CHANGED, RECORDS_ACCEPTED, STATS_WINDOWS, Topic

DISTRICTS = ("440402", "440403", "440404")
_offsets = count()


def _message(topic: Topic[Any], name: str, data: BaseModel, key: str) -> InboundMessage:
    _, value = encode_event(topic.event_type, topic.writer, key, data)
    return InboundMessage(topic=name, partition=0, offset=next(_offsets), key=key,
                          value=value, timestamp_ms=0, raw_key=key.encode())


def workload(records: int, summed: int = 0) -> list[InboundMessage]:
    """The pipeline's messages to the stats service, in the order they would arrive.

    `summed`: stats-windows counts the sums of `summed` records' cases per district (the
    deltas of one stats batch: services/stats/domain.py::batch_deltas), so the snapshots of
    each district's windows come once per `summed` records; 0: once per case (one delta per
    case, the shape before sums)."""
    today = clock.today()
    decided = today - timedelta(days=30)
    start = datetime.combine(today - timedelta(days=today.weekday()), datetime.min.time(),
                             clock.ZHUHAI)
    windows = [WindowRange(**{"from": start - timedelta(days=7 * k),
                              "to": start - timedelta(days=7 * k) + timedelta(days=28)})
               for k in range(4)]
    out: list[InboundMessage] = []
    counts: dict[tuple[str, int], int] = {}
    for k in range(records):
        negative = k % 10 < 7
        item = "amr.admin_penalty" if negative else "tax.a_grade_taxpayer"
        dept = item.split(".")[0]
        district = DISTRICTS[k % len(DISTRICTS)]
        subject = SubjectRef(type="enterprise", id=f"91440402{k:010d}", name=f"企业{k}")
        submission = RecordSubmission(record_id=f"BENCH-{k:06d}", revision=1, action="upsert",
                                      catalogue_item=item, subject=subject,
                                      decided_on=decided, district=district,
                                      summary="示例数据", attributes={"amount": 1000})
        out.append(_message(FEEDBACK.of(dept), FEEDBACK.of(dept).name, RecordFeedback(
            event_id=str(uuid.uuid4()), record_id=submission.record_id, revision=1,
            status="accepted"), subject.key))
        out.append(_message(RECORDS_ACCEPTED, RECORDS_ACCEPTED.name, AcceptedRecord(
            department=dept, submission=submission, source_event_id=str(uuid.uuid4()),
            accepted_at=clock.now()), subject.key))
        if k % 10 == 0:
            out.append(_message(LISTS_CHANGED, LISTS_CHANGED.name, ListChanged(
                list="court.dishonest_debtor", op="ADD", entry_id=str(uuid.uuid4()),
                subject=subject, since=date.today(), until=None,
                basis=[BasisRecord(department=dept, record_id=submission.record_id,
                                   revision=1)]), subject.key))
        if negative:
            for n in range(len(windows)):
                counts[(district, n)] = counts.get((district, n), 0) + 1
        last_of_sum = (k + 1) % summed == 0 or k == records - 1 if summed else negative
        for n, window in enumerate(windows):
            for place in (DISTRICTS if summed else (district,)):
                if not last_of_sum or (place, n) not in counts:
                    continue
                out.append(_message(STATS_WINDOWS, STATS_WINDOWS.name, StatsWindow(
                    district=place, measure="negative.high_incidence", window=window,
                    count=counts[(place, n)], threshold=50),
                    f"{place}|negative.high_incidence|{window.from_.isoformat()}"))
    return out


async def run(records: int, batch: int, summed: int) -> dict[str, Any]:
    settings = Settings(db_prefix=f"xinyong_benchsa{uuid.uuid4().hex[:8]}_")
    catalogue = load_catalogue(settings.catalogue_path)
    messages = workload(records, summed)
    await ensure_database(settings, "stats")
    pool = await create_pool(settings, "stats")
    try:
        async with pool.acquire() as conn:
            await migrate(conn, SHARED_MIGRATIONS, SPEC.migrations)
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            own, pg, started = time.process_time(), cpu_seconds(backend), time.monotonic()
            for at in range(0, len(messages), batch):
                async with conn.transaction():
                    await handlers.apply(conn, catalogue, messages[at:at + batch])
            own, pg = time.process_time() - own, cpu_seconds(backend) - pg
            elapsed = time.monotonic() - started
            stored = await conn.fetchval("SELECT count(*) FROM windows")
    finally:
        await pool.close()
        await drop_database(settings, "stats")
    return {"records": records, "messages": len(messages), "batch": batch, "summed": summed,
            "windows_stored": stored, "seconds": round(elapsed, 2),
            "stats_cpu_ms_per_record": round(own * 1000 / records, 3),
            "postgres_cpu_ms_per_record": round(pg * 1000 / records, 3),
            "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--summed", type=int, default=0,
                        help="records whose cases one delta sums (0: a delta per case)")
    args = parser.parse_args()
    print(asyncio.run(run(args.records, args.batch, args.summed)))


if __name__ == "__main__":
    main()

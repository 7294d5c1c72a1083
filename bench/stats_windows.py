"""stats-windows alone: its CPU per delta at a steady rate (docs/performance.md, "Statistics
side-car").

`bench pipeline` measures stats-windows in a pipeline whose pace moves with the machine's
load: how many deltas arrive together, and so how many share a poll and a produce request,
changes from run to run, and the process's CPU per record with it (0.33 to 0.69 ms on one
tree). Here only stats-windows runs, on its own namespace, fed deltas as the stats service
writes them (its principal, its envelope) at a fixed rate, in a few districts and today's
windows; the run ends when every snapshot is on credit.stats.windows. The figure is the
process's CPU time (user + system, /proc) over the cases and over the deltas sent.

`--batch B`: the stats service sends the sum of a batch's cases per district, rule and day
(services/stats/domain.py::batch_deltas): here each B cases (at `--rate` cases a second) go
as those sums, sent when the batch's last case is due. `--batch 1` is one delta per case,
the shape before sums.

    python -m bench.stats_windows --deltas 10000 --rate 400 --batch 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import datetime
from datetime import time as daytime
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.stacks import named_stack, port_base, steadily
from deploy.stack import infra_up, provision
from services.stats import domain
from shared import clock
from shared.catalogue import load_catalogue
from shared.contract import StatsDelta
from shared.kafka import client_options, make_producer
from shared.messages import OutboundEvent
from shared.topics import STATS_DELTAS, STATS_WINDOWS

RULE = "negative.high_incidence"
DISTRICTS = ("440402", "440403", "440404")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _feed(stack: Any, pid: int, deltas: int, rate: float, batch: int
                ) -> dict[str, Any]:
    settings = stack.settings
    producer = make_producer(settings, **stack.service_credentials("stats"))
    consumer = AIOKafkaConsumer(settings.topic(STATS_WINDOWS.name),
                                **client_options(settings), auto_offset_reset="earliest",
                                enable_auto_commit=False)
    on = datetime.combine(clock.today(), daytime(), clock.ZHUHAI)
    cases = [StatsDelta(fact_id=str(uuid.uuid4()), district=DISTRICTS[k % len(DISTRICTS)],
                        measure=RULE, on=on, delta=1) for k in range(deltas)]
    # (when due, in cases from the start; the event)
    events = [(min(at + batch, deltas) - 1,
               OutboundEvent.of(STATS_DELTAS, domain.SOURCE, d.district, d, event_id=d.fact_id))
              for at in range(0, deltas, batch)
              for d in domain.batch_deltas(cases[at:at + batch])]
    await producer.start()
    await consumer.start()
    try:
        topic = settings.topic(STATS_DELTAS.name)
        before = cpu_seconds(pid)
        start = time.monotonic()
        for k, e in events:
            due = start + k / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            await producer.send(topic, e.value, key=(e.key or "").encode())
        await producer.flush()
        sent = time.monotonic()
        shape = domain.window_shape(load_catalogue(settings.catalogue_path))
        assert shape is not None
        expected, seen = len(events) * (shape[0] // shape[1]), 0
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=500)
            seen += sum(len(records) for records in batches.values())
            if time.monotonic() - sent > 120:
                raise SystemExit(f"only {seen} of {expected} snapshots after 2 minutes")
        done = time.monotonic()
        cpu = cpu_seconds(pid) - before
    finally:
        await consumer.stop()
        await producer.stop()
    return {"cases": deltas, "rate": rate, "batch": batch, "deltas": len(events),
            "snapshots": seen, "seconds": round(done - start, 2),
            "cpu_seconds": round(cpu, 2),
            "cpu_ms_per_case": round(cpu * 1000 / deltas, 3),
            "cpu_ms_per_delta": round(cpu * 1000 / len(events), 3),
            "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=10_000, help="cases")
    parser.add_argument("--rate", type=float, default=400.0, help="cases a second")
    parser.add_argument("--batch", type=int, default=1, help="cases per stats batch")
    parser.add_argument("--port-base", type=int, default=None)
    args = parser.parse_args()
    stack = named_stack("benchsw", port_base(args.port_base))
    windows = stack.processes["stats-windows"]
    infra_up(stack.settings, stack.env)
    asyncio.run(provision(stack.settings))
    stack.act_as("bench")
    try:
        windows.start(stack.env)
        windows.wait_ready()
        pid = windows.pid()
        assert pid is not None
        print(asyncio.run(_feed(stack, pid, args.deltas, args.rate, args.batch)))
    finally:
        steadily(stack.stop, "stopping stats-windows and dropping its topics")


if __name__ == "__main__":
    main()

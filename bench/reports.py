"""`bench reports`: credit reports (信用报告) as a bank's clients take them, from the POST to
the PDF served.

The four services run on their own namespace, databases and ports (`named_stack`); the
publisher's database gets `--subjects` enterprises' archives with 0-40 public records each
(drawn uniformly, seeded; items that list nobody, so that no notice traffic mixes in), as
the registry's snapshots would store them. Then `--clients` clients (2) each take reports
one after the other, `--reports` in all: POST /api/v1/reports, then GET the PDF it names;
the latency of one report is from the POST's start to the PDF's last byte. The first
`WARMUP` reports are left out (the rendering processes start warm, but the first requests
also open connections). The reports' rate limit is raised for the run (printed), the
limiter stays in the path.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import report
from bench.rss import RssSampler, cpu_seconds
from bench.stacks import named_stack, port_base, steadily
from services.publisher import handlers
from shared import clock
from shared.catalogue import Catalogue, load_catalogue
from shared.contract import ArchivedRecord, Grade, SubjectChanged, SubjectRef
from shared.identifiers import uscc_check_character

WARMUP = 4
MAX_RECORDS = 40
TIMEOUT_S = 60.0


def _items(catalogue: Catalogue) -> list[str]:
    """Public items no list rests on: the report shows them, no notice follows."""
    listed = {i for lst in catalogue.lists.values() for i in lst.items}
    return sorted(k for k, item in catalogue.items.items()
                  if item.disclosure == "public" and k not in listed)


def subjects(catalogue: Catalogue, count: int, seed: int) -> list[SubjectChanged]:
    rng = random.Random(seed)
    items = _items(catalogue)
    today = clock.today()
    out = []
    for n in range(count):
        first17 = f"91440400MA{n:07d}"
        code = first17 + uscc_check_character(first17)
        records = []
        for i in range(rng.randint(0, MAX_RECORDS)):
            item = rng.choice(items)
            decided = today - timedelta(days=rng.randint(1, 300))
            records.append(ArchivedRecord(
                department=item.split(".", 1)[0], record_id=f"RB-{n}-{i}", revision=1,
                catalogue_item=item, decided_on=decided, status="active",
                document_no=f"珠{item.split('.', 1)[0]}〔{decided.year}〕{i + 1}号",
                public_until=today + timedelta(days=rng.randint(30, 700)),
                disputed=rng.random() < 0.05))
        out.append(SubjectChanged(
            subject=SubjectRef(type="enterprise", id=code, name=f"珠海市报告基准{n}号有限公司"),
            version=1, records=records, grade=Grade(grade="B", explanation=[])))
    return out


async def _load(dsn: str, catalogue: Catalogue, snapshots: list[SubjectChanged]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await handlers.apply_snapshots(conn, catalogue, snapshots)
    finally:
        await conn.close()


async def _measure(base_url: str, targets: list[SubjectChanged], reports: int,
                   clients: int) -> dict[str, Any]:
    queue: asyncio.Queue[SubjectChanged] = asyncio.Queue()
    for i in range(reports + WARMUP):
        queue.put_nowait(targets[i % len(targets)])
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    sizes: list[int] = []
    taken = 0

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal taken
        while not queue.empty():
            s = queue.get_nowait()
            started = time.perf_counter()
            r = await session.post("/api/v1/reports", json={
                "subject": {"type": s.subject.type, "id": s.subject.id},
                "purpose": "基准测试：银行贷款审查"})
            status = str(r.status_code)
            if r.status_code == 201:
                pdf = await session.get(r.json()["url"])
                status = "201+" + str(pdf.status_code)
                if pdf.status_code == 200:
                    sizes.append(len(pdf.content))
            elapsed = (time.perf_counter() - started) * 1000
            taken += 1
            statuses[status] = statuses.get(status, 0) + 1
            if taken > WARMUP and status == "201+200":
                latencies.append(elapsed)

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT_S) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    seconds = time.monotonic() - started
    return {"report_ms": report.latency_summary(latencies), "measured": len(latencies),
            "statuses": statuses, "seconds": round(seconds, 1),
            "reports_per_second": round((reports + WARMUP) / seconds, 2),
            "pdf_kib_mean": round(sum(sizes) / max(len(sizes), 1) / 1024, 1)}


def _children(pid: int | None) -> list[int]:
    if pid is None:
        return []
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def run(reports: int = 200, clients: int = 2, subject_count: int = 60, seed: int = 1,
        json_path: Path | None = None, base: int | None = None) -> dict[str, Any]:
    rate_limit = "1000000/minute"
    stack = named_stack("rp", port_base(base), XINYONG_REPORT_RATE_LIMIT=rate_limit)
    catalogue = load_catalogue(stack.settings.catalogue_path)
    command = f"bench reports --reports {reports} --clients {clients}"
    document: dict[str, Any] = {"run": report.run_info(stack.settings, command)}
    publisher = stack.processes["publisher"]
    targets = subjects(catalogue, subject_count, seed)
    load_before = os.getloadavg()
    try:
        steadily(stack.start, "starting the services")
        report.run_async(_load(stack.settings.dsn("publisher"), catalogue, targets))
        print(f"{len(targets)} subjects with 0-{MAX_RECORDS} records each "
              f"({sum(len(t.records) for t in targets)} records); report rate limit raised "
              f"to {rate_limit} (XINYONG_REPORT_RATE_LIMIT), the limiter stays in the path")

        def pids() -> dict[str, int | None]:
            return {"publisher": publisher.pid(), **{
                f"renderer-{i + 1}": c for i, c in enumerate(_children(publisher.pid()))}}

        sampler = RssSampler(stack.settings, pids, own=["publisher"])

        def cpu() -> float:
            return sum(cpu_seconds(pid) or 0.0 for pid in pids().values() if pid)

        async def measured() -> dict[str, Any]:
            sampler.start()
            before = cpu()
            try:
                figures = await _measure(publisher.url(), targets, reports, clients)
            finally:
                await sampler.stop()
            # The CPU the publisher and its rendering processes spent a report: on a shared
            # machine, the figure that moves least with other load.
            figures["cpu_ms_per_report"] = round(
                (cpu() - before) * 1000 / (reports + WARMUP), 1)
            return figures

        part = report.run_async(measured())
        part["rss_mib"] = sampler.peaks()
    finally:
        steadily(stack.stop, "stopping the services")
    part = {"reports": reports, "clients": clients, "subjects": len(targets),
            "renderers": stack.settings.report_workers,
            "load_average_before": [round(x, 1) for x in load_before],
            "load_average_after": [round(x, 1) for x in os.getloadavg()], **part}
    document["reports"] = part
    print_part(part)
    report.write_json(json_path, document)
    return document


def print_part(p: dict[str, Any]) -> None:
    rows = [
        ("load", f"{p['reports']} reports by {p['clients']} clients one after the other, "
                 f"{p['subjects']} subjects with 0-{MAX_RECORDS} records; first {WARMUP} "
                 "left out"),
        ("answered", f"statuses {p['statuses']} in {p['seconds']} s "
                     f"({p['reports_per_second']} reports/s), PDF {p['pdf_kib_mean']} KiB "
                     "on average"),
        ("POST to PDF p50/p95/p99/max", report.fmt_ms(p["report_ms"])),
        ("rendering processes", str(p["renderers"])),
        ("CPU a report", f"{p['cpu_ms_per_report']} ms (publisher and its rendering "
                         "processes)"),
        ("machine load average", f"{p['load_average_before']} before, "
                                 f"{p['load_average_after']} after"),
        ("peak memory", report.fmt_rss(p["rss_mib"])),
    ]
    report.print_table("bench reports", rows)

"""What logging a public profile view costs (docs/performance.md, "The query log").

    python -m bench.query_log [--requests 4000]

Builds a publisher database of its own on the local PostgreSQL (dropped after), stores one
enterprise's archive, and asks the public profile through the real FastAPI app in process
(no network, no Kafka), in alternating blocks of 100 requests with the query log on and off,
so that both see the same machine load. Prints p50/p95/p99/max of each, of the logging call
alone (what a request pays: the buffer), and what writing the buffer costs (the timer's
COPY, off the request path).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx

from services.publisher import api, handlers, rights_api
from services.publisher.main import SPEC
from shared import clock
from shared.catalogue import load_catalogue
from shared.context import ServiceContext
from shared.contract import ArchivedRecord, Grade, SubjectChanged, SubjectRef
from shared.db import SHARED_MIGRATIONS, create_pool, drop_database, ensure_database, migrate
from shared.settings import Settings


def _uscc(first17: str) -> str:
    symbols = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(symbols.index(c) * w for c, w in zip(first17, weights, strict=True))
    return first17 + symbols[(31 - total % 31) % 31]


def _percentiles(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000,
            "max": max(samples) * 1000}


async def run(requests: int) -> dict[str, Any]:
    settings = Settings(db_prefix=f"xinyong_qlb{uuid.uuid4().hex[:6]}_",
                        public_rate_limit="100000000/minute")
    await ensure_database(settings, "publisher")
    pool = await create_pool(settings, "publisher")
    try:
        async with pool.acquire() as conn:
            await migrate(conn, SHARED_MIGRATIONS, SPEC.migrations)
        catalogue = load_catalogue()
        firm = _uscc("91440400MA4W8KXX0")
        today = clock.today()
        records = [ArchivedRecord(department="amr", record_id=f"B-{i}", revision=1,
                                  catalogue_item="amr.admin_penalty",
                                  decided_on=today - timedelta(days=30 + i), status="active",
                                  document_no=f"珠市监罚〔2026〕{i}号",
                                  public_until=today + timedelta(days=300))
                   for i in range(5)]
        snapshot = SubjectChanged(
            subject=SubjectRef(type="enterprise", id=firm, name="珠海市基准测试有限公司"),
            version=1, records=records, grade=Grade(grade="C", explanation=["一般失信记录"]))
        async with pool.acquire() as conn, conn.transaction():
            await handlers.apply_snapshots(conn, catalogue, [snapshot])
        ctx = ServiceContext("publisher", settings, catalogue, pool)
        app = api.create_app(ctx)
        original = rights_api.QueryLog.record
        logging_alone: list[float] = []

        async def timed(self: rights_api.QueryLog, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            await original(self, *args, **kwargs)
            logging_alone.append(time.perf_counter() - started)

        async def nothing(self: rights_api.QueryLog, *args: Any, **kwargs: Any) -> None:
            return None

        samples: dict[str, list[float]] = {"on": [], "off": []}
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            url = f"/api/v1/subjects/enterprise/{firm}"
            for _ in range(50):  # warm up both paths
                assert (await client.get(url)).status_code == 200
            for block in range(requests // 100):
                mode = "on" if block % 2 == 0 else "off"
                rights_api.QueryLog.record = timed if mode == "on" else nothing  # type: ignore[method-assign]
                for _ in range(100):
                    started = time.perf_counter()
                    r = await client.get(url)
                    samples[mode].append(time.perf_counter() - started)
                    assert r.status_code == 200
        rights_api.QueryLog.record = original  # type: ignore[method-assign]
        query_log = rights_api.query_log_of(ctx)
        started = time.perf_counter()
        written = await query_log.flush()
        flush_seconds = time.perf_counter() - started
        async with pool.acquire() as conn:
            logged = await conn.fetchval("SELECT count(*) FROM query_log")
        return {"requests": {k: len(v) for k, v in samples.items()},
                "logged_rows": logged,
                "one_flush": f"{written} rows by one COPY in {flush_seconds * 1000:.1f} ms",
                "profile_ms_logging_on": _percentiles(samples["on"]),
                "profile_ms_logging_off": _percentiles(samples["off"]),
                "logging_call_ms": _percentiles(logging_alone)}
    finally:
        await pool.close()
        await drop_database(settings, "publisher")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    result = asyncio.run(run(parser.parse_args().requests))
    for name, value in result.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()

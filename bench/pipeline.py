"""Benchmark: records through ingest -> registry -> publisher on the real broker and database,
beside a bare aiokafka topic-to-topic pass-through measured in the same run.

    xinyong bench --records 20000      (or: python -m bench.pipeline 20000)

Runs its own isolated copy of the four services (own topics, databases and ports), so it
can run next to the demo stack; prints figures, asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy import demo
from deploy.stack import IsolatedStack
from shared.envelope import submission_json
from shared.kafka import make_producer
from shared.settings import Settings

# A department mix like the city's: mostly market-regulation and tax records, one in ten a
# court dishonest-debtor record (which lists the subject and notifies five agencies).
MIX = [("amr", "amr.admin_penalty", 4), ("tax", "tax.a_grade_taxpayer", 2),
       ("customs", "customs.advanced_certified", 1), ("court", "court.dishonest_debtor", 1),
       ("amr", "amr.abnormal_operation", 2)]


def make_batch(n: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    weighted = [(d, i) for d, i, w in MIX for _ in range(w)]
    today = date.today()
    out = []
    for k in range(n):
        dept, item = weighted[k % len(weighted)]
        subject = demo.DemoSubject("enterprise", demo.make_uscc("91", "440402", rng),
                                   f"珠海市基准测试{k}有限公司")
        out.append((dept, demo.submission(dept, item, subject, f"BENCH-{k:06d}",
                                          today - timedelta(days=30), rng)))
    return out


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def passthrough(settings: Settings, n: int) -> float:
    """Bare aiokafka: consume from one topic and produce to another, events/s."""
    src, dst = settings.topic("bench.passthrough.in"), settings.topic("bench.passthrough.out")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(src, 6, 1), NewTopic(dst, 6, 1)])
    await admin.close()
    producer = make_producer(settings)
    await producer.start()
    payload = json.dumps({"id": "x" * 36, "value": "珠海" * 20}).encode()
    for i in range(n):
        await producer.send(src, payload, key=str(i).encode())
    await producer.flush()
    consumer = AIOKafkaConsumer(src, bootstrap_servers=settings.kafka_bootstrap,
                                group_id=settings.topic("bench-passthrough"),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    moved, started = 0, time.perf_counter()
    while moved < n:
        batches = await consumer.getmany(timeout_ms=200, max_records=2000)
        futures = [await producer.send(dst, r.value, key=r.key)
                   for records in batches.values() for r in records]
        await asyncio.gather(*futures)
        await consumer.commit()
        moved += len(futures)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await producer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.delete_topics([src, dst])
    await admin.close()
    return n / elapsed


async def _collect(settings: Settings, topics: list[tuple[str, int]],
                   arrivals: dict[str, list[tuple[dict[str, Any], int]]],
                   stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    parts = [TopicPartition(settings.topic(t), p) for t, count in topics for p in range(count)]
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    ns = settings.topic_namespace
    while not stop.is_set():
        for tp, records in (await consumer.getmany(timeout_ms=100)).items():
            for r in records:
                arrivals[tp.topic[len(ns):]].append((json.loads(r.value)["data"], r.timestamp))
    await consumer.stop()


async def pipeline(stack: IsolatedStack, n: int) -> dict[str, float]:
    settings = stack.settings
    batch = make_batch(n)
    watched = [(f"credit.feedback.{d}", 3) for d in {d for d, _, _ in MIX}]
    watched.append(("credit.notices.finance-procurement", 3))
    arrivals: dict[str, list[tuple[dict[str, Any], int]]] = {t: [] for t, _ in watched}
    stop = asyncio.Event()
    collector = asyncio.create_task(_collect(settings, watched, arrivals, stop))
    await asyncio.sleep(1)

    producer: AIOKafkaProducer = make_producer(settings)
    await producer.start()
    # Encoded beforehand, so that the load generator takes as little of the shared CPU as
    # it can while the services run.
    messages = [(data["record_id"], settings.topic(f"credit.inbound.{dept}"),
                 submission_json(dept, data),
                 f"{data['subject']['type']}:{data['subject']['id']}".encode())
                for dept, data in batch]
    sent_at: dict[str, int] = {}
    started = time.perf_counter()
    for record_id, topic, value, key in messages:
        sent_at[record_id] = int(time.time() * 1000)
        await producer.send(topic, value, key=key)
    await producer.flush()
    produce_seconds = time.perf_counter() - started
    await producer.stop()

    pool = await asyncpg.create_pool(settings.dsn("publisher"), min_size=1, max_size=1)
    while await pool.fetchval("SELECT count(*) FROM subjects") < n:
        await asyncio.sleep(0.1)
    end_to_end = time.perf_counter() - started
    await pool.close()
    courts = sum(1 for d, _ in batch if d == "court")
    while sum(1 for d, _ in arrivals["credit.notices.finance-procurement"]
              if d["kind"] == "penalty") < courts:
        await asyncio.sleep(0.1)
    stop.set()
    await collector

    feedback = [(d, ts) for t, evs in arrivals.items() if "feedback" in t for d, ts in evs]
    fb_latency = [ts - sent_at[d["record_id"]] for d, ts in feedback if d["record_id"] in sent_at]
    notices = arrivals["credit.notices.finance-procurement"]
    notice_latency = [ts - sent_at[d["basis"][0]["record_id"]] for d, ts in notices
                      if d["kind"] == "penalty"]
    accepted = sum(1 for d, _ in feedback if d["status"] == "accepted")
    return {
        "records": n, "accepted": accepted, "produce_seconds": produce_seconds,
        "end_to_end_seconds": end_to_end, "records_per_second": n / end_to_end,
        "feedback_p50_ms": percentile(fb_latency, 50),
        "feedback_p99_ms": percentile(fb_latency, 99),
        "notices": len(notice_latency), "notice_p50_ms": percentile(notice_latency, 50),
        "notice_p99_ms": percentile(notice_latency, 99),
        "feedback_mean_ms": statistics.fmean(fb_latency) if fb_latency else float("nan"),
    }


async def _busy_seconds(url: str) -> float:
    import httpx
    async with httpx.AsyncClient() as client:
        text = (await client.get(url + "/metrics/")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("xinyong_batch_seconds_sum"))


async def main(records: int = 20_000) -> None:
    stack = IsolatedStack("bench", 19000)
    await asyncio.to_thread(stack.start)
    try:
        bare = await passthrough(stack.settings, records)
        result = await pipeline(stack, records)
        busy = {name: await _busy_seconds(p.url()) for name, p in stack.processes.items()}
    finally:
        await asyncio.to_thread(stack.stop)
    print(f"bare aiokafka pass-through : {bare:,.0f} events/s ({records:,} events)")
    print(f"pipeline                   : {result['records_per_second']:,.0f} records/s end to "
          f"end ({result['records']:,} records in {result['end_to_end_seconds']:.1f} s; "
          f"produced in {result['produce_seconds']:.1f} s; {result['accepted']:,} accepted)")
    print(f"produce -> feedback        : p50 {result['feedback_p50_ms']:,.0f} ms, "
          f"p99 {result['feedback_p99_ms']:,.0f} ms")
    print("time inside batch transactions: " + ", ".join(
        f"{name} {seconds:.1f} s" for name, seconds in busy.items()))
    print(f"produce -> penalty notice  : p50 {result['notice_p50_ms']:,.0f} ms, "
          f"p99 {result['notice_p99_ms']:,.0f} ms ({result['notices']:,} notices to "
          "finance-procurement)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))

"""`bench pipeline`: records through ingest -> registry -> publisher on the real broker and
database, as departments send them and as departments and agencies receive the answers.

Two forms:
- closed (`--records N`): N records sent as fast as the producer takes them; end to end is
  the time from the first send until every feedback and every notice has been received by
  the departments' and the five agencies' consumers and the publisher holds every subject.
  Beside it, in the same run on the same broker, a bare aiokafka pass-through
  (bench/passthrough.py) of the same encoded events.
- paced (`--rate R --seconds S`): open loop, each record sent at its scheduled time whatever
  the answers; latency from the department's send call to the receipt of its feedback and
  of each notice by each agency, leaving out the first 10 s (a sixth of shorter runs).

Each run has its own isolated copy of the four services (own topics, databases, ports).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import report
from bench.rss import RssSampler
from bench.stacks import named_stack, patiently, port_base, steadily, wait_until
from deploy import demo
from deploy.stack import IsolatedStack
from shared.catalogue import Catalogue, load_catalogue
from shared.envelope import submission_json
from shared.kafka import client_options, make_producer
from shared.settings import Settings
from shared.topics import FEEDBACK, INBOUND, NOTICES

# A department mix like the city's: mostly market-regulation and tax records, one in ten a
# court dishonest-debtor record (which lists the subject and notifies five agencies).
MIX = [("amr", "amr.admin_penalty", 4), ("tax", "tax.a_grade_taxpayer", 2),
       ("customs", "customs.advanced_certified", 1), ("court", "court.dishonest_debtor", 1),
       ("amr", "amr.abnormal_operation", 2)]


def make_batch(n: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """n records of the mix, each about a subject of its own."""
    rng = random.Random(seed)
    weighted = [(d, i) for d, i, w in MIX for _ in range(w)]
    today = date.today()
    seen: set[str] = set()
    out = []
    for k in range(n):
        dept, item = weighted[k % len(weighted)]
        code = demo.make_uscc("91", "440402", rng)
        while code in seen:
            code = demo.make_uscc("91", "440402", rng)
        seen.add(code)
        subject = demo.DemoSubject("enterprise", code, f"珠海市基准测试{k}有限公司")
        out.append((dept, demo.submission(dept, item, subject, f"BENCH-{k:06d}",
                                          today - timedelta(days=30), rng)))
    return out


def notices_expected(catalogue: Catalogue, items: Sequence[str]) -> int:
    """Notices the records' listings send at once (lists without a notice period)."""
    total = 0
    for item in items:
        for list_name in catalogue.lists_fed_by(item):
            if catalogue.lists[list_name].notice_period_days == 0:
                total += len(catalogue.measures_for(list_name))
    return total


@dataclass(frozen=True)
class Encoded:
    """A record as its department sends it, encoded before the clock starts (so that the
    load generator takes as little of the shared CPU as it can while the services run)."""

    record_id: str
    topic: str
    key: bytes
    value: bytes


def encode(settings: Settings, batch: Sequence[tuple[str, dict[str, Any]]]) -> list[Encoded]:
    return [Encoded(data["record_id"], settings.topic(INBOUND.of(dept).name),
                    f"{data['subject']['type']}:{data['subject']['id']}".encode(),
                    submission_json(dept, data)) for dept, data in batch]


@dataclass
class Receipts:
    """What the departments' and agencies' consumers received, stamped on first receipt
    (time.monotonic(), the clock the sender stamps its sends with). Like any consumer of the
    contract they drop an event they have already seen (an outbox relay may send one again
    after a failure): feedback by event id, notices by notice id; such repeats are counted."""

    feedback: dict[str, float] = field(default_factory=dict)  # record id -> first receipt
    statuses: Counter[str] = field(default_factory=Counter)
    # (agency, notice id) -> (kind, basis record ids, receipt)
    notices: dict[tuple[str, str], tuple[str, tuple[str, ...], float]] = field(
        default_factory=dict)
    seen_feedback: set[str] = field(default_factory=set)
    repeats: int = 0

    def progress(self) -> tuple[int, int]:
        return len(self.feedback), len(self.notices)

    def last(self) -> float:
        return max([*self.feedback.values(), *(n[2] for n in self.notices.values())],
                   default=0.0)

    def take(self, agency: str | None, event: dict[str, Any], now: float) -> None:
        data = event["data"]
        if agency is not None:
            key = (agency, data["notice_id"])
            if key in self.notices:
                self.repeats += 1
            else:
                self.notices[key] = (data["kind"], tuple(b["record_id"] for b in data["basis"]),
                                     now)
        elif event["id"] in self.seen_feedback:
            self.repeats += 1
        else:
            self.seen_feedback.add(event["id"])
            self.statuses[data["status"]] += 1
            if data.get("record_id") is not None:
                self.feedback.setdefault(data["record_id"], now)


async def receive(settings: Settings, catalogue: Catalogue, departments: Sequence[str],
                  receipts: Receipts, started: asyncio.Event, stop: asyncio.Event) -> None:
    """The departments' feedback consumers and the agencies' notice consumers, in one
    client: each topic read from its beginning."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    try:
        topics = [FEEDBACK.of(d) for d in departments] + [NOTICES.of(a)
                                                          for a in catalogue.agencies]
        parts = [TopicPartition(settings.topic(t.name), p) for t in topics
                 for p in range(t.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        started.set()
        ns = len(settings.topic_namespace)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now = time.monotonic()
            for tp, records in batches.items():
                topic = tp.topic[ns:]
                agency = NOTICES.code_of(topic)
                for r in records:
                    # orjson: the receivers share the cores with what they measure.
                    receipts.take(agency, orjson.loads(r.value), now)
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def receiving(settings: Settings, catalogue: Catalogue,
                    departments: Sequence[str]) -> AsyncIterator[Receipts]:
    """The receiving consumers, running (and holding their partitions) while in the block."""
    receipts, started, stop = Receipts(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(receive(settings, catalogue, departments, receipts, started,
                                       stop))
    try:
        ready = asyncio.create_task(started.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()  # the consumer failed to start: say why
        yield receipts
    finally:
        stop.set()
        await task


def notice_latencies(receipts: Receipts, sent_at: dict[str, float], since: float = 0.0,
                     kind: str | None = None) -> list[float]:
    out = []
    for notice_kind, basis, received in receipts.notices.values():
        sends = [sent_at[b] for b in basis if b in sent_at]
        if sends and max(sends) >= since and (kind is None or notice_kind == kind):
            out.append((received - max(sends)) * 1000)
    return out


async def service_metrics(stack: IsolatedStack) -> dict[str, dict[str, float]]:
    """From each service's /metrics: the time it spent inside its batch transactions, and
    the mean of its per-hop histograms (ms): events' age when it consumed them, outbox rows'
    age when the broker acknowledged them."""
    def total(text: str, name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))

    out: dict[str, dict[str, float]] = {"batch_seconds": {}, "consumed_age_ms": {},
                                        "outbox_age_ms": {}}
    async with httpx.AsyncClient() as client:
        texts: dict[str, list[str]] = {}
        for p in stack.every_process:
            texts.setdefault(p.name, []).append((await client.get(p.metrics_url())).text)
    for name, pages in texts.items():
        out["batch_seconds"][name] = round(
            sum(total(t, "xinyong_batch_seconds_sum") for t in pages), 2)
        for key, metric in (("consumed_age_ms", "xinyong_event_age_at_consume_seconds"),
                            ("outbox_age_ms", "xinyong_outbox_age_at_send_seconds")):
            count = sum(total(t, metric + "_count") for t in pages)
            if count:
                out[key][name] = round(
                    sum(total(t, metric + "_sum") for t in pages) / count * 1000, 1)
    return out


# --- the pass-through ---------------------------------------------------------------------


async def passthrough(settings: Settings, env: dict[str, str],
                      messages: Sequence[Encoded]) -> tuple[float, float]:
    """(events/s, seconds): the same encoded events sent to a topic, moved to another by a
    bare aiokafka process, received there; timed like the pipeline, first send to last
    receipt."""
    source, target = "bench.passthrough.in", "bench.passthrough.out"
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.topic(source), 6, 1),
                                   NewTopic(settings.topic(target), 6, 1)])
    finally:
        await admin.close()
    relay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.passthrough", source, target, str(len(messages)),
        "bench-passthrough", env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE)
    receiver = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    producer = make_producer(settings)
    try:
        assert relay.stdout is not None
        line = await asyncio.wait_for(relay.stdout.readline(), timeout=60)
        if line.strip() != b"ready":
            raise RuntimeError(f"pass-through relay did not start: {line!r}")
        await receiver.start()
        parts = [TopicPartition(settings.topic(target), p) for p in range(6)]
        receiver.assign(parts)
        await receiver.seek_to_beginning(*parts)
        await producer.start()
        started = time.monotonic()
        for m in messages:
            await producer.send(settings.topic(source), m.value, key=m.key)
        received = 0

        async def count() -> int:
            return received

        async def done() -> bool:
            nonlocal received
            batches = await receiver.getmany(timeout_ms=50)
            received += sum(len(records) for records in batches.values())
            return received >= len(messages)

        finished = await wait_until(done, count, "the pass-through", every=0)
        await relay.wait()
        elapsed = finished - started
        return len(messages) / elapsed, elapsed
    finally:
        if relay.returncode is None:
            relay.kill()
            await relay.wait()
        await producer.stop()
        await receiver.stop()
        admin = AIOKafkaAdminClient(**client_options(settings))
        await admin.start()
        try:
            await admin.delete_topics([settings.topic(source), settings.topic(target)])
        finally:
            await admin.close()


# --- closed and paced runs --------------------------------------------------------------


async def _wait_for_everything(settings: Settings, receipts: Receipts, records: int,
                               notices: int) -> float:
    """Until every feedback and notice is received and the publisher holds every subject;
    returns when the last of these happened."""
    # As the admin role: the sampler counts this backend's CPU as the bench's
    # (`postgres_bench`), not the stack's. One count of the publisher's subjects per poll,
    # and none once it holds them all (two counts over wide rows per poll were 5 s of
    # PostgreSQL's time in a 60 s run).
    pool = await patiently(lambda: asyncpg.create_pool(
        settings.admin_dsn(settings.db_name("publisher")), min_size=1, max_size=1))
    held_at: float | None = None
    subjects = 0
    try:
        async def done() -> bool:
            nonlocal held_at, subjects
            if held_at is None:
                subjects = int(await pool.fetchval("SELECT count(*) FROM subjects"))
                if subjects >= records:
                    held_at = time.monotonic()
            return (held_at is not None and len(receipts.feedback) >= records
                    and len(receipts.notices) >= notices)

        async def progress() -> tuple[int, int, int]:
            return (*receipts.progress(), subjects)

        await wait_until(done, progress, "every feedback, notice and subject", every=0.1)
    finally:
        await pool.close()
    assert held_at is not None
    return max(held_at, receipts.last())


async def closed(stack: IsolatedStack, records: int) -> dict[str, Any]:
    settings = stack.settings
    catalogue = load_catalogue(settings.catalogue_path)
    batch = make_batch(records)
    messages = encode(settings, batch)
    bare, bare_seconds = await passthrough(settings, stack.env, messages)

    producer = make_producer(settings)
    sent_at: dict[str, float] = {}
    async with receiving(settings, catalogue, sorted({d for d, _ in batch})) as receipts:
        await producer.start()
        try:
            first = time.monotonic()
            for m in messages:
                sent_at[m.record_id] = time.monotonic()
                await producer.send(m.topic, m.value, key=m.key)
            await producer.flush()
            produce_seconds = time.monotonic() - first
            expected_notices = notices_expected(
                catalogue, [d["catalogue_item"] for _, d in batch])
            end = await _wait_for_everything(settings, receipts, records, expected_notices)
        finally:
            await producer.stop()
    seconds = end - first
    rate = records / seconds
    return {
        "records": records, "end_to_end_seconds": round(seconds, 3),
        "records_per_second": round(rate, 1), "produce_seconds": round(produce_seconds, 3),
        "passthrough_events": len(messages), "passthrough_seconds": round(bare_seconds, 3),
        "passthrough_events_per_second": round(bare, 1), "ratio": round(rate / bare, 4),
        "feedback": dict(receipts.statuses), "notices": len(receipts.notices),
        "repeated_events": receipts.repeats,
        "feedback_ms": report.latency_summary(
            [(receipts.feedback[r] - t) * 1000 for r, t in sent_at.items()]),
        "notice_ms": report.latency_summary(notice_latencies(receipts, sent_at)),
        "penalty_notice_ms": report.latency_summary(
            notice_latencies(receipts, sent_at, kind="penalty")),
    }


async def paced(stack: IsolatedStack, rate: float, seconds: float) -> dict[str, Any]:
    settings = stack.settings
    catalogue = load_catalogue(settings.catalogue_path)
    records = max(1, round(rate * seconds))
    batch = make_batch(records)
    messages = encode(settings, batch)
    warmup = min(10.0, seconds / 6)

    producer = make_producer(settings)
    sent_at: dict[str, float] = {}
    lag = 0.0
    with report.collector_held():  # the receivers' own pauses would count as latency
        async with receiving(settings, catalogue, sorted({d for d, _ in batch})) as receipts:
            await producer.start()
            try:
                first = time.monotonic()
                for i, m in enumerate(messages):
                    due = first + i / rate
                    now = time.monotonic()
                    if due > now:
                        await asyncio.sleep(due - now)
                    # Open loop: sent on schedule whatever the answers; a late send is noted.
                    sent_at[m.record_id] = time.monotonic()
                    lag = max(lag, sent_at[m.record_id] - due)
                    await producer.send(m.topic, m.value, key=m.key)
                last_send = time.monotonic()
                await producer.flush()
                expected_notices = notices_expected(
                    catalogue, [d["catalogue_item"] for _, d in batch])
                await _wait_for_everything(settings, receipts, records, expected_notices)
            finally:
                await producer.stop()
    measured = {r: t for r, t in sent_at.items() if t >= first + warmup}
    return {
        "rate": rate, "seconds": seconds, "warmup_seconds": round(warmup, 2),
        "records": records, "measured_records": len(measured),
        "records_per_second": round(records / max(last_send - first, 1e-9), 1)
        if records > 1 else float(records),
        "max_send_lag_ms": round(lag * 1000, 1),
        "feedback": dict(receipts.statuses), "notices": len(receipts.notices),
        "repeated_events": receipts.repeats,
        "feedback_ms": report.latency_summary(
            [(receipts.feedback[r] - t) * 1000 for r, t in measured.items()]),
        "notice_ms": report.latency_summary(
            notice_latencies(receipts, sent_at, since=first + warmup)),
        "penalty_notice_ms": report.latency_summary(
            notice_latencies(receipts, sent_at, since=first + warmup, kind="penalty")),
    }


# --- the command -------------------------------------------------------------------------


async def _measure(stack: IsolatedStack, records: int, rate: float | None,
                   seconds: float) -> dict[str, Any]:
    processes = {p.label: p for p in stack.every_process}
    sampler = RssSampler(stack.settings, lambda: {n: p.pid() for n, p in processes.items()},
                         own=processes)
    sampler.start()
    try:
        part = await (paced(stack, rate, seconds) if rate else closed(stack, records))
        part.update(await service_metrics(stack))
    finally:
        part_rss = await sampler.stop()
    part["rss_mib"] = part_rss
    part["cpu_seconds"] = sampler.cpu()
    part["cpu_ms_per_record"] = {name: round(cpu * 1000 / part["records"], 3)
                                 for name, cpu in part["cpu_seconds"].items()}
    # Of Kafka's figure, what its JIT compiler spent: most of it on a broker started shortly
    # before the run, nothing per record (docs/performance.md, "Kafka's share").
    part["jit_ms_per_record"] = {name: round(cpu * 1000 / part["records"], 3)
                                 for name, cpu in sampler.jit_cpu().items()}
    return part


def run(records: int = 20_000, rate: float | None = None, seconds: float = 60,
        json_path: Any = None, base: int | None = None, replicas: int = 1) -> dict[str, Any]:
    """One process of each service; with `replicas` N > 1, then N of each in their consumer
    groups, same load, same broker, one after the other, and both figures side by side
    (`<part>` and `<part>_replicas`)."""
    command = (f"bench pipeline --rate {rate:g} --seconds {seconds:g}" if rate
               else f"bench pipeline --records {records}")
    if replicas > 1:
        command += f" --replicas {replicas}"
    document: dict[str, Any] = {}
    name = "paced" if rate else "pipeline"
    for processes in ([1, replicas] if replicas > 1 else [1]):
        stack = named_stack("bench", port_base(base), replicas=processes)
        document.setdefault("run", report.run_info(stack.settings, command))
        try:  # a bench stopped while its services start stops them too
            steadily(stack.start, "starting the services")
            part = report.run_async(_measure(stack, records, rate, seconds))
        finally:
            steadily(stack.stop, "stopping the services and dropping their data")
        part["processes_per_service"] = processes
        key = name if processes == 1 else f"{name}_replicas"
        document[key] = part
        print_part(name if processes == 1 else f"{name} ({processes} processes of each "
                   "service)", part)
    if replicas > 1:
        print_comparison(name, document[name], document[f"{name}_replicas"])
    report.write_json(json_path, document)
    return document


def print_comparison(name: str, one: dict[str, Any], many: dict[str, Any]) -> None:
    n = many["processes_per_service"]
    rows = [("records/s", f"{one['records_per_second']:,.0f} with 1 process of each "
                          f"service, {many['records_per_second']:,.0f} with {n} "
                          f"(x{many['records_per_second'] / one['records_per_second']:.2f})"),
            ("records/s per pass-through event/s", f"{one['ratio']:.3f} with 1, "
                                                   f"{many['ratio']:.3f} with {n} (each "
                                                   "against the bare pass-through of its own "
                                                   "run: the machine's load moves between "
                                                   "runs)"),
            ("feedback p50/p99", f"{one['feedback_ms']['p50']:,.0f}/"
                                 f"{one['feedback_ms']['p99']:,.0f} ms with 1, "
                                 f"{many['feedback_ms']['p50']:,.0f}/"
                                 f"{many['feedback_ms']['p99']:,.0f} ms with {n}"),
            ("cores", f"{os.cpu_count()} (services, Kafka, PostgreSQL and the load share "
                      "them)")]
    report.print_table(f"bench {name}: 1 process of each service beside {n}", rows)


def print_part(name: str, p: dict[str, Any]) -> None:
    if name.startswith("pipeline"):
        rows = [
            ("records", f"{p['records']:,} (feedback: {p['feedback']}, {p['notices']:,} "
                        f"notices; {p['repeated_events']} events received again, dropped)"),
            ("end to end", f"{p['records_per_second']:,.0f} records/s "
                           f"({p['end_to_end_seconds']:.1f} s; produced in "
                           f"{p['produce_seconds']:.1f} s)"),
            ("bare aiokafka pass-through", f"{p['passthrough_events_per_second']:,.0f} events/s "
                                           f"({p['passthrough_seconds']:.1f} s)"),
            ("ratio", f"{p['ratio']:.3f}"),
        ]
    else:
        rows = [
            ("rate", f"{p['rate']:g} records/s for {p['seconds']:g} s, open loop (sent "
                     f"{p['records_per_second']:,.0f}/s, at most {p['max_send_lag_ms']:,.0f} "
                     "ms behind schedule)"),
            ("measured", f"{p['measured_records']:,} records after the first "
                         f"{p['warmup_seconds']:g} s (feedback: {p['feedback']}, "
                         f"{p['notices']:,} notices; {p['repeated_events']} events received "
                         "again, dropped)"),
        ]
    rows += [
        ("feedback p50/p95/p99/max", report.fmt_ms(p["feedback_ms"])),
        ("notice p50/p95/p99/max", report.fmt_ms(p["notice_ms"])),
        ("penalty notice p50/p95/p99/max", report.fmt_ms(p["penalty_notice_ms"])),
        ("time in batch transactions", ", ".join(f"{k} {v:.1f} s"
                                                 for k, v in p["batch_seconds"].items())),
        ("mean age at consume", ", ".join(f"{k} {v:,.0f} ms"
                                          for k, v in p["consumed_age_ms"].items())),
        ("mean outbox age at send", ", ".join(f"{k} {v:,.0f} ms"
                                              for k, v in p["outbox_age_ms"].items())),
        ("CPU per record", ", ".join(f"{k} {v:.2f} ms"
                                     for k, v in p["cpu_ms_per_record"].items())),
        ("of which JIT compiling", ", ".join(f"{k} {v:.2f} ms"
                                            for k, v in p.get("jit_ms_per_record", {}).items())),
        ("peak memory", report.fmt_rss(p["rss_mib"])),
    ]
    report.print_table(f"bench {name}", rows)

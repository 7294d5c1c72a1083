"""`bench replay`: how long a registry with an empty database takes to rebuild every archive
from `credit.records.accepted` (what a new registry, or one restored from nothing, does).

Generated records (bench/generator.py) are written to a bench copy of
`credit.records.accepted` as ingest writes them (its event type, source and encoding, keyed
by subject); then the registry alone starts on an empty database, and the clock runs from
its start until its stored positions reach the end of the topic and every snapshot it wrote
is on `credit.subjects.changed` (its outbox is empty). The snapshots are then counted on the
topic: every subject must be there.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import report
from bench.generator import City
from bench.rss import RssSampler
from bench.stacks import caught_up, end_offsets, named_stack, port_base, steadily, wait_until
from deploy.stack import IsolatedStack, ServiceProcess
from shared.catalogue import load_catalogue
from shared.contract import AcceptedRecord, RecordSubmission
from shared.kafka import client_options, make_producer
from shared.messages import OutboundEvent
from shared.settings import Settings
from shared.topics import RECORDS_ACCEPTED, RECORDS_STATUS, SUBJECTS_CHANGED

INGEST_SOURCE = "xinyong/ingest"  # the source ingest gives the events it writes


async def write_accepted(settings: Settings, ingest: dict[str, str], records: int, seed: int,
                         as_of: date) -> tuple[int, set[str]]:
    """(records written, subject keys): the generated submissions as ingest would have
    accepted them, written with ingest's own Kafka user (the topic's one writer)."""
    city = City(seed, as_of, load_catalogue(settings.catalogue_path))
    producer = make_producer(settings, **ingest)
    await producer.start()
    keys: set[str] = set()
    written = 0
    accepted_at = datetime.now(UTC)
    try:
        for sub in city.stream(submissions=records):
            accepted = AcceptedRecord(
                department=sub.department, submission=RecordSubmission.model_validate(sub.data),
                source_event_id=sub.event_id, accepted_at=accepted_at)
            event = OutboundEvent.of(RECORDS_ACCEPTED, INGEST_SOURCE, sub.key, accepted)
            await producer.send(settings.topic(RECORDS_ACCEPTED.name), event.value,
                                key=sub.key.encode())
            keys.add(sub.key)
            written += 1
        await producer.flush()
    finally:
        await producer.stop()
    return written, keys


async def snapshot_keys(settings: Settings) -> tuple[int, set[str]]:
    """(snapshot events, distinct subjects) on credit.subjects.changed: keys only, so that a
    million snapshots are counted without being parsed."""
    ends = await end_offsets(settings, {SUBJECTS_CHANGED.name: SUBJECTS_CHANGED.partitions})
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed",
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    keys: set[str] = set()
    events = 0
    try:
        parts = [TopicPartition(settings.topic(t), p) for t, p in ends]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        remaining = {TopicPartition(settings.topic(t), p): end for (t, p), end in ends.items()
                     if end > 0}
        deadline = time.monotonic() + 600
        while remaining and time.monotonic() < deadline:
            for tp, batch in (await consumer.getmany(timeout_ms=500, max_records=10_000)).items():
                for r in batch:
                    keys.add(r.key.decode())
                    events += 1
                if batch and batch[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
    finally:
        await consumer.stop()
    return events, keys


async def _replay(stack: IsolatedStack, registry: ServiceProcess, records: int, seed: int,
                  as_of: date) -> dict[str, Any]:
    settings = stack.settings
    began = time.monotonic()
    written, subjects = await write_accepted(settings, stack.service_credentials("ingest"),
                                             records, seed, as_of)
    write_seconds = time.monotonic() - began
    ends = await end_offsets(settings, {RECORDS_ACCEPTED.name: RECORDS_ACCEPTED.partitions,
                                        RECORDS_STATUS.name: RECORDS_STATUS.partitions})
    sampler = RssSampler(settings, lambda: {"registry": registry.pid()}, own=["registry"])
    started = time.monotonic()
    await asyncio.to_thread(registry.start, stack.env)
    sampler.start()
    try:
        pool: asyncpg.Pool | None = None

        async def done() -> bool:
            nonlocal pool
            if pool is None:
                try:  # the registry creates its tables as it starts
                    pool = await asyncpg.create_pool(settings.dsn("registry"), min_size=1,
                                                     max_size=1)
                except (OSError, asyncpg.PostgresError):
                    return False
            try:
                return await caught_up(pool, ends)
            except asyncpg.UndefinedTableError:
                return False

        async def progress() -> Any:
            if registry.pid() is None:
                raise RuntimeError(f"the registry exited; see {registry.log_file}:\n"
                                   f"{registry.tail()}")
            if pool is None:
                return None
            try:
                return await pool.fetchval(
                    "SELECT coalesce(sum(next_offset), 0) FROM consumed_positions")
            except asyncpg.UndefinedTableError:
                return None

        try:
            finished = await wait_until(done, progress, "the registry to replay everything",
                                        every=0.25)
        finally:
            if pool is not None:
                await pool.close()
    finally:
        rss = await sampler.stop()
    seconds = finished - started
    events, keys = await snapshot_keys(settings)
    missing = len(subjects - keys)
    return {
        "records": written, "subjects": len(subjects), "seed": seed,
        "write_seconds": round(write_seconds, 1), "replay_seconds": round(seconds, 2),
        "records_per_second": round(written / seconds, 1),
        "snapshots": events, "subjects_with_snapshot": len(keys & subjects),
        "subjects_missing": missing, "rss_mib": rss,
        "rss_mib_by_quarter": sampler.by_quarter(),
        # CPU time of the registry, Kafka and this run's PostgreSQL backends during the
        # replay: what it cost whatever else the shared machine was doing.
        "cpu_seconds": sampler.cpu(),
        "cpu_ms_per_record": {name: round(cpu * 1000 / max(written, 1), 3)
                              for name, cpu in sampler.cpu().items()},
    }


def run(records: int, seed: int = 1, as_of: date | None = None, json_path: Path | None = None,
        base: int | None = None) -> dict[str, Any]:
    stack = named_stack("replay", port_base(base))
    document: dict[str, Any] = {"run": report.run_info(
        stack.settings, f"bench replay --records {records} --seed {seed}")}
    registry = stack.processes["registry"]
    from deploy.stack import infra_up, provision

    def prepare() -> None:
        infra_up(stack.settings)
        asyncio.run(provision(stack.settings))
        stack.act_as("bench")

    steadily(prepare, "creating the databases and topics")
    try:
        part = report.run_async(_replay(stack, registry, records, seed, as_of or date.today()))
    finally:
        steadily(stack.stop, "stopping the registry and dropping its data")
    document["replay"] = part
    print_part(part)
    report.write_json(json_path, document)
    if part["subjects_missing"]:
        raise SystemExit(f"{part['subjects_missing']} subjects have no snapshot")
    return document


def print_part(p: dict[str, Any]) -> None:
    report.print_table("bench replay", [
        ("records", f"{p['records']:,} accepted records of {p['subjects']:,} subjects "
                    f"(written in {p['write_seconds']:,.1f} s)"),
        ("replay into an empty registry", f"{p['replay_seconds']:,.1f} s, "
                                          f"{p['records_per_second']:,.0f} records/s"),
        ("snapshots", f"{p['snapshots']:,} on credit.subjects.changed, "
                      f"{p['subjects_with_snapshot']:,} subjects ({p['subjects_missing']} "
                      "missing)"),
        ("CPU per record", ", ".join(f"{k} {v:.2f} ms"
                                     for k, v in p["cpu_ms_per_record"].items())),
        ("peak memory", report.fmt_rss(p["rss_mib"])),
        ("by quarter of the run", report.fmt_rss_quarters(p.get("rss_mib_by_quarter", {}))),
    ])

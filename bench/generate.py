"""`bench generate`: a synthetic Zhuhai (bench/generator.py) sent through the departments'
inbound topics, as departments would send it, and processed by the four services until the
publisher serves all of it.

The city is kept for later runs (`bench queries`): its databases and topics stay, under the
name `zhuhai<subjects>s<seed>`, and a manifest `<home>/bench/zhuhai<subjects>s<seed>.json`
records what it holds. `--reuse` takes a complete kept city of the same size and seed as it
is instead of generating it again; without it, such a city is dropped and generated anew.
`bench clean` drops every kept city.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import report
from bench.generator import City
from bench.rss import RssSampler
from bench.stacks import (
    caught_up,
    city_name,
    end_offsets,
    find_city,
    kept_cities,
    manifests_dir,
    named_stack,
    partitions_of,
    patiently,
    port_base,
    save_city,
    steadily,
    stop_processes,
    wait_until,
)
from deploy import credentials
from deploy.stack import IsolatedStack, infra_up, wipe
from shared.catalogue import Catalogue, load_catalogue
from shared.envelope import submission_json
from shared.kafka import client_options, make_producer
from shared.settings import Settings
from shared.topics import (
    DEAD_LETTERS,
    FEEDBACK,
    INBOUND,
    NOTICES,
    RECORDS_ACCEPTED,
    RECORDS_STATUS,
    SERVICES,
    SUBJECTS_CHANGED,
)


class FeedbackCount:
    """The departments' feedback consumers: statuses counted once per event (an event a relay
    sent again is counted apart), the first rejections kept."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.rejections: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.repeats = 0

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    async def run(self, settings: Settings, catalogue: Catalogue, started: asyncio.Event,
                  stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False,
                                    auto_offset_reset="earliest",
                                    isolation_level="read_committed")
        await consumer.start()
        try:
            parts = [TopicPartition(settings.topic(FEEDBACK.of(d).name), p)
                     for d in catalogue.departments for p in range(FEEDBACK.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            started.set()
            while not stop.is_set():
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for r in records:
                        event = json.loads(r.value)
                        if event["id"] in self.seen:
                            self.repeats += 1
                            continue
                        self.seen.add(event["id"])
                        data = event["data"]
                        self.statuses[data["status"]] += 1
                        if data["status"] == "rejected" and len(self.rejections) < 5:
                            self.rejections.append(data)
        finally:
            await consumer.stop()


async def settle(settings: Settings, feedback: FeedbackCount, sent: int) -> float:
    """Wait until every submission has its feedback and ingest, registry and publisher have
    each applied everything before them and relayed everything they wrote; returns when."""
    pools = {s: await patiently(lambda s=s: asyncpg.create_pool(  # type: ignore[misc]
                 settings.dsn(s), min_size=1, max_size=1))
             for s in ("ingest", "registry", "publisher")}
    catalogue = load_catalogue(settings.catalogue_path)
    inputs = {
        "ingest": partitions_of(settings, [INBOUND.of(d).name for d in catalogue.departments]),
        "registry": partitions_of(settings, [RECORDS_ACCEPTED.name, RECORDS_STATUS.name]),
        "publisher": partitions_of(settings, [SUBJECTS_CHANGED.name]),
    }
    try:
        for service in ("ingest", "registry", "publisher"):
            async def done(service: str = service) -> bool:
                if service == "ingest" and feedback.total < sent:
                    return False
                # Upstream is done: the ends are final.
                return await caught_up(pools[service],
                                       await end_offsets(settings, inputs[service]))

            async def progress(service: str = service) -> Any:
                row = await pools[service].fetchrow(
                    "SELECT (SELECT coalesce(sum(next_offset), 0) FROM consumed_positions)"
                    " AS applied, (SELECT count(*) FROM outbox) AS pending")
                return feedback.total, row["applied"], row["pending"]

            await wait_until(done, progress, f"{service} to apply everything", every=0.5)
        return time.monotonic()
    finally:
        for pool in pools.values():
            await pool.close()


async def holdings(settings: Settings) -> dict[str, Any]:
    """What the services hold at the end, from their databases and topics."""
    catalogue = load_catalogue(settings.catalogue_path)
    publisher = await asyncpg.connect(settings.dsn("publisher"))
    registry = await asyncpg.connect(settings.dsn("registry"))
    try:
        subjects = await publisher.fetchrow(
            "SELECT count(*) AS subjects, count(*) FILTER (WHERE discoverable) AS discoverable"
            " FROM subjects")
        entries = await publisher.fetch(
            "SELECT list, status, count(*) AS n FROM list_entries GROUP BY list, status")
        notices = await publisher.fetchval("SELECT count(*) FROM notices")
        records = await registry.fetchval("SELECT count(*) FROM records")
    finally:
        await publisher.close()
        await registry.close()
    listed: dict[str, dict[str, int]] = {}
    for e in entries:
        listed.setdefault(e["list"], {})[e["status"]] = e["n"]
    dead = await end_offsets(settings, {DEAD_LETTERS.of(s).name: 1 for s in SERVICES})
    notice_topics = await end_offsets(
        settings, {NOTICES.of(a).name: NOTICES.partitions for a in catalogue.agencies})
    return {
        "publisher_subjects": subjects["subjects"],
        "discoverable": subjects["discoverable"],
        "registry_records": records,
        "list_entries": dict(sorted(listed.items())),
        "notices": notices,
        "notices_on_agency_topics": sum(notice_topics.values()),
        "dead_letters": {topic.rsplit(".", 1)[1]: n for (topic, _), n in dead.items()},
    }


async def _generate(stack: IsolatedStack, subjects: int, seed: int,
                    as_of: date) -> dict[str, Any]:
    settings = stack.settings
    catalogue = load_catalogue(settings.catalogue_path)
    sampler = RssSampler(settings, lambda: {n: p.pid() for n, p in stack.processes.items()},
                         own=stack.processes)
    sampler.start()
    feedback, started, stop = FeedbackCount(), asyncio.Event(), asyncio.Event()
    consumer = asyncio.create_task(feedback.run(settings, catalogue, started, stop))
    producer = make_producer(settings)
    city = City(seed, as_of, catalogue)
    try:
        await started.wait()
        await producer.start()
        first = time.monotonic()
        sent = 0
        for sub in city.stream(subjects=subjects):
            await producer.send(settings.topic(INBOUND.of(sub.department).name),
                                submission_json(sub.department, sub.data, sub.event_id),
                                key=sub.key.encode())
            sent += 1
        await producer.flush()
        sent_seconds = time.monotonic() - first
        end = await settle(settings, feedback, sent)
        held = await patiently(lambda: holdings(settings))
    finally:
        stop.set()
        await consumer
        await producer.stop()
        rss = await sampler.stop()
        rss_by_quarter = sampler.by_quarter()
    seconds = end - first
    tally = city.tally.as_dict()
    expected = tally["expected_listed_by_list"]
    on_lists = {name: by_status.get("pending", 0) + by_status.get("active", 0)
                for name, by_status in held["list_entries"].items()}
    return {
        "subjects": subjects, "seed": seed, "as_of": as_of.isoformat(),
        "submissions": sent, "records": tally["records"],
        "records_per_subject": round(tally["records"] / max(subjects, 1), 2),
        "seconds": round(seconds, 1), "send_seconds": round(sent_seconds, 1),
        "records_per_second": round(sent / seconds, 1),
        "feedback": dict(feedback.statuses), "rejections": feedback.rejections,
        "repeated_feedback_events": feedback.repeats,
        **{k: tally[k] for k in ("subjects_by_type", "subjects_by_category",
                                 "records_by_item", "withdrawals_by_item")},
        "expected_listed": expected,
        "listed": on_lists,
        "listed_share": {k: round(v / max(subjects, 1), 4) for k, v in on_lists.items()},
        "listed_as_expected": all(on_lists.get(k, 0) == v for k, v in expected.items()),
        **held,
        "rss_mib": rss,
        "rss_mib_by_quarter": rss_by_quarter,
    }


def drop_city(name: str, base: int) -> None:
    stack = named_stack("zh", base, run=name)
    stop_processes(stack)
    steadily(lambda: asyncio.run(_wipe_and_wait(stack.settings)), f"dropping {name}")
    (manifests_dir() / f"{name}.json").unlink(missing_ok=True)


async def _wipe_and_wait(settings: Settings) -> None:
    """Drop the databases and delete the topics, and wait until the broker has deleted them
    (it does so in the background: a topic created again meanwhile would vanish)."""
    await wipe(settings)
    kafka = credentials.admin(settings)  # the city's own users went with it
    deadline = time.monotonic() + 60
    while any(t.startswith(settings.topic_namespace)
              for t in await asyncio.to_thread(kafka.topic_names)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {settings.topic_namespace}* still there after 60 s")
        await asyncio.sleep(0.5)


def run(subjects: int, seed: int, reuse: bool = False, as_of: date | None = None,
        json_path: Path | None = None, base: int | None = None) -> dict[str, Any]:
    base = port_base(base)
    name = city_name(subjects, seed)
    command = f"bench generate --subjects {subjects} --seed {seed}" + (" --reuse" * reuse)
    kept = find_city(subjects, seed)
    if reuse and kept is not None:
        stack = named_stack("zh", base, run=name)
        document = {"run": report.run_info(stack.settings, command),
                    "generate": {**kept.manifest["figures"], "reused": True}}
        print(f"reusing the kept city {name} (generated {kept.manifest['generated_at']}, "
              f"manifest {kept.path})")
        print_part(document["generate"])
        report.write_json(json_path, document)
        return document
    stack = named_stack("zh", base, run=name)
    steadily(lambda: infra_up(stack.settings), "starting Kafka and PostgreSQL")
    drop_city(name, base)  # a clean slate: an older or unfinished city of the same name
    document = {"run": report.run_info(stack.settings, command)}
    try:
        steadily(stack.start, "starting the services")
        part = report.run_async(_generate(stack, subjects, seed, as_of or date.today()))
    except BaseException:
        # An unfinished city is not kept (nor a stack stopped while it started).
        steadily(stack.stop, "stopping the services and dropping their data")
        raise
    stop_processes(stack)
    part["reused"] = False
    save_city(name, {"name": name, "subjects": subjects, "seed": seed,
                     "as_of": part["as_of"], "env": {k: v for k, v in stack.env.items()
                                                     if k in ("XINYONG_TOPIC_NAMESPACE",
                                                              "XINYONG_DB_PREFIX")},
                     "complete": True, "commit": document["run"]["commit"],
                     "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "figures": part})
    document["generate"] = part
    print_part(part)
    print(f"\nkept as {name} for `bench queries` (manifest {manifests_dir() / (name + '.json')};"
          " `bench clean` drops it)")
    report.write_json(json_path, document)
    return document


def clean(subjects: int | None = None, seed: int | None = None,
          base: int | None = None) -> list[str]:
    """Drop the kept cities (of that size and seed, if given): databases, topics, manifest."""
    names = [c.name for c in kept_cities() if (subjects is None or c.subjects == subjects)
             and (seed is None or c.seed == seed)]
    for name in names:
        drop_city(name, port_base(base))
    return names


def print_part(p: dict[str, Any]) -> None:
    report.print_table("bench generate", [
        ("city", f"{p['subjects']:,} subjects, seed {p['seed']}, as of {p['as_of']}"
                 + (" (reused)" if p.get("reused") else "")),
        ("subjects by type", ", ".join(f"{k} {v:,}" for k, v in p["subjects_by_type"].items())),
        ("records", f"{p['records']:,} ({p['records_per_subject']} a subject; "
                    f"{p['submissions']:,} submissions with withdrawals)"),
        ("through the pipeline", f"{p['seconds']:,.1f} s, {p['records_per_second']:,.0f} "
                                 f"submissions/s (sent in {p['send_seconds']:,.1f} s)"),
        ("feedback", ", ".join(f"{k} {v:,}" for k, v in p["feedback"].items())
         + f" ({p.get('repeated_feedback_events', 0):,} received again, dropped)"),
        ("publisher", f"{p['publisher_subjects']:,} subjects ({p['discoverable']:,} "
                      f"discoverable), {p['notices']:,} notices"),
        ("listed (pending + active)", ", ".join(
            f"{k} {v:,} ({p['listed_share'][k]:.1%})" for k, v in p["listed"].items())
         + ("" if p["listed_as_expected"] else f"; expected {p['expected_listed']}")),
        ("dead letters", ", ".join(f"{k} {v}" for k, v in p["dead_letters"].items())),
        ("peak memory", report.fmt_rss(p["rss_mib"])),
        ("by quarter of the run", report.fmt_rss_quarters(p.get("rss_mib_by_quarter", {}))),
    ])

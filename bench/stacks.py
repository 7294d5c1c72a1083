"""The stacks benchmarks run on, and how a benchmark knows the services have finished.

Every run gets the four services on its own topic namespace, databases and ports
(`deploy.stack.IsolatedStack`), beside whatever else uses the broker. A generated city
(`bench generate`) is kept after its run, under a name derived from its size and seed, so
that `bench queries` can serve it again; a manifest under `<home>/bench/` says where it is.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from deploy.stack import IsolatedStack
from shared.db import TRANSIENT
from shared.kafka import client_options
from shared.settings import Settings, get_settings

T = TypeVar("T")
DEFAULT_PORT_BASE = 19000


def port_base(option: int | None) -> int:
    """The HTTP ports of a bench stack: an option, else XINYONG_BENCH_PORT_BASE, else 19000
    (so that a bench can run beside the test suite and the demo stack)."""
    if option is not None:
        return option
    return int(os.environ.get("XINYONG_BENCH_PORT_BASE", DEFAULT_PORT_BASE))


def named_stack(label: str, base: int, run: str | None = None, replicas: int = 1,
                **extra_env: str) -> IsolatedStack:
    """An isolated stack whose own clients run as the benchmark's Kafka user (it sends as
    the parties, receives every topic, keeps its pass-through topics); with `run`, on that
    fixed topic namespace and database prefix (a kept city is found again by its name);
    `replicas` processes of each service. The real clock, as in production: a test clock
    reads its file's time at every clock reading (6 % of the publisher's CPU under
    `bench queries`)."""
    return IsolatedStack(label, base, run, "bench", replicas, None, test_clock=False,
                         **extra_env)


def steadily(step: Callable[[], T], what: str, attempts: int = 4) -> T:
    """A step of starting or stopping a stack, again when it failed because the database
    was briefly away (the machine's PostgreSQL is shared, and outage tests stop it: its
    start script finds it shutting down, a service that started then exits, a database
    cannot be dropped). Each part of a stack's
    start and stop is idempotent, so a step can be taken again."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except (*TRANSIENT, RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
            if attempt == attempts:
                raise
            print(f"bench: {what} failed ({type(exc).__name__}: {str(exc)[:200]}); "
                  "again in 5 s", file=sys.stderr)
            time.sleep(5)
    raise AssertionError("unreachable")


def stop_processes(stack: IsolatedStack) -> None:
    """Stop the services but keep their databases and topics (a kept city)."""
    for p in stack.every_process:
        p.stop()


# --- kept cities ---------------------------------------------------------------------------


def city_name(subjects: int, seed: int) -> str:
    return f"zhuhai{subjects}s{seed}"


def manifests_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "bench"


@dataclass(frozen=True)
class City:
    """A generated city kept for later runs."""

    name: str
    subjects: int
    seed: int
    manifest: dict[str, Any]

    @property
    def path(self) -> Path:
        return manifests_dir() / f"{self.name}.json"


def save_city(name: str, manifest: dict[str, Any]) -> Path:
    path = manifests_dir() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def kept_cities() -> list[City]:
    out = []
    for path in sorted(manifests_dir().glob("zhuhai*.json"), key=lambda p: p.stat().st_mtime):
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
            out.append(City(path.stem, int(m["subjects"]), int(m["seed"]), m))
        except (ValueError, KeyError):
            continue
    return out


def find_city(subjects: int | None, seed: int | None) -> City | None:
    """The complete kept city of that size and seed; without them, the latest one."""
    matches = [c for c in kept_cities() if c.manifest.get("complete")
               and (subjects is None or c.subjects == subjects)
               and (seed is None or c.seed == seed)]
    return matches[-1] if matches else None


# --- Kafka positions -------------------------------------------------------------------------


async def end_offsets(settings: Settings, topics: dict[str, int]) -> dict[tuple[str, int], int]:
    """The end offset of every partition of the (contract-named) topics."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(settings.topic(t), p) for t, n in topics.items()
                 for p in range(n)]
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    ns = len(settings.topic_namespace)
    return {(tp.topic[ns:], tp.partition): offset for tp, offset in ends.items()}


async def caught_up(pool: asyncpg.Pool, ends: dict[tuple[str, int], int]) -> bool:
    """Has the service applied every message up to `ends` and relayed every event it
    wrote? (Its positions are in its own database, written with the effects.)"""
    rows = await pool.fetch("SELECT topic, partition, next_offset FROM consumed_positions")
    position = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    if any(position.get(tp, 0) < end for tp, end in ends.items()):
        return False
    return not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM outbox)")


class Stalled(RuntimeError):
    """Nothing moved for too long: something was lost or a service stopped."""


async def wait_until(done: Callable[[], Awaitable[bool]],
                     progress: Callable[[], Awaitable[Any]], what: str,
                     stall_seconds: float = 120, every: float = 0.05) -> float:
    """Poll `done` until it holds; returns the monotonic time it first held. Fails when
    `progress` returns the same value for `stall_seconds`. A database that is briefly away
    (the machine's PostgreSQL is shared, and outage tests stop it) is waited out like the
    services wait it out."""
    last, since = await _or(progress, None), time.monotonic()
    while not await _or(done, False):
        await asyncio.sleep(every)
        now_progress = await _or(progress, last)
        if now_progress != last:
            last, since = now_progress, time.monotonic()
        elif time.monotonic() - since > stall_seconds:
            raise Stalled(f"no progress for {stall_seconds:.0f} s while waiting for {what} "
                          f"(last seen: {last})")
    return time.monotonic()


async def _or(ask: Callable[[], Awaitable[T]], default: T) -> T:
    try:
        return await ask()
    except TRANSIENT:
        return default


async def patiently(ask: Callable[[], Awaitable[T]], seconds: float = 180) -> T:
    """`ask`, again while the database is away, for up to `seconds`."""
    async for attempt in AsyncRetrying(retry=retry_if_exception_type(TRANSIENT),
                                       wait=wait_exponential(multiplier=0.2, max=5),
                                       stop=stop_after_delay(seconds), reraise=True):
        with attempt:
            return await ask()
    raise AssertionError("unreachable")


def partitions_of(settings: Settings, names: Iterable[str]) -> dict[str, int]:
    from shared.catalogue import load_catalogue
    from shared.topics import all_topics

    counts = {t.name: t.partitions for t in all_topics(load_catalogue(settings.catalogue_path))}
    return {n: counts[n] for n in names}

"""The restore drill (`./xinyong drill restore [--service registry]`, and a test of the suite:
tests/integration/test_restore_drill.py): what an operator does when a database is lost,
on the running stack, with a check that it worked.

1. Wait until the services have applied everything and relayed what they wrote.
2. Back up its database (`pg_dump -Fc`, deploy/backup.py).
3. Send more records, as the departments do, and wait until every service has applied
   them (the drilled one's input is complete once the services upstream have relayed it):
   the drilled service's state then is the state *without* a restore (fingerprinted
   below), and the ids of everything it has emitted are noted.
4. Stop the service, restore the dump, start it again: it resumes from the dump's positions
   and replays the rest from Kafka.
5. Once it has caught up again, its state must equal the one of step 3, table by table,
   and it must have emitted no event id that was not there before (a replay re-emits the
   same ids: shared/messages.py::caused_id).

A table's fingerprint is its row count and the MD5 of its rows sorted, leaving out the
columns the database fills at apply time (a default of now(), a sequence, a random id): a
replay applies the same inputs later, not differently. Bookkeeping tables (positions,
processed ids, the outbox, mismatches, starts) are left out: they record the restore
itself.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy import backup, demo, stack
from deploy.kafka_admin import SERVICE_TOPICS
from deploy.secrets import admin_password
from shared.access import Declared
from shared.catalogue import load_catalogue
from shared.db import TRANSIENT
from shared.kafka import client_options
from shared.settings import Settings
from shared.topics import DEAD_LETTERS, TopicFamily, all_topics

BOOKKEEPING = {"schema_migrations", "consumed_positions", "processed_events", "outbox",
               "outbox_set_aside", "position_mismatches", "service_starts"}
_VOLATILE_DEFAULT = ("now()", "nextval(", "gen_random_uuid(", "random(", "clock_timestamp(",
                     "statement_timestamp(", "transaction_timestamp(", "CURRENT_TIMESTAMP")

Fingerprint = dict[str, tuple[int, str]]


async def fingerprint(settings: Settings, service: str) -> Fingerprint:
    """Table -> (rows, MD5 of the sorted rows without their apply-time columns)."""
    conn = await asyncpg.connect(settings.dsn(service), timeout=10)
    try:
        tables = [r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE' ORDER BY table_name")
            if r["table_name"] not in BOOKKEEPING]
        out: Fingerprint = {}
        for table in tables:
            columns = [r["column_name"] for r in await conn.fetch(
                "SELECT column_name, column_default FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                table)
                if not any(v in (r["column_default"] or "") for v in _VOLATILE_DEFAULT)]
            row = "ROW(" + ", ".join(f'"{c}"' for c in columns) + ")::text"
            found = await conn.fetchrow(
                f'SELECT count(*) AS n, md5(coalesce(string_agg(r, E\'\\n\' ORDER BY r), \'\'))'
                f' AS h FROM (SELECT {row} AS r FROM "{table}") t')
            out[table] = (int(found["n"]), str(found["h"]))
        return out
    finally:
        await conn.close()


def produced_topics(settings: Settings, service: str) -> list[str]:
    """Every topic the service writes (contract names)."""
    catalogue = load_catalogue(settings.catalogue_path)
    names = [t.name for t in all_topics(catalogue)]
    _, produces = SERVICE_TOPICS[service]

    def members(declared: Declared) -> list[str]:
        if isinstance(declared, TopicFamily):
            return [n for n in names if n.startswith(declared.prefix + ".")]
        return [declared.name]

    return sorted({n for d in produces for n in members(d)} | {DEAD_LETTERS.of(service).name})


async def emitted_ids(settings: Settings, topics: Sequence[str]) -> dict[str, int]:
    """Event id -> how many times it is on the topics, from their start to their end now."""
    consumer = AIOKafkaConsumer(**client_options(settings, settings.kafka_admin_username,
                                                 admin_password(settings)),
                                enable_auto_commit=False, auto_offset_reset="earliest")
    counts = {t.name: t.partitions for t in all_topics(load_catalogue(settings.catalogue_path))}
    await consumer.start()
    try:
        parts = [TopicPartition(settings.topic(t), p) for t in topics for p in range(counts[t])]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        ids: dict[str, int] = {}
        done = {tp for tp, end in ends.items() if end == 0}
        while len(done) < len(parts):
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for r in records:
                    event_id = _event_id(r.value)
                    ids[event_id] = ids.get(event_id, 0) + 1
                    if r.offset + 1 >= ends[tp]:
                        done.add(tp)
        return ids
    finally:
        await consumer.stop()


def _event_id(value: bytes | None) -> str:
    import json

    try:
        return str(json.loads(value or b"")["id"])
    except (ValueError, KeyError, TypeError):
        return f"<unreadable {hash(value)}>"


async def caught_up(settings: Settings, service: str) -> bool:
    """The service has applied every message there is on what it consumes, and relayed
    every event it wrote."""
    logs = await backup.observe(settings, service)
    conn = await asyncpg.connect(settings.dsn(service), timeout=10)
    try:
        rows = await conn.fetch("SELECT topic, partition, next_offset FROM consumed_positions")
        pending = await conn.fetchval("SELECT count(*) FROM outbox")
    finally:
        await conn.close()
    stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    return not pending and all(stored.get(part, 0) >= log.log_end or log.log_end == 0
                               for part, log in logs.items())


async def settled(settings: Settings) -> bool:
    """Every service caught up, upstream first: once ingest has relayed everything, the
    registry's input is complete, and so on down the flow."""
    for service in ("ingest", "objection", "registry", "publisher"):
        if not await caught_up(settings, service):
            return False
    return True


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if await check():
                return
        except TRANSIENT:
            pass  # the database restarting, or the restored one not there yet
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached in {seconds:g} s: {what}")
        await asyncio.sleep(0.5)


def drill_records(count: int, tag: str) -> list[tuple[str, dict[str, Any]]]:
    """About `count` records of every department (demo data's mix), ids of their own."""
    out = []
    for dept, data in demo.demo_records(seed=random.randrange(1 << 30),
                                        subjects=max(1, count // 2)):
        data["record_id"] = f"DRILL{tag}-{data['record_id']}"
        out.append((dept, data))
        if len(out) >= count:
            break
    return out


@dataclass(frozen=True)
class DrillReport:
    service: str
    dump: Path
    records: int
    before: Fingerprint  # the state without the restore
    after: Fingerprint  # the state after restore and replay
    replayed: int  # messages the restored database applied again
    ids_before: int
    new_ids: list[str]  # emitted after the restore, never before: must be none
    seconds: float

    @property
    def differences(self) -> list[str]:
        return [f"{t}: {self.before.get(t)} before, {self.after.get(t)} after"
                for t in sorted(set(self.before) | set(self.after))
                if self.before.get(t) != self.after.get(t)]

    @property
    def passed(self) -> bool:
        return not self.differences and not self.new_ids

    def lines(self) -> list[str]:
        rows = sum(n for n, _ in self.after.values())
        return [
            f"restore drill of {self.service}: {'PASSED' if self.passed else 'FAILED'} "
            f"in {self.seconds:.0f} s",
            f"  dump {self.dump} ({self.dump.stat().st_size:,} bytes), then {self.records} "
            "records sent",
            f"  restored and replayed {self.replayed} messages from Kafka",
            f"  state: {len(self.after)} tables, {rows:,} rows; "
            + ("equal to the state without the restore" if not self.differences else
               "DIFFERENT: " + "; ".join(self.differences)),
            f"  events: {self.ids_before:,} ids emitted before; "
            + ("no new id after the replay" if not self.new_ids else
               f"{len(self.new_ids)} NEW ids, e.g. {self.new_ids[:3]}"),
        ]


async def _service_state(settings: Settings, service: str) -> tuple[Fingerprint, dict[str, int]]:
    await until(lambda: settled(settings), "every service caught up")
    return (await fingerprint(settings, service),
            await emitted_ids(settings, produced_topics(settings, service)))


def run(settings: Settings, service: str = "registry", records: int = 200,
        env: Mapping[str, str] | None = None, force: bool = False,
        send: Callable[[list[tuple[str, dict[str, Any]]]], Coroutine[Any, Any, int]]
        | None = None,
        ) -> DrillReport:
    """The drill on the running stack; `env`: what the service's processes are started
    with (the stack's); `send`: how records reach the departments' topics (default: as the
    departments, with credentials issued for it)."""
    started = time.monotonic()
    send = send or (lambda items: stack.produce_as_departments(settings, items))
    asyncio.run(until(lambda: settled(settings), "every service caught up"))
    [dump] = backup.backup(settings, [service])
    batch = drill_records(records, uuid.uuid4().hex[:6])
    asyncio.run(send(batch))
    before, ids_before = asyncio.run(_service_state(settings, service))

    running = [p for p in stack.instances(settings, [service]) if p.pid() is not None]
    for proc in running:
        proc.stop()
    restored = backup.restore(settings, service, dump, force=force)
    for proc in running or stack.services(settings, [service]):
        proc.start(env)
    for proc in running or stack.services(settings, [service]):
        proc.wait_ready(120)
    after, ids_after = asyncio.run(_service_state(settings, service))
    return DrillReport(service, dump, len(batch), before, after, restored.replays,
                       len(ids_before), sorted(set(ids_after) - set(ids_before)),
                       time.monotonic() - started)

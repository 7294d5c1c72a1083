"""Workers killed with SIGKILL mid-stream and restarted: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from deploy.stack import ServiceProcess
from shared.settings import Settings
from tests import polling
from tests.integration import kit
from tests.integration.conftest import ENV, TopicWatcher
from tests.integration.helpers import enterprise, record
from tests.integration.kit import send

pytestmark = pytest.mark.integration

RECORDS = 3000


async def _produce(producer: AIOKafkaProducer, settings: Settings,
                   batch: list[dict[str, Any]]) -> None:
    for i in range(0, len(batch), 100):
        await asyncio.gather(*(send(producer, settings, d["catalogue_item"].split(".")[0], d)
                               for d in batch[i:i + 100]))
        await asyncio.sleep(0.05)


_wait_until = functools.partial(polling.until, timeout=120, interval=0.05)


async def test_sigkill_mid_stream_loses_nothing_and_doubles_nothing(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    tag = f"CRASH-{uuid.uuid4().hex[:6]}-"
    # One in five a court record: it lists the subject and sends five notices.
    batch = [record(enterprise(f"珠海市崩溃测试{i}有限公司"),
                    "court.dishonest_debtor" if i % 5 == 0 else "amr.admin_penalty",
                    record_id=f"{tag}{i:05d}") for i in range(RECORDS)]
    ids = {d["record_id"] for d in batch}
    listed = {d["subject"]["id"] for d in batch if d["catalogue_item"].startswith("court")}
    producing = asyncio.create_task(_produce(producer, settings, batch))

    async def some_feedback() -> bool:
        return len(kit.tagged_feedback(watcher, tag)) >= RECORDS // 10

    await _wait_until(some_feedback, "some feedback")
    services["ingest"].kill()
    services["ingest"].start(ENV)

    async def half_archived() -> bool:
        n = await db("registry").fetchval(
            "SELECT count(*) FROM record_history WHERE record_id LIKE $1", tag + "%")
        return bool(n >= RECORDS // 2)

    await _wait_until(half_archived, "half archived")
    services["registry"].kill()
    services["registry"].start(ENV)

    async def some_listed() -> bool:
        n = await db("publisher").fetchval(
            "SELECT count(*) FROM notices WHERE subject_key = ANY($1::text[])",
            [f"enterprise:{s}" for s in listed])
        return bool(n >= len(listed) * 5 // 4)

    await _wait_until(some_listed, "some listed")
    services["publisher"].kill()
    services["publisher"].start(ENV)
    await producing
    for name in ("ingest", "registry", "publisher"):
        services[name].wait_ready()

    await kit.each_record_once(db, watcher, tag, ids, listed, timeout=120)


async def test_database_outage_is_waited_out_without_losing_or_dead_lettering(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    """PostgreSQL stops while records arrive: the workers wait, nothing is dead-lettered,
    and every record is accepted once the database is back."""
    from deploy.stack import run_script

    tag = f"OUTAGE-{uuid.uuid4().hex[:6]}-"
    batch = [record(enterprise(), "amr.admin_penalty", record_id=f"{tag}{i:03d}")
             for i in range(200)]
    dead_before = {t: len(watcher.events[f"credit.deadletter.{t}"])
                   for t in ("ingest", "registry", "publisher")}
    await asyncio.to_thread(run_script, "postgres.sh", "stop", settings)
    try:
        await _produce(producer, settings, batch)
        await asyncio.sleep(3)
    finally:
        await asyncio.to_thread(run_script, "postgres.sh", "start", settings)

    async def all_accepted() -> bool:
        seen = {e["data"]["record_id"]: e["data"]["status"]
                for e in watcher.events["credit.feedback.amr"]
                if (e.get("data", {}).get("record_id") or "").startswith(tag)}
        return len(seen) == len(batch) and set(seen.values()) == {"accepted"}

    await _wait_until(all_accepted, "all accepted")

    async def all_archived() -> bool:
        try:
            n = await db("registry").fetchval(
                "SELECT count(*) FROM records WHERE record_id LIKE $1", tag + "%")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False  # the test's own pool reconnects too
        return bool(n == len(batch))

    await _wait_until(all_archived, "all archived")
    assert {t: len(watcher.events[f"credit.deadletter.{t}"]) for t in dead_before} == dead_before

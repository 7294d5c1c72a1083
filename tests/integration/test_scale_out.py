"""Two processes of each stream service in one consumer group (`service start --instance 2`):
both get partitions; the first of each is killed mid-stream and the second takes its
partitions (and the outbox relay, single per database by its advisory lock); nothing is
lost, nothing doubled: one feedback per delivery, one archive row per record, one notice id
per subject and agency."""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any

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

RECORDS = 1500
STREAM = ("ingest", "registry", "publisher", "objection")


_until = functools.partial(polling.until, timeout=180)


def _partitions(proc: ServiceProcess) -> int:
    answer = proc.readiness(timeout=3)
    return int(answer["assigned_partitions"]) if answer else -1


async def test_a_second_process_shares_the_work_and_takes_it_all_when_the_first_dies(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    second = {name: ServiceProcess(name, settings, services[name].run_dir, instance=2)
              for name in STREAM}
    try:
        for proc in second.values():
            proc.start(ENV)
        for proc in second.values():
            await asyncio.to_thread(proc.wait_ready, 120)
        assert len({services[n].url() for n in STREAM} | {p.url() for p in second.values()}
                   ) == 2 * len(STREAM), "each process has HTTP ports of its own"

        async def shared() -> bool:
            counts = [await asyncio.to_thread(_partitions, p)
                      for n in STREAM for p in (services[n], second[n])]
            return all(c > 0 for c in counts)

        await _until(shared, "both processes of every service hold partitions",
                     timeout=120)
        totals = {n: _partitions(services[n]) + _partitions(second[n]) for n in STREAM}

        tag = f"SCALE-{uuid.uuid4().hex[:6]}-"
        batch = [record(enterprise(f"珠海市扩容测试{i}有限公司"),
                        "court.dishonest_debtor" if i % 5 == 0 else "amr.admin_penalty",
                        record_id=f"{tag}{i:05d}") for i in range(RECORDS)]
        ids = {d["record_id"] for d in batch}
        listed = {d["subject"]["id"] for d in batch if d["catalogue_item"].startswith("court")}

        async def produce() -> None:
            for i in range(0, len(batch), 50):
                await asyncio.gather(*(send(producer, settings,
                                            d["catalogue_item"].split(".")[0], d)
                                       for d in batch[i:i + 50]))
                await asyncio.sleep(0.3)  # a steady stream, still flowing at the kill

        producing = asyncio.create_task(produce())

        async def mid_stream() -> bool:
            n = await db("registry").fetchval(
                "SELECT count(*) FROM records WHERE record_id LIKE $1", tag + "%")
            fed = len(kit.tagged_feedback(watcher, tag))
            return bool(fed >= RECORDS // 5 and n >= RECORDS // 10)

        await _until(mid_stream, "the stream under way in every service")
        for name in ("ingest", "registry", "publisher"):
            services[name].kill()
        assert (not producing.done()
                and len(kit.tagged_feedback(watcher, tag)) < RECORDS), "killed mid-stream"

        async def taken_over() -> bool:
            held = [await asyncio.to_thread(_partitions, second[n])
                    for n in ("ingest", "registry", "publisher")]
            return held == [totals[n] for n in ("ingest", "registry", "publisher")]

        # The broker notices the dead members after the session timeout (6 s here).
        await _until(taken_over, "the second processes hold every partition", timeout=120)
        await producing

        await kit.each_record_once(db, watcher, tag, ids, listed, timeout=180)
    finally:
        for name in STREAM:
            services[name].start(ENV)
        for name in STREAM:
            await asyncio.to_thread(services[name].wait_ready, 120)
        for proc in second.values():
            proc.stop()

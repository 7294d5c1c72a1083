"""Three Kafka nodes on loopback (`./xinyong up --brokers 3`'s cluster, in a folder and on
ports of its own) under the four services: topics with three replicas, two in sync for a
write, no unclean election. A department produces at a steady rate; the leader of an
inbound partition is killed with SIGKILL mid-stream and started again later. Every record
the producer saw acknowledged gets exactly one feedback and reaches the archive, and no
notice is doubled."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from deploy import stack
from deploy.brokers import LocalKafka, in_sync, leader_of
from deploy.secrets import admin_password
from shared.envelope import submission_json
from shared.kafka import admin_config, make_producer
from shared.settings import Settings
from tests import polling
from tests.integration import kit
from tests.integration.conftest import TopicWatcher
from tests.integration.helpers import enterprise, key_of, record

pytestmark = pytest.mark.integration

BASE = int(os.environ.get("XINYONG_TEST_PORT_BASE", "18000"))
RATE = 50  # records per second, steady
SECONDS = 30
KILL_AT = 8  # seconds into the stream
RESTART_AT = 16


@pytest.fixture(scope="module")
def cluster(settings: Settings) -> Iterator[stack.IsolatedStack]:
    """Three nodes (ports BASE+15.., +25.., +35..) and the four services (HTTP BASE+40..)."""
    kafka = LocalKafka(settings.home / "kafka-test3", BASE + 15, 3)
    three = stack.IsolatedStack("k", BASE + 40, kafka=kafka)
    try:
        three.start()
        yield three
    finally:
        try:
            three.stop()
        finally:
            stack.run_script("kafka.sh", "stop", three.settings, three.env)
            shutil.rmtree(kafka.folder, ignore_errors=True)


_until = functools.partial(polling.until, timeout=300, interval=0.25,
                           ignoring=(OSError, asyncpg.PostgresError))


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(admin_config(settings, settings.kafka_admin_username,
                                    admin_password(settings)))


async def test_three_replicas_two_in_sync_no_unclean_election(
        cluster: stack.IsolatedStack) -> None:
    settings = cluster.settings
    admin = _admin(settings)
    assert len(settings.kafka_bootstrap.split(",")) == 3
    topic = settings.topic("credit.inbound.court")
    metadata = admin.list_topics(timeout=15)
    assert {b.id for b in metadata.brokers.values()} == {1, 2, 3}
    assert {len(p.replicas) for p in metadata.topics[topic].partitions.values()} == {3}
    [config] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    entries = config.result(timeout=15)
    assert entries["min.insync.replicas"].value == "2"
    assert entries["unclean.leader.election.enable"].value == "false"


async def test_a_leader_killed_mid_stream_loses_no_acknowledged_record(
        cluster: stack.IsolatedStack) -> None:
    settings = cluster.settings
    admin = _admin(settings)
    watcher = TopicWatcher(settings, cluster.observer)
    await watcher.start()
    producer: AIOKafkaProducer = make_producer(settings, **cluster.tester)
    await producer.start()
    pools = {s: await asyncpg.create_pool(settings.dsn(s), min_size=1, max_size=2)
             for s in ("registry", "publisher")}
    try:
        tag = f"LK{int(time.time())}-"
        batch = [record(enterprise(f"珠海市选主测试{i}有限公司"),
                        "court.dishonest_debtor" if i % 5 == 0 else "amr.admin_penalty",
                        record_id=f"{tag}{i:05d}") for i in range(RATE * SECONDS)]
        target = settings.topic("credit.inbound.court")
        leader = leader_of(admin, target, 0)
        assert leader in (1, 2, 3)
        sends: list[tuple[str, asyncio.Future[Any]]] = []
        killed: list[int] = []
        refused: set[str] = set()

        async def produce() -> None:
            started = time.monotonic()
            for i, data in enumerate(batch):
                due = started + i / RATE
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                dept = data["catalogue_item"].split(".")[0]
                try:
                    future = await producer.send(settings.topic(f"credit.inbound.{dept}"),
                                                 submission_json(dept, data), key=key_of(data))
                except KafkaTimeoutError:
                    # Not even queued while its partition had no leader the client knew of:
                    # never acknowledged, and the department would send it again.
                    refused.add(data["record_id"])
                    continue
                sends.append((data["record_id"], future))

        async def chaos() -> None:
            await asyncio.sleep(KILL_AT)
            killed.append(cluster.kafka.node(leader).kill())  # type: ignore[union-attr]
            await asyncio.sleep(RESTART_AT - KILL_AT)
            await asyncio.to_thread(stack.run_script, "kafka.sh", "start", settings,
                                    cluster.env)

        await asyncio.gather(produce(), chaos())
        acked, unacked = set(), set(refused)
        for record_id, future in sends:
            try:
                await asyncio.wait_for(future, 120)
                acked.add(record_id)
            except Exception:  # refused or timed out: the department would send it again
                unacked.add(record_id)
        assert killed and len(acked) > len(batch) // 2, (len(acked), len(unacked))

        def feedback() -> dict[str, set[str]]:
            ids: dict[str, set[str]] = defaultdict(set)
            for e in kit.tagged_feedback(watcher, tag):
                ids[e["data"]["record_id"]].add(e["id"])
            return ids

        async def every_acked_answered() -> bool:
            return acked <= set(feedback())

        await _until(every_acked_answered, "a feedback for every acknowledged record")
        answers = feedback()
        assert all(len(answers[r]) == 1 for r in acked), "one feedback per acknowledged record"
        assert all(len(answers.get(r, ())) <= 1 for r in unacked)
        for e in kit.tagged_feedback(watcher, tag):
            assert e["data"]["status"] == "accepted", e

        async def archived() -> bool:
            n = await pools["registry"].fetchval(
                "SELECT count(*) FROM records WHERE record_id = ANY($1::text[])", sorted(acked))
            return bool(n == len(acked))

        await _until(archived, "every acknowledged record in the archive")
        history = await pools["registry"].fetch(
            "SELECT record_id, count(*) AS n FROM record_history WHERE record_id LIKE $1"
            " GROUP BY record_id", tag + "%")
        assert {r["n"] for r in history} == {1}
        assert acked <= {r["record_id"] for r in history}

        listed = {d["subject"]["id"] for d in batch if d["record_id"] in acked
                  and d["catalogue_item"].startswith("court")}

        async def notified() -> bool:
            n = await pools["publisher"].fetchval(
                "SELECT count(DISTINCT subject_key) FROM notices"
                " WHERE subject_key = ANY($1::text[])", [f"enterprise:{s}" for s in listed])
            seen = {e["data"]["subject"]["id"] for e in watcher.events["credit.notices.land"]
                    if "subject" in e.get("data", {})}
            return bool(n == len(listed)) and listed <= seen

        await _until(notified, "the notices of every acknowledged court record")
        notices = await pools["publisher"].fetch(
            "SELECT subject_key, count(*) AS n FROM notices WHERE subject_key = ANY($1::text[])"
            " GROUP BY subject_key", [f"enterprise:{s}" for s in listed])
        assert {r["n"] for r in notices} == {5}
        per_subject: dict[str, set[str]] = defaultdict(set)
        for e in watcher.events["credit.notices.land"]:
            if e.get("data", {}).get("subject", {}).get("id") in listed:
                per_subject[e["data"]["subject"]["id"]].add(e["data"]["notice_id"])
        assert {len(v) for v in per_subject.values()} == {1}, "a notice doubled"

        async def back_in_sync() -> bool:
            return all(len(isr) == 3 for isr in in_sync(admin, target).values())

        await _until(back_in_sync, "the restarted node back in every in-sync set",
                     timeout=120)
    finally:
        await producer.stop()
        await watcher.stop()
        for pool in pools.values():
            await pool.close()

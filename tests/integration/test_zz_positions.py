"""Positions that outlive their log, on the real broker and databases: a truncated log holds
its partition until an operator resolves it; a topic created again, and the whole Kafka
data replaced under live databases, are replayed, so every later record still reaches the
archive and the lists.

Named to run last: it stops, wipes and restarts the broker the session's services use, and
leaves them working on the new one (topics created again, services ready).
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError
from confluent_kafka.admin import AdminClient

from deploy import credentials, stack
from deploy.brokers import LocalKafka
from deploy.credentials import admin as kafka_admin
from shared.db import TRANSIENT
from shared.kafka import admin_config, client_options, log_ids, make_producer, observe_logs
from shared.positions import commit_metadata
from shared.settings import REPO_ROOT, Settings
from shared.topics import CREDENTIALS
from tests import polling
from tests.integration import kit
from tests.integration.conftest import ENV, STACK
from tests.integration.helpers import enterprise, record
from tests.integration.kit import send

pytestmark = pytest.mark.integration

ACCEPTED = "credit.records.accepted"


# The machine's PostgreSQL is shared: another checkout may restart it meanwhile.
_until = functools.partial(polling.until, timeout=120, ignoring=TRANSIENT)


def _observer_admin(settings: Settings) -> AdminClient:
    """An admin client that only looks (ids, offsets), as the suite's observer."""
    return AdminClient(admin_config(settings, **STACK.observer))


def _records(tag: str, count: int) -> list[dict[str, Any]]:
    """Court records (the list has no notice period: listed at once), each its own firm."""
    return [record(enterprise(f"珠海市位置测试{tag}{i}有限公司"), record_id=f"{tag}-{i:03d}")
            for i in range(count)]


async def _send_all(settings: Settings, records: list[dict[str, Any]]) -> None:
    """With a producer of its own: the session's may still know the broker that was."""
    producer = make_producer(settings, **STACK.tester)
    await producer.start()
    try:
        for data in records:
            await send(producer, settings, "court", data)
    finally:
        await producer.stop()


async def _archived_and_listed(db: Any, records: list[dict[str, Any]], what: str) -> None:
    ids = [d["record_id"] for d in records]
    keys = [f"enterprise:{d['subject']['id']}" for d in records]

    async def archived() -> bool:
        n = await db("registry").fetchval(
            "SELECT count(*) FROM records WHERE record_id = ANY($1::text[])", ids)
        return bool(n == len(ids))

    async def listed() -> bool:
        n = await db("publisher").fetchval(
            "SELECT count(*) FROM list_entries WHERE list = 'court.dishonest_debtor'"
            " AND status = 'active' AND subject_key = ANY($1::text[])", keys)
        return bool(n == len(keys))

    await _until(archived, f"{what}: all {len(ids)} records in the registry's archive")
    await _until(listed, f"{what}: all {len(keys)} subjects on the court list")


async def _stored_positions(db: Any, service: str, topic: str) -> dict[int, int]:
    rows = await db(service).fetch(
        "SELECT partition, next_offset FROM consumed_positions WHERE topic = $1", topic)
    return {r["partition"]: r["next_offset"] for r in rows}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`./xinyong ...` as an operator runs it, against this session's stack."""
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=REPO_ROOT,
                          env={**os.environ, **ENV}, capture_output=True, text=True,
                          timeout=120)


async def _is_ready(proc: stack.ServiceProcess) -> bool:
    try:
        await asyncio.to_thread(proc.wait_ready, 5)
        return True
    except stack.PositionsPaused:
        return False


async def _ready(services: dict[str, stack.ServiceProcess]) -> None:
    """Every service ready, one that exited started again (stats-windows ends itself when it
    finds its table's changelog behind what it had read: faust's ConsistencyError, after the
    Kafka data went)."""
    await kit.ready_again(services, ENV)


async def test_a_truncated_log_holds_its_partition_until_an_operator_resolves_it(
        settings: Settings, services: dict[str, stack.ServiceProcess], db: Any) -> None:
    tag = f"TR{uuid.uuid4().hex[:4]}"
    warm = _records(tag + "a", 12)
    await _send_all(settings, warm)
    await _archived_and_listed(db, warm, "before")
    registry = services["registry"]
    registry.stop()
    # The database now counts messages this log does not have (a broker that lost its tail).
    partition = min(await _stored_positions(db, "registry", ACCEPTED))
    await db("registry").execute(
        "UPDATE consumed_positions SET next_offset = next_offset + 1000"
        " WHERE topic = $1 AND partition = $2", ACCEPTED, partition)
    registry.start(ENV)
    with pytest.raises(stack.PositionsPaused) as paused:
        await asyncio.to_thread(registry.wait_ready, 60)
    [held] = paused.value.paused
    assert (held["topic"], held["partition"]) == (ACCEPTED, partition)
    command = f"./xinyong positions resolve registry {ACCEPTED} --partition {partition}"
    assert held["why"].startswith("truncated: ") and command in held["why"]

    async with httpx.AsyncClient() as client:
        ready = await client.get(registry.url() + "/readyz")
        metrics = (await client.get(
            f"http://{settings.metrics_host}:{ENV['XINYONG_REGISTRY_METRICS_PORT']}/metrics")
        ).text
    assert ready.status_code == 503 and ready.json()["positions"]["paused"] == [held]
    assert ('xinyong_position_mismatch_total{reason="truncated",service="registry",'
            f'topic="{ACCEPTED}"}} 1.0') in metrics

    status = _cli("status")
    assert status.returncode == 0, status.stderr
    assert "registry" in status.stdout and "1 partition(s) PAUSED" in status.stdout
    assert f"{ACCEPTED}[{partition}] truncated" in status.stdout and command in status.stdout

    resolved = _cli("positions", "resolve", "registry", ACCEPTED, "--partition",
                    str(partition), "--from-end")
    assert resolved.returncode == 0, resolved.stderr
    await _until(lambda: _is_ready(registry), "resumed at the next check", timeout=60)
    later = _records(tag + "b", 12)
    await _send_all(settings, later)
    await _archived_and_listed(db, later, "after --from-end")
    assert "positions: ok" in _cli("status").stdout.split("registry", 1)[1].split("\n", 2)[1]
    nothing = _cli("positions", "resolve", "registry", ACCEPTED, "--from-start")
    assert nothing.returncode == 1 and "no paused partition" in nothing.stderr


async def test_a_topic_created_again_is_replayed_from_its_start(
        settings: Settings, services: dict[str, stack.ServiceProcess], db: Any) -> None:
    tag = f"RT{uuid.uuid4().hex[:4]}"
    before = _records(tag + "a", 36)
    await _send_all(settings, before)
    await _archived_and_listed(db, before, "before")
    stored = await _stored_positions(db, "registry", ACCEPTED)
    admin = _observer_admin(settings)
    name = settings.topic(ACCEPTED)
    old_id = (await log_ids(admin, [name]))[1][name]

    await asyncio.to_thread(kafka_admin(settings).delete_topics, [ACCEPTED])

    async def gone() -> bool:
        return name not in admin.list_topics(timeout=10).topics

    await _until(gone, "topic deleted", timeout=60)
    await stack.provision(settings)
    _, new_ids = await log_ids(admin, [name])
    assert new_ids[name] != old_id

    # Fewer records than before on each partition: trusted blindly, the stored positions
    # would skip every one of them.
    after = _records(tag + "b", 12)
    await _send_all(settings, after)
    await _archived_and_listed(db, after, "after the topic was created again")
    replays = await db("registry").fetch(
        "SELECT partition, stored_offset, resumed_from FROM position_mismatches"
        " WHERE topic = $1 AND reason = 'new_topic'", ACCEPTED)
    assert {r["partition"] for r in replays} == set(stored)
    assert all(r["resumed_from"] == 0 for r in replays)


async def _commit_as_a_lone_member(settings: Settings, service: str,
                                   offsets: dict[TopicPartition, tuple[int, str]]) -> None:
    """Commit to the service's group as a consumer outside it (generation -1, accepted by
    an empty group): what aiokafka sends for a member that lost its group, as after a
    broker went away with a commit in flight."""
    consumer = AIOKafkaConsumer(
        **client_options(settings, **STACK.service_credentials(service)),
        group_id=settings.group_id(service), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))

        async def committed() -> bool:
            try:
                await consumer.commit(offsets)
                return True
            except CommitFailedError:  # the service's member still leaving the group
                return False

        await _until(committed, "the lone commit accepted", timeout=60)
    finally:
        await consumer.stop()


async def test_an_offset_committed_on_another_log_is_not_taken_for_a_restored_database(
        settings: Settings, services: dict[str, stack.ServiceProcess], db: Any) -> None:
    """Each commit names the log it was counted on (its metadata). One that names another
    log (a commit that outlived its broker) is not taken for this log's: no replay, no
    mismatch, and the group's offset is put back where the database stands. One that
    names this log and is ahead of the database still is a restored database."""
    tag = f"CO{uuid.uuid4().hex[:4]}"
    warm = _records(tag, 24)
    await _send_all(settings, warm)
    await _archived_and_listed(db, warm, "before")
    registry = services["registry"]
    registry.stop()
    stored = await _stored_positions(db, "registry", ACCEPTED)
    gone, here = sorted(p for p, at in stored.items() if at > 0)[:2]
    name = settings.topic(ACCEPTED)
    admin = AdminClient(admin_config(settings, **STACK.service_credentials("registry")))
    cluster, ids = await log_ids(admin, [name])
    since = await db("registry").fetchval("SELECT now()")
    await _commit_as_a_lone_member(settings, "registry", {
        TopicPartition(name, gone): (stored[gone] + 500,
                                     commit_metadata("a-gone-cluster", "a-gone-topic")),
        TopicPartition(name, here): (stored[here] + 500, commit_metadata(cluster, ids[name])),
    })
    registry.start(ENV)
    await _ready({"registry": registry})

    found = {r["partition"]: r["reason"] for r in await db("registry").fetch(
        "SELECT partition, reason FROM position_mismatches"
        " WHERE topic = $1 AND detected_at >= $2", ACCEPTED, since)}
    assert found == {here: "database_behind"}
    group = settings.group_id("registry")

    async def put_back() -> bool:
        logs = await observe_logs(admin, group, [(name, gone), (name, here)],
                                  client_options(settings, **STACK.service_credentials("registry")))
        return all((logs[(name, p)].committed, logs[(name, p)].committed_on)
                   == (stored[p], (cluster, ids[name])) for p in (gone, here))

    await _until(put_back, "the group's offsets back at the stored positions, named",
                 timeout=60)
    later = _records(tag + "b", 6)
    await _send_all(settings, later)
    await _archived_and_listed(db, later, "after")


async def test_the_credentials_consumer_is_checked_against_its_own_groups_offsets(
        settings: Settings, services: dict[str, stack.ServiceProcess], db: Any) -> None:
    """Credentials have a consumer group of their own (`<group>-credentials`); a database
    restored behind it is found there, not against the records' group, which never read
    the credentials."""
    await credentials.issue(settings, "operator", "operator")  # one event at least
    name, group = settings.topic(CREDENTIALS.name), settings.group_id("registry") + "-credentials"
    admin = AdminClient(admin_config(settings, **STACK.service_credentials("registry")))
    login = client_options(settings, **STACK.service_credentials("registry"))
    at: dict[int, int] = {}

    async def committed_as_stored() -> bool:
        stored = await _stored_positions(db, "registry", CREDENTIALS.name)
        logs = await observe_logs(admin, group, [(name, p) for p in stored], login)
        at.update(stored)
        return any(n > 0 for n in stored.values()) and all(
            logs[(name, p)].committed == n for p, n in stored.items())

    await _until(committed_as_stored, "the credentials group's offsets at the stored ones")
    registry = services["registry"]
    registry.stop()
    since = await db("registry").fetchval("SELECT now()")
    await db("registry").execute(  # as a database restored from before those credentials
        "UPDATE consumed_positions SET next_offset = 0 WHERE topic = $1", CREDENTIALS.name)
    registry.start(ENV)
    await _ready({"registry": registry})
    found = {(r["partition"], r["reason"]) for r in await db("registry").fetch(
        "SELECT partition, reason FROM position_mismatches"
        " WHERE topic = $1 AND detected_at >= $2", CREDENTIALS.name, since)}
    assert found == {(p, "database_behind") for p, n in at.items() if n > 0}


async def test_kafka_data_replaced_under_live_databases_skips_nothing(
        settings: Settings, services: dict[str, stack.ServiceProcess], db: Any) -> None:
    tag = f"KR{uuid.uuid4().hex[:4]}"
    before = _records(tag + "a", 36)
    await _send_all(settings, before)
    await _archived_and_listed(db, before, "before")
    old_cluster, _ = await log_ids(_observer_admin(settings), [settings.topic(ACCEPTED)])

    stack.run_script("kafka.sh", "stop", settings)
    for data in LocalKafka.of(settings).data_folders:  # every node's, on several
        shutil.rmtree(data)
    stack.run_script("kafka.sh", "start", settings)  # formats a new cluster
    # The new cluster knows its broker and administrator only: the services' users, the
    # suite's own and their ACLs are made again, with the passwords they had.
    await stack.provision(settings)
    await asyncio.to_thread(STACK.restore_principals)
    new_cluster, _ = await log_ids(_observer_admin(settings), [settings.topic(ACCEPTED)])
    assert new_cluster != old_cluster
    await _ready(services)

    after = _records(tag + "b", 12)
    await _send_all(settings, after)
    await _archived_and_listed(db, after, "after the Kafka data was replaced")
    for service in ("ingest", "registry", "publisher"):
        reasons = {r["reason"] for r in await db(service).fetch(
            "SELECT reason FROM position_mismatches WHERE cluster_id = $1", new_cluster)}
        assert reasons == {"new_cluster"}, service
    # The session's other consumers (the topic watcher) are not this test's business; the
    # services are ready on the new broker for whatever runs next.
    await _ready(services)

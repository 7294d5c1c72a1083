"""`bench failover`: how long a producer stalls when a partition's leader dies.

Three Kafka nodes of the benchmark's own (`<home>/bench/kafka-3`, CLIENT ports from the port
base + 15, + 25, + 35: deploy/kafka.sh's layout), a topic of 6 partitions with three
replicas and min.insync.replicas 2, as `./xinyong up --brokers 3` makes them. A producer
with the services' and departments' settings (idempotent, acks=all: shared/kafka.py) sends
at a steady rate, open loop; after `kill_after` seconds the leader of partition 0 is killed
with SIGKILL, and started again `down` seconds later. Each send is timed from the call to
its acknowledgement.

Figures: acknowledgement latency before the kill; the longest a send waited for its
acknowledgement after the kill (the stall a department sees), the time until partition 0
acknowledged again (its new leader elected), the time until every partition did; sends
that failed (none should: the producer retries until its delivery timeout); how long the
restarted node took to be back in every in-sync set.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from typing import Any

from aiokafka.structs import RecordMetadata

from bench import report
from bench.stacks import port_base
from deploy.brokers import LocalKafka, in_sync, leader_of
from deploy.credentials import admin
from deploy.secrets import admin_password
from deploy.stack import ensure_kafka_admin, run_script
from shared.contract import RecordFeedback
from shared.kafka import make_producer
from shared.settings import Settings, get_settings
from shared.topics import Topic

TOPIC = "bench.failover"
PARTITIONS = 6


def _cluster_env(kafka: LocalKafka) -> dict[str, str]:
    return {"XINYONG_KAFKA_DIR": str(kafka.folder), "XINYONG_KAFKA_PORT": str(kafka.port),
            "XINYONG_KAFKA_BROKERS": str(kafka.brokers)}


async def _measure(settings: Settings, kafka: LocalKafka, env: dict[str, str], rate: float,
                   seconds: float, kill_after: float, down: float) -> dict[str, Any]:
    kafka_admin = admin(settings)
    target = settings.topic(TOPIC)
    producer = make_producer(settings, username=settings.kafka_admin_username,
                             password=admin_password(settings))
    await producer.start()
    sent: list[float] = []
    acked: dict[int, tuple[float, int]] = {}  # message -> (ack time, partition)
    failed: dict[int, str] = {}
    events: dict[str, float] = {}

    def done(i: int, future: asyncio.Future[RecordMetadata]) -> None:
        if future.cancelled() or future.exception() is not None:
            failed[i] = repr(future.exception())
        else:
            acked[i] = (time.monotonic(), future.result().partition)

    async def chaos() -> None:
        await asyncio.sleep(kill_after)
        leader = leader_of(kafka_admin.client, target, 0)
        events["kill"] = time.monotonic()
        kafka.node(leader).kill()
        events["killed_node"] = leader
        await asyncio.sleep(down)
        events["restart"] = time.monotonic()
        await asyncio.to_thread(run_script, "kafka.sh", "start", settings, env)
        events["restarted"] = time.monotonic()

    async def produce() -> None:
        started = time.monotonic()
        futures = []
        for i in range(int(rate * seconds)):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            sent.append(time.monotonic())
            future = await producer.send(target, b'{"bench": "failover"}', key=f"k{i}".encode())
            future.add_done_callback(lambda f, i=i: done(i, f))
            futures.append(future)
        await asyncio.gather(*futures, return_exceptions=True)

    try:
        await asyncio.gather(produce(), chaos())
    finally:
        await producer.stop()
    while not all(len(isr) == 3 for isr in in_sync(kafka_admin.client, target).values()):
        await asyncio.sleep(0.5)
    back = time.monotonic()

    kill = events["kill"]
    # The second half before the kill: the cluster has settled (its first seconds elect
    # leaders and fill the in-sync sets).
    steady = kill - kill_after / 2
    before = [(acked[i][0] - t) * 1000 for i, t in enumerate(sent)
              if steady <= t < kill and i in acked]
    after_kill = [(i, t) for i, t in enumerate(sent) if t >= kill]
    waits = [acked[i][0] - t for i, t in after_kill if i in acked]
    # When each partition first acknowledged a send made after the kill.
    first_ack: dict[int, float] = {}
    for i, _ in after_kill:
        if i in acked:
            at, partition = acked[i]
            first_ack[partition] = min(first_ack.get(partition, at), at)
    return {
        "rate": rate, "seconds": seconds, "messages": len(sent), "acknowledged": len(acked),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "failed": len(failed), "failures": sorted(set(failed.values()))[:3],
        "killed_node": events["killed_node"], "down_seconds": down,
        "ack_ms_before_kill": report.latency_summary(before),
        "longest_wait_after_kill_ms": round(max(waits, default=0) * 1000, 1),
        "partition0_back_after_ms": round((first_ack.get(0, kill) - kill) * 1000, 1),
        "all_partitions_back_after_ms": round(
            (max(first_ack.values(), default=kill) - kill) * 1000, 1),
        "partitions_acknowledging_after_kill": len(first_ack),
        "restart_seconds": round(events["restarted"] - events["restart"], 1),
        "back_in_sync_after_restart_s": round(back - events["restart"], 1),
    }


def run(rate: float = 200, seconds: float = 60, kill_after: float = 15, down: float = 20,
        json_path: Any = None, base: int | None = None) -> dict[str, Any]:
    local = get_settings()
    kafka = LocalKafka(local.home / "bench" / "kafka-3", port_base(base) + 15, 3)
    env = _cluster_env(kafka)
    settings = local.model_copy(update={
        "kafka_bootstrap": kafka.bootstrap, "kafka_replication_factor": 3,
        "kafka_min_insync_replicas": 2, "topic_namespace": ""})
    document: dict[str, Any] = {"run": report.run_info(
        settings, f"bench failover --rate {rate:g} --seconds {seconds:g}")}
    shutil.rmtree(kafka.folder, ignore_errors=True)
    try:
        run_script("kafka.sh", "start", settings, env)
        ensure_kafka_admin(settings)
        admin(settings).create_topics([Topic(TOPIC, "bench.failover", RecordFeedback,
                                             PARTITIONS, False, "bench")])
        part = report.run_async(_measure(settings, kafka, env, rate, seconds, kill_after,
                                         down))
    finally:
        run_script("kafka.sh", "stop", settings, env)
        shutil.rmtree(kafka.folder, ignore_errors=True)
    document["failover"] = part
    report.print_table("bench failover (3 nodes, acks=all, min.insync.replicas 2)", [
        ("load", f"{part['messages']:,} messages at {rate:g}/s for {seconds:g} s; node "
                 f"{part['killed_node']} (leader of partition 0) killed at {kill_after:g} s, "
                 f"started again {down:g} s later"),
        ("acknowledged", f"{part['acknowledged']:,} ({part['failed']} failed"
                         + (f": {part['failures']}" if part["failures"] else "") + ")"),
        ("ack before the kill p50/p95/p99/max", report.fmt_ms(part["ack_ms_before_kill"])
         + f" (the {kill_after / 2:g} s before it)"),
        ("longest wait for an ack after the kill", f"{part['longest_wait_after_kill_ms']:,.0f}"
                                                   " ms"),
        ("partition 0 acknowledging again after", f"{part['partition0_back_after_ms']:,.0f} ms"),
        ("every partition acknowledging after", f"{part['all_partitions_back_after_ms']:,.0f}"
                                                " ms"),
        ("restarted node back in every ISR", f"{part['back_in_sync_after_restart_s']:g} s "
                                             f"after its restart began (kafka.sh start took "
                                             f"{part['restart_seconds']:g} s)"),
        ("machine", f"{os.cpu_count()} cores shared with everything else; load average "
                    f"{part['load_average_1m']:g} at the end"),
    ])
    report.write_json(json_path, document)
    return document

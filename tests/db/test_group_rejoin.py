"""A stream worker whose consumer is stuck out of its group, on the real broker: after
`group_rejoin_seconds` the worker closes it (ending by hand what its stuck stop leaves
running) and a new consumer joins, takes its share and consumes again.

The stall is made by the rebalance listener of the first rebalance after the worker joined
never returning (the shape of a rejoin that never ends), while a second member joins the
group to start that rebalance."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from deploy import secrets
from shared import metrics
from shared import worker as worker_module
from shared.kafka import admin_config, make_consumer, make_producer
from shared.messages import InboundMessage
from shared.settings import Settings
from shared.worker import StreamWorker
from tests.polling import until, until_sync

pytestmark = pytest.mark.db

# A topic of this test alone: the worker stores its positions under this name (without
# the namespace) in the session's registry database, where other tests look for theirs.
TOPIC = "test.group-rejoin"
# A rebalance, a session and a replacement on a loaded machine: minutes at worst.
_until = functools.partial(until, timeout=120)


def _as_administrator(db_settings: Settings) -> Settings:
    return db_settings.model_copy(update={
        "kafka_sasl_username": db_settings.kafka_admin_username,
        "kafka_sasl_password": secrets.admin_password(db_settings),
        "topic_namespace": f"rejoin{uuid.uuid4().hex[:6]}.",
        "group_rejoin_seconds": 4.0, "stop_deadline_seconds": 3.0,
        "kafka_session_timeout_ms": 6000, "position_check_seconds": 1.0})


def _create_topic(settings: Settings, partitions: int) -> AdminClient:
    """The topic, once the broker leads each of its partitions: a group that joins before
    sees it without partitions, then again with them (a rebalance the test did not make)."""
    admin = AdminClient(admin_config(settings))
    name = settings.topic(TOPIC)
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)

    def led() -> bool:
        described = admin.list_topics(name, timeout=10).topics[name]
        return described.error is None and len(described.partitions) == partitions and all(
            p.leader >= 0 for p in described.partitions.values())

    until_sync(led, f"{name}: a leader for every partition")
    return admin


async def test_a_consumer_stuck_out_of_its_group_is_replaced(
        db_settings: Settings, kafka: None, pools: dict[str, asyncpg.Pool],
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _as_administrator(db_settings)
    admin = _create_topic(settings, 2)
    seen: list[str] = []

    async def handler(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        seen.extend(m.value.decode() for m in messages)

    async def new_consumer() -> AIOKafkaConsumer:
        consumer = make_consumer(settings, settings.group_id("registry"), ())
        await consumer.start()
        return consumer

    hung: list[set[Any]] = []
    revoked = worker_module._Rebalance.on_partitions_revoked

    async def first_revocation_never_returns(self: Any, partitions: set[Any]) -> None:
        if partitions and not hung:  # not the empty set of a first join
            hung.append(partitions)
            await asyncio.Event().wait()
        await revoked(self, partitions)

    monkeypatch.setattr(worker_module._Rebalance, "on_partitions_revoked",
                        first_revocation_never_returns)
    replaced = metrics.CONSUMERS_REPLACED.labels("registry", settings.group_id("registry"))
    before = replaced._value.get()
    first = await new_consumer()
    worker = StreamWorker(settings, "registry", pools["registry"], first, [TOPIC], handler,
                          new_consumer=new_consumer)
    running = asyncio.create_task(worker.run())
    other = make_consumer(settings, settings.group_id("registry"), [TOPIC])
    producer = make_producer(settings)
    try:
        async with asyncio.timeout(150):  # a hang fails here, saying where
            await _until(lambda: worker.out_of_group_since is None and len(worker.assigned) == 2,
                         "the worker joins, alone in the group: both partitions")
            await other.start()  # a second member: the group rebalances, the worker's hangs
            await _until(lambda: worker.consumer is not first,
                         "the stuck consumer is replaced")
            assert hung  # it was stuck where the test made it
            assert replaced._value.get() == before + 1
            await _until(lambda: worker.out_of_group_since is None and bool(worker.assigned)
                         and not worker.unchecked, "the new consumer joins and takes its share")
            # The group shares the partitions between the new consumer and the other member.
            await _until(lambda: len(worker.assigned) + len(other.assignment()) == 2,
                         "the partitions shared by the two live members")

            await producer.start()
            for partition in sorted(tp.partition for tp in worker.assigned):
                await producer.send_and_wait(settings.topic(TOPIC),
                                             f"after {partition}".encode(), partition=partition)
            await _until(lambda: len(seen) == len(worker.assigned), "the new consumer consumes")
            assert not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        for client in (producer, other, worker.consumer):
            with contextlib.suppress(Exception):  # a stuck consumer's stop never ends
                await asyncio.wait_for(client.stop(), 10)
        for table in ("consumed_positions", "position_mismatches"):
            await pools["registry"].execute(f"DELETE FROM {table} WHERE topic = $1", TOPIC)
        admin.delete_topics([settings.topic(TOPIC)])


async def test_a_consumer_stopped_with_a_fetch_in_flight_is_closed_without_ending_the_worker(
        db_settings: Settings, kafka: None, pools: dict[str, asyncpg.Pool]) -> None:
    """A replaced consumer whose fetch to a dead broker is in flight: aiokafka's stop raises
    CancelledError (its fetcher awaits the fetch task it cancels), which ended the worker
    as if it had been cancelled (the three-node test in CI: every service stopped 98 s after
    the leader was killed). The worker closes it and goes on."""
    settings = _as_administrator(db_settings)

    async def started() -> AIOKafkaConsumer:
        consumer = make_consumer(settings, settings.group_id("registry"), ())
        await consumer.start()
        # What a fetch to a node that does not answer leaves in the fetcher (aiokafka 0.14):
        # a pending fetch task. Its routine, which would clear it when it ends, is stopped
        # first, so that the stop below meets it for certain.
        fetcher = consumer._fetcher
        fetcher._fetch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetcher._fetch_task
        fetcher._pending_tasks.add(asyncio.create_task(asyncio.sleep(60)))
        return consumer

    canary = await started()
    with pytest.raises(asyncio.CancelledError):  # aiokafka as it is: a stop that raises
        await asyncio.wait_for(canary.stop(), 20)  # as the worker awaits it

    async def handler(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        pass

    replaced = await started()
    worker = StreamWorker(settings, "registry", pools["registry"], replaced, [TOPIC], handler)
    async with asyncio.timeout(60):
        await worker._close(replaced)  # returns: neither raises nor hangs
    assert replaced._closed  # and its connections too (the client closed by hand)
    assert not any(conn.connected() for conn in replaced._client._conns.values())

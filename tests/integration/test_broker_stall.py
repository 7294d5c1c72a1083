"""The broker stops answering for longer than a consumer group's session (SIGSTOP, as a
machine too loaded to schedule it, or a long pause of its JVM) and comes back: the services
rejoin their groups, and a record sent afterwards gets its feedback and its notices.

A service may end meanwhile: librdkafka 2.16 (confluent-kafka's admin client, which the
position checks use) sometimes aborts the process on a metadata answer that arrives after
the stall (`rd_kafka_admin_response_parse: Assertion 'rko_result' failed`, seen in CI).
Nothing is lost by that (it is the crash every service survives), and the supervisor starts
it again; so does this test, and it says which it started."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from aiokafka import AIOKafkaProducer

from deploy.brokers import LocalKafka
from deploy.stack import ServiceProcess
from shared.settings import Settings
from tests.integration.conftest import ENV, TopicWatcher
from tests.integration.helpers import enterprise, record
from tests.integration.kit import ready_again, send

pytestmark = pytest.mark.integration

# Longer than the suite's session timeout (6 s, deploy/stack.py::IsolatedStack): every
# member's session ends while the broker is away.
STALL_SECONDS = 20


async def _listed_and_notified(producer: AIOKafkaProducer, settings: Settings,
                               watcher: TopicWatcher, name: str) -> None:
    firm = enterprise(name)
    data = record(firm, "court.dishonest_debtor")
    await send(producer, settings, "court", data)
    feedback = await watcher.wait_for(
        "credit.feedback.court", lambda e: e["data"]["record_id"] == data["record_id"],
        timeout=180)
    assert feedback[0]["data"]["status"] == "accepted"
    await watcher.wait_for("credit.notices.land",
                           lambda e: e["data"]["subject"]["id"] == firm.id, timeout=180)


async def test_services_rejoin_after_the_broker_stalls_past_their_sessions(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    await _listed_and_notified(producer, settings, watcher, "珠海市停顿前建设工程有限公司")
    broker = LocalKafka.of(settings).nodes[0].pid()
    assert broker is not None
    os.kill(broker, signal.SIGSTOP)
    try:
        await asyncio.sleep(STALL_SECONDS)
    finally:
        os.kill(broker, signal.SIGCONT)
    started = time.monotonic()
    await asyncio.sleep(5)  # a process that aborts does so as the broker answers again
    restarted = await ready_again(services, ENV)
    await _listed_and_notified(producer, settings, watcher, "珠海市停顿后建设工程有限公司")
    print(f"\nafter a {STALL_SECONDS}s stall: feedback and notice within "
          f"{time.monotonic() - started:.1f}s; started again: {restarted or 'none'}")
    assert await ready_again(services, ENV) == []

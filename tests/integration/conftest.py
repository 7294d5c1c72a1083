"""The integration suite runs against the real broker and database that deploy/ starts.

Each session gets its own topic namespace and databases, and its own four service
processes on their own ports, so it never sees another run's events (or the local demo
stack's) and leaves nothing behind: its Kafka users and their ACLs go with it.

Nothing here is a super user. The services run as their own principals; the suite sends as
a `tester` (allowed to write every department's and agency's external topics of the
namespace, nothing else) and watches as an `observer` (reads the namespace's topics). A test
that plays a service (a forged event on an internal topic) uses that service's principal
(`producer_as`); the access tests issue real party credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from deploy import credentials, stack
from shared import clock
from shared.catalogue import load_catalogue
from shared.kafka import client_options, make_producer
from shared.settings import Settings
from shared.topics import SERVICES, all_topics
from tests import polling
from tests.integration import kit

PORT_BASE = int(os.environ.get("XINYONG_TEST_PORT_BASE", "18000"))
STACK = stack.IsolatedStack(
    "t", PORT_BASE,
    # The subject page links to the objection form of this stack, not the local one's.
    XINYONG_OBJECTION_PUBLIC_URL=f"http://127.0.0.1:{PORT_BASE + 3}",
    XINYONG_PUBLIC_RATE_LIMIT="100000/minute",
    # Tests pass as clients of their own through X-Forwarded-For (kit.as_client); a budget
    # per client large enough for one test, small enough to be reached by one. The front
    # door's nginx connects from its own address (deploy/frontdoor.py::SOURCE_ADDRESS).
    XINYONG_TRUSTED_PROXIES="127.0.0.1,127.0.0.2",
    XINYONG_OBJECTION_RATE_LIMIT_CLIENT="40/minute")
ENV = STACK.env
# This process reads the services' clock too: a test that moves it sees what they see.
clock.configure(STACK.settings.test_clock_file)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return STACK.settings


_stack_users = 0


@pytest.fixture(scope="session")
def services(settings: Settings) -> Iterator[dict[str, stack.ServiceProcess]]:
    """One stack for the session. Other suites (tests/browser) import this fixture into their
    own conftest, which makes a second definition of it: the count keeps it one stack,
    started by the first user and stopped after the last."""
    global _stack_users
    if _stack_users == 0:
        try:
            STACK.start()
        except BaseException:
            STACK.stop()
            raise
    _stack_users += 1
    try:
        yield STACK.processes
    finally:
        _stack_users -= 1
        if _stack_users == 0:
            STACK.stop()


@pytest_asyncio.fixture(scope="session")
async def producer(settings: Settings, services: Any) -> AsyncIterator[AIOKafkaProducer]:
    """Writes as every department and agency would, on their external topics only."""
    p = make_producer(settings, **STACK.tester)
    await p.start()
    yield p
    await p.stop()


@pytest_asyncio.fixture(scope="session")
async def producer_as(settings: Settings, services: Any
                      ) -> AsyncIterator[Callable[[str], Any]]:
    """`await producer_as("objection")`: a started producer with that service's principal."""
    started: list[AIOKafkaProducer] = []

    async def make(service: str) -> AIOKafkaProducer:
        p = make_producer(settings, **STACK.service_credentials(service))
        await p.start()
        started.append(p)
        return p

    yield make
    for p in started:
        await p.stop()


@pytest_asyncio.fixture(scope="session")
async def operator_token(settings: Settings, services: Any) -> str:
    """An operator's bearer token (registry archive, submissions audit), accepted once the
    services have it."""
    issued = await credentials.issue(settings, "operator", "operator")
    url = f"{services['registry'].url()}/api/v1/archive/enterprise/none"
    await wait_until_accepted(issued.token, url)
    return issued.token


async def wait_until_accepted(token: str, url: str, method: str = "GET") -> None:
    """Tokens reach the services through Kafka: wait until this one is taken."""
    import httpx

    async with httpx.AsyncClient() as client:
        await kit.until_answer(lambda: client.request(
            method, url, headers={"Authorization": f"Bearer {token}"},
            json={} if method != "GET" else None),
            lambda r: r.status_code != 401, "the token reaches the service")


class TopicWatcher:
    """Reads topics from their beginning in the background; tests wait for events."""

    def __init__(self, settings: Settings, login: dict[str, str] | None = None) -> None:
        """`login`: a Kafka user that may read the topics (the session's observer)."""
        self.settings = settings
        self.login = login
        self.events: dict[str, list[dict[str, Any]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.partitions = {t.name: t.partitions
                           for t in all_topics(load_catalogue(settings.catalogue_path))}

    async def start(self) -> None:
        """Assign every partition of every topic once, from the beginning: assigning more
        later would reset the positions of those already assigned."""
        self._consumer = AIOKafkaConsumer(**client_options(self.settings,
                                                           **(self.login or STACK.observer)),
                                          enable_auto_commit=False,
                                          auto_offset_reset="earliest")
        await self._consumer.start()
        partitions = [TopicPartition(self.settings.topic(name), p)
                      for name, count in self.partitions.items() for p in range(count)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self.events = {name: [] for name in self.partitions}
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        ns = self.settings.topic_namespace
        while True:
            batches = await self._consumer.getmany(timeout_ms=50)
            for tp, records in batches.items():
                for r in records:
                    try:
                        event = json.loads(r.value)
                    except ValueError:
                        event = None
                    if not isinstance(event, dict):
                        event = {"_raw": r.value}
                    event["_offset"] = r.offset
                    self.events[tp.topic[len(ns):]].append(event)

    async def wait_for(self, topic: str, match: Callable[[dict[str, Any]], bool],
                       timeout: float = 30, count: int = 1) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        def enough() -> bool:
            found[:] = [e for e in self.events[topic] if _matches(match, e)]
            return len(found) >= count

        await polling.until(enough, lambda: f"{len(found)} of {count} matching events on {topic}",
                            timeout=timeout, interval=0.05)
        return found

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._consumer:
            # A fetch that timed out on a loaded broker is re-raised by the consumer's close:
            # the watcher is done with it either way.
            with contextlib.suppress(KafkaError):
                await self._consumer.stop()


def _matches(match: Callable[[dict[str, Any]], bool], event: dict[str, Any]) -> bool:
    """An event of another shape than the test expects (another test's probe, a poison
    message) is no match, not an error."""
    try:
        return match(event)
    except (KeyError, TypeError, AttributeError):
        return False


@pytest_asyncio.fixture(scope="session")
async def watcher(settings: Settings, services: Any) -> AsyncIterator[TopicWatcher]:
    w = TopicWatcher(settings)
    await w.start()
    yield w
    await w.stop()


@pytest_asyncio.fixture(scope="session")
async def db(settings: Settings, services: Any) -> AsyncIterator[Callable[[str], Any]]:
    """Connections to the services' databases, to check what they hold."""
    pools: dict[str, asyncpg.Pool] = {}

    def pool(service: str) -> asyncpg.Pool:
        return pools[service]

    for service in SERVICES:
        pools[service] = await asyncpg.create_pool(settings.dsn(service), min_size=1,
                                                   max_size=2)
    yield pool
    for p in pools.values():
        await p.close()

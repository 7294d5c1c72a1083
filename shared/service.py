"""The one start and stop shape of every service: migrate, then run the stream worker, the
credentials worker, the outbox relay, the HTTP API, the metrics endpoint, the probes
(shared/probes.py) and any timers side by side; stop them all when one ends.

A service is described by a `ServiceSpec`; `run_service` is the only place that wires real
Kafka and PostgreSQL clients into its handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app

from shared import clock, credentials, metrics
from shared.catalogue import Catalogue, load_catalogue
from shared.context import ServiceContext
from shared.db import SHARED_MIGRATIONS, TRANSIENT, create_http_pool, create_pool, migrate
from shared.http import RequestMetrics
from shared.kafka import make_consumer, make_producer
from shared.lifecycle import end_if_still_running, outcome_of
from shared.logs import configure_logging
from shared.outbox import OutboxRelay
from shared.probes import Gauge, Probes, record_start
from shared.settings import Settings, get_settings
from shared.topics import CREDENTIALS
from shared.worker import BatchHandler, StreamWorker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    migrations: Path
    consumes: Callable[[Catalogue], Sequence[str]]
    handler: Callable[[ServiceContext], BatchHandler]
    api: Callable[[ServiceContext], FastAPI]
    timers: Sequence[Callable[[ServiceContext], Coroutine[Any, Any, None]]] = field(
        default_factory=tuple)
    # The service's own gauges, refreshed with the probes (e.g. notices past their deadline).
    gauges: Sequence[Gauge] = field(default_factory=tuple)
    # Messages the handler does nothing with: a batch of only those costs no transaction.


async def housekeeping(ctx: ServiceContext) -> None:
    """Every minute: forget processed event ids past their retention
    (shared/migrations/000_messaging.sql)."""
    while True:
        try:
            async with ctx.pool.acquire() as conn:
                await conn.execute(
                    "DELETE FROM processed_events WHERE processed_at < now() - make_interval("
                    "days => $1)", ctx.settings.processed_events_days)
        except TRANSIENT as exc:
            log.warning("housekeeping: database unavailable (%s)", exc)
        await asyncio.sleep(60)


def use_clock(settings: Settings, service: str) -> None:
    """The real clock, or a test clock anywhere but in production."""
    if settings.test_clock_file is not None:
        if settings.environment == "production":
            raise SystemExit(f"{service}: a production start refuses a test clock "
                             "(XINYONG_TEST_CLOCK_FILE is set)")
        log.warning("test clock: time moves with %s", settings.test_clock_file)
    clock.configure(settings.test_clock_file)


async def run_service(spec: ServiceSpec, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    configure_logging(spec.name, settings.log_level)
    use_clock(settings, spec.name)
    catalogue = load_catalogue(settings.catalogue_path)
    pool = await create_pool(settings, spec.name)
    async with pool.acquire() as conn:
        applied = await migrate(conn, SHARED_MIGRATIONS, spec.migrations)
        starts = await record_start(conn, spec.name)
    if applied:
        log.info("applied migrations %s", applied)
    metrics.SERVICE_STARTS.labels(spec.name).inc(starts)
    ctx = ServiceContext(spec.name, settings, catalogue, pool)
    # The HTTP API gets a pool of its own, with a statement timeout: public traffic can
    # neither starve the stream worker of connections nor hold one for long.
    http_pool = await create_http_pool(settings, spec.name)

    producer = await _started(lambda: make_producer(settings))
    topics = list(spec.consumes(catalogue))
    _zero_counters(spec.name, [*topics, CREDENTIALS.name])
    relay = OutboxRelay(settings, spec.name, producer)
    group = settings.group_id(spec.name)
    worker = StreamWorker(settings, spec.name, pool, await _consumer_of(settings, group),
                          topics, spec.handler(ctx), relay=relay,
                          gather_ms=settings.batch_gather_ms.get(spec.name, 0),
                          new_consumer=lambda: _consumer_of(settings, group))
    # Credentials have a consumer of their own: a backlog of records never delays a
    # revocation, nor does a gathering batch (it lingers as on the notice path).
    credentials_group = group + "-credentials"
    credentials_worker = StreamWorker(settings, spec.name, pool,
                                      await _consumer_of(settings, credentials_group),
                                      [CREDENTIALS.name], credentials.apply, relay=relay,
                                      group=credentials_group,
                                      new_consumer=lambda: _consumer_of(settings,
                                                                        credentials_group))
    probes = Probes(ctx, lambda: worker.assigned | credentials_worker.assigned,
                    [*topics, CREDENTIALS.name], spec.gauges)

    app = spec.api(dataclasses.replace(ctx, pool=http_pool))
    _add_readiness(app, worker)
    app.add_middleware(RequestMetrics, service=spec.name)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port(spec.name), log_config=None,
        access_log=False, lifespan="off",
        # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1; which proxies are
        # believed is the `trusted_proxies` setting's business (shared/guard.py).
        proxy_headers=False))
    # Metrics on a port of their own, never beside the public routes.
    metrics_server = uvicorn.Server(uvicorn.Config(
        make_asgi_app(), host=settings.metrics_host, port=settings.metrics_port(spec.name),
        log_config=None, access_log=False, lifespan="off"))
    # Only the main server takes the signals; request_stop stops both.
    metrics_server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign, assignment]

    def request_stop(*_: object) -> None:
        server.should_exit = True
        metrics_server.should_exit = True

    # uvicorn re-raises the signal it caught once it has stopped serving; this handler
    # receives it, so that the shutdown below still runs.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)

    settle_garbage_collector()
    tasks = [asyncio.create_task(c, name=n) for n, c in [
        ("worker", worker.run()), ("credentials", credentials_worker.run()),
        ("relay", relay.run()), ("http", server.serve()), ("metrics", metrics_server.serve()),
        ("probes", probes.run()),
        *[(t.__name__, t(ctx)) for t in (housekeeping, *spec.timers)]]]
    log.info("%s started (start %d): consuming %d topics, HTTP on %s:%d, metrics on %s:%d",
             spec.name, starts, len(topics), settings.http_host, settings.http_port(spec.name),
             settings.metrics_host, settings.metrics_port(spec.name))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.cancelled() or task.exception() is not None or not server.should_exit:
                # Any part ending on its own (a crash, a port already taken) ends the
                # process, so that a supervisor sees it; only a signal is a clean stop.
                log.error("%s task ended", task.get_name(),
                          exc_info=None if task.cancelled() else task.exception())
                raise SystemExit(1)
    finally:
        end_if_still_running(settings.stop_deadline_seconds, spec.name)
        server.should_exit = True
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await _quietly(worker.consumer.stop())
        await _quietly(credentials_worker.consumer.stop())
        await _quietly(producer.stop())
        await _quietly(http_pool.close())
        await _quietly(pool.close())
        log.info("%s stopped", spec.name)


KAFKA_START_SECONDS = 60.0
_Client = TypeVar("_Client", AIOKafkaProducer, AIOKafkaConsumer)


async def _consumer_of(settings: Settings, group: str) -> AIOKafkaConsumer:
    return await _started(lambda: make_consumer(settings, group, ()))


async def _started(make: Callable[[], _Client]) -> _Client:
    """A Kafka client, started once the cluster takes it: a broker restarting, or this
    process's user not yet in the broker's credential cache (a user the controller has just
    committed reaches it a moment later, seconds on a loaded machine), is waited out for a
    minute before the start counts as failed."""
    deadline = time.monotonic() + KAFKA_START_SECONDS
    delay = 0.5
    while True:
        client = make()
        try:
            await client.start()
            return client
        except KafkaError as exc:
            await _quietly(client.stop())
            if time.monotonic() > deadline:
                raise
            log.warning("Kafka does not take this client yet (%s); retrying in %.1fs",
                        exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _zero_counters(service: str, topics: Sequence[str]) -> None:
    """Counters exported at 0 from the start: a counter that first appears at 1 hides its
    first increase from `increase()` (deploy/prometheus/alerts.yml)."""
    metrics.DEAD_LETTERS.labels(service)
    metrics.OUTBOX_SENT.labels(service)
    metrics.OUTBOX_AGE_AT_SEND.labels(service)
    for topic in topics:
        metrics.MESSAGES.labels(service, topic)
        metrics.EVENT_AGE_AT_CONSUME.labels(service, topic)


def _add_readiness(app: FastAPI, worker: StreamWorker) -> None:
    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        positions = worker.positions_state()
        # Ready once the group has given this process its share, none included: a standby
        # beside busier processes (more processes than partitions) serves HTTP and takes
        # partitions over when another leaves; a probe must not restart it for idling. A
        # partition held by a position mismatch is not consumed: not ready, and says why.
        ready = worker.joined and not positions["unchecked"] and not positions["paused"]
        return JSONResponse({"ready": ready, "assigned_partitions": len(worker.assigned),
                             "positions": positions, "pid": os.getpid()},
                            status_code=200 if ready else 503)


async def _quietly(awaitable: Awaitable[Any]) -> None:
    # Bounded by the process's own stop deadline (`end_if_still_running`).
    await outcome_of(awaitable, None)


# Young objects the collector lets accumulate before it looks for cycles (CPython: 700).
GC_YOUNG_THRESHOLD = 50_000


def settle_garbage_collector() -> None:
    """Freeze what start-up built (modules, schemas, the catalogue: never garbage) out of
    the collector's reach, and collect the young generation less often.

    A stream batch makes and drops tens of thousands of objects (parsed events, records,
    snapshots). With CPython's defaults the collector ran every 700 allocations, walked a
    batch's live objects again and again, promoted them to the older generations and then
    walked every object start-up made on each full collection: parsing and archiving
    records in batches took about twice the CPU it takes with the collector off
    (docs/performance.md, "Replay (issue 9)"). Reference counting still frees everything
    that is not a cycle at once; cycles are still collected, later (and after each large
    batch: shared/worker.py)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def main(spec: ServiceSpec) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional
        pass
    asyncio.run(run_service(spec))

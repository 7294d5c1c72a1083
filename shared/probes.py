"""What a service reports about itself every few seconds (`probe_interval_seconds`): whether
its database and the Kafka cluster answer, its outbox backlog and the age of its oldest
row, its consumer lag per topic, and the service's own gauges (`ServiceSpec.gauges`).

Lag is measured against the stored positions (`consumed_positions`, the ones that decide
what is applied), not the group's committed offsets, which may trail them (shared/worker.py
commits after the transaction). Each process reports the partitions assigned to it, so the
sum over a service's processes is the service's lag.

A probe that fails reports the failure and never ends the process: a metric is not worth
an outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared import metrics
from shared.context import ServiceContext
from shared.kafka import client_options

log = logging.getLogger(__name__)

# A service's own gauge, computed from its database (e.g. notices past their deadline).
Gauge = Callable[[ServiceContext, asyncpg.Connection], Awaitable[None]]

_TIMEOUT = 10.0


def lag_by_topic(ends: Mapping[tuple[str, int], int],
                 positions: Mapping[tuple[str, int], int],
                 topics: Iterable[str]) -> dict[str, int]:
    """Per topic, the sum over the given partitions of log end minus the stored position (a
    partition never applied counts from offset 0); every topic in `topics` appears, with 0
    when none of its partitions is given, so that a process that lost its partitions stops
    reporting their lag."""
    lag = dict.fromkeys(topics, 0)
    for (topic, partition), end in ends.items():
        lag[topic] = lag.get(topic, 0) + max(0, end - positions.get((topic, partition), 0))
    return lag


async def record_start(conn: asyncpg.Connection, service: str) -> int:
    """Count this start in the service's database; returns the starts so far, this one
    included."""
    return int(await conn.fetchval(
        "INSERT INTO service_starts AS s (service, starts) VALUES ($1, 1)"
        " ON CONFLICT (service) DO UPDATE SET starts = s.starts + 1, last_started_at = now()"
        " RETURNING starts", service))


class Probes:
    def __init__(self, ctx: ServiceContext, assigned: Callable[[], set[TopicPartition]],
                 topics: Sequence[str], gauges: Sequence[Gauge] = ()) -> None:
        """`assigned`: the partitions the service's stream consumers hold now, this
        process's share of the lag; `topics`: every topic they consume (un-namespaced)."""
        self.ctx = ctx
        self.assigned = assigned
        self.topics = list(topics)
        self.gauges = gauges
        self._probe: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        try:
            while True:
                await self.once()
                await asyncio.sleep(self.ctx.settings.probe_interval_seconds)
        finally:
            if self._probe is not None:
                await self._probe.stop()

    async def once(self) -> None:
        name = self.ctx.name
        database_up = await self._database_answers()
        metrics.DATABASE_UP.labels(name).set(int(database_up))
        positions: dict[tuple[str, int], int] | None = None
        if database_up:
            try:
                positions = await self._from_database()
            except Exception:
                log.exception("probes: reading the database failed")
        ends = await self._log_ends()
        metrics.KAFKA_UP.labels(name).set(int(ends is not None))
        if ends is not None and positions is not None:
            for topic, lag in lag_by_topic(ends, positions, self.topics).items():
                metrics.CONSUMER_LAG.labels(name, topic).set(lag)

    async def _database_answers(self) -> bool:
        """A connection of its own: a pool busy with batches is not a database down."""
        try:
            conn = await asyncpg.connect(self.ctx.settings.dsn(self.ctx.name), timeout=_TIMEOUT)
            try:
                await conn.fetchval("SELECT 1", timeout=_TIMEOUT)
            finally:
                await conn.close(timeout=_TIMEOUT)
            return True
        except Exception as exc:
            log.warning("probes: database %s does not answer (%s)",
                        self.ctx.settings.db_name(self.ctx.name), exc)
            return False

    async def _from_database(self) -> dict[tuple[str, int], int]:
        name = self.ctx.name
        async with self.ctx.pool.acquire(timeout=_TIMEOUT) as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS pending,"
                " coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest"
                " FROM outbox")
            metrics.OUTBOX_PENDING.labels(name).set(row["pending"])
            metrics.OUTBOX_OLDEST_AGE.labels(name).set(max(0.0, float(row["oldest"])))
            if self.gauges:
                # A gauge counts over tables that grow with the city, every probe, beside the
                # public API: one core at most (docs/decisions.md, "Background queries, lock
                # order, and how the bench measures itself"). Transaction-scoped: no session
                # state is left on the pooled connection.
                async with conn.transaction():
                    await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                    for gauge in self.gauges:
                        await gauge(self.ctx, conn)
            rows = await conn.fetch("SELECT topic, partition, next_offset FROM consumed_positions")
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def _log_ends(self) -> dict[tuple[str, int], int] | None:
        """The log end offsets of this process's partitions (un-namespaced topic names); None
        when the cluster does not answer. With no partitions, the cluster's metadata is the
        probe."""
        namespace = self.ctx.settings.topic_namespace
        assigned = self.assigned()
        try:
            probe = await self._probe_client()
            if not assigned:
                await asyncio.wait_for(probe.topics(), _TIMEOUT)
                return {}
            ends = await asyncio.wait_for(probe.end_offsets(list(assigned)), _TIMEOUT)
        except Exception as exc:
            log.warning("probes: Kafka does not answer (%s)", exc)
            return None
        return {(tp.topic.removeprefix(namespace), tp.partition): end
                for tp, end in ends.items()}

    async def _probe_client(self) -> AIOKafkaConsumer:
        """A client of its own, in no group: asking for log ends never disturbs the stream
        consumers' fetches or their group."""
        if self._probe is None:
            probe = AIOKafkaConsumer(**client_options(self.ctx.settings),
                                     enable_auto_commit=False,
                                     isolation_level="read_committed",
                                     request_timeout_ms=int(_TIMEOUT * 1000))
            try:
                await asyncio.wait_for(probe.start(), _TIMEOUT)
            except BaseException:
                await probe.stop()
                raise
            self._probe = probe
        return self._probe

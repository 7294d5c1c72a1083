"""stats-windows: the early warning's rolling counts, on faust-streaming.

The job faust is built for: windowed counts in a changelogged table, where a rare double
count after a crash is harmless (the official figures are exact, in SQL: services/stats).
The consume-transact-commit core of the services stays on aiokafka (docs/decisions.md,
"Early warning on faust").

- Source: `credit.stats.deltas`, written by the stats service with its facts, keyed by
  district: `{fact_id, district, measure, on, delta}`, `delta` the signed sum of a batch's
  cases of that district, rule and day (a withdrawal counts -1). SQL decides what counts;
  this only sums.
- Table: `Table(default=int).hopping(size, step, expires).relative_to_field(cast(Any, Delta.on))`,
  keyed by `district|rule`; the catalogue's `early_warnings` give size, step, threshold.
  Store: memory (the table is rebuilt from its changelog at start: a few hundred windows).
- Outputs, after each update: the absolute count of every window the delta fell in, to the
  compacted `credit.stats.windows` (key district|rule|window start); on crossing the
  threshold, `raised` or `cleared` to the compacted `credit.stats.warnings`. Duplicates are
  harmless (faust's producer is not idempotent): the last value of a key wins.
- Expiry: faust expires windows by wall clock, never those recovered from the changelog. A
  delta older than the horizon (`expires`) is skipped and counted: its window, made again
  from 0, would overwrite the snapshot with a wrong count.
- Rebalances: faust lost or doubled deltas at a takeover; `_Consumer` corrects it, and the
  agent reads a partition again from a delta that never reached it (`resume_at`).
- Failures: a delta that cannot be read or counted goes to `credit.deadletter.stats-windows`
  (awaited) and the loop goes on (faust acks an event whose handler raised: faust-streaming
  #315, #527). Anything else ends the worker (`CrashingSupervisor`), which its supervisor
  starts again; at_least_once, `concurrency=1` (#606 commits past an unprocessed message at
  concurrency > 1), acks=all, no exactly_once (#517, #323, #177), no `on_window_close` (it
  gets no window data), no PostgreSQL in here.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import operator
import os
import time
from datetime import datetime
from typing import Any, cast

import faust
import mode
from aiohttp import web
from faust.sensors.monitor import Monitor
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.stats import domain
from shared import clock, metrics
from shared.catalogue import Catalogue, load_catalogue
from shared.contract import DeadLetter, StatsDelta, StatsWarning, StatsWindow, WindowRange
from shared.envelope import encode_event, typed
from shared.kafka import client_options
from shared.lifecycle import end_if_still_running
from shared.logs import configure_logging
from shared.messages import check_source
from shared.settings import Settings, get_settings
from shared.topics import DEAD_LETTERS, STATS_DELTAS, STATS_WARNINGS, STATS_WINDOWS

NAME = "stats-windows"
SOURCE = f"xinyong/{NAME}"
TABLE = "counts"  # its changelog: <app id>-counts-changelog (shared/topics.py)
STALL_CHECK_SECONDS = 5.0
log = logging.getLogger(__name__)


class Delta(faust.Record, serializer="json"):
    """A delta as the table reads it: `on` places it in its windows."""

    fact_id: str
    district: str
    measure: str
    on: datetime
    delta: int


class _Placed:
    """What the windowed table reads a timestamp from (`relative_to_field` reads
    `event.value`): the delta, parsed from its CloudEvent by the agent."""

    def __init__(self, value: StatsDelta) -> None:
        self.value = value


def credentials(settings: Settings) -> faust.SASLCredentials:
    options = client_options(settings)
    return faust.SASLCredentials(username=options["sasl_plain_username"],
                                 password=options["sasl_plain_password"],
                                 mechanism=settings.kafka_sasl_mechanism,
                                 ssl_context=options.get("ssl_context"))


def read_delta(value: bytes | None) -> StatsDelta:
    """The delta of a CloudEvent from the stats service; ValueError otherwise."""
    event = typed(StatsDelta).model_validate_json(value or b"")
    if event.data is None or event.type != STATS_DELTAS.event_type:
        raise ValueError(f"not a {STATS_DELTAS.event_type} event")
    check_source(event, STATS_DELTAS)
    return event.data  # type: ignore[no-any-return]


class _Consumer(faust_aiokafka.Consumer):
    """faust's consumer, corrected where a rebalance lost or doubled deltas, and keeping the
    next offset to count of each source partition (`next_to_count`).

    - faust 0.15.3 forgets the offsets acked on revoked partitions (`on_partitions_revoked`
      pops `_acked`) before its own commit on revocation runs, so that commit commits
      nothing: every delta counted since the last interval commit (2.8 s) was counted again
      by whichever worker got the partition next (measured: 8 of 8 deltas twice when a second
      worker joined). It commits first.
    - faust fetches a newly assigned partition at once, while its table recovers, and seeks
      the committed offsets only after: a delta fetched in between was skipped and acked
      (measured: the first delta after a takeover never counted). Every source partition
      waits for the seek.
    - faust commits past the first offset after the committed one when that offset was never
      acked but the next was (`_new_offset` tests `min(acked) - committed > 1`; the committed
      offset is the next to read): one delta lost, exactly what a takeover lost now and then.
      A commit waits for the committed offset's own ack.
    - The source has no gaps (not compacted, no transactions), so faust's gap filling, made
      for those, could only commit a delta that never reached the agent: the agent finds
      gaps instead and reads again from the first delta missing (`resume_at`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next: dict[Any, int] = {}  # TP -> the next offset this process counts
        self._reseed: set[Any] = set()  # TPs assigned since their last delta
        self.last_event_at = 0.0  # monotonic time the agent last took an event
        self._rereading: dict[Any, tuple[int, float]] = {}  # TP -> (offset, when) sought

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.commit()
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        source = {tp for tp in assigned if not self._is_changelog_tp(tp)}
        self._paused_partitions.update(source)
        self._reseed.update(source)
        await super().on_partitions_assigned(assigned, generation_id)

    def _new_offset(self, tp: Any) -> int | None:
        acked, committed = self._acked[tp], self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            return None
        return super()._new_offset(tp)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        pass

    def next_to_count(self, tp: Any, offset: int) -> int:
        """The offset the agent must count next on `tp`, `offset` being the one it has.

        After an assignment: the committed offset, or past what this process has counted if
        that is further (an event counted but not yet acked when the rebalance came is not
        counted again); the first delta ever read on a partition starts it."""
        if tp in self._reseed:
            self._reseed.discard(tp)
            committed = self._committed_offset[tp]
            start = max(self._next.get(tp, -1), -1 if committed is None else committed)
            if start >= 0:
                self._next[tp] = start
        return self._next.setdefault(tp, offset)

    def counted(self, tp: Any, offset: int) -> None:
        self._next[tp] = offset + 1

    def never_ack(self, message: Any) -> None:
        """Leave `message` out of every commit: it comes again after the seek."""
        message.acked = True  # faust's ack does nothing for a message already acked
        self._unacked_messages.discard(message)  # nor does a rebalance wait for it

    async def resume_at(self, tp: Any, offset: int, why: str) -> None:
        """Read `tp` again from `offset`, the first delta missing; nothing after it is
        acked until it is counted. A delta already expired from the topic is given up,
        logged, from the partition's first offset on.

        One seek per missing delta: the deltas already fetched behind it come as gaps too,
        and a seek for each would fetch the backlog again each time (measured: a burst at
        841 deltas/s stalled). Should faust's fetch loop have moved its read offset past the
        seek, the seek is made again after `STALL_CHECK_SECONDS`."""
        if tp not in self.assignment():
            return  # revoked meanwhile: its next owner reads from the committed offset
        now = time.monotonic()
        last = self._rereading.get(tp)
        if last is not None and last[0] == offset and now - last[1] < STALL_CHECK_SECONDS:
            return
        if last is None or last[0] != offset:
            earliest = (await self.earliest_offsets(tp)).get(tp, 0)
            if offset < earliest:
                log.error("deltas %d-%d of %s expired from the topic before they were "
                          "counted", offset, earliest - 1, tp)
                offset = self._next[tp] = earliest
                # As if committed there: a commit waits for the committed offset's own ack.
                self._committed_offset[tp] = max(self._committed_offset[tp] or 0, earliest)
            log.warning("%s: %s: reading again from it", tp, why)
            metrics.STATS_WINDOWS_REREAD.labels(NAME, str(tp.partition)).inc()
        self._rereading[tp] = (offset, now)
        await self.seek(tp, offset)

    def stalled(self, now: float, quiet: float) -> list[tuple[Any, int]]:
        """Partitions whose end is past the next offset to count while the agent has had
        nothing to do for `quiet` seconds: a delta lost on the way to the agent, with no
        later one to show the gap. (A busy agent is not asked: its backlog is no loss.)"""
        if now - self.last_event_at <= quiet:
            return []
        return [(tp, next_offset) for tp, next_offset in self._next.items()
                if tp in self.assignment() and tp not in self._paused_partitions
                and (self.highwater(tp) or 0) > next_offset]


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class _CommitMonitor(Monitor):
    """faust's commits as a gauge per partition."""

    def on_tp_commit(self, tp_offsets: Any) -> None:
        super().on_tp_commit(tp_offsets)
        for tp, offset in tp_offsets.items():
            metrics.STATS_WINDOWS_COMMITTED.labels(NAME, str(tp.partition)).set(offset)


def build(settings: Settings, catalogue: Catalogue) -> faust.App:
    """The faust app: its source, table, outputs, agent, readiness and metrics pages."""
    shape = domain.window_shape(catalogue)
    if shape is None:
        raise SystemExit("the catalogue has no early_warnings: stats-windows has nothing to do")
    size, step = shape
    app = faust.App(
        settings.group_id(NAME),  # the namespaced app id: its group and changelog prefix
        broker=[f"kafka://{b}" for b in settings.kafka_bootstrap.split(",")],
        broker_credentials=credentials(settings),
        store="memory://",
        Monitor=_CommitMonitor,
        processing_guarantee="at_least_once",
        agent_supervisor=mode.CrashingSupervisor,
        producer_acks=-1,
        # A delta sends 2 x size/step records (changelog and snapshots); sent one request
        # each, the socket writes took a fifth of the process (py-spy). 50 ms batches them
        # (against 10 ms: 1.2-1.4 ms of CPU a delta instead of 1.5-1.8, bench.stats_windows);
        # a warning waits 50 ms more, its target is seconds.
        producer_linger=0.05,
        broker_commit_interval=domain.COMMIT_INTERVAL,
        # The group's timing of every other worker, not faust's own 60 s: a killed
        # stats-windows keeps its partitions from its successor for a session.
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
        topic_partitions=STATS_DELTAS.partitions,
        # Every topic it uses exists before it starts (provisioned); it declares none.
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # The table's keys (district|rule, window) as JSON in its changelog.
        key_serializer="json", value_serializer="json",
        table_cleanup_interval=60.0,
        web_enabled=True, web_bind=settings.metrics_host,
        web_port=settings.metrics_port(NAME), web_in_thread=False,
        datadir=str(settings.home / "stats-windows"),
    )
    app.transport = _Transport(app.conf.broker_consumer, app)
    source = app.topic(settings.topic(STATS_DELTAS.name), value_type=bytes,
                       value_serializer="raw", key_serializer="raw")
    # The snapshots and warnings go straight to the producer (the per-delta hot path):
    # their topics by name.
    windows_topic = settings.topic(STATS_WINDOWS.name)
    warnings_topic = settings.topic(STATS_WARNINGS.name)
    dead_out = app.topic(settings.topic(DEAD_LETTERS.of(NAME).name), value_serializer="raw",
                         key_serializer="raw")
    table = app.Table(TABLE, default=int, partitions=STATS_DELTAS.partitions).hopping(
        size, step, expires=domain.EXPIRES).relative_to_field(cast(Any, Delta.on))

    @app.agent(source, concurrency=1)
    async def count(stream: Any) -> None:
        consumer = cast(_Consumer, app.consumer)
        async for event in stream.events():
            message = event.message
            consumer.last_event_at = time.monotonic()
            expected = consumer.next_to_count(message.tp, message.offset)
            if message.offset < expected:
                continue  # counted already: by this process, or before the committed offset
            if message.offset > expected:
                # A delta never reached the agent (a rebalance cut its hand-over short).
                # This one is never acked, so no commit passes the missing one, and the
                # partition is read again from it.
                consumer.never_ack(message)
                await consumer.resume_at(message.tp, expected,
                                         f"delta {expected} missing before {message.offset}")
                continue
            consumer.counted(message.tp, message.offset)
            try:
                delta = read_delta(event.value)
                await _count(delta)
            except ValueError as exc:
                await _dead_letter(event, f"{type(exc).__name__}: {exc}")

    async def _count(delta: StatsDelta) -> None:
        rule = catalogue.early_warnings.get(delta.measure)
        if rule is None:
            raise ValueError(f"no early-warning rule {delta.measure!r}")
        if delta.on.timestamp() < time.time() - domain.EXPIRES.total_seconds():
            metrics.STATS_DELTAS_SKIPPED.labels(NAME).inc()
            return
        key = f"{delta.district}|{delta.measure}"
        # The table reads only `on` from the value (attrgetter on `Delta.on`): the parsed
        # delta serves, without a faust Record made again from it.
        placed = _Placed(delta)
        raw = cast(Any, table.table)  # the windowed table's own ranges and values
        ranges = list(raw._window_ranges(delta.on.timestamp()))
        before = {r: raw._get_key((key, r)) for r in ranges}
        table[key].apply(operator.add, delta.delta, cast(Any, placed))
        # The snapshots go to the Kafka producer before the changelog records are handed
        # over below, so that the sender carries both in one request (not one request each,
        # a produce request per event being most of this process's CPU: docs/performance.md,
        # "Statistics side-car"); the event is acked after both, as before.
        send = app.producer.send
        for r in ranges:
            after = raw._get_key((key, r))
            window, window_key = _window(r)
            snapshot_key = f"{key}|{window_key}".encode()
            _, value = encode_event(STATS_WINDOWS.event_type, SOURCE, delta.district,
                                    StatsWindow(district=delta.district, measure=delta.measure,
                                                window=window, count=after,
                                                threshold=rule.threshold))
            await send(windows_topic, snapshot_key, value, None, None, None)
            status = domain.crossing(before[r], after, rule.threshold)
            if status is not None:
                _, value = encode_event(STATS_WARNINGS.event_type, SOURCE, delta.district,
                                        StatsWarning(district=delta.district,
                                                     measure=delta.measure, window=window,
                                                     count=after, threshold=rule.threshold,
                                                     status=status))
                await send(warnings_topic, snapshot_key, value, None, None, None)
        await _changelog_handed_over()
        metrics.STATS_DELTAS.labels(NAME).inc()

    async def _changelog_handed_over() -> None:
        """The table's changelog records wait in faust's send buffer; its commit flushes that
        buffer only for 0.1 s (ProducerBuffer.flush_atmost), so an offset could be committed
        while the changelog record of its event was still buffered, and lost by a stop
        (measured: a window one short after a worker stopped). The event is acked only once
        its changelog records are with the Kafka producer, whose flush the commit awaits."""
        buffer = app.producer.buffer
        while buffer.size:
            await buffer.flush_atmost(buffer.size)

    async def _dead_letter(event: Any, reason: str) -> None:
        message = event.message
        value: bytes = message.value or b""
        log.warning("dead letter from %s[%d]@%d: %s", message.topic, message.partition,
                    message.offset, reason)
        letter = DeadLetter(service=NAME, reason=reason[:2000], topic=STATS_DELTAS.name,
                            partition=message.partition, offset=message.offset,
                            key=(message.key or b"").decode("utf-8", "replace")[:256] or None,
                            stored_id=0, size=len(value),
                            sha256=hashlib.sha256(value).hexdigest(),
                            preview=value[:256].decode("utf-8", "replace"))
        _, body = encode_event(DEAD_LETTERS.event_type, SOURCE, None, letter)
        # Awaited: the event is acked whatever happens next, so its dead letter is sent first.
        await (await dead_out.send(key=message.key, value=body))
        metrics.DEAD_LETTERS.labels(NAME).inc()

    @app.timer(interval=STALL_CHECK_SECONDS)  # type: ignore[untyped-decorator]
    async def find_lost_deltas() -> None:
        """The last delta before a quiet spell has no later one to show it missing."""
        consumer = cast(_Consumer, app.consumer)
        if not app.started or app.rebalancing:
            return
        for tp, offset in consumer.stalled(time.monotonic(), STALL_CHECK_SECONDS):
            await consumer.resume_at(tp, offset, f"nothing counted from {offset} while the "
                                     "partition goes further")

    @app.page("/readyz")
    async def readyz(web_view: Any, request: Any) -> Any:
        consumer = app.consumer if app.started else None
        assigned = bool(consumer is not None and consumer.assignment())
        recovered = (cast(Any, app.tables).recovery.completed.is_set() if app.started
                     else False)
        ok = assigned and recovered and not app.rebalancing
        return web_view.json({"ready": ok, "assigned_partitions": len(
            consumer.assignment()) if consumer is not None else 0, "pid": os.getpid(),
            "positions": {"unchecked": 0, "paused": []}}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics_page(web_view: Any, request: Any) -> Any:
        return web.Response(body=generate_latest(), headers={
            "Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web_view: Any, request: Any) -> Any:
        return web_view.json({"status": "ok"})

    metrics.DEAD_LETTERS.labels(NAME)
    metrics.STATS_DELTAS.labels(NAME)
    metrics.STATS_DELTAS_SKIPPED.labels(NAME)
    return app


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, clock.ZHUHAI)


@functools.lru_cache(maxsize=4096)
def _window(r: tuple[float, float]) -> tuple[WindowRange, str]:
    """A window range of the table as the contract gives it, and its start as the snapshot
    key's last part; the same few windows recur for every delta of a period."""
    window = WindowRange(**{"from": _at(r[0]), "to": _at(r[1])})
    return window, window.from_.isoformat()


class Worker(faust.Worker):
    """faust's worker, keeping its command line: the stack knows its processes by it
    (deploy/stack.py::ServiceProcess.pid), and faust would retitle the process. Its stop,
    after a signal or a crash, has `stop_deadline_seconds` to finish (shared/lifecycle.py):
    faust's consumer thread can wait for ever on the app's loop while that loop waits for
    the thread to stop."""

    def __init__(self, app: faust.App, stop_deadline_seconds: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.stop_deadline_seconds = stop_deadline_seconds

    def _setproctitle(self, info: str, *, ident: str = "") -> None:
        pass

    async def stop(self) -> None:
        if not self._stopped.is_set():
            end_if_still_running(self.stop_deadline_seconds, NAME)
        await super().stop()


def main() -> None:
    settings = get_settings()
    configure_logging(NAME, settings.log_level)
    app = build(settings, load_catalogue(settings.catalogue_path))
    worker = Worker(app, settings.stop_deadline_seconds, loglevel=settings.log_level,
                    override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()

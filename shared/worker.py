"""The stream worker every service uses: batches in, one transaction per batch, commit after.

At-least-once delivery plus idempotency: a batch's effects, its outbox events and the
consumed positions are written in one database transaction; only then is the Kafka offset
committed. A crash at any point either loses nothing (Kafka redelivers) or replays what the
stored positions then skip.

The database's positions, not Kafka's committed offsets, say where each partition resumes:
a newly assigned partition stays paused until its stored position has been checked against
the log (another cluster, a topic created again, a restored database, deleted or truncated
messages: shared/positions.py), then is sought there, replayed, or held for an operator.

A batch that fails for a reason other than a lost connection is retried one message at a
time; a message that still fails goes to the service's dead-letter topic with the reason (its
bytes kept in the `dead_letters` table), so one poison message never stalls its partition.
A lost database connection is not the message's fault: the worker waits and retries the
same batch.

A consumer out of its group for `group_rejoin_seconds` (a join that never ends, as after a
broker that stalled longer than a session) is closed and a new one joins in its place: the
database's positions make the new member start where the old one stopped.

Once a batch's transaction has committed, the outbox rows it wrote go to the relay, which
sends them from memory at once (shared/outbox.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    GroupAuthorizationFailedError,
    IllegalStateError,
    KafkaError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    TopicAuthorizationFailedError,
)
from confluent_kafka.admin import AdminClient
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_exponential

from shared import inbox, metrics, outbox
from shared.db import TRANSIENT
from shared.kafka import ADMIN_TIMEOUT_S, client_options, log_ids, make_admin, observe_logs
from shared.lifecycle import outcome_of
from shared.messages import InboundMessage
from shared.outbox import OutboxRelay
from shared.positions import commit_metadata, resolve_command
from shared.settings import Settings

log = logging.getLogger(__name__)
_AUTHORIZATION_RETRY_S = 5.0
# How much longer than its own timeout a fetch may wait (`StreamWorker._fetch`).
_FETCH_GRACE_S = 1.0

BatchHandler = Callable[[asyncpg.Connection, Sequence[InboundMessage]], Awaitable[None]]
# Makes and starts a consumer in the worker's group, subscribed to nothing yet.
ConsumerFactory = Callable[[], Awaitable[AIOKafkaConsumer]]



# A batch at least this large is followed by a collection of the young generations.
COLLECT_AFTER = 200


def next_batch_limit(limit: int, fetched: int, settings: Settings) -> int:
    """The next batch's size limit: doubled after a full batch (a backlog), up to
    `batch_max_backlog`; `batch_max` again after one that was not."""
    if fetched >= limit:
        return max(settings.batch_max, min(limit * 2, settings.batch_max_backlog))
    return settings.batch_max


def linger_seconds(fetched: int, last_batch_seconds: float, settings: Settings,
                   gather_ms: int = 0) -> float:
    """How long a batch of `fetched` messages waits for more before its transaction: as
    long as the last batch took, capped; none for an empty or a large enough batch. A
    service that gathers (`batch_gather_ms`) waits its gathering time for any batch."""
    if fetched == 0:
        return 0.0
    if gather_ms:
        return gather_ms / 1000
    if fetched >= settings.batch_linger_records:
        return 0.0
    return min(last_batch_seconds, settings.batch_linger_ms / 1000)


def linger_records(limit: int, settings: Settings, gather_ms: int = 0) -> int:
    """How many messages end a batch's wait at once: a full batch for a service that
    gathers, else `batch_linger_records`."""
    return limit if gather_ms else min(settings.batch_linger_records, limit)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.worker.rejoining()
        # The next owner starts from the database's positions whatever the group's offsets
        # say; committing what is held keeps the group's view (and its lag) close.
        await self.worker.commit_held(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Only bookkeeping here: aiokafka logs and swallows a listener's exception and would
        # then fetch from Kafka's committed offsets. The checks run in the worker's loop.
        self.worker.assignment_changed()


class StreamWorker:
    def __init__(self, settings: Settings, service: str, pool: asyncpg.Pool,
                 consumer: AIOKafkaConsumer, topics: Sequence[str], handler: BatchHandler,
                 admin: AdminClient | None = None, relay: OutboxRelay | None = None,
                 group: str | None = None, gather_ms: int = 0,
                 new_consumer: ConsumerFactory | None = None) -> None:
        """`new_consumer`: how to make the consumer that replaces one stuck out of its group
        (`_mind_group`); without it a stuck consumer is only reported."""
        self.settings = settings
        self.service = service
        # How long each batch gathers (`batch_gather_ms`, off the notice path); 0: the
        # adaptive linger (`linger_seconds`).
        self.gather_ms = gather_ms
        # The consumer's group, whose committed offsets the position check compares.
        self.group = group or settings.group_id(service)
        self.pool = pool
        self.consumer = consumer
        self._new_consumer = new_consumer
        # Exported at 0 from the start: an alert's increase() misses a series' first value.
        metrics.CONSUMERS_REPLACED.labels(service, self.group)
        # Since when the consumer has held no generation of its group: from each
        # subscription (`_subscribe`) and each rebalance until its assignment.
        self.out_of_group_since: float | None = None
        self.topics = list(topics)
        self.handler = handler
        self.relay = relay
        # Offsets stored in the database and not yet committed to the group: committed once
        # `offset_commit_seconds` has passed since the last commit, not after every batch;
        # each with the log it was counted on (`positions.commit_metadata`).
        self._uncommitted: dict[TopicPartition, tuple[int, str]] = {}
        self._committed_at = 0.0
        # How many messages the next batch may take (settings `batch_max`, growing up to
        # `batch_max_backlog` while batches come full).
        self.batch_limit = settings.batch_max
        # How long the last batch's transaction took: how long the next small batch waits
        # for more (`linger_seconds`).
        self._last_batch_seconds = 0.0
        self._admin = admin  # made when first needed (a worker that never checks needs none)
        # Admin clients given up on, each kept until its requests have timed out: librdkafka
        # destroying one while an answer is parsed can abort the process (`_retire_admin`).
        self._retired_admins: list[tuple[float, AdminClient]] = []
        self.assigned: set[TopicPartition] = set()
        # Whether the group has given this worker its share at least once (maybe none: a
        # standby when the group has more workers than partitions).
        self.joined = False
        # Assigned but not yet checked against their log: paused, nothing fetched.
        self.unchecked: set[TopicPartition] = set()
        # Paused by a position mismatch until an operator resolves it: why, and how.
        self.held: dict[TopicPartition, str] = {}
        self.cluster_id: str | None = None
        self.topic_ids: dict[str, str] = {}  # by topic name on the broker
        self._generation = 0
        self._next_check = 0.0
        self._retry_at = 0.0
        # Per topic on the broker: its contract name and its age histogram (`_message`, on
        # every message consumed: the namespace and the label lookup once per topic).
        self._topic_of: dict[str, tuple[str, Any]] = {}

    def rejoining(self) -> None:
        if self.out_of_group_since is None:
            self.out_of_group_since = time.monotonic()

    def assignment_changed(self) -> None:
        self.assigned = set(self.consumer.assignment())
        self.joined = True
        self.out_of_group_since = None
        self._generation += 1
        # A partition is read from nowhere until its stored position has been checked.
        self.consumer.pause(*self.assigned)
        self.unchecked = set(self.assigned)
        # Held offsets were committed when the partitions were revoked; any left may belong
        # to a log the check below finds replaced.
        self._uncommitted = {}
        self.held = {tp: why for tp, why in self.held.items() if tp in self.assigned}
        metrics.ASSIGNED_PARTITIONS.labels(self.service).set(len(self.assigned))

    def positions_state(self) -> dict[str, Any]:
        """For readiness: partitions not consumed, and why."""
        return {"unchecked": len(self.unchecked),
                "paused": [{"topic": self._contract_name(tp.topic),
                            "partition": tp.partition, "why": why}
                           for tp, why in sorted(self.held.items())]}

    def _subscribe(self) -> None:
        self.out_of_group_since = time.monotonic()
        self.consumer.subscribe([self.settings.topic(t) for t in self.topics],
                                listener=_Rebalance(self))

    async def run(self) -> None:
        self._subscribe()
        while True:
            await self._mind_group()
            await self._check_positions()
            try:
                batches = await self._fetch(self.settings.batch_wait_ms, self.batch_limit)
                batches = await self._gathered(batches)
            except OffsetOutOfRangeError as exc:
                # The log no longer has the position (deleted, truncated, created again):
                # the client did not move it; the check below decides.
                self._check_again(set(exc.args[0]) if exc.args else set(self.assigned))
                continue
            except NoOffsetForPartitionError:
                # A partition not checked yet (positioned by the check); the client raises
                # this at once, so do not spin on it.
                await asyncio.sleep(self.settings.batch_wait_ms / 1000)
                continue
            except (GroupAuthorizationFailedError, TopicAuthorizationFailedError) as exc:
                # The broker refuses this principal (its ACLs missing, or being made again):
                # nothing is consumed, so nothing is lost; wait for an operator, loudly,
                # instead of ending the process in a restart loop.
                log.error("not authorized to consume (%s); retrying in %gs", exc,
                          _AUTHORIZATION_RETRY_S)
                await asyncio.sleep(_AUTHORIZATION_RETRY_S)
                continue
            self.batch_limit = next_batch_limit(
                self.batch_limit, sum(map(len, batches.values())), self.settings)
            batches = {tp: records for tp, records in batches.items()
                       if tp in self.assigned and tp not in self.unchecked
                       and tp not in self.held}
            messages = [self._message(m) for records in batches.values() for m in records]
            offsets = {tp: records[-1].offset + 1
                       for tp, records in batches.items() if records}
            if not messages:
                await self._commit_if_due()
                continue
            await self._apply_with_fallback(messages)
            await self._commit(offsets)
            if len(messages) >= COLLECT_AFTER:
                # The batch's objects are garbage now: a young-generation collection here
                # walks what little is alive instead of a batch in the middle of its work
                # (shared/service.py, settle_garbage_collector).
                messages, batches = [], {}
                gc.collect(1)

    async def _fetch(self, timeout_ms: int, max_records: int
                     ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """What the consumer has fetched, within `timeout_ms` and a little more. Until its
        group has given it an assignment, aiokafka's getmany waits for one without a
        timeout; the worker's loop must go on (`_mind_group`), and counts the consumer out
        of its group from then on. Cancelled while waiting, getmany has taken no records
        yet; returning, it holds an assignment."""
        try:
            # asyncio.timeout, not wait_for: no task of its own for every fetch.
            async with asyncio.timeout(timeout_ms / 1000 + _FETCH_GRACE_S):
                fetched = await self.consumer.getmany(timeout_ms=timeout_ms,
                                                      max_records=max_records)
        except TimeoutError:
            self.rejoining()
            return {}
        self.out_of_group_since = None
        return fetched  # type: ignore[no-any-return]

    async def _gathered(self, batches: dict[TopicPartition, list[ConsumerRecord]]
                        ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The batch, with what arrives while it lingers (`linger_seconds`). Fetched
        messages are never dropped here: the client's positions have moved past them, so a
        failing fetch ends the wait and the batch goes on with what it has."""
        count = sum(map(len, batches.values()))
        deadline = time.monotonic() + linger_seconds(count, self._last_batch_seconds,
                                                     self.settings, self.gather_ms)
        while count < linger_records(self.batch_limit, self.settings, self.gather_ms):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                more = await self._fetch(max(1, int(left * 1000)), self.batch_limit - count)
            except KafkaError:
                break  # the next fetch meets it again, outside the wait
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)
        return batches

    # --- the consumer's group ---------------------------------------------------------------

    async def _mind_group(self) -> None:
        """Replace a consumer that has been out of its group for `group_rejoin_seconds`.
        aiokafka rejoins a member that a broker stall dropped on its own, and it usually
        does; once (a main broker fenced for ten seconds under load) every service's
        consumer stayed out for good, without a word, and their loops waited in getmany.
        Closed, it leaves whatever it was waiting on; a new member starts from the
        database's positions like any other."""
        since = self.out_of_group_since
        if (since is None or self._new_consumer is None
                or time.monotonic() - since < self.settings.group_rejoin_seconds):
            return
        log.error("the consumer of group %s has been out of it for %.0fs; replacing it",
                  self.group, time.monotonic() - since)
        metrics.CONSUMERS_REPLACED.labels(self.service, self.group).inc()
        await self._close(self.consumer)
        while True:  # the old one is stopped: the loop has nothing to fetch from until then
            try:
                self.consumer = await self._new_consumer()
                break
            except KafkaError as exc:  # the cluster does not take it yet
                log.error("no new consumer for group %s yet (%s); retrying", self.group, exc)
                await asyncio.sleep(_AUTHORIZATION_RETRY_S)
        self.assigned, self.unchecked, self._uncommitted = set(), set(), {}
        metrics.ASSIGNED_PARTITIONS.labels(self.service).set(0)
        self._subscribe()

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        """Stop a consumer; if its stop is stuck too, end by hand what the stop did not reach
        (its heartbeat and fetch tasks, its connections), so that a replaced consumer
        leaves nothing running behind it."""
        failed = await outcome_of(consumer.stop(), self.settings.stop_deadline_seconds)
        if failed is None:
            return
        log.warning("the replaced consumer did not stop cleanly (%s: %s); ending its tasks",
                    type(failed).__name__, failed)
        # aiokafka's own parts (0.14): the stop above cancelled the coordination task it was
        # waiting on, not these.
        coordinator = getattr(consumer, "_coordinator", None)
        for task in (getattr(coordinator, "_heartbeat_task", None),
                     getattr(coordinator, "_commit_refresh_task", None)):
            if task is not None:
                task.cancel()
        for part in (getattr(consumer, "_fetcher", None), getattr(consumer, "_client", None)):
            if part is not None:
                await outcome_of(part.close(), self.settings.stop_deadline_seconds)

    # --- positions checked against their log (shared/positions.py) --------------------------

    def _check_again(self, partitions: set[TopicPartition]) -> None:
        partitions &= self.assigned
        for tp in partitions:
            # Counted on a log the check may find replaced: committed, they would make the
            # group look ahead of a replay (`database_behind`).
            self._uncommitted.pop(tp, None)
        self.consumer.pause(*partitions)
        self.unchecked |= partitions

    async def _check_positions(self) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            return
        try:
            if now >= self._next_check:
                self._next_check = now + self.settings.position_check_seconds
                await self._spot_new_logs()
            if self.unchecked:
                await self._reconcile()
        except Exception as exc:
            # Nothing is consumed from an unchecked partition meanwhile; the broker or the
            # database may be down for a while.
            log.warning("positions not checked yet (%s: %s); retrying", type(exc).__name__, exc)
            self._retry_at = time.monotonic() + 2
            # librdkafka keeps what it knew of the cluster (leader epochs, the coordinator):
            # after a new cluster under the same address its requests fail or time out
            # where a new client's succeed.
            self._retire_admin()

    def admin(self) -> AdminClient:
        now = time.monotonic()
        self._retired_admins = [(until, a) for until, a in self._retired_admins if until > now]
        if self._admin is None:
            self._admin = make_admin(self.settings)
        return self._admin

    def _retire_admin(self) -> None:
        """Stop using the admin client, but keep it until every request it may still have in
        flight has timed out: a failed check leaves some (one future raised, the others
        still waiting), and librdkafka 2.16 asserts, aborting the process, when a Metadata
        answer is parsed just as its client is destroyed (the parser then gives neither a
        result nor an error; rdkafka_admin.c, as DescribeCluster's did after a stall)."""
        if self._admin is not None:
            self._retired_admins.append((time.monotonic() + 2 * ADMIN_TIMEOUT_S, self._admin))
            self._admin = None

    async def _spot_new_logs(self) -> None:
        """A topic deleted and created again keeps its partitions, so no rebalance says so; a
        new cluster may not either. Their ids do. Held partitions are checked again too, for
        an operator's resolution."""
        topics = sorted({tp.topic for tp in self.assigned})
        if not topics:
            return
        cluster_id, topic_ids = await log_ids(self.admin(), topics)
        moved = {tp for tp in self.assigned
                 if self.cluster_id not in (None, cluster_id)
                 or self.topic_ids.get(tp.topic) not in (None, topic_ids[tp.topic])}
        if moved:
            log.warning("the log changed under %d partitions (cluster %s -> %s); checking "
                        "their positions", len(moved), self.cluster_id, cluster_id)
        if self.cluster_id not in (None, cluster_id):
            self._retire_admin()  # see _check_positions
        self._check_again(moved | set(self.held))

    async def _reconcile(self) -> None:
        generation = self._generation
        partitions = sorted(self.unchecked)
        logs = await observe_logs(self.admin(), self.group,
                                  [(tp.topic, tp.partition) for tp in partitions],
                                  client_options(self.settings))
        by_name = {tp: (self._contract_name(tp.topic), tp.partition) for tp in partitions}
        async with self.pool.acquire() as conn, conn.transaction():
            checked = await inbox.reconcile_positions(
                conn, {by_name[tp]: logs[(tp.topic, tp.partition)] for tp in partitions})
        # Recorded in the database whatever happens next: said now, once.
        self._report({tp: checked[by_name[tp]] for tp in partitions})
        if generation != self._generation:
            return  # reassigned meanwhile: the new assignment is checked afresh
        rewound: dict[TopicPartition, tuple[int, str]] = {}
        for tp in partitions:
            c = checked[by_name[tp]]
            self.cluster_id = c.log.cluster_id
            self.topic_ids[tp.topic] = c.log.topic_id
            self._carry_out(tp, c)
            if c.verdict.start is not None and (c.log.committed_elsewhere or (
                    c.verdict.start != c.log.committed and (
                        c.verdict.found or c.verdict.resolved))):
                rewound[tp] = (c.verdict.start, self._counted_on(tp))
        self.unchecked.difference_update(partitions)
        metrics.PARTITIONS_PAUSED.labels(self.service).set(len(self.held))
        if rewound:
            # The group's offset follows the database's, so that the next check does not
            # take this replay for a restored database.
            await self._commit_offsets(
                rewound, "offset commit after a replay",
                "the next check may see the database behind the group and replay again, "
                "harmlessly")

    def _report(self, checked: dict[TopicPartition, inbox.Checked]) -> None:
        """Log and count what the check found."""
        replays: dict[tuple[str, str, str | None], list[str]] = {}
        for tp, c in checked.items():
            topic, v = self._contract_name(tp.topic), c.verdict
            where = f"{topic}[{tp.partition}]"
            if v.found is not None:
                metrics.POSITION_MISMATCHES.labels(self.service, topic, v.found).inc()
                if v.paused:
                    log.error("%s paused: %s: %s; resolve with `%s`", where, v.found, c.detail,
                              resolve_command(self.service, topic, tp.partition))
                else:
                    replays.setdefault((topic, v.found, c.detail), []).append(
                        f"{tp.partition}@{v.start}")
            elif v.resolved is not None:
                log.warning("%s resumed from offset %d (%s, as an operator chose)", where,
                            v.start, v.resolved)
        for (topic, reason, detail), where_from in replays.items():
            # One line per topic: a new cluster replays every partition of every topic.
            log.warning("%s replayed (partition@offset: %s): %s: %s", topic,
                        ", ".join(where_from), reason, detail)

    def _carry_out(self, tp: TopicPartition, c: inbox.Checked) -> None:
        topic, v = self._contract_name(tp.topic), c.verdict
        if v.start is None:
            self.held[tp] = (f"{v.found or v.held_by}: {c.detail}; resolve with "
                             f"`{resolve_command(self.service, topic, tp.partition)}`")
            return
        self.held.pop(tp, None)
        self.consumer.seek(tp, v.start)
        self.consumer.resume(tp)

    async def _commit_offsets(self, offsets: dict[TopicPartition, tuple[int, str]],
                              what: str, consequence: str) -> None:
        """Commit offsets to the group; a failure is logged, not raised: the database's
        positions are what this worker and the next owner resume from."""
        try:
            # aiokafka retries a commit as long as the coordinator answers with a retriable
            # error; a commit is only the group's view, so it never holds the worker (or a
            # rebalance: `_Rebalance.on_partitions_revoked`) longer than a session.
            await asyncio.wait_for(self.consumer.commit(offsets),
                                   self.settings.kafka_session_timeout_ms / 1000)
        except (CommitFailedError, KafkaError, IllegalStateError, TimeoutError) as exc:
            log.warning("%s failed (%s); %s", what, exc, consequence)

    def _contract_name(self, topic: str) -> str:
        ns = self.settings.topic_namespace
        return topic[len(ns):] if ns and topic.startswith(ns) else topic

    def _message(self, record: object) -> InboundMessage:
        r = record  # aiokafka ConsumerRecord
        topic: str = r.topic  # type: ignore[attr-defined]
        key: bytes | None = r.key  # type: ignore[attr-defined]
        known = self._topic_of.get(topic)
        if known is None:
            name = self._contract_name(topic)
            known = self._topic_of[topic] = (
                name, metrics.EVENT_AGE_AT_CONSUME.labels(self.service, name))
        name, age = known
        age.observe(max(0.0, time.time() - r.timestamp / 1000))  # type: ignore[attr-defined]
        return InboundMessage(
            topic=name,
            partition=r.partition,  # type: ignore[attr-defined]
            offset=r.offset,  # type: ignore[attr-defined]
            key=key.decode("utf-8", "replace") if key is not None else None,
            value=r.value or b"",  # type: ignore[attr-defined]
            timestamp_ms=r.timestamp,  # type: ignore[attr-defined]
            topic_id=self.topic_ids.get(topic),
            raw_key=key,
        )

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Hold the offsets of a batch whose transaction has committed for the group, and
        commit them if one is due."""
        self._uncommitted.update({tp: (offset, self._counted_on(tp))
                                  for tp, offset in offsets.items()})
        await self._commit_if_due()

    def _counted_on(self, tp: TopicPartition) -> str:
        """The commit metadata naming the log this worker consumes `tp` from: an offset
        committed on a log that is gone when it arrives is then not taken for this one's
        (shared/positions.py, `LogState.group_offset`)."""
        return commit_metadata(self.cluster_id, self.topic_ids.get(tp.topic))

    async def _commit_if_due(self) -> None:
        """Commit the held offsets to the group at most every `offset_commit_seconds`. The
        database's positions are what a restarted or new owner starts from; a group offset
        behind them is the normal case after a crash (shared/positions.py), so committing
        less often loses nothing and saves the broker a request and a log append per
        batch."""
        if self._uncommitted and (time.monotonic() - self._committed_at
                                  >= self.settings.offset_commit_seconds):
            await self.commit_held(set(self._uncommitted))

    async def commit_held(self, partitions: set[TopicPartition]) -> None:
        offsets = {tp: self._uncommitted.pop(tp) for tp in partitions & set(self._uncommitted)}
        self._committed_at = time.monotonic()
        if offsets:
            await self._commit_offsets(offsets, "offset commit",
                                       "replayed messages will be skipped")

    async def _apply_with_fallback(self, messages: list[InboundMessage]) -> None:
        try:
            await self._apply_retrying(self.handler, messages)
        except Exception:
            log.exception("batch of %d failed; applying one by one", len(messages))
            for message in messages:
                try:
                    await self._apply_retrying(self.handler, [message])
                except Exception as exc:
                    await self._dead_letter(message, _reason(exc))

    async def _dead_letter(self, message: InboundMessage, reason: str) -> None:
        """Set the message aside with the reason. This path never stops the partition: the
        dead letter holds the raw bytes and a cleaned, bounded reason (shared/outbox.py), and
        should even that fail, the message is passed over, logged and counted."""
        async def store(conn: asyncpg.Connection, fresh: Sequence[InboundMessage]) -> None:
            await outbox.enqueue(conn, [outbox.dead_letter(self.service, m, reason)
                                        for m in fresh])

        try:
            await self._apply_retrying(store, [message])
        except Exception:
            log.exception("could not write the dead letter of %s[%d]@%d; passing it over",
                          message.topic, message.partition, message.offset)
            metrics.MESSAGES_SKIPPED.labels(self.service).inc()
            await self._apply_retrying(_nothing, [message])

    async def _apply_retrying(self, effect: BatchHandler,
                              messages: list[InboundMessage]) -> None:
        """Apply, waiting out a database outage for as long as it lasts."""
        async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TRANSIENT),
                wait=wait_exponential(multiplier=0.2, max=10),
                before_sleep=before_sleep_log(log, logging.WARNING), reraise=True):
            with attempt:
                await self._apply(effect, messages)

    async def _apply(self, effect: BatchHandler, messages: list[InboundMessage]) -> None:
        """One transaction: the messages not applied yet, their effects and outbox rows, the
        positions; then the rows go to the relay."""
        started = time.perf_counter()
        with outbox.collecting() as written:
            async with self.pool.acquire() as conn, conn.transaction():
                fresh = await inbox.unapplied(conn, messages)
                if fresh:
                    await effect(conn, fresh)
                # Rows of a savepoint the handler rolled back are not in the table: only
                # those that are go to the relay.
                kept = await inbox.advance(conn, messages, outbox_ids=[r.id for r in written])
        if self.relay is not None and kept:
            self.relay.committed([r for r in written if r.id in kept])
        self._last_batch_seconds = time.perf_counter() - started
        metrics.BATCH_SECONDS.labels(self.service).observe(self._last_batch_seconds)
        for topic, count in Counter(m.topic for m in messages).items():
            metrics.MESSAGES.labels(self.service, topic).inc(count)


async def _nothing(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
    pass


def _reason(exc: BaseException) -> str:
    return outbox.text_for_storage(f"{type(exc).__name__}: {exc}", outbox.REASON_MAX_CHARS)

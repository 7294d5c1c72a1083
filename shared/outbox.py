"""The transactional outbox (one design for all services) and its relay.

`enqueue` runs inside the caller's transaction. The relay sends what is committed, in id
order, with an idempotent producer, then deletes what was sent; one relay per database is
active at a time (an advisory lock), so events of one subject leave in the order they were
written.

A stream worker hands the rows its transaction wrote to the relay once it has committed
(`collecting`, `OutboxRelay.committed`): the relay sends them from memory at once, without
reading them back, and reads from the table only the rows it does not hold (other
processes', a crash's leftovers), merged in id order. Why that keeps each subject's events
in commit order, also while the two paths overlap: docs/decisions.md, "Sending events
straight after commit".

Nothing one event holds can stop the others: an event larger than `max_event_bytes` is
refused when it is written (the caller's transaction fails, and the stream worker sends the
input that caused it to dead letters), and a row the broker refuses all the same is set
aside in `outbox_set_aside` for an operator (`xinyong outbox list|replay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    UnsupportedForMessageFormatError,
)

from shared import metrics
from shared.contract import DeadLetter
from shared.db import TRANSIENT
from shared.kafka import partition_of
from shared.messages import InboundMessage, OutboundEvent, caused_id
from shared.settings import Settings, get_settings
from shared.topics import DEAD_LETTERS

log = logging.getLogger(__name__)
_RELAY_LOCK = 727_002

# What a dead-letter event says about the message, at most: the message itself is in the
# `dead_letters` table, so the event stays a few kilobytes whatever the message.
REASON_MAX_CHARS = 2000
KEY_MAX_CHARS = 256
PREVIEW_BYTES = 256
ERROR_MAX_CHARS = 2000

# The broker refuses these for what the event is (its size, its topic, its records), not for
# the state of the cluster: sending the same row again never helps.
REFUSALS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, InvalidTopicError,
    TopicAuthorizationFailedError, CorruptRecordException, InvalidTimestampError,
    PolicyViolationError, UnsupportedForMessageFormatError)


def refused_for_what_it_is(failure: BaseException) -> bool:
    """Whether the broker refused an event for what it is (REFUSALS); anything else (a
    timeout, a lost connection, a closed producer) is the cluster's state, not the event's."""
    return isinstance(failure, REFUSALS)


class EventTooLarge(ValueError):
    """An event over `max_event_bytes`: not a failure of the database, so the stream worker
    does not retry it but sends the input message to dead letters."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(f"an event for {topic} of {size} bytes is over the {limit} allowed "
                         "(max_event_bytes)")
        self.topic, self.size, self.limit = topic, size, limit


@dataclass(frozen=True)
class DeadLetterEvent(OutboundEvent):
    """A dead letter not yet written: `enqueue` keeps the message's bytes in `dead_letters`
    and writes the event that names that row."""

    service: str
    message: InboundMessage
    reason: str


def text_for_storage(text: str, limit: int) -> str:
    """`text` as PostgreSQL text and strict JSON take it: NUL and unpaired surrogates
    replaced, at most `limit` characters."""
    return (text[:limit].encode("utf-8", "replace").decode("utf-8")
            .replace("\x00", "\N{REPLACEMENT CHARACTER}"))


def dead_letter(service: str, message: InboundMessage, reason: str) -> OutboundEvent:
    """A message this service cannot process, with the reason, for an operator. Written by
    `enqueue` like any event; nothing in the message can make writing it fail."""
    reason = text_for_storage(reason, REASON_MAX_CHARS)
    log.warning("dead letter from %s[%d]@%d: %s", message.topic, message.partition,
                message.offset, reason)
    metrics.DEAD_LETTERS.labels(service).inc()
    key = text_for_storage(message.key, KEY_MAX_CHARS) if message.key is not None else None
    # Named by the delivery it sets aside: a replay re-emits it under the same id.
    return DeadLetterEvent(topic=DEAD_LETTERS.of(service).name, key=key,
                           event_id=caused_id(f"xinyong/{service}", "dead-letter",
                                              message.delivery),
                           value=b"", service=service, message=message, reason=reason)


@dataclass(frozen=True)
class OutboxRow:
    """A row of the outbox as the relay sends it."""

    id: int
    topic: str
    key: str | None
    value: bytes
    written_at: float  # time.time() when it was written (for the outbox-age histogram)


# The rows written in the current unit of work (`collecting`), for the relay to send from
# memory once the transaction has committed.
_written: ContextVar[list[OutboxRow] | None] = ContextVar("outbox_written", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[list[OutboxRow]]:
    """Collect the rows `enqueue` writes in this task (one transaction's worth). The list
    may hold rows of a savepoint that was rolled back: check them against the table before
    commit (`inbox.advance(..., outbox_ids=...)`) and hand the survivors to the relay."""
    rows: list[OutboxRow] = []
    token = _written.set(rows)
    try:
        yield rows
    finally:
        _written.reset(token)


async def enqueue(conn: asyncpg.Connection, events: Sequence[OutboundEvent],
                  max_event_bytes: int | None = None) -> None:
    """Write events to the outbox in the caller's transaction; raises `EventTooLarge` (and
    writes nothing) when one is over `max_event_bytes` (the setting, unless given)."""
    if not events:
        return
    limit = max_event_bytes or get_settings().max_event_bytes
    rows = []
    for event in events:
        if isinstance(event, DeadLetterEvent):
            event = await _store_dead_letter(conn, event)
        size = len(event.value) + len((event.key or "").encode())
        if size > limit:
            raise EventTooLarge(event.topic, size, limit)
        rows.append(event)
    # Ids are drawn in the order of the events (ORDER BY n), so sorted ids match them.
    ids = sorted(r["id"] for r in await conn.fetch(
        "INSERT INTO outbox (event_id, topic, key, value)"
        " SELECT e, t, k, v FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])"
        "  WITH ORDINALITY AS u(e, t, k, v, n) ORDER BY n RETURNING id",
        [e.event_id for e in rows], [e.topic for e in rows], [e.key for e in rows],
        [e.value for e in rows]))
    written = _written.get()
    if written is not None:
        now = time.time()
        written.extend(OutboxRow(i, e.topic, e.key, e.value, now)
                       for i, e in zip(ids, rows, strict=True))


async def _store_dead_letter(conn: asyncpg.Connection, event: DeadLetterEvent) -> OutboundEvent:
    m = event.message
    key = m.raw_key if m.raw_key is not None else m.key.encode() if m.key is not None else None
    stored_id = await conn.fetchval(
        'INSERT INTO dead_letters (service, topic, partition, "offset", key, value, reason)'
        " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        event.service, m.topic, m.partition, m.offset, key, m.value, event.reason)
    letter = DeadLetter(
        service=event.service, reason=event.reason, topic=m.topic, partition=m.partition,
        offset=m.offset, key=event.key, stored_id=stored_id, size=len(m.value),
        sha256=hashlib.sha256(m.value).hexdigest(),
        preview=text_for_storage(m.value[:PREVIEW_BYTES].decode("utf-8", "replace"),
                                 PREVIEW_BYTES))
    return OutboundEvent.of(DEAD_LETTERS.of(event.service), f"xinyong/{event.service}",
                            event.key, letter, event.event_id)


# --- set aside: what the broker refused --------------------------------------------------


async def set_aside(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """The rows set aside, oldest first (without their bodies: sizes instead)."""
    rows = await conn.fetch(
        "SELECT id, outbox_id, event_id, topic, key, length(value) AS size, created_at,"
        " set_aside_at, error FROM outbox_set_aside ORDER BY id")
    return [dict(r) for r in rows]


async def replay(conn: asyncpg.Connection, set_aside_id: int | None = None) -> int:
    """Move set-aside rows (one, or all) back to the outbox, after anything already in it;
    returns how many. They keep their event ids, so a consumer that has one already drops
    it."""
    async with conn.transaction():
        return len(await conn.fetch(
            "WITH moved AS (DELETE FROM outbox_set_aside"
            "  WHERE $1::bigint IS NULL OR id = $1 RETURNING *)"
            " INSERT INTO outbox (event_id, topic, key, value, created_at)"
            " SELECT event_id, topic, key, value, created_at FROM moved ORDER BY id"
            " RETURNING id", set_aside_id))


def _describe(exc: BaseException) -> str:
    return text_for_storage(f"{type(exc).__name__}: {exc}", ERROR_MAX_CHARS)


# Below every id and above every id: the open ends of the gaps `outbox_take` reads.
_NO_ID, _ALL_IDS = 0, 2**63 - 1
_READ_KEPT_SECONDS = 10.0


class OutboxRelay:
    """Sends the outbox while it holds the database's relay lock (one relay per database).

    Rounds: each takes the rows handed over from memory since the last one (`committed`),
    reads the rows it does not hold from the table when any may be there (a NOTIFY, the
    first round, once a second), deletes what the previous round sent in the same
    statement, and sends the lot in id order.
    """

    def __init__(self, settings: Settings, service: str, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.service = service
        self.producer = producer
        self._wake = asyncio.Event()
        self._handed: list[OutboxRow] = []  # committed, to be sent from memory
        self._poll = True  # the table may hold rows this relay does not
        self._leading = False
        # Ids this relay read from the table (and so sent) that may still be handed over
        # later: a hand-off after a commit can reach the relay after a round that read the
        # same committed rows. Kept a few seconds (a hand-off follows its commit at once).
        self._read: dict[int, float] = {}

    def committed(self, rows: Sequence[OutboxRow]) -> None:
        """Rows of a transaction that has committed: sent from memory while this process
        leads; otherwise the leading relay (another process) reads them after its NOTIFY."""
        if rows and self._leading:
            self._handed.extend(rows)
            self._wake.set()

    def _notified(self, *_: object) -> None:
        self._poll = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self._run_while_leader()
            except (*TRANSIENT, KafkaError) as exc:
                # Nothing is lost: unsent rows stay in the outbox until a send succeeds.
                log.warning("outbox relay interrupted (%s); retrying", exc)
                await asyncio.sleep(1)

    async def _run_while_leader(self) -> None:
        conn = await asyncpg.connect(self.settings.dsn(self.service))
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                await asyncio.sleep(2)
            await conn.add_listener("outbox", self._notified)
            self._leading, self._poll = True, True
            sent: list[int] = []
            while True:
                if not (self._handed or self._poll or sent):
                    # Nothing awaits between this check and the wait: a NOTIFY or a hand-off
                    # arriving meanwhile sets the event, and none is lost.
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                    except TimeoutError:
                        self._poll = True  # what a crash left behind, a missed NOTIFY
                sent = await self._round(conn, sent)
        finally:
            # Rows handed over and not sent are in the table, for whichever relay leads next.
            self._leading = False
            self._handed.clear()
            await conn.close()

    async def _round(self, conn: asyncpg.Connection, sent_before: list[int]) -> list[int]:
        """One round; returns the ids it sent, which the next round deletes (or this one,
        when nothing else waits)."""
        now = time.time()
        while self._read:  # oldest first (insertion order)
            oldest = next(iter(self._read))
            if now - self._read[oldest] < _READ_KEPT_SECONDS:
                break
            del self._read[oldest]
        handed = sorted((r for r in self._handed if self._read.pop(r.id, None) is None),
                        key=lambda r: r.id)
        self._handed = []
        poll, self._poll = self._poll, False
        read: list[OutboxRow] = []
        if handed or poll:
            lo, hi = _gaps([r.id for r in handed], open_above=poll)
            limit = self.settings.outbox_batch
            read = [OutboxRow(r["id"], r["topic"], r["key"], r["value"],
                              r["created_at"].timestamp())
                    for r in await conn.fetch("SELECT * FROM outbox_take($1, $2, $3, $4)",
                                              sent_before, lo, hi, limit)]
            sent_before = []
            if len(read) == limit:
                # More rows than a round takes: none of ours may pass the unread ones.
                last = read[-1].id
                self._handed = [*(r for r in handed if r.id > last), *self._handed]
                handed = [r for r in handed if r.id < last]
                self._poll = True
        elif sent_before:
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", sent_before)
            return []
        rows = sorted([*handed, *read], key=lambda r: r.id)
        for r in read:
            self._read[r.id] = now
        if not rows:
            return []
        return await self._send(conn, rows)

    async def relay_batch(self, conn: asyncpg.Connection) -> int:
        """Send the oldest rows of the table and delete them (what a round does with no rows
        in memory). Returns how many rows left the outbox."""
        rows = await conn.fetch(
            "SELECT id, topic, key, value, created_at FROM outbox ORDER BY id LIMIT $1",
            self.settings.outbox_batch)
        sent = await self._send(conn, [OutboxRow(r["id"], r["topic"], r["key"], r["value"],
                                                 r["created_at"].timestamp()) for r in rows])
        if sent:
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", sent)
        return len(rows)  # each one sent or set aside (a failure of the cluster raises)

    async def _send(self, conn: asyncpg.Connection, rows: Sequence[OutboxRow]) -> list[int]:
        """Send rows in order; set aside those refused; returns the ids sent (not yet
        deleted). A failure that is the cluster's, not the row's (the broker unreachable, a
        timeout), keeps that row and every later one for the next attempt and is raised;
        rows after it that did reach the broker are sent again then, with the same event
        ids (consumers drop repeats), so that no subject's events overtake each other."""
        outcomes = await self._produce(rows)
        now = time.time()
        age = metrics.OUTBOX_AGE_AT_SEND.labels(self.service)
        sent: list[int] = []
        refused: list[tuple[int, str]] = []
        interrupted: BaseException | None = None
        for r, failure in zip(rows, outcomes, strict=True):
            if failure is None:
                sent.append(r.id)
                age.observe(now - r.written_at)
            elif await self._refused(r.topic, failure):
                refused.append((r.id, _describe(failure)))
            else:
                interrupted = failure
                break
        if refused:
            await conn.execute(
                "WITH refused AS (SELECT * FROM unnest($1::bigint[], $2::text[])"
                "  AS r(id, error)),"
                " moved AS (DELETE FROM outbox o USING refused r WHERE o.id = r.id"
                "  RETURNING o.id, o.event_id, o.topic, o.key, o.value, o.created_at,"
                "  r.error)"
                " INSERT INTO outbox_set_aside"
                " (outbox_id, event_id, topic, key, value, created_at, error)"
                " SELECT * FROM moved",
                [i for i, _ in refused], [e for _, e in refused])
        metrics.OUTBOX_SENT.labels(self.service).inc(len(sent))
        if refused:
            metrics.OUTBOX_SET_ASIDE.labels(self.service).inc(len(refused))
            for outbox_id, error in refused:
                log.error("outbox row %d refused by the broker, set aside (`xinyong outbox "
                          "list %s`): %s", outbox_id, self.service, error)
        if interrupted is not None:
            if sent:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", sent)
            raise interrupted
        return sent

    async def _produce(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        """Hand the rows to the producer in order, as record batches filled here (one per
        partition at a time, as the producer would fill them, without a coroutine and a
        future per event); returns each row's outcome (None: acknowledged). Within a
        partition, batches are submitted in the order of their rows, and the idempotent
        producer keeps that order on the broker. A row over `max_event_bytes` goes alone
        through `send`, whose size check refuses it before the broker sees it."""
        producer = self.producer
        partitions: dict[str, list[int] | BaseException] = {}
        filling: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        pending: list[tuple[asyncio.Future[Any] | BaseException, list[int]]] = []

        async def submit(tp: tuple[str, int]) -> None:
            batch, indexes = filling.pop(tp)
            try:
                pending.append((await producer.send_batch(batch, tp[0], partition=tp[1]),
                                indexes))
            except KafkaError as exc:
                pending.append((exc, indexes))

        for i, r in enumerate(rows):
            topic = self.settings.topic(r.topic)
            key = r.key.encode() if r.key is not None else None
            if topic not in partitions:
                try:
                    partitions[topic] = sorted(await producer.partitions_for(topic))
                except KafkaError as exc:
                    partitions[topic] = exc
            known = partitions[topic]
            if isinstance(known, BaseException):
                pending.append((known, [i]))
                continue
            tp = (topic, partition_of(key, known, known))
            if len(r.value) + len(key or b"") > self.settings.max_event_bytes:
                if tp in filling:
                    await submit(tp)
                try:
                    pending.append((await producer.send(topic, value=r.value, key=key,
                                                        partition=tp[1]), [i]))
                except KafkaError as exc:
                    pending.append((exc, [i]))
                continue
            if tp in filling and filling[tp][0].append(
                    key=key, value=r.value, timestamp=None) is not None:
                filling[tp][1].append(i)
                continue
            if tp in filling:  # full: it goes, and a new one starts with this row
                await submit(tp)
            batch = producer.create_batch()
            batch.append(key=key, value=r.value, timestamp=None)  # a first row always fits
            filling[tp] = (batch, [i])
        for tp in list(filling):
            await submit(tp)
        outcomes: list[BaseException | None] = [None] * len(rows)
        for future, indexes in pending:
            failure = await _settled(future)
            for i in indexes:
                outcomes[i] = failure
        return outcomes

    async def _refused(self, topic: str, failure: BaseException) -> bool:
        if refused_for_what_it_is(failure):
            return True
        if isinstance(failure, UnknownTopicOrPartitionError):
            # Also what a producer says when it could not reach the broker at all: a topic
            # is missing only if the broker answers, and does not list it.
            client = self.producer.client
            answered = await client.force_metadata_update()
            return bool(answered) and self.settings.topic(topic) not in client.cluster.topics()
        return False


def _gaps(held: Sequence[int], open_above: bool) -> tuple[list[int], list[int]]:
    """The open intervals between sorted ids held in memory, from below the first to the
    last (and past it, with `open_above`): where rows this relay does not hold may be."""
    lo, hi = [], []
    below = _NO_ID
    for i in held:
        if i > below + 1:
            lo.append(below)
            hi.append(i)
        below = i
    if open_above or not held:
        lo.append(below)
        hi.append(_ALL_IDS)
    return lo, hi


async def _settled(pending: asyncio.Future[Any] | BaseException) -> BaseException | None:
    """None when the send succeeded, else why it failed."""
    if isinstance(pending, BaseException):
        return pending
    try:
        await pending
    except KafkaError as exc:
        failure: BaseException = exc
        return failure
    return None

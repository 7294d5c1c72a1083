"""The stream worker every service uses: batches in, one transaction per batch, commit after.

At-least-once delivery plus idempotency: a batch's effects, its outbox events and the
consumed positions are written in one database transaction; only then is the Kafka offset
committed. A crash at any point either loses nothing (Kafka redelivers) or replays what the
stored positions then skip.

A batch that fails for a reason other than a lost connection is retried one message at a
time; a message that still fails goes to the service's dead-letter topic with the reason (its
bytes kept in the `dead_letters` table), so one poison message never stalls its partition.
A lost database connection is not the message's fault: the worker waits and retries the
same batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_exponential

from shared import inbox, metrics, outbox
from shared.db import TRANSIENT
from shared.messages import InboundMessage
from shared.settings import Settings

log = logging.getLogger(__name__)

BatchHandler = Callable[[asyncpg.Connection, Sequence[InboundMessage]], Awaitable[None]]



class _AssignmentGauge(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.worker.assigned = set(self.worker.consumer.assignment())
        metrics.ASSIGNED_PARTITIONS.labels(self.worker.service).set(len(self.worker.assigned))


class StreamWorker:
    def __init__(self, settings: Settings, service: str, pool: asyncpg.Pool,
                 consumer: AIOKafkaConsumer, topics: Sequence[str], handler: BatchHandler) -> None:
        self.settings = settings
        self.service = service
        self.pool = pool
        self.consumer = consumer
        self.topics = list(topics)
        self.handler = handler
        self.assigned: set[TopicPartition] = set()

    async def run(self) -> None:
        namespaced = [self.settings.topic(t) for t in self.topics]
        self.consumer.subscribe(namespaced, listener=_AssignmentGauge(self))
        while True:
            batches = await self.consumer.getmany(
                timeout_ms=self.settings.batch_wait_ms, max_records=self.settings.batch_max)
            messages = [self._message(m) for records in batches.values() for m in records]
            if not messages:
                continue
            await self._apply_with_fallback(messages)
            await self._commit(batches)

    def _message(self, record: object) -> InboundMessage:
        r = record  # aiokafka ConsumerRecord
        topic: str = r.topic  # type: ignore[attr-defined]
        ns = self.settings.topic_namespace
        key: bytes | None = r.key  # type: ignore[attr-defined]
        return InboundMessage(
            topic=topic[len(ns):] if ns and topic.startswith(ns) else topic,
            partition=r.partition,  # type: ignore[attr-defined]
            offset=r.offset,  # type: ignore[attr-defined]
            key=key.decode("utf-8", "replace") if key is not None else None,
            value=r.value or b"",  # type: ignore[attr-defined]
            timestamp_ms=r.timestamp,  # type: ignore[attr-defined]
            raw_key=key,
        )

    async def _commit(self, batches: dict[TopicPartition, list[object]]) -> None:
        offsets = {tp: records[-1].offset + 1  # type: ignore[attr-defined]
                   for tp, records in batches.items() if records}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The positions in the database already make a replay harmless.
            log.warning("offset commit failed (%s); replayed messages will be skipped", exc)

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
        started = time.perf_counter()
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await inbox.unapplied(conn, messages)
            if fresh:
                await effect(conn, fresh)
            await inbox.advance(conn, messages)
        metrics.BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started)
        for topic, count in Counter(m.topic for m in messages).items():
            metrics.MESSAGES.labels(self.service, topic).inc(count)


async def _nothing(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
    pass


def _reason(exc: BaseException) -> str:
    return outbox.text_for_storage(f"{type(exc).__name__}: {exc}", outbox.REASON_MAX_CHARS)

"""The transactional outbox (one design for all services) and its relay.

`enqueue` runs inside the caller's transaction. The relay sends what is committed, in id
order, with an idempotent producer, then deletes it; one relay per database is active at a
time (an advisory lock), so events of one subject leave in the order they were written.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared import metrics
from shared.contract import DeadLetter
from shared.db import TRANSIENT
from shared.messages import InboundMessage, OutboundEvent
from shared.settings import Settings
from shared.topics import DEAD_LETTERS

log = logging.getLogger(__name__)
_RELAY_LOCK = 727_002


async def enqueue(conn: asyncpg.Connection, events: Sequence[OutboundEvent]) -> None:
    if not events:
        return
    await conn.copy_records_to_table(
        "outbox", columns=["event_id", "topic", "key", "value"],
        records=[(e.event_id, e.topic, e.key, e.value) for e in events])


def dead_letter(service: str, message: InboundMessage, reason: str) -> OutboundEvent:
    """A message this service cannot process, kept whole with the reason, for an operator."""
    letter = DeadLetter(
        service=service, reason=reason, topic=message.topic, partition=message.partition,
        offset=message.offset, key=message.key,
        value_base64=base64.b64encode(message.value).decode())
    log.warning("dead letter from %s[%d]@%d: %s", message.topic, message.partition,
                message.offset, reason)
    metrics.DEAD_LETTERS.labels(service).inc()
    return OutboundEvent.of(DEAD_LETTERS.of(service), f"xinyong/{service}", message.key, letter)


class OutboxRelay:
    def __init__(self, settings: Settings, service: str, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.service = service
        self.producer = producer
        self._wake = asyncio.Event()

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
            await conn.add_listener("outbox", lambda *_: self._wake.set())
            while True:
                sent = await self._relay_batch(conn)
                if sent < self.settings.outbox_batch:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                    except TimeoutError:
                        pass
        finally:
            await conn.close()

    async def _relay_batch(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT id, topic, key, value FROM outbox ORDER BY id LIMIT $1",
            self.settings.outbox_batch)
        if not rows:
            return 0
        futures = [
            await self.producer.send(
                self.settings.topic(r["topic"]), value=r["value"],
                key=r["key"].encode() if r["key"] is not None else None)
            for r in rows
        ]
        await asyncio.gather(*futures)
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                           [r["id"] for r in rows])
        metrics.OUTBOX_SENT.labels(self.service).inc(len(rows))
        return len(rows)

"""The bare aiokafka pass-through the pipeline is compared with: a process that consumes one
topic and produces every message to another, as a service's stream worker does (batches,
the services' producer settings, offsets committed after the sends), minus everything the
services do in between.

    python -m bench.passthrough IN OUT COUNT GROUP   (settings from XINYONG_* variables)

Prints `ready` once it holds its partitions, and exits after moving COUNT messages.
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer

from bench.report import run_async
from shared.kafka import client_options, make_producer
from shared.settings import Settings


async def relay(settings: Settings, source: str, target: str, count: int, group: str) -> None:
    consumer = AIOKafkaConsumer(
        settings.topic(source), **client_options(settings), group_id=settings.topic(group),
        enable_auto_commit=False, auto_offset_reset="earliest",
        isolation_level="read_committed")
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    try:
        moved, ready = 0, False
        while moved < count:
            batches = await consumer.getmany(timeout_ms=settings.batch_wait_ms,
                                             max_records=settings.batch_max)
            if not ready and consumer.assignment():
                print("ready", flush=True)
                ready = True
            futures = [await producer.send(settings.topic(target), r.value, key=r.key)
                       for records in batches.values() for r in records]
            if not futures:
                continue
            await asyncio.gather(*futures)
            await consumer.commit()
            moved += len(futures)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    source, target, count, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    run_async(relay(Settings(), source, target, count, group))


if __name__ == "__main__":
    main()

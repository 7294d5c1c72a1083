"""Small async helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared.envelope import submission_json
from shared.settings import Settings
from tests.integration.helpers import key_of


async def send(producer: AIOKafkaProducer, settings: Settings, dept: str,
               data: dict[str, Any], event_id: str | None = None) -> None:
    await producer.send_and_wait(settings.topic(f"credit.inbound.{dept}"),
                                 submission_json(dept, data, event_id), key=key_of(data))


async def send_raw(producer: AIOKafkaProducer, settings: Settings, topic: str, value: bytes,
                   key: bytes | None) -> None:
    await producer.send_and_wait(settings.topic(topic), value, key=key)


async def poll_json(url: str, check: Callable[[httpx.Response], bool],
                    timeout: float = 30, headers: dict[str, str] | None = None
                    ) -> httpx.Response:
    """GET until `check` holds; fails with the last answer."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            r = await client.get(url, headers=headers)
            if check(r):
                return r
            assert time.monotonic() < deadline, f"never matched: {r.status_code} {r.text[:500]}"
            await asyncio.sleep(0.1)


def feedback_for(record_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("data", {}).get("record_id") == record_id

"""Small async helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable
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


async def until(check: Callable[[], Awaitable[Any] | Any], what: str, timeout: float = 60,
                interval: float = 0.2, ignoring: tuple[type[BaseException], ...] = ()) -> Any:
    """Call `check` (awaiting what it returns, if it is awaitable) until it gives something
    true, and return that; fails with `what` after `timeout` seconds. Exceptions of the
    `ignoring` types count as not yet (a database restarted by another checkout, say)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
            if inspect.isawaitable(found):
                found = await found
        except ignoring:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"not reached in {timeout}s: {what}"
        await asyncio.sleep(interval)


async def until_answer(ask: Callable[[], Awaitable[httpx.Response]],
                       check: Callable[[httpx.Response], bool], what: str,
                       timeout: float = 30, interval: float = 0.1) -> httpx.Response:
    """Ask until the answer satisfies `check`, and return that answer; fails with `what`
    and the last answer."""
    last: list[httpx.Response] = []

    async def answered() -> httpx.Response | None:
        last[:] = [await ask()]
        return last[0] if check(last[0]) else None

    try:
        return await until(answered, what, timeout=timeout, interval=interval)  # type: ignore[no-any-return]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last answer: {last[0].status_code}"
                             f" {last[0].text[:500]}") from None


async def poll_json(url: str, check: Callable[[httpx.Response], bool],
                    timeout: float = 30, headers: dict[str, str] | None = None
                    ) -> httpx.Response:
    """GET until `check` holds; fails with the last answer."""
    async with httpx.AsyncClient() as client:
        return await until_answer(lambda: client.get(url, headers=headers), check,
                                  f"GET {url} answers as expected", timeout=timeout)


def feedback_for(record_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("data", {}).get("record_id") == record_id


def as_client() -> dict[str, str]:
    """Headers that make the objection service count a request against an address of its
    own (the test stack trusts X-Forwarded-For from 127.0.0.1), so that one test's
    requests never use up another's rate limit."""
    return {"X-Forwarded-For": f"10.{random.randrange(256)}.{random.randrange(256)}."
                               f"{random.randrange(1, 255)}"}


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def once_record_known(send: Callable[[], Awaitable[httpx.Response]],
                            timeout: float = 30) -> httpx.Response:
    """Send an objection or repair request until the objection service knows the record
    (its projection of accepted records lags ingest by a moment); the first other answer."""
    deadline = time.monotonic() + timeout
    while True:
        r = await send()
        unknown = r.status_code == 422 and (
            "record_not_found" in r.text or "no record with this id" in r.text)
        if not unknown:
            return r
        assert time.monotonic() < deadline, f"the record never became known: {r.text[:500]}"
        await asyncio.sleep(0.2)

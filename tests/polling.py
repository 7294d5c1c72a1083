"""The one way the tests wait for something to become true: ask again until it is, or fail
saying what was awaited (and, through `what` as a callable, what was last seen)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
What = str | Callable[[], object]


def _failure(what: What, timeout: float) -> str:
    said = what() if callable(what) else what
    return f"not reached in {timeout}s: {said}"


async def until(check: Callable[[], Awaitable[Any] | Any], what: What, timeout: float = 60,
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
        assert time.monotonic() < deadline, _failure(what, timeout)
        await asyncio.sleep(interval)


def until_sync(check: Callable[[], T], what: What, timeout: float = 60,
               interval: float = 0.2) -> T:
    """`until` for a test without an event loop (a subprocess, a blocking client)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, _failure(what, timeout)
        time.sleep(interval)
    return found

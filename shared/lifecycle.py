"""How a process ends when its graceful stop does not.

A stop closes Kafka clients, and a client's close can wait on its group coordinator for as
long as the broker does not answer, or for ever when it deadlocks with the code that is
stopping it (faust's consumer thread waiting on its app's loop, which waits on that thread:
seen after the Kafka data was replaced under stats-windows). A process that hangs while
stopping is neither serving nor gone, so no supervisor restarts it. Every effect is in the
database or the outbox before an offset moves, so ending the process outright at that point
loses nothing: it is the crash the services are built to survive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)

# The exit status of a stop that did not finish in time (EX_SOFTWARE): a supervisor restarts
# the process as after any other failure.
STOP_OVERRAN = 70


def end_if_still_running(after_seconds: float, what: str) -> None:
    """From now on, the process ends itself after `after_seconds` if it is still running
    (a daemon thread, so that a stop that finishes in time is not held up by it)."""

    def overran() -> None:
        log.error("%s: the stop did not finish within %gs; ending the process", what,
                  after_seconds)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(STOP_OVERRAN)

    timer = threading.Timer(after_seconds, overran)
    timer.daemon = True
    timer.start()


async def outcome_of(step: Awaitable[Any], within: float | None) -> BaseException | None:
    """Await one step of a stop for at most `within` seconds (None: as long as it takes);
    what it raised, or None.

    A `CancelledError` that is not a cancellation of the awaiting task is an outcome like any
    other: aiokafka's fetcher, closing, cancels its fetch tasks and then awaits them without
    catching what that raises, so a consumer's `stop()` raises `CancelledError` whenever a
    fetch was in flight (a broker down). Let through, it ended the task that stopped the
    consumer as if that task had been cancelled. A cancellation of the awaiting task itself
    (its own `cancelling()`) is passed on."""
    try:
        await asyncio.wait_for(step, within)
        return None
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return exc
    except Exception as exc:  # TimeoutError among them
        return exc

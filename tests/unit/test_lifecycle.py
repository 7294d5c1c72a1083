"""A process whose stop overruns its deadline ends itself; one that stops in time is not
held up by the deadline (real processes, no Kafka)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from shared.lifecycle import STOP_OVERRAN, outcome_of
from shared.settings import REPO_ROOT


def _run(body: str) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", "from shared.lifecycle import end_if_still_running\n" + body],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    return done.returncode, time.monotonic() - started, done.stdout + done.stderr


def test_a_stop_that_overruns_its_deadline_ends_the_process() -> None:
    code, took, output = _run("import logging, time\nlogging.basicConfig()\n"
                              "end_if_still_running(0.5, 'hung')\ntime.sleep(50)")
    assert code == STOP_OVERRAN
    assert took < 30
    assert "hung: the stop did not finish within 0.5s" in output


def test_a_stop_within_its_deadline_exits_as_it_would() -> None:
    code, took, output = _run("end_if_still_running(40, 'quick')\nprint('stopped')")
    assert (code, output.strip()) == (0, "stopped")
    assert took < 30


async def test_a_cancelled_error_from_inside_a_step_is_its_outcome() -> None:
    """aiokafka's fetcher awaits the fetch tasks it has just cancelled: the stop raises
    CancelledError though nobody cancelled the task that awaits it."""
    cancelled = asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0)
    cancelled.cancel()

    async def stop_with_a_fetch_in_flight() -> None:
        await cancelled

    outcome = await outcome_of(stop_with_a_fetch_in_flight(), 5)
    assert isinstance(outcome, asyncio.CancelledError)
    assert isinstance(await outcome_of(asyncio.sleep(5), 0.05), TimeoutError)
    assert await outcome_of(asyncio.sleep(0), 5) is None


async def test_a_cancellation_of_the_stopping_task_itself_is_passed_on() -> None:
    stopping = asyncio.create_task(outcome_of(asyncio.sleep(60), None))
    await asyncio.sleep(0.01)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping

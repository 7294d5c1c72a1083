"""A process whose stop overruns its deadline ends itself; one that stops in time is not
held up by the deadline (real processes, no Kafka)."""

from __future__ import annotations

import subprocess
import sys
import time

from shared.lifecycle import STOP_OVERRAN
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

"""The CPU figures of `bench queries`: what the publisher spent per request, and how much of
the run it waited for a core (bench/queries.py)."""

from __future__ import annotations

import os

from bench.queries import CpuReading, cpu_figures


def test_cpu_per_request_and_the_shares_of_the_run() -> None:
    before = CpuReading(at=100.0, cpu_s=10.0, runqueue_s=4.0, machine_busy_s=50.0,
                        machine_s=100.0)
    after = CpuReading(at=110.0, cpu_s=13.0, runqueue_s=9.0, machine_busy_s=68.0,
                       machine_s=120.0)
    assert cpu_figures(before, after, 5000) == {
        "publisher_cpu_ms_per_request": 0.6, "publisher_runqueue_wait_share": 0.5,
        "machine_busy_share": 0.9}


def test_no_reading_or_no_request_gives_no_figure() -> None:
    reading = CpuReading.of(os.getpid())
    assert reading is not None and reading.cpu_s > 0 and reading.machine_s > 0
    assert set(cpu_figures(None, reading, 10).values()) == {None}
    assert set(cpu_figures(reading, reading, 0).values()) == {None}
    assert CpuReading.of(None) is None

"""Kafka's JIT compiler apart from its CPU per record (bench/rss.py): the compiler threads of
a JVM read from its threads' /proc stat lines, and a thread the JVM starts during a run
counted whole."""

from __future__ import annotations

from bench.rss import RssSampler, compiler_threads
from shared.settings import Settings


def _stat(tid: int, name: str, utime: int, stime: int) -> str:
    # /proc/<pid>/task/<tid>/stat: pid (comm) state, then utime and stime as fields 14 and 15.
    rest = ["S", *(["0"] * 10), str(utime), str(stime), *(["0"] * 30)]
    return f"{tid} ({name}) {' '.join(rest)}\n"


def test_only_compiler_threads_count_in_seconds() -> None:
    lines = [_stat(11, "C2 CompilerThre", 300, 20), _stat(12, "C1 CompilerThre", 40, 10),
             _stat(13, "data-plane-kafk", 900, 100), _stat(14, "GC Thread#0", 50, 0),
             # A name with a parenthesis and spaces is read as a name.
             _stat(15, "odd (C2 Compil", 70, 0)]
    assert compiler_threads(lines, ticks=100) == {11: 3.2, 12: 0.5}


def test_a_run_counts_what_each_compiler_thread_spent_during_it() -> None:
    sampler = RssSampler(Settings(), dict, own=())
    sampler._kafka = 1  # a broker to read; the samples are given below
    sampler._note_jit({11: 10.0})
    # Thread 12 started after the first sample: all of its time is this run's. Thread 11
    # ended before the last sample: what it did until last seen counts.
    sampler._note_jit({11: 14.0, 12: 1.5})
    sampler._note_jit({12: 2.0})
    assert sampler.jit_cpu() == {"kafka": 6.0}


def test_no_broker_no_figure() -> None:
    sampler = RssSampler(Settings(), dict, own=())
    sampler._kafka = None
    assert sampler.jit_cpu() == {}

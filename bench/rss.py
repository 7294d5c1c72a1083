"""Peak memory and CPU time of each process under test, sampled from /proc while a benchmark
runs.

CPU time (user + system, /proc/<pid>/stat) is what a run cost each process whatever else the
shared machine was doing: wall-clock figures move with the other load, CPU seconds per record
much less. PostgreSQL's is the sum over the backends of this run's databases (the cluster is
shared with other runs).

Services and Kafka: resident set size (VmRSS; for a service started by the run, its own
high-water mark VmHWM as well, which no sampling interval can miss). PostgreSQL is a
postmaster and a process per connection sharing one buffer cache, so summing their RSS would
count the cache once per process: it is counted as the sum of proportional set sizes (Pss,
/proc/<pid>/smaps_rollup) of the postmaster, its auxiliary processes and the backends of this
run's databases (the cluster is shared with other runs, whose backends are left out).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from shared.settings import Settings

MIB = 1024 * 1024
# PostgreSQL's proportional set sizes are read every this many samples (and at the end):
# the kernel walks every page table of 30-odd backends for them, some 25 ms of CPU a time,
# a load the run under test would otherwise share. Its memory moves slowly (the buffer
# cache filling), so a peak is not missed by much.
PSS_EVERY = 5


def _status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        return None
    return None


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        pass
    return 0


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_cpu(after_name: str, ticks: int = _TICKS) -> float:
    """User plus system CPU seconds from a /proc stat line's fields after `(comm)`."""
    fields = after_name.split()
    return (int(fields[11]) + int(fields[12])) / ticks


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return _stat_cpu(f.read().rsplit(")", 1)[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
        return None


# The JVM's JIT compiler threads ("C2 CompilerThread0", "C1 CompilerThread1", ...; the kernel
# keeps the first 15 characters of a thread's name).
_COMPILER_THREAD = ("C1 CompilerThre", "C2 CompilerThre")


def compiler_threads(thread_stats: Iterable[str], ticks: int = _TICKS) -> dict[int, float]:
    """CPU seconds of each JIT compiler thread (by thread id) among a JVM's
    /proc/<pid>/task/*/stat lines.

    A broker compiles its hot code during its first minutes (C2 most): on a broker started
    shortly before a run that is a large share of its CPU, and no cost per record
    (docs/performance.md, "Kafka's share")."""
    out: dict[int, float] = {}
    for line in thread_stats:
        head, _, tail = line.rpartition(")")
        tid, _, name = head.partition(" (")
        if name.startswith(_COMPILER_THREAD):
            out[int(tid)] = _stat_cpu(tail, ticks)
    return out


def jvm_compiler_threads(pid: int) -> dict[int, float]:
    """`compiler_threads` of a running JVM (none if it is gone)."""
    lines = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                with open(f"/proc/{pid}/task/{task}/stat") as f:
                    lines.append(f.read())
    return compiler_threads(lines)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            "utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def _children(parent: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # The command name may hold spaces and parentheses: fields follow the last ')'.
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if ppid == parent:
            out.append(int(entry))
    return out


def kafka_pid(settings: Settings) -> int | None:
    """The broker's JVM, from the pid file deploy/kafka.sh writes."""
    try:
        pid = int((settings.home / "kafka" / "kafka.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if "kafka.Kafka" in _cmdline(pid) else None


def postmaster_pid(settings: Settings) -> int | None:
    """The PostgreSQL postmaster, from the data directory deploy/postgres.sh records."""
    try:
        info = dict(line.split("=", 1) for line in
                    (settings.home / "postgres.cluster").read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
        return int((Path(info["data_directory"]) / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, KeyError, ValueError, IndexError, PermissionError):
        return None


def postgres_backends(postmaster: int) -> list[tuple[int, str]]:
    """The postmaster's children with their process titles."""
    return [(child, _cmdline(child)) for child in _children(postmaster)]


def postgres_pss_kib(postmaster: int, backends: Sequence[tuple[int, str]],
                     db_prefix: str) -> int:
    total = _pss_kib(postmaster)
    for child, cmd in backends:
        # Client backends name their database in the process title ("postgres: 15/x: user
        # db 127.0.0.1(port) idle"); auxiliary processes name no client address.
        if "127.0.0.1(" not in cmd or db_prefix in cmd:
            total += _pss_kib(child)
    return total


def quarter_peaks(timeline: Sequence[tuple[float, dict[str, int]]]) -> dict[str, list[float]]:
    """The highest resident size (MiB) of each process in each quarter of a run's samples
    (taken at a steady interval, in time order; fewer than four say nothing). A load that
    grows the data as it runs (a city generated, a replay) shows a process whose memory
    follows the data as rising quarters, and one whose memory is bounded as quarters that
    level off."""
    n = len(timeline)
    if n < 4:
        return {}
    out: dict[str, list[float]] = {}
    for i, (_, sizes) in enumerate(timeline):
        quarter = i * 4 // n
        for name, kib in sizes.items():
            peaks = out.setdefault(name, [0.0] * 4)
            peaks[quarter] = max(peaks[quarter], round(kib * 1024 / MIB, 1))
    return out


class RssSampler:
    """Samples every `interval` seconds in the background; `peaks()` in MiB per name."""

    def __init__(self, settings: Settings, services: Callable[[], dict[str, int | None]],
                 interval: float = 1.0, own: Iterable[str] = ()) -> None:
        self.settings = settings
        self.services = services
        self.interval = interval
        self.own = set(own)  # services this run started: their VmHWM is this run's peak
        self.peak_kib: dict[str, int] = {}
        # (monotonic seconds, VmRSS KiB of each process): `by_quarter`.
        self._timeline: list[tuple[float, dict[str, int]]] = []
        self._current: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._kafka = kafka_pid(settings)
        self._postmaster = postmaster_pid(settings)
        # CPU seconds per (name, pid): first and last seen.
        self._cpu: dict[tuple[str, int], tuple[float, float]] = {}
        # The broker's JIT compiler threads: CPU seconds per thread id, first and last seen.
        self._jit: dict[int, tuple[float, float]] = {}
        self._jit_started = False

    def _note_cpu(self, name: str, pid: int) -> None:
        now = cpu_seconds(pid)
        if now is not None:
            first, _ = self._cpu.get((name, pid), (now, now))
            self._cpu[(name, pid)] = (first, now)

    def _note_jit(self, threads: dict[int, float]) -> None:
        # The JVM starts and ends compiler threads as work comes: a thread first seen after
        # the first sample was started since then, so all of its time counts.
        for tid, now in threads.items():
            first, _ = self._jit.get(tid, (0.0 if self._jit_started else now, now))
            self._jit[tid] = (first, now)
        self._jit_started = True

    def _note(self, name: str, kib: int | None, current: bool = True) -> None:
        if kib:
            self.peak_kib[name] = max(self.peak_kib.get(name, 0), kib)
            if current:
                self._current[name] = kib

    def sample(self, last: bool = False) -> None:
        self._current = {}
        for name, pid in self.services().items():
            if pid is None:
                continue
            self._note(name, _status_kib(pid, "VmRSS"))
            if name in self.own:
                self._note(name, _status_kib(pid, "VmHWM"), current=False)
            self._note_cpu(name, pid)
        if self._kafka is not None:
            self._note("kafka", _status_kib(self._kafka, "VmRSS"))
            self._note_cpu("kafka", self._kafka)
            self._note_jit(jvm_compiler_threads(self._kafka))
        if self._postmaster is not None:
            backends = postgres_backends(self._postmaster)
            if last or len(self._timeline) % PSS_EVERY == 0:  # the first sample, and on
                self._note("postgres", postgres_pss_kib(self._postmaster, backends,
                                                        self.settings.db_prefix))
            for child, cmd in backends:
                if self.settings.db_prefix in cmd:
                    # The bench's own checks connect as the admin role (the process title
                    # names the user): their backends are the bench's work, not the stack's.
                    own = f" {self.settings.pg_admin_user} " in cmd
                    self._note_cpu("postgres_bench" if own else "postgres", child)
        self._note("bench", _status_kib(os.getpid(), "VmRSS"))
        self._note_cpu("bench", os.getpid())
        self._timeline.append((time.monotonic(), self._current))

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample(last=True)  # last word: the services are still up
        return self.peaks()

    def peaks(self) -> dict[str, float]:
        return {name: round(kib * 1024 / MIB, 1) for name, kib in self.peak_kib.items()}

    def by_quarter(self) -> dict[str, list[float]]:
        """`quarter_peaks` of this run's samples."""
        return quarter_peaks(self._timeline)

    def cpu(self) -> dict[str, float]:
        """CPU seconds each process (PostgreSQL: this run's backends) spent while sampled.
        Kafka's JIT compiler, a part of Kafka's figure, is apart: `jit_cpu`."""
        out: dict[str, float] = {}
        for (name, _), (first, last) in self._cpu.items():
            out[name] = out.get(name, 0.0) + last - first
        return {name: round(seconds, 2) for name, seconds in out.items()}

    def jit_cpu(self) -> dict[str, float]:
        """Of `cpu()`'s Kafka figure, the seconds its JVM's JIT compiler threads spent."""
        if self._kafka is None:
            return {}
        return {"kafka": round(sum(last - first for first, last in self._jit.values()), 2)}

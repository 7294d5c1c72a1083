"""Whether a process the stack started still lives: the one check every pid file goes
through (services, the supervisor, Kafka nodes)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def alive(pid: int) -> bool:
    """A process that exists, is not a zombie (a killed child not yet reaped: reaped here
    when it is ours), and is not another user's."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def running(pid_file: Path, ours: Callable[[list[bytes]], bool]) -> int | None:
    """The pid in `pid_file` while that process lives and its command line (argv, as bytes)
    is one `ours` recognizes: a stale pid file is never taken for another program that got
    the number since."""
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if ours(cmdline) else None


def started_at(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (/proc/<pid>/stat, field 22):
    with the pid, it names one process, never a later one that got the same number."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def this_process() -> dict[str, int | None]:
    return {"pid": os.getpid(), "started_at": started_at(os.getpid())}


def still_running(process: dict[str, int | None]) -> bool:
    """Whether the process `this_process` described then is still there."""
    pid = process.get("pid")
    return isinstance(pid, int) and alive(pid) and started_at(pid) == process.get("started_at")


def has_environment(pid: int, name: str, value: str) -> bool:
    """Whether the process was started with `name=value` in its environment."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{name}={value}".encode() in environ


def end(pids: Sequence[int], sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Send `sig` to the processes, give them `timeout` seconds to go, then SIGKILL those
    left and wait until they are gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    while any(alive(p) for p in pids):
        time.sleep(0.05)

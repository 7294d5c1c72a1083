"""Whether a process the stack started still lives: the one check every pid file goes
through (services, the supervisor, Kafka nodes)."""

from __future__ import annotations

import os


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

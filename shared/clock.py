"""The one clock of the system. Dates are Zhuhai's: a decision "today" means today in China
Standard Time.

Time can be moved forward for tests only: a process configured with a test clock file
(setting `test_clock_file`) adds the seconds written in that file to the real time, read
again whenever the file changes, so that an integration test can take the running services
past a notice period, a deadline or a disclosure period. A production start refuses a test
clock (`shared/service.py`).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ZHUHAI = ZoneInfo("Asia/Shanghai")

_test_file: Path | None = None
_seen: tuple[float, timedelta] = (-1.0, timedelta(0))


def configure(test_file: Path | None) -> None:
    """Use the test clock that reads `test_file` (None: the real clock)."""
    global _test_file, _seen
    _test_file, _seen = test_file, (-1.0, timedelta(0))


def is_test_clock() -> bool:
    return _test_file is not None


def _offset() -> timedelta:
    global _seen
    if _test_file is None:
        return timedelta(0)
    try:
        changed = _test_file.stat().st_mtime
    except FileNotFoundError:
        return timedelta(0)
    if changed != _seen[0]:
        text = _test_file.read_text().strip()
        _seen = (changed, timedelta(seconds=float(text or 0)))
    return _seen[1]


def now() -> datetime:
    return datetime.now(UTC) + _offset()


def today() -> date:
    return now().astimezone(ZHUHAI).date()


def move_test_clock(path: Path, by: timedelta) -> None:
    """Move the test clock that reads `path` forward (tests only): every process that reads
    the file follows at its next reading."""
    try:
        before = float(path.read_text().strip() or 0)
    except FileNotFoundError:
        before = 0.0
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(before + by.total_seconds()))
    os.replace(tmp, path)

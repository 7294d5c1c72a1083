"""The one clock of the system. Dates are Zhuhai's: a decision "today" means today in China
Standard Time.

Also the project's one working-day calendar (工作日), for every deadline counted in working
days (notice feedback, 双公示 delays, objections and complaints): the State Council's yearly
holiday schedule (国务院办公厅关于部分节假日安排的通知), its make-up working days (调休, often a
Saturday) counted as working days and its holidays not, from the chinese-calendar package.
The schedule is published each year for the next (usually in November): for a year the
package has no data for, and that `calendar_supplement.yaml` beside this file does not give
either, a working day is Monday to Friday, and a date computed on it is `provisional`
(counted in `xinyong_calendar_provisional_total`; `xinyong_calendar_covered_until` says how
far the data goes, and an alert fires a month before it ends).

Time can be moved forward for tests only: a process configured with a test clock file
(setting `test_clock_file`) adds the seconds written in that file to the real time, read
again whenever the file changes, so that an integration test can take the running services
past a notice period, a deadline or a disclosure period. A production start refuses a test
clock (`shared/service.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from chinese_calendar import constants as _schedule

from shared import metrics

ZHUHAI = ZoneInfo("Asia/Shanghai")
SUPPLEMENT = Path(__file__).with_name("calendar_supplement.yaml")

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


# --- working days ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """Holidays and make-up working days by year, and which years are known."""

    holidays: frozenset[date]
    workdays: frozenset[date]
    years: frozenset[int]

    @property
    def covered_until(self) -> date:
        """The last day the schedule knows (31 December of its last year)."""
        return date(max(self.years), 12, 31)


@cache
def schedule(supplement: Path = SUPPLEMENT) -> Schedule:
    """The package's schedule plus the project's supplement: the year a new schedule is
    published, an operator may add it there (`years: {2027: {holidays: [...], workdays:
    [...]}}`) without waiting for a release of the package."""
    holidays = set(_schedule.holidays)
    workdays = set(_schedule.workdays)
    years = {d.year for d in holidays}
    extra = yaml.safe_load(supplement.read_text(encoding="utf-8")) if supplement.exists() else {}
    for year, days in ((extra or {}).get("years") or {}).items():
        years.add(int(year))
        holidays.update(date.fromisoformat(str(d)) for d in days.get("holidays") or ())
        workdays.update(date.fromisoformat(str(d)) for d in days.get("workdays") or ())
    last = max(years)
    metrics.CALENDAR_COVERED_UNTIL.set(
        datetime.combine(date(last, 12, 31), datetime.min.time(), ZHUHAI).timestamp())
    return Schedule(frozenset(holidays), frozenset(workdays), frozenset(years))


def is_covered(day: date) -> bool:
    """Whether the published schedule covers the day's year."""
    return day.year in schedule().years


def is_working_day(day: date) -> bool:
    """A make-up working day (调休, even a Saturday) is one; a public holiday is not; past the
    published schedule, Monday to Friday."""
    s = schedule()
    if day.year not in s.years:
        return day.weekday() < 5
    return day in s.workdays or (day.weekday() < 5 and day not in s.holidays)


@dataclass(frozen=True)
class Deadline:
    """A date counted in working days; `provisional` when a day it counted on lies past the
    published schedule (Monday to Friday assumed there: a holiday announced later may move
    it)."""

    day: date
    provisional: bool


def add_working_days(start: date, working_days: int) -> Deadline:
    """The day `working_days` working days after `start` (`start` itself not counted: a
    notice issued on a Friday with 1 working day is due the next working day)."""
    deadline = _working_days_after(start, working_days)
    if deadline.provisional:
        metrics.CALENDAR_PROVISIONAL.inc()
    return deadline


@lru_cache(maxsize=4096)
def _working_days_after(start: date, working_days: int) -> Deadline:
    """`add_working_days` without its count of provisional dates. Kept per (day, count): the
    schedule is read once a process (`schedule`), so the answer for a day never changes, and
    the publisher dates every notice it writes (most of a day's with the same few counts)."""
    day, counted, provisional = start, 0, False
    while counted < working_days:
        day += timedelta(days=1)
        provisional |= not is_covered(day)
        if is_working_day(day):
            counted += 1
    return Deadline(day, provisional)


def next_working_day(day: date) -> Deadline:
    """The day itself if it is a working day, else the next one (a deadline that falls on a
    holiday moves: CONTRACT.md, "Objections and repair")."""
    provisional = not is_covered(day)
    while not is_working_day(day):
        day += timedelta(days=1)
        provisional |= not is_covered(day)
    if provisional:
        metrics.CALENDAR_PROVISIONAL.inc()
    return Deadline(day, provisional)


def working_days_between(start: date, end: date) -> int:
    """Working days after `start` up to and including `end` (0 when `end` <= `start`): the
    delay of something decided on `start` and received on `end`."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count

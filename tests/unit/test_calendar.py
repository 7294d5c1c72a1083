"""The one working-day calendar (shared/clock.py): the State Council's schedule, 调休
Saturdays, and Monday to Friday, provisional, past the published data."""

from __future__ import annotations

import warnings
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
import yaml

from shared import clock, metrics

# When next year's schedule should be known: the State Council publishes it in the autumn
# (2025's on 2024-11-12, 2026's on 2025-11-04). From this day on a missing next year fails
# this test (issue 7, item 6), unless the supplement says, with a date, that the year was
# looked for and is not available yet (`missing:` in shared/calendar_supplement.yaml): a
# deferral someone signs for and that runs out, not a silent pass. Meanwhile deadlines in
# that year are provisional, the gauge `xinyong_calendar_covered_until` says where the data
# ends and the alert XinyongCalendarDataEnding fires (deploy/prometheus/alerts.yml).
NEXT_YEAR_DUE = (12, 1)


def _deferred_until(year: int) -> date | None:
    raw = yaml.safe_load(clock.SUPPLEMENT.read_text(encoding="utf-8")) or {}
    entry = (raw.get("missing") or {}).get(year)
    return date.fromisoformat(str(entry["until"])) if entry else None


def _assert_known_or_deferred(year: int, today: date) -> None:
    if clock.is_covered(date(year, 1, 1)):
        return
    deferred = _deferred_until(year)
    assert deferred is not None and today <= deferred, (
        f"no holiday schedule for {year}: add it to shared/calendar_supplement.yaml "
        "(国务院办公厅关于部分节假日安排的通知) or upgrade chinese-calendar"
        + (f"; its deferral ran out on {deferred}" if deferred else ""))
    warnings.warn(f"no holiday schedule for {year} (deferred until {deferred}): "
                  "its deadlines are provisional", stacklevel=1)


def test_next_years_schedule_is_known_in_time() -> None:
    # A deferral signed in December may run into January: this year is then the one missing.
    today = clock.today()
    _assert_known_or_deferred(today.year, today)
    if (today.month, today.day) >= NEXT_YEAR_DUE:
        _assert_known_or_deferred(today.year + 1, today)


def test_a_deferral_names_when_it_was_checked_and_runs_out_within_two_months() -> None:
    raw = yaml.safe_load(clock.SUPPLEMENT.read_text(encoding="utf-8")) or {}
    for year, entry in (raw.get("missing") or {}).items():
        checked = date.fromisoformat(str(entry["checked_on"]))
        until = date.fromisoformat(str(entry["until"]))
        assert entry.get("note"), year
        assert checked <= until <= checked + timedelta(days=62), year


def test_past_the_data_a_deadline_is_provisional_and_the_gauge_says_where_it_ends() -> None:
    end = clock.schedule().covered_until
    assert metrics.CALENDAR_COVERED_UNTIL._value.get() == pytest.approx(  # type: ignore[attr-defined]
        datetime.combine(end, time(), clock.ZHUHAI).timestamp())
    inside = clock.add_working_days(end - timedelta(days=30), 5)
    assert not inside.provisional
    beyond = clock.add_working_days(end, 5)
    assert beyond.provisional and beyond.day.weekday() < 5


def test_public_holidays_and_make_up_saturdays() -> None:
    assert not clock.is_working_day(date(2026, 10, 1))  # National Day, a Thursday
    assert not clock.is_working_day(date(2026, 2, 17))  # Spring Festival, a Tuesday
    assert clock.is_working_day(date(2026, 2, 14))  # 调休: a Saturday worked
    assert clock.is_working_day(date(2026, 10, 10))  # 调休: a Saturday worked
    assert not clock.is_working_day(date(2026, 11, 28))  # an ordinary Saturday
    assert clock.is_working_day(date(2026, 11, 27))  # an ordinary Friday


def test_working_days_skip_weekends_and_holidays() -> None:
    # Thursday 2026-09-24 + 1: Friday 25 is the Mid-Autumn holiday, then the weekend.
    assert clock.add_working_days(date(2026, 9, 24), 1) == clock.Deadline(date(2026, 9, 28),
                                                                          False)
    # Wednesday 2026-09-30 + 1: 1-7 October are the National Day holiday.
    assert clock.add_working_days(date(2026, 9, 30), 1).day == date(2026, 10, 8)
    # ... and Saturday 10 October is a make-up working day (调休).
    assert clock.add_working_days(date(2026, 9, 30), 3).day == date(2026, 10, 10)
    # Across Spring Festival 2026 (15-23 February off, Saturday 14 and 28 worked).
    assert clock.add_working_days(date(2026, 2, 13), 1).day == date(2026, 2, 14)
    assert clock.add_working_days(date(2026, 2, 14), 1).day == date(2026, 2, 24)
    assert clock.add_working_days(date(2026, 2, 13), 0).day == date(2026, 2, 13)


def test_next_working_day_rolls_a_holiday_forward() -> None:
    assert clock.next_working_day(date(2026, 10, 3)).day == date(2026, 10, 8)
    assert clock.next_working_day(date(2026, 10, 10)).day == date(2026, 10, 10)
    assert clock.next_working_day(date(2026, 11, 29)).day == date(2026, 11, 30)


def test_working_days_between() -> None:
    assert clock.working_days_between(date(2026, 9, 30), date(2026, 10, 8)) == 1
    assert clock.working_days_between(date(2026, 9, 30), date(2026, 10, 10)) == 3
    assert clock.working_days_between(date(2026, 10, 9), date(2026, 10, 9)) == 0
    assert clock.working_days_between(date(2026, 10, 9), date(2026, 10, 1)) == 0


def test_past_the_data_monday_to_friday_provisional() -> None:
    last = clock.schedule().covered_until
    beyond = last + timedelta(days=400)
    assert not clock.is_covered(beyond)
    friday = beyond + timedelta(days=(4 - beyond.weekday()) % 7)
    due = clock.add_working_days(friday, 1)
    assert due == clock.Deadline(friday + timedelta(days=3), True)  # the Monday, provisional
    assert clock.next_working_day(friday + timedelta(days=1)).provisional
    # A deadline that stays within the data is not provisional.
    assert not clock.add_working_days(date(2026, 3, 2), 5).provisional


def test_the_supplement_adds_a_year(tmp_path: Path) -> None:
    year = clock.schedule().covered_until.year + 1
    supplement = tmp_path / "extra.yaml"
    supplement.write_text(f"years:\n  {year}:\n    holidays: ['{year}-01-01']\n"
                          f"    workdays: ['{year}-01-02']\n", encoding="utf-8")
    extended = clock.schedule(supplement)
    assert year in extended.years
    assert date(year, 1, 1) in extended.holidays and date(year, 1, 2) in extended.workdays
    with pytest.raises(FileNotFoundError):
        clock.SUPPLEMENT.with_name("none.yaml").read_text()

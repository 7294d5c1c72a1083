"""The one working-day calendar (shared/clock.py): the State Council's schedule, 调休
Saturdays, and Monday to Friday, provisional, past the published data."""

from __future__ import annotations

import warnings
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from shared import clock, metrics

# When next year's schedule should be known: the State Council publishes it in the autumn
# (2025's on 2024-11-12, 2026's in November 2025). A missing year is an operator's matter, not
# a broken build: deadlines past the data are Monday to Friday and marked provisional, the
# gauge `xinyong_calendar_covered_until` says how far the data goes and the alert
# XinyongCalendarDataEnding fires a month before it ends (deploy/prometheus/alerts.yml, with
# its promtool test); here it is a warning in the test report.
NEXT_YEAR_DUE = (12, 1)


def test_this_year_is_covered_and_a_missing_next_year_is_reported() -> None:
    today = clock.today()
    assert clock.is_covered(today), f"no working-day data for {today.year}"
    if (today.month, today.day) >= NEXT_YEAR_DUE and not clock.is_covered(
            date(today.year + 1, 1, 1)):
        warnings.warn(f"no holiday schedule for {today.year + 1}: add it to "
                      "shared/calendar_supplement.yaml (国务院办公厅关于部分节假日安排的通知) or "
                      "upgrade chinese-calendar; until then its deadlines are provisional",
                      stacklevel=1)


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

"""Agencies' notices: feedback only moves forward, deadlines per measure on the working-day
calendar, cursors of one feed only (services/publisher/domain.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.publisher import domain
from shared.catalogue import load_catalogue

CATALOGUE = load_catalogue()


@pytest.mark.parametrize(("current", "answer", "outcome"), [
    (None, "received", "applied"),
    (None, "applied", "applied"),
    (None, "not_applicable", "applied"),
    ("received", "applied", "applied"),
    ("received", "not_applicable", "applied"),
    ("received", "received", "repeated"),
    ("applied", "applied", "repeated"),
    ("applied", "received", "refused"),          # backward
    ("applied", "not_applicable", "refused"),    # another final answer
    ("not_applicable", "applied", "refused"),
    ("not_applicable", "received", "refused"),
])
def test_feedback_only_moves_forward(current: str | None, answer: str, outcome: str) -> None:
    assert domain.feedback_outcome(current, answer) == outcome


def test_the_deadline_is_the_measures_working_days_from_the_issue_day_in_zhuhai() -> None:
    assert CATALOGUE.measures["land.restrict"].feedback_within == 10
    # Issued Friday 2026-09-18 at 17:00 UTC: Saturday 19 in Zhuhai. Ten working days from
    # then: Sunday 9/20, a make-up working day (1), 9/21-24 (5), 9/25 Mid-Autumn off,
    # 9/28-30 (8), 10/1-7 National Day off, 10/8 and 10/9 (10).
    issued = datetime(2026, 9, 18, 17, 0, tzinfo=UTC)
    due = domain.feedback_due(CATALOGUE, "land.restrict", issued, 99)
    assert (due.day, due.provisional) == (date(2026, 10, 9), False)
    # hiring.restrict has 15: Saturday 10/10 worked (11), 10/12-15 (15).
    assert domain.feedback_due(CATALOGUE, "hiring.restrict", issued, 99).day == date(2026, 10, 15)
    # A measure the catalogue no longer has takes the fallback.
    assert domain.feedback_due(CATALOGUE, "gone", issued, 1).day == date(2026, 9, 20)


def test_overdue_is_after_the_due_day_without_a_closing_answer() -> None:
    due = date(2026, 10, 10)
    assert not domain.is_overdue(None, due, date(2026, 10, 10))
    assert domain.is_overdue(None, due, date(2026, 10, 11))
    assert domain.is_overdue("received", due, date(2026, 10, 12))
    assert not domain.is_overdue("applied", due, date(2026, 10, 12))
    assert not domain.is_overdue("not_applicable", due, date(2026, 10, 12))
    assert not domain.is_overdue(None, None, date(2026, 10, 12))  # not dated yet


def test_an_agency_cursor_is_not_a_list_cursor() -> None:
    cursor = domain.encode_notices_cursor(42)
    assert domain.decode_notices_cursor(cursor) == 42
    with pytest.raises(ValueError):
        domain.decode_cursor(cursor)
    with pytest.raises(ValueError):
        domain.decode_notices_cursor(domain.encode_cursor(42))

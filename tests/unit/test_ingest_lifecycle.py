"""services/ingest/domain.py, the lifecycle rules a submission meets: the end of the act,
a market regulation penalty's class, a listing's extension, and a person's negative
information already past its erasure date (issue 7, "Bad input")."""

from __future__ import annotations

from datetime import date

import pytest

from services.ingest.domain import check_submission
from tests.unit.factories import ENTERPRISE, PERSON, submission

TODAY = date(2026, 11, 28)


def codes(errors) -> list[tuple[str, str]]:
    return [(e.field, e.code) for e in errors]


@pytest.mark.parametrize(("ended", "expected"), [
    (None, []),
    ("2026-06-01", []),
    ("2026-11-28", []),
    ("2026-05-31", [("act_ended_on", "before_decided_on")]),
    ("2026-11-29", [("act_ended_on", "future_date")]),
])
def test_the_end_of_the_act_is_named_when_wrong(catalogue, ended, expected):
    sub = submission("hrss.wage_arrears", subject=PERSON, act_ended_on=ended)
    assert codes(check_submission(catalogue, "hrss", sub, TODAY)) == expected


def test_a_later_revision_may_set_the_end_of_the_act(catalogue):
    sub = submission("hrss.wage_arrears", subject=PERSON, revision=2, act_ended_on="2026-10-01")
    assert check_submission(catalogue, "hrss", sub, TODAY) == []
    assert sub.act_ended_on == date(2026, 10, 1)


@pytest.mark.parametrize(("attributes", "expected"), [
    ({}, [("attributes.penalty_class", "required")]),
    ({"penalty_class": "warning"}, [("attributes.penalty_class", "unknown_class")]),
    ({"penalty_class": "small_fine", "penalty_field": "food"},
     [("attributes.penalty_field", "unknown_class")]),
    ({"penalty_class": "small_fine", "penalty_field": "fire_safety"}, []),
])
def test_a_market_regulation_penalty_carries_a_known_class(catalogue, attributes, expected):
    sub = submission("amr.admin_penalty", subject=ENTERPRISE, attributes=attributes)
    assert codes(check_submission(catalogue, "amr", sub, TODAY)) == expected


@pytest.mark.parametrize(("item", "department", "years", "expected"), [
    ("court.dishonest_debtor", "court", 2, []),
    ("court.dishonest_debtor", "court", 5, [("attributes.extension_years", "out_of_range")]),
    ("hrss.wage_arrears", "hrss", 1, [("attributes.extension_years", "not_extendable")]),
])
def test_an_extension_is_checked_against_the_catalogue(catalogue, item, department, years,
                                                       expected):
    sub = submission(item, subject=ENTERPRISE, attributes={"extension_years": years})
    assert codes(check_submission(catalogue, department, sub, TODAY)) == expected


def test_a_persons_record_already_past_its_erasure_date_is_refused(catalogue):
    """征信业管理条例 art. 16: erased 5 years after the act ended, so never taken in after."""
    old = submission("hrss.wage_arrears", subject=PERSON, decided_on="2021-11-28")
    assert codes(check_submission(catalogue, "hrss", old, TODAY)) == [
        ("decided_on", "retention_expired")]
    ended = submission("hrss.wage_arrears", subject=PERSON, decided_on="2021-11-01",
                       act_ended_on="2021-11-28")
    assert codes(check_submission(catalogue, "hrss", ended, TODAY)) == [
        ("act_ended_on", "retention_expired")]
    # The day before its erasure it is still taken in; an organization's is always kept.
    recent = submission("hrss.wage_arrears", subject=PERSON, decided_on="2021-11-29")
    assert check_submission(catalogue, "hrss", recent, TODAY) == []
    firm = submission("hrss.wage_arrears", subject=ENTERPRISE, decided_on="2015-01-05")
    assert check_submission(catalogue, "hrss", firm, TODAY) == []

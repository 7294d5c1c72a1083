"""shared/disclosure.py: the one implementation of the disclosure and retention rules, per
rule version, severity, regime and boundary date (DOMAIN.md, "Retention, disclosure,
repair"; docs/decisions.md, "Disclosure rules")."""

from __future__ import annotations

from datetime import date

import pytest

from shared.contract import ArchivedRecord
from shared.disclosure import (
    Window,
    act_ended_problems,
    add_years,
    attribute_problems,
    is_displayed,
    purge_on,
    window,
)

# --- administrative penalties: 527, then Order 36 ---------------------------------------


@pytest.mark.parametrize(("decided_on", "rule", "severity_item", "min_to", "max_to"), [
    # 发改办财金〔2019〕527号 (Order 58's periods are not at hand: 527's kept to 2026-03-31).
    (date(2025, 5, 1), "ndrc-2019-527", "hrss.wage_arrears", date(2025, 11, 1),
     date(2028, 5, 1)),
    (date(2026, 3, 31), "ndrc-2019-527", "hrss.wage_arrears", date(2026, 9, 30),
     date(2029, 3, 31)),
    # NDRC Order 36 from 2026-04-01: serious at least 1 year, at most 3.
    (date(2026, 4, 1), "ndrc-order-36", "hrss.wage_arrears", date(2027, 4, 1),
     date(2029, 4, 1)),
    # General: 3 months to 1 year under both.
    (date(2025, 5, 1), "ndrc-2019-527", "civil.activity_abnormal", date(2025, 8, 1),
     date(2026, 5, 1)),
    (date(2026, 5, 1), "ndrc-order-36", "civil.activity_abnormal", date(2026, 8, 1),
     date(2027, 5, 1)),
    # Before 527 took effect: the earliest rule there is.
    (date(2018, 1, 31), "ndrc-2019-527", "civil.activity_abnormal", date(2018, 4, 30),
     date(2019, 1, 31)),
])
def test_ndrc_rule_version_in_force_on_the_decision_date(catalogue, decided_on, rule,
                                                         severity_item, min_to, max_to):
    assert window(catalogue, severity_item, decided_on) == Window(rule, min_to, max_to)


# --- market regulation (samr-order-45) ----------------------------------------------------


@pytest.mark.parametrize(("attributes", "rule", "public_until"), [
    ({"penalty_class": "criticism"}, "samr-order-45/criticism", date(2026, 9, 1)),
    ({"penalty_class": "small_fine"}, "samr-order-45/small_fine", date(2026, 9, 1)),
    ({"penalty_class": "other"}, "samr-order-45/other", date(2029, 6, 1)),
    # Special equipment, work safety and fire safety: at least a year, whatever the class.
    ({"penalty_class": "small_fine", "penalty_field": "fire_safety"},
     "samr-order-45/small_fine/fire_safety", date(2027, 6, 1)),
    ({"penalty_class": "criticism", "penalty_field": "special_equipment"},
     "samr-order-45/criticism/special_equipment", date(2027, 6, 1)),
    ({"penalty_class": "other", "penalty_field": "work_safety"},
     "samr-order-45/other/work_safety", date(2029, 6, 1)),
])
def test_market_regulation_shows_by_the_penalty_class(catalogue, attributes, rule,
                                                      public_until):
    w = window(catalogue, "amr.admin_penalty", date(2026, 6, 1), attributes)
    assert (w.rule, w.public_until) == (rule, public_until)
    # Repair follows Order 36 (general: 3 months), never after the display ends.
    assert w.repair_from == min(date(2026, 9, 1), public_until)


def test_a_market_regulation_record_from_before_the_class_keeps_the_ndrc_rule(catalogue):
    assert window(catalogue, "amr.admin_penalty", date(2026, 6, 1)).rule == "ndrc-order-36"


@pytest.mark.parametrize(("attributes", "expected"), [
    ({}, [("attributes.penalty_class", "required")]),
    ({"penalty_class": "fine"}, [("attributes.penalty_class", "unknown_class")]),
    ({"penalty_class": 3}, [("attributes.penalty_class", "unknown_class")]),
    ({"penalty_class": "other", "penalty_field": "food"},
     [("attributes.penalty_field", "unknown_class")]),
    ({"penalty_class": "other", "penalty_field": "fire_safety"}, []),
    ({"penalty_class": "small_fine"}, []),
])
def test_the_class_is_checked_against_the_catalogue(catalogue, attributes, expected):
    problems = attribute_problems(catalogue, "amr.admin_penalty", attributes)
    assert [(f, c) for f, c, _ in problems] == expected


# --- items with a regime of their own -----------------------------------------------------


@pytest.mark.parametrize(("extension", "public_until"), [
    (None, date(2028, 6, 1)), (1, date(2029, 6, 1)), (3, date(2031, 6, 1))])
def test_a_court_record_shows_while_listed(catalogue, extension, public_until):
    """法释〔2017〕7号: two years from the decision, extended by 1-3; the NDRC serious
    maximum (3 years) never cuts it short, and repair is not its way out."""
    attributes = {"extension_years": extension} if extension else {}
    assert window(catalogue, "court.dishonest_debtor", date(2026, 6, 1), attributes) == Window(
        "fashi-2017-7", None, public_until)


def test_a_firm_on_the_abnormal_operations_list_shows_until_removed_or_three_years(catalogue):
    """Not the NDRC's general 12 months: the department's removal (its withdrawal) ends it,
    and after 3 years the firm is market regulation's to list as seriously dishonest."""
    assert window(catalogue, "amr.abnormal_operation", date(2026, 6, 1)) == Window(
        "samr-abnormal-operation", None, date(2029, 6, 1))
    assert catalogue.items["amr.abnormal_operation"].own_removal  # not repaired (Order 36)


def test_a_major_tax_violation_shows_three_years(catalogue):
    """国家税务总局令第54号: three years; its own early removal, not repair."""
    assert window(catalogue, "tax.major_violation", date(2026, 6, 1)) == Window(
        "sta-order-54", None, date(2029, 6, 1))


@pytest.mark.parametrize(("item", "value", "expected"), [
    ("court.dishonest_debtor", 1, []),
    ("court.dishonest_debtor", 3, []),
    ("court.dishonest_debtor", 0, [("attributes.extension_years", "out_of_range")]),
    ("court.dishonest_debtor", 4, [("attributes.extension_years", "out_of_range")]),
    ("court.dishonest_debtor", "2", [("attributes.extension_years", "out_of_range")]),
    ("court.dishonest_debtor", True, [("attributes.extension_years", "out_of_range")]),
    ("hrss.wage_arrears", 1, [("attributes.extension_years", "not_extendable")]),
    ("tax.major_violation", 2, [("attributes.extension_years", "not_extendable")]),
])
def test_an_extension_is_1_to_3_years_on_an_item_that_has_one(catalogue, item, value,
                                                              expected):
    problems = attribute_problems(catalogue, item, {"extension_years": value})
    assert [(f, c) for f, c, _ in problems] == expected


def test_positive_records_show_for_the_catalogues_period_with_its_reason(catalogue):
    assert window(catalogue, "tax.a_grade_taxpayer", date(2026, 6, 1)) == Window(
        "positive-disclosure", None, date(2029, 6, 1))
    assert "36" in catalogue.positive_disclosure_basis


def test_internal_items_are_never_public(catalogue):
    assert window(catalogue, "staffing.report_overdue", date(2026, 6, 1)) == Window(
        None, None, None)


# --- boundaries ---------------------------------------------------------------------------


def record(**overrides: object) -> ArchivedRecord:
    data: dict[str, object] = {
        "department": "hrss", "record_id": "R-1", "revision": 1,
        "catalogue_item": "hrss.wage_arrears", "decided_on": date(2026, 6, 1),
        "status": "active", "public_until": date(2029, 6, 1)}
    data.update(overrides)
    return ArchivedRecord.model_validate(data)


def test_a_record_shows_through_its_last_day_and_not_after():
    assert is_displayed(record(), date(2029, 6, 1))
    assert not is_displayed(record(), date(2029, 6, 2))
    assert not is_displayed(record(status="withdrawn"), date(2027, 1, 1))
    assert not is_displayed(record(public_until=None), date(2027, 1, 1))


# --- retention ----------------------------------------------------------------------------


@pytest.mark.parametrize(("subject_type", "item", "ended", "expected"), [
    # 征信业管理条例 art. 16: a person's negative information, 5 years after the act ended.
    ("individual", "hrss.wage_arrears", date(2026, 6, 1), date(2031, 6, 1)),
    ("individual", "court.dishonest_debtor", date(2024, 2, 29), date(2029, 2, 28)),
    # Organizations' records and positive records are kept.
    ("enterprise", "court.dishonest_debtor", date(2026, 6, 1), None),
    ("enterprise", "tax.a_grade_taxpayer", date(2026, 6, 1), None),
    ("individual", "no.such_item", date(2026, 6, 1), None),
])
def test_purge_dates(catalogue, subject_type, item, ended, expected):
    assert purge_on(catalogue, subject_type, item, ended) == expected


@pytest.mark.parametrize(("decided", "ended", "today", "codes"), [
    (date(2026, 6, 1), None, date(2026, 11, 28), []),
    (date(2026, 6, 1), date(2026, 6, 1), date(2026, 11, 28), []),
    (date(2026, 6, 1), date(2026, 11, 28), date(2026, 11, 28), []),
    (date(2026, 6, 1), date(2026, 5, 31), date(2026, 11, 28), ["before_decided_on"]),
    (date(2026, 6, 1), date(2026, 11, 29), date(2026, 11, 28), ["future_date"]),
])
def test_the_end_of_the_act_is_between_the_decision_and_today(decided, ended, today, codes):
    assert [c for _, c, _ in act_ended_problems(decided, ended, today)] == codes


def test_add_years_clamps_29_february():
    assert add_years(date(2024, 2, 29), 5) == date(2029, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)

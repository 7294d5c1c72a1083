"""services/registry/domain.py: disclosure windows, the record lifecycle, key persons and
the credit grade (DOMAIN.md, "Retention, disclosure, repair", lines 39-56)."""

from __future__ import annotations

from datetime import date

import pytest

from services.registry.domain import (
    add_months,
    apply_status_change,
    archive_accepted,
    disclosure_window,
    grade,
    key_persons,
    status_change_refusal,
)
from shared.contract import RecordStatusChanged, SubjectRef
from tests.unit.factories import (
    ENTERPRISE,
    accepted,
    archived,
    resident_id,
    submission,
)

TODAY = date(2026, 11, 28)


# --- add_months ---------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 1, 15), 1, date(2026, 2, 15)),
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2024, 1, 31), 1, date(2024, 2, 29)),
    (date(2026, 3, 31), 1, date(2026, 4, 30)),
    (date(2026, 8, 31), 3, date(2026, 11, 30)),
    (date(2026, 11, 30), 3, date(2027, 2, 28)),
    (date(2024, 2, 29), 12, date(2025, 2, 28)),
    (date(2024, 2, 29), 48, date(2028, 2, 29)),
    (date(2026, 12, 15), 1, date(2027, 1, 15)),
    (date(2026, 5, 1), 36, date(2029, 5, 1)),
    (date(2026, 5, 1), 0, date(2026, 5, 1)),
    (date(2026, 1, 15), -1, date(2025, 12, 15)),
])
def test_add_months_clamps_to_the_month_end(day, months, expected):
    assert add_months(day, months) == expected


# --- disclosure_window --------------------------------------------------------------------


def test_serious_item_under_order_36(catalogue):
    """DOMAIN.md lines 44-48: Order 36 from 2026-04-01, serious 1 to 3 years."""
    assert disclosure_window(catalogue, "hrss.wage_arrears", date(2026, 5, 1)) == (
        "ndrc-order-36", date(2027, 5, 1), date(2029, 5, 1))


def test_serious_item_under_the_2019_rule(catalogue):
    """DOMAIN.md lines 51-52: 发改办财金〔2019〕527号, serious 6 months to 3 years."""
    assert disclosure_window(catalogue, "hrss.wage_arrears", date(2025, 5, 1)) == (
        "ndrc-2019-527", date(2025, 11, 1), date(2028, 5, 1))


def test_rule_changes_on_2026_04_01(catalogue):
    before = disclosure_window(catalogue, "hrss.wage_arrears", date(2026, 3, 31))
    on = disclosure_window(catalogue, "hrss.wage_arrears", date(2026, 4, 1))
    assert before[0] == "ndrc-2019-527"
    assert before[1] == date(2026, 9, 30)
    assert on[0] == "ndrc-order-36"
    assert on[1] == date(2027, 4, 1)


@pytest.mark.parametrize(("decided_on", "rule"),
                         [(date(2025, 5, 1), "ndrc-2019-527"), (date(2026, 5, 1), "ndrc-order-36")])
def test_general_item_is_public_3_to_12_months(catalogue, decided_on, rule):
    """DOMAIN.md lines 46-47 and 51: general, 3 months to 1 year under both rules."""
    assert disclosure_window(catalogue, "amr.admin_penalty", decided_on) == (
        rule, add_months(decided_on, 3), add_months(decided_on, 12))


def test_positive_item_shows_for_the_catalogues_period(catalogue):
    decided_on = date(2026, 5, 1)
    months = catalogue.positive_disclosure_months
    assert disclosure_window(catalogue, "tax.a_grade_taxpayer", decided_on) == (
        "positive-disclosure", None, add_months(decided_on, months))
    assert months == 36


@pytest.mark.parametrize("item", ["amr.legal_representative", "staffing.report_overdue"])
def test_internal_item_is_never_public(catalogue, item):
    assert disclosure_window(catalogue, item, date(2026, 5, 1)) == (None, None, None)


# --- archive_accepted ---------------------------------------------------------------------


def test_new_record_is_archived_active_with_its_window(catalogue):
    sub = submission(decided_on=date(2026, 5, 1), zone="hengqin")
    record = archive_accepted(catalogue, None, accepted(sub))
    assert record is not None
    assert record.status == "active"
    assert not record.disputed
    assert (record.department, record.record_id, record.revision) == ("court", "R-1", 1)
    assert record.catalogue_item == "court.dishonest_debtor"
    assert (record.district, record.zone) == ("440402", "hengqin")
    # A court listing shows while listed (法释〔2017〕7号): 2 years, not repairable.
    assert record.disclosure_rule == "fashi-2017-7"
    assert (record.repair_from, record.public_until) == (None, date(2028, 5, 1))
    assert (record.act_ended_on, record.purge_on) == (date(2026, 5, 1), None)  # a firm: kept


def test_higher_revision_replaces_and_keeps_the_dispute_flag(catalogue):
    existing = archived(revision=1, disputed=True, document_no="old")
    sub = submission(revision=2, document_no="new", decided_on=date(2025, 5, 1))
    record = archive_accepted(catalogue, existing, accepted(sub))
    assert record is not None
    assert record.revision == 2
    assert record.document_no == "new"
    assert record.disputed is True
    assert record.disclosure_rule == "fashi-2017-7"
    assert record.public_until == date(2027, 5, 1)


@pytest.mark.parametrize("revision", [1, 2])
def test_equal_or_lower_revision_changes_nothing(catalogue, revision):
    """CONTRACT.md lines 62-63: a replayed or older revision changes nothing."""
    existing = archived(revision=2)
    assert archive_accepted(catalogue, existing, accepted(submission(revision=revision))) is None


def withdraw_sub(revision: int):
    return submission(action="withdraw", revision=revision)


def test_withdraw_marks_the_record_withdrawn(catalogue):
    existing = archived(revision=1, document_no="kept")
    record = archive_accepted(catalogue, existing, accepted(withdraw_sub(2)))
    assert record is not None
    assert record.status == "withdrawn"
    assert record.revision == 2
    assert record.document_no == "kept"


def test_withdraw_of_an_unknown_record_changes_nothing(catalogue):
    assert archive_accepted(catalogue, None, accepted(withdraw_sub(1))) is None


def test_replayed_withdraw_changes_nothing(catalogue):
    existing = archived(revision=2, status="withdrawn")
    assert archive_accepted(catalogue, existing, accepted(withdraw_sub(2))) is None


# --- apply_status_change ------------------------------------------------------------------


def change(kind: str) -> RecordStatusChanged:
    return RecordStatusChanged(change=kind, department="court", record_id="R-1",
                               subject=ENTERPRISE, objection_id="obj-1")


def test_flag_marks_the_record_disputed():
    """DOMAIN.md line 60: an objection puts an "under objection" flag on the record at once."""
    record = apply_status_change(archived(), change("flag"))
    assert record.disputed is True
    assert record.status == "active"


def test_unflag_lifts_the_dispute():
    record = apply_status_change(archived(disputed=True), change("unflag"))
    assert record.disputed is False
    assert record.status == "active"


def test_withdraw_decision_withdraws_and_lifts_the_flag():
    record = apply_status_change(archived(disputed=True), change("withdraw"))
    assert (record.status, record.disputed) == ("withdrawn", False)


def test_repair_decision_repairs_and_lifts_the_flag():
    """DOMAIN.md lines 48-49: repair stops display, data sharing and the measures."""
    record = apply_status_change(archived(disputed=True), change("repair"))
    assert (record.status, record.disputed) == ("repaired", False)


def test_status_change_keeps_the_revision():
    record = apply_status_change(archived(revision=4), change("flag"))
    assert record.revision == 4


# --- key_persons --------------------------------------------------------------------------


def rep(record_id: str, person_id: str, decided_on: date, status: str = "active"):
    return archived("amr.legal_representative", record_id=record_id, decided_on=decided_on,
                    status=status, public_until=None,
                    attributes={"legal_representative": {"id": person_id, "name": record_id}})


OLD_REP = resident_id(birth=date(1960, 1, 1))
NEW_REP = resident_id(birth=date(1980, 1, 1))


def test_latest_active_legal_representative_wins(catalogue):
    records = [rep("new", NEW_REP, date(2025, 1, 1)), rep("old", OLD_REP, date(2015, 1, 1))]
    persons = key_persons(catalogue, records)
    assert len(persons) == 1
    person = persons[0]
    assert (person.type, person.id, person.role) == ("individual", NEW_REP,
                                                    "legal_representative")
    assert person.name == "new"


def test_withdrawn_legal_representative_is_ignored(catalogue):
    records = [rep("old", OLD_REP, date(2015, 1, 1)),
               rep("new", NEW_REP, date(2025, 1, 1), status="withdrawn")]
    assert [p.id for p in key_persons(catalogue, records)] == [OLD_REP]


MINOR_REP = resident_id(birth=date(2009, 3, 1))


def test_a_legal_representative_under_18_on_the_decision_date_is_not_linked(catalogue):
    """Nobody under 18 on the decision date is named in related_subjects (民法典 第十七条,
    未成年人保护法 第四条)."""
    assert key_persons(catalogue, [rep("kid", MINOR_REP, date(2027, 2, 28))]) == []
    [adult] = key_persons(catalogue, [rep("kid", MINOR_REP, date(2027, 3, 1))])
    assert adult.id == MINOR_REP


def test_a_minor_named_by_the_latest_decision_is_not_replaced_by_an_earlier_holder(catalogue):
    """The latest registration says who holds the role; linking the previous holder instead
    would name the wrong person on agencies' notices."""
    records = [rep("old", OLD_REP, date(2015, 1, 1)), rep("kid", MINOR_REP, date(2026, 1, 1))]
    assert key_persons(catalogue, records) == []


def test_a_key_person_whose_birth_date_cannot_be_read_is_not_linked(catalogue):
    assert key_persons(catalogue, [rep("bad", "44040219851332123X", date(2026, 1, 1))]) == []


def test_records_without_a_key_person_role_give_none(catalogue):
    assert key_persons(catalogue, [archived(), archived("amr.admin_penalty")]) == []


# --- grade --------------------------------------------------------------------------------


def test_serious_record_in_force_grades_d(catalogue):
    result = grade(catalogue, ENTERPRISE, [archived(), archived("tax.a_grade_taxpayer")], TODAY)
    assert result.grade == "D"
    assert len(result.explanation) == 1
    assert "失信被执行人" in result.explanation[0]
    assert "R-1" in result.explanation[0]


def test_general_record_grades_c(catalogue):
    result = grade(catalogue, ENTERPRISE,
                   [archived("amr.admin_penalty", public_until=date(2027, 6, 1)),
                    archived("tax.a_grade_taxpayer")], TODAY)
    assert result.grade == "C"
    assert "行政处罚" in result.explanation[0]


def test_positive_record_without_negatives_grades_a(catalogue):
    result = grade(catalogue, ENTERPRISE, [archived("tax.a_grade_taxpayer"),
                               archived("customs.advanced_certified", record_id="R-2")], TODAY)
    assert result.grade == "A"
    assert len(result.explanation) == 2
    assert any("A级纳税人" in line for line in result.explanation)


def test_no_records_grades_b(catalogue):
    result = grade(catalogue, ENTERPRISE, [], TODAY)
    assert result.grade == "B"
    assert result.explanation


def test_neutral_and_minor_internal_records_grade_b(catalogue):
    records = [rep("lr", OLD_REP, date(2020, 1, 1)),
               archived("staffing.report_overdue", public_until=None)]
    assert grade(catalogue, ENTERPRISE, records, TODAY).grade == "B"


@pytest.mark.parametrize("status", ["withdrawn", "repaired"])
def test_withdrawn_or_repaired_records_do_not_count(catalogue, status):
    assert grade(catalogue, ENTERPRISE, [archived(status=status)], TODAY).grade == "B"


def test_records_past_their_disclosure_period_do_not_count(catalogue):
    """DOMAIN.md lines 47-48: at the maximum, display stops by itself."""
    old = archived(decided_on=date(2022, 1, 1), public_until=date(2025, 1, 1))
    assert grade(catalogue, ENTERPRISE, [old], TODAY).grade == "B"


def test_record_on_its_last_public_day_still_counts(catalogue):
    assert grade(catalogue, ENTERPRISE, [archived(public_until=TODAY)], TODAY).grade == "D"


def test_records_about_a_minor_do_not_count_toward_the_grade(catalogue):
    """The grade explains itself with records the public sees; a record about someone under
    18 on its decision date is never shown."""
    minor = SubjectRef(type="individual", id=resident_id(birth=date(2010, 1, 1)), name="小明")
    penalty = archived("hrss.wage_arrears", decided_on=date(2026, 6, 1))
    assert grade(catalogue, minor, [penalty], TODAY).grade == "B"
    adult_again = archived("hrss.wage_arrears", record_id="R-2", decided_on=date(2028, 6, 1),
                           public_until=date(2031, 6, 1))
    result = grade(catalogue, minor, [penalty, adult_again], date(2028, 7, 1))
    assert result.grade == "D"
    assert len(result.explanation) == 1 and "R-2" in result.explanation[0]


def test_the_minor_rule_applies_only_to_individuals(catalogue):
    assert grade(catalogue, ENTERPRISE, [archived(decided_on=date(2026, 6, 1))],
                 TODAY).grade == "D"


def test_a_corrected_revision_keeps_the_repair(catalogue):
    """NDRC Order 36: repair stops display, data sharing and the measures together; a later
    revision of the same decision does not undo it."""
    first = archive_accepted(catalogue, None, accepted(submission(revision=1)))
    assert first is not None
    repaired = first.model_copy(update={"status": "repaired"})
    corrected = archive_accepted(catalogue, repaired, accepted(submission(revision=2)))
    assert corrected is not None and corrected.status == "repaired"


# --- status changes are about a record the registry holds, under its subject -----------

def _status(subject_id: str) -> RecordStatusChanged:
    return RecordStatusChanged(change="flag", department="court", record_id="R-1",
                               subject={"type": "enterprise", "id": subject_id},
                               objection_id="o-1")


def test_a_status_change_under_the_records_subject_applies():
    assert status_change_refusal(_status(ENTERPRISE.id), f"enterprise:{ENTERPRISE.id}") is None


def test_a_status_change_under_another_subject_is_refused():
    reason = status_change_refusal(_status(ENTERPRISE.id), "enterprise:OTHER")
    assert reason is not None and "enterprise:OTHER" in reason and ENTERPRISE.id in reason


def test_a_status_change_for_a_record_not_held_is_refused():
    reason = status_change_refusal(_status(ENTERPRISE.id), None)
    assert reason is not None and "does not hold" in reason

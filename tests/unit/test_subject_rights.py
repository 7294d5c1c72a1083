"""The subject's rights as pure rules: repair eligibility and steps (NDRC Order 36), telling a
subject before listing (国办发〔2020〕49号, 国家税务总局令第54号), the query log's masking and
cursors, the subject's own view, and the ingest checks they rest on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.ingest.domain import check_notification_fields
from services.objection.domain import (
    RecordFacts,
    commitment_problems,
    list_department,
    pass_on_by,
    repair_deadlines,
    repair_eligibility,
)
from services.publisher import rights
from services.publisher.domain import Entry, exit_reason, held
from shared.contract import (
    ArchivedRecord,
    BasisRecord,
    RecordSubmission,
    SubjectChanged,
    SubjectRef,
)
from tests.unit.factories import ENTERPRISE, ENTERPRISE_ID, PERSON, archived, snapshot

TODAY = date(2026, 11, 30)


def snap(*records: ArchivedRecord, subject: SubjectRef = ENTERPRISE) -> SubjectChanged:
    return snapshot(subject, list(records))


def facts(item: str = "amr.admin_penalty", *, status: str = "active",
          repair_from: date | None = date(2026, 9, 1),
          public_until: date | None = date(2027, 6, 1)) -> RecordFacts:
    return RecordFacts("amr", "A-1", f"enterprise:{ENTERPRISE_ID}", 1, 1, status, item,
                       repair_from, public_until)


def codes(problems: list[dict[str, str]]) -> list[str]:
    return [p["code"] for p in problems]


# --- repair eligibility (NDRC Order 36) -----------------------------------------------------


def test_an_eligible_repair_has_no_reason_against_it(catalogue):
    assert repair_eligibility(catalogue, facts(), TODAY, commitment_given=True,
                              obligations_declared=True) == []
    # The minimum period ends on repair_from: that day is eligible.
    assert repair_eligibility(catalogue, facts(repair_from=TODAY), TODAY,
                              commitment_given=True, obligations_declared=True) == []


def test_every_failing_reason_is_given_at_once(catalogue):
    problems = repair_eligibility(catalogue, facts(repair_from=date(2026, 12, 1)), TODAY,
                                  commitment_given=False, obligations_declared=False)
    assert codes(problems) == ["too_early", "commitment_missing", "obligations_not_declared"]
    assert problems[0]["eligible_from"] == "2026-12-01"
    assert [p["field"] for p in problems] == ["record.record_id", "commitment", "obligations"]


@pytest.mark.parametrize("item", ["court.dishonest_debtor", "tax.major_violation",
                                  "hrss.wage_arrears", "court.government_dishonest_debtor",
                                  "amr.abnormal_operation"])
def test_items_with_their_own_removal_are_not_repairable_and_say_which_procedure(
        catalogue, item):
    [problem] = repair_eligibility(catalogue, facts(item), TODAY, commitment_given=True,
                                   obligations_declared=True)
    assert problem["code"] == "not_repairable"
    assert problem["procedure"] == catalogue.items[item].own_removal
    assert catalogue.items[item].own_removal in problem["message"]


@pytest.mark.parametrize("case", [
    {"status": "repaired"}, {"status": "withdrawn"},
    {"public_until": date(2026, 11, 29)},  # past its disclosure period
    {"public_until": None}])
def test_a_record_not_published_now_has_nothing_to_repair(catalogue, case):
    problems = repair_eligibility(catalogue, facts(**case), TODAY, commitment_given=True,
                                  obligations_declared=True)
    assert codes(problems) == ["not_published"]


def test_an_internal_or_unknown_record_is_not_published(catalogue):
    assert codes(repair_eligibility(catalogue, facts("staffing.report_overdue"), TODAY,
                                    commitment_given=True, obligations_declared=True)
                 ) == ["not_published"]
    assert codes(repair_eligibility(catalogue, None, TODAY, commitment_given=False,
                                    obligations_declared=True)
                 ) == ["not_published", "commitment_missing"]


def test_a_positive_record_needs_no_repair(catalogue):
    assert codes(repair_eligibility(catalogue, facts("tax.a_grade_taxpayer"), TODAY,
                                    commitment_given=True, obligations_declared=True)
                 ) == ["not_repairable"]


def test_the_commitment_names_a_text_in_force_and_is_not_signed_tomorrow(catalogue):
    assert commitment_problems(catalogue, "2026-04", TODAY, TODAY) == []
    assert codes(commitment_problems(catalogue, "1999-01", TODAY, TODAY)) == [
        "unknown_text_version"]
    assert codes(commitment_problems(catalogue, "2026-04", date(2026, 3, 1), TODAY)) == [
        "text_not_in_force"]
    assert codes(commitment_problems(catalogue, "2026-04", TODAY + timedelta(days=1),
                                     TODAY)) == ["future_date"]


def test_repair_steps_count_working_days(catalogue):
    """DOMAIN.md: accept 2, check 2, decide 10, pass on 3 working days."""
    steps = catalogue.repair.steps
    # From Monday 21 September 2026, 10 working days skip Mid-Autumn (25 September) and
    # National Day (1-7 October) and count Saturday 10 October (调休).
    d = repair_deadlines(date(2026, 9, 21), steps)
    assert (d.accept_by, d.check_by) == (date(2026, 9, 23), date(2026, 9, 23))
    assert d.decide_by == date(2026, 10, 12)
    assert not d.provisional
    # Passed on within 3 working days: the make-up Saturday is the third.
    assert pass_on_by(date(2026, 9, 30), steps) == date(2026, 10, 10)


def test_a_list_entry_complaint_goes_to_the_lists_department(catalogue):
    assert list_department(catalogue, "court.dishonest_debtor") == "court"
    assert list_department(catalogue, "tax.a_grade") == "tax"


# --- telling the subject before listing -----------------------------------------------------

NOTIFIED_AT = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Zhuhai


def test_the_notice_period_runs_from_the_notification(catalogue):
    lst = catalogue.lists["hrss.wage_arrears"]
    publish_at, object_by = rights.planned_publication(lst, NOTIFIED_AT, None)
    assert publish_at == NOTIFIED_AT + timedelta(days=7)
    assert object_by == date(2026, 12, 7)


def test_major_tax_violators_publish_the_month_after_service(catalogue):
    """国家税务总局令第54号: published in the month after the decision is served."""
    lst = catalogue.lists["tax.major_violation"]
    publish_at, object_by = rights.planned_publication(lst, NOTIFIED_AT, date(2026, 11, 28))
    assert publish_at.astimezone(rights.clock.ZHUHAI) == datetime(
        2026, 12, 1, tzinfo=rights.clock.ZHUHAI) + timedelta(days=6, hours=10)
    # Served in an earlier month: the notice period alone decides.
    assert rights.planned_publication(lst, NOTIFIED_AT, date(2026, 10, 3))[0] == \
        NOTIFIED_AT + timedelta(days=7)
    # Served late in the month, notified at once: the 1st of the next month is later.
    late = datetime(2026, 12, 20, 2, tzinfo=UTC)
    assert rights.planned_publication(lst, late, date(2026, 12, 20))[0] == datetime(
        2027, 1, 1, tzinfo=rights.clock.ZHUHAI)
    assert object_by == date(2026, 12, 7)


def test_service_date_from_the_basis_records(catalogue):
    served = archived("tax.major_violation", record_id="T-1", decided_on=date(2026, 11, 1),
                      attributes={"served_on": "2026-11-10"})
    unserved = archived("tax.major_violation", record_id="T-2", decided_on=date(2026, 11, 3))
    other = archived("tax.major_violation", record_id="T-3",
                     attributes={"served_on": "2026-11-25"})
    basis = [BasisRecord(department="tax", record_id=r, revision=1) for r in ("T-1", "T-2")]
    assert rights.served_on([served, unserved, other], basis) == date(2026, 11, 10)
    assert rights.served_on([unserved], basis[1:]) == date(2026, 11, 3)


def test_the_message_names_the_list_the_reasons_the_dates_and_how_to_object(catalogue):
    subject = snap(archived("hrss.wage_arrears", record_id="H-1",
                            document_no="珠人社〔2026〕1号"))
    basis = [BasisRecord(department="hrss", record_id="H-1", revision=1)]
    made, _ = rights.notified(catalogue, "n-1", "e-1", "hrss.wage_arrears", subject,
                              basis, "contact", NOTIFIED_AT, "https://x.example")
    assert (made.planned_publication, made.object_by) == (date(2026, 12, 7), date(2026, 12, 7))
    assert [r.record_id for r in made.reasons] == ["H-1"]
    text = rights.message_text(made)
    for part in ("拖欠农民工工资失信联合惩戒对象名单", "珠人社〔2026〕1号", "2026-12-07",
                 "https://x.example/objections/new", "n-1"):
        assert part in text


@pytest.mark.parametrize(("contact", "channel"), [
    ("13800000000", "sms"), ("+86 138-0000-0000", "sms"), ("li@example.com", "email"),
    ("no channel", None), ("12", None)])
def test_contacts_are_reached_by_sms_or_email(contact, channel):
    assert rights.channel_of(contact) == channel


def test_an_objection_about_a_basis_record_holds_the_entry(catalogue):
    entry = Entry("e", "hrss.wage_arrears", f"enterprise:{ENTERPRISE_ID}", "pending",
                  (BasisRecord(department="hrss", record_id="H-1", revision=1),))
    assert held(entry, snap(archived("hrss.wage_arrears", record_id="H-1", disputed=True)))
    assert not held(entry, snap(archived("hrss.wage_arrears", record_id="H-1")))
    assert not held(entry, snap(archived("hrss.wage_arrears", record_id="H-1"),
                                    archived("hrss.wage_arrears", record_id="H-2",
                                             disputed=True)))


def test_an_entry_resting_only_on_repaired_records_exits_repaired():
    entry = Entry("e", "x", "k", "active", (BasisRecord(department="amr", record_id="A-1",
                                                        revision=1),
                                            BasisRecord(department="amr", record_id="A-2",
                                                        revision=1)))
    assert exit_reason(entry, {("amr", "A-1"), ("amr", "A-2")}) == "repaired"
    assert exit_reason(entry, {("amr", "A-1")}) == "basis_withdrawn"
    assert exit_reason(entry, set()) == "basis_withdrawn"


# --- the query log ---------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "masked"), [
    ("203.0.113.77", "203.0.113.0/24"), ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
    ("::ffff:198.51.100.9", "198.51.100.0/24"), ("not an address", None), (None, None)])
def test_addresses_are_kept_as_their_network(address, masked):
    assert rights.mask_address(address) == masked


def test_cursors_round_trip_and_refuse_anything_else():
    assert rights.decode_cursor(rights.encode_cursor(12345)) == 12345
    assert rights.decode_cursor(None) is None
    for bad in ("x", "djE6MTIz", "cTE6LTE", "cTE6MTIzNDU2Nzg5MDEyMzQ1Njc4OTAx", "é", "q" * 65):
        with pytest.raises(ValueError):
            rights.decode_cursor(bad)


def test_an_individuals_negative_record_is_purged_five_years_after_the_act(catalogue):
    """征信业管理条例 art. 16."""
    wage = archived("hrss.wage_arrears", decided_on=date(2026, 3, 1))
    assert rights.purge_on(catalogue, "individual", wage) == date(2031, 3, 1)
    ended = archived("hrss.wage_arrears", decided_on=date(2026, 3, 1),
                     attributes={"act_ended_on": "2026-02-01"})
    assert rights.purge_on(catalogue, "individual", ended) == date(2031, 2, 1)
    assert rights.purge_on(catalogue, "enterprise", wage) is None
    assert rights.purge_on(catalogue, "individual",
                           archived("tax.a_grade_taxpayer")) is None


def test_the_subject_sees_every_record_with_where_it_stands(catalogue):
    subject = snap(archived("staffing.report_overdue", record_id="S-1"),
                    archived("amr.admin_penalty", record_id="A-1",
                             public_until=date(2027, 1, 1), contact="13800001234"),
                    subject=PERSON)
    records = {r["record_id"]: r for r in rights.own_records(catalogue, subject, TODAY)}
    assert records["S-1"]["disclosure"] == "internal" and not records["S-1"]["public_now"]
    assert records["A-1"]["public_now"] and records["A-1"]["public_until"] == "2027-01-01"
    assert records["A-1"]["contact_from_department"] == "138****34"


# --- what ingest checks ---------------------------------------------------------------------


def submission(**extra: object) -> RecordSubmission:
    return RecordSubmission.model_validate({
        "record_id": "T-1", "revision": 1, "action": "upsert",
        "catalogue_item": "tax.major_violation",
        "subject": {"type": "enterprise", "id": ENTERPRISE_ID, "name": "x"},
        "decided_on": "2026-11-01", "district": "440402", **extra})


@pytest.mark.parametrize(("attributes", "code"), [
    ({"served_on": "2026-11-10"}, None), ({"served_on": "2026-10-31"}, "before_decision"),
    ({"served_on": "2026-12-01"}, "future_date"), ({"served_on": "10/11/2026"}, "date"),
    ({"served_on": 20261110}, "date")])
def test_served_on_lies_between_the_decision_and_today(attributes, code):
    errors = check_notification_fields(submission(attributes=attributes), TODAY)
    assert [(e.field, e.code) for e in errors] == (
        [] if code is None else [("attributes.served_on", code)])


def test_a_contact_holds_no_control_characters():
    assert check_notification_fields(submission(contact="13800000000"), TODAY) == []
    [error] = check_notification_fields(submission(contact="138\x1b00000000"), TODAY)
    assert (error.field, error.code) == ("contact", "control_character")
    [error] = check_notification_fields(submission(contact=" 1 "), TODAY)
    assert (error.field, error.code) == ("contact", "too_short")

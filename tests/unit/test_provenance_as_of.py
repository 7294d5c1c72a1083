"""Provenance through the archive (issue 8 item 1) and the as-of profile's rules (item 2):
services/registry/domain.py, shared/grading.py, services/publisher/domain.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.publisher import domain
from services.registry.domain import apply_status_change, archive_accepted, grade
from shared import clock
from shared.contract import BasisRecord, RecordStatusChanged, SubjectChanged
from tests.unit.factories import ENTERPRISE, PERSON, accepted, archived, snapshot, submission

FLAGGED_AT = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def change(kind: str) -> RecordStatusChanged:
    return RecordStatusChanged(change=kind, department="court", record_id="R-1",
                               subject=ENTERPRISE, objection_id="obj-1")


# --- provenance in the archive ------------------------------------------------------------


def test_an_accepted_revision_carries_the_departments_event_and_receipt(catalogue):
    record = archive_accepted(catalogue, None, accepted(submission()))
    assert record is not None and record.provenance is not None
    assert record.provenance.model_dump() == {
        "department": "court", "record_id": "R-1", "revision": 1, "event_id": "ev-1",
        "received_at": datetime(2026, 6, 2, 9, 0)}


def test_a_new_revision_names_its_own_event_and_a_withdrawal_too(catalogue):
    first = archive_accepted(catalogue, None, accepted(submission()))
    corrected = accepted(submission(revision=2)).model_copy(
        update={"source_event_id": "dec-1/corrected"})
    second = archive_accepted(catalogue, first, corrected)
    assert second is not None and second.provenance is not None
    assert (second.provenance.revision, second.provenance.event_id) == (2, "dec-1/corrected")
    gone = archive_accepted(catalogue, second, accepted(submission(
        revision=3, action="withdraw")).model_copy(update={"source_event_id": "ev-3"}))
    assert gone is not None and gone.provenance is not None
    assert (gone.status, gone.provenance.event_id) == ("withdrawn", "ev-3")


def test_a_flag_or_a_repair_never_rewrites_provenance_and_the_flag_has_its_time(catalogue):
    record = archive_accepted(catalogue, None, accepted(submission()))
    assert record is not None
    flagged = apply_status_change(record, change("flag"), date(2026, 7, 1), FLAGGED_AT)
    assert (flagged.disputed, flagged.disputed_since) == (True, FLAGGED_AT)
    assert flagged.provenance == record.provenance
    # Flagged again (a second objection): the time the flag was first set stays.
    again = apply_status_change(flagged, change("flag"), date(2026, 7, 2),
                                FLAGGED_AT + timedelta(days=1))
    assert again.disputed_since == FLAGGED_AT
    # A corrected revision keeps the flag and its time, with its own provenance.
    corrected = archive_accepted(catalogue, flagged, accepted(submission(revision=2)))
    assert corrected is not None and corrected.disputed_since == FLAGGED_AT
    repaired = apply_status_change(flagged, change("repair"), date(2026, 8, 1), FLAGGED_AT)
    assert repaired.provenance == record.provenance
    assert (repaired.disputed, repaired.disputed_since) == (False, None)
    unflagged = apply_status_change(flagged, change("unflag"), date(2026, 8, 1), FLAGGED_AT)
    assert (unflagged.disputed_since, unflagged.provenance) == (None, record.provenance)


def test_the_grade_names_its_records_by_department_and_record_id(catalogue):
    result = grade(catalogue, ENTERPRISE, [archived(record_id="R-7", revision=3)],
                   date(2026, 11, 28))
    assert [b.model_dump() for b in result.basis] == [
        {"department": "court", "record_id": "R-7", "revision": 3}]
    assert "court R-7" in result.explanation[0]


# --- as_of --------------------------------------------------------------------------------

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # 11:00 in Zhuhai


def test_as_of_is_the_last_instant_of_that_day_in_china_standard_time():
    day, end = domain.as_of_moment("2026-11-01", NOW)
    assert day == date(2026, 11, 1)
    assert end == datetime(2026, 11, 1, 23, 59, 59, 999999, tzinfo=clock.ZHUHAI)
    assert end.astimezone(UTC) == datetime(2026, 11, 1, 15, 59, 59, 999999, tzinfo=UTC)
    # Today is a day that may be asked for (its end has not come: history up to now).
    assert domain.as_of_moment("2026-11-30", NOW)[0] == date(2026, 11, 30)


def test_today_is_zhuhais_day_not_utcs():
    # 20:00 UTC on 30 November is already 1 December in Zhuhai.
    late = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    assert domain.as_of_moment("2026-12-01", late)[0] == date(2026, 12, 1)
    with pytest.raises(domain.AsOfRefused) as refused:
        domain.as_of_moment("2026-12-01", NOW)
    assert refused.value.code == "future"


@pytest.mark.parametrize("text", ["2026-13-01", "2026-02-30", "yesterday", "2026-1-01",
                                  "20261101", "2026-11-01T00:00", " 2026-11-01", ""])
def test_what_is_not_a_date_is_refused(text):
    with pytest.raises(domain.AsOfRefused) as refused:
        domain.as_of_moment(text, NOW)
    assert refused.value.code == "date_parsing"


ENTRY = domain.Membership(list="court.dishonest_debtor", since=date(2026, 6, 2),
                          until=date(2029, 6, 1), basis=frozenset({("court", "R-1")}),
                          entry_id="e-1", status="active",
                          basis_records=(BasisRecord(department="court", record_id="R-1",
                                                     revision=1),))
DAY = date(2026, 7, 1)
TODAY = date(2026, 11, 30)


def view(catalogue, past: SubjectChanged, current: SubjectChanged,
         entries=(ENTRY,), current_entries=(ENTRY,), day=DAY):
    return domain.public_profile(catalogue, past, list(entries), day, current,
                                 list(current_entries), TODAY)


def test_the_past_shows_the_revision_then_with_its_provenance(catalogue):
    first = archive_accepted(catalogue, None, accepted(submission()))
    second = archive_accepted(catalogue, first, accepted(submission(
        revision=2, document_no="更正后")).model_copy(update={"source_event_id": "ev-2"}))
    assert first is not None and second is not None
    shown = view(catalogue, snapshot(ENTERPRISE, [first]), snapshot(ENTERPRISE, [second]))
    assert shown is not None
    [record] = shown["records"]
    assert record["document_no"] == "（2026）粤04执123号"
    assert record["provenance"] == {"department": "court", "record_id": "R-1", "revision": 1,
                                    "event_id": "ev-1", "received_at": "2026-06-02T09:00:00"}
    [listed] = shown["lists"]
    assert listed["basis"] == [{"department": "court", "record_id": "R-1", "revision": 1,
                                "provenance": record["provenance"]}]
    assert shown["grade"]["grade"] == "D"


@pytest.mark.parametrize("now", [
    {"status": "repaired"}, {"status": "withdrawn"}, {"public_until": date(2026, 11, 29)}])
def test_what_has_stopped_being_shown_is_not_shown_again(catalogue, now):
    then = archived()
    shown = view(catalogue, snapshot(ENTERPRISE, [then]),
                 snapshot(ENTERPRISE, [then.model_copy(update=now)]), current_entries=())
    assert shown is not None
    assert (shown["records"], shown["lists"], shown["grade"]["grade"]) == ([], [], "B")
    # The full past view (the subject's, an operator's) still has it.
    own = domain.own_profile(catalogue, snapshot(ENTERPRISE, [then]), [ENTRY], DAY)
    assert [r["record_id"] for r in own["records"]] == ["R-1"]
    assert [(entry["list"], entry["status"]) for entry in own["lists"]] == [
        ("court.dishonest_debtor", "active")]


def test_an_erased_record_is_not_shown_again(catalogue):
    shown = view(catalogue, snapshot(ENTERPRISE, [archived()]), snapshot(ENTERPRISE, []),
                 current_entries=())
    assert shown is not None and shown["records"] == []


def test_a_person_hidden_now_or_then_is_not_found(catalogue):
    record = archived()
    person_then = snapshot(PERSON, [record])
    person_now = snapshot(PERSON, [record.model_copy(update={"status": "repaired"})])
    assert view(catalogue, person_then, person_now, current_entries=()) is None
    assert view(catalogue, snapshot(PERSON, []), person_then) is None


def test_the_live_profile_is_the_same_function_at_today(catalogue):
    current = snapshot(ENTERPRISE, [archived(), archived("amr.admin_penalty", record_id="R-2",
                                                         public_until=date(2026, 11, 1))])
    live = view(catalogue, current, current, day=TODAY)
    assert live is not None
    assert [r["record_id"] for r in live["records"]] == ["R-1"]


def test_a_repairs_commitment_is_shown_while_the_repaired_record_is_not(catalogue):
    repaired = archived("amr.admin_penalty", record_id="A-1", status="repaired", repair={
        "objection_id": "o-1", "granted_on": "2026-09-01", "commitment": {
            "commitment_id": "c-1", "text_version": "2026-04", "signer_name": "张三",
            "signer_role": "法定代表人", "signed_on": "2026-08-01"}})
    current = snapshot(ENTERPRISE, [repaired])
    live = view(catalogue, current, current, entries=(), current_entries=(), day=TODAY)
    assert live is not None and live["records"] == []
    assert [c["commitment_id"] for c in live["commitments"]] == ["c-1"]


def test_the_live_grade_is_the_registrys(catalogue):
    records = [archived("amr.admin_penalty", record_id="A-1", public_until=None),
               archived("tax.a_grade_taxpayer", record_id="T-1"),
               archived("amr.admin_penalty", record_id="A-2", public_until=date(2026, 1, 1)),
               archived(record_id="C-1", status="withdrawn")]
    current = snapshot(ENTERPRISE, records)
    live = view(catalogue, current, current, entries=(), current_entries=(), day=TODAY)
    assert live is not None
    assert live["grade"] == grade(catalogue, ENTERPRISE, records, TODAY).model_dump(mode="json")
    assert live["grade"]["grade"] == "C"


def test_the_subjects_own_entries_carry_their_basis_with_provenance(catalogue):
    from services.publisher.rights_api import _entry

    record = archive_accepted(catalogue, None, accepted(submission()))
    assert record is not None
    entry = {"entry_id": "e-1", "list": "court.dishonest_debtor", "status": "active",
             "basis": [{"department": "court", "record_id": "R-1", "revision": 1},
                       {"department": "court", "record_id": "GONE", "revision": 1}]}
    shown = _entry(catalogue, entry, snapshot(ENTERPRISE, [record]))
    assert [b["provenance"] and b["provenance"]["event_id"] for b in shown["basis"]] == [
        "ev-1", None]
    assert shown["kind"] == "black"


# --- a record that is the listing waits for it (国办发〔2020〕49号) -----------------------

TAX = "tax.major_violation"


def tax_entry(status: str) -> domain.Membership:
    return domain.Membership(
        list=TAX, since=None if status == "pending" else DAY, until=None,
        basis=frozenset({("tax", "T-1")}), entry_id="e-tax", status=status,
        basis_records=(BasisRecord(department="tax", record_id="T-1", revision=1),))


@pytest.mark.parametrize("subject", [ENTERPRISE, PERSON])
def test_a_record_whose_entry_awaits_its_notice_period_is_neither_shown_nor_graded(
        catalogue, subject):
    record = archived(TAX, record_id="T-1", decided_on=date(2026, 6, 1))
    now = snapshot(subject, [record])
    pending = tax_entry("pending")
    shown = domain.public_profile(catalogue, now, [pending], TODAY, now, [pending], TODAY)
    if subject.type == "individual":
        # Nothing else about the person is public: not found at all.
        assert shown is None
    else:
        assert shown is not None
        assert (shown["records"], shown["lists"], shown["grade"]["grade"]) == ([], [], "B")
        assert "T-1" not in str(shown)
    published = tax_entry("active")
    shown = domain.public_profile(catalogue, now, [published], TODAY, now, [published], TODAY)
    assert shown is not None
    assert [r["record_id"] for r in shown["records"]] == ["T-1"]
    assert shown["grade"]["grade"] == "D"
    assert [m["list"] for m in shown["lists"]] == [TAX]


def test_a_person_known_only_by_a_record_that_waits_is_found_only_once_listed(catalogue):
    person = snapshot(PERSON, [archived("hrss.wage_arrears", record_id="W-1")])
    assert not domain.is_discoverable(catalogue, person, TODAY, set())
    assert domain.is_discoverable(catalogue, person, TODAY, {"hrss.wage_arrears"})
    assert not domain.is_discoverable(catalogue, person, TODAY, {"tax.major_violation"})
    # Stored with the snapshot, before the entries are known: the bound search narrows.
    assert domain.is_discoverable(catalogue, person, TODAY)


def test_the_public_grade_names_no_record_the_public_may_not_see(catalogue):
    """An internal item's record counts in the registry's grade, not in the public one,
    which names its records (today's catalogue has no internal item that grades: one is
    made for the test)."""
    items = dict(catalogue.items)
    items["amr.legal_representative"] = items["amr.legal_representative"].model_copy(
        update={"polarity": "negative", "severity": "serious"})
    internal = catalogue.model_copy(update={"items": items})
    record = archived("amr.legal_representative", record_id="L-1", public_until=None)
    now = snapshot(ENTERPRISE, [record])
    shown = domain.public_profile(internal, now, [], TODAY, now, [], TODAY)
    assert shown is not None
    assert shown["grade"]["grade"] == "B" and "L-1" not in str(shown)

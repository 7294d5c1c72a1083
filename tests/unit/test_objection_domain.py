"""services/objection/domain.py: deadlines, access tokens and what a department's decision
does to the record (DOMAIN.md, "Objections and repair handling", lines 58-69)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import pytest

from services.objection.domain import (
    COMPLAINT_DAYS,
    KnownRecord,
    Rate,
    awaits_correction,
    changes_on_decision,
    due_by,
    latest_known,
    new_access_token,
    parse_rate,
    rate_window,
    record_problems,
    requester_of,
    retry_after,
    subject_id_problems,
)
from shared.contract import SubjectRef
from shared.credentials import secret_hash, secret_matches
from tests.unit.factories import ENTERPRISE_ID, PERSON_ID, accepted, submission, uscc


def test_objection_is_due_20_days_after_receipt():
    """DOMAIN.md lines 60-61 (征信业管理条例 art. 25): answered within 20 days."""
    assert due_by(date(2026, 11, 28)) == date(2026, 12, 18)  # a Friday


@pytest.mark.parametrize(("received", "due"), [
    # The 20th day is a Sunday: the Monday after (CONTRACT.md, "Objections and repair").
    (date(2026, 11, 30), date(2026, 12, 21)),
    # In the Spring Festival holiday (2026-02-15 to 02-23): the first working day after.
    (date(2026, 1, 27), date(2026, 2, 24)),
    # On National Day (2026-10-01 to 10-07): the Thursday the 8th.
    (date(2026, 9, 11), date(2026, 10, 8)),
    # A 调休 Saturday is a working day: the deadline stays on it.
    (date(2026, 1, 25), date(2026, 2, 14)),
    # Past the published schedule, Monday to Friday: Saturday 2027-01-09 moves to Monday.
    (date(2026, 12, 20), date(2027, 1, 11)),
])
def test_a_20th_day_that_is_no_working_day_moves_to_the_next_one(received, due):
    assert due_by(received) == due


def test_complaint_is_due_30_days_after_receipt_rolled_to_a_working_day():
    """征信业管理条例 art. 26: complaints within 30 days."""
    assert due_by(date(2026, 11, 2), COMPLAINT_DAYS) == date(2026, 12, 2)
    assert due_by(date(2026, 9, 2), COMPLAINT_DAYS) == date(2026, 10, 8)


def test_access_tokens_are_unguessable_and_distinct():
    tokens = {new_access_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) >= 32 for t in tokens)


def test_a_follow_up_token_is_kept_as_the_one_secret_hash_and_matches_only_itself():
    token = new_access_token()
    stored = secret_hash(token)
    assert stored == hashlib.sha256(token.encode()).hexdigest() and token not in stored
    assert secret_matches(token, stored)
    assert not secret_matches(token + "x", stored)
    assert not secret_matches("", stored)
    assert not secret_matches(token, token)  # the raw token is not a valid stored hash


@pytest.mark.parametrize(("kind", "decision", "withdraw", "corrected", "changes", "awaits"), [
    # A rejected objection lifts the "under objection" flag (DOMAIN.md line 60).
    ("objection", "rejected", False, False, ["unflag"], False),
    ("objection", "rejected", True, False, ["unflag"], False),
    # An upheld objection withdraws the record, or lifts the flag with the corrected
    # revision; without it the flag stays until the department's next revision.
    ("objection", "upheld", True, False, ["withdraw"], False),
    ("objection", "upheld", False, True, ["unflag"], False),
    ("objection", "upheld", False, False, ["flag"], True),
    # A repair request never flags the record, so a refusal changes nothing.
    ("repair", "rejected", False, False, [], False),
    ("repair", "rejected", True, False, [], False),
    # An upheld repair stops display, sharing and the measures together (NDRC Order 36,
    # DOMAIN.md lines 48-49), whatever the withdraw flag says.
    ("repair", "upheld", False, False, ["repair"], False),
    ("repair", "upheld", True, False, ["repair"], False),
])
def test_changes_on_decision(kind, decision, withdraw, corrected, changes, awaits):
    assert changes_on_decision(kind, decision, withdraw, corrected) == changes
    assert awaits_correction(kind, decision, withdraw, corrected) is awaits


# --- which requests are taken (CONTRACT.md, "Objections and repair") ----------------------

OTHER_ENTERPRISE_ID = uscc("91440400MA4W8KXX1")


def _known(subject_type: str = "enterprise", subject_id: str = ENTERPRISE_ID,
           withdrawn: bool = False) -> KnownRecord:
    return KnownRecord(department="amr", record_id="R-1",
                       subject=SubjectRef(type=subject_type, id=subject_id), revision=3,
                       catalogue_item="amr.admin_penalty", withdrawn=withdrawn)


def _claim(subject_id: str = ENTERPRISE_ID, subject_type: str = "enterprise") -> SubjectRef:
    return SubjectRef(type=subject_type, id=subject_id)


def test_a_record_about_the_subject_named_is_taken():
    assert record_problems(_claim(), _known()) == []


def test_an_unknown_record_is_not_found():
    assert record_problems(_claim(), None) == [{
        "field": "record.record_id", "code": "record_not_found",
        "message": "no record with this id at this department"}]


def test_a_withdrawn_record_is_not_found():
    [problem] = record_problems(_claim(), _known(withdrawn=True))
    assert problem["code"] == "record_not_found"


def test_a_record_of_another_subject_is_a_mismatch_that_does_not_name_it():
    [problem] = record_problems(_claim(OTHER_ENTERPRISE_ID), _known())
    assert (problem["field"], problem["code"]) == ("subject.id", "record_subject_mismatch")
    assert ENTERPRISE_ID not in problem["message"]


def test_the_same_identifier_under_another_subject_type_is_a_mismatch():
    [problem] = record_problems(_claim(subject_type="institution"), _known())
    assert problem["code"] == "record_subject_mismatch"


def test_a_record_stored_before_identifiers_were_normalized_still_matches():
    assert record_problems(_claim(PERSON_ID[:-1] + "X", "individual"),
                           _known("individual", PERSON_ID[:-1] + "x")) == []


def test_the_subject_id_is_normalized_before_it_is_checked():
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in ENTERPRISE_ID)
    assert subject_id_problems("enterprise", full_width, date(2026, 11, 28),
                               frozenset()) == (ENTERPRISE_ID, [])
    assert subject_id_problems("individual", f" {PERSON_ID.lower()} ", date(2026, 11, 28),
                               frozenset()) == (PERSON_ID, [])


def test_a_subject_id_with_other_characters_is_refused_not_crashed():
    for raw in ("9144€", "91-44", "\x00", "９１４４／"):
        _, problems = subject_id_problems("enterprise", raw, date(2026, 11, 28),
                                          frozenset())
        assert [(p["field"], p["code"]) for p in problems] == [("subject.id", "alphabet")]


def test_a_normalized_subject_id_still_passes_its_standard():
    _, problems = subject_id_problems("enterprise", ENTERPRISE_ID[:-1], date(2026, 11, 28),
                                      frozenset())
    assert [p["code"] for p in problems] == ["length"]


def test_latest_known_keeps_the_highest_revision_of_each_record():
    rows = latest_known([
        accepted(submission(record_id="R-1", revision=2), "court"),
        accepted(submission(record_id="R-1", revision=1), "court"),
        accepted(submission(record_id="R-1", revision=3, action="withdraw"), "court"),
        accepted(submission(record_id="R-1", revision=1), "amr"),
    ])
    by_key = {(r.department, r.record_id): r for r in rows}
    assert len(rows) == 2
    assert by_key[("court", "R-1")].revision == 3 and by_key[("court", "R-1")].withdrawn
    assert by_key[("amr", "R-1")].revision == 1 and not by_key[("amr", "R-1")].withdrawn
    assert by_key[("amr", "R-1")].subject == SubjectRef(type="enterprise", id=ENTERPRISE_ID)


@pytest.mark.parametrize(("a", "b"), [
    ("138 0000 0000", "138-0000-0000"),
    ("13800000000", "１３８００００００００"),
    ("Li.Lei@Example.COM", "lilei@example.com"),
    ("王先生 13800000000", "王先生13800000000"),
])
def test_one_requester_however_the_contact_is_written(a, b):
    assert requester_of(a) == requester_of(b) is not None


def test_different_contacts_are_different_requesters_and_stored_hashed():
    first, second = requester_of("13800000000"), requester_of("13900000000")
    assert first != second
    assert first == hashlib.sha256(b"13800000000").hexdigest()


@pytest.mark.parametrize("contact", ["---", "a .b", "  ", "@@@@@"])
def test_a_contact_with_too_few_letters_or_digits_names_nobody(contact):
    assert requester_of(contact) is None


@pytest.mark.parametrize(("text", "rate"), [
    ("30/hour", Rate(30, 3600)), ("120/minute", Rate(120, 60)), (" 5 / days ", Rate(5, 86400)),
    ("1/second", Rate(1, 1)),
])
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize("text", ["", "30", "0/hour", "30/fortnight", "-1/hour", "x/hour"])
def test_parse_rate_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_fixed_windows_are_aligned_and_retry_after_counts_to_their_end():
    rate = Rate(10, 3600)
    at = datetime(2026, 11, 28, 9, 59, 30, 250000, tzinfo=UTC)
    start, end = rate_window(rate, at)
    assert (start, end) == (datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
                            datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    assert retry_after(at, end) == 30
    assert rate_window(rate, end) == (end, datetime(2026, 11, 28, 11, 0, tzinfo=UTC))
    assert retry_after(end, end) == 1  # never "0": the client must wait

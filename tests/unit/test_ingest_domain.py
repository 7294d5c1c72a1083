"""services/ingest/domain.py: parsing inbound messages, the envelope, catalogue and
identifier rules for a submission, and revision ordering (CONTRACT.md, "Departments ->
Xinyong" and "Xinyong -> departments")."""

from __future__ import annotations

import json
import random
from datetime import date
from typing import Any

import pytest

from services.ingest.domain import (
    Candidate,
    RecordsHeld,
    check_envelope,
    check_submission,
    corrected_revision,
    parse_message,
    revision_fate,
    verdicts,
)
from shared.contract import FieldError, RecordSubmission, SubjectRef
from shared.envelope import CloudEvent
from shared.topics import RECORD_SUBMITTED
from tests.unit.factories import (
    ENTERPRISE,
    ENTERPRISE_ID,
    INSTITUTION_ID,
    LEGACY_USCC,
    PERSON,
    SOCIAL_ORG_ID,
    default_attributes,
    other_check_char,
    resident_id,
    submission,
)

TODAY = date(2026, 11, 28)


def envelope(data: Any = None, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specversion": "1.0", "id": "ev-1", "source": "dept/court", "type": RECORD_SUBMITTED,
        "subject": ENTERPRISE.key, "time": "2026-11-28T09:00:00+08:00",
        "datacontenttype": "application/json",
        "data": data if data is not None else submission().model_dump(mode="json"),
    }
    doc.update(overrides)
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def fields_and_codes(errors) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in errors}


# --- parse_message ------------------------------------------------------------------------


def test_parse_message_reads_a_well_formed_submission():
    parsed = parse_message(encode(envelope()))
    assert parsed.errors == []
    assert not parsed.unparseable
    assert parsed.submission is not None
    assert parsed.submission.catalogue_item == "court.dishonest_debtor"
    assert (parsed.record_id, parsed.revision) == ("R-1", 1)


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe\x00", b"\x00\x01\x02", b"{not json",
                                 "{}".encode("utf-16")[:3], b"\x80abc"])
def test_parse_message_garbage_bytes_are_unparseable(raw):
    """CONTRACT.md lines 87-89: an unparseable message is rejected, not dropped."""
    parsed = parse_message(raw)
    assert parsed.unparseable
    assert fields_and_codes(parsed.errors) == {("message", "unparseable")}
    assert (parsed.record_id, parsed.revision) == (None, None)


def test_parse_message_never_raises_on_random_bytes():
    rng = random.Random(89)
    for _ in range(500):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        parsed = parse_message(raw)
        assert parsed.unparseable, raw


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000])
def test_parse_message_deeply_nested_json_is_unparseable(raw):
    """CONTRACT.md lines 87-89 and 171-173: every message gets a feedback; what cannot be
    parsed is rejected with a reason, never an error."""
    parsed = parse_message(raw)
    assert parsed.unparseable
    assert ("message", "unparseable") in fields_and_codes(parsed.errors)


@pytest.mark.parametrize("doc", [[], [envelope()], "text", 42, None, True])
def test_parse_message_non_object_json_is_unparseable(doc):
    parsed = parse_message(encode(doc))
    assert parsed.unparseable
    assert fields_and_codes(parsed.errors) == {("message", "unparseable")}


def test_parse_message_envelope_without_id_is_unparseable():
    doc = envelope()
    del doc["id"]
    parsed = parse_message(encode(doc))
    assert parsed.unparseable
    assert ("envelope.id", "required") in fields_and_codes(parsed.errors)
    assert ("message", "unparseable") in fields_and_codes(parsed.errors)


def test_parse_message_wrong_specversion_is_unparseable():
    parsed = parse_message(encode(envelope(specversion="0.3")))
    assert parsed.unparseable
    assert "envelope.specversion" in {e.field for e in parsed.errors}


def test_parse_message_data_without_record_id_names_the_field():
    data = submission().model_dump(mode="json")
    del data["record_id"]
    parsed = parse_message(encode(envelope(data)))
    assert not parsed.unparseable
    assert parsed.submission is None
    assert fields_and_codes(parsed.errors) == {("record_id", "required")}
    assert parsed.record_id is None
    assert parsed.revision == 1  # read leniently so that feedback names what it can


def test_parse_message_malformed_data_still_names_the_record():
    data = submission().model_dump(mode="json")
    data["action"] = "delete"
    parsed = parse_message(encode(envelope(data)))
    assert parsed.submission is None
    assert ("action", "not_allowed") in fields_and_codes(parsed.errors)
    assert (parsed.record_id, parsed.revision) == ("R-1", 1)


def test_parse_message_names_nested_fields():
    data = submission().model_dump(mode="json")
    data["subject"]["type"] = "company"
    del data["subject"]["id"]
    parsed = parse_message(encode(envelope(data)))
    assert fields_and_codes(parsed.errors) == {("subject.type", "not_allowed"),
                                               ("subject.id", "required")}


def test_parse_message_data_not_an_object():
    parsed = parse_message(encode(envelope(data=["x"])))
    assert not parsed.unparseable
    assert fields_and_codes(parsed.errors) == {("data", "required")}


def test_parse_message_missing_data():
    doc = envelope()
    del doc["data"]
    parsed = parse_message(encode(doc))
    assert fields_and_codes(parsed.errors) == {("data", "required")}


def test_parse_message_keeps_extra_fields():
    """CONTRACT.md line 7: field lists are the minimum (more fields may be added)."""
    data = submission().model_dump(mode="json") | {"department_ref": "X-9"}
    parsed = parse_message(encode(envelope(data)))
    assert parsed.errors == []
    assert parsed.submission is not None
    assert parsed.submission.model_extra == {"department_ref": "X-9"}


# --- check_envelope -----------------------------------------------------------------------


def event(**overrides: Any) -> CloudEvent:
    return CloudEvent.model_validate(envelope(**overrides))


def test_check_envelope_accepts_a_matching_event():
    assert check_envelope(event(), "court", submission()) == []


def test_check_envelope_wrong_type():
    errors = check_envelope(event(type="cn.zhuhai.credit.other.v1"), "court", submission())
    assert fields_and_codes(errors) == {("envelope.type", "not_allowed")}


@pytest.mark.parametrize("source", ["dept/tax", "court", "xinyong/ingest", "dept/court/x"])
def test_check_envelope_source_must_be_the_topics_department(source):
    """CONTRACT.md line 44: only that department may write to credit.inbound.<dept>."""
    errors = check_envelope(event(source=source), "court", submission())
    assert fields_and_codes(errors) == {("envelope.source", "wrong_department")}


def test_check_envelope_subject_mismatch():
    other = f"enterprise:{INSTITUTION_ID}"
    errors = check_envelope(event(subject=other), "court", submission())
    assert fields_and_codes(errors) == {("envelope.subject", "mismatch")}


def test_check_envelope_subject_may_be_absent():
    assert check_envelope(event(subject=None), "court", submission()) == []


def test_check_envelope_without_a_submission_checks_only_the_envelope():
    assert check_envelope(event(subject="anything"), "court", None) == []


# --- check_submission: identifiers --------------------------------------------------------


def test_valid_court_record_is_accepted(catalogue):
    assert check_submission(catalogue, "court", submission(), TODAY) == []


def test_valid_court_record_about_an_individual_is_accepted(catalogue):
    assert check_submission(catalogue, "court", submission(subject=PERSON), TODAY) == []


def test_bad_uscc_check_character_is_a_checksum_error(catalogue):
    subject = SubjectRef(type="enterprise", id=other_check_char(ENTERPRISE_ID, "0123456789"),
                         name="某公司")
    errors = check_submission(catalogue, "court", submission(subject=subject), TODAY)
    assert fields_and_codes(errors) == {("subject.id", "checksum")}


def test_bad_resident_id_check_character_is_a_checksum_error(catalogue):
    subject = SubjectRef(type="individual", id=other_check_char(PERSON.id, "0123456789X"),
                         name="张伟")
    errors = check_submission(catalogue, "court", submission(subject=subject), TODAY)
    assert fields_and_codes(errors) == {("subject.id", "checksum")}


def test_uscc_category_must_match_the_subject_type(catalogue):
    """DOMAIN.md lines 17-21: a 91 code is an enterprise, not an institution."""
    subject = SubjectRef(type="institution", id=ENTERPRISE_ID, name="某单位")
    errors = check_submission(catalogue, "court", submission(subject=subject), TODAY)
    assert fields_and_codes(errors) == {("subject.id", "category")}


@pytest.mark.parametrize(("subject_type", "code"),
                         [("institution", INSTITUTION_ID), ("social_org", SOCIAL_ORG_ID)])
def test_court_record_about_institutions_and_social_orgs(catalogue, subject_type, code):
    subject = SubjectRef(type=subject_type, id=code, name="某组织")
    assert check_submission(catalogue, "court", submission(subject=subject), TODAY) == []


def test_catalogues_legacy_code_is_accepted(catalogue):
    """DOMAIN.md lines 22-23: the documented legacy allow-list."""
    subject = SubjectRef(type="enterprise", id=LEGACY_USCC, name="某试点企业")
    assert check_submission(catalogue, "court", submission(subject=subject), TODAY) == []


# --- check_submission: catalogue ----------------------------------------------------------


def test_another_departments_item_is_rejected(catalogue):
    """CONTRACT.md lines 64-65: an item of another department is rejected."""
    errors = check_submission(catalogue, "tax", submission(), TODAY)
    assert fields_and_codes(errors) == {("catalogue_item", "wrong_department")}


def test_subject_type_not_allowed_for_the_item(catalogue):
    sub = submission("amr.admin_penalty", subject=PERSON)
    errors = check_submission(catalogue, "amr", sub, TODAY)
    assert fields_and_codes(errors) == {("subject.type", "not_allowed")}


def test_unknown_item_is_rejected(catalogue):
    errors = check_submission(catalogue, "court", submission("court.no_such_item"), TODAY)
    assert fields_and_codes(errors) == {("catalogue_item", "unknown_item")}


def test_future_decision_date_is_rejected(catalogue):
    errors = check_submission(catalogue, "court", submission(decided_on=date(2026, 11, 29)),
                              TODAY)
    assert fields_and_codes(errors) == {("decided_on", "future_date")}


def test_decision_dated_today_is_accepted(catalogue):
    assert check_submission(catalogue, "court", submission(decided_on=TODAY), TODAY) == []


@pytest.mark.parametrize("missing", ["catalogue_item", "decided_on", "district"])
def test_upsert_needs_item_date_and_district(catalogue, missing):
    errors = check_submission(catalogue, "court", submission(**{missing: None}), TODAY)
    assert fields_and_codes(errors) == {(missing, "required")}


def test_upsert_needs_the_subjects_name(catalogue):
    subject = SubjectRef(type="enterprise", id=ENTERPRISE_ID)
    errors = check_submission(catalogue, "court", submission(subject=subject), TODAY)
    assert fields_and_codes(errors) == {("subject.name", "required")}


# --- check_submission: place --------------------------------------------------------------


def test_unknown_district_is_rejected(catalogue):
    """DOMAIN.md lines 34-37: district is a Zhuhai GB/T 2260 code."""
    errors = check_submission(catalogue, "court", submission(district="440101"), TODAY)
    assert fields_and_codes(errors) == {("district", "unknown_district")}


def test_zone_name_in_the_district_field_is_rejected(catalogue):
    """DOMAIN.md lines 36-37: functional zones have no division code of their own."""
    errors = check_submission(catalogue, "court", submission(district="hengqin"), TODAY)
    assert fields_and_codes(errors) == {("district", "unknown_district")}


def test_retired_district_on_a_recent_decision_is_not_in_force(catalogue):
    """DOMAIN.md line 35: 440421 斗门县 was retired in 2001."""
    errors = check_submission(catalogue, "court", submission(district="440421"), TODAY)
    assert fields_and_codes(errors) == {("district", "not_in_force")}


def test_retired_district_on_a_decision_of_its_time_is_accepted(catalogue):
    sub = submission(district="440421", decided_on=date(1995, 6, 1))
    assert check_submission(catalogue, "court", sub, TODAY) == []


def test_district_created_in_2001_is_not_in_force_in_1995(catalogue):
    sub = submission(district="440403", decided_on=date(1995, 6, 1))
    errors = check_submission(catalogue, "court", sub, TODAY)
    assert fields_and_codes(errors) == {("district", "not_in_force")}


def test_known_zone_is_accepted(catalogue):
    assert check_submission(catalogue, "court", submission(zone="hengqin"), TODAY) == []


def test_unknown_zone_is_rejected(catalogue):
    errors = check_submission(catalogue, "court", submission(zone="moon"), TODAY)
    assert fields_and_codes(errors) == {("zone", "unknown_zone")}


# --- check_submission: minors -------------------------------------------------------------


def person_born(birth: date) -> SubjectRef:
    return SubjectRef(type="individual", id=resident_id(birth=birth), name="李明")


def test_minor_may_not_be_put_on_the_dishonest_debtor_list(catalogue):
    """DOMAIN.md lines 31-32 and 76-77 (法释〔2017〕7号): minors are not listed."""
    sub = submission(subject=person_born(date(2008, 6, 15)), decided_on=date(2026, 6, 14))
    errors = check_submission(catalogue, "court", sub, TODAY)
    assert fields_and_codes(errors) == {("subject.id", "minor")}


def test_person_exactly_18_on_the_decision_date_may_be_listed(catalogue):
    sub = submission(subject=person_born(date(2008, 6, 15)), decided_on=date(2026, 6, 15))
    assert check_submission(catalogue, "court", sub, TODAY) == []


def test_minimum_age_applies_only_to_items_that_have_one(catalogue):
    sub = submission("tax.major_violation", subject=person_born(date(2010, 1, 1)))
    assert check_submission(catalogue, "tax", sub, TODAY) == []


# --- check_submission: key persons --------------------------------------------------------


def legal_rep(attributes: dict[str, Any]) -> RecordSubmission:
    return submission("amr.legal_representative", attributes=attributes)


def test_legal_representative_record_with_a_valid_person_is_accepted(catalogue):
    sub = legal_rep({"legal_representative": {"id": PERSON.id, "name": "张伟"}})
    assert check_submission(catalogue, "amr", sub, TODAY) == []


@pytest.mark.parametrize("attributes", [
    {}, {"legal_representative": None}, {"legal_representative": "张伟"},
    {"legal_representative": {"name": "张伟"}}, {"legal_representative": {"id": 123}},
])
def test_legal_representative_record_needs_the_persons_id(catalogue, attributes):
    errors = check_submission(catalogue, "amr", legal_rep(attributes), TODAY)
    assert fields_and_codes(errors) == {("attributes.legal_representative.id", "required")}


def test_legal_representative_id_is_checked(catalogue):
    bad = other_check_char(PERSON.id, "0123456789X")
    sub = legal_rep({"legal_representative": {"id": bad, "name": "张伟"}})
    errors = check_submission(catalogue, "amr", sub, TODAY)
    assert fields_and_codes(errors) == {("attributes.legal_representative.id", "checksum")}


# --- check_submission: withdraw -----------------------------------------------------------


def withdraw(subject: SubjectRef = ENTERPRISE) -> RecordSubmission:
    return RecordSubmission.model_validate({
        "record_id": "R-1", "revision": 2, "action": "withdraw",
        "subject": {"type": subject.type, "id": subject.id}})


def test_withdraw_needs_only_record_id_revision_action_and_subject(catalogue):
    """CONTRACT.md line 68."""
    assert check_submission(catalogue, "court", withdraw(), TODAY) == []


def test_withdraw_parses_from_the_minimal_message():
    data = {"record_id": "R-1", "revision": 2, "action": "withdraw",
            "subject": {"type": "enterprise", "id": ENTERPRISE_ID}}
    parsed = parse_message(encode(envelope(data)))
    assert parsed.errors == []


def test_withdraw_still_checks_the_subject(catalogue):
    subject = SubjectRef(type="enterprise", id=other_check_char(ENTERPRISE_ID, "0123456789"))
    errors = check_submission(catalogue, "court", withdraw(subject), TODAY)
    assert fields_and_codes(errors) == {("subject.id", "checksum")}


# --- revisions ----------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "revision", "fate"), [
    (None, 1, "accepted"), (None, 7, "accepted"), (1, 2, "accepted"), (3, 10, "accepted"),
    (2, 2, "duplicate"), (3, 2, "stale"), (10, 1, "stale"),
])
def test_revision_fate(current, revision, fate):
    """CONTRACT.md lines 62-63: higher replaces, replayed or older changes nothing."""
    assert revision_fate(current, revision) == fate


def candidate(record_id: str, revision: int, *, event: str | None = None,
              department: str = "court", item: str = "court.dishonest_debtor",
              errors: list[FieldError] | None = None, **attributes: Any) -> Candidate:
    sub = submission(item, record_id=record_id, revision=revision,
                     attributes=attributes or default_attributes(item))
    return Candidate(department, sub, errors or [],
                     None if errors else (f"dept/{department}", event or f"{record_id}@{revision}"))


def fates(catalogue, candidates: list[Candidate], held: RecordsHeld | None = None,
          seen: set[tuple[str, str]] = frozenset()) -> list[tuple[str, list[tuple[str, str]]]]:
    fresh = {c.event for c in candidates if c.event is not None} - seen
    return [(v.status, [(e.field, e.code) for e in v.errors]) for v in verdicts(
        catalogue, candidates, fresh, held or RecordsHeld({}, set(), {}))]


def test_revisions_in_one_batch_move_the_latest_on(catalogue):
    """CONTRACT.md lines 62-63, in arrival order: an accepted revision is what the next one
    is compared with."""
    held = RecordsHeld({("court", "A"): 2}, set(), {})
    got = fates(catalogue, [
        candidate("A", 1), candidate("A", 2), candidate("A", 3), candidate("A", 3, event="x"),
        candidate("B", 2), candidate("B", 1), candidate("A", 1, department="tax",
                                                        item="tax.arrears"),
        candidate("A", 5)], held)
    assert [status for status, _ in got] == [
        "stale", "duplicate", "accepted", "duplicate", "accepted", "stale", "accepted",
        "accepted"]


def test_own_errors_come_first_and_claim_no_event(catalogue):
    error = FieldError(field="subject.id", code="checksum", message="m")
    bad = candidate("A", 1, errors=[error])
    assert fates(catalogue, [bad, candidate("A", 1)]) == [
        ("rejected", [("subject.id", "checksum")]), ("accepted", [])]


def test_an_event_seen_before_or_twice_in_a_batch_is_a_duplicate(catalogue):
    first, again = candidate("A", 1, event="e"), candidate("A", 2, event="e")
    assert [f for f, _ in fates(catalogue, [first, again])] == ["accepted", "duplicate"]
    assert [f for f, _ in fates(catalogue, [first], seen={("dept/court", "e")})] \
        == ["duplicate"]


def test_an_erased_record_is_refused_naming_record_id_whatever_its_revision(catalogue):
    held = RecordsHeld({}, {("court", "A")}, {})
    assert fates(catalogue, [candidate("A", 9), candidate("B", 1)], held) == [
        ("rejected", [("record_id", "erased")]), ("accepted", [])]


COMMITMENT = "industry.enterprise_commitment"
BREACH = {"on": "2026-06-01", "document_no": "（2026）1号"}


def test_a_signing_and_its_breach_in_one_batch_are_both_taken(catalogue):
    got = fates(catalogue, [
        candidate("C", 1, department="industry", item=COMMITMENT, commitment={}),
        candidate("C", 2, department="industry", item=COMMITMENT, commitment={},
                  breach=BREACH)])
    assert got == [("accepted", []), ("accepted", [])]


def test_a_breach_needs_a_signed_commitment_not_yet_breached(catalogue):
    breach = candidate("C", 2, department="industry", item=COMMITMENT, commitment={},
                       breach=BREACH)
    assert fates(catalogue, [breach]) == [
        ("rejected", [("attributes.breach", "unknown_commitment")])]
    breached = RecordsHeld({("industry", "C"): 1}, set(),
                           {("industry", "C"): ("upsert", "breached")})
    assert fates(catalogue, [breach], breached) == [
        ("rejected", [("attributes.breach", "already_breached")])]
    # A replay of the revision held is a duplicate, not judged against the state again.
    held = RecordsHeld({("industry", "C"): 2}, set(), {("industry", "C"): ("upsert", "breached")})
    assert fates(catalogue, [breach], held) == [("duplicate", [])]


def test_a_decision_without_a_correction_is_not_a_submission():
    decision = CloudEvent.model_validate(envelope({"objection_id": "o-1", "decision": "rejected",
                                                   "reason": "核实无误"}))
    assert corrected_revision(decision) is None


def test_the_correction_in_an_upheld_decision_is_read_as_a_submission():
    corrected = submission().model_dump(mode="json") | {"revision": 2}
    decision = CloudEvent.model_validate(envelope({
        "objection_id": "o-1", "decision": "upheld", "reason": "更正", "corrected": corrected}))
    parsed = corrected_revision(decision)
    assert parsed is not None and parsed.errors == []
    assert parsed.event is not None and parsed.event.id == decision.id + "/corrected"
    assert parsed.event.type == "cn.zhuhai.credit.record.submitted.v1"
    assert parsed.revision == 2

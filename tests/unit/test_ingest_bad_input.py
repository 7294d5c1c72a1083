"""services/ingest/domain.py on bad input: identifiers in their one form, strings PostgreSQL
cannot store (NUL, unpaired surrogates), bounds on attributes and unnamed fields, revisions
that fit an int column, CSV cells (issue 6, item 7; docs/decisions.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.ingest import domain
from services.ingest.domain import (
    ATTRIBUTES_MAX_BYTES,
    ATTRIBUTES_MAX_DEPTH,
    ATTRIBUTES_MAX_KEYS,
    DATA_MAX_BYTES,
    EXTRA_FIELDS_MAX,
    FIELD_MAX_BYTES,
    FIELD_MAX_DEPTH,
    check_data,
    check_envelope,
    check_key,
    normalize_identifiers,
    parse_http_record,
    parse_message,
    record_from_csv_row,
)
from shared.contract import REVISION_MAX
from shared.envelope import CloudEvent
from shared.topics import RECORD_SUBMITTED
from tests.unit.factories import ENTERPRISE, PERSON, submission


def data(**overrides: Any) -> dict[str, Any]:
    return submission().model_dump(mode="json") | overrides


def envelope(payload: Any, **overrides: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "ev-1", "source": "dept/court",
            "type": RECORD_SUBMITTED, "subject": ENTERPRISE.key,
            "datacontenttype": "application/json", "data": payload} | overrides


def encode(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def codes(errors: list[Any]) -> set[tuple[str, str]]:
    return {(e.field, e.code) for e in errors}


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep: {"a": {"a": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


# --- identifiers ------------------------------------------------------------------------


def test_full_width_and_lower_case_identifiers_are_read_in_their_one_form(catalogue):
    sub = submission(subject=ENTERPRISE.model_copy(update={"id": full_width(ENTERPRISE.id)}))
    normalized, errors = normalize_identifiers(catalogue, sub)
    assert errors == []
    assert normalized.subject.id == ENTERPRISE.id
    assert normalized.subject.key == ENTERPRISE.key
    assert normalized.subject.name == ENTERPRISE.name and normalized.record_id == "R-1"


def test_a_superscript_digit_is_read_as_its_digit(catalogue):
    person = PERSON.model_copy(update={"id": PERSON.id[:16] + "²" + PERSON.id[17:]})
    sub = submission("court.dishonest_debtor", subject=person)
    normalized, errors = normalize_identifiers(catalogue, sub)
    assert errors == []
    assert normalized.subject.id == PERSON.id[:16] + "2" + PERSON.id[17:]


@pytest.mark.parametrize("bad", ["91440400-MA4W8KXX0", "珠海", "9144 0400", "   ",
                                 "91440400\u200b"])
def test_an_identifier_with_no_ascii_form_is_an_error_naming_subject_id(catalogue, bad):
    sub = submission(subject=ENTERPRISE.model_copy(update={"id": bad}))
    _, errors = normalize_identifiers(catalogue, sub)
    assert codes(errors) == {("subject.id", "characters")}


def test_the_key_persons_identifier_is_normalized_too(catalogue):
    attributes = {"legal_representative": {"id": full_width(PERSON.id.lower()), "name": "张伟"},
                  "other": 1}
    sub = submission("amr.legal_representative", attributes=attributes)
    normalized, errors = normalize_identifiers(catalogue, sub)
    assert errors == []
    assert normalized.attributes == {"legal_representative": {"id": PERSON.id, "name": "张伟"},
                                     "other": 1}


def test_a_key_persons_identifier_with_no_ascii_form_names_its_field(catalogue):
    sub = submission("amr.legal_representative",
                     attributes={"legal_representative": {"id": "张伟", "name": "张伟"}})
    _, errors = normalize_identifiers(catalogue, sub)
    assert codes(errors) == {("attributes.legal_representative.id", "characters")}


def test_the_envelope_subject_is_compared_in_its_normalized_form():
    sub = submission()
    event = CloudEvent.model_validate(envelope(
        None, subject=f"enterprise:{full_width(ENTERPRISE.id.lower())}"))
    assert check_envelope(event, "court", sub) == []
    other = CloudEvent.model_validate(envelope(None, subject="enterprise:91440400MA4W8KXX01"))
    assert codes(check_envelope(other, "court", sub)) == {("envelope.subject", "mismatch")}


# --- NUL and unpaired surrogates --------------------------------------------------------


@pytest.mark.parametrize(("payload", "field"), [
    (data(summary="a\x00b"), "summary"),
    (data(subject={"type": "enterprise", "id": ENTERPRISE.id, "name": "珠\x00海"}),
     "subject.name"),
    (data(attributes={"list": ["ok", {"deep": "\x00"}]}), "attributes.list.1.deep"),
    (data(attributes={"k\x00ey": 1}), "attributes.k\\u0000ey"),
    (data(record_id="R\x00"), "record_id"),
    (data(extra_field="\x00"), "extra_field"),
])
def test_nul_in_any_string_of_the_data_is_rejected_naming_the_field(payload, field):
    parsed = parse_message(encode(envelope(payload)))
    assert not parsed.unparseable
    assert parsed.submission is None
    assert codes(parsed.errors) == {(field, "nul_character")}
    assert "\x00" not in (parsed.record_id or "")


def test_nul_in_the_envelope_makes_the_message_unparseable():
    parsed = parse_message(encode(envelope(data(), id="ev\x00")))
    assert parsed.unparseable
    assert codes(parsed.errors) == {("message", "unparseable"), ("envelope.id", "nul_character")}


def test_an_unpaired_surrogate_is_rejected_naming_the_field():
    raw = encode(envelope(data(summary="PLACEHOLDER"))).replace(b"PLACEHOLDER", b"\\ud800")
    parsed = parse_message(raw)
    assert codes(parsed.errors) == {("summary", "unpaired_surrogate")}


def test_nul_in_the_kafka_key_is_an_error_naming_the_key():
    assert codes(check_key("enterprise:\x00")) == {("key", "nul_character")}
    assert check_key("enterprise:91440400MA4W8KXX0X") == [] and check_key(None) == []


def test_at_most_a_few_text_errors_are_listed():
    parsed = parse_message(encode(envelope(data(attributes={f"k{i}": "\x00" for i in range(99)}))))
    assert 1 <= len(parsed.errors) <= domain.TEXT_ERRORS_MAX


# --- bounds -------------------------------------------------------------------------------


def test_attributes_within_every_bound_are_accepted():
    attributes = {"deep": nested(ATTRIBUTES_MAX_DEPTH - 1),
                  "keys": {f"k{i}": i for i in range(ATTRIBUTES_MAX_KEYS - 10)}}
    assert check_data(data(attributes=attributes)) == []


@pytest.mark.parametrize("depth", [ATTRIBUTES_MAX_DEPTH + 1, 200, 275, 900])
def test_attributes_nested_too_deep_are_rejected(depth):
    parsed = parse_message(encode(envelope(data(attributes=nested(depth)))))
    assert ("attributes", "too_deep") in codes(parsed.errors)
    assert parsed.submission is None


def test_attributes_with_too_many_keys_are_rejected():
    attributes = {"a": {f"k{i}": 0 for i in range(ATTRIBUTES_MAX_KEYS)}}
    assert codes(check_data(data(attributes=attributes))) == {("attributes", "too_many_keys")}


def test_attributes_too_large_are_rejected():
    attributes = {"text": "字" * (ATTRIBUTES_MAX_BYTES // 3)}
    assert codes(check_data(data(attributes=attributes))) == {("attributes", "too_large")}


def test_a_huge_array_is_measured_without_walking_it_whole():
    errors = check_data(data(attributes={"list": [0] * 5_000_000}))
    assert codes(errors) == {("attributes", "too_large"), ("data", "too_large")}


def test_unnamed_fields_are_bounded_in_number_size_and_depth():
    many = data(**{f"x{i}": 1 for i in range(EXTRA_FIELDS_MAX + 1)})
    assert codes(check_data(many)) == {("data", "too_many_fields")}
    assert codes(check_data(data(note="x" * FIELD_MAX_BYTES))) == {("note", "too_large")}
    assert codes(check_data(data(note=nested(FIELD_MAX_DEPTH + 1)))) == {("note", "too_deep")}
    subject = {"type": "enterprise", "id": ENTERPRISE.id, "name": "x", "extra": nested(50)}
    assert codes(check_data(data(subject=subject))) == {("subject.extra", "too_deep")}
    assert check_data(data(note={"a": [1, 2]}, ref="X-9")) == []


def test_a_submission_too_large_as_a_whole_is_rejected():
    payload = data(summary="字" * 4000, document_no="x" * 200,
                   **{f"x{i}": "y" * (FIELD_MAX_BYTES - 20) for i in range(EXTRA_FIELDS_MAX)},
                   attributes={"t": "z" * (ATTRIBUTES_MAX_BYTES - 100)})
    assert len(encode(payload)) < DATA_MAX_BYTES  # every part within its own bound ...
    payload["catalogue_item"] = "c" * DATA_MAX_BYTES  # ... but one named field is huge
    assert ("data", "too_large") in codes(check_data(payload))


def test_envelope_attributes_are_bounded():
    parsed = parse_message(encode(envelope(data(), ext=nested(FIELD_MAX_DEPTH + 1))))
    assert parsed.unparseable
    assert ("envelope.ext", "too_deep") in codes(parsed.errors)
    long_source = parse_message(encode(envelope(data(), source="d" * FIELD_MAX_BYTES)))
    assert ("envelope.source", "too_large") in codes(long_source.errors)


@pytest.mark.parametrize("revision", [REVISION_MAX + 1, 2**63, 10**30])
def test_a_revision_over_the_int_column_is_rejected(revision):
    parsed = parse_message(encode(envelope(data(revision=revision))))
    assert codes(parsed.errors) == {("revision", "less_than_equal")}
    assert parsed.revision is None  # not repeated where an int column would refuse it


def test_the_largest_revision_is_accepted():
    parsed = parse_message(encode(envelope(data(revision=REVISION_MAX))))
    assert parsed.errors == [] and parsed.revision == REVISION_MAX


def test_an_integer_past_pythons_digit_limit_is_unparseable():
    raw = encode(envelope(data())).replace(b'"revision": 1', b'"revision": ' + b"9" * 5000)
    parsed = parse_message(raw)
    assert parsed.unparseable and ("message", "unparseable") in codes(parsed.errors)


def test_error_messages_do_not_repeat_huge_values(catalogue):
    sub = submission(catalogue_item="x" * 50_000)
    errors = domain.check_submission(catalogue, "court", sub, domain.date(2026, 11, 28))
    assert errors and all(len(e.message) <= domain.MESSAGE_MAX_CHARS for e in errors)


# --- over HTTP ----------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "field", "code"), [
    (data(summary="\x00"), "summary", "nul_character"),
    (data(attributes=nested(900)), "attributes", "too_deep"),
    (data(summary="\ud800"), "summary", "unpaired_surrogate"),
])
def test_an_http_record_that_cannot_be_enveloped_is_answered_with_its_errors(payload, field,
                                                                               code):
    parsed = parse_http_record("court", payload, "http-1")
    assert parsed.event is not None and parsed.event.id == "http-1"
    assert (field, code) in codes(parsed.errors)
    assert parsed.record_id == "R-1"


@pytest.mark.parametrize("payload", [[], "text", 5, None, [[[[[]]]]]])
def test_an_http_record_that_is_not_an_object(payload):
    parsed = parse_http_record("court", payload, "http-1")
    assert codes(parsed.errors) == {("data", "required")}


# --- CSV ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "code"), [
    ("²", "int_parsing"), ("１", "int_parsing"), ("-1", "int_parsing"),
    (str(REVISION_MAX + 1), "less_than_equal"), ("9" * 5000, "less_than_equal"),
])
def test_csv_revision_cells(cell, code):
    _, errors = record_from_csv_row({"revision": cell})
    assert codes(errors) == {("revision", code)}


def test_csv_revision_at_the_bound_is_read():
    row, errors = record_from_csv_row({"revision": str(REVISION_MAX)})
    assert errors == [] and row["revision"] == REVISION_MAX


def test_csv_attributes_nested_past_the_parser_are_a_cell_error():
    _, errors = record_from_csv_row({"attributes": "[" * 100_000})
    assert codes(errors) == {("attributes", "json")}


def test_csv_subject_given_twice_is_a_cell_error():
    _, errors = record_from_csv_row({"subject": "enterprise", "subject.id": ENTERPRISE.id})
    assert codes(errors) == {("subject", "ambiguous")}

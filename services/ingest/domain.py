"""Ingest rules: is a department's submission well-formed, allowed by the catalogue, about a
valid subject, and how does it stand against what was accepted before. Pure functions.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
from pydantic import ValidationError

from shared import commitments, disclosure
from shared.catalogue import Catalogue, CatalogueItem
from shared.contract import (
    REVISION_MAX,
    FeedbackStatus,
    FieldError,
    RecordSubmission,
    SubjectRef,
    subject_key,
)
from shared.envelope import AnyEvent, CloudEvent, submission_json
from shared.identifiers import (
    age_on,
    check_resident_id,
    check_uscc,
    normalize_identifier,
    parse_birth_date,
)
from shared.messages import InboundMessage, caused_id
from shared.topics import RECORD_SUBMITTED

# Pydantic's error types, renamed to the codes departments see in their feedback.
_PYDANTIC_CODES = {"missing": "required", "extra_forbidden": "unknown_field",
                   "literal_error": "not_allowed", "string_too_short": "required"}

# --- what a department may send, at most ----------------------------------------------------
# The free-form parts of a submission (`attributes`, and fields the contract does not name:
# CONTRACT.md lets producers add fields) are bounded, so that whatever ingest accepts every
# later step can hold: the registry's snapshots, PostgreSQL jsonb, and the broker (an accepted
# event stays far below `max_event_bytes`). Sizes are of the value as compact UTF-8 JSON;
# depth counts objects and arrays (`{"a": {"b": 1}}` is 2). docs/decisions.md.
DATA_MAX_BYTES = 64 * 1024          # a submission's `data` as a whole
ATTRIBUTES_MAX_BYTES = 16 * 1024
ATTRIBUTES_MAX_DEPTH = 8
ATTRIBUTES_MAX_KEYS = 256           # object keys at every level of `attributes`, together
EXTRA_FIELDS_MAX = 16               # unnamed fields in one object (data, subject, envelope)
FIELD_MAX_BYTES = 2 * 1024          # one unnamed field, or one envelope attribute
FIELD_MAX_DEPTH = 4                 # any field but `attributes`
TEXT_ERRORS_MAX = 5                 # NUL and surrogate errors listed for one message
# What feedback repeats of a field name or a message, at most.
FIELD_NAME_MAX_CHARS = 200
MESSAGE_MAX_CHARS = 500
LENIENT_ID_MAX_CHARS = 200
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # a PostgreSQL int (the audit's revision column)

# A run of 20 digits anywhere (`_has_long_number`): every digit read as 0, then a plain
# substring search; a regex (`[0-9]{20}`) tried every digit as a start, 5-9 µs a message.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 20
# Rejections that say the record is (or would be) erased: their audit line keeps no subject.
RETENTION_EXPIRED = "retention_expired"
ERASED = "erased"
ERASURE_CODES = frozenset({RETENTION_EXPIRED, ERASED})

_SUBMISSION_FIELDS = frozenset(RecordSubmission.model_fields)
_SUBJECT_FIELDS = frozenset(SubjectRef.model_fields)
_ENVELOPE_FIELDS = frozenset(CloudEvent.model_fields)


def feedback_id(message: InboundMessage | None) -> str | None:
    """The feedback's event id. Over Kafka, a function of the delivery (topic id, partition,
    offset): read again after a restore or a replay, it gets the same feedback id, so a
    department de-duplicates it, while each delivery of the same event (a department's
    resend is a new offset) still gets its own. Over HTTP nothing is replayed, and a
    retried request (same Idempotency-Key, so the same event id) is another delivery that
    must get a feedback of its own: a fresh id (None)."""
    if message is None:
        return None
    return caused_id("xinyong/ingest", "feedback", message.delivery)


def accepted_id(department: str, record_id: str, revision: int) -> str:
    """An accepted record's event id: a revision of a record is accepted once, ever."""
    return caused_id("xinyong/ingest", "accepted", department, record_id, revision)


@dataclass(frozen=True)
class ParsedSubmission:
    """What could be read from one inbound message; `errors` empty means well-formed."""

    event: AnyEvent | None = None
    submission: RecordSubmission | None = None
    errors: list[FieldError] = field(default_factory=list)
    # Read leniently from the raw JSON so that feedback can name the record even when the
    # submission is malformed.
    record_id: str | None = None
    revision: int | None = None

    @property
    def unparseable(self) -> bool:
        return self.event is None


def err(field_name: str, code: str, message: str) -> FieldError:
    return FieldError(field=field_name[:FIELD_NAME_MAX_CHARS], code=code,
                      message=message[:MESSAGE_MAX_CHARS])


def _pydantic_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    return [err(prefix + ".".join(str(p) for p in e["loc"]) or prefix.rstrip(".") or "data",
                _PYDANTIC_CODES.get(e["type"], e["type"]), e["msg"])
            for e in exc.errors()]


# --- reading a message ----------------------------------------------------------------------


def parse_message(raw: bytes) -> ParsedSubmission:
    event, errors = read_envelope(raw)
    if event is None:
        return ParsedSubmission(errors=errors)
    return parse_data(event, event.data)


def read_envelope(raw: bytes) -> tuple[AnyEvent | None, list[FieldError]]:
    """The CloudEvent around a message, its `data` unread; None and why when there is none
    that can be trusted (then the message is unparseable: CONTRACT.md)."""
    try:
        # orjson reads strict JSON in a fraction of the time; what it refuses (NaN, an
        # unpaired surrogate escape, infinity, deep nesting, invalid UTF-8, a BOM) is read
        # again by the standard library, whose verdict stands, and so is a number of 20
        # digits or more, which orjson would read as a float past 2**64: the same documents
        # parse, and to the same values, with or without it.
        if has_long_number(raw):
            raise orjson.JSONDecodeError("long number", "", 0)
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            doc = json.loads(raw)
        except ValueError as exc:  # not UTF-8, not JSON, or an integer past Python's limit
            return None, [err("message", "unparseable", f"not JSON: {exc}")]
        except RecursionError:
            return None, [err("message", "unparseable", "JSON nested too deeply")]
    if not isinstance(doc, dict):
        return None, [err("message", "unparseable", "not a JSON object")]
    problems = _envelope_problems(doc)
    if problems:
        return None, [err("message", "unparseable", "the envelope cannot be read"), *problems]
    try:
        return CloudEvent.model_validate(doc), []
    except ValidationError as exc:
        return None, [err("message", "unparseable", "not a CloudEvent"),
                      *_pydantic_errors(exc, "envelope.")]


def has_long_number(raw: bytes) -> bool:
    """20 digits in a row somewhere in the message (a number orjson would not read as the
    integer it is, or digits inside a string: either way the standard library reads it)."""
    return _LONG_RUN in raw.translate(_DIGITS_AS_ZERO)


def parse_data(event: AnyEvent, data: Any, prefix: str = "") -> ParsedSubmission:
    """A submission's data, checked for what may be stored and its bounds before it is read
    (fields named with `prefix`, e.g. `corrected.` inside an objection decision)."""
    record_id, revision = lenient_ids(data)
    if not isinstance(data, dict):
        return ParsedSubmission(event, None,
                                [err(prefix.rstrip(".") or "data", "required",
                                     "data must be an object")], record_id, revision)
    problems = check_data(data, prefix)
    if problems:
        return ParsedSubmission(event, None, problems, record_id, revision)
    try:
        submission = RecordSubmission.model_validate(data)
    except ValidationError as exc:
        return ParsedSubmission(event, None, _pydantic_errors(exc, prefix), record_id, revision)
    return ParsedSubmission(event, submission, [], submission.record_id, submission.revision)


def lenient_ids(data: Any) -> tuple[str | None, int | None]:
    """`record_id` and `revision` as far as feedback and the audit trail can repeat them."""
    if not isinstance(data, dict):
        return None, None
    record_id, revision = data.get("record_id"), data.get("revision")
    return (record_id if isinstance(record_id, str) and _storable(record_id)
            and len(record_id) <= LENIENT_ID_MAX_CHARS else None,
            revision if type(revision) is int and _INT_MIN <= revision <= _INT_MAX else None)


def corrected_revision(decision: AnyEvent) -> ParsedSubmission | None:
    """The corrected record an upheld objection decision may carry (CONTRACT.md), as a
    submission of its own: event id `<decision id>/corrected`."""
    data = decision.data if isinstance(decision.data, dict) else {}
    corrected = data.get("corrected")
    if not isinstance(corrected, dict):
        return None
    event = decision.model_copy(update={"id": f"{decision.id}/corrected",
                                        "type": RECORD_SUBMITTED, "data": corrected})
    return parse_data(event, corrected, "corrected.")


def check_key(key: str | None) -> list[FieldError]:
    """The Kafka key ends up in text columns and as the feedback's key."""
    if key is not None and "\x00" in key:
        return [err("key", "nul_character", "the message key holds a NUL character (0x00)")]
    return []


# --- bounds and storable text -------------------------------------------------------------


def check_data(data: dict[str, Any], prefix: str = "") -> list[FieldError]:
    """Before a submission's data is read: every string storable as PostgreSQL text and
    strict JSON (no NUL, no unpaired surrogate), and the bounds above."""
    text: list[FieldError] = []
    bounds: list[FieldError] = []
    total = 2
    _too_many_fields(data, _SUBMISSION_FIELDS, prefix.rstrip(".") or "data", bounds)
    for name, value in data.items():
        path = prefix + _label(name)
        total += _text_size(name, path, text)
        if name == "subject" and isinstance(value, dict):
            _too_many_fields(value, _SUBJECT_FIELDS, path, bounds)
            for sub_name, sub_value in value.items():
                sub_path = f"{path}.{_label(sub_name)}"
                total += _text_size(sub_name, sub_path, text) + _bounded_field(
                    sub_path, sub_value, sub_name not in _SUBJECT_FIELDS, text, bounds)
        elif name == "attributes":
            shape = _walk(value, path, ATTRIBUTES_MAX_BYTES, text)
            total += shape.size
            bounds += _over(path, shape, ATTRIBUTES_MAX_BYTES, ATTRIBUTES_MAX_DEPTH,
                            ATTRIBUTES_MAX_KEYS)
        else:
            total += _bounded_field(path, value, name not in _SUBMISSION_FIELDS, text, bounds)
        if total > DATA_MAX_BYTES:
            break
    if total > DATA_MAX_BYTES:
        bounds.append(err(prefix.rstrip(".") or "data", "too_large",
                          f"a submission may take at most {DATA_MAX_BYTES} bytes as JSON"))
    # Text errors first: no later step may see such a string, even in an error message.
    return text + bounds


def _envelope_problems(doc: dict[str, Any]) -> list[FieldError]:
    text: list[FieldError] = []
    bounds: list[FieldError] = []
    _too_many_fields(doc, _ENVELOPE_FIELDS, "envelope", bounds)  # `data` is a named one
    for name, value in doc.items():
        if name == "data":
            continue
        path = "envelope." + _label(name)
        _text_size(name, path, text)
        _bounded_field(path, value, True, text, bounds)
    return text + bounds


def _too_many_fields(obj: dict[str, Any], named: frozenset[str], path: str,
                     bounds: list[FieldError]) -> None:
    extra = len(obj.keys() - named)
    if extra > EXTRA_FIELDS_MAX:
        bounds.append(err(path, "too_many_fields",
                          f"{extra} fields the contract does not name; at most "
                          f"{EXTRA_FIELDS_MAX}"))


def _bounded_field(path: str, value: Any, unnamed: bool, text: list[FieldError],
                   bounds: list[FieldError]) -> int:
    """Checks one field (an unnamed one within FIELD_MAX_BYTES); returns its size."""
    max_bytes = FIELD_MAX_BYTES if unnamed else DATA_MAX_BYTES
    if type(value) is str:
        # Most fields are strings: measured as `_walk` would (no depth, no keys), without
        # its stack and shape (every field of every submission passes here).
        size = _text_size(value, path, text)
        if size > max_bytes:
            bounds += _over(path, _Shape(size=size), max_bytes, FIELD_MAX_DEPTH, None)
        return size
    shape = _walk(value, path, max_bytes, text)
    bounds += _over(path, shape, max_bytes, FIELD_MAX_DEPTH, None)
    return shape.size


def _over(path: str, shape: _Shape, max_bytes: int, max_depth: int,
          max_keys: int | None) -> list[FieldError]:
    errors = []
    if shape.size > max_bytes:
        errors.append(err(path, "too_large", f"at most {max_bytes} bytes as JSON"))
    if shape.depth > max_depth:
        errors.append(err(path, "too_deep", f"nested {shape.depth} deep or more; at most "
                                            f"{max_depth}"))
    if max_keys is not None and shape.keys > max_keys:
        errors.append(err(path, "too_many_keys", f"{shape.keys} keys or more; at most "
                                                 f"{max_keys}"))
    return errors


@dataclass
class _Shape:
    depth: int = 0
    keys: int = 0
    size: int = 0


def _walk(value: Any, path: str, max_bytes: int, text: list[FieldError]) -> _Shape:
    """Depth, object keys and JSON size of a value, without recursion (any depth is safe to
    measure); stops counting once past `max_bytes` (so nothing huge is walked whole).
    Strings that cannot be stored are added to `text`."""
    shape = _Shape()
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        v, p, depth = stack.pop()
        if isinstance(v, dict):
            shape.depth, shape.keys = max(shape.depth, depth), shape.keys + len(v)
            shape.size += 1 + 2 * len(v)  # braces, colons and commas
            if shape.size > max_bytes:
                break
            for k, item in v.items():
                child = f"{p}.{_label(k)}"
                shape.size += _text_size(k, child, text)
                stack.append((item, child, depth + 1))
        elif isinstance(v, list):
            shape.depth = max(shape.depth, depth)
            shape.size += 1 + len(v)
            if shape.size > max_bytes:
                break
            stack.extend((item, f"{p}.{i}", depth + 1) for i, item in enumerate(v))
        elif isinstance(v, str):
            shape.size += _text_size(v, p, text)
        else:  # a number, true, false or null: JSON's own spelling is about as long
            shape.size += len(str(v))
        if shape.size > max_bytes:
            break
    return shape


def _text_size(text: str, path: str, errors: list[FieldError]) -> int:
    """The UTF-8 JSON size of a string; adds an error when PostgreSQL text or strict JSON
    cannot hold it."""
    if "\x00" in text and len(errors) < TEXT_ERRORS_MAX:
        errors.append(err(path, "nul_character",
                          "holds a NUL character (0x00), which cannot be stored"))
    try:
        return len(text.encode()) + 2
    except UnicodeEncodeError:
        if len(errors) < TEXT_ERRORS_MAX:
            errors.append(err(path, "unpaired_surrogate",
                              "holds an unpaired UTF-16 surrogate (a lone \\uD800-\\uDFFF "
                              "escape), which is not text"))
        return len(text) + 2


def _storable(text: str) -> bool:
    errors: list[FieldError] = []
    _text_size(text, "", errors)
    return not errors


def _label(name: str) -> str:
    """A key as it can be shown in a field path."""
    if len(name) <= 64 and name.isascii() and "\x00" not in name:
        return name  # the usual case, shown as it is
    return (name[:64].encode("utf-8", "backslashreplace").decode("utf-8")
            .replace("\x00", "\\u0000"))


# --- the record's rules ---------------------------------------------------------------------


def check_envelope(event: AnyEvent, department: str,
                   submission: RecordSubmission | None,
                   source: str | None = None) -> list[FieldError]:
    """`source`: the topic's writer when it is not the department itself (a subject's own
    commitment, passed on by the publisher)."""
    errors = []
    source = source or f"dept/{department}"
    if event.type != RECORD_SUBMITTED:
        errors.append(err("envelope.type", "not_allowed", f"expected {RECORD_SUBMITTED}"))
    if event.source != source:
        errors.append(err("envelope.source", "wrong_department",
                          f"this topic takes events from {source}, not {event.source}"))
    if (submission is not None and event.subject is not None
            and _normalized_key(event.subject) != submission.subject.key):
        errors.append(err("envelope.subject", "mismatch",
                          f"envelope subject {event.subject} is not {submission.subject.key}"))
    return errors


def _normalized_key(key: str) -> str:
    subject_type, colon, identifier = key.partition(":")
    normalized = normalize_identifier(identifier) if colon else None
    return subject_key(subject_type, normalized) if normalized else key


def normalize_identifiers(catalogue: Catalogue, sub: RecordSubmission
                          ) -> tuple[RecordSubmission, list[FieldError]]:
    """The submission with its subject's identifier, and its key person's
    (`attributes.<role>.id`), in the one form every check and key uses
    (shared.identifiers.normalize_identifier: full-width read as ASCII, upper case); an
    identifier that has no such form is an error naming its field."""
    errors = []
    subject_id = normalize_identifier(sub.subject.id)
    if subject_id is None:
        errors.append(_refused_identifier("subject.id", sub.subject.id))
    attributes = sub.attributes
    item = catalogue.items.get(sub.catalogue_item or "")
    role = item.key_person_role if item is not None else None
    person = attributes.get(role) if role is not None else None
    if role is not None and isinstance(person, dict) and isinstance(person.get("id"), str):
        person_id = normalize_identifier(person["id"])
        if person_id is None:
            errors.append(_refused_identifier(f"attributes.{role}.id", person["id"]))
        elif person_id != person["id"]:
            attributes = {**attributes, role: {**person, "id": person_id}}
    if errors or subject_id is None:
        return sub, errors
    if subject_id == sub.subject.id and attributes is sub.attributes:
        return sub, []  # already in the one form (the usual case): nothing to copy
    return sub.model_copy(update={"subject": sub.subject.model_copy(update={"id": subject_id}),
                                  "attributes": attributes}), []


def _refused_identifier(field_name: str, raw: str) -> FieldError:
    folded = unicodedata.normalize("NFKC", raw).strip()
    found = sorted({ch for ch in folded if not (ch.isascii() and ch.isalnum())})
    shown = ", ".join(f"U+{ord(ch):04X}" for ch in found[:5]) or "nothing"
    return err(field_name, "characters",
               f"an identifier holds only letters and digits (full-width ones are read as "
               f"ASCII); found {shown}")


def check_submission(catalogue: Catalogue, department: str, sub: RecordSubmission,
                     today: date) -> list[FieldError]:
    """The catalogue and identifier rules for one well-formed submission."""
    errors = check_subject(catalogue, sub.subject, today)
    if sub.action == "withdraw":
        return errors
    for name in ("catalogue_item", "decided_on", "district"):
        if getattr(sub, name) is None:
            errors.append(err(name, "required", f"{name} is required for an upsert"))
    if not sub.subject.name:
        errors.append(err("subject.name", "required", "subject.name is required for an upsert"))
    if sub.decided_on is not None and sub.decided_on > today:
        errors.append(err("decided_on", "future_date", f"{sub.decided_on} is after {today}"))
    errors += check_place(catalogue, sub)
    errors += check_notification_fields(sub, today)
    item = catalogue.items.get(sub.catalogue_item or "")
    if sub.catalogue_item is not None and item is None:
        errors.append(err("catalogue_item", "unknown_item",
                          f"{sub.catalogue_item} is not in the catalogue"))
    if item is not None:
        errors += check_item(item, department, sub, today)
        errors += check_lifecycle(catalogue, sub, today)
    return errors


def check_lifecycle(catalogue: Catalogue, sub: RecordSubmission,
                    today: date) -> list[FieldError]:
    """The end of the act (not before the decision, not in the future), what the item's
    disclosure regime needs in `attributes` (a market regulation penalty's class, a listing's
    extension: shared/disclosure.py), and a person's negative information already past its
    erasure date (征信业管理条例 art. 16), which is not taken in at all."""
    assert sub.catalogue_item is not None
    errors = [err(*p) for p in disclosure.act_ended_problems(sub.decided_on, sub.act_ended_on,
                                                              today)]
    errors += [err(*p) for p in disclosure.attribute_problems(catalogue, sub.catalogue_item,
                                                               sub.attributes)]
    errors += [err(*p) for p in commitments.submission_problems(
        catalogue, sub.catalogue_item, sub.decided_on, sub.attributes, today)]
    ended = sub.act_ended_on or sub.decided_on
    if ended is not None and not errors:
        purge_on = disclosure.purge_on(catalogue, sub.subject.type, sub.catalogue_item, ended,
                                       sub.attributes)
        if purge_on is not None and purge_on <= today:
            errors.append(err("act_ended_on" if sub.act_ended_on else "decided_on",
                              RETENTION_EXPIRED,
                              f"a person's negative information is erased 5 years after the "
                              f"act ended (征信业管理条例 art. 16): this one on {purge_on}"))
    return errors


def check_subject(catalogue: Catalogue, subject: SubjectRef, today: date) -> list[FieldError]:
    if subject.type == "individual":
        problems = check_resident_id(subject.id, today)
    else:
        problems = check_uscc(subject.id, subject.type, catalogue.legacy_uscc)
    return [err("subject.id", p.code, p.message) for p in problems]


def check_notification_fields(sub: RecordSubmission, today: date) -> list[FieldError]:
    """What telling the subject before listing rests on: the internal `contact` (text a
    sender can hand over), and `attributes.served_on`, the day the decision was served
    (国家税务总局令第54号: published the month after), a date between the decision and today."""
    errors = []
    if sub.contact is not None and any(unicodedata.category(ch) == "Cc" for ch in sub.contact):
        errors.append(err("contact", "control_character",
                          "a contact holds no control characters"))
    elif sub.contact is not None and len(sub.contact.strip()) < 3:
        errors.append(err("contact", "too_short", "a phone number or an e-mail address"))
    raw = sub.attributes.get("served_on")
    if raw is None:
        return errors
    try:
        served = date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
    except ValueError:
        served = None
    if served is None:
        errors.append(err("attributes.served_on", "date", "a date as YYYY-MM-DD"))
    elif sub.decided_on is not None and served < sub.decided_on:
        errors.append(err("attributes.served_on", "before_decision",
                          f"{served} is before the decision ({sub.decided_on})"))
    elif served > today:
        errors.append(err("attributes.served_on", "future_date", f"{served} is after {today}"))
    return errors


def check_place(catalogue: Catalogue, sub: RecordSubmission) -> list[FieldError]:
    errors = []
    if sub.district is not None:
        district = catalogue.districts.get(sub.district)
        if district is None:
            errors.append(err("district", "unknown_district",
                              f"{sub.district} is not a Zhuhai division code (GB/T 2260); "
                              "functional zones go in `zone`"))
        elif sub.decided_on is not None and not district.in_force_on(sub.decided_on):
            errors.append(err("district", "not_in_force",
                              f"{sub.district} ({district.name}) was not in force on "
                              f"{sub.decided_on}"))
    if sub.zone is not None and sub.zone not in catalogue.zones:
        errors.append(err("zone", "unknown_zone",
                          f"{sub.zone} is not one of {', '.join(catalogue.zones)}"))
    return errors


def check_item(item: CatalogueItem, department: str, sub: RecordSubmission,
               today: date) -> list[FieldError]:
    errors = []
    if item.department != department:
        errors.append(err("catalogue_item", "wrong_department",
                          f"{sub.catalogue_item} belongs to {item.department}, not {department}"))
    if sub.subject.type not in item.subject_types:
        errors.append(err("subject.type", "not_allowed",
                          f"{sub.catalogue_item} is not recorded about {sub.subject.type}"))
    if item.minimum_age is not None and sub.subject.type == "individual" and sub.decided_on:
        birth = parse_birth_date(sub.subject.id)
        if birth is not None and age_on(birth, sub.decided_on) < item.minimum_age:
            errors.append(err("subject.id", "minor",
                              f"under {item.minimum_age} on {sub.decided_on}: "
                              f"{sub.catalogue_item} may not be recorded"))
    if item.key_person_role is not None:
        errors += check_key_person(item.key_person_role, sub.attributes, today)
    return errors


def check_key_person(role: str, attributes: dict[str, Any], today: date) -> list[FieldError]:
    person = attributes.get(role)
    path = f"attributes.{role}"
    if not isinstance(person, dict) or not isinstance(person.get("id"), str):
        return [err(f"{path}.id", "required", f"{path} needs the person's identity number")]
    return [err(f"{path}.id", p.code, p.message)
            for p in check_resident_id(person["id"], today)]


# --- ordering revisions --------------------------------------------------------------


def revision_fate(current: int | None, revision: int) -> FeedbackStatus:
    """A higher revision replaces a lower one; a replayed one is a duplicate; an older one is
    stale and changes nothing (CONTRACT.md)."""
    if current is None or revision > current:
        return "accepted"
    return "duplicate" if revision == current else "stale"


RecordKey = tuple[str, str]  # (department, record_id)
EventKey = tuple[str, str]   # (the writer, the event id), as the inbox holds it


@dataclass(frozen=True)
class Candidate:
    """A submission as the verdict sees it: its errors so far, and the event key it claims
    (None when it has errors)."""

    department: str
    submission: RecordSubmission | None
    errors: list[FieldError]
    event: EventKey | None


@dataclass(frozen=True)
class RecordsHeld:
    """What the store holds of a batch's records, read once their rows are locked."""

    current: dict[RecordKey, int]                        # latest accepted revision
    erased: set[RecordKey]                               # in the erasure ledger
    commitments: dict[RecordKey, tuple[str, str | None]]  # (action, commitment state) of it


@dataclass(frozen=True)
class Verdict:
    status: FeedbackStatus
    errors: list[FieldError]


def verdicts(catalogue: Catalogue, candidates: Iterable[Candidate], fresh: set[EventKey],
             held: RecordsHeld) -> list[Verdict]:
    """Each submission's fate, in arrival order. In turn: its own errors (rejected); an
    event seen before, or a second copy in the batch (duplicate); an erased record
    (rejected, naming `record_id`: 征信业管理条例 art. 16); a newer revision of a
    commitment that its state refuses (rejected); then the revision against the latest
    accepted one, which an accepted revision in the same batch moves on."""
    unclaimed = set(fresh)
    current, states = dict(held.current), dict(held.commitments)
    out: list[Verdict] = []
    for c in candidates:
        sub = c.submission
        if c.errors or sub is None or c.event is None:
            out.append(Verdict("rejected", c.errors))
            continue
        if c.event not in unclaimed:
            out.append(Verdict("duplicate", []))
            continue
        unclaimed.discard(c.event)
        key = (c.department, sub.record_id)
        if key in held.erased:
            out.append(Verdict("rejected", [err(
                "record_id", ERASED, "this record was erased (征信业管理条例 art. 16) and "
                "cannot be sent again; a new decision is a new record")]))
            continue
        fate = revision_fate(current.get(key), sub.revision)
        problems = (_commitment_problems(catalogue, sub, states.get(key))
                    if fate == "accepted" else [])
        if problems:
            out.append(Verdict("rejected", [err(*p) for p in problems]))
            continue
        if fate == "accepted":
            current[key] = sub.revision
            states[key] = (sub.action, commitment_state_of(catalogue, sub))
        out.append(Verdict(fate, []))
    return out


def is_commitment(catalogue: Catalogue, sub: RecordSubmission | None) -> bool:
    item = catalogue.items.get(sub.catalogue_item or "") if sub is not None else None
    return item is not None and item.commitment is not None


def commitment_state_of(catalogue: Catalogue, sub: RecordSubmission) -> str | None:
    """The commitment state this revision records (None: not an upsert of a commitment)."""
    if sub.action != "upsert" or not is_commitment(catalogue, sub):
        return None
    return commitments.state(sub.attributes)


def _commitment_problems(catalogue: Catalogue, sub: RecordSubmission,
                         held: tuple[str, str | None] | None) -> list[commitments.Problem]:
    """A newer revision of a commitment against the state held (a signing and its breach
    may come in one batch): a breach needs a signed commitment not already breached
    (shared/commitments.py)."""
    if sub.action != "upsert" or not is_commitment(catalogue, sub):
        return []
    action, state = held or ("withdraw", None)
    return commitments.revision_problems(
        state if action == "upsert" else None,  # type: ignore[arg-type]
        action == "upsert", sub.attributes)


# --- the HTTP gateway ---------------------------------------------------------------------


def parse_http_record(department: str, data: Any, event_id: str) -> ParsedSubmission:
    """A record posted over HTTP, read exactly as if the department had sent it on its
    inbound topic (same envelope, same checks). Data that cannot be put in an envelope as
    it is (not an object, a string that is not text, nested past every bound) is answered
    from the envelope alone."""
    problems = check_data(data) if isinstance(data, dict) else None
    if problems == []:
        return parse_message(submission_json(department, data, event_id))
    envelope, errors = read_envelope(submission_json(department, None, event_id))
    if envelope is None:
        return ParsedSubmission(errors=errors)
    if problems is None:
        return parse_data(envelope, data)
    return ParsedSubmission(envelope, None, problems, *lenient_ids(data))


def record_from_csv_row(row: dict[str | None, str | list[str] | None]
                        ) -> tuple[dict[str, Any], list[FieldError]]:
    """One CSV row (header = the JSON field names, `subject.type` style for the subject,
    `attributes` a JSON object) as a record's data, with the cells that cannot be read."""
    data: dict[str, Any] = {}
    subject: dict[str, str] = {}
    errors: list[FieldError] = []
    for column, cell in row.items():
        if column is None:
            errors.append(err("row", "extra_cells", "more cells than the header has columns"))
            continue
        value = cell.strip() if isinstance(cell, str) else ""
        if not value:
            continue
        if column == "revision":
            # ASCII digits only: "²" is a digit to str.isdigit but not to int().
            if not (value.isascii() and value.isdigit()):
                errors.append(err("revision", "int_parsing",
                                  f"{value[:40]!r} is not a whole number"))
            elif len(value) > len(str(REVISION_MAX)) or int(value) > REVISION_MAX:
                errors.append(err("revision", "less_than_equal", f"at most {REVISION_MAX}"))
            else:
                data["revision"] = int(value)
        elif column == "attributes":
            try:
                attributes = json.loads(value)
            except (ValueError, RecursionError):
                attributes = None
            if not isinstance(attributes, dict):
                errors.append(err("attributes", "json", "must be a JSON object"))
                continue
            data["attributes"] = attributes
        elif column.startswith("subject."):
            subject[column.removeprefix("subject.")] = value
        else:
            data[column] = value
    if subject:
        if "subject" in data:
            errors.append(err("subject", "ambiguous", "give the subject in the subject.type, "
                              "subject.id and subject.name columns only"))
        else:
            data["subject"] = subject
    return data, errors

"""Ingest rules: is a department's submission well-formed, allowed by the catalogue, about a
valid subject, and how does it stand against what was accepted before. Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError

from shared.catalogue import Catalogue, CatalogueItem
from shared.contract import FeedbackStatus, FieldError, RecordSubmission, SubjectRef
from shared.envelope import AnyEvent, CloudEvent, submission_json
from shared.identifiers import age_on, check_resident_id, check_uscc, parse_birth_date
from shared.messages import InboundMessage, caused_id
from shared.topics import RECORD_SUBMITTED

# Pydantic's error types, renamed to the codes departments see in their feedback.
_PYDANTIC_CODES = {"missing": "required", "extra_forbidden": "unknown_field",
                   "literal_error": "not_allowed", "string_too_short": "required"}


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
    return FieldError(field=field_name, code=code, message=message)


def _pydantic_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    return [err(prefix + ".".join(str(p) for p in e["loc"]) or prefix.rstrip(".") or "data",
                _PYDANTIC_CODES.get(e["type"], e["type"]), e["msg"])
            for e in exc.errors()]


def parse_message(raw: bytes) -> ParsedSubmission:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ParsedSubmission(errors=[err("message", "unparseable", f"not JSON: {exc}")])
    except RecursionError:
        return ParsedSubmission(errors=[err("message", "unparseable", "JSON nested too deeply")])
    if not isinstance(doc, dict):
        return ParsedSubmission(errors=[err("message", "unparseable", "not a JSON object")])
    try:
        event: AnyEvent = CloudEvent.model_validate(doc)
    except ValidationError as exc:
        return ParsedSubmission(errors=[err("message", "unparseable", "not a CloudEvent"),
                                        *_pydantic_errors(exc, "envelope.")])
    data = event.data if isinstance(event.data, dict) else {}
    record_id = data.get("record_id") if isinstance(data.get("record_id"), str) else None
    revision = data.get("revision") if type(data.get("revision")) is int else None
    if not isinstance(event.data, dict):
        return ParsedSubmission(event, None, [err("data", "required", "data must be an object")],
                                record_id, revision)
    try:
        submission = RecordSubmission.model_validate(event.data)
    except ValidationError as exc:
        return ParsedSubmission(event, None, _pydantic_errors(exc), record_id, revision)
    return ParsedSubmission(event, submission, [], submission.record_id, submission.revision)


def corrected_revision(decision: AnyEvent) -> ParsedSubmission | None:
    """The corrected record an upheld objection decision may carry (CONTRACT.md), as a
    submission of its own: event id `<decision id>/corrected`."""
    data = decision.data if isinstance(decision.data, dict) else {}
    if not isinstance(data.get("corrected"), dict):
        return None
    event = decision.model_copy(update={"id": f"{decision.id}/corrected",
                                        "type": RECORD_SUBMITTED, "data": data["corrected"]})
    try:
        submission = RecordSubmission.model_validate(data["corrected"])
    except ValidationError as exc:
        return ParsedSubmission(event, None, _pydantic_errors(exc, "corrected."))
    return ParsedSubmission(event, submission, [], submission.record_id, submission.revision)


def check_envelope(event: AnyEvent, department: str,
                   submission: RecordSubmission | None) -> list[FieldError]:
    errors = []
    if event.type != RECORD_SUBMITTED:
        errors.append(err("envelope.type", "not_allowed", f"expected {RECORD_SUBMITTED}"))
    if event.source != f"dept/{department}":
        errors.append(err("envelope.source", "wrong_department",
                          f"this topic takes events from dept/{department}, not {event.source}"))
    if submission is not None and event.subject not in (None, submission.subject.key):
        errors.append(err("envelope.subject", "mismatch",
                          f"envelope subject {event.subject} is not {submission.subject.key}"))
    return errors


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
    item = catalogue.items.get(sub.catalogue_item or "")
    if sub.catalogue_item is not None and item is None:
        errors.append(err("catalogue_item", "unknown_item",
                          f"{sub.catalogue_item} is not in the catalogue"))
    if item is not None:
        errors += check_item(item, department, sub, today)
    return errors


def check_subject(catalogue: Catalogue, subject: SubjectRef, today: date) -> list[FieldError]:
    if subject.type == "individual":
        problems = check_resident_id(subject.id, today)
    else:
        problems = check_uscc(subject.id, subject.type, catalogue.legacy_uscc)
    return [err("subject.id", p.code, p.message) for p in problems]


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


def order_revisions(current: dict[tuple[str, str], int],
                    submissions: Iterable[tuple[str, str, int]]) -> list[FeedbackStatus]:
    """Fates of (department, record_id, revision) in arrival order; `current` is updated."""
    fates: list[FeedbackStatus] = []
    for dept, record_id, revision in submissions:
        fate = revision_fate(current.get((dept, record_id)), revision)
        if fate == "accepted":
            current[(dept, record_id)] = revision
        fates.append(fate)
    return fates


# --- the HTTP gateway ---------------------------------------------------------------------



def parse_http_record(department: str, data: Any, event_id: str) -> ParsedSubmission:
    """A record posted over HTTP, read exactly as if the department had sent it on its
    inbound topic (same envelope, same checks)."""
    return parse_message(submission_json(department, data, event_id))


def record_from_csv_row(row: dict[str | None, str | list[str] | None]
                        ) -> tuple[dict[str, Any], list[FieldError]]:
    """One CSV row (header = the JSON field names, `subject.type` style for the subject,
    `attributes` a JSON object) as a record's data, with the cells that cannot be read."""
    data: dict[str, Any] = {}
    errors: list[FieldError] = []
    for column, cell in row.items():
        if column is None:
            errors.append(err("row", "extra_cells", "more cells than the header has columns"))
            continue
        value = cell.strip() if isinstance(cell, str) else ""
        if not value:
            continue
        if column == "revision":
            if not value.isdigit():
                errors.append(err("revision", "int_parsing", f"{value!r} is not a whole number"))
                continue
            data["revision"] = int(value)
        elif column == "attributes":
            try:
                attributes = json.loads(value)
            except ValueError:
                attributes = None
            if not isinstance(attributes, dict):
                errors.append(err("attributes", "json", "must be a JSON object"))
                continue
            data["attributes"] = attributes
        elif column.startswith("subject."):
            data.setdefault("subject", {})[column.removeprefix("subject.")] = value
        else:
            data[column] = value
    return data, errors

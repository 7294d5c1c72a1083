"""Narrow readings of large events (services/objection/contracts.py): each field a reading
names is a field of the topic's contract model, of the same type, so the contract model
stays the one definition of the topic; and a reading reads what the contract model wrote."""

from __future__ import annotations

import typing
from datetime import date, datetime
from types import UnionType
from typing import Any

import pytest
from pydantic import BaseModel

from services.objection.contracts import (
    AcceptedReading,
    ArchivedReading,
    BasisReading,
    ListReading,
    RepairReading,
    SnapshotReading,
    SubjectReading,
    SubmissionReading,
)
from shared.contract import (
    AcceptedRecord,
    ArchivedRecord,
    BasisRecord,
    Grade,
    ListChanged,
    RecordSubmission,
    Repair,
    SubjectChanged,
    SubjectRef,
)
from shared.messages import InboundMessage, OutboundEvent, read_event_as
from shared.topics import RECORDS_ACCEPTED, SUBJECTS_CHANGED

# Each reading and the contract model it reads.
READS = [
    (SubjectReading, SubjectRef),
    (SubmissionReading, RecordSubmission),
    (AcceptedReading, AcceptedRecord),
    (RepairReading, Repair),
    (ArchivedReading, ArchivedRecord),
    (SnapshotReading, SubjectChanged),
    (BasisReading, BasisRecord),
    (ListReading, ListChanged),
]
READING_OF = {reading: model for reading, model in READS}


def _same_type(reading_type: Any, model_type: Any) -> bool:
    """The same annotation, a reading standing for the contract model it reads."""
    if reading_type in READING_OF:
        return READING_OF[reading_type] is model_type
    origin = typing.get_origin(reading_type)
    if origin is not None and origin is typing.get_origin(model_type):
        args, model_args = typing.get_args(reading_type), typing.get_args(model_type)
        return len(args) == len(model_args) and all(
            _same_type(a, b) for a, b in zip(args, model_args, strict=True))
    if isinstance(reading_type, UnionType) or origin is typing.Union:
        return False
    return bool(reading_type == model_type)


@pytest.mark.parametrize(("reading", "model"), READS, ids=lambda m: m.__name__)
def test_a_reading_names_only_fields_of_its_contract_model_with_their_types(
        reading: type[BaseModel], model: type[BaseModel]) -> None:
    for name, field in reading.model_fields.items():
        assert name in model.model_fields, f"{reading.__name__}.{name} is not in {model}"
        theirs = model.model_fields[name]
        assert _same_type(field.annotation, theirs.annotation), (
            f"{reading.__name__}.{name}: {field.annotation} is not {theirs.annotation}")
        assert field.metadata == theirs.metadata, f"{reading.__name__}.{name}: constraints"
        assert field.is_required() == theirs.is_required(), f"{reading.__name__}.{name}"


def test_the_type_check_itself_tells_types_apart() -> None:
    assert _same_type(date | None, date | None)
    assert not _same_type(date | None, datetime | None)
    assert not _same_type(list[SubjectReading], list[ArchivedRecord])
    assert _same_type(list[ArchivedReading], list[ArchivedRecord])


def _message(topic: str, value: bytes) -> InboundMessage:
    return InboundMessage(topic=topic, partition=0, offset=0, key=None, value=value,
                          timestamp_ms=0)


def test_a_snapshot_reads_as_its_facts_whatever_else_it_carries() -> None:
    record = ArchivedRecord.model_validate({
        "department": "amr", "record_id": "R-1", "revision": 3,
        "catalogue_item": "amr.admin_penalty", "decided_on": "2026-01-05",
        "status": "repaired", "repair_from": "2026-04-05", "public_until": "2027-01-05",
        "attributes": {"penalty_class": "other", "amount": [1, {"x": None}]},
        "repair": {"objection_id": "5d0a3f1e-0000-4000-8000-000000000001",
                   "granted_on": "2026-06-01"},
        "provenance": {"department": "amr", "record_id": "R-1", "revision": 3,
                       "event_id": "e-1", "received_at": "2026-01-06T00:00:00Z"},
        "added_later": {"by": "a producer"}})
    snapshot = SubjectChanged(subject=SubjectRef(type="enterprise", id="X1", name="名"),
                              version=7, records=[record],
                              grade=Grade(grade="B", explanation=["一"]))
    event = OutboundEvent.of(SUBJECTS_CHANGED, SUBJECTS_CHANGED.writer, "enterprise:X1",
                             snapshot)
    read = read_event_as(_message(SUBJECTS_CHANGED.name, event.value), SUBJECTS_CHANGED,
                         SnapshotReading).data
    assert (read.subject.key, read.version) == ("enterprise:X1", 7)
    [facts] = read.records
    assert (facts.department, facts.record_id, facts.revision, facts.status) == (
        "amr", "R-1", 3, "repaired")
    assert (facts.repair_from, facts.public_until) == (date(2026, 4, 5), date(2027, 1, 5))
    assert facts.repair is not None
    assert facts.repair.objection_id == "5d0a3f1e-0000-4000-8000-000000000001"


def test_an_accepted_record_reads_as_the_projection_needs_it() -> None:
    accepted = AcceptedRecord(
        department="court", source_event_id="e-2", accepted_at=datetime(2026, 6, 2),
        submission=RecordSubmission.model_validate({
            "record_id": "C-1", "revision": 2, "action": "upsert",
            "catalogue_item": "court.dishonest_debtor", "decided_on": "2026-06-01",
            "subject": {"type": "individual", "id": "440402199001011234", "name": "张三"},
            "summary": "未履行", "attributes": {"case_no": "(2026)粤0402执1号"},
            "act_ended_on": "2026-05-01"}))
    event = OutboundEvent.of(RECORDS_ACCEPTED, RECORDS_ACCEPTED.writer, "k", accepted)
    read = read_event_as(_message(RECORDS_ACCEPTED.name, event.value), RECORDS_ACCEPTED,
                         AcceptedReading).data
    sub = read.submission
    assert (read.department, sub.record_id, sub.revision, sub.action) == (
        "court", "C-1", 2, "upsert")
    assert sub.subject.key == "individual:440402199001011234"
    assert (sub.decided_on, sub.act_ended_on) == (date(2026, 6, 1), date(2026, 5, 1))
    assert sub.attributes == {"case_no": "(2026)粤0402执1号"}


def test_a_reading_still_refuses_what_its_fields_cannot_be() -> None:
    bad = (b'{"specversion":"1.0","id":"e","source":"' + SUBJECTS_CHANGED.writer.encode()
           + b'","type":"' + SUBJECTS_CHANGED.event_type.encode()
           + b'","data":{"subject":{"type":"enterprise","id":"X1"},"version":"seven",'
           b'"records":[]}}')
    with pytest.raises(ValueError, match="version"):
        read_event_as(_message(SUBJECTS_CHANGED.name, bad), SUBJECTS_CHANGED, SnapshotReading)

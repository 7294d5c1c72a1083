"""Events as the services receive them, for the database tier."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import count
from typing import Any

from services.ingest import domain as ingest_domain
from services.ingest import handlers as ingest_handlers
from shared.contract import (
    AcceptedRecord,
    ArchivedRecord,
    Grade,
    ObjectionDecision,
    RecordSubmission,
    SubjectChanged,
    SubjectRef,
)
from shared.messages import InboundMessage, OutboundEvent
from shared.topics import DECISIONS, RECORDS_ACCEPTED, SUBJECTS_CHANGED
from tests.unit.factories import uscc

FIRM_A = uscc("91440400MA4W8KXA0")
FIRM_B = uscc("91440400MA4W8KXB0")
_offsets = count()


def accepted_message(record_id: str, subject_id: str, revision: int = 1, *,
                     department: str = "amr", action: str = "upsert",
                     subject_type: str = "enterprise",
                     decided_on: date = date(2026, 6, 1)) -> InboundMessage:
    data: dict[str, Any] = {
        "record_id": record_id, "revision": revision, "action": action,
        "subject": {"type": subject_type, "id": subject_id, "name": "测试"}}
    if action == "upsert":
        data.update(catalogue_item="amr.admin_penalty", decided_on=decided_on,
                    district="440402", attributes={"penalty_class": "other"})
    payload = AcceptedRecord(department=department,
                             submission=RecordSubmission.model_validate(data),
                             source_event_id=f"ev-{record_id}-{revision}",
                             accepted_at=datetime(2026, 6, 2, tzinfo=UTC))
    event = OutboundEvent.of(RECORDS_ACCEPTED, "xinyong/ingest",
                             f"{subject_type}:{subject_id}", payload)
    return InboundMessage(topic=RECORDS_ACCEPTED.name, partition=0, offset=next(_offsets),
                          key=event.key, value=event.value, timestamp_ms=0)


def snapshot_message(subject_id: str, *records: ArchivedRecord, version: int = 1,
                     subject_type: str = "enterprise") -> InboundMessage:
    """A registry snapshot (credit.subjects.changed) as a service reads it."""
    subject = SubjectRef.model_validate({"type": subject_type, "id": subject_id, "name": "测试"})
    payload = SubjectChanged(subject=subject, version=version, records=list(records),
                             grade=Grade(grade="B", explanation=[]))
    event = OutboundEvent.of(SUBJECTS_CHANGED, "xinyong/registry", subject.key, payload)
    return InboundMessage(topic=SUBJECTS_CHANGED.name, partition=0, offset=next(_offsets),
                          key=event.key, value=event.value, timestamp_ms=0)


def archived(record_id: str, *, department: str = "amr", item: str = "amr.admin_penalty",
             revision: int = 1, status: str = "active", decided_on: date = date(2026, 1, 5),
             repair_from: date | None = date(2026, 4, 5),
             public_until: date | None = date(2027, 1, 5), **extra: Any) -> ArchivedRecord:
    return ArchivedRecord.model_validate({
        "department": department, "record_id": record_id, "revision": revision,
        "catalogue_item": item, "decided_on": decided_on, "status": status,
        "repair_from": repair_from, "public_until": public_until, **extra})


def decision_message(department: str, key: str, decision: ObjectionDecision, *,
                     source: str | None = None) -> InboundMessage:
    """A department's decision as objection reads it: sent on the department's inbound topic
    (from `source`, the department's own unless given) and passed on by ingest."""
    sent = OutboundEvent.of(DECISIONS.of(department), source or f"dept/{department}", key,
                            decision)
    inbound = InboundMessage(topic=sent.topic, partition=0, offset=next(_offsets),
                             key=sent.key, value=sent.value, timestamp_ms=0)
    passed = ingest_handlers.decision_received(
        inbound, ingest_domain.parse_message(inbound.value), 1_000_000)
    assert passed is not None
    return InboundMessage(topic=passed.topic, partition=0, offset=next(_offsets),
                          key=passed.key, value=passed.value, timestamp_ms=0)

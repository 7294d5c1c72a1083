"""Events as the services receive them, for the database tier."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import count
from typing import Any

from shared.contract import AcceptedRecord, RecordSubmission
from shared.messages import InboundMessage, OutboundEvent
from shared.topics import RECORDS_ACCEPTED
from tests.unit.factories import uscc

FIRM_A = uscc("91440400MA4W8KXA0")
FIRM_B = uscc("91440400MA4W8KXB0")
_offsets = count()


def accepted_message(record_id: str, subject_id: str, revision: int = 1, *,
                     department: str = "amr", action: str = "upsert",
                     subject_type: str = "enterprise") -> InboundMessage:
    data: dict[str, Any] = {
        "record_id": record_id, "revision": revision, "action": action,
        "subject": {"type": subject_type, "id": subject_id, "name": "测试"}}
    if action == "upsert":
        data.update(catalogue_item="amr.admin_penalty", decided_on=date(2026, 6, 1),
                    district="440402", attributes={"penalty_class": "other"})
    payload = AcceptedRecord(department=department,
                             submission=RecordSubmission.model_validate(data),
                             source_event_id=f"ev-{record_id}-{revision}",
                             accepted_at=datetime(2026, 6, 2, tzinfo=UTC))
    event = OutboundEvent.of(RECORDS_ACCEPTED, "xinyong/ingest",
                             f"{subject_type}:{subject_id}", payload)
    return InboundMessage(topic=RECORDS_ACCEPTED.name, partition=0, offset=next(_offsets),
                          key=event.key, value=event.value, timestamp_ms=0)

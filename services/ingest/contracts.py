"""What ingest consumes and produces, and the models of its HTTP gateway."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from shared.catalogue import Catalogue
from shared.contract import FieldError
from shared.topics import (
    COMMITMENTS_SIGNED,
    DECISIONS_RECEIVED,
    FEEDBACK,
    INBOUND,
    RECORDS_ACCEPTED,
)

CONSUMES = (INBOUND, COMMITMENTS_SIGNED)
PRODUCES = (FEEDBACK, RECORDS_ACCEPTED, DECISIONS_RECEIVED)


def consumed_topics(catalogue: Catalogue) -> list[str]:
    return [*(INBOUND.of(dept).name for dept in catalogue.departments), COMMITMENTS_SIGNED.name]


class RecordResult(BaseModel):
    index: int
    # The submission's event id: the Idempotency-Key (`<key>/<index>` in a batch) or the id
    # generated for it; the record's `provenance.event_id` and the audit name it too.
    event_id: str | None
    record_id: str | None
    revision: int | None
    status: Literal["accepted", "rejected", "duplicate", "stale"]
    errors: list[FieldError]


class SubmissionAnswer(BaseModel):
    accepted: int
    rejected: int
    results: list[RecordResult]

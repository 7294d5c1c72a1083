"""Ingest's use case: take deliveries, decide each one's fate, write the audit trail, the
latest revisions and the outgoing events in the caller's transaction.

The Kafka handler and the HTTP gateway both feed `ingest_deliveries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from services.ingest import domain, store
from shared import clock, inbox, outbox
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import (
    AcceptedRecord,
    FeedbackStatus,
    FieldError,
    RawPosition,
    RecordFeedback,
)
from shared.messages import InboundMessage, OutboundEvent
from shared.topics import FEEDBACK, INBOUND, OBJECTION_DECIDED, RECORDS_ACCEPTED
from shared.worker import BatchHandler

SOURCE = "xinyong/ingest"


@dataclass(frozen=True)
class Delivery:
    """One submission as it arrived: a message from Kafka, or a record posted over HTTP."""

    department: str
    parsed: domain.ParsedSubmission
    message: InboundMessage | None = None  # None: over HTTP

    @property
    def channel(self) -> str:
        return "kafka" if self.message else "http"

    @property
    def source(self) -> str:
        return self.message.topic if self.message else "POST /api/v1/records"


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    feedback: RecordFeedback


def make_handler(ctx: ServiceContext) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        deliveries = [d for d in map(delivery_of, messages) if d is not None]
        await ingest_deliveries(conn, ctx.catalogue, deliveries)

    return handle


def delivery_of(message: InboundMessage) -> Delivery | None:
    parsed = domain.parse_message(message.value)
    if parsed.event is not None and parsed.event.type == OBJECTION_DECIDED:
        # The decision itself is the objection service's business; a corrected revision it
        # carries is a submission like any other, and gets its feedback.
        correction = domain.corrected_revision(parsed.event)
        if correction is None:
            return None
        parsed = correction
    department = INBOUND.code_of(message.topic) or "unknown"
    return Delivery(department, parsed, message)


async def ingest_deliveries(conn: asyncpg.Connection, catalogue: Catalogue,
                            deliveries: Sequence[Delivery]) -> list[Outcome]:
    today = clock.today()
    errors = [_errors_of(catalogue, d, today) for d in deliveries]
    # Only valid submissions claim their event id: a rejected event may be sent again,
    # corrected, under the same id.
    fresh = await inbox.first_seen(conn, [
        _event_key(d) for d, errs in zip(deliveries, errors, strict=True) if not errs])
    valid = []
    statuses: list[FeedbackStatus | None] = []  # None: to be decided by its revision
    for d, errs in zip(deliveries, errors, strict=True):
        if errs:
            statuses.append("rejected")
        elif _event_key(d) in fresh:
            fresh.discard(_event_key(d))  # a second copy in the same batch is a duplicate
            statuses.append(None)
            valid.append(d)
        else:
            statuses.append("duplicate")

    keys = sorted({(d.department, d.parsed.record_id or "") for d in valid})
    current = await store.lock_current_revisions(conn, keys)
    fates = iter(domain.order_revisions(current, [
        (d.department, d.parsed.record_id or "", d.parsed.revision or 0) for d in valid]))
    decided: list[FeedbackStatus] = [s if s is not None else next(fates) for s in statuses]

    outcomes = [Outcome(d, _feedback(d, s, e))
                for d, s, e in zip(deliveries, decided, errors, strict=True)]
    await _write(conn, outcomes)
    return outcomes


def _event_key(d: Delivery) -> tuple[str, str]:
    assert d.parsed.event is not None  # only asked of deliveries without errors
    return f"dept/{d.department}", d.parsed.event.id


def _errors_of(catalogue: Catalogue, d: Delivery, today: date) -> list[FieldError]:
    p = d.parsed
    if p.event is None or p.submission is None:
        return p.errors
    if d.department not in catalogue.departments:
        return [domain.err("topic", "unknown_department", f"{d.source} has no department")]
    return (domain.check_envelope(p.event, d.department, p.submission)
            + domain.check_submission(catalogue, d.department, p.submission, today))


def _feedback(d: Delivery, status: FeedbackStatus,
              errors: list[FieldError]) -> RecordFeedback:
    if d.parsed.unparseable and d.message is not None:
        m = d.message
        return RecordFeedback(event_id=None, record_id=None, revision=None, status="rejected",
                              errors=errors,
                              raw=RawPosition(topic=m.topic, partition=m.partition,
                                              offset=m.offset))
    return RecordFeedback(event_id=d.parsed.event.id if d.parsed.event else None,
                          record_id=d.parsed.record_id, revision=d.parsed.revision,
                          status=status, errors=errors if status == "rejected" else [])


async def _write(conn: asyncpg.Connection, outcomes: Sequence[Outcome]) -> None:
    accepted_at = clock.now()
    events: list[OutboundEvent] = []
    revisions: dict[tuple[str, str], tuple[Any, ...]] = {}
    audit = []
    for o in outcomes:
        d, fb = o.delivery, o.feedback
        key = (d.parsed.submission.subject.key if d.parsed.submission
               else d.message.key if d.message else None)
        events.append(OutboundEvent.of(FEEDBACK.of(d.department), SOURCE, key, fb,
                                       event_id=domain.feedback_id(d.message)))
        if fb.status == "accepted" and d.parsed.submission and d.parsed.event:
            sub = d.parsed.submission
            events.append(OutboundEvent.of(
                RECORDS_ACCEPTED, SOURCE, sub.subject.key,
                AcceptedRecord(department=d.department, submission=sub,
                               source_event_id=d.parsed.event.id, accepted_at=accepted_at),
                event_id=domain.accepted_id(d.department, sub.record_id, sub.revision)))
            # Later accepted revisions of the same record in this batch are higher.
            revisions[(d.department, sub.record_id)] = (
                d.department, sub.record_id, sub.revision, sub.subject.key, sub.action,
                accepted_at)
        if d.parsed.unparseable and d.message is not None:
            events.append(outbox.dead_letter(
                "ingest", d.message, "; ".join(e.message for e in fb.errors)))
        audit.append((d.department, d.source, d.message and d.message.partition,
                      d.message and d.message.offset, d.channel, fb.event_id,
                      fb.record_id, fb.revision, fb.status,
                      [e.model_dump() for e in fb.errors]))
    await store.save_revisions(conn, list(revisions.values()))
    await store.log_submissions(conn, audit)
    await outbox.enqueue(conn, events)

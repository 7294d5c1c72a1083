"""Ingest's use case: take deliveries, decide each one's fate, write the audit trail, the
latest revisions and the outgoing events in the caller's transaction.

The Kafka handler and the HTTP gateway both feed `ingest_deliveries`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import asyncpg

from services.ingest import domain, store
from shared import clock, disclosure, inbox, outbox, purge
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import (
    AcceptedRecord,
    DecisionReceived,
    FeedbackStatus,
    FieldError,
    RawPosition,
    RecordFeedback,
    RecordSubmission,
)
from shared.db import TRANSIENT
from shared.messages import InboundMessage, OutboundEvent, caused_id
from shared.settings import get_settings
from shared.topics import (
    COMMITMENTS_SIGNED,
    DECISIONS_RECEIVED,
    FEEDBACK,
    INBOUND,
    OBJECTION_DECIDED,
    RECORDS_ACCEPTED,
)
from shared.worker import BatchHandler

SOURCE = "xinyong/ingest"
# Errors one feedback lists, at most (a submission can hardly have more of its own).
FEEDBACK_ERRORS_MAX = 50

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One submission as it arrived: a message from Kafka, or a record posted over HTTP."""

    department: str
    parsed: domain.ParsedSubmission
    message: InboundMessage | None = None  # None: over HTTP
    # A subject's own commitment passed on by the publisher (credit.commitments.signed),
    # recorded under the platform department: its envelope's source is the publisher's.
    from_platform: bool = False

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
        platform = ctx.catalogue.commitments.platform_department
        limit = ctx.settings.max_event_bytes
        parsed = [(m, domain.parse_message(m.value)) for m in messages]
        # Passed on whatever becomes of a corrected revision the decision carries.
        await outbox.enqueue(conn, [e for m, p in parsed
                                    if (e := decision_received(m, p, limit)) is not None])
        deliveries = [d for d in (delivery_of(m, platform, p) for m, p in parsed)
                      if d is not None]
        if len(messages) > 1 or not deliveries:
            # A failing batch is retried one message at a time (shared/worker.py).
            await ingest_deliveries(conn, ctx.catalogue, deliveries, limit)
            return
        try:
            async with conn.transaction():  # a savepoint: a failure leaves nothing behind
                await ingest_deliveries(conn, ctx.catalogue, deliveries, limit)
        except TRANSIENT:
            raise
        except Exception as exc:
            # Whatever failed, the department still gets its one feedback, and the message
            # goes to dead letters for the operators.
            log.exception("delivery %s[%d]@%d could not be processed", messages[0].topic,
                          messages[0].partition, messages[0].offset)
            await not_processed(conn, deliveries[0], exc, limit)

    return handle


def delivery_of(message: InboundMessage, platform: str = "ndrc",
                parsed: domain.ParsedSubmission | None = None) -> Delivery | None:
    """The submission a message delivers (`parsed`: the message already read), if any."""
    if parsed is None:
        parsed = domain.parse_message(message.value)
    if message.topic == COMMITMENTS_SIGNED.name:
        return Delivery(platform, parsed, message, from_platform=True)
    if parsed.event is not None and parsed.event.type == OBJECTION_DECIDED:
        # The decision itself is the objection service's business; a corrected revision it
        # carries is a submission like any other, and gets its feedback.
        correction = domain.corrected_revision(parsed.event)
        if correction is None:
            return None
        parsed = correction
    department = INBOUND.code_of(message.topic) or "unknown"
    return Delivery(department, parsed, message)


def decision_received(message: InboundMessage, parsed: domain.ParsedSubmission,
                      max_event_bytes: int) -> OutboundEvent | None:
    """A department's objection decision on its inbound topic, passed on to objection as
    sent, with the department the topic names (credit.decisions.received); a dead letter if
    the envelope around it would make it too large to send."""
    department = INBOUND.code_of(message.topic)
    if department is None or parsed.event is None or parsed.event.type != OBJECTION_DECIDED:
        return None
    key = _stored_key(message)
    try:
        # Read again as a whole (the parse above kept what a submission needs): decisions
        # are rare, and the JSON was read once already. What the parse let through and
        # strict JSON cannot carry (an unpaired surrogate) fails here.
        event = OutboundEvent.of(DECISIONS_RECEIVED, SOURCE, key,
                                 DecisionReceived(department=department,
                                                  sent=json.loads(message.value)),
                                 event_id=caused_id(SOURCE, "decision", message.delivery))
    except (ValueError, RecursionError) as exc:
        return outbox.dead_letter("ingest", message, f"an objection decision that could "
                                  f"not be passed on: {type(exc).__name__}: {exc}")
    if len(event.value) + len((event.key or "").encode()) > max_event_bytes:
        return outbox.dead_letter("ingest", message, "an objection decision too large to "
                                  f"pass on ({len(event.value)} bytes; max_event_bytes "
                                  f"{max_event_bytes})")
    return event


async def ingest_deliveries(conn: asyncpg.Connection, catalogue: Catalogue,
                            deliveries: Sequence[Delivery],
                            max_event_bytes: int | None = None,
                            erasure_key: bytes | None = None) -> list[Outcome]:
    """Check, decide (`domain.verdicts`) and write a batch of deliveries. What the verdict
    needs of the store is read first: the event ids not seen before (only valid submissions
    claim theirs: a rejected event may be sent again, corrected, under the same id), then
    the records' rows, locked, and what was erased or is held of them."""
    today = clock.today()
    checked = [_checked(catalogue, d, today) for d in deliveries]
    deliveries = [d for d, _ in checked]
    candidates = [domain.Candidate(d.department, d.parsed.submission, errors,
                                   None if errors else _event_key(d))
                  for d, errors in checked]
    fresh = await inbox.first_seen(conn, [c.event for c in candidates if c.event is not None])
    claiming = [(c.department, c.submission) for c in candidates
                if c.event in fresh and c.submission is not None]
    keys = sorted({(department, s.record_id) for department, s in claiming})
    held = domain.RecordsHeld(
        current=await store.lock_current_revisions(conn, keys),
        # Read once the records are locked: an erasure committed meanwhile is seen.
        erased=await purge.erased_records(
            conn, erasure_key or purge.erasure_key(get_settings()), keys),
        commitments=(await store.commitment_states(conn, keys)
                     if any(domain.is_commitment(catalogue, s) for _, s in claiming)
                     else {}))
    outcomes = [Outcome(d, _feedback(d, v.status, v.errors)) for d, v in zip(
        deliveries, domain.verdicts(catalogue, candidates, fresh, held), strict=True)]
    await _write(conn, catalogue, outcomes, max_event_bytes)
    await _schedule_erasures(conn, catalogue, outcomes)
    return outcomes


async def _schedule_erasures(conn: asyncpg.Connection, catalogue: Catalogue,
                             outcomes: Sequence[Outcome]) -> None:
    """When what ingest keeps of each accepted record (its revision, its audit lines) is
    erased: a person's negative information, 5 years after the act ended."""
    rows = []
    for o in outcomes:
        sub = o.delivery.parsed.submission
        if o.feedback.status != "accepted" or sub is None or sub.action != "upsert":
            continue
        assert sub.catalogue_item is not None and sub.decided_on is not None
        rows.append((o.delivery.department, sub.record_id, sub.subject.key, disclosure.purge_on(
            catalogue, sub.subject.type, sub.catalogue_item, sub.act_ended_on or sub.decided_on,
            sub.attributes)))
    await purge.schedule(conn, rows)


async def not_processed(conn: asyncpg.Connection, d: Delivery, exc: Exception,
                        max_event_bytes: int | None = None) -> None:
    """A delivery whose processing failed: rejected with the reason, its message kept as a
    dead letter. Ids the message names are repeated only as far as they can be stored."""
    assert d.message is not None  # only deliveries from Kafka get here
    if isinstance(exc, outbox.EventTooLarge):
        error = domain.err("data", "too_large",
                           f"the record would make an event of {exc.size} bytes; at most "
                           f"{exc.limit}")
    else:
        error = domain.err("message", "not_processed",
                           "could not be processed; kept as a dead letter for the operators")
    fb = RecordFeedback(event_id=d.parsed.event.id if d.parsed.event else None,
                        record_id=d.parsed.record_id, revision=d.parsed.revision,
                        status="rejected", errors=[error], raw=_raw_position(d.message))
    await store.log_submissions(conn, [_audit_row(d, fb)], clock.now())
    await outbox.enqueue(conn, [
        OutboundEvent.of(FEEDBACK.of(d.department), SOURCE, _kafka_key(d), fb,
                         event_id=domain.feedback_id(d.message)),
        outbox.dead_letter("ingest", d.message, f"{type(exc).__name__}: {exc}")],
        max_event_bytes)


def _event_key(d: Delivery) -> tuple[str, str]:
    assert d.parsed.event is not None  # only asked of deliveries without errors
    return f"dept/{d.department}", d.parsed.event.id


def _checked(catalogue: Catalogue, d: Delivery, today: date
             ) -> tuple[Delivery, list[FieldError]]:
    """The delivery as it is recorded (identifiers in their one form), and its errors."""
    errors = domain.check_key(d.message.key) if d.message else []
    p = d.parsed
    if p.event is None or p.submission is None:
        return d, p.errors + errors
    if d.department not in catalogue.departments:
        return d, [domain.err("topic", "unknown_department", f"{d.source} has no department")]
    submission, refused = domain.normalize_identifiers(catalogue, p.submission)
    if refused:
        return d, errors + refused
    d = replace(d, parsed=replace(p, submission=submission))
    return d, (errors + domain.check_envelope(p.event, d.department, submission,
                                              COMMITMENTS_SIGNED.writer if d.from_platform
                                              else None)
               + domain.check_submission(catalogue, d.department, submission, today)
               + _platform_problems(catalogue, d, submission))


def _platform_problems(catalogue: Catalogue, d: Delivery,
                       submission: RecordSubmission) -> list[FieldError]:
    """What the publisher passes on is a subject's own commitment, nothing else."""
    if d.from_platform and submission.catalogue_item != catalogue.platform_commitment_item():
        return [domain.err("catalogue_item", "not_allowed",
                           f"a subject signs only {catalogue.platform_commitment_item()}")]
    return []


def _feedback(d: Delivery, status: FeedbackStatus,
              errors: list[FieldError]) -> RecordFeedback:
    errors = errors[:FEEDBACK_ERRORS_MAX]
    if d.parsed.unparseable and d.message is not None:
        return RecordFeedback(event_id=None, record_id=None, revision=None, status="rejected",
                              errors=errors, raw=_raw_position(d.message))
    return RecordFeedback(event_id=d.parsed.event.id if d.parsed.event else None,
                          record_id=d.parsed.record_id, revision=d.parsed.revision,
                          status=status, errors=errors if status == "rejected" else [])


def _raw_position(m: InboundMessage) -> RawPosition:
    return RawPosition(topic=m.topic, partition=m.partition, offset=m.offset)


def _kafka_key(d: Delivery) -> str | None:
    """The feedback's key: the subject key, or the message's own key as it can be stored."""
    if d.parsed.submission is not None:
        return d.parsed.submission.subject.key
    return _stored_key(d.message) if d.message is not None else None


def _stored_key(message: InboundMessage) -> str | None:
    """The message's own key as PostgreSQL and strict JSON take it (any bytes may come)."""
    if message.key is None:
        return None
    return outbox.text_for_storage(message.key, outbox.KEY_MAX_CHARS)


def _audit_row(d: Delivery, fb: RecordFeedback) -> tuple[Any, ...]:
    """(department, topic, partition, offset, channel, event_id, record_id, revision, status,
    errors, subject_key); text as PostgreSQL takes it, whatever the parser let through. A
    submission refused because its record is (or would be) erased keeps no subject."""
    def text(value: str | None) -> str | None:
        return outbox.text_for_storage(value, 1000) if value is not None else None

    sub = d.parsed.submission
    erasure = any(e.code in domain.ERASURE_CODES for e in fb.errors)
    return (d.department, d.source, d.message and d.message.partition,
            d.message and d.message.offset, d.channel, text(fb.event_id),
            text(fb.record_id), fb.revision, fb.status, [e.model_dump() for e in fb.errors],
            text(sub.subject.key) if sub is not None and not erasure else None)


async def _write(conn: asyncpg.Connection, catalogue: Catalogue, outcomes: Sequence[Outcome],
                 max_event_bytes: int | None) -> None:
    accepted_at = clock.now()
    events: list[OutboundEvent] = []
    revisions: dict[tuple[str, str], tuple[Any, ...]] = {}
    audit = []
    for o in outcomes:
        d, fb = o.delivery, o.feedback
        # The batch's events are stamped with its one time (`at`), the clock read once.
        events.append(OutboundEvent.of(FEEDBACK.of(d.department), SOURCE, _kafka_key(d), fb,
                                       event_id=domain.feedback_id(d.message), at=accepted_at))
        if fb.status == "accepted" and d.parsed.submission and d.parsed.event:
            sub = d.parsed.submission
            events.append(OutboundEvent.of(
                RECORDS_ACCEPTED, SOURCE, sub.subject.key,
                AcceptedRecord(department=d.department, submission=sub,
                               source_event_id=d.parsed.event.id, accepted_at=accepted_at),
                event_id=domain.accepted_id(d.department, sub.record_id, sub.revision),
                at=accepted_at))
            # Later accepted revisions of the same record in this batch are higher.
            revisions[(d.department, sub.record_id)] = (
                d.department, sub.record_id, sub.revision, sub.subject.key, sub.action,
                accepted_at, domain.commitment_state_of(catalogue, sub))
        if d.parsed.unparseable and d.message is not None:
            events.append(outbox.dead_letter(
                "ingest", d.message, "; ".join(f"{e.field}: {e.message}" for e in fb.errors)))
        audit.append(_audit_row(d, fb))
    await store.save_revisions(conn, list(revisions.values()))
    await store.log_submissions(conn, audit, accepted_at)
    await outbox.enqueue(conn, events, max_event_bytes)

"""Objection use cases: take an objection or repair request about a record the service knows
(its projection of credit.records.accepted), route it to the department that owns the
record, and turn the department's decision into record-status events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg
from prometheus_client import Counter

from services.objection import domain, store
from services.objection.contracts import ObjectionCreated, ObjectionRequest
from shared import clock, credentials, inbox, metrics, outbox, purge
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import (
    ObjectionClosed,
    ObjectionDecision,
    ObjectionRouted,
    RecordChange,
    RecordRef,
    RecordStatusChanged,
    SubjectRef,
)
from shared.db import TRANSIENT
from shared.envelope import AnyEvent, CloudEvent, typed
from shared.http import Problem
from shared.messages import InboundMessage, OutboundEvent, check_source, read_event
from shared.settings import Settings, get_settings
from shared.topics import (
    INBOUND,
    OBJECTION_DECIDED,
    OBJECTIONS,
    OBJECTIONS_CLOSED,
    RECORDS_ACCEPTED,
    RECORDS_STATUS,
)
from shared.worker import BatchHandler

log = logging.getLogger(__name__)
SOURCE = "xinyong/objection"


class DecisionRefused(Exception):
    """A decision that cannot apply: unknown objection, or not the owning department."""


@dataclass(frozen=True)
class Limits:
    """The public forms' rate limits (shared/settings.py)."""

    client: domain.Rate
    record: domain.Rate

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(domain.parse_rate(settings.objection_rate_limit_client),
                   domain.parse_rate(settings.objection_rate_limit_record))


REFUSED = Counter("xinyong_objection_requests_refused_total",
                  "Public objection and repair requests refused, by reason", ["reason"])


async def submit(conn: asyncpg.Connection, catalogue: Catalogue, limits: Limits, kind: str,
                 request: ObjectionRequest, client: str) -> ObjectionCreated:
    """Take an objection or repair request from the public.

    `conn` is not in a transaction: the rate windows are counted on their own, so a request
    refused later still counts. Nothing else is written unless the request is taken.
    """
    now = clock.now()
    await _count(conn, f"client:{client}", limits.client, now, "from this address")
    department = request.record.department
    if department not in catalogue.departments:
        raise _refused(Problem(422, "validation", "Unknown department", errors=[{
            "field": "record.department", "code": "unknown_department",
            "message": f"one of {', '.join(catalogue.departments)}"}]))
    subject_id, id_problems = domain.subject_id_problems(
        request.subject.type, request.subject.id, clock.today(), catalogue.legacy_uscc)
    if id_problems:
        raise _refused(Problem(422, "validation", "The subject's identifier is not valid",
                               errors=id_problems))
    requester = domain.requester_of(request.contact)
    if requester is None:
        raise _refused(Problem(422, "validation", "The contact is not usable", errors=[{
            "field": "contact", "code": "format",
            "message": "a phone number or an e-mail address (at least 3 letters or digits)"}]))
    record_id = request.record.record_id
    known = await store.known_record(conn, department, record_id)
    record_problems = domain.record_problems(
        SubjectRef(type=request.subject.type, id=subject_id), known)
    if record_problems or known is None:
        code = record_problems[0]["code"]
        title = ("No such record" if code == "record_not_found"
                 else "The record is not about this subject")
        raise _refused(Problem(422, code, title, errors=record_problems))
    await _count(conn, f"record:{department}/{record_id}", limits.record, now,
                 "about this record")

    # The record's real subject, as the registry keys it, is what every event names.
    subject = known.subject
    for _ in range(2):
        async with conn.transaction():
            objection_id = str(uuid.uuid4())
            token = domain.new_access_token()
            due = domain.due_by(clock.today())
            if await store.create(
                    conn, objection_id=objection_id, kind=kind, subject=subject,
                    department=department, record_id=record_id, revision=known.revision,
                    reason=request.reason, contact=request.contact, requester=requester,
                    token_hash=credentials.secret_hash(token), due_by=due, received_at=now):
                await outbox.enqueue(conn, _routing_events(
                    objection_id, kind, subject, known, request.reason, due, now))
                return ObjectionCreated(objection_id=objection_id, kind=kind,
                                        status="routed", due_by=due, access_token=token)
            existing = await store.open_objection(conn, kind, department, record_id, requester)
        if existing is not None:
            raise _refused(Problem(
                409, "objection_open",
                f"You already have an open {kind} about this record", detail=existing,
                extensions={"objection_id": existing}))
        # The open one was decided between the two statements: try once more.
    raise RuntimeError("an open objection kept appearing and disappearing")


def _routing_events(objection_id: str, kind: str, subject: SubjectRef, known: domain.KnownRecord,
                    reason: str, due: date, received_at: datetime) -> list[OutboundEvent]:
    routed = ObjectionRouted(
        objection_id=objection_id, kind=kind, subject=subject,
        record=RecordRef(department=known.department, record_id=known.record_id,
                         revision=known.revision),
        reason=reason, due_by=due, received_at=received_at)
    events = [OutboundEvent.of(OBJECTIONS.of(known.department), SOURCE, subject.key, routed,
                               event_id=domain.routed_id(objection_id))]
    if kind == "objection":  # 异议标注: the record shows as disputed at once
        events.append(_status_event("flag", known.department, known.record_id, subject,
                                    objection_id, None))
    return events


async def _count(conn: asyncpg.Connection, bucket: str, rate: domain.Rate, now: datetime,
                 what: str) -> None:
    start, end = domain.rate_window(rate, now)
    if await store.hit(conn, bucket, start, end) > rate.limit:
        raise _refused(Problem(
            429, "rate_limited", "Too many requests", f"at most {rate} {what}",
            headers={"Retry-After": str(domain.retry_after(now, end))}))


def _refused(problem: Problem) -> Problem:
    REFUSED.labels(problem.code).inc()
    return problem


async def decide(conn: asyncpg.Connection, department: str,
                 decision: ObjectionDecision) -> str:
    """Apply a department's decision; returns the objection's status after it."""
    row = await store.lock(conn, decision.objection_id)
    if row is None:
        raise DecisionRefused(f"no objection {decision.objection_id}")
    if row["department"] != department:
        raise DecisionRefused(f"objection {decision.objection_id} belongs to {row['department']}")
    if row["status"] != "routed":
        return str(row["status"])  # already decided: a repeated decision changes nothing
    # The record's subject now (a later revision may have moved it), else the one checked
    # when the objection was taken.
    known = await store.known_record(conn, department, row["record_id"])
    subject = known.subject if known else SubjectRef.model_validate(row["subject"])
    changes = domain.changes_on_decision(row["kind"], decision.decision, decision.withdraw)
    await store.set_decided(conn, decision.objection_id, decision.decision, decision.reason)
    if "withdraw" in changes:
        await store.mark_withdrawn(conn, department, row["record_id"])
    await outbox.enqueue(conn, [
        _status_event(change, department, row["record_id"], subject, decision.objection_id,
                      decision.reason) for change in changes])
    # For the departments' scorecards (services/stats): what was decided, and when.
    closed = ObjectionClosed(
        objection_id=decision.objection_id, kind=row["kind"], department=department,
        record=RecordRef(department=department, record_id=row["record_id"]),
        decision=decision.decision, received_at=row["received_at"], due_by=row["due_by"],
        decided_at=clock.now())
    await outbox.enqueue(conn, [OutboundEvent.of(OBJECTIONS_CLOSED, SOURCE, subject.key, closed,
                                                 event_id=domain.closed_id(decision.objection_id))])
    return decision.decision


def _status_event(change: RecordChange, department: str, record_id: str, subject: SubjectRef,
                  objection_id: str, reason: str | None) -> OutboundEvent:
    payload = RecordStatusChanged(change=change, department=department,
                                  record_id=record_id, subject=subject,
                                  objection_id=objection_id, reason=reason)
    return OutboundEvent.of(RECORDS_STATUS, SOURCE, subject.key, payload,
                            event_id=domain.status_change_id(objection_id, change))


@dataclass(frozen=True)
class Decision:
    message: InboundMessage
    event: AnyEvent
    department: str
    payload: ObjectionDecision


async def _not_erased(conn: asyncpg.Connection, key: bytes,
                      decisions: list[Decision]) -> list[Decision]:
    """A decision about an objection that was erased (a redelivery, a replay) is dropped: a
    dead letter would keep what was erased."""
    refs = [purge.objection_reference(key, d.payload.objection_id) for d in decisions]
    erased = await purge.erased_references(conn, refs)
    kept = [d for ref, d in zip(refs, decisions, strict=True) if ref not in erased]
    metrics.ERASED_DROPPED.labels("objection").inc(len(decisions) - len(kept))
    return kept


def make_handler(ctx: ServiceContext) -> BatchHandler:
    key = purge.erasure_key(ctx.settings)

    async def handle(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        accepted = [m for m in messages if m.topic == RECORDS_ACCEPTED.name]
        if accepted:
            await remember_accepted(conn, accepted, ctx.catalogue, key)
        decisions, dead = parse_decisions(
            [m for m in messages if m.topic != RECORDS_ACCEPTED.name])
        decisions = await _not_erased(conn, key, decisions)
        for d in await inbox.only_first_seen(conn, decisions, lambda d: d.event):
            try:
                async with conn.transaction():  # a savepoint: a refused decision undoes itself
                    await decide(conn, d.department, d.payload)
            except DecisionRefused as exc:
                dead.append(outbox.dead_letter("objection", d.message, str(exc)))
        await outbox.enqueue(conn, dead)

    return handle


async def remember_accepted(conn: asyncpg.Connection, messages: Sequence[InboundMessage],
                            catalogue: Catalogue | None = None,
                            erasure_key: bytes | None = None) -> None:
    """Keep the projection of the accepted records that objections are checked against (and,
    given the catalogue, when each is erased); a record the ledger says was erased is not
    taken back (a replay of the topic)."""
    events, dead = [], []
    for m in messages:
        try:
            events.append(read_event(m, RECORDS_ACCEPTED))
        except ValueError as exc:
            dead.append(outbox.dead_letter("objection", m, f"unreadable event: {exc}"))
    fresh = await inbox.only_first_seen(conn, events, lambda e: e)
    known = domain.latest_known((e.data for e in fresh), catalogue)
    erased = await purge.erased_records(
        conn, erasure_key or purge.erasure_key(get_settings()),
        [(k.department, k.record_id) for k in known])
    if erased:
        metrics.ERASED_DROPPED.labels("objection").inc(len(erased))
        known = [k for k in known if (k.department, k.record_id) not in erased]
    await store.remember_records(conn, known)
    if catalogue is not None:
        await purge.schedule(conn, [(k.department, k.record_id, k.subject.key, k.purge_on)
                                    for k in known if not k.withdrawn])
    await outbox.enqueue(conn, dead)


def needs_no_work(message: InboundMessage) -> bool:
    """A department's submission on its inbound topic: ingest's business, nothing for this
    service to do or store (the same test as `parse_decisions`' pre-filter)."""
    return message.topic != RECORDS_ACCEPTED.name and not _may_be_a_decision(message)


_DECIDED = OBJECTION_DECIDED.encode()


def _may_be_a_decision(message: InboundMessage) -> bool:
    return _DECIDED in message.value


def parse_decisions(messages: Sequence[InboundMessage]
                    ) -> tuple[list[Decision], list[OutboundEvent]]:
    """The departments' decisions among their inbound events; record submissions are
    ingest's business and are passed over."""
    decisions, dead = [], []
    for m in messages:
        if not _may_be_a_decision(m):
            continue  # cheap pre-filter: most inbound events are record submissions
        try:
            if CloudEvent.model_validate_json(m.value).type != OBJECTION_DECIDED:
                continue
            event = typed(ObjectionDecision).model_validate_json(m.value)
            department = INBOUND.code_of(m.topic) or ""
            check_source(event, INBOUND.of(department))
            decisions.append(Decision(m, event, department, event.data))
        except ValueError as exc:
            dead.append(outbox.dead_letter("objection", m, f"unreadable decision: {exc}"))
    return decisions, dead


TIMER_SECONDS = 5.0


async def deadline_timer(ctx: ServiceContext) -> None:
    """Track the statutory deadline (征信业管理条例 art. 25): an objection undecided after
    its `due_by` is marked overdue on its timeline and counted for the operators."""
    while True:
        try:
            async with ctx.pool.acquire() as conn, conn.transaction():
                late = await store.mark_overdue(conn, clock.today())
                metrics.OBJECTIONS_OVERDUE.labels(ctx.name).set(
                    await store.count_overdue(conn))
            if late:
                log.warning("objections past their deadline: %s", ", ".join(late))
        except TRANSIENT as exc:
            log.warning("deadline timer: database unavailable (%s)", exc)
        await asyncio.sleep(TIMER_SECONDS)


async def rate_window_cleaner(ctx: ServiceContext) -> None:
    """Every minute: delete the rate windows that have ended (they count nothing more)."""
    while True:
        try:
            async with ctx.pool.acquire() as conn:
                await store.forget_windows(conn, clock.now())
        except TRANSIENT as exc:
            log.warning("rate window cleaner: database unavailable (%s)", exc)
        await asyncio.sleep(60)

"""Objection use cases: take an objection or repair request, route it to the department that
owns the record, and turn the department's decision into record-status events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.objection import domain, store
from services.objection.contracts import ObjectionCreated, ObjectionRequest
from shared import clock, inbox, metrics, outbox
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import (
    ObjectionDecision,
    ObjectionRouted,
    RecordRef,
    RecordStatusChanged,
    SubjectRef,
)
from shared.db import TRANSIENT
from shared.envelope import AnyEvent, CloudEvent, typed
from shared.http import Problem
from shared.identifiers import check_resident_id, check_uscc
from shared.messages import InboundMessage, OutboundEvent, check_source
from shared.topics import INBOUND, OBJECTION_DECIDED, OBJECTIONS, RECORDS_STATUS
from shared.worker import BatchHandler

log = logging.getLogger(__name__)
SOURCE = "xinyong/objection"


class DecisionRefused(Exception):
    """A decision that cannot apply: unknown objection, or not the owning department."""


async def submit(conn: asyncpg.Connection, catalogue: Catalogue, kind: str,
                 request: ObjectionRequest) -> ObjectionCreated:
    department = request.record.department
    if department not in catalogue.departments:
        raise Problem(422, "validation", "Unknown department", errors=[{
            "field": "record.department", "code": "unknown_department",
            "message": f"one of {', '.join(catalogue.departments)}"}])
    subject_problems = (check_resident_id(request.subject.id.upper(), clock.today())
                        if request.subject.type == "individual"
                        else check_uscc(request.subject.id.upper(), request.subject.type,
                                        catalogue.legacy_uscc))
    if subject_problems:
        raise Problem(422, "validation", "The subject's identifier is not valid", errors=[
            {"field": "subject.id", "code": p.code, "message": p.message}
            for p in subject_problems])
    received_at = clock.now()
    objection_id = str(uuid.uuid4())
    token = domain.new_access_token()
    subject = SubjectRef(type=request.subject.type, id=request.subject.id.upper())
    due = domain.due_by(clock.today())
    await store.create(conn, objection_id=objection_id, kind=kind, subject=subject,
                       department=department, record_id=request.record.record_id,
                       reason=request.reason, contact=request.contact,
                       token_hash=domain.token_hash(token), due_by=due, received_at=received_at)
    routed = ObjectionRouted(
        objection_id=objection_id, kind=kind, subject=subject,
        record=RecordRef(department=department, record_id=request.record.record_id),
        reason=request.reason, due_by=due, received_at=received_at)
    events = [OutboundEvent.of(OBJECTIONS.of(department), SOURCE, subject.key, routed)]
    if kind == "objection":  # 异议标注: the record shows as disputed at once
        events.append(_status_event("flag", department, request.record.record_id, subject,
                                    objection_id, None))
    await outbox.enqueue(conn, events)
    return ObjectionCreated(objection_id=objection_id, kind=kind,
                            status="routed", due_by=due, access_token=token)


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
    subject = SubjectRef.model_validate(row["subject"])
    changes = domain.changes_on_decision(row["kind"], decision.decision, decision.withdraw)
    await store.set_decided(conn, decision.objection_id, decision.decision, decision.reason)
    await outbox.enqueue(conn, [
        _status_event(change, department, row["record_id"], subject, decision.objection_id,
                      decision.reason) for change in changes])
    return decision.decision


def _status_event(change: str, department: str, record_id: str, subject: SubjectRef,
                  objection_id: str, reason: str | None) -> OutboundEvent:
    payload = RecordStatusChanged(change=change, department=department,
                                  record_id=record_id, subject=subject,
                                  objection_id=objection_id, reason=reason)
    return OutboundEvent.of(RECORDS_STATUS, SOURCE, subject.key, payload)


@dataclass(frozen=True)
class Decision:
    message: InboundMessage
    event: AnyEvent
    department: str
    payload: ObjectionDecision


def make_handler(ctx: ServiceContext) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        decisions, dead = parse_decisions(messages)
        for d in await inbox.only_first_seen(conn, decisions, lambda d: d.event):
            try:
                async with conn.transaction():  # a savepoint: a refused decision undoes itself
                    await decide(conn, d.department, d.payload)
            except DecisionRefused as exc:
                dead.append(outbox.dead_letter("objection", d.message, str(exc)))
        await outbox.enqueue(conn, dead)

    return handle


def parse_decisions(messages: Sequence[InboundMessage]
                    ) -> tuple[list[Decision], list[OutboundEvent]]:
    """The departments' decisions among their inbound events; record submissions are
    ingest's business and are passed over."""
    decisions, dead = [], []
    for m in messages:
        if OBJECTION_DECIDED.encode() not in m.value:
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

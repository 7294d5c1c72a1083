"""Objection use cases: take an objection or repair request about a record the service knows
(its projection of credit.records.accepted), route it to the department that owns the
record, and turn the department's decision into record-status events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from services.objection import domain, store
from services.objection.contracts import (
    AcceptedReading,
    ComplaintCreated,
    ComplaintRequest,
    EntryAbout,
    ListReading,
    ObjectionAbout,
    ObjectionCreated,
    ObjectionRequest,
    RecordAbout,
    SnapshotReading,
)
from shared import clock, credentials, inbox, metrics, outbox, purge
from shared.catalogue import Catalogue, load_catalogue
from shared.context import ServiceContext
from shared.contract import (
    Commitment,
    ComplaintRouted,
    ObjectionClosed,
    ObjectionDecision,
    ObjectionRouted,
    RecordChange,
    RecordRef,
    RecordStatusChanged,
    RequestChanged,
    SubjectRef,
    SubjectType,
)
from shared.db import TRANSIENT
from shared.envelope import AnyEvent, CloudEvent, typed
from shared.http import Problem
from shared.identifiers import is_uuid
from shared.messages import (
    InboundMessage,
    OutboundEvent,
    caused_id,
    check_source,
    read_event,
    read_event_as,
)
from shared.settings import Settings, get_settings
from shared.topics import (
    COMPLAINTS,
    DECISIONS_RECEIVED,
    INBOUND,
    LISTS_CHANGED,
    OBJECTION_DECIDED,
    OBJECTIONS,
    OBJECTIONS_CLOSED,
    RECORDS_ACCEPTED,
    RECORDS_STATUS,
    REQUESTS_CHANGED,
    SUBJECTS_CHANGED,
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
COMPLAINTS_OVERDUE = Gauge("xinyong_complaints_overdue",
                           "Complaints (投诉) still unanswered after their 30-day deadline")


async def submit(conn: asyncpg.Connection, catalogue: Catalogue, limits: Limits, kind: str,
                 request: ObjectionRequest, client: str) -> ObjectionCreated:
    """Take an objection or repair request from the public.

    `conn` is not in a transaction: the rate windows are counted on their own, so a request
    refused later still counts. Nothing else is written unless the request is taken. A
    repair request (`RepairRequest`) is judged on the registry's figures and refused with
    every failing reason at once; a second open one for the same record and requester is
    answered with the open one (no new token).
    """
    now = clock.now()
    known, requester = await _checked_request(conn, catalogue, limits, request, client, now)
    department, record_id = known.department, known.record_id
    repair = await _repair_terms(conn, catalogue, request, known) if kind == "repair" else None

    # The record's real subject, as the registry keys it, is what every event names.
    subject = known.subject
    for _ in range(2):
        async with conn.transaction():
            objection_id = str(uuid.uuid4())
            token = domain.new_access_token()
            today = clock.today()
            deadlines = (domain.repair_deadlines(today, catalogue.repair.steps)
                         if repair is not None else None)
            due = deadlines.decide_by if deadlines else domain.due_by(today)
            # 异议标注: the record shows as disputed at once, unless the department has
            # already examined this revision on an objection and rejected it (objecting
            # again would hold a pending listing for ever).
            flags = kind == "objection" and not await store.rejected_on(
                conn, department, record_id, known.revision)
            if await store.create(
                    conn, objection_id=objection_id, kind=kind, subject=subject,
                    department=department, record_id=record_id, revision=known.revision,
                    reason=request.reason, contact=request.contact, requester=requester,
                    token_hash=credentials.secret_hash(token), due_by=due, received_at=now,
                    commitment=repair.commitment.model_dump(mode="json") if repair else None,
                    obligations=repair.obligations if repair else None,
                    steps=_repair_steps(deadlines) if deadlines else (), holds_flag=flags):
                await outbox.enqueue(conn, [
                    *_routing_events(objection_id, kind, subject, known, request.reason, due,
                                     now, flags, repair),
                    *await request_events(conn, [objection_id])])
                return ObjectionCreated(
                    objection_id=objection_id, kind=kind, status="routed", due_by=due,
                    access_token=token,
                    result_by=(domain.pass_on_by(due, catalogue.repair.steps)
                               if repair is not None else None))
            existing = await store.open_request(conn, kind, department, record_id, requester)
        if existing is not None and kind == "repair":
            # CONTRACT.md's bad input: the same open request again is the same request.
            return ObjectionCreated(
                objection_id=existing["objection_id"], kind="repair", status="routed",
                due_by=existing["due_by"],
                result_by=domain.pass_on_by(existing["due_by"], catalogue.repair.steps))
        if existing is not None:
            raise _refused(Problem(
                409, "objection_open",
                f"You already have an open {kind} about this record",
                detail=existing["objection_id"],
                extensions={"objection_id": existing["objection_id"]}))
        # The open one was decided between the two statements: try once more.
    raise RuntimeError("an open objection kept appearing and disappearing")


async def _checked_request(conn: asyncpg.Connection, catalogue: Catalogue, limits: Limits,
                           request: ObjectionRequest, client: str,
                           now: datetime) -> tuple[domain.KnownRecord, str]:
    """The rate limits, the department, the subject's identifier, the contact and the record
    (it exists and is about the subject named): the known record and the requester."""
    await _count(conn, f"client:{client}", limits.client, now, "from this address")
    known = await _known_record(conn, catalogue, request.record.department,
                                request.record.record_id, request.subject.type,
                                request.subject.id)
    requester = _requester(request.contact)
    await _count(conn, f"record:{known.department}/{known.record_id}", limits.record, now,
                 "about this record")
    return known, requester


async def _known_record(conn: asyncpg.Connection, catalogue: Catalogue, department: str,
                        record_id: str, subject_type: SubjectType, raw_id: str,
                        field_prefix: str = "") -> domain.KnownRecord:
    if department not in catalogue.departments:
        raise _refused(Problem(422, "validation", "Unknown department", errors=[{
            "field": f"{field_prefix}record.department", "code": "unknown_department",
            "message": f"one of {', '.join(catalogue.departments)}"}]))
    subject_id, id_problems = domain.subject_id_problems(
        subject_type, raw_id, clock.today(), catalogue.legacy_uscc)
    if id_problems:
        raise _refused(Problem(422, "validation", "The subject's identifier is not valid",
                               errors=_prefixed(id_problems, field_prefix)))
    known = await store.known_record(conn, department, record_id)
    record_problems = domain.record_problems(SubjectRef(type=subject_type, id=subject_id), known)
    if record_problems or known is None:
        code = record_problems[0]["code"]
        title = ("No such record" if code == "record_not_found"
                 else "The record is not about this subject")
        raise _refused(Problem(422, code, title,
                               errors=_prefixed(record_problems, field_prefix)))
    return known


def _prefixed(problems: list[domain.FieldProblem], prefix: str) -> list[domain.FieldProblem]:
    return [{**p, "field": prefix + p["field"]} for p in problems]


def _requester(contact: str) -> str:
    requester = domain.requester_of(contact)
    if requester is None:
        raise _refused(Problem(422, "validation", "The contact is not usable", errors=[{
            "field": "contact", "code": "format",
            "message": "a phone number or an e-mail address (at least 3 letters or digits)"}]))
    return requester


@dataclass(frozen=True)
class RepairTerms:
    commitment: Commitment
    obligations: dict[str, Any]


async def _repair_terms(conn: asyncpg.Connection, catalogue: Catalogue,
                        request: ObjectionRequest, known: domain.KnownRecord) -> RepairTerms:
    """A repair request's eligibility (NDRC Order 36), on the registry's own figures for the
    record: every failing reason in one 422."""
    today = clock.today()
    commitment = getattr(request, "commitment", None)
    obligations = getattr(request, "obligations", None)
    facts = await store.record_facts(conn, known.department, known.record_id)
    problems = []
    if commitment is not None:
        problems += domain.commitment_problems(
            catalogue, commitment.text_version, commitment.signed_on or today, today)
    problems += domain.repair_eligibility(
        catalogue, facts, today, commitment_given=commitment is not None,
        obligations_declared=obligations is not None)
    if problems or commitment is None or obligations is None:
        eligible_from = next((p["eligible_from"] for p in problems if "eligible_from" in p),
                             None)
        raise _refused(Problem(
            422, "repair_not_eligible", "The repair request cannot be taken",
            "; ".join(p["message"] for p in problems), errors=problems,
            extensions={"eligible_from": eligible_from} if eligible_from else None))
    return RepairTerms(
        Commitment(commitment_id=caused_id("xinyong/objection", "commitment", known.department,
                                           known.record_id, commitment.signer_name,
                                           str(uuid.uuid4())),
                   text_version=commitment.text_version, signer_name=commitment.signer_name,
                   signer_role=commitment.signer_role, signed_on=commitment.signed_on or today),
        obligations.model_dump(mode="json"))


def _repair_steps(deadlines: domain.RepairDeadlines) -> list[tuple[str, str]]:
    return [("accepted", f"已受理（受理时限{deadlines.accept_by}）"),
            ("checked", "平台核查通过：已过最短公示期，已签署信用承诺"
                        f"（核查时限{deadlines.check_by}）")]


def _routing_events(objection_id: str, kind: str, subject: SubjectRef, known: domain.KnownRecord,
                    reason: str, due: date, received_at: datetime, flags: bool,
                    repair: RepairTerms | None = None) -> list[OutboundEvent]:
    extra: dict[str, Any] = ({"commitment": repair.commitment.model_dump(mode="json"),
                              "obligations": repair.obligations} if repair else {})
    routed = ObjectionRouted(
        objection_id=objection_id, kind=kind, subject=subject,
        record=RecordRef(department=known.department, record_id=known.record_id,
                         revision=known.revision),
        reason=reason, due_by=due, received_at=received_at, **extra)
    events = [OutboundEvent.of(OBJECTIONS.of(known.department), SOURCE, subject.key, routed,
                               event_id=domain.routed_id(objection_id))]
    if flags:
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


async def decide(conn: asyncpg.Connection, department: str, decision: ObjectionDecision,
                 catalogue: Catalogue | None = None) -> str:
    """Apply a department's decision; returns the objection's status after it."""
    if not is_uuid(decision.objection_id):
        raise DecisionRefused(f"no objection {decision.objection_id}")
    record = await store.record_of(conn, decision.objection_id)
    if record is not None:
        # The record's copy before the objection, in a batch's order (`remember`): a
        # correction being kept meanwhile is committed before the revision is compared.
        await store.lock_known_records(conn, [record])
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
    # A revision later than the one objected to, already here, is the correction.
    corrected = decision.corrected is not None or (
        known is not None and row["revision"] is not None and known.revision > row["revision"])
    changes = domain.changes_on_decision(row["kind"], decision.decision, decision.withdraw,
                                         corrected)
    steps = (catalogue or load_catalogue()).repair.steps
    result_by = (domain.pass_on_by(clock.today(), steps)
                 if row["kind"] == "repair" and decision.decision == "upheld" else None)
    await store.set_decided(conn, decision.objection_id, decision.decision, decision.reason,
                            result_by, correction_awaited=domain.awaits_correction(
                                row["kind"], decision.decision, decision.withdraw, corrected))
    if "unflag" in changes and await store.flag_held(conn, department, row["record_id"]):
        changes = [c for c in changes if c != "unflag"]  # another objection keeps it
    if "flag" in changes and row["holds_flag"]:
        changes = [c for c in changes if c != "flag"]  # this one set it when routed
    if "withdraw" in changes:
        await store.mark_withdrawn(conn, department, row["record_id"])
    commitment = (Commitment.model_validate(row["commitment"])
                  if row["commitment"] is not None else None)
    await outbox.enqueue(conn, [
        *(_status_event(change, department, row["record_id"], subject, decision.objection_id,
                        decision.reason, commitment if change == "repair" else None)
          for change in changes),
        *await request_events(conn, [decision.objection_id])])
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
                  objection_id: str, reason: str | None,
                  commitment: Commitment | None = None) -> OutboundEvent:
    payload = RecordStatusChanged(change=change, department=department,
                                  record_id=record_id, subject=subject,
                                  objection_id=objection_id, reason=reason,
                                  commitment=commitment)
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
    """A decision about an objection that was erased (a redelivery, a replay, one sent while
    the erasure was written) is dropped: a dead letter would keep what was erased."""
    await store.lock_objections(conn, (d.payload.objection_id for d in decisions))
    refs = [purge.objection_reference(key, d.payload.objection_id) for d in decisions]
    erased = await purge.erased_references(conn, refs)
    kept = [d for ref, d in zip(refs, decisions, strict=True) if ref not in erased]
    metrics.ERASED_DROPPED.labels("objection").inc(len(decisions) - len(kept))
    return kept


def make_handler(ctx: ServiceContext) -> BatchHandler:
    key = purge.erasure_key(ctx.settings)

    async def handle(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        await remember(conn, messages, ctx.catalogue, key)
        decisions, dead = parse_decisions(
            [m for m in messages if m.topic == DECISIONS_RECEIVED.name])
        decisions = await _not_erased(conn, key, decisions)
        for d in await inbox.only_first_seen(conn, decisions, lambda d: d.event):
            try:
                async with conn.transaction():  # a savepoint: a refused decision undoes itself
                    await decide(conn, d.department, d.payload, ctx.catalogue)
            except DecisionRefused as exc:
                dead.append(outbox.dead_letter("objection", d.message, str(exc)))
        await outbox.enqueue(conn, dead)

    return handle


@dataclass
class Projected:
    """What a batch says of the records objections are judged on, read before anything is
    locked: the accepted records (the latest revision of each), the registry's facts of each record
    (the latest of the batch), the repairs its snapshots show done, the list entries."""

    known: list[domain.KnownRecord] = field(default_factory=list)
    facts: dict[tuple[str, str], domain.RecordFacts] = field(default_factory=dict)
    repaired: set[str] = field(default_factory=set)
    entries: list[CloudEvent[ListReading]] = field(default_factory=list)
    dead: list[OutboundEvent] = field(default_factory=list)

    def records(self) -> set[tuple[str, str]]:
        """Every record the batch writes about, as (department, record_id)."""
        return ({(k.department, k.record_id) for k in self.known} | set(self.facts)
                | {(b.department, b.record_id) for e in self.entries for b in e.data.basis})


async def remember(conn: asyncpg.Connection, messages: Sequence[InboundMessage],
                   catalogue: Catalogue | None = None,
                   erasure_key: bytes | None = None) -> None:
    """Keep this service's projections of the batch's accepted records
    (credit.records.accepted), snapshots (credit.subjects.changed) and list entries
    (credit.lists.changed); other messages are passed over. Given the catalogue, each
    accepted record's erasure is scheduled.

    The rows of every record the batch is about are locked once, in key order, before the
    erasure ledger is read: an erasure takes a subject's rows in that order
    (`store.lock_known_of_subject`), so the two cannot deadlock, and the ledger read after
    the wait has the erasure. A record the ledger says was erased is not taken back (a
    replay of a topic)."""
    batch = project(messages, catalogue)
    records = batch.records()
    await store.lock_known_records(conn, records)
    erased = await purge.erased_records(
        conn, erasure_key or purge.erasure_key(get_settings()), records)
    known = [k for k in batch.known if (k.department, k.record_id) not in erased]
    if len(known) < len(batch.known):
        metrics.ERASED_DROPPED.labels("objection").inc(len(batch.known) - len(known))
    # No event-id record for accepted records or snapshots: applied again, one changes
    # nothing. A record's row and its erasure schedule change only with a higher revision
    # (a replay of an older one must not bring back its schedule); the facts' upsert keeps
    # the higher revision and version; a repair is marked passed on once.
    written = await store.remember_records(conn, known)
    corrections = [(objection_id, k) for objection_id, k in await store.corrections_arrived(
        conn, [k for k in known if (k.department, k.record_id) in written])
        if not await store.flag_held(conn, k.department, k.record_id)]
    if catalogue is not None:
        await purge.schedule(conn, [(k.department, k.record_id, k.subject.key, k.purge_on)
                                    for k in known if not k.withdrawn
                                    and (k.department, k.record_id) in written])
    await store.remember_facts(conn, [f for k, f in batch.facts.items() if k not in erased])
    passed = await store.repairs_passed_on(conn, sorted(batch.repaired))
    # An entry whose every basis record was erased is not kept (its exit, or a replay, may
    # arrive after the erasure).
    gone = {e.data.entry_id for e in batch.entries if e.data.basis
            and all((b.department, b.record_id) in erased for b in e.data.basis)}
    await store.remember_entries(conn, [(e.data.entry_id, e.data.list, e.data.subject.key)
                                        for e in batch.entries if e.data.entry_id not in gone])
    await store.forget_entries(conn, sorted(gone))
    await outbox.enqueue(conn, [
        *batch.dead, *await request_events(conn, passed),
        # The department's next revision after an upheld objection: its correction.
        *(_status_event("unflag", k.department, k.record_id, k.subject, objection_id,
                        "corrected revision received") for objection_id, k in corrections)])


def project(messages: Sequence[InboundMessage], catalogue: Catalogue | None) -> Projected:
    """Read the batch's events of the three topics (`Projected`); an unreadable one becomes
    a dead letter."""
    batch = Projected()
    accepted: list[CloudEvent[AcceptedReading]] = []
    for m in messages:
        try:
            if m.topic == RECORDS_ACCEPTED.name:
                accepted.append(read_event_as(m, RECORDS_ACCEPTED, AcceptedReading))
            elif m.topic == SUBJECTS_CHANGED.name:
                _take_facts(batch, read_event_as(m, SUBJECTS_CHANGED, SnapshotReading).data)
            elif m.topic == LISTS_CHANGED.name:
                batch.entries.append(read_event_as(m, LISTS_CHANGED, ListReading))
        except ValueError as exc:
            batch.dead.append(outbox.dead_letter("objection", m, f"unreadable event: {exc}"))
    batch.known = domain.latest_known((e.data for e in accepted), catalogue)
    return batch


def _take_facts(batch: Projected, snapshot: SnapshotReading) -> None:
    for f in domain.facts_of(snapshot):
        kept = batch.facts.get((f.department, f.record_id))
        if kept is None or (f.revision, f.version) > (kept.revision, kept.version):
            batch.facts[(f.department, f.record_id)] = f
    batch.repaired.update(r.repair.objection_id for r in domain.repaired_in(snapshot)
                          if r.repair is not None and is_uuid(r.repair.objection_id))


# --- the subject's own view: each request as it stands (credit.requests.changed) ---------


async def request_events(conn: asyncpg.Connection,
                         objection_ids: Sequence[str]) -> list[OutboundEvent]:
    """The state of objections and repair requests, for the publisher's /api/v1/me."""
    events = []
    for objection_id in objection_ids:
        found = await store.with_timeline(conn, objection_id)
        if found is None:
            continue
        subject = SubjectRef.model_validate(found["subject"])
        events.append(_request_event(RequestChanged(
            request_id=objection_id, kind=found["kind"], subject=subject,
            about={"kind": "record", "department": found["department"],
                   "record_id": found["record_id"]},
            status=found["status"], due_by=found["due_by"], received_at=found["received_at"],
            decided_at=found["decided_at"], overdue=found["overdue_at"] is not None,
            version=len(found["timeline"]),
            timeline=[{"status": t["status"], "at": t["at"].isoformat()}
                      for t in found["timeline"]])))
    return events


async def complaint_events(conn: asyncpg.Connection,
                           complaint_ids: Sequence[str]) -> list[OutboundEvent]:
    events = []
    for complaint_id in complaint_ids:
        found = await store.complaint(conn, complaint_id)
        if found is None or found["subject"] is None:
            continue  # about the system: no subject's view shows it
        events.append(_request_event(RequestChanged(
            request_id=complaint_id, kind="complaint",
            subject=SubjectRef.model_validate(found["subject"]), about=found["about"],
            status=found["status"], due_by=found["due_by"], received_at=found["received_at"],
            decided_at=found["answered_at"], overdue=found["overdue_at"] is not None,
            version=len(found["timeline"]),
            timeline=[{"status": t["status"], "at": t["at"].isoformat()}
                      for t in found["timeline"]])))
    return events


def _request_event(state: RequestChanged) -> OutboundEvent:
    return OutboundEvent.of(REQUESTS_CHANGED, SOURCE, state.subject.key, state,
                            event_id=domain.request_changed_id(state.request_id, state.version))


def parse_decisions(messages: Sequence[InboundMessage]
                    ) -> tuple[list[Decision], list[OutboundEvent]]:
    """The departments' decisions as ingest passed them on from their inbound topics
    (credit.decisions.received), each read as the department sent it: from that department
    (the topic it came on), of the decision's type and shape."""
    decisions, dead = [], []
    for m in messages:
        try:
            received = read_event(m, DECISIONS_RECEIVED).data
            event = typed(ObjectionDecision).model_validate(received.sent)
            if event.type != OBJECTION_DECIDED:
                raise ValueError(f"type {event.type!r} is not {OBJECTION_DECIDED!r}")
            check_source(event, INBOUND.of(received.department))
            decisions.append(Decision(m, event, received.department, event.data))
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
                today = clock.today()
                late = await store.mark_overdue(conn, today)
                late += await store.passing_on_overdue(conn, today)
                late_complaints = await store.mark_complaints_overdue(conn, today)
                await outbox.enqueue(conn, [*await request_events(conn, late),
                                            *await complaint_events(conn, late_complaints)])
                metrics.OBJECTIONS_OVERDUE.labels(ctx.name).set(
                    await store.count_overdue(conn))
                COMPLAINTS_OVERDUE.set(await store.count_complaints_overdue(conn))
            if late_complaints:
                log.warning("complaints past their deadline: %s", ", ".join(late_complaints))
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


# --- complaints (投诉, 征信业管理条例 art. 26) --------------------------------------------


@dataclass(frozen=True)
class ComplaintTarget:
    about: dict[str, Any]
    about_key: str
    subject: SubjectRef | None
    department: str | None  # None: the operators answer


async def submit_complaint(conn: asyncpg.Connection, catalogue: Catalogue, limits: Limits,
                           request: ComplaintRequest, client: str
                           ) -> tuple[ComplaintCreated, bool]:
    """Take a complaint: what it is about must exist (and be about the subject named); it
    goes to the department concerned, or to the operators. Returns (the complaint, whether
    it is new): the same open complaint again is the same complaint."""
    now = clock.now()
    await _count(conn, f"client:{client}", limits.client, now, "from this address")
    target = await _complaint_target(conn, catalogue, request.about)
    requester = _requester(request.contact)
    await _count(conn, f"about:{target.about_key}", limits.record, now, "about this")
    routed_to = target.department or "operators"
    for _ in range(2):
        async with conn.transaction():
            complaint_id = str(uuid.uuid4())
            token = domain.new_access_token()
            due = domain.due_by(clock.today(), domain.COMPLAINT_DAYS)
            if await store.create_complaint(
                    conn, complaint_id=complaint_id, about_kind=request.about.kind,
                    about=target.about, about_key=target.about_key, subject=target.subject,
                    department=target.department, text=request.text, contact=request.contact,
                    requester=requester, token_hash=credentials.secret_hash(token),
                    due_by=due, received_at=now):
                events = await complaint_events(conn, [complaint_id])
                if target.department is not None:
                    routed = ComplaintRouted(complaint_id=complaint_id, about=target.about,
                                             subject=target.subject, text=request.text,
                                             due_by=due, received_at=now)
                    events.append(OutboundEvent.of(
                        COMPLAINTS.of(target.department), SOURCE,
                        target.subject.key if target.subject else None, routed,
                        event_id=domain.complaint_routed_id(complaint_id)))
                await outbox.enqueue(conn, events)
                return ComplaintCreated(complaint_id=complaint_id, status="routed",
                                        routed_to=routed_to, due_by=due,
                                        access_token=token), True
            existing = await store.open_complaint(conn, target.about_key, requester)
        if existing is not None:
            return ComplaintCreated(complaint_id=existing["complaint_id"], status="routed",
                                    routed_to=routed_to, due_by=existing["due_by"]), False
    raise RuntimeError("an open complaint kept appearing and disappearing")


async def _complaint_target(conn: asyncpg.Connection, catalogue: Catalogue,
                            about: Any) -> ComplaintTarget:
    if isinstance(about, RecordAbout):
        known = await _known_record(conn, catalogue, about.record.department,
                                    about.record.record_id, about.subject.type,
                                    about.subject.id, "about.")
        return ComplaintTarget(
            {"kind": "record", "department": known.department, "record_id": known.record_id},
            domain.complaint_about_key("record", f"{known.department}/{known.record_id}"),
            known.subject, known.department)
    if isinstance(about, ObjectionAbout):
        row = (await store.objection_brief(conn, about.objection_id)
               if is_uuid(about.objection_id) else None)
        if row is None:
            raise _refused(Problem(422, "objection_not_found", "No such objection", errors=[{
                "field": "about.objection_id", "code": "objection_not_found",
                "message": "no objection or repair request with this id"}]))
        return ComplaintTarget(
            {"kind": "objection", "objection_id": row["objection_id"]},
            domain.complaint_about_key("objection", row["objection_id"]),
            SubjectRef.model_validate(row["subject"]), row["department"])
    if isinstance(about, EntryAbout):
        if about.list not in catalogue.lists:
            raise _refused(Problem(422, "validation", "Unknown list", errors=[{
                "field": "about.list", "code": "unknown_list",
                "message": f"one of {', '.join(catalogue.lists)}"}]))
        subject_id, id_problems = domain.subject_id_problems(
            about.subject.type, about.subject.id, clock.today(), catalogue.legacy_uscc)
        if id_problems:
            raise _refused(Problem(422, "validation", "The subject's identifier is not valid",
                                   errors=_prefixed(id_problems, "about.")))
        entry = (await store.known_entry(conn, about.entry_id)
                 if is_uuid(about.entry_id) else None)
        if entry is None or entry["list"] != about.list:
            raise _refused(Problem(422, "entry_not_found", "No such list entry", errors=[{
                "field": "about.entry_id", "code": "entry_not_found",
                "message": "no entry with this id on this list"}]))
        if entry["subject_key"] != SubjectRef(type=about.subject.type, id=subject_id).key:
            raise _refused(Problem(422, "entry_subject_mismatch",
                                   "The entry is not about this subject", errors=[{
                                       "field": "about.subject.id",
                                       "code": "entry_subject_mismatch",
                                       "message": "the entry is not about this subject"}]))
        subject_type, _, identifier = entry["subject_key"].partition(":")
        return ComplaintTarget(
            {"kind": "list_entry", "list": entry["list"], "entry_id": entry["entry_id"]},
            domain.complaint_about_key("entry", entry["entry_id"]),
            SubjectRef.model_validate({"type": subject_type, "id": identifier}),
            domain.list_department(catalogue, entry["list"]))
    return ComplaintTarget({"kind": "system"}, domain.complaint_about_key("system", None),
                           None, None)


class AnswerRefused(Exception):
    """An answer that cannot apply: no such complaint for this party."""


async def answer_complaint(conn: asyncpg.Connection, complaint_id: str, kind: str, party: str,
                           answer: str) -> str:
    """The department the complaint was routed to (or an operator, for those routed to the
    operators) answers it; returns the status after (a second answer changes nothing)."""
    found = await store.complaint(conn, complaint_id, lock=True) if is_uuid(complaint_id) \
        else None
    allowed = found is not None and (
        (kind == "department" and found["department"] == party)
        or (kind == "operator" and found["department"] is None))
    if found is None or not allowed:
        raise AnswerRefused(f"no complaint {complaint_id} for this {kind}")
    if found["status"] != "routed":
        return str(found["status"])
    await store.answer_complaint(conn, complaint_id, f"{kind}:{party}", answer)
    await outbox.enqueue(conn, await complaint_events(conn, [complaint_id]))
    return "answered"

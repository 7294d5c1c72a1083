"""The registry's stream handler: apply accepted records and status changes to the archive,
then emit one snapshot per touched subject (credit.subjects.changed)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.registry import domain, lifecycle, store
from shared import clock, inbox, metrics, outbox, purge
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import (
    AcceptedRecord,
    ArchivedRecord,
    Grade,
    RecordStatusChanged,
    RelatedSubject,
    SubjectRef,
)
from shared.envelope import AnyEvent
from shared.messages import InboundMessage, OutboundEvent, read_event
from shared.settings import get_settings
from shared.topics import RECORDS_ACCEPTED, RECORDS_STATUS, SUBJECTS_CHANGED
from shared.worker import BatchHandler

log = logging.getLogger(__name__)
SOURCE = "xinyong/registry"


@dataclass(frozen=True)
class Change:
    event: AnyEvent
    payload: AcceptedRecord | RecordStatusChanged
    message: InboundMessage
    # Worked out once (`Change.of`): a batch asks for them several times per change, and an
    # isinstance test on a pydantic model goes through ABCMeta.
    record_key: tuple[str, str]
    subject: SubjectRef

    @classmethod
    def of(cls, event: AnyEvent, payload: AcceptedRecord | RecordStatusChanged,
           message: InboundMessage) -> Change:
        if isinstance(payload, AcceptedRecord):
            return cls(event, payload, message, (payload.department, payload.submission.record_id),
                       payload.submission.subject)
        return cls(event, payload, message, (payload.department, payload.record_id),
                   payload.subject)


def make_handler(ctx: ServiceContext) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        changes, dead = parse_changes(messages)
        await outbox.enqueue(conn, dead)
        await apply_changes(conn, ctx.catalogue, await only_new(conn, changes))

    return handle


async def only_new(conn: asyncpg.Connection, changes: Sequence[Change]) -> list[Change]:
    """The changes not applied before. An accepted record needs no event-id record: it
    applies only over a lower revision of its record, so the same event again (a resend, a
    replay) changes nothing by itself. A status change (a flag, its removal) would apply
    again: its event id is recorded."""
    status = [c for c in changes if isinstance(c.payload, RecordStatusChanged)]
    fresh = {id(c) for c in await inbox.only_first_seen(conn, status, lambda c: c.event)}
    return [c for c in changes if isinstance(c.payload, AcceptedRecord) or id(c) in fresh]


def parse_changes(messages: Sequence[InboundMessage]) -> tuple[list[Change], list[OutboundEvent]]:
    changes, dead = [], []
    for m in messages:
        try:
            if m.topic == RECORDS_ACCEPTED.name:
                accepted = read_event(m, RECORDS_ACCEPTED)
                changes.append(Change.of(accepted, accepted.data, m))
            else:
                status = read_event(m, RECORDS_STATUS)
                changes.append(Change.of(status, status.data, m))
        except ValueError as exc:
            dead.append(outbox.dead_letter("registry", m, f"unreadable event: {exc}"))
    return changes, dead


async def apply_changes(conn: asyncpg.Connection, catalogue: Catalogue,
                        changes: Sequence[Change], erasure_key: bytes | None = None) -> None:
    if not changes:
        return
    batch_keys = sorted({c.record_key for c in changes})
    current = await store.lock_records(conn, batch_keys)
    # A replayed or redelivered change about an erased record is dropped, without a dead
    # letter (which would keep it): looked up once the records are locked, so an erasure
    # committed meanwhile is seen.
    erasure_key = erasure_key or purge.erasure_key(get_settings())
    erased = await purge.erased_records(conn, erasure_key, {c.record_key for c in changes})
    if erased:
        metrics.ERASED_DROPPED.labels("registry").inc(
            sum(c.record_key in erased for c in changes))
        changes = [c for c in changes if c.record_key not in erased]
    # Each record's state and JSON as the batch leaves it (read once, serialized once).
    archive = {k: stored for k, (_, stored) in current.items()}
    subject_of = {k: s for k, (s, _) in current.items()}
    written: list[tuple[str, ArchivedRecord, str, str, str]] = []
    touched: dict[str, SubjectRef] = {}
    refused: list[OutboundEvent] = []
    # A subject's version counts the changes to its archive, not the batches that carried
    # them: a replay in other batches reaches the same versions, so the same snapshot ids.
    changed: Counter[str] = Counter()
    for c in changes:
        if isinstance(c.payload, RecordStatusChanged):
            # Defence in depth: the objection service checks the subject too.
            reason = domain.status_change_refusal(c.payload, subject_of.get(c.record_key))
            if reason is not None:
                refused.append(outbox.dead_letter("registry", c.message, reason))
                continue
        before = archive.get(c.record_key)
        after = _apply(catalogue, before.record if before else None, c)
        if after is None:
            continue
        key = c.subject.key
        if c.record_key in subject_of and subject_of[c.record_key] != key:
            # A later revision (an accepted record: status changes never get here) moved the
            # record to another subject: both archives change.
            old = subject_of[c.record_key]
            touched.setdefault(old, SubjectRef.model_validate(_subject_from_key(old)))
            changed[old] += 1
        body = after.model_dump_json()
        archive[c.record_key], subject_of[c.record_key] = store.StoredRecord(after, body), key
        touched[key] = c.subject if c.subject.name else touched.get(key, c.subject)
        changed[key] += 1
        cause = "submission" if isinstance(c.payload, AcceptedRecord) else c.payload.change
        written.append((key, after, body, cause, c.event.id))
    await outbox.enqueue(conn, refused)
    if not written:
        return
    subjects = await store.upsert_subjects(
        conn, [(subject, changed[key]) for key, subject in touched.items()])
    bumped = await lifecycle.continue_erased(
        conn, {k: v for k, (_, v) in subjects.items()}, changed, erasure_key)
    subjects.update({k: (subjects[k][0], v) for k, v in bumped.items()})
    # The rest of each touched archive: what the batch did not hold (read before the batch's
    # records are written, so nothing this transaction writes is read back).
    others = await store.other_records(conn, list(subjects), batch_keys)
    await store.save_records(conn, written, clock.today())
    await lifecycle.after_save(conn, written)
    held: dict[str, list[tuple[RecordKey, store.StoredRecord]]] = {}
    for k, stored in archive.items():
        if subject_of[k] in subjects:
            held.setdefault(subject_of[k], []).append((k, stored))
    for key, stored_others in others.items():
        held.setdefault(key, []).extend(
            ((r.record.department, r.record.record_id), r) for r in stored_others)
    await outbox.enqueue(conn, _snapshots(catalogue, subjects, held))


RecordKey = tuple[str, str]


async def snapshots(conn: asyncpg.Connection, catalogue: Catalogue,
                    subjects: dict[str, tuple[SubjectRef, int]]) -> list[OutboundEvent]:
    """The snapshot events of these subjects at these versions, their records read from the
    archive (for the sweeps, which change records without a batch holding them)."""
    stored = await store.other_records(conn, list(subjects), [])
    return _snapshots(catalogue, subjects, {
        key: [((r.record.department, r.record.record_id), r) for r in records]
        for key, records in stored.items()})


def _snapshots(catalogue: Catalogue, subjects: dict[str, tuple[SubjectRef, int]],
               records: dict[str, list[tuple[RecordKey, store.StoredRecord]]]
               ) -> list[OutboundEvent]:
    """One snapshot per subject, its records in (department, record_id) order, each record
    as the JSON already stored for it."""
    today = clock.today()
    events = []
    for key, (subject, version) in subjects.items():
        held = [r for _, r in sorted(records.get(key, []), key=lambda kr: kr[0])]
        archived = [r.record for r in held]
        data = snapshot_json(subject, version, [r.body for r in held],
                             domain.key_persons(catalogue, archived),
                             domain.grade(catalogue, subject, archived, today))
        events.append(OutboundEvent.of_json(SUBJECTS_CHANGED, SOURCE, key, data,
                                            event_id=domain.snapshot_id(key, version)))
    return events


def snapshot_json(subject: SubjectRef, version: int, record_bodies: Sequence[str],
                  related: Sequence[RelatedSubject], grade: Grade) -> bytes:
    """`SubjectChanged(...).model_dump_json()`, around records already serialized (the
    fields in the model's order; tests/unit/test_registry_snapshot.py holds it to that)."""
    related_json = ",".join(r.model_dump_json() for r in related)
    return (f'{{"subject":{subject.model_dump_json()},"version":{version},'
            f'"records":[{",".join(record_bodies)}],"related_subjects":[{related_json}],'
            f'"grade":{grade.model_dump_json()}}}').encode()


def _apply(catalogue: Catalogue, before: ArchivedRecord | None,
           c: Change) -> ArchivedRecord | None:
    if isinstance(c.payload, AcceptedRecord):
        return domain.archive_accepted(catalogue, before, c.payload)
    assert before is not None  # refused before: a status change needs a record
    # When the change was made is the event's time, not this process's: a replay (a
    # restored database, a redelivery) must give the same record.
    at = c.event.time or clock.now()
    return domain.apply_status_change(before, c.payload, at.astimezone(clock.ZHUHAI).date(), at)


def _subject_from_key(key: str) -> dict[str, str]:
    subject_type, _, identifier = key.partition(":")
    return {"type": subject_type, "id": identifier}

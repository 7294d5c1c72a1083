"""The registry's stream handler: apply accepted records and status changes to the archive,
then emit one snapshot per touched subject (credit.subjects.changed)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.registry import domain, store
from shared import clock, inbox, outbox
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import (
    AcceptedRecord,
    ArchivedRecord,
    RecordStatusChanged,
    SubjectChanged,
    SubjectRef,
)
from shared.envelope import AnyEvent
from shared.messages import InboundMessage, OutboundEvent, read_event
from shared.topics import RECORDS_ACCEPTED, RECORDS_STATUS, SUBJECTS_CHANGED
from shared.worker import BatchHandler

log = logging.getLogger(__name__)
SOURCE = "xinyong/registry"


@dataclass(frozen=True)
class Change:
    event: AnyEvent
    payload: AcceptedRecord | RecordStatusChanged
    message: InboundMessage

    @property
    def record_key(self) -> tuple[str, str]:
        p = self.payload
        if isinstance(p, AcceptedRecord):
            return p.department, p.submission.record_id
        return p.department, p.record_id

    @property
    def subject(self) -> SubjectRef:
        p = self.payload
        return p.submission.subject if isinstance(p, AcceptedRecord) else p.subject


def make_handler(ctx: ServiceContext) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        changes, dead = parse_changes(messages)
        await outbox.enqueue(conn, dead)
        unique = await inbox.only_first_seen(conn, changes, lambda c: c.event)
        await apply_changes(conn, ctx.catalogue, unique)

    return handle


def parse_changes(messages: Sequence[InboundMessage]) -> tuple[list[Change], list[OutboundEvent]]:
    changes, dead = [], []
    for m in messages:
        try:
            if m.topic == RECORDS_ACCEPTED.name:
                accepted = read_event(m, RECORDS_ACCEPTED)
                changes.append(Change(accepted, accepted.data, m))
            else:
                status = read_event(m, RECORDS_STATUS)
                changes.append(Change(status, status.data, m))
        except ValueError as exc:
            dead.append(outbox.dead_letter("registry", m, f"unreadable event: {exc}"))
    return changes, dead


async def apply_changes(conn: asyncpg.Connection, catalogue: Catalogue,
                        changes: Sequence[Change]) -> None:
    if not changes:
        return
    current = await store.lock_records(conn, sorted({c.record_key for c in changes}))
    archive = {k: rec for k, (_, rec) in current.items()}
    subject_of = {k: s for k, (s, _) in current.items()}
    written: list[tuple[str, ArchivedRecord, str, str]] = []
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
        after = _apply(catalogue, before, c)
        if after is None:
            continue
        key = c.subject.key
        if c.record_key in subject_of and subject_of[c.record_key] != key:
            # A later revision (an accepted record: status changes never get here) moved the
            # record to another subject: both archives change.
            old = subject_of[c.record_key]
            touched.setdefault(old, SubjectRef.model_validate(_subject_from_key(old)))
            changed[old] += 1
        archive[c.record_key], subject_of[c.record_key] = after, key
        touched[key] = c.subject if c.subject.name else touched.get(key, c.subject)
        changed[key] += 1
        cause = "submission" if isinstance(c.payload, AcceptedRecord) else c.payload.change
        written.append((key, after, cause, c.event.id))
    await outbox.enqueue(conn, refused)
    if not written:
        return
    versions = await store.upsert_subjects(
        conn, [(subject, changed[key]) for key, subject in touched.items()])
    await store.save_records(conn, written)
    await outbox.enqueue(conn, await _snapshots(conn, catalogue, versions))


def _apply(catalogue: Catalogue, before: ArchivedRecord | None,
           c: Change) -> ArchivedRecord | None:
    if isinstance(c.payload, AcceptedRecord):
        return domain.archive_accepted(catalogue, before, c.payload)
    assert before is not None  # refused before: a status change needs a record
    return domain.apply_status_change(before, c.payload, clock.today())


def _subject_from_key(key: str) -> dict[str, str]:
    subject_type, _, identifier = key.partition(":")
    return {"type": subject_type, "id": identifier}


async def _snapshots(conn: asyncpg.Connection, catalogue: Catalogue,
                     versions: dict[str, int]) -> list[OutboundEvent]:
    today = clock.today()
    archives = await store.subjects_with_records(conn, list(versions))
    events = []
    for key, (subject, records) in archives.items():
        snapshot = SubjectChanged(
            subject=subject, version=versions[key], records=records,
            related_subjects=domain.key_persons(catalogue, records),
            grade=domain.grade(catalogue, subject, records, today))
        events.append(OutboundEvent.of(SUBJECTS_CHANGED, SOURCE, key, snapshot,
                                       event_id=domain.snapshot_id(key, versions[key])))
    return events

"""The publisher's stream handler and timer: keep list entries in step with the archive
snapshots, publish entries whose notice period is over, retire expired ones, and record the
agencies' feedback on notices."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import asyncpg

from services.publisher import (
    domain,
    follow,
    government,
    lifecycle,
    rights,
    rights_store,
    senders,
    store,
)
from shared import clock, credentials, inbox, metrics, outbox, purge
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import BasisRecord, NoticeFeedback, SubjectChanged
from shared.db import TRANSIENT
from shared.envelope import AnyEvent, data_json
from shared.messages import InboundMessage, OutboundEvent, read_event
from shared.settings import Settings, get_settings
from shared.topics import (
    LISTS_CHANGED,
    NOTICE_FEEDBACK,
    NOTICES,
    REQUESTS_CHANGED,
    SUBJECTS_CHANGED,
    SUBJECTS_NOTIFIED,
)
from shared.worker import BatchHandler

log = logging.getLogger(__name__)
SOURCE = "xinyong/publisher"
TIMER_SECONDS = 5.0


@dataclass(frozen=True)
class Snapshot:
    event: AnyEvent
    payload: SubjectChanged
    body: bytes  # the snapshot's JSON as the registry sent it: stored as it came


@dataclass(frozen=True)
class Feedback:
    event: AnyEvent
    agency: str
    payload: NoticeFeedback
    message: InboundMessage


def make_handler(ctx: ServiceContext) -> BatchHandler:
    key_secret = credentials.subject_key_secret(ctx.settings)

    async def handle(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
        requests = [m for m in messages if m.topic == REQUESTS_CHANGED.name]
        if requests:
            await apply_requests(conn, requests)
            messages = [m for m in messages if m.topic != REQUESTS_CHANGED.name]
        snapshots, feedback, dead = parse(messages)
        await outbox.enqueue(conn, dead)
        # A snapshot needs no event-id record: it applies only over an older version of its
        # subject, so the same one again (a resend, a replay) changes nothing.
        feedback = await inbox.only_first_seen(conn, feedback, lambda f: f.event)
        await apply_snapshots(conn, ctx.catalogue, [(s.payload, s.body) for s in snapshots],
                              key_secret=key_secret)
        updated = await store.record_feedback(conn, [(f.agency, f.payload) for f in feedback],
                                              "kafka", [f.event.id for f in feedback])
        # Feedback about no notice of that agency is set aside for an operator, not dropped.
        await outbox.enqueue(conn, [
            outbox.dead_letter("publisher", f.message,
                               f"{f.agency} has no notice {f.payload.notice_id}")
            for f in feedback if str(uuid.UUID(f.payload.notice_id)) not in updated])

    return handle


def parse(messages: Sequence[InboundMessage]
          ) -> tuple[list[Snapshot], list[Feedback], list[OutboundEvent]]:
    snapshots, feedback, dead = [], [], []
    for m in messages:
        try:
            agency = NOTICE_FEEDBACK.code_of(m.topic)
            if m.topic == SUBJECTS_CHANGED.name:
                snapshot = read_event(m, SUBJECTS_CHANGED)
                body = data_json(m.value) or snapshot.data.model_dump_json().encode()
                snapshots.append(Snapshot(snapshot, snapshot.data, body))
            elif agency is not None:
                answer = read_event(m, NOTICE_FEEDBACK.of(agency))
                uuid.UUID(answer.data.notice_id)
                if "\x00" in (answer.data.note or ""):  # PostgreSQL text refuses NUL
                    raise ValueError("note: contains a NUL character (U+0000)")
                feedback.append(Feedback(answer, agency, answer.data, m))
            else:
                raise ValueError(f"no handler for {m.topic}")
        except ValueError as exc:
            dead.append(outbox.dead_letter("publisher", m, f"unreadable event: {exc}"))
    return snapshots, feedback, dead


def _search_fields(snapshot: SubjectChanged, findable: bool) -> tuple[str, list[str]]:
    """The name index: a person who can no longer be found is not in it at all."""
    if not findable and snapshot.subject.type == "individual":
        return "", []
    norm = domain.normalize_name(snapshot.subject.name or "")
    return norm, domain.name_grams(norm)


def stored_fields(catalogue: Catalogue, snapshot: SubjectChanged,
                  today: date) -> tuple[SubjectChanged, date | None, str, list[str]]:
    """What `store.save_snapshots` keeps with a snapshot, as of `today`: the last day it may
    be found (None once past) and the name index."""
    until = domain.discoverable_until(catalogue, snapshot)
    if until is not None and until < today:
        until = None
    return (snapshot, until, *_search_fields(snapshot, until is not None))


async def apply_requests(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
    """The subject's objections, repair requests and complaints, for its own view."""
    events, dead = [], []
    for m in messages:
        try:
            events.append(read_event(m, REQUESTS_CHANGED))
        except ValueError as exc:
            dead.append(outbox.dead_letter("publisher", m, f"unreadable event: {exc}"))
    await rights_store.save_requests(conn, [e.data for e in events])
    await outbox.enqueue(conn, dead)


async def apply_snapshots(conn: asyncpg.Connection, catalogue: Catalogue,
                          snapshots: Sequence[SubjectChanged | tuple[SubjectChanged, bytes]],
                          *, erasure_key: bytes | None = None, key_secret: str = "") -> None:
    """Apply snapshots (each with its JSON as received, or the model alone). `key_secret`:
    the subject key secret that maps a subject's own token to its archive (/api/v1/me)."""
    if not snapshots:
        return
    key = erasure_key or purge.erasure_key(get_settings())
    received = [item if isinstance(item, tuple) else (item, None) for item in snapshots]
    body_of = {id(s): body for s, body in received}
    await store.lock_subjects(conn, [s.subject.key for s, _ in received])
    kept, dropped = await lifecycle.without_erased(conn, key, [s for s, _ in received])
    metrics.ERASED_DROPPED.labels("publisher").inc(dropped)
    latest: dict[str, SubjectChanged] = {}
    for s in kept:
        if s.subject.key not in latest or latest[s.subject.key].version < s.version:
            latest[s.subject.key] = s
    today = clock.today()

    def row(s: SubjectChanged) -> tuple[SubjectChanged, bytes, date | None, str, list[str]]:
        # Stored as received, unless erased records were taken out of it.
        body = body_of.get(id(s)) or s.model_dump_json().encode()
        return (s, body, *stored_fields(catalogue, s, today)[1:])

    changed = await store.save_snapshots(conn, [row(s) for s in latest.values()], clock.now())
    if not changed:
        return
    await government.save_defaults(conn, [r for k in sorted(changed)
                                          for r in government.default_rows(catalogue, latest[k])],
                                   today)
    await purge.schedule(conn, [(r.department, r.record_id, k, r.purge_on)
                                for k in sorted(changed) for r in latest[k].records])
    if key_secret:
        await rights_store.save_parties(
            conn, [(credentials.subject_party(key_secret, k), k) for k in sorted(changed)],
            credentials.key_id(key_secret))
    await replan(conn, catalogue, {k: latest[k] for k in sorted(changed)}, today, key)


async def replan(conn: asyncpg.Connection, catalogue: Catalogue,
                 snapshots: dict[str, SubjectChanged], today: date, erasure_key: bytes,
                 gone: str | None = None) -> int:
    """Bring the subjects' list entries in line with their snapshots as of `today`; `gone`
    names the exit of an entry whose basis left (e.g. `retention_expired`). Returns how many
    actions were carried out."""
    open_entries = await store.lock_open_entries(conn, sorted(snapshots))
    served = await lifecycle.served_decisions(conn, sorted(snapshots))
    actions: list[domain.Action] = []
    for key, snapshot in snapshots.items():
        actions += domain.plan_snapshot(catalogue, key, snapshot, open_entries.get(key, {}),
                                        served.get(key), today, gone)
    await carry_out(conn, catalogue, actions, snapshots, erasure_key)
    await follow.replace_changed_related(conn, catalogue, snapshots)
    await _update_holds(conn, snapshots)
    return len(actions)


async def _update_holds(conn: asyncpg.Connection, snapshots: dict[str, SubjectChanged]) -> None:
    """Hold pending entries while a record they rest on is under objection; release them
    once it is decided (the timer then publishes those whose date has come)."""
    if not any(r.disputed for s in snapshots.values() for r in s.records):
        # The common case, one statement: nothing disputed, nothing of theirs held.
        await rights_store.release_holds(conn, sorted(snapshots))
        return
    pending = await store.pending_entries(conn, sorted(snapshots))
    held = [e.entry_id for e in pending if domain.held(e, snapshots[e.subject_key])]
    await rights_store.set_holds(conn, held,
                                 [e.entry_id for e in pending if e.entry_id not in held])


async def carry_out(conn: asyncpg.Connection, catalogue: Catalogue,
                    actions: Sequence[domain.Action],
                    subjects: dict[str, SubjectChanged] | None = None,
                    erasure_key: bytes | None = None) -> None:
    if not actions:
        return
    keys = {_entry_subject(a) for a in actions}
    subjects = dict(subjects or {})
    missing = [k for k in keys if k not in subjects]
    if missing:
        subjects.update(await store.snapshots(conn, missing))
    # The notices in force of entries that exit (revoked) or may get a new term (superseded).
    touched = [a.entry.entry_id for a in actions if isinstance(a, domain.Exit)
               or (isinstance(a, domain.Rebase) and a.entry.status == "active")]
    issued = await store.unrevoked_notices(conn, touched) if touched else {}
    entering = [(a.list, a.subject_key) for a in actions if isinstance(a, domain.Enter)]
    entries = await store.entry_counts(conn, entering)
    key = erasure_key or purge.erasure_key(get_settings())
    for k, n in (await lifecycle.erased_counts(conn, key, entering)).items():
        entries[k] = entries.get(k, 0) + n
    history = domain.History(
        entries=entries,
        changes=await store.change_counts(conn, [a.entry.entry_id for a in actions
                                                 if not isinstance(a, domain.Enter)]),
        id_key=key)
    fx = domain.materialize(catalogue, actions, subjects, issued, clock.now(), clock.today(),
                            history)
    # Each change and notice serialized once: the body stored is its event's data.
    change_bodies = [c.model_dump_json() for c in fx.list_changes]
    notice_bodies = [n.model_dump_json() for _, n, _ in fx.notices]
    await store.save_effects(conn, fx, change_bodies, notice_bodies, clock.now(),
                             catalogue=catalogue, fallback_working_days=get_settings(
                                 ).notice_feedback_working_days)
    await lifecycle.save(conn, fx)
    await rights_store.create_notifications(conn, [
        (rights.notification_id_for(e.entry_id), e.entry_id, e.subject_key, e.list)
        for e in fx.to_notify])
    await rights_store.cancel_notifications(
        conn, [e.entry_id for e in fx.changed_entries if e.status == "cancelled"])
    events = [OutboundEvent.of_json(LISTS_CHANGED, SOURCE, c.subject.key, body.encode(),
                                    event_id=event_id)
              for c, body, event_id in zip(fx.list_changes, change_bodies, fx.list_change_ids,
                                           strict=True)]
    events += [OutboundEvent.of_json(NOTICES.of(agency), SOURCE, n.subject.key, body.encode(),
                                     event_id=n.notice_id)
               for (agency, n, _), body in zip(fx.notices, notice_bodies, strict=True)]
    await outbox.enqueue(conn, events)


def _entry_subject(action: domain.Action) -> str:
    return action.subject_key if isinstance(action, domain.Enter) else action.entry.subject_key


async def list_timer(ctx: ServiceContext) -> None:
    """Publish entries whose notice period has run out; retire entries past their validity."""
    while True:
        try:
            while await run_timers_once(ctx.pool, ctx.catalogue):
                pass
        except TRANSIENT as exc:
            log.warning("list timer: database unavailable (%s)", exc)
        await asyncio.sleep(TIMER_SECONDS)


async def run_timers_once(pool: asyncpg.Pool, catalogue: Catalogue) -> int:
    async with pool.acquire() as conn, conn.transaction():
        due, expired = await store.lock_due_entries(conn, clock.now(), clock.today())
        await carry_out(conn, catalogue, domain.plan_timers(due, expired))
    return len(due) + len(expired)


# --- telling the subject before it is listed ----------------------------------------------


async def notification_timer(ctx: ServiceContext) -> None:
    """Deliver the notifications due: to the subject's contact through the sender adapter,
    or by public announcement when there is no contact or deliveries kept failing."""
    sender = senders.sender_of(ctx.settings)
    while True:
        try:
            while await deliver_once(ctx.pool, ctx.catalogue, ctx.settings, sender):
                pass
        except TRANSIENT as exc:
            log.warning("notification timer: database unavailable (%s)", exc)
        await asyncio.sleep(TIMER_SECONDS)


async def deliver_once(pool: asyncpg.Pool, catalogue: Catalogue, settings: Settings,
                       sender: senders.Sender) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await deliver_due(conn, catalogue, settings, sender)


async def deliver_due(conn: asyncpg.Connection, catalogue: Catalogue, settings: Settings,
                      sender: senders.Sender) -> int:
    """One round of deliveries, in the caller's transaction; returns how many notifications
    it took up. A message handed over just before a crash is handed over again after it,
    under the same notification id (the gateway's idempotency key)."""
    fallback = timedelta(hours=settings.notification_fallback_hours)
    due = await rights_store.lock_due_notifications(conn, clock.now())
    for n in due:
        key = n["subject_key"]
        if n["entry_status"] != "pending":
            await rights_store.cancel_notifications(conn, [n["entry_id"]])
            continue
        snapshot = (await store.snapshots(conn, [key]))[key]
        basis = [BasisRecord.model_validate(b) for b in n["basis"]]
        contact = (await rights_store.contact_of_subject(conn, key)
                   or _department_contact(snapshot, basis))
        now = clock.now()
        channel: Literal["contact", "announcement"] = "contact"
        if contact is not None:
            made, publish_at = rights.notified(
                catalogue, n["notification_id"], n["entry_id"], n["list"], snapshot, basis,
                "contact", now, settings.objection_public_url)
            try:
                used = await sender.send(senders.Message(
                    n["notification_id"], contact, rights.message_text(made)))
            except senders.DeliveryFailed as exc:
                await rights_store.log_delivery(
                    conn, n["notification_id"], key, rights.channel_of(contact),
                    rights.mask_contact(contact), "failed", str(exc))
                if now - n["created_at"] < fallback:
                    await rights_store.retry_later(
                        conn, n["notification_id"],
                        now + rights.delivery_backoff(n["attempts"] + 1))
                    continue
                channel = "announcement"
            else:
                await rights_store.log_delivery(conn, n["notification_id"], key, used,
                                                rights.mask_contact(contact), "delivered",
                                                None)
        if contact is None or channel == "announcement":
            made, publish_at = rights.notified(
                catalogue, n["notification_id"], n["entry_id"], n["list"], snapshot, basis,
                "announcement", now, settings.objection_public_url)
        await rights_store.mark_notified(conn, made, publish_at)
        await outbox.enqueue(conn, [OutboundEvent.of(
            SUBJECTS_NOTIFIED, SOURCE, key, made, event_id=made.notification_id)])
    return len(due)


def _department_contact(snapshot: SubjectChanged, basis: Sequence[BasisRecord]) -> str | None:
    """The contact a department gave with the records the entry rests on (the latest
    decision's), else with any of the subject's records."""
    wanted = {(b.department, b.record_id) for b in basis}
    ordered = sorted(snapshot.records, key=lambda r: ((r.department, r.record_id) in wanted,
                                                      r.decided_on), reverse=True)
    return next((r.contact for r in ordered if r.contact), None)


async def subject_party_filler(ctx: ServiceContext) -> None:
    """Map every known subject to its token party (`subject_parties`): subjects stored
    before this existed, or under another key; then rests."""
    key_secret = credentials.subject_key_secret(ctx.settings)
    if not key_secret:
        log.warning("no subject key secret: subjects' own tokens cannot be mapped (/api/v1/me)")
        await asyncio.Event().wait()  # a timer that ends would end the service
    key_id = credentials.key_id(key_secret)
    while True:
        try:
            async with ctx.pool.acquire() as conn:
                await rights_store.forget_other_keys(conn, key_id)
                while keys := await rights_store.subjects_without_party(conn, key_id, 1000):
                    await rights_store.save_parties(
                        conn, [(credentials.subject_party(key_secret, k), k) for k in keys],
                        key_id)
        except TRANSIENT as exc:
            log.warning("subject parties: database unavailable (%s)", exc)
        await asyncio.sleep(600)

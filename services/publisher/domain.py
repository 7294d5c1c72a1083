"""Publisher rules: who belongs on which red or black list (红黑名单), the pre-publication
notice period (公示期), the joint reward and penalty notices (联合奖惩) that an entry or exit
sends, and what the public may see (信用珠海网). Pure functions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import zhconv

from services.publisher import rights
from shared import clock, commitments, disclosure, grading
from shared.catalogue import Catalogue, Measure, WhileListedRegime
from shared.contract import (
    ArchivedRecord,
    BasisRecord,
    ListChanged,
    Notice,
    RelatedSubject,
    SubjectChanged,
    SubjectRef,
)
from shared.identifiers import is_minor_on, mask_resident_id, uuid5_text

# Stable ids, functions of their cause and never of the clock: the same entry, measure and
# kind always give the same notice_id, so a notice sent again (a relay retry, or a replay of
# the archive after a restore) can be de-duplicated by the agency.
_NOTICE_NS = uuid.UUID("5f1d3a0e-8c1b-4c53-9f0e-2a7d6c1b9e44")

EntryStatus = Literal["pending", "active", "exited", "cancelled"]


@dataclass(frozen=True)
class Entry:
    """A subject's entry on one list (名单条目), from notice period to exit."""

    entry_id: str
    list: str
    subject_key: str
    status: EntryStatus
    basis: tuple[BasisRecord, ...]
    publish_at: datetime | None = None
    since: date | None = None
    until: date | None = None
    exit_reason: str | None = None


# --- what should change ------------------------------------------------------------------


@dataclass(frozen=True)
class Enter:
    list: str
    subject_key: str
    basis: tuple[BasisRecord, ...]


@dataclass(frozen=True)
class Activate:
    entry: Entry


@dataclass(frozen=True)
class Rebase:
    entry: Entry
    basis: tuple[BasisRecord, ...]


@dataclass(frozen=True)
class Exit:
    entry: Entry
    reason: str


Action = Enter | Activate | Rebase | Exit


def is_in_force(record: ArchivedRecord) -> bool:
    return record.status == "active"


def is_about_a_minor(subject: SubjectRef, record: ArchivedRecord) -> bool:
    """A record about a person under 18 on its decision date: it never puts anyone on a list
    and is never shown (shared.identifiers.is_minor_on)."""
    return subject.type == "individual" and is_minor_on(subject.id, record.decided_on)


# Per list, the decisions (department, record_id, decided_on) whose listing ran its full
# term: they do not list the subject again (法释〔2017〕7号: only a new decision does).
Served = Mapping[str, set[tuple[str, str, date]]]


def qualifying_basis(catalogue: Catalogue, snapshot: SubjectChanged,
                     today: date | None = None, served: Served | None = None,
                     ) -> dict[str, tuple[BasisRecord, ...]]:
    """The lists the subject's archive puts it on, each with the records that do so. A
    withdrawn or repaired record no longer counts; a disputed one still does until the
    department decides. A record about a minor never counts, whatever its item (ingest
    refuses some outright; this holds for all). Given `today`, a record past its end of
    display no longer counts either (an entry lasts no longer than its basis shows), nor a
    decision whose listing already ran its term (`served`)."""
    found: dict[str, list[BasisRecord]] = {}
    for r in snapshot.records:
        if not is_in_force(r) or is_about_a_minor(snapshot.subject, r):
            continue
        if today is not None and not disclosure.is_displayed(r, today):
            continue
        for list_name in catalogue.lists_fed_by(r.catalogue_item):
            if (r.department, r.record_id, r.decided_on) in (served or {}).get(list_name, ()):
                continue
            found.setdefault(list_name, []).append(
                BasisRecord(department=r.department, record_id=r.record_id, revision=r.revision))
    return {name: tuple(sorted(b, key=lambda x: (x.department, x.record_id)))
            for name, b in found.items()}


def lapsed_lists(catalogue: Catalogue, snapshot: SubjectChanged, today: date) -> set[str]:
    """Lists the subject would still be on if its records' display had not ended: an entry
    leaving for that reason exits `expired`, not `basis_withdrawn`."""
    ignoring_display = qualifying_basis(catalogue, snapshot)
    return set(ignoring_display) - set(qualifying_basis(catalogue, snapshot, today))


def basis_key(b: BasisRecord) -> tuple[str, str, int]:
    return b.department, b.record_id, b.revision


def plan_snapshot(catalogue: Catalogue, subject_key: str, snapshot: SubjectChanged,
                  open_entries: Mapping[str, Entry], served: Served | None, today: date,
                  gone: str | None = None) -> list[Action]:
    """What the subject's snapshot does to its list entries as of `today` (the live path,
    the sweeps and what-if plan alike)."""
    return plan_for_subject(subject_key, open_entries,
                            qualifying_basis(catalogue, snapshot, today, served),
                            lapsed=lapsed_lists(catalogue, snapshot, today), gone=gone,
                            repaired=repaired_records(snapshot))


def exit_reason(entry: Entry, repaired: set[tuple[str, str]], lapsed: bool = False,
                gone: str | None = None) -> str:
    """Why an entry whose basis left exits: `gone` if given (e.g. `retention_expired`);
    `repaired` when every record it rested on was repaired (信用修复: display, sharing and
    measures stop together); `expired` when its list is lapsed (the basis' end of display
    passed); else `basis_withdrawn`."""
    if gone:
        return gone
    basis = {(b.department, b.record_id) for b in entry.basis}
    if basis and basis <= repaired:
        return "repaired"
    return "expired" if lapsed else "basis_withdrawn"


def plan_for_subject(subject_key: str, open_entries: Mapping[str, Entry],
                     qualifying: Mapping[str, tuple[BasisRecord, ...]],
                     served: Mapping[str, set[tuple[str, str, int]]] | None = None,
                     lapsed: Iterable[str] = (), gone: str | None = None,
                     repaired: set[tuple[str, str]] | None = None) -> list[Action]:
    """Enter, rebase or exit the subject's lists. `served` holds, per list, basis records
    (department, record_id, revision) that do not list the subject again (decisions whose
    listing ran its term are left out of `qualifying` already: `qualifying_basis`). An
    entry whose basis is gone exits as `exit_reason` says, from `lapsed` (lists whose
    basis' end of display passed), `gone` and `repaired` (the subject's repaired records)."""
    served = served or {}
    lapsed = set(lapsed)
    repaired = repaired or set()

    def why(entry: Entry) -> str:
        return exit_reason(entry, repaired, entry.list in lapsed, gone)

    actions: list[Action] = []
    for list_name, full_basis in qualifying.items():
        basis = tuple(b for b in full_basis if basis_key(b) not in served.get(list_name, set()))
        entry = open_entries.get(list_name)
        if not basis:
            if entry is not None:
                actions.append(Exit(entry, why(entry)))
        elif entry is None:
            actions.append(Enter(list_name, subject_key, basis))
        elif entry.basis != basis:
            actions.append(Rebase(entry, basis))
    for list_name, entry in open_entries.items():
        if list_name not in qualifying:
            actions.append(Exit(entry, why(entry)))
    return actions


def repaired_records(snapshot: SubjectChanged) -> set[tuple[str, str]]:
    return {(r.department, r.record_id) for r in snapshot.records if r.status == "repaired"}


def held(entry: Entry, snapshot: SubjectChanged) -> bool:
    """An objection about a record the entry rests on holds its publication (异议标注 during
    the notice period) until the department decides."""
    disputed = {(r.department, r.record_id) for r in snapshot.records if r.disputed}
    return any((b.department, b.record_id) in disputed for b in entry.basis)


def plan_timers(due: Iterable[Entry], expired: Iterable[Entry]) -> list[Action]:
    """Entries whose notice period has run out are published; entries past their validity
    leave the list."""
    return [*(Activate(e) for e in due), *(Exit(e, "expired") for e in expired)]


# --- what the changes amount to ------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """How many entries each (list, subject) had, and how many changes each entry had,
    before the actions at hand: what numbers the next ones, so that their ids are the same
    whenever the same changes are made again."""

    entries: Mapping[tuple[str, str], int] = field(default_factory=dict)
    changes: Mapping[str, int] = field(default_factory=dict)
    # The key new entries' ids are made with (`entry_id_for`); the publisher's is the
    # deployment's subject key.
    id_key: bytes = b""


@dataclass
class ListEffects:
    new_entries: list[Entry] = field(default_factory=list)
    changed_entries: list[Entry] = field(default_factory=list)
    list_changes: list[ListChanged] = field(default_factory=list)
    list_change_ids: list[str] = field(default_factory=list)  # one event id per list change
    notices: list[tuple[str, Notice, str]] = field(default_factory=list)  # agency, notice, entry
    # New entries that wait for Xinyong to tell the subject (国办发〔2020〕49号).
    to_notify: list[Entry] = field(default_factory=list)
    # The next list change's number, per entry (from `History.changes`).
    next_change: dict[str, int] = field(default_factory=dict)
    # Decisions whose listing ran its full term: (list, subject key, department, record_id,
    # decided_on).
    served: list[tuple[str, str, str, str, date]] = field(default_factory=list)
    # Per notice naming related persons: the day they are erased from it (5 years after the
    # basis' acts ended: 征信业管理条例 art. 16).
    related_until: dict[str, date] = field(default_factory=dict)


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _basis_records(entry: Entry, snapshot: SubjectChanged) -> list[ArchivedRecord]:
    wanted = {(b.department, b.record_id) for b in entry.basis}
    return [r for r in snapshot.records if (r.department, r.record_id) in wanted]


def entry_until(catalogue: Catalogue, entry: Entry, since: date,
                snapshot: SubjectChanged) -> date:
    """The last day of an entry's term: the list's validity from publication, plus an
    extension its basis carries (延长, 法释〔2017〕7号), and never past the end of display of
    its basis (an entry does not outlast what puts the subject on the list)."""
    lst = catalogue.lists[entry.list]
    records = _basis_records(entry, snapshot)
    extension = 0
    for r in records:
        regime = catalogue.regime_of(r.catalogue_item)
        if isinstance(regime, WhileListedRegime) and regime.list == entry.list:
            extension = max(extension, disclosure.extension_years(regime, r.attributes))
    until = disclosure.add_years(since, lst.validity_years + extension)
    ends = [r.public_until for r in records if r.public_until is not None]
    return min(until, max(ends)) if ends else until


def related_until(snapshot: SubjectChanged, entry: Entry) -> date | None:
    """When the persons a notice names beside its subject (a legal representative) are
    erased from it: 5 years after the last of its basis' acts ended."""
    ended = [r.act_ended_on or r.decided_on for r in _basis_records(entry, snapshot)]
    return disclosure.add_years(max(ended), disclosure.RETENTION_YEARS) if ended else None


# --- the agencies' feedback (closed loop) -------------------------------------------------

# CONTRACT.md ("Agencies over HTTP"): a notice is overdue while it has no `applied` or
# `not_applicable` feedback past its measure's deadline: `feedback_within` working days of
# the catalogue's measure (revocations too), on the project's one calendar (shared/clock.py:
# the State Council's holidays and 调休 working days).
FEEDBACK_CLOSING = ("applied", "not_applicable")

FeedbackOutcome = Literal["applied", "repeated", "refused"]


def feedback_outcome(current: str | None, answer: str) -> FeedbackOutcome:
    """Feedback only moves forward: `received` -> `applied` | `not_applicable`, both final.
    The same answer again changes nothing (`repeated`); a backward or other final one is
    `refused` (kept in the history, 409 over HTTP)."""
    if current == answer:
        return "repeated"
    if current in FEEDBACK_CLOSING:
        return "refused"
    return "applied"


def feedback_due(catalogue: Catalogue, measure: str, issued_at: datetime,
                 fallback_working_days: int) -> clock.Deadline:
    """The day by which the agency reports on a notice issued at `issued_at`: its measure's
    `feedback_within` working days after the issue day in Zhuhai; a measure the catalogue no
    longer has (a revocation after its removal) takes the fallback."""
    known = catalogue.measures.get(measure)
    days = known.feedback_within if known is not None else fallback_working_days
    return clock.add_working_days(issued_at.astimezone(clock.ZHUHAI).date(), days)


def is_overdue(feedback_status: str | None, due_by: date | None, today: date) -> bool:
    return (due_by is not None and due_by < today
            and feedback_status not in FEEDBACK_CLOSING)


def entry_id_for(list_name: str, subject_key: str, ordinal: int, key: bytes = b"") -> str:
    """The id of a subject's entry on a list, numbered from 0 in the order they were made.
    Keyed (HMAC-SHA-256 under `key`, the deployment's subject key): the public changes feed
    keeps an entry's id after it stops naming the subject, and a plain function of a
    subject key would name them again to anyone who computes it from an identity number.
    Without a key, the plain UUIDv5 of the entries made before (and of tests)."""
    text = f"entry|{list_name}|{subject_key}|{ordinal}"
    if not key:
        return uuid5_text(_NOTICE_NS, text)
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def list_change_id(entry_id: str, ordinal: int) -> str:
    """The event id of an entry's list change (ADD, MOD, DEL), numbered from 0."""
    return uuid5_text(_NOTICE_NS, f"change|{entry_id}|{ordinal}")


def notice_id_for(entry_id: str, measure: str, kind: str) -> str:
    return uuid5_text(_NOTICE_NS, f"{entry_id}|{measure}|{kind}")


def superseding_notice_id(earlier_notice_id: str, until: date) -> str:
    """The id of a notice that replaces the one in force for a new term (an extension): the
    same whenever the same change is applied to the same notice again (a replay), and never
    an id already sent: a term changed back (an extension corrected away) follows another
    notice than the one it first followed. An id of the term alone came back then, and the
    agencies, who drop an id they have, kept the term in between."""
    return uuid5_text(_NOTICE_NS, f"supersedes={earlier_notice_id}|until={until}")


def materialize(catalogue: Catalogue, actions: Sequence[Action],
                subjects: Mapping[str, SubjectChanged],
                issued: Mapping[str, Sequence[tuple[str, Notice]]],
                now: datetime, today: date, history: History | None = None) -> ListEffects:
    """Turn planned actions into entries, list changes and notices. `issued` holds, per
    entry, the notices it sent that are not yet revoked; `history` numbers new entries and
    list changes (none before, if not given)."""
    history = history or History()
    fx = ListEffects(next_change=dict(history.changes))
    entered: dict[tuple[str, str], int] = dict(history.entries)
    for action in actions:
        match action:
            case Enter(list_name, subject_key, basis):
                ordinal = entered.get((list_name, subject_key), 0)
                entered[(list_name, subject_key)] = ordinal + 1
                entry = Entry(entry_id_for(list_name, subject_key, ordinal, history.id_key),
                              list_name, subject_key, "pending", basis)
                lst = catalogue.lists[list_name]
                if lst.notified_by == "xinyong":
                    # No publication date until the subject has been told: the notice period
                    # runs from the notification (services/publisher/rights.py).
                    fx.new_entries.append(entry)
                    fx.to_notify.append(entry)
                elif lst.notice_period_days or lst.publish_month_after_service:
                    publish_at, _ = rights.planned_publication(
                        lst, now, rights.served_on(subjects[subject_key].records, basis))
                    fx.new_entries.append(replace(entry, publish_at=publish_at))
                else:
                    fx.new_entries.append(_publish(catalogue, fx, entry, subjects, now, today))
            case Activate(entry):
                fx.changed_entries.append(_publish(catalogue, fx, entry, subjects, now, today))
            case Rebase(entry, basis):
                rebased = replace(entry, basis=basis)
                if entry.status == "active":
                    rebased = _new_term(catalogue, fx, entry, rebased, subjects, issued, now,
                                        today)
                fx.changed_entries.append(rebased)
            case Exit(entry, reason):
                fx.changed_entries.append(_withdraw(fx, entry, reason, subjects, issued, now,
                                                    today))
    return fx


def _new_term(catalogue: Catalogue, fx: ListEffects, before: Entry, entry: Entry,
              subjects: Mapping[str, SubjectChanged],
              issued: Mapping[str, Sequence[tuple[str, Notice]]], now: datetime,
              today: date) -> Entry:
    """An active entry's new basis: if it moves the end of the term (an extension, 延长) or
    rests on other records (one of two withdrawn, another added), a MOD and, to each agency,
    a notice that supersedes the earlier one (CONTRACT.md: "a list extended, a basis
    changed"); a new revision of the same records in the same term (a corrected document
    number, say) publishes nothing."""
    assert entry.since is not None
    snapshot = subjects[entry.subject_key]
    until = entry_until(catalogue, entry, entry.since, snapshot)
    if until == entry.until and _records_of(before) == _records_of(entry):
        return entry
    moved = replace(entry, until=until)
    _add_change(fx, _list_change(moved, "MOD", subjects))
    for agency, earlier in issued.get(entry.entry_id, ()):
        measure = catalogue.measures.get(earlier.measure)
        notice = earlier.model_copy(update={
            "notice_id": superseding_notice_id(earlier.notice_id, until),
            "supersedes": earlier.notice_id, "effective_until": until,
            "basis": list(entry.basis), "subject": snapshot.subject, "issued_at": now,
            "related_subjects": [] if measure is None else related_for(measure, snapshot,
                                                                        today)})
        fx.notices.append((agency, notice, entry.entry_id))
        _note_related(fx, notice, snapshot, moved)
    return moved


def _records_of(entry: Entry) -> set[tuple[str, str]]:
    return {(b.department, b.record_id) for b in entry.basis}


def _note_related(fx: ListEffects, notice: Notice, snapshot: SubjectChanged,
                  entry: Entry) -> None:
    if notice.related_subjects:
        until = related_until(snapshot, entry)
        if until is not None:
            fx.related_until[notice.notice_id] = until


def _publish(catalogue: Catalogue, fx: ListEffects, entry: Entry,
             subjects: Mapping[str, SubjectChanged], now: datetime, today: date) -> Entry:
    snapshot = subjects[entry.subject_key]
    active = replace(entry, status="active", since=today,
                     until=entry_until(catalogue, entry, today, snapshot))
    _add_change(fx, _list_change(active, "ADD", subjects))
    for measure_name, measure in catalogue.measures_for(entry.list):
        notice = Notice(
            notice_id=notice_id_for(entry.entry_id, measure_name, measure.kind),
            kind=measure.kind, list=entry.list, measure=measure_name, subject=snapshot.subject,
            related_subjects=related_for(measure, snapshot, today), effective_from=today,
            effective_until=active.until, basis=list(entry.basis), issued_at=now)
        fx.notices.append((measure.agency, notice, entry.entry_id))
        _note_related(fx, notice, snapshot, active)
    return active


def _withdraw(fx: ListEffects, entry: Entry, reason: str,
              subjects: Mapping[str, SubjectChanged],
              issued: Mapping[str, Sequence[tuple[str, Notice]]], now: datetime,
              today: date) -> Entry:
    if entry.status == "pending":  # never published: nothing to revoke
        return replace(entry, status="cancelled", exit_reason=reason)
    exited = replace(entry, status="exited", until=today, exit_reason=reason)
    _add_change(fx, _list_change(exited, "DEL", subjects))
    for agency, original in issued.get(entry.entry_id, ()):
        fx.notices.append((agency, revocation_of(entry.entry_id, original, now, today),
                           entry.entry_id))
    if reason == "expired":
        snapshot = subjects[entry.subject_key]
        fx.served += [(entry.list, entry.subject_key, r.department, r.record_id, r.decided_on)
                      for r in _basis_records(entry, snapshot)]
    return exited


def related_for(measure: Measure, snapshot: SubjectChanged, today: date) -> list[RelatedSubject]:
    """The persons a notice of this measure also names (its `extends_to` roles). The
    registry links no key person who was a minor on the record's decision date; one who is
    a minor today was one then too, so a link that slipped through stops here."""
    return [r for r in snapshot.related_subjects
            if r.role in measure.extends_to
            and not (r.type == "individual" and is_minor_on(r.id, today))]


def revocation_of(entry_id: str, original: Notice, now: datetime, today: date) -> Notice:
    """The revocation of a notice: its own id, naming the original in `revokes`. The first
    notice of an entry and measure keeps the id its revocation always had; a later one (a
    replacement, a notice the catalogue added) is revoked under an id of its own."""
    if original.notice_id == notice_id_for(entry_id, original.measure, original.kind):
        revocation_id = notice_id_for(entry_id, original.measure, "revocation")
    else:
        revocation_id = notice_id_for(original.notice_id, original.measure, "revocation")
    return original.model_copy(update={
        "notice_id": revocation_id, "kind": "revocation", "revokes": original.notice_id,
        "supersedes": None, "effective_from": today, "effective_until": None,
        "issued_at": now})


# --- notices follow the catalogue and the archive --------------------------------------------

Sent = tuple[str, Notice, str]  # agency, notice, entry id


def follow_catalogue(catalogue: Catalogue, entries: Sequence[Entry],
                     issued: Mapping[str, Sequence[tuple[str, Notice]]],
                     subjects: Mapping[str, SubjectChanged], taken: set[str],
                     now: datetime, today: date) -> list[Sent]:
    """What the active entries' notices must become under the catalogue: a notice for each
    measure of the entry's list not yet sent to its agency (a measure or agency added), a
    revocation for each notice whose measure, list or agency the catalogue no longer pairs
    (removed). `taken` holds the notice ids already used (a measure removed then added
    again gets a new one); ids given here are added to it."""
    out: list[Sent] = []
    for entry in entries:
        wanted = {(name, m.agency): m for name, m in catalogue.measures_for(entry.list)}
        have = {(n.measure, agency): n for agency, n in issued.get(entry.entry_id, ())}
        for (name, agency), original in sorted(have.items()):
            if (name, agency) not in wanted:
                out.append((agency, revocation_of(entry.entry_id, original, now, today),
                            entry.entry_id))
        snapshot = subjects.get(entry.subject_key)
        for (name, agency), measure in sorted(wanted.items()):
            if (name, agency) in have or snapshot is None or entry.until is None:
                continue
            notice_id = notice_id_for(entry.entry_id, name, measure.kind)
            ordinal = 0
            while notice_id in taken:
                ordinal += 1
                notice_id = notice_id_for(entry.entry_id, name,
                                          f"{measure.kind}|{agency}|{ordinal}")
            taken.add(notice_id)
            out.append((agency, Notice(
                notice_id=notice_id, kind=measure.kind, list=entry.list, measure=name,
                subject=snapshot.subject, related_subjects=related_for(measure, snapshot, today),
                effective_from=today, effective_until=entry.until, basis=list(entry.basis),
                issued_at=now), entry.entry_id))
    return out


def replace_related(catalogue: Catalogue,
                    issued: Mapping[str, Sequence[tuple[str, Notice]]],
                    subject_of: Mapping[str, SubjectChanged], now: datetime,
                    today: date) -> list[Sent]:
    """Notices whose `related_subjects` no longer match the subject's archive (its legal
    representative changed): each is revoked, then replaced by a notice of its own id that
    names it in `supersedes`; revocation first. `subject_of` maps entry ids to snapshots."""
    out: list[Sent] = []
    for entry_id, notices in sorted(issued.items()):
        snapshot = subject_of.get(entry_id)
        if snapshot is None:
            continue
        for agency, original in notices:
            measure = catalogue.measures.get(original.measure)
            if measure is None or not measure.extends_to:
                continue
            related = related_for(measure, snapshot, today)
            if [r.model_dump() for r in related] == [r.model_dump()
                                                     for r in original.related_subjects]:
                continue
            out.append((agency, revocation_of(entry_id, original, now, today), entry_id))
            out.append((agency, original.model_copy(update={
                "notice_id": notice_id_for(original.notice_id, original.measure, "replacement"),
                "related_subjects": related, "supersedes": original.notice_id,
                "revokes": None, "effective_from": today, "issued_at": now}), entry_id))
    return out


def _add_change(fx: ListEffects, change: ListChanged) -> None:
    ordinal = fx.next_change.get(change.entry_id, 0)
    fx.next_change[change.entry_id] = ordinal + 1
    fx.list_changes.append(change)
    fx.list_change_ids.append(list_change_id(change.entry_id, ordinal))


def _list_change(entry: Entry, op: Literal["ADD", "MOD", "DEL"],
                 subjects: Mapping[str, SubjectChanged]) -> ListChanged:
    assert entry.since is not None
    return ListChanged(list=entry.list, op=op, entry_id=entry.entry_id,
                       subject=subjects[entry.subject_key].subject, since=entry.since,
                       until=entry.until, basis=list(entry.basis))


# --- what the public sees -------------------------------------------------------------------


def public_subject(subject: SubjectRef) -> dict[str, Any]:
    """Individuals' identity numbers are masked to the first 6 characters and the check
    character (CONTRACT.md, public query site; shared.identifiers.mask_resident_id)."""
    shown = mask_resident_id(subject.id) if subject.type == "individual" else subject.id
    return {"type": subject.type, "id": shown, "name": subject.name}


def _may_be_public(catalogue: Catalogue, subject: SubjectRef, r: ArchivedRecord) -> bool:
    """Public item, in force, not about a minor; how long it shows is `public_until`."""
    item = catalogue.items.get(r.catalogue_item)
    return (item is not None and item.disclosure == "public" and is_in_force(r)
            and not is_about_a_minor(subject, r))


def is_public_record(catalogue: Catalogue, subject: SubjectRef, r: ArchivedRecord) -> bool:
    """A public item's record, in force, not about a minor (its window is the caller's)."""
    return _may_be_public(catalogue, subject, r)


def public_records(catalogue: Catalogue, subject: SubjectRef, records: Iterable[ArchivedRecord],
                   today: date, listed: set[tuple[str, str]] | None = None
                   ) -> list[dict[str, Any]]:
    """Only what the catalogue marks public, in force, within its disclosure period, and not
    about someone who was a minor on its decision date. Given `listed` (the basis records of
    the subject's published entries), a record whose item shows while listed shows only
    while an entry rests on it (`disclosure.held_until_listed`)."""
    shown = []
    for r in records:
        if (r.public_until is None or r.public_until < today
                or not _may_be_public(catalogue, subject, r)):
            continue
        if listed is not None and disclosure.held_until_listed(catalogue, r, listed):
            continue
        item = catalogue.items[r.catalogue_item]
        shown.append({"department": r.department, "record_id": r.record_id,
                      "catalogue_item": r.catalogue_item, "item_name": item.name,
                      # A breached commitment is negative (shared/commitments.py).
                      "polarity": commitments.standing(item, r.attributes)[0],
                      "document_no": r.document_no,
                      "decided_on": r.decided_on.isoformat(), "disputed": r.disputed,
                      "disputed_since": _iso_time(r.disputed_since),
                      "public_until": r.public_until.isoformat(),
                      "provenance": provenance(r)})
    return sorted(shown, key=lambda x: x["decided_on"], reverse=True)


def provenance(r: ArchivedRecord) -> dict[str, Any]:
    """The department's event behind the record's revision (CONTRACT.md: `provenance`).
    A record archived before provenance was kept names its revision without an event
    (docs/decisions.md)."""
    p = r.provenance
    return {"department": r.department, "record_id": r.record_id, "revision": r.revision,
            "event_id": p.event_id if p else None,
            "received_at": _iso_time(p.received_at) if p else None}


def _iso_time(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


# --- a profile at a moment (as_of) ----------------------------------------------------------


@dataclass(frozen=True)
class Membership:
    """A list entry as a profile shows it, with the records it rests on."""

    list: str
    since: date | None
    until: date | None
    basis: frozenset[tuple[str, str]]  # (department, record_id)
    entry_id: str = ""
    status: str = "active"
    basis_records: tuple[BasisRecord, ...] = ()


class AsOfRefused(ValueError):
    """An `as_of` that names no day this API answers for (the caller's 422)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def as_of_moment(text: str, now: datetime) -> tuple[date, datetime]:
    """`as_of=YYYY-MM-DD`: the day and the last instant of it in China Standard Time
    (CONTRACT.md), which history is read at. A day after today (in Zhuhai) is refused: its
    end has not come."""
    if not _DAY.fullmatch(text):
        raise AsOfRefused("date_parsing", "a date YYYY-MM-DD")
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise AsOfRefused("date_parsing", "a date YYYY-MM-DD that exists") from exc
    if day > now.astimezone(clock.ZHUHAI).date():
        raise AsOfRefused("future", "a day that has ended or is today, not a later one")
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), clock.ZHUHAI)
    return day, end - timedelta(microseconds=1)


def still_displayed(current: SubjectChanged | None, today: date) -> set[tuple[str, str]]:
    """The records whose display has not stopped: held today, in force (not withdrawn, not
    repaired) and within their period, if they have one (a record never shown has none; it
    still counts in the grade, as in the registry's). A record outside it (repaired,
    withdrawn, past its period, erased) is not shown again in a past public profile
    (docs/decisions.md)."""
    if current is None:
        return set()
    return {(r.department, r.record_id) for r in current.records
            if is_in_force(r) and (r.public_until is None or r.public_until >= today)}


def public_profile(catalogue: Catalogue, past: SubjectChanged, entries: Sequence[Membership],
                   day: date, current: SubjectChanged, current_entries: Sequence[Membership],
                   today: date) -> dict[str, Any] | None:
    """The public profile at the end of `day` from the snapshot in effect then (`past`) and
    the entries' states then, less what has stopped being shown since (`current`, `today`);
    None when the public could not see the subject then or cannot now. The live profile is
    this function with today's snapshot for both."""
    active_now = [m for m in current_entries if m.status == "active"]
    active_ids = {m.entry_id for m in active_now}
    lists = [m for m in entries if m.status == "active" and m.entry_id in active_ids]
    if not (is_discoverable(catalogue, past, day, {m.list for m in lists})
            and is_discoverable(catalogue, current, today, {m.list for m in active_now})):
        return None
    shown = still_displayed(current, today)
    listed = published_basis(lists)
    records = [r for r in past.records if (r.department, r.record_id) in shown
               and not disclosure.held_until_listed(catalogue, r, listed)]
    by_key = {(r.department, r.record_id): r for r in past.records}
    return {
        "subject": public_subject(past.subject),
        "records": public_records(catalogue, past.subject, records, day),
        "lists": [membership(catalogue, m, by_key) for m in lists],
        # Graded on what the public may see, since the grade names its records.
        "grade": grading.grade(catalogue, past.subject,
                               [r for r in records if _may_be_public(catalogue, past.subject, r)],
                               day).model_dump(mode="json"),
        # Departments' commitments under the rules of any record shown; one signed for a
        # repair once the repair is granted (it rests on the repaired record, whose own
        # display has stopped).
        "commitments": _commitments().public_commitments(
            catalogue, past.subject, [r for r in past.records
                                      if (r.department, r.record_id) in shown
                                      or r.repair is not None], day),
    }


def _commitments() -> Any:
    # services/publisher/commitments.py builds on this module (its record rules).
    from services.publisher import commitments as module
    return module


def own_profile(catalogue: Catalogue, past: SubjectChanged, entries: Sequence[Membership],
                day: date) -> dict[str, Any]:
    """The full past view (the subject's own, an operator's): every record and entry as
    they stood at the end of `day`, public or not, the grade as it was given."""
    by_key = {(r.department, r.record_id): r for r in past.records}
    return {
        "subject": past.subject.model_dump(mode="json"),
        "records": rights.own_records(catalogue, past, day, published_basis(entries)),
        "lists": [membership(catalogue, m, by_key) | {"status": m.status} for m in entries],
        "grade": past.grade.model_dump(mode="json"),
    }


def published_basis(entries: Iterable[Membership]) -> set[tuple[str, str]]:
    """The records the published (active) entries rest on, as (department, record_id)."""
    return set().union(*(m.basis for m in entries if m.status == "active"))


def membership(catalogue: Catalogue, m: Membership,
               records: Mapping[tuple[str, str], ArchivedRecord]) -> dict[str, Any]:
    """A list membership with its basis, each basis record with its provenance."""
    lst = catalogue.lists.get(m.list)
    basis = []
    for b in m.basis_records:
        r = records.get((b.department, b.record_id))
        basis.append({"department": b.department, "record_id": b.record_id,
                      "revision": b.revision, "provenance": provenance(r) if r else None})
    return {"list": m.list, "name": lst.name if lst else None,
            "kind": lst.kind if lst else None, "since": m.since, "until": m.until,
            "basis": basis}


# An organization can be found by name with no end (PostgreSQL takes Python's date.max).
ALWAYS = date.max


def discoverable_until(catalogue: Catalogue, snapshot: SubjectChanged,
                       on_lists: Set[str] | None = None) -> date | None:
    """The last day the subject can be found at all: organizations always, a person until
    the end of the last public record about them, None if there is none. A record that shows
    only while listed counts while the person is on one of its item's lists (`on_lists`, the
    lists of their published entries); None counts it as if they were. Stored that way with
    the snapshot, a bound that name search narrows with the entries it reads, so that it
    stops finding a person the day their last record's period ends without waiting for
    another snapshot."""
    if snapshot.subject.type != "individual":
        return ALWAYS
    return max((r.public_until for r in snapshot.records
                if r.public_until is not None
                and _may_be_public(catalogue, snapshot.subject, r)
                and (on_lists is None or not catalogue.shows_while_listed(r.catalogue_item)
                     or not on_lists.isdisjoint(catalogue.lists_fed_by(r.catalogue_item)))),
               default=None)


def is_discoverable(catalogue: Catalogue, snapshot: SubjectChanged, today: date,
                    on_lists: Set[str] | None = None) -> bool:
    """Organizations can always be found; a person only while something about them is
    public. Unknown, hidden, expired and minor all look the same from outside."""
    until = discoverable_until(catalogue, snapshot, on_lists)
    return until is not None and today <= until


# --- what the public sends -----------------------------------------------------------------

# list_changes.seq is a bigserial: a cursor past it names no position and must not reach the
# database, where it would fail as out of range.
MAX_SEQ = 2**63 - 1
# An agency's notices (GET /api/v1/agencies/<agency>/notices and .../overdue) have cursors
# of their own version, so that one feed's cursor is not another's.
NOTICES_CURSOR = "n1"
_MAX_CURSOR_CHARS = 64
_MAX_EPOCH = 2**40  # seconds: far past any date a cursor is given on


@dataclass(frozen=True)
class Cursor:
    """Where a reader of the changes feed stands, and when it was told so (None: a cursor of
    the first version, given before cursors carried a time)."""

    seq: int
    issued_at: datetime | None = None


def encode_cursor(seq: int, issued_at: datetime | None = None) -> str:
    """The opaque `next` of the changes feed: base64 of `v2:<sequence>:<issued, Unix
    seconds>` (`v1:<sequence>` without a time)."""
    text = (f"v1:{seq}" if issued_at is None
            else f"v2:{seq}:{int(issued_at.timestamp())}")
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_cursor(cursor: str | None) -> Cursor:
    """The position and time inside a cursor this API gave (position 0 for none);
    ValueError for anything else: another version, numbers that are not plain ASCII digits,
    or out of range."""
    if not cursor:
        return Cursor(0)
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise ValueError("cursor too long")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    version, _, rest = raw.partition(":")
    if version == "v1":
        return Cursor(_number(rest, MAX_SEQ))
    if version == "v2":
        seq, _, issued = rest.partition(":")
        return Cursor(_number(seq, MAX_SEQ),
                      datetime.fromtimestamp(_number(issued, _MAX_EPOCH), tz=UTC))
    raise ValueError(f"unknown cursor version {version!r}")


def _number(text: str, highest: int) -> int:
    # int() alone would take "+5", " 5", "1_0" and non-ASCII digits.
    if not (text.isascii() and text.isdigit()) or int(text) > highest:
        raise ValueError("cursor position out of range")
    return int(text)


def decode_cursor(cursor: str | None) -> int:
    """The sequence number inside a cursor (0 for none); ValueError as `read_cursor`."""
    return read_cursor(cursor).seq


def encode_notices_cursor(seq: int) -> str:
    """The opaque `next` of an agency's notices: base64 of `n1:<sequence>`."""
    return base64.urlsafe_b64encode(f"{NOTICES_CURSOR}:{seq}".encode()).decode().rstrip("=")


def decode_notices_cursor(cursor: str | None) -> int:
    """The sequence number inside a cursor of an agency's notices (0 for none); ValueError
    for anything else, a cursor of the changes feed included."""
    if not cursor:
        return 0
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise ValueError("cursor too long")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    version, _, seq = raw.partition(":")
    if version != NOTICES_CURSOR:
        raise ValueError(f"unknown cursor version {version!r}")
    return _number(seq, MAX_SEQ)


def cursor_expired(cursor: Cursor, now: datetime, window_days: int) -> bool:
    """A reader away longer than the window may have missed whom an entry that has since
    ended was about (the feed names subjects only that long after an exit): it must read
    the list again and start over (`410 cursor_expired`). Cursors of the first version,
    given before this rule, are still taken."""
    return cursor.issued_at is not None and cursor.issued_at < now - timedelta(days=window_days)


def feed_names_subject(status: str | None, ended_on: date | None, today: date,
                       window_days: int) -> bool:
    """Whether a row of the changes feed shows whom its entry is about: while the entry is on
    its list, and `window_days` after it left (its `until`); never for an entry that is gone
    (erased) or was never published."""
    if status == "active":
        return True
    if status == "exited" and ended_on is not None:
        return today <= ended_on + timedelta(days=window_days)
    return False


def control_characters(text: str, allowed: str = "") -> list[str]:
    """The control characters (Unicode Cc: NUL, escape, ...) in a text sent by the public, as
    U+ codes; PostgreSQL refuses NUL in text, and none belongs in a name or a code."""
    return sorted({f"U+{ord(ch):04X}" for ch in text
                   if unicodedata.category(ch) == "Cc" and ch not in allowed})


_PUNCTUATION = re.compile(r"[\s()（）\[\]【】〔〕〖〗{}·\.,，、\-—_/\\\"'“”‘’《》<>]+")


def fold_to_simplified(text: str) -> str:
    """Traditional characters to simplified (zhconv's table): names are kept as sent, and
    search matches either script."""
    return str(zhconv.convert(text, "zh-hans"))


def normalize_name(name: str, to_simplified: Any = fold_to_simplified) -> str:
    """Lower case, no spaces or punctuation, traditional characters folded to simplified, so
    that a search matches either script."""
    # NFKC folds full-width Latin letters and digits (ＡＢＣ１) into their usual forms.
    return _PUNCTUATION.sub("", to_simplified(unicodedata.normalize("NFKC", name)).lower())


def name_grams(normalized: str) -> list[str]:
    """Single characters and character bigrams: Chinese names are short and searched by two
    or three characters, which trigram indexes cannot serve (DOMAIN.md)."""
    grams = set(normalized)
    grams.update(normalized[i:i + 2] for i in range(len(normalized) - 1))
    return sorted(grams)


def query_grams(normalized_query: str) -> list[str]:
    if len(normalized_query) <= 1:
        return list(normalized_query)
    return sorted({normalized_query[i:i + 2] for i in range(len(normalized_query) - 1)})


# --- choosing how to search -----------------------------------------------------------------


@dataclass(frozen=True)
class GramStatistics:
    """What the database's statistics say about names (services/publisher/store.py
    `gram_statistics`, from pg_stats): about how many subjects may be found, the share of
    them whose normalized name holds each common gram, and the share of each type."""

    subjects: float = 0.0
    gram_shares: Mapping[str, float] = field(default_factory=dict)
    type_shares: Mapping[str, float] = field(default_factory=dict)


# What visiting one entry of the ordered index costs against fetching, checking and
# sorting one match found by the bigram index (docs/performance.md, "Choosing the path":
# measured on a 200,000-subject city).
ORDERED_ENTRY_COST = 0.1


def estimated_matches(stats: GramStatistics, grams: Sequence[str],
                      subject_type: str | None) -> float:
    """An upper bound of how many subjects a name query matches: as many as bear its rarest
    gram (a name holding the query holds each of its grams). A gram the statistics do not
    list is rarer than every listed one, so counted as none: such a query is rare, and the
    bigram index serves it."""
    if not grams or stats.subjects <= 0:
        return 0.0
    share = min(stats.gram_shares.get(g, 0.0) for g in grams)
    if subject_type is not None:
        share *= stats.type_shares.get(subject_type, 0.0)
    return stats.subjects * share


def search_in_fixed_order(stats: GramStatistics, grams: Sequence[str],
                          subject_type: str | None, rows_needed: int) -> bool:
    """Whether a name query is broad enough to be served by walking the fixed order
    (stopping once `rows_needed` matches are found) rather than ranking every match found by
    the bigram index. Matches are spread evenly over the fixed order (an MD5), so the walk
    visits about rows_needed * subjects / matches entries, the index path touches every
    match: walk when that is cheaper."""
    matches = estimated_matches(stats, grams, subject_type)
    if matches <= 0:
        return False
    visited = rows_needed * stats.subjects / matches
    return ORDERED_ENTRY_COST * visited < matches


def search_order_key(subject_key: str) -> str:
    """The fixed order of a broad search's other matches (migration 040's index): the first
    8 hex digits of the MD5 of the subject key, then the key."""
    return hashlib.md5(subject_key.encode()).hexdigest()[:8] + subject_key

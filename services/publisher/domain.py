"""Publisher rules: who belongs on which red or black list (红黑名单), the pre-publication
notice period (公示期), the joint reward and penalty notices (联合奖惩) that an entry or exit
sends, and what the public may see (信用珠海网). Pure functions."""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

import zhconv

from services.publisher import rights
from shared.catalogue import Catalogue
from shared.contract import (
    ArchivedRecord,
    BasisRecord,
    ListChanged,
    Notice,
    SubjectChanged,
    SubjectRef,
)
from shared.identifiers import is_minor_on, mask_resident_id

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


def qualifying_basis(catalogue: Catalogue,
                     snapshot: SubjectChanged) -> dict[str, tuple[BasisRecord, ...]]:
    """The lists the subject's archive puts it on, each with the records that do so. A
    withdrawn or repaired record no longer counts; a disputed one still does until the
    department decides. A record about a minor never counts, whatever its item (ingest
    refuses some outright; this holds for all)."""
    found: dict[str, list[BasisRecord]] = {}
    for r in snapshot.records:
        if not is_in_force(r) or is_about_a_minor(snapshot.subject, r):
            continue
        for list_name in catalogue.lists_fed_by(r.catalogue_item):
            found.setdefault(list_name, []).append(
                BasisRecord(department=r.department, record_id=r.record_id, revision=r.revision))
    return {name: tuple(sorted(b, key=lambda x: (x.department, x.record_id)))
            for name, b in found.items()}


def basis_key(b: BasisRecord) -> tuple[str, str, int]:
    return b.department, b.record_id, b.revision


def exit_reason(entry: Entry, repaired: set[tuple[str, str]]) -> str:
    """`repaired` when every record the entry rested on was repaired (信用修复: display,
    sharing and measures stop together), else `basis_withdrawn`."""
    gone = {(b.department, b.record_id) for b in entry.basis}
    return "repaired" if gone and gone <= repaired else "basis_withdrawn"


def plan_for_subject(subject_key: str, open_entries: Mapping[str, Entry],
                     qualifying: Mapping[str, tuple[BasisRecord, ...]],
                     served: Mapping[str, set[tuple[str, str, int]]] | None = None,
                     repaired: set[tuple[str, str]] | None = None) -> list[Action]:
    """Enter, rebase or exit the subject's lists. `served` holds, per list, the basis records
    whose entry already ran its full term (exited as expired): they do not list the subject
    again. A new revision of the record (an extension, say) is a new decision and does.
    `repaired` names the subject's repaired records: an entry that rested only on them exits
    `repaired`."""
    served = served or {}
    repaired = repaired or set()
    actions: list[Action] = []
    for list_name, full_basis in qualifying.items():
        basis = tuple(b for b in full_basis if basis_key(b) not in served.get(list_name, set()))
        entry = open_entries.get(list_name)
        if not basis:
            if entry is not None:
                actions.append(Exit(entry, exit_reason(entry, repaired)))
        elif entry is None:
            actions.append(Enter(list_name, subject_key, basis))
        elif entry.basis != basis:
            actions.append(Rebase(entry, basis))
    for list_name, entry in open_entries.items():
        if list_name not in qualifying:
            actions.append(Exit(entry, exit_reason(entry, repaired)))
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


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


# --- the agencies' feedback (closed loop) -------------------------------------------------

# CONTRACT.md ("Agencies over HTTP"): a notice is overdue while it has no `applied` or
# `not_applicable` feedback past its measure's deadline. The catalogue gives measures no
# deadline yet (issue 10): until it does, one deadline for every notice, a number of working
# days after its issue (`notice_feedback_working_days`). Working days are Monday to Friday:
# the State Council's yearly holiday and make-up-day schedule is not modelled here.
FEEDBACK_CLOSING = ("applied", "not_applicable")


def add_working_days(day: date, working_days: int) -> date:
    """The day `working_days` working days after `day` (a Saturday plus one is Monday)."""
    counted = 0
    while counted < working_days:
        day += timedelta(days=1)
        if day.weekday() < 5:
            counted += 1
    return day


def feedback_overdue_through(today: date, working_days: int) -> date:
    """The last issue day whose feedback deadline is behind `today`: a notice issued on or
    before it (Zhuhai time) and still awaiting feedback is overdue."""
    day = today - timedelta(days=1)
    while add_working_days(day, working_days) >= today:
        day -= timedelta(days=1)
    return day


def entry_id_for(list_name: str, subject_key: str, ordinal: int) -> str:
    """The id of a subject's entry on a list, numbered from 0 in the order they were made."""
    return str(uuid.uuid5(_NOTICE_NS, f"entry|{list_name}|{subject_key}|{ordinal}"))


def list_change_id(entry_id: str, ordinal: int) -> str:
    """The event id of an entry's list change (ADD, MOD, DEL), numbered from 0."""
    return str(uuid.uuid5(_NOTICE_NS, f"change|{entry_id}|{ordinal}"))


def notice_id_for(entry_id: str, measure: str, kind: str) -> str:
    return str(uuid.uuid5(_NOTICE_NS, f"{entry_id}|{measure}|{kind}"))


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
                entry = Entry(entry_id_for(list_name, subject_key, ordinal), list_name,
                              subject_key, "pending", basis)
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
                fx.changed_entries.append(rebased)
                if entry.status == "active":
                    _add_change(fx, _list_change(rebased, "MOD", subjects))
            case Exit(entry, reason):
                fx.changed_entries.append(_withdraw(fx, entry, reason, subjects, issued, now,
                                                    today))
    return fx


def _publish(catalogue: Catalogue, fx: ListEffects, entry: Entry,
             subjects: Mapping[str, SubjectChanged], now: datetime, today: date) -> Entry:
    lst = catalogue.lists[entry.list]
    active = replace(entry, status="active", since=today,
                     until=add_years(today, lst.validity_years))
    _add_change(fx, _list_change(active, "ADD", subjects))
    snapshot = subjects[entry.subject_key]
    # The registry links no key person who was a minor on the record's decision date; one
    # who is a minor today was one then too, so a link that slipped through stops here.
    named = [r for r in snapshot.related_subjects
             if not (r.type == "individual" and is_minor_on(r.id, today))]
    for measure_name, measure in catalogue.measures_for(entry.list):
        related = [r for r in named if r.role in measure.extends_to]
        notice = Notice(
            notice_id=notice_id_for(entry.entry_id, measure_name, measure.kind),
            kind=measure.kind, list=entry.list, measure=measure_name, subject=snapshot.subject,
            related_subjects=related, effective_from=today, effective_until=active.until,
            basis=list(entry.basis), issued_at=now)
        fx.notices.append((measure.agency, notice, entry.entry_id))
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
        revocation = original.model_copy(update={
            "notice_id": notice_id_for(entry.entry_id, original.measure, "revocation"),
            "kind": "revocation", "revokes": original.notice_id, "effective_from": today,
            "effective_until": None, "issued_at": now})
        fx.notices.append((agency, revocation, entry.entry_id))
    return exited


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
                       until=entry.until)


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


def public_records(catalogue: Catalogue, subject: SubjectRef, records: Iterable[ArchivedRecord],
                   today: date) -> list[dict[str, Any]]:
    """Only what the catalogue marks public, in force, within its disclosure period, and not
    about someone who was a minor on its decision date."""
    shown = []
    for r in records:
        if (r.public_until is None or r.public_until < today
                or not _may_be_public(catalogue, subject, r)):
            continue
        item = catalogue.items[r.catalogue_item]
        shown.append({"department": r.department, "record_id": r.record_id,
                      "catalogue_item": r.catalogue_item, "item_name": item.name,
                      "polarity": item.polarity, "document_no": r.document_no,
                      "decided_on": r.decided_on.isoformat(), "disputed": r.disputed,
                      "public_until": r.public_until.isoformat()})
    return sorted(shown, key=lambda x: x["decided_on"], reverse=True)


# An organization can be found by name with no end (PostgreSQL takes Python's date.max).
ALWAYS = date.max


def discoverable_until(catalogue: Catalogue, snapshot: SubjectChanged) -> date | None:
    """The last day the subject can be found at all: organizations always, a person until
    the end of the last public record about them, None if there is none. Stored with the
    snapshot, so that name search needs no rule of its own and stops finding a person the
    day their last record's period ends, without waiting for another snapshot."""
    if snapshot.subject.type != "individual":
        return ALWAYS
    return max((r.public_until for r in snapshot.records
                if r.public_until is not None
                and _may_be_public(catalogue, snapshot.subject, r)), default=None)


def is_discoverable(catalogue: Catalogue, snapshot: SubjectChanged, today: date) -> bool:
    """Organizations can always be found; a person only while something about them is
    public. Unknown, hidden, expired and minor all look the same from outside."""
    until = discoverable_until(catalogue, snapshot)
    return until is not None and today <= until


# --- what the public sends -----------------------------------------------------------------

# list_changes.seq is a bigserial: a cursor past it names no position and must not reach the
# database, where it would fail as out of range.
MAX_SEQ = 2**63 - 1
_CURSOR_VERSION = "v1"
_MAX_CURSOR_CHARS = 64


def encode_cursor(seq: int) -> str:
    """The opaque `next` of the changes feed: base64 of a version and a sequence number."""
    return base64.urlsafe_b64encode(f"{_CURSOR_VERSION}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The sequence number inside a cursor this API gave (0 for none); ValueError for
    anything else: another version, a number that is not plain ASCII digits, or one outside
    0..MAX_SEQ."""
    if not cursor:
        return 0
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise ValueError("cursor too long")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    version, _, seq = raw.partition(":")
    if version != _CURSOR_VERSION:
        raise ValueError(f"unknown cursor version {version!r}")
    # int() alone would take "+5", " 5", "1_0" and non-ASCII digits.
    if not (seq.isascii() and seq.isdigit()) or int(seq) > MAX_SEQ:
        raise ValueError("cursor position out of range")
    return int(seq)


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

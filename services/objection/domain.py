"""Objection and repair rules: which requests are taken (the record exists and is about the
subject named; one open request per record and requester; rate limits), deadlines, access
tokens, and what a decision does to the record. Pure functions."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from services.objection.contracts import AcceptedReading, ArchivedReading, SnapshotReading
from shared import clock, disclosure
from shared.catalogue import Catalogue, RepairSteps
from shared.contract import AcceptedRecord, RecordChange, SubjectRef, SubjectType
from shared.identifiers import check_resident_id, check_uscc, normalize_identifier
from shared.messages import caused_id

# 征信业管理条例 (2013) art. 25: an objection is checked and answered within 20 days;
# art. 26: a complaint within 30. A deadline that is not a working day moves to the next
# one (CONTRACT.md, "Objections and repair").
OBJECTION_DAYS = 20
COMPLAINT_DAYS = 30


def due_by(received_on: date, days: int = OBJECTION_DAYS) -> date:
    """`days` (20) after the day received; a last day that is not a working day in mainland
    China (a weekend, a public holiday) moves to the next working day (CONTRACT.md,
    "Objections and repair"; shared/clock.py's calendar, 调休 Saturdays counted as working
    days)."""
    return clock.next_working_day(received_on + timedelta(days=days)).day


def new_access_token() -> str:
    return secrets.token_urlsafe(24)


def changes_on_decision(kind: str, decision: str, withdraw: bool,
                        corrected: bool) -> list[RecordChange]:
    """What the record undergoes when the department decides.

    A rejected objection lifts the dispute flag (unless another objection holds it: the
    caller's). An upheld objection withdraws the record, or lifts the flag with the
    corrected revision in hand; without it (a decision over HTTP carries none) the record
    the department agrees is wrong stays disputed until its next revision arrives
    (`awaits_correction`): flagged, also if this objection did not flag it (one about a
    revision already examined). An upheld repair stops public display, data sharing and the
    penalty measures together (NDRC Order 36).
    """
    if decision == "rejected":
        return ["unflag"] if kind == "objection" else []
    if kind == "repair":
        return ["repair"]
    if withdraw:
        return ["withdraw"]
    return ["unflag"] if corrected else ["flag"]


def awaits_correction(kind: str, decision: str, withdraw: bool, corrected: bool) -> bool:
    """An upheld objection whose record is neither withdrawn nor corrected by the decision:
    its flag is lifted when the department's next revision of the record arrives."""
    return kind == "objection" and decision == "upheld" and not (withdraw or corrected)


# --- which requests are taken ------------------------------------------------------------

FieldProblem = dict[str, str]


def _problem(field: str, code: str, message: str) -> FieldProblem:
    return {"field": field, "code": code, "message": message}


@dataclass(frozen=True)
class KnownRecord:
    """A record as ingest accepted it (the service's projection of credit.records.accepted):
    its subject exactly as the registry keys it."""

    department: str
    record_id: str
    subject: SubjectRef
    revision: int
    catalogue_item: str | None
    withdrawn: bool
    # When what the service keeps about the record is erased (shared/disclosure.py), if ever.
    purge_on: date | None = None


def latest_known(accepted: Iterable[AcceptedReading | AcceptedRecord],
                 catalogue: Catalogue | None = None) -> list[KnownRecord]:
    """One row per record, the highest revision of those given (a batch may hold several
    revisions of one record; the database keeps the highest of its own and these). With the
    catalogue, each upsert carries its purge date."""
    latest: dict[tuple[str, str], KnownRecord] = {}
    for a in accepted:
        sub = a.submission
        key = (a.department, sub.record_id)
        if key in latest and latest[key].revision >= sub.revision:
            continue
        purge_on = None
        if catalogue is not None and sub.catalogue_item in catalogue.items and sub.decided_on:
            purge_on = disclosure.purge_on(catalogue, sub.subject.type, sub.catalogue_item,
                                           sub.act_ended_on or sub.decided_on, sub.attributes)
        latest[key] = KnownRecord(
            department=a.department, record_id=sub.record_id,
            subject=SubjectRef(type=sub.subject.type, id=sub.subject.id),
            revision=sub.revision, catalogue_item=sub.catalogue_item,
            withdrawn=sub.action == "withdraw", purge_on=purge_on)
    return list(latest.values())


def subject_id_problems(subject_type: SubjectType, raw_id: str, today: date,
                        legacy_uscc: frozenset[str]) -> tuple[str, list[FieldProblem]]:
    """(the identifier in its one normal form, what is wrong with it)."""
    normalized = normalize_identifier(raw_id)
    if normalized is None:
        return raw_id, [_problem("subject.id", "alphabet",
                                 "only letters and digits (full-width forms are read as ASCII)")]
    problems = (check_resident_id(normalized, today) if subject_type == "individual"
                else check_uscc(normalized, subject_type, legacy_uscc))
    return normalized, [_problem("subject.id", p.code, p.message) for p in problems]


def record_problems(claimed: SubjectRef, known: KnownRecord | None) -> list[FieldProblem]:
    """An objection or repair request must name a record that exists (and is not withdrawn)
    and the subject that record is about (CONTRACT.md, "Objections and repair"): otherwise
    a stranger could flag, and through the flag move, another subject's record. The answer
    never says whom the record is about."""
    if known is None or known.withdrawn:
        return [_problem("record.record_id", "record_not_found",
                         "no record with this id at this department")]
    if (known.subject.type != claimed.type
            or normalize_identifier(known.subject.id) != claimed.id):
        return [_problem("subject.id", "record_subject_mismatch",
                         "the record is not about this subject")]
    return []


_MIN_REQUESTER_CHARACTERS = 3


def requester_of(contact: str) -> str | None:
    """Who asks, without a login: the contact in a normal form (NFKC, case-folded, only
    letters and digits kept, so "138 0000 0000" and "138-0000-0000" are one requester), as
    its SHA-256. None when too little of the contact is left to tell requesters apart."""
    folded = unicodedata.normalize("NFKC", contact).casefold()
    kept = "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LN")
    if len(kept) < _MIN_REQUESTER_CHARACTERS:
        return None
    return hashlib.sha256(kept.encode()).hexdigest()


# --- rate limits -----------------------------------------------------------------------

_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*")


@dataclass(frozen=True)
class Rate:
    limit: int
    seconds: int

    def __str__(self) -> str:
        unit = {v: k for k, v in _UNIT_SECONDS.items()}[self.seconds]
        return f"{self.limit}/{unit}"


def parse_rate(text: str) -> Rate:
    """"30/hour" (second, minute, hour or day); raises ValueError otherwise."""
    m = _RATE.fullmatch(text)
    if m is None or int(m.group(1)) < 1:
        raise ValueError(f"a rate limit is '<count ≥ 1>/<second|minute|hour|day>', not {text!r}")
    return Rate(int(m.group(1)), _UNIT_SECONDS[m.group(2)])


def rate_window(rate: Rate, at: datetime) -> tuple[datetime, datetime]:
    """The fixed window (aligned on the Unix epoch) that `at` falls in: [start, end)."""
    moment = math.floor(at.timestamp())
    start = moment - moment % rate.seconds
    return (datetime.fromtimestamp(start, UTC),
            datetime.fromtimestamp(start + rate.seconds, UTC))


def retry_after(at: datetime, window_end: datetime) -> int:
    """Whole seconds until the window ends (the Retry-After header), at least 1."""
    return max(1, math.ceil((window_end - at).total_seconds()))


# --- event ids ---------------------------------------------------------------------------


def routed_id(objection_id: str) -> str:
    """The event id of an objection's routing to its department: once per objection."""
    return caused_id("xinyong/objection", "routed", objection_id)


def status_change_id(objection_id: str, change: RecordChange) -> str:
    """The event id of a record-status change an objection causes: each change happens at
    most once per objection (the flag on receipt, the rest on the one decision)."""
    return caused_id("xinyong/objection", "status", objection_id, change)


def closed_id(objection_id: str) -> str:
    """The event id of an objection's decision for the statistics: once per objection."""
    return caused_id("xinyong/objection", "closed", objection_id)
def request_changed_id(request_id: str, version: int) -> str:
    """The event id of a request's state for the subject's own view: once per version."""
    return caused_id("xinyong/objection", "request", request_id, version)


def complaint_routed_id(complaint_id: str) -> str:
    return caused_id("xinyong/objection", "complaint-routed", complaint_id)


# --- what the registry says of a record (its snapshots) -----------------------------------


@dataclass(frozen=True)
class RecordFacts:
    """A record as the registry's latest snapshot shows it: what a repair request is judged
    on. The registry sets `repair_from` and `public_until` from the disclosure rule in force
    on the decision date; nothing here computes them again."""

    department: str
    record_id: str
    subject_key: str
    revision: int
    version: int  # the subject's snapshot version
    status: str
    catalogue_item: str
    repair_from: date | None
    public_until: date | None


def facts_of(snapshot: SnapshotReading) -> list[RecordFacts]:
    return [RecordFacts(r.department, r.record_id, snapshot.subject.key, r.revision,
                        snapshot.version, r.status, r.catalogue_item, r.repair_from,
                        r.public_until) for r in snapshot.records]


def repaired_in(snapshot: SnapshotReading) -> list[ArchivedReading]:
    return [r for r in snapshot.records if r.status == "repaired" and r.repair is not None]


# --- credit repair (信用修复, NDRC Order 36) ------------------------------------------------


def repair_eligibility(catalogue: Catalogue, facts: RecordFacts | None, today: date, *,
                       commitment_given: bool, obligations_declared: bool
                       ) -> list[FieldProblem]:
    """Every reason a repair request cannot be taken (all of them, in one answer): the
    record must be a negative record now published, of an item repaired under Order 36 (not
    one with a removal procedure of its own), past its minimum disclosure period (the
    record's `repair_from`), with the obligations declared performed and a public credit
    commitment signed."""
    problems: list[FieldProblem] = []
    item = catalogue.items.get(facts.catalogue_item) if facts is not None else None
    published = (facts is not None and item is not None and facts.status == "active"
                 and item.disclosure == "public" and facts.public_until is not None
                 and today <= facts.public_until)
    if not published:
        problems.append(_problem("record.record_id", "not_published",
                                 "the record is not publicly disclosed now: there is nothing "
                                 "to repair"))
    if item is not None and item.own_removal is not None:
        problems.append({**_problem("record.record_id", "not_repairable",
                                    f"{item.name}不适用信用修复：{item.own_removal}"),
                         "procedure": item.own_removal})
    elif item is not None and item.polarity not in ("negative", "commitment"):
        # A breached commitment is negative information (shared/commitments.py); a kept one
        # has no minimum period and is refused just below.
        problems.append(_problem("record.record_id", "not_repairable",
                                 f"{item.name}不是失信信息，无需修复"))
    elif facts is not None and item is not None and published:
        if facts.repair_from is None:
            problems.append(_problem("record.record_id", "not_repairable",
                                     "no minimum disclosure period applies to this record"))
        elif today < facts.repair_from:
            problems.append({**_problem("record.record_id", "too_early",
                                        f"repair may be asked from {facts.repair_from}, "
                                        "after the minimum disclosure period"),
                             "eligible_from": facts.repair_from.isoformat()})
    if not commitment_given:
        problems.append(_problem("commitment", "commitment_missing",
                                 "a signed public credit commitment (信用承诺) is required"))
    if not obligations_declared:
        problems.append(_problem("obligations", "obligations_not_declared",
                                 "declare the legal obligations performed (履行法定义务), "
                                 "with evidence references"))
    return problems


def commitment_problems(catalogue: Catalogue, text_version: str, signed_on: date,
                        today: date) -> list[FieldProblem]:
    problems = []
    text = catalogue.repair.commitment_texts.get(text_version)
    if text is None:
        problems.append(_problem("commitment.text_version", "unknown_text_version",
                                 f"one of {', '.join(catalogue.repair.commitment_texts)}"))
    elif signed_on < text.effective_from:
        problems.append(_problem("commitment.signed_on", "text_not_in_force",
                                 f"text {text_version} is in force from "
                                 f"{text.effective_from}"))
    if signed_on > today:
        problems.append(_problem("commitment.signed_on", "future_date",
                                 f"{signed_on} is after {today}"))
    return problems


@dataclass(frozen=True)
class RepairDeadlines:
    """The working-day steps of a repair request (DOMAIN.md): accept or refuse, platform
    check, the department's decision, the result passed on. Acceptance and the check are
    made at once, by `repair_eligibility` on the registry's own figures, so the department's
    days run from the day received."""

    accept_by: date
    check_by: date
    decide_by: date  # the department's `due_by`
    provisional: bool


def repair_deadlines(received_on: date, steps: RepairSteps) -> RepairDeadlines:
    accept = clock.add_working_days(received_on, steps.accept)
    check = clock.add_working_days(received_on, steps.check)
    decide = clock.add_working_days(received_on, steps.decide)
    return RepairDeadlines(accept.day, check.day, decide.day,
                           accept.provisional or check.provisional or decide.provisional)


def pass_on_by(decided_on: date, steps: RepairSteps) -> date:
    return clock.add_working_days(decided_on, steps.pass_on).day


# --- complaints (投诉) -------------------------------------------------------------------


def complaint_about_key(kind: str, reference: str | None) -> str:
    """What a complaint is about, as one text: one open complaint per requester and key."""
    return kind if reference is None else f"{kind}:{reference}"


def list_department(catalogue: Catalogue, list_name: str) -> str | None:
    """The department whose records put subjects on a list: the one a complaint about an
    entry goes to (None when the list's items come from several)."""
    departments = {catalogue.items[i].department for i in catalogue.lists[list_name].items}
    return departments.pop() if len(departments) == 1 else None

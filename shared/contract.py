"""Payloads of every event Xinyong exchanges, as pydantic models.

The external ones mirror ../shared/design/CONTRACT.md (a promise to outside systems: change
them only by adding a `.v2`); the internal ones are the services' own business. Field lists
are minimums: models accept more fields than they name, so a producer may add fields.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# `government` (机关, USCC category 11; 13 群团组织 too: docs/decisions.md, "Government
# integrity"): CONTRACT.md's subject type for 政务诚信.
SubjectType = Literal["enterprise", "individual", "institution", "social_org", "government"]
SUBJECT_TYPES: tuple[SubjectType, ...] = ("enterprise", "individual", "institution", "social_org",
                                          "government")


class _Open(BaseModel):
    """More fields may be added by the producer (CONTRACT.md: 'field lists are the minimum')."""

    # Its errors' text reaches dead letters and logs: without the values (envelope.py).
    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)


def subject_key(subject_type: str, identifier: str) -> str:
    """`<type>:<identifier>`: the Kafka key of every event about a subject."""
    return f"{subject_type}:{identifier}"


class SubjectRef(_Open):
    type: SubjectType
    id: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)

    @property
    def key(self) -> str:
        return subject_key(self.type, self.id)


class RelatedSubject(_Open):
    type: SubjectType
    id: str
    name: str | None = None
    role: str


class FieldError(_Open):
    field: str
    code: str
    message: str


# --- departments -> Xinyong -------------------------------------------------------------


# Revisions are stored in PostgreSQL `int` columns (ingest's and the registry's).
REVISION_MAX = 2**31 - 1


class RecordSubmission(_Open):
    """cn.zhuhai.credit.record.submitted.v1 on credit.inbound.<dept>."""

    record_id: str = Field(min_length=1, max_length=64)
    # A JSON integer (not "2", not true) that fits the revision columns.
    revision: int = Field(ge=1, le=REVISION_MAX, strict=True)
    action: Literal["upsert", "withdraw"]
    catalogue_item: str | None = None
    subject: SubjectRef
    decided_on: date | None = None
    document_no: str | None = Field(default=None, max_length=200)
    summary: str | None = Field(default=None, max_length=4000)
    district: str | None = None
    zone: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    # When the act or event ended (不良行为或者事件终止之日): a person's negative information
    # is deleted five years after it (征信业管理条例 art. 16). Absent: `decided_on`.
    act_ended_on: date | None = None
    # Internal: where Xinyong may tell the subject of a listing before it is published
    # (国办发〔2020〕49号); never shown to the public, only to the subject itself (/me).
    contact: str | None = Field(default=None, max_length=200)


class ObjectionDecision(_Open):
    """cn.zhuhai.credit.objection.decided.v1: a department's answer to a routed objection."""

    objection_id: str
    decision: Literal["upheld", "rejected"]
    reason: str
    corrected: RecordSubmission | None = None
    withdraw: bool = False


# --- Xinyong -> departments -------------------------------------------------------------

FeedbackStatus = Literal["accepted", "rejected", "duplicate", "stale"]


class RawPosition(_Open):
    topic: str
    partition: int
    offset: int


class RecordFeedback(_Open):
    """cn.zhuhai.credit.record.feedback.v1 on credit.feedback.<dept>."""

    event_id: str | None
    record_id: str | None
    revision: int | None
    status: FeedbackStatus
    errors: list[FieldError] = Field(default_factory=list)
    raw: RawPosition | None = None


class RecordRef(_Open):
    department: str
    record_id: str
    revision: int | None = None


class ObjectionRouted(_Open):
    """cn.zhuhai.credit.objection.routed.v1 on credit.objections.<dept>."""

    objection_id: str
    kind: Literal["objection", "repair"]
    subject: SubjectRef
    record: RecordRef
    reason: str
    due_by: date
    received_at: datetime


# --- Xinyong -> agencies ----------------------------------------------------------------


class BasisRecord(_Open):
    department: str
    record_id: str
    revision: int


# Named outside the class: inside Notice, `list` is a field (the contract's name for it).
_Basis = list[BasisRecord]
_Related = list[RelatedSubject]


class Notice(_Open):
    """cn.zhuhai.credit.notice.v1 on credit.notices.<agency>."""

    notice_id: str
    kind: Literal["penalty", "reward", "revocation"]
    list: str
    measure: str
    subject: SubjectRef
    related_subjects: _Related = Field(default_factory=lambda: [])
    effective_from: date
    effective_until: date | None
    basis: _Basis
    issued_at: datetime
    revokes: str | None = None
    # A notice that replaces an earlier one (a legal representative changed, a list
    # extended) names it (CONTRACT.md, "Xinyong -> agencies").
    supersedes: str | None = None


class NoticeFeedback(_Open):
    """cn.zhuhai.credit.notice.feedback.v1 on credit.notice-feedback.<agency>."""

    notice_id: str
    status: Literal["received", "applied", "not_applicable"]
    note: str | None = None


# --- internal ---------------------------------------------------------------------------


class AcceptedRecord(_Open):
    """A validated, normalized submission: ingest -> registry on credit.records.accepted."""

    department: str
    submission: RecordSubmission
    source_event_id: str
    accepted_at: datetime


class DecisionReceived(_Open):
    """A department's objection decision as it arrived on its inbound topic: ingest ->
    objection on credit.decisions.received. `department` is the inbound topic's, whose ACL
    only that department may write, not a claim of the event; `sent` is the event as the
    department sent it (cn.zhuhai.credit.objection.decided.v1), validated by objection."""

    department: str
    sent: dict[str, Any]


RecordChange = Literal["flag", "unflag", "withdraw", "repair"]


class Commitment(_Open):
    """A public credit commitment (信用承诺) signed with a repair request (NDRC Order 36): the
    catalogue's text of that version, who signed it, and when. Published once the repair is
    granted."""

    commitment_id: str
    kind: Literal["repair"] = "repair"
    text_version: str
    signer_name: str
    signer_role: str
    signed_on: date


class RecordStatusChanged(_Open):
    """objection -> registry on credit.records.status: a decision about one record."""

    change: RecordChange
    department: str
    record_id: str
    subject: SubjectRef
    objection_id: str
    reason: str | None = None
    # With a granted repair: the commitment the subject signed for it.
    commitment: Commitment | None = None


class Repair(_Open):
    """How a record came to be repaired (信用修复): the request and the commitment."""

    objection_id: str
    granted_on: date
    commitment: Commitment | None = None


RecordStatus = Literal["active", "withdrawn", "repaired"]


class Provenance(_Open):
    """The department's event that put a revision of a record there (CONTRACT.md, public
    query site: `provenance`): its CloudEvent `id` (over HTTP the `Idempotency-Key`, or the
    id ingest generated and answered; a corrected revision in a decision:
    `<decision id>/corrected`) and when ingest received it. The department finds the same
    event id and time in its audit (`GET /api/v1/records/<dept>/<record_id>/submissions`)."""

    department: str
    record_id: str
    revision: int
    event_id: str | None
    received_at: datetime | None


class ArchivedRecord(_Open):
    """One record of a subject's credit archive as the registry keeps it."""

    department: str
    record_id: str
    revision: int
    catalogue_item: str
    decided_on: date
    document_no: str | None = None
    summary: str | None = None
    district: str | None = None
    zone: str | None = None
    status: RecordStatus
    disputed: bool = False
    disclosure_rule: str | None = None
    repair_from: date | None = None
    public_until: date | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    act_ended_on: date | None = None
    # The day the record is erased (a person's negative information, 5 years after the act
    # ended: shared/disclosure.py), None when it is kept.
    purge_on: date | None = None
    contact: str | None = None  # the department's, from the submission: internal
    repair: Repair | None = None
    # The department's event behind this revision; None for records archived before
    # provenance was kept (docs/decisions.md). A flag or a repair never changes it.
    provenance: Provenance | None = None
    # When the objection flag (异议标注) now on the record was set.
    disputed_since: datetime | None = None


class GradeBasis(_Open):
    department: str
    record_id: str
    revision: int


class Grade(_Open):
    grade: Literal["A", "B", "C", "D"]
    explanation: list[str]
    # The records the grade rests on, by department and record_id (the explanation names
    # them too, in words).
    basis: list[GradeBasis] = Field(default_factory=list)


class SubjectChanged(_Open):
    """registry -> publisher on credit.subjects.changed: a full snapshot of one archive.

    Snapshots, not deltas: a consumer that sees version n can drop anything older, so
    redeliveries and reordering cannot corrupt what it derives.
    """

    subject: SubjectRef
    version: int
    records: list[ArchivedRecord]
    related_subjects: list[RelatedSubject] = Field(default_factory=list)
    grade: Grade


class ListChanged(_Open):
    """publisher -> anyone on credit.lists.changed: one entry, change or exit of a list."""

    list: str
    op: Literal["ADD", "MOD", "DEL"]
    entry_id: str
    subject: SubjectRef
    since: date
    until: date | None
    # The records the entry rests on (the statistics count an entry in its basis record's
    # district).
    basis: _Basis = Field(default_factory=lambda: [])


class ObjectionClosed(_Open):
    """objection -> stats on credit.objections.closed: a department decided an objection or
    repair request (the scorecards count decisions and those after `due_by`)."""

    objection_id: str
    kind: Literal["objection", "repair"]
    department: str
    record: RecordRef
    decision: Literal["upheld", "rejected"]
    received_at: datetime
    due_by: date
    decided_at: datetime


class StatsDelta(_Open):
    """stats -> stats-windows on credit.stats.deltas (keyed by district): how many cases an
    early-warning rule counts more (positive) or no longer counts (negative) in a district
    on a day, as one batch of the stats service moved them; each case's own +1 or -1 stays
    in the stats database (docs/decisions.md, "Early warning on faust"). `on` is when the
    cases happened (their decision day, midnight China Standard Time): faust's windows take
    a datetime. `fact_id` is a function of the cases summed (a batch applied again sends the
    same id)."""

    fact_id: str
    district: str
    measure: str  # the early-warning rule (catalogue `early_warnings`)
    on: datetime
    delta: int = Field(description="the signed sum of the cases' +1 and -1; never 0")

    @field_validator("delta")
    @classmethod
    def _moves(cls, value: int) -> int:
        if value == 0:
            raise ValueError("a delta of 0 moves no window")
        return value


class WindowRange(_Open):
    from_: datetime = Field(alias="from")
    to: datetime

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True,
                              serialize_by_alias=True, hide_input_in_errors=True)


class StatsWindow(_Open):
    """stats-windows -> stats on credit.stats.windows (compacted; key district, measure,
    window start): a window's count after an update, absolute."""

    district: str
    measure: str
    window: WindowRange
    count: int
    threshold: int


class StatsWarning(_Open):
    """stats-windows -> stats on credit.stats.warnings (compacted, same key): a window's
    count crossed its rule's threshold, up (`raised`) or down (`cleared`)."""

    district: str
    measure: str
    window: WindowRange
    count: int
    threshold: int
    status: Literal["raised", "cleared"]


class NotifiedReason(_Open):
    """One record a listing rests on, as the subject is told of it."""

    department: str
    record_id: str
    revision: int
    catalogue_item: str
    item_name: str
    document_no: str | None = None
    decided_on: date


_Reasons = list[NotifiedReason]


class SubjectNotified(_Open):
    """publisher -> anyone on credit.subjects.notified: the subject has been told that it is
    to be listed, why, when, and how to object (国办发〔2020〕49号; 征信业管理条例 art. 15),
    by a message to its contact or, failing that, by a public announcement."""

    notification_id: str
    entry_id: str
    list: str
    list_name: str
    subject: SubjectRef
    reasons: _Reasons
    channel: Literal["contact", "announcement"]
    notified_at: datetime
    planned_publication: date
    object_by: date
    how_to_object: str
    basis: str


class RequestChanged(_Open):
    """objection -> publisher on credit.requests.changed: an objection, repair request or
    complaint about a subject, as it stands now (a snapshot: the highest `version` wins), for
    the subject's own view (/api/v1/me). The requester's contact and text are not in it: the
    requester need not be the subject."""

    request_id: str
    kind: Literal["objection", "repair", "complaint"]
    subject: SubjectRef
    about: dict[str, Any]
    status: str
    due_by: date
    received_at: datetime
    decided_at: datetime | None = None
    overdue: bool = False
    version: int
    timeline: list[dict[str, Any]] = Field(default_factory=list)


class ComplaintRouted(_Open):
    """cn.zhuhai.credit.complaint.routed.v1 on credit.objections.<dept>: a complaint (投诉)
    about one of the department's records, objections or list entries, to answer by
    `due_by` (征信业管理条例 art. 26)."""

    complaint_id: str
    about: dict[str, Any]
    subject: SubjectRef | None = None
    text: str
    due_by: date
    received_at: datetime


PartyKind = Literal["department", "agency", "subject", "operator"]


class CredentialChanged(_Open):
    """operators -> services on credit.credentials (compacted, keyed by `token_id`): a
    credential issued or revoked. It carries the SHA-256 of the token's secret, never the
    secret; a subject's `party` is a keyed hash of its subject key, never the identity
    number (shared/credentials.py)."""

    token_id: str
    status: Literal["issued", "revoked"]
    party_kind: PartyKind | None = None
    party: str | None = None
    secret_hash: str | None = None
    expires_at: datetime | None = None
    kafka_user: str | None = None  # the credential's own Kafka user, if it has one
    reason: str | None = None  # of a revocation: "revoked" by an operator, or "expired"
    at: datetime


class DeadLetter(_Open):
    """A message a service could not process, with the reason. The message itself, byte for
    byte, is the row `stored_id` of the `dead_letters` table in the service's database
    (shared/migrations/011_dead_letters.sql): the event stays small whatever the message."""

    service: str
    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None  # as text, NUL and invalid UTF-8 replaced (the stored row has the bytes)
    stored_id: int
    size: int
    sha256: str
    preview: str  # the first bytes of the value as text, for a first look

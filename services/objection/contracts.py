"""What the objection service consumes and produces, and its HTTP models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from shared.catalogue import Catalogue
from shared.contract import REVISION_MAX, RecordStatus, SubjectType, subject_key
from shared.topics import (
    DECISIONS_RECEIVED,
    LISTS_CHANGED,
    OBJECTIONS,
    OBJECTIONS_CLOSED,
    RECORDS_ACCEPTED,
    RECORDS_STATUS,
    REQUESTS_CHANGED,
    SUBJECTS_CHANGED,
)

# The departments' objection decisions, as ingest passes them on from their inbound topics
# (this service does not read the departments' submissions). Accepted records: the
# projection that an objection's record and subject are checked against. Snapshots: what
# the registry says of each record (a repair request's eligibility, a granted repair passed
# on). List changes: the entries a complaint may name.
CONSUMES = (DECISIONS_RECEIVED, RECORDS_ACCEPTED, SUBJECTS_CHANGED, LISTS_CHANGED)
PRODUCES = (OBJECTIONS, RECORDS_STATUS, REQUESTS_CHANGED, OBJECTIONS_CLOSED)


def consumed_topics(_: Catalogue) -> list[str]:
    return [t.name for t in CONSUMES]


# --- what this service reads of the large events it consumes --------------------------------
#
# Readings: the fields this service uses of an event, under the contract model's names and
# types (shared/contract.py stays the definition of each topic; tests/unit/test_readings.py
# holds every field here to it). Parsed from the same bytes, the other fields skipped and
# never built: a snapshot's records carry attributes, provenance, repairs and commitments
# this service does not keep, and building them was most of its CPU a record (docs/
# performance.md, "Objection and ingest").


class _Reading(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SubjectReading(_Reading):
    type: SubjectType
    id: str = Field(min_length=1, max_length=64)

    @property
    def key(self) -> str:
        return subject_key(self.type, self.id)


class SubmissionReading(_Reading):
    """Of `RecordSubmission`: what the projection of accepted records and the purge date
    need."""

    record_id: str = Field(min_length=1, max_length=64)
    revision: int = Field(ge=1, le=REVISION_MAX, strict=True)
    action: Literal["upsert", "withdraw"]
    catalogue_item: str | None = None
    subject: SubjectReading
    decided_on: date | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    act_ended_on: date | None = None


class AcceptedReading(_Reading):
    """Of `AcceptedRecord` (credit.records.accepted)."""

    department: str
    submission: SubmissionReading


class RepairReading(_Reading):
    objection_id: str


class ArchivedReading(_Reading):
    """Of `ArchivedRecord`: what a repair request is judged on, and the repair granted."""

    department: str
    record_id: str
    revision: int
    catalogue_item: str
    status: RecordStatus
    repair_from: date | None = None
    public_until: date | None = None
    repair: RepairReading | None = None


class SnapshotReading(_Reading):
    """Of `SubjectChanged` (credit.subjects.changed)."""

    subject: SubjectReading
    version: int
    records: list[ArchivedReading]


class BasisReading(_Reading):
    department: str
    record_id: str


# Named outside the class: inside ListReading, `list` is a field (the contract's name).
_BasisReadings = list[BasisReading]


class ListReading(_Reading):
    """Of `ListChanged` (credit.lists.changed): the entry a complaint may name."""

    list: str
    entry_id: str
    subject: SubjectReading
    basis: _BasisReadings = Field(default_factory=lambda: [])


# --- HTTP ------------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold U+0000: refused here, named, instead of failing there.
        if isinstance(value, str) and "\x00" in value:
            raise PydanticCustomError("nul_character", "must not contain the NUL character")
        return value


class SubjectInput(_Request):
    type: SubjectType
    id: str = Field(min_length=1, max_length=64)


class RecordInput(_Request):
    department: str = Field(min_length=1, max_length=32)
    record_id: str = Field(min_length=1, max_length=64)


class ObjectionRequest(_Request):
    subject: SubjectInput
    record: RecordInput
    reason: str = Field(min_length=2, max_length=4000)
    contact: str = Field(min_length=3, max_length=200)


class TimelineEvent(BaseModel):
    status: str
    note: str | None
    at: datetime


class CommitmentInput(_Request):
    """The public credit commitment (信用承诺) as signed: the catalogue text's version, and
    who signed it for the subject."""

    text_version: str = Field(min_length=1, max_length=32)
    signer_name: str = Field(min_length=1, max_length=100)
    signer_role: str = Field(min_length=1, max_length=100)
    signed_on: date | None = None  # the day received, if not given


class ObligationsInput(_Request):
    """The legal obligations performed (履行法定义务): a declaration and references to the
    evidence (payment receipts, rectification reports: document numbers, not files)."""

    declaration: str = Field(min_length=2, max_length=4000)
    evidence: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=20)


class RepairRequest(ObjectionRequest):
    """An objection's fields, plus the commitment and the obligations (NDRC Order 36). Both
    may be left out: the answer then lists them among every failing reason."""

    commitment: CommitmentInput | None = None
    obligations: ObligationsInput | None = None


class RecordAbout(_Request):
    kind: Literal["record"]
    subject: SubjectInput
    record: RecordInput


class ObjectionAbout(_Request):
    kind: Literal["objection"]
    objection_id: str = Field(min_length=1, max_length=64)


class EntryAbout(_Request):
    kind: Literal["list_entry"]
    subject: SubjectInput
    list: str = Field(min_length=1, max_length=64)
    entry_id: str = Field(min_length=1, max_length=64)


class SystemAbout(_Request):
    kind: Literal["system"]


About = Annotated[RecordAbout | ObjectionAbout | EntryAbout | SystemAbout,
                  Field(discriminator="kind")]


class ComplaintRequest(_Request):
    """A complaint (投诉): what it is about, the text, and how to reach the complainant."""

    about: About
    text: str = Field(min_length=2, max_length=4000)
    contact: str = Field(min_length=3, max_length=200)


class ComplaintCreated(BaseModel):
    complaint_id: str
    status: str
    routed_to: str  # the department's code, or "operators"
    due_by: date
    # Shown once, when the complaint is taken (not again for a second identical request).
    access_token: str | None = None


class AnswerRequest(_Request):
    answer: str = Field(min_length=2, max_length=4000)


class ComplaintStatus(BaseModel):
    complaint_id: str
    status: str
    routed_to: str
    due_by: date
    about: dict[str, Any]
    answer: str | None
    timeline: list[TimelineEvent]


class DecisionRequest(_Request):
    decision: Literal["upheld", "rejected"]
    reason: str = Field(min_length=1, max_length=4000)
    withdraw: bool = False


class ObjectionCreated(BaseModel):
    objection_id: str
    kind: Literal["objection", "repair"]
    status: str
    due_by: date
    # Shown once, when the request is taken; a second identical repair request is answered
    # with the open one's id and no token (the first holder keeps the only one).
    access_token: str | None = None
    # A repair: the day by which its result is passed on (the department's decision plus
    # the working days to pass it on).
    result_by: date | None = None


class ObjectionStatus(BaseModel):
    objection_id: str
    kind: str
    status: str
    due_by: date
    record: RecordInput
    timeline: list[TimelineEvent]

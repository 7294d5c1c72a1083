"""The publisher's HTTP answers (CONTRACT.md: public query site and API, agencies over HTTP,
a subject's own access). Field lists are the minimum: an answer may carry more (`Answer`).

The public profile and /me are being extended (provenance, `as_of`): their models name the
fields they have today and take the new ones as optional."""

from __future__ import annotations

import builtins
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from shared.contract import Notice
from shared.http import Answer


class PublicSubject(Answer):
    """A subject as the public sees it: an individual's identity number masked."""

    type: str
    id: str
    name: str | None


class SearchHit(PublicSubject):
    lists: list[str]


class SearchAnswer(Answer):
    query: str
    page: int
    results: list[SearchHit]
    next_page: int | None


class Provenance(Answer):
    """The department's event that put a record in the profile (CONTRACT.md)."""

    department: str
    record_id: str
    revision: int
    event_id: str | None = None
    received_at: datetime | None = None


class PublicRecord(Answer):
    department: str
    record_id: str
    catalogue_item: str
    item_name: str
    polarity: str | None = None
    document_no: str | None
    decided_on: date
    disputed: bool
    public_until: date | None
    provenance: Provenance | None = None


class Membership(Answer):
    list: str
    name: str
    kind: str
    since: date
    until: date | None


class GradeAnswer(Answer):
    grade: Literal["A", "B", "C", "D"]
    explanation: list[str]


class Signer(Answer):
    name: str
    role: str


class PublicCommitment(Answer):
    commitment_id: str
    kind: str
    signed_on: date
    text: str | None
    text_version: str | None = None
    signer: Signer | None = None
    status: Literal["kept", "breached"]


class Profile(Answer):
    subject: PublicSubject
    records: list[PublicRecord]
    lists: list[Membership]
    grade: GradeAnswer
    commitments: list[PublicCommitment] = Field(default_factory=list)
    as_of: date | None = None


class Member(Answer):
    subject: PublicSubject
    since: date
    until: date | None


class ListMembers(Answer):
    list: str
    name: str
    kind: str
    basis: Any = None
    exit: Any = None
    total: int
    page: int
    members: builtins.list[Member]
    next_page: int | None


class ListChange(Answer):
    op: Literal["ADD", "MOD", "DEL"]
    entry_id: str
    at: datetime
    since: date
    until: date | None
    subject: PublicSubject | None


class ListChanges(Answer):
    list: str
    changes: builtins.list[ListChange]
    next: str


class FeedbackTaken(Answer):
    notice_id: str
    status: str


class Feedback(Answer):
    status: str
    note: str | None
    at: datetime | None


class AgencyNotice(Answer):
    notice: Notice  # exactly as sent
    feedback: Feedback | None
    due_by: date | None
    due_provisional: bool | None
    overdue: bool


class AgencyNotices(Answer):
    agency: str
    notices: list[AgencyNotice]
    next: str


class Capped(Answer):
    count: int
    subjects: list[dict[str, Any]]
    truncated: bool


class ListEffect(Answer):
    enter: Capped
    leave: Capped


class AgencyEffect(Answer):
    sent: Capped
    revoked: Capped


class WhatIf(Answer):
    as_of: date
    lists: dict[str, ListEffect]
    agencies: dict[str, AgencyEffect]


class Contact(Answer):
    contact: str
    set_at: datetime


class ContactAnswer(Answer):
    contact: Contact | None


class OwnNotice(Answer):
    notice_id: str
    agency: str
    kind: str
    list: str
    measure: str
    effective_from: date
    effective_until: date | None
    issued_at: datetime
    revokes: str | None
    feedback: Feedback | None


class Delivery(Answer):
    at: datetime
    channel: str
    contact_masked: str | None
    outcome: str
    error: str | None


class Notification(Answer):
    notification_id: str
    entry_id: str | None
    list: str
    status: str
    created_at: datetime
    attempts: int
    notified_at: datetime | None
    channel: str | None
    planned_publication: date | None
    object_by: date | None
    deliveries: builtins.list[Delivery]


class OwnRecord(Answer):
    """A record of the subject's own archive, public or not."""

    department: str
    record_id: str
    revision: int
    catalogue_item: str
    item_name: str | None
    decided_on: date
    status: str
    disputed: bool
    public_now: bool | None = None
    public_until: date | None = None
    purge_on: date | None = None
    provenance: Provenance | None = None


class OwnRecordWithNotices(OwnRecord):
    notices: list[OwnNotice]


class Me(Answer):
    """Everything held about the token's subject (征信业管理条例 art. 17). A past view
    (`as_of`, also an operator's) holds the archive and its list entries as they stood, with
    `history_from`; notices, notifications, requests and contact are today's only."""

    subject: dict[str, Any] | None
    records: list[OwnRecord]
    grade: GradeAnswer | None
    lists: list[dict[str, Any]]
    notices: list[OwnNotice] | None = None
    notifications: list[Notification] | None = None
    objections: list[dict[str, Any]] | None = None
    repairs: list[dict[str, Any]] | None = None
    complaints: list[dict[str, Any]] | None = None
    contact: Contact | None = None
    as_of: date | None = None
    history_from: datetime | None = None


class Query(Answer):
    at: datetime
    channel: str  # web | api | report
    purpose: str | None
    address: str | None


class Queries(Answer):
    queries: list[Query]
    next: str | None


class Announcements(Answer):
    basis: str
    page: int
    announcements: list[dict[str, Any]]
    next_page: int | None


class DistrictFigures(Answer):
    """Government bodies' defaults: opened in the period, resolved in it, open at its end."""

    opened: int
    resolved: int
    open_at_end: int


class GovernmentDistrict(Answer):
    district: str
    name: str
    by_kind: dict[str, DistrictFigures]
    total: DistrictFigures


class GovernmentDistricts(Answer):
    from_: date = Field(alias="from")
    to: date
    max_span_days: int
    kinds: list[str]
    districts: list[GovernmentDistrict]


class CommitmentTaken(Answer):
    """A conduct commitment the subject signed, passed on to be recorded."""

    commitment_id: str
    kind: str
    department: str
    signed_on: date
    text_version: str
    text: str
    term_until: date | None
    status: Literal["submitted"]


class ReportTaken(Answer):
    """A credit report issued: its id, the code printed on it, where its PDF is."""

    report_id: str
    verification_code: str
    url: str


class ReportVerified(Answer):
    """What verify answers for a code Xinyong printed on a report it keeps."""

    valid: bool
    report_id: str
    subject: PublicSubject
    issued_at: datetime
    sha256: str

"""The one typed registry of topics: the single place a topic is named, with its payload,
its partitions, its configuration and its one writer.

Every topic is keyed by the subject key (`<type>:<identifier>`) so that all events of one
subject stay in order on one partition. Per-department and per-agency topics are families
expanded from the catalogue. The writer is the CloudEvents `source` every consumer checks
(CONTRACT.md, "Connecting") and the principal the broker's ACLs let write the topic
(`shared/access.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from shared import contract as c
from shared.catalogue import Catalogue

P = TypeVar("P", bound=BaseModel)

# Compacted, kept for ever: a service rebuilt from nothing still learns every credential
# (and every revocation) from the topic alone.
COMPACTED_FOREVER = {"cleanup.policy": "compact", "retention.ms": "-1"}


@dataclass(frozen=True)
class Topic(Generic[P]):
    name: str
    event_type: str
    payload: type[P]
    partitions: int
    external: bool
    writer: str  # the envelope `source` of every event on it
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicFamily(Generic[P]):
    """Topics named per department or agency: `credit.inbound.<dept>`, ..."""

    prefix: str
    event_type: str
    payload: type[P]
    partitions: int
    external: bool
    owner: str  # "department", "agency" or "service": whose codes expand the family
    writer: str  # `source` of its events, `{code}` standing for the member's code

    def of(self, code: str) -> Topic[P]:
        return Topic(f"{self.prefix}.{code}", self.event_type, self.payload, self.partitions,
                     self.external, self.writer.format(code=code))

    def code_of(self, topic_name: str) -> str | None:
        head = self.prefix + "."
        return topic_name[len(head):] if topic_name.startswith(head) else None


# External (CONTRACT.md)
RECORD_SUBMITTED = "cn.zhuhai.credit.record.submitted.v1"
OBJECTION_DECIDED = "cn.zhuhai.credit.objection.decided.v1"
COMPLAINT_ROUTED = "cn.zhuhai.credit.complaint.routed.v1"

INBOUND = TopicFamily("credit.inbound", RECORD_SUBMITTED, c.RecordSubmission, 6, True,
                      "department", "dept/{code}")
FEEDBACK = TopicFamily("credit.feedback", "cn.zhuhai.credit.record.feedback.v1",
                       c.RecordFeedback, 3, True, "department", "xinyong/ingest")
OBJECTIONS = TopicFamily("credit.objections", "cn.zhuhai.credit.objection.routed.v1",
                         c.ObjectionRouted, 3, True, "department", "xinyong/objection")
NOTICES = TopicFamily("credit.notices", "cn.zhuhai.credit.notice.v1", c.Notice, 3, True,
                      "agency", "xinyong/publisher")
NOTICE_FEEDBACK = TopicFamily("credit.notice-feedback", "cn.zhuhai.credit.notice.feedback.v1",
                              c.NoticeFeedback, 3, True, "agency", "agency/{code}")
# Complaints (投诉) reach the department on its objections topic (CONTRACT.md): the same
# topics and writer as OBJECTIONS, another event type. Not in FAMILIES: OBJECTIONS makes
# the topics and the grants.
COMPLAINTS = TopicFamily("credit.objections", COMPLAINT_ROUTED, c.ComplaintRouted, 3, True,
                         "department", "xinyong/objection")

# Internal: each has one writer.
RECORDS_ACCEPTED = Topic("credit.records.accepted", "cn.zhuhai.credit.record.accepted.v1",
                         c.AcceptedRecord, 6, False, "xinyong/ingest")
RECORDS_STATUS = Topic("credit.records.status", "cn.zhuhai.credit.record.status.v1",
                       c.RecordStatusChanged, 6, False, "xinyong/objection")
SUBJECTS_CHANGED = Topic("credit.subjects.changed", "cn.zhuhai.credit.subject.changed.v1",
                         c.SubjectChanged, 6, False, "xinyong/registry")
LISTS_CHANGED = Topic("credit.lists.changed", "cn.zhuhai.credit.list.changed.v1",
                      c.ListChanged, 3, False, "xinyong/publisher")
SUBJECTS_NOTIFIED = Topic("credit.subjects.notified", "cn.zhuhai.credit.subject.notified.v1",
                          c.SubjectNotified, 3, False, "xinyong/publisher")
REQUESTS_CHANGED = Topic("credit.requests.changed", "cn.zhuhai.credit.request.changed.v1",
                         c.RequestChanged, 3, False, "xinyong/objection")
CREDENTIALS = Topic("credit.credentials", "cn.zhuhai.credit.credential.v1",
                    c.CredentialChanged, 1, False, "xinyong/operator", COMPACTED_FOREVER)
DEAD_LETTERS = TopicFamily("credit.deadletter", "cn.zhuhai.credit.deadletter.v1",
                           c.DeadLetter, 1, False, "service", "xinyong/{code}")

SERVICES = ("ingest", "registry", "publisher", "objection")
FAMILIES = (INBOUND, FEEDBACK, OBJECTIONS, NOTICES, NOTICE_FEEDBACK)
SINGLE_TOPICS = (RECORDS_ACCEPTED, RECORDS_STATUS, SUBJECTS_CHANGED, LISTS_CHANGED,
                 SUBJECTS_NOTIFIED, REQUESTS_CHANGED, CREDENTIALS)


def family_members(family: TopicFamily[Any], catalogue: Catalogue) -> list[str]:
    codes = {"department": list(catalogue.departments), "agency": list(catalogue.agencies),
             "service": list(SERVICES)}
    return codes[family.owner]


def all_topics(catalogue: Catalogue) -> list[Topic[BaseModel]]:
    """Every topic the system uses, expanded from the catalogue: created before any worker
    starts (a consumer started before its topic exists may never subscribe)."""
    topics: list[Topic[BaseModel]] = [t for t in SINGLE_TOPICS]  # type: ignore[misc]
    for family in (*FAMILIES, DEAD_LETTERS):
        topics += [family.of(code)  # type: ignore[misc]
                   for code in family_members(family, catalogue)]
    return topics

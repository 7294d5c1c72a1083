"""The one typed registry of topics: the single place a topic is named.

Every topic is keyed by the subject key (`<type>:<identifier>`) so that all events of one
subject stay in order on one partition. Per-department and per-agency topics are families
expanded from the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from shared import contract as c
from shared.catalogue import Catalogue

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class Topic(Generic[P]):
    name: str
    event_type: str
    payload: type[P]
    partitions: int
    external: bool


@dataclass(frozen=True)
class TopicFamily(Generic[P]):
    """Topics named per department or agency: `credit.inbound.<dept>`, ..."""

    prefix: str
    event_type: str
    payload: type[P]
    partitions: int
    external: bool
    owner: str  # "department" or "agency": whose codes expand the family

    def of(self, code: str) -> Topic[P]:
        return Topic(f"{self.prefix}.{code}", self.event_type, self.payload, self.partitions,
                     self.external)

    def code_of(self, topic_name: str) -> str | None:
        head = self.prefix + "."
        return topic_name[len(head):] if topic_name.startswith(head) else None


# External (CONTRACT.md)
RECORD_SUBMITTED = "cn.zhuhai.credit.record.submitted.v1"
OBJECTION_DECIDED = "cn.zhuhai.credit.objection.decided.v1"

INBOUND = TopicFamily("credit.inbound", RECORD_SUBMITTED, c.RecordSubmission, 6, True,
                      "department")
FEEDBACK = TopicFamily("credit.feedback", "cn.zhuhai.credit.record.feedback.v1",
                       c.RecordFeedback, 3, True, "department")
OBJECTIONS = TopicFamily("credit.objections", "cn.zhuhai.credit.objection.routed.v1",
                         c.ObjectionRouted, 3, True, "department")
NOTICES = TopicFamily("credit.notices", "cn.zhuhai.credit.notice.v1", c.Notice, 3, True,
                      "agency")
NOTICE_FEEDBACK = TopicFamily("credit.notice-feedback", "cn.zhuhai.credit.notice.feedback.v1",
                              c.NoticeFeedback, 3, True, "agency")

# Internal: each has one writer.
RECORDS_ACCEPTED = Topic("credit.records.accepted", "cn.zhuhai.credit.record.accepted.v1",
                         c.AcceptedRecord, 6, False)          # writer: ingest
RECORDS_STATUS = Topic("credit.records.status", "cn.zhuhai.credit.record.status.v1",
                       c.RecordStatusChanged, 6, False)       # writer: objection
SUBJECTS_CHANGED = Topic("credit.subjects.changed", "cn.zhuhai.credit.subject.changed.v1",
                         c.SubjectChanged, 6, False)          # writer: registry
LISTS_CHANGED = Topic("credit.lists.changed", "cn.zhuhai.credit.list.changed.v1",
                      c.ListChanged, 3, False)                # writer: publisher
CREDENTIALS = Topic("credit.credentials", "cn.zhuhai.credit.credential.v1",
                    c.CredentialChanged, 1, False)  # writer: operators (xinyong CLI)
DEAD_LETTERS = TopicFamily("credit.deadletter", "cn.zhuhai.credit.deadletter.v1",
                           c.DeadLetter, 1, False, "service")

SERVICES = ("ingest", "registry", "publisher", "objection")
FAMILIES = (INBOUND, FEEDBACK, OBJECTIONS, NOTICES, NOTICE_FEEDBACK)
SINGLE_TOPICS = (RECORDS_ACCEPTED, RECORDS_STATUS, SUBJECTS_CHANGED, LISTS_CHANGED,
                 CREDENTIALS)


def all_topics(catalogue: Catalogue) -> list[Topic[BaseModel]]:
    """Every topic the system uses, expanded from the catalogue: created before any worker
    starts (a consumer started before its topic exists may never subscribe)."""
    codes = {"department": list(catalogue.departments), "agency": list(catalogue.agencies)}
    topics: list[Topic[BaseModel]] = [t for t in SINGLE_TOPICS]  # type: ignore[misc]
    for family in FAMILIES:
        topics += [family.of(code) for code in codes[family.owner]]  # type: ignore[misc]
    topics += [DEAD_LETTERS.of(s) for s in SERVICES]  # type: ignore[misc]
    return topics

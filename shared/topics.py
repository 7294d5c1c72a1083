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
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from shared import contract as c
from shared.catalogue import Catalogue

P = TypeVar("P", bound=BaseModel)

# Compacted, kept for ever: a service rebuilt from nothing still learns every credential
# (and every revocation) from the topic alone. It holds no identity number (a subject's party
# is a keyed hash: shared/credentials.py), so no erasure needs a tombstone on it.
COMPACTED_FOREVER = {"cleanup.policy": "compact", "retention.ms": "-1"}

_DAY_MS = 24 * 3600 * 1000

# What a topic's Kafka key is: the subject key `<type>:<identifier>` (all events of one
# subject on one partition, in order), a district code, `<district>|<rule>|<window start>`,
# a credential's token id, faust's table key, or the key of a message set aside.
KeyKind = Literal["subject", "district", "window", "token", "table", "original"]


def kept_for(days: int) -> dict[str, str]:
    """Deleted after `days`: every topic that carries personal data (a subject key is every
    event's key) keeps it no longer than its shortest need (docs/decisions.md, "Retention").
    The databases keep what must be kept; the log only has to outlast a consumer's outage
    and a restore from the last backup (`database_behind` replays from it)."""
    return {"cleanup.policy": "delete", "retention.ms": str(days * _DAY_MS)}


# Seven days: a service down over a long weekend, or a database restored from the last
# nightly backup, still finds in the log what it has not applied; agencies read their
# notices over HTTP as well (CONTRACT.md, "whatever the topic's retention").
WEEK = kept_for(7)
# Departments have no other way to receive an objection than their topic: 30 days, the
# 20-day answer period (征信业管理条例 art. 25) rolled past a long holiday, with a margin.
OBJECTION_ROUTING = kept_for(30)


@dataclass(frozen=True)
class Topic(Generic[P]):
    name: str
    event_type: str
    payload: type[P]
    partitions: int
    external: bool
    writer: str  # the envelope `source` of every event on it
    config: Mapping[str, str] = field(default_factory=dict)
    key: KeyKind = "subject"  # what its Kafka key is (docs/asyncapi.yaml)


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
    config: Mapping[str, str] = field(default_factory=dict)
    key: KeyKind = "subject"

    def of(self, code: str) -> Topic[P]:
        return Topic(f"{self.prefix}.{code}", self.event_type, self.payload, self.partitions,
                     self.external, self.writer.format(code=code), self.config, self.key)

    def code_of(self, topic_name: str) -> str | None:
        head = self.prefix + "."
        return topic_name[len(head):] if topic_name.startswith(head) else None


# External (CONTRACT.md)
RECORD_SUBMITTED = "cn.zhuhai.credit.record.submitted.v1"
OBJECTION_DECIDED = "cn.zhuhai.credit.objection.decided.v1"
COMPLAINT_ROUTED = "cn.zhuhai.credit.complaint.routed.v1"

INBOUND = TopicFamily("credit.inbound", RECORD_SUBMITTED, c.RecordSubmission, 6, True,
                      "department", "dept/{code}", WEEK)
FEEDBACK = TopicFamily("credit.feedback", "cn.zhuhai.credit.record.feedback.v1",
                       c.RecordFeedback, 3, True, "department", "xinyong/ingest", WEEK)
OBJECTIONS = TopicFamily("credit.objections", "cn.zhuhai.credit.objection.routed.v1",
                         c.ObjectionRouted, 3, True, "department", "xinyong/objection",
                         OBJECTION_ROUTING)
NOTICES = TopicFamily("credit.notices", "cn.zhuhai.credit.notice.v1", c.Notice, 3, True,
                      "agency", "xinyong/publisher", WEEK)
NOTICE_FEEDBACK = TopicFamily("credit.notice-feedback", "cn.zhuhai.credit.notice.feedback.v1",
                              c.NoticeFeedback, 3, True, "agency", "agency/{code}", WEEK)
# Complaints (投诉) reach the department on its objections topic (CONTRACT.md): the same
# topics and writer as OBJECTIONS, another event type. Not in FAMILIES: OBJECTIONS makes
# the topics and the grants.
COMPLAINTS = TopicFamily("credit.objections", COMPLAINT_ROUTED, c.ComplaintRouted, 3, True,
                         "department", "xinyong/objection", OBJECTION_ROUTING)
# A department's decisions about the objections routed to it come on its inbound topic
# (CONTRACT.md): INBOUND's topics and writer, another event type. Not in FAMILIES either.
DECISIONS = TopicFamily("credit.inbound", OBJECTION_DECIDED, c.ObjectionDecision, 6, True,
                        "department", "dept/{code}", WEEK)

# Internal: each has one writer.
RECORDS_ACCEPTED = Topic("credit.records.accepted", "cn.zhuhai.credit.record.accepted.v1",
                         c.AcceptedRecord, 6, False, "xinyong/ingest", WEEK)
# The departments' objection decisions, passed on by ingest, which reads their inbound
# topics: objection reads this instead of every department's submissions. Keyed as the
# department keyed the decision (its subject), so one subject's decisions keep their order.
DECISIONS_RECEIVED = Topic("credit.decisions.received",
                           "cn.zhuhai.credit.objection.decision-received.v1",
                           c.DecisionReceived, 3, False, "xinyong/ingest", WEEK)
RECORDS_STATUS = Topic("credit.records.status", "cn.zhuhai.credit.record.status.v1",
                       c.RecordStatusChanged, 6, False, "xinyong/objection", WEEK)
SUBJECTS_CHANGED = Topic("credit.subjects.changed", "cn.zhuhai.credit.subject.changed.v1",
                         c.SubjectChanged, 6, False, "xinyong/registry", WEEK)
LISTS_CHANGED = Topic("credit.lists.changed", "cn.zhuhai.credit.list.changed.v1",
                      c.ListChanged, 3, False, "xinyong/publisher", WEEK)
SUBJECTS_NOTIFIED = Topic("credit.subjects.notified", "cn.zhuhai.credit.subject.notified.v1",
                          c.SubjectNotified, 3, False, "xinyong/publisher", WEEK)
REQUESTS_CHANGED = Topic("credit.requests.changed", "cn.zhuhai.credit.request.changed.v1",
                         c.RequestChanged, 3, False, "xinyong/objection", WEEK)
CREDENTIALS = Topic("credit.credentials", "cn.zhuhai.credit.credential.v1",
                    c.CredentialChanged, 1, False, "xinyong/operator", COMPACTED_FOREVER,
                    key="token")
DEAD_LETTERS = TopicFamily("credit.deadletter", "cn.zhuhai.credit.deadletter.v1",
                           c.DeadLetter, 1, False, "service", "xinyong/{code}", WEEK,
                           key="original")
# A subject's own conduct commitment (POST /api/v1/me/commitments): the publisher passes it
# to ingest, which records it under the catalogue's platform department (the city credit
# office, `commitments.platform_department`) like any department's submission.
COMMITMENTS_SIGNED = Topic("credit.commitments.signed", RECORD_SUBMITTED, c.RecordSubmission,
                           3, False, "xinyong/publisher", WEEK)
OBJECTIONS_CLOSED = Topic("credit.objections.closed", "cn.zhuhai.credit.objection.closed.v1",
                          c.ObjectionClosed, 3, False, "xinyong/objection", WEEK)

# Statistics and early warning (issue 10). The stats service writes the deltas its facts
# cause; the faust worker `stats-windows` sums them in windows and writes each window's
# count and the warnings; both of its outputs are compacted (key: district, rule, window
# start), so a window's last count is what stays.
# Counts per district carry no personal data: kept as long as compaction keeps them.
COMPACTED = {"cleanup.policy": "compact", "retention.ms": "-1"}
STATS_DELTAS = Topic("credit.stats.deltas", "cn.zhuhai.credit.stats.delta.v1",
                     c.StatsDelta, 3, False, "xinyong/stats", WEEK, key="district")
STATS_WINDOWS = Topic("credit.stats.windows", "cn.zhuhai.credit.stats.window.v1",
                      c.StatsWindow, 3, False, "xinyong/stats-windows", COMPACTED,
                      key="window")
STATS_WARNINGS = Topic("credit.stats.warnings", "cn.zhuhai.credit.stats.warning.v1",
                       c.StatsWarning, 3, False, "xinyong/stats-windows", COMPACTED,
                       key="window")
# The changelog of stats-windows' table (faust names it `<app id>-<table>-changelog`; the
# app id is the worker's group, `xinyong-stats-windows`). Made by provisioning like every
# topic, so that the worker declares nothing (a worker ignores a source missing at start).
# Faust writes its own records there, not CloudEvents.
STATS_WINDOWS_CHANGELOG = Topic("xinyong-stats-windows-counts-changelog", "faust.changelog",
                                c.StatsWindow, 3, False, "xinyong/stats-windows",
                                {"cleanup.policy": "compact,delete",
                                 "retention.ms": str(120 * 86_400_000)}, key="table")

# Topics of counts per district and rule, never about a subject (no retention limit needed).
AGGREGATES = (STATS_WINDOWS, STATS_WARNINGS, STATS_WINDOWS_CHANGELOG)

# Processes with a database of their own, a stream worker, an outbox and an HTTP API.
SERVICES = ("ingest", "registry", "publisher", "objection", "stats")
# Stream processors without a database (faust): their own principal, dead letters.
STREAM_APPS = ("stats-windows",)
FAMILIES = (INBOUND, FEEDBACK, OBJECTIONS, NOTICES, NOTICE_FEEDBACK)
SINGLE_TOPICS = (RECORDS_ACCEPTED, DECISIONS_RECEIVED, RECORDS_STATUS, SUBJECTS_CHANGED,
                 LISTS_CHANGED, COMMITMENTS_SIGNED,
                 SUBJECTS_NOTIFIED, REQUESTS_CHANGED, CREDENTIALS, OBJECTIONS_CLOSED,
                 STATS_DELTAS, STATS_WINDOWS, STATS_WARNINGS, STATS_WINDOWS_CHANGELOG)


def family_members(family: TopicFamily[Any], catalogue: Catalogue) -> list[str]:
    codes = {"department": list(catalogue.departments), "agency": list(catalogue.agencies),
             "service": [*SERVICES, *STREAM_APPS]}
    return codes[family.owner]


def all_topics(catalogue: Catalogue) -> list[Topic[BaseModel]]:
    """Every topic the system uses, expanded from the catalogue: created before any worker
    starts (a consumer started before its topic exists may never subscribe)."""
    topics: list[Topic[BaseModel]] = [t for t in SINGLE_TOPICS]  # type: ignore[misc]
    for family in (*FAMILIES, DEAD_LETTERS):
        topics += [family.of(code)  # type: ignore[misc]
                   for code in family_members(family, catalogue)]
    return topics

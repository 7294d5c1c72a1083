"""Whether a consumed position stored in a service's database can be trusted against the log
it names, and what to do when it cannot. Pure functions: the broker and the database are
read by the callers (`shared/kafka.py::observe_logs`, `shared/inbox.py`), the decision is
here.

A database outlives its broker: a checkout on the same PostgreSQL cluster with new Kafka
data, a topic deleted and created again, a database restored from a dump, retention that
deleted messages a lagging service had not applied yet. Offsets then mean other messages,
or none. Every such case is found from four facts per partition (the cluster id and topic
id stored with the position, the log's start and end, the group's committed offset) and
either replayed or paused until an operator resolves it (docs/decisions.md, "Positions");
none is skipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What was found. The first three are replayed from the log, the last two pause the partition.
Reason = Literal["new_cluster", "new_topic", "database_behind", "gap", "truncated"]
# How an operator resolves a paused partition (`./xinyong positions resolve`).
Resolution = Literal["from-start", "from-end", "from-stored"]

REASONS: tuple[Reason, ...] = ("new_cluster", "new_topic", "database_behind", "gap",
                               "truncated")
RESOLUTIONS: tuple[Resolution, ...] = ("from-start", "from-end", "from-stored")


@dataclass(frozen=True)
class LogState:
    """What the broker says of one partition now."""

    cluster_id: str
    topic_id: str
    log_start: int  # the first offset still in the log
    log_end: int  # the offset the next message will get (high watermark)
    committed: int | None  # the consumer group's committed offset, if any
    # The log the committed offset was counted on, as its committer named it in the commit's
    # metadata (`commit_metadata`); None when it did not say (a tool, an older commit).
    committed_on: tuple[str, str] | None = None

    @property
    def group_offset(self) -> int | None:
        """The committed offset, if it may have been counted on this log. A commit sent
        while the old cluster was down is delivered to the new one when it comes up
        (aiokafka retries it, and a member that lost its group commits as a standalone
        consumer, which the broker accepts): its offset says nothing of this log."""
        if self.committed_on is not None and self.committed_on != (self.cluster_id,
                                                                    self.topic_id):
            return None
        return self.committed

    @property
    def committed_elsewhere(self) -> bool:
        """The group's offset was committed on another log (`group_offset`)."""
        return self.committed is not None and self.group_offset is None


@dataclass(frozen=True)
class StoredPosition:
    """What the service's database holds for one partition: the next offset to apply and
    the log it belongs to (ids unknown on rows written before they were kept)."""

    next_offset: int
    cluster_id: str | None
    topic_id: str | None


@dataclass(frozen=True)
class Hold:
    """An earlier mismatch that paused the partition and is not yet carried out: it keeps
    the partition paused until an operator chooses a resolution, which the worker then
    carries out. A hold is never lifted by the log alone (a truncated log that grew back
    past the stored offset still lost what was in between)."""

    reason: Reason
    resolution: Resolution | None = None


@dataclass(frozen=True)
class Verdict:
    """Where to consume one partition from (`start`; None: paused), and what was found."""

    start: int | None
    found: Reason | None = None  # a mismatch found now: log it, count it, record it
    held_by: Reason | None = None  # still paused by an earlier, unresolved mismatch
    resolved: Resolution | None = None  # an operator's resolution carried out now

    @property
    def paused(self) -> bool:
        return self.start is None

    @property
    def replayed(self) -> bool:
        return self.found is not None and self.start is not None


def decide(stored: StoredPosition | None, log: LogState, hold: Hold | None = None) -> Verdict:
    """Where a partition's consumption starts, checked against its log.

    - positions agree: from the stored position (ahead of the group's committed offset is
      normal: the offset is committed after the database transaction);
    - no stored position and no committed offset: a partition never consumed, from the
      log's start;
    - another cluster or another topic under the same name: the offsets are not the ones
      the database counted, so the partition is replayed from the new log's start (the
      consumers are idempotent by event id and revision); paused if that log has already
      lost messages (its start is past 0);
    - a committed offset whose metadata names another log is not this log's (it was
      counted before the log changed): as if none were committed;
    - the stored position below the group's committed offset (a database restored from a
      dump, or rebuilt from nothing while the group went on): replayed from the
      database's position, so the restored database catches up;
    - the stored position below the log's start: messages were deleted before they were
      applied (a gap): paused;
    - the stored position past the log's end, same ids: the log lost messages the database
      applied (truncated): paused.
    """
    if hold is not None:
        if hold.resolution is None:
            return Verdict(None, held_by=hold.reason)
        return Verdict(resolution_start(hold.resolution, stored, log),
                       resolved=hold.resolution)
    if stored is None:
        if log.group_offset is None:
            return Verdict(log.log_start)
        # The group consumed this partition but the database holds no trace of it: the
        # database started again from nothing, i.e. it is behind by everything.
        stored = StoredPosition(0, log.cluster_id, log.topic_id)
    if stored.cluster_id is not None and stored.cluster_id != log.cluster_id:
        return _replay_new_log("new_cluster", log)
    if stored.topic_id is not None and stored.topic_id != log.topic_id:
        return _replay_new_log("new_topic", log)
    if stored.next_offset < log.log_start:
        return Verdict(None, found="gap")
    if stored.next_offset > log.log_end:
        return Verdict(None, found="truncated")
    if log.group_offset is not None and stored.next_offset < log.group_offset:
        return Verdict(stored.next_offset, found="database_behind")
    return Verdict(stored.next_offset)


_METADATA_PREFIX = "log "


def commit_metadata(cluster_id: str | None, topic_id: str | None) -> str:
    """What a worker writes beside each committed offset: the log it counted the offset on
    (`LogState.committed_on`). Empty when it does not know them yet."""
    if cluster_id is None or topic_id is None:
        return ""
    return f"{_METADATA_PREFIX}{cluster_id} {topic_id}"


def committed_on(metadata: str | None) -> tuple[str, str] | None:
    """The (cluster id, topic id) a commit's metadata names; None for any other metadata."""
    if not metadata or not metadata.startswith(_METADATA_PREFIX):
        return None
    ids = metadata[len(_METADATA_PREFIX):].split(" ")
    return (ids[0], ids[1]) if len(ids) == 2 and all(ids) else None


def _replay_new_log(reason: Reason, log: LogState) -> Verdict:
    if log.log_start > 0:  # the new log already deleted messages no one here applied
        return Verdict(None, found=reason)
    return Verdict(log.log_start, found=reason)


def resolution_start(resolution: Resolution, stored: StoredPosition | None,
                     log: LogState) -> int:
    """The offset an operator's resolution resumes from: the log's start (replay what is
    left), its end (skip what is there), or the database's own position, kept within the
    log (below its start there is nothing left to read; past its end nothing yet)."""
    if resolution == "from-start":
        return log.log_start
    if resolution == "from-end":
        return log.log_end
    offset = stored.next_offset if stored is not None else log.log_start
    return min(max(offset, log.log_start), log.log_end)


def explain(reason: Reason, stored: StoredPosition | None, log: LogState) -> str:
    """One line for the log, readiness and `./xinyong status`."""
    at = stored.next_offset if stored is not None else None
    return {
        "new_cluster": f"another Kafka cluster ({stored and stored.cluster_id} -> "
                       f"{log.cluster_id}): offsets restart",
        "new_topic": f"the topic was created again ({stored and stored.topic_id} -> "
                     f"{log.topic_id}): offsets restart",
        "database_behind": f"the database is behind the group (stored {at}, committed "
                           f"{log.committed}): a restored database replays",
        "gap": f"messages deleted before they were applied (stored {at}, log starts at "
               f"{log.log_start})",
        "truncated": f"the log lost messages that were applied (stored {at}, log ends at "
                     f"{log.log_end})",
    }[reason]


def resolve_command(service: str, topic: str, partition: int) -> str:
    return (f"./xinyong positions resolve {service} {topic} --partition {partition} "
            "--from-start|--from-end|--from-stored")

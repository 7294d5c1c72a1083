"""The idempotent-consumer record, written in the same transaction as the effect.

Two guards: the per-partition position (a message Kafka redelivers after a crash is
skipped) and the processed event ids (an event its producer sent twice applies once). A
position is only trusted against the log it was counted on: `reconcile_positions` checks
it when a worker is given the partition (shared/positions.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from shared.envelope import AnyEvent
from shared.messages import InboundMessage
from shared.positions import (
    Hold,
    LogState,
    Reason,
    Resolution,
    StoredPosition,
    Verdict,
    decide,
    explain,
)

T = TypeVar("T")


async def unapplied(conn: asyncpg.Connection,
                    messages: Sequence[InboundMessage]) -> list[InboundMessage]:
    """The messages of the batch at or after their partition's stored position."""
    parts = sorted({(m.topic, m.partition) for m in messages})
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset FROM consumed_positions"
        " WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))"
        " FOR UPDATE",
        [t for t, _ in parts], [p for _, p in parts])
    position = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    return [m for m in messages if m.offset >= position.get((m.topic, m.partition), 0)]


async def advance(conn: asyncpg.Connection, messages: Sequence[InboundMessage],
                  outbox_ids: Sequence[int] = ()) -> set[int]:
    """Store the next offset after the messages; never moves a position back. In the same
    statement, returns which of `outbox_ids` are in the outbox (a savepoint rolled back
    takes its rows away)."""
    following: dict[tuple[str, int], int] = {}
    for m in messages:
        k = (m.topic, m.partition)
        following[k] = max(following.get(k, 0), m.offset + 1)
    rows = await conn.fetch(
        "WITH advanced AS (INSERT INTO consumed_positions (topic, partition, next_offset)"
        "  SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])"
        "  ON CONFLICT (topic, partition) DO UPDATE"
        "  SET next_offset = GREATEST(consumed_positions.next_offset, EXCLUDED.next_offset))"
        " SELECT id FROM outbox WHERE id = ANY($4::bigint[])",
        [t for t, _ in following], [p for _, p in following], list(following.values()),
        list(outbox_ids))
    return {r["id"] for r in rows}


async def first_seen(conn: asyncpg.Connection,
                     events: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Record (source, event_id) pairs; returns those not seen before."""
    if not events:
        return set()
    rows = await conn.fetch(
        "INSERT INTO processed_events (source, event_id)"
        " SELECT DISTINCT * FROM unnest($1::text[], $2::text[])"
        " ON CONFLICT DO NOTHING RETURNING source, event_id",
        [s for s, _ in events], [e for _, e in events])
    return {(r["source"], r["event_id"]) for r in rows}


async def only_first_seen(conn: asyncpg.Connection, items: Sequence[T],
                          event_of: Callable[[T], AnyEvent]) -> list[T]:
    """The items whose event was never applied before, each event once, in order."""
    fresh = await first_seen(conn, [(event_of(i).source, event_of(i).id) for i in items])
    kept = []
    for item in items:
        key = (event_of(item).source, event_of(item).id)
        if key in fresh:
            kept.append(item)
            fresh.discard(key)
    return kept


# --- positions checked against their log (shared/positions.py) -----------------------------

Part = tuple[str, int]


async def reconcile_positions(conn: asyncpg.Connection,
                              logs: Mapping[Part, LogState]) -> dict[Part, Checked]:
    """Check the stored position of each (topic, partition) against what the broker says of
    its log, in the caller's transaction: store where consumption starts and the log's ids,
    record each mismatch found, carry out the operators' resolutions. The caller seeks."""
    parts = sorted(logs)
    topics, partitions = [t for t, _ in parts], [p for _, p in parts]
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset, cluster_id, topic_id FROM consumed_positions"
        " WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))"
        " FOR UPDATE", topics, partitions)
    stored = {(r["topic"], r["partition"]): StoredPosition(
        r["next_offset"], r["cluster_id"], r["topic_id"]) for r in rows}
    holds = {(r["topic"], r["partition"]): (r["id"], Hold(r["reason"], r["resolution"]),
                                            r["detail"])
             for r in await conn.fetch(
                 "SELECT id, topic, partition, reason, resolution, detail"
                 " FROM position_mismatches"
                 " WHERE action = 'paused' AND resumed_at IS NULL"
                 " AND (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))"
                 " FOR UPDATE", topics, partitions)}
    checked: dict[Part, Checked] = {}
    for part in parts:
        log, before = logs[part], stored.get(part)
        hold_id, hold, held_for = holds.get(part, (None, None, None))
        verdict = decide(before, log, hold)
        detail = explain(verdict.found, before, log) if verdict.found else held_for
        checked[part] = Checked(verdict, log, before, detail)
        if verdict.start is not None:
            await conn.execute(
                "INSERT INTO consumed_positions"
                " (topic, partition, next_offset, cluster_id, topic_id, checked_at)"
                " VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (topic, partition) DO UPDATE"
                " SET next_offset = EXCLUDED.next_offset, cluster_id = EXCLUDED.cluster_id,"
                " topic_id = EXCLUDED.topic_id, checked_at = EXCLUDED.checked_at",
                *part, verdict.start, log.cluster_id, log.topic_id)
        if verdict.found is not None:
            await conn.execute(
                "INSERT INTO position_mismatches (topic, partition, reason, action, detail,"
                " stored_offset, stored_cluster_id, stored_topic_id, cluster_id, topic_id,"
                " log_start, log_end, committed, resumed_at, resumed_from)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
                " CASE WHEN $14::bigint IS NULL THEN NULL ELSE now() END, $14)",
                *part, verdict.found, "paused" if verdict.paused else "replayed", detail,
                before and before.next_offset, before and before.cluster_id,
                before and before.topic_id, log.cluster_id, log.topic_id, log.log_start,
                log.log_end, log.committed, verdict.start)
        if verdict.resolved is not None:
            await conn.execute(
                "UPDATE position_mismatches SET resumed_at = now(), resumed_from = $2"
                " WHERE id = $1", hold_id, verdict.start)
    return checked


@dataclass(frozen=True)
class Checked:
    """One partition's verdict, with what it was decided on."""

    verdict: Verdict
    log: LogState
    stored: StoredPosition | None
    detail: str | None  # what was found (or still holds the partition), in words


@dataclass(frozen=True)
class OpenHold:
    topic: str
    partition: int
    reason: Reason
    detail: str
    detected_at: datetime
    resolution: Resolution | None


async def open_holds(conn: asyncpg.Connection) -> list[OpenHold]:
    """The partitions paused by a mismatch that is not carried out yet."""
    rows = await conn.fetch(
        "SELECT topic, partition, reason, detail, detected_at, resolution"
        " FROM position_mismatches WHERE action = 'paused' AND resumed_at IS NULL"
        " ORDER BY topic, partition")
    return [OpenHold(**dict(r)) for r in rows]


async def recent_replays(conn: asyncpg.Connection, hours: int = 24) -> list[dict[str, Any]]:
    """Mismatches found and replayed, or resolved by an operator, in the last hours."""
    rows = await conn.fetch(
        "SELECT topic, partition, reason, action, resolution, detail, detected_at,"
        " resumed_at, resumed_from FROM position_mismatches"
        " WHERE resumed_at > now() - make_interval(hours => $1) ORDER BY resumed_at", hours)
    return [dict(r) for r in rows]


async def resolve_holds(conn: asyncpg.Connection, topic: str, partition: int | None,
                        resolution: Resolution) -> list[int]:
    """An operator's choice for the paused partitions of a topic (one, or all of them); the
    worker carries it out at its next check. Returns the partitions it applies to."""
    rows = await conn.fetch(
        "UPDATE position_mismatches SET resolution = $3, resolved_at = now()"
        " WHERE action = 'paused' AND resumed_at IS NULL AND topic = $1"
        " AND ($2::int IS NULL OR partition = $2) RETURNING partition",
        topic, partition, resolution)
    return sorted(r["partition"] for r in rows)

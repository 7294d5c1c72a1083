"""The idempotent-consumer record, written in the same transaction as the effect.

Two guards: the per-partition position (a message Kafka redelivers after a crash is
skipped) and the processed event ids (an event its producer sent twice applies once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import asyncpg

from shared.envelope import AnyEvent
from shared.messages import InboundMessage

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


async def advance(conn: asyncpg.Connection, messages: Sequence[InboundMessage]) -> None:
    highest: dict[tuple[str, int], int] = {}
    for m in messages:
        k = (m.topic, m.partition)
        highest[k] = max(highest.get(k, -1), m.offset)
    await conn.execute(
        "INSERT INTO consumed_positions (topic, partition, next_offset)"
        " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])"
        " ON CONFLICT (topic, partition) DO UPDATE"
        " SET next_offset = GREATEST(consumed_positions.next_offset, EXCLUDED.next_offset)",
        [t for t, _ in highest], [p for _, p in highest], [o + 1 for o in highest.values()])


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

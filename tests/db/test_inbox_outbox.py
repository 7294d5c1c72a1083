"""The idempotent-consumer record and the outbox on a real database (rolled back)."""

from __future__ import annotations

import pytest

from shared import inbox, outbox
from shared.messages import InboundMessage, OutboundEvent
from tests.db.conftest import OpenTransaction

pytestmark = pytest.mark.db


def _message(offset: int, partition: int = 0, topic: str = "credit.records.accepted"
             ) -> InboundMessage:
    return InboundMessage(topic=topic, partition=partition, offset=offset, key="k",
                          value=b"{}", timestamp_ms=0)


async def test_positions_skip_what_was_applied_and_never_move_back(tx: OpenTransaction) -> None:
    conn = await tx("registry")
    first = [_message(0), _message(1), _message(0, partition=1)]
    assert await inbox.unapplied(conn, first) == first
    await inbox.advance(conn, first)
    again = [_message(1), _message(2), _message(0, partition=1)]
    assert await inbox.unapplied(conn, again) == [_message(2)]
    await inbox.advance(conn, [_message(0)])  # an older batch never moves a position back
    assert await conn.fetchval(
        "SELECT next_offset FROM consumed_positions WHERE partition = 0") == 2


async def test_an_event_id_is_first_seen_once_per_source(tx: OpenTransaction) -> None:
    conn = await tx("publisher")
    assert await inbox.first_seen(conn, [("a", "1"), ("a", "2"), ("b", "1")]) == {
        ("a", "1"), ("a", "2"), ("b", "1")}
    assert await inbox.first_seen(conn, [("a", "1"), ("a", "3")]) == {("a", "3")}


async def test_outbox_keeps_events_in_the_order_they_were_written(tx: OpenTransaction) -> None:
    conn = await tx("ingest")
    events = [OutboundEvent(topic="credit.feedback.tax", key=f"k{i}", event_id=f"e{i}",
                            value=f"v{i}".encode()) for i in range(3)]
    await outbox.enqueue(conn, events)
    rows = await conn.fetch("SELECT event_id, value FROM outbox ORDER BY id")
    assert [(r["event_id"], bytes(r["value"])) for r in rows] == [
        (e.event_id, e.value) for e in events]

"""Positions checked against their log, on a real database (rolled back): what is stored,
recorded and resumed for each case (the decision itself: tests/unit/test_positions.py)."""

from __future__ import annotations

import asyncpg
import pytest

from shared import inbox
from shared.messages import InboundMessage
from shared.positions import LogState
from tests.db.conftest import OpenTransaction

pytestmark = pytest.mark.db

TOPIC = "credit.records.accepted"
A, B = "cluster-A", "cluster-B"


def log(start: int = 0, end: int = 100, committed: int | None = None, cluster: str = A,
        topic_id: str = "t-1") -> LogState:
    return LogState(cluster_id=cluster, topic_id=topic_id, log_start=start, log_end=end,
                    committed=committed)


async def position(conn: asyncpg.Connection, partition: int = 0) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT next_offset, cluster_id, topic_id FROM consumed_positions"
        " WHERE topic = $1 AND partition = $2", TOPIC, partition)


async def mismatches(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM position_mismatches ORDER BY id")


async def applied_up_to(conn: asyncpg.Connection, next_offset: int, partition: int = 0,
                        logged: LogState | None = None) -> None:
    """A partition consumed on cluster A up to `next_offset`, as a running worker leaves it."""
    await inbox.reconcile_positions(conn, {(TOPIC, partition): logged or log(end=0)})
    await inbox.advance(conn, [InboundMessage(TOPIC, partition, next_offset - 1, "k", b"{}", 0)])


async def test_a_first_assignment_stores_the_log_it_starts_on(tx: OpenTransaction) -> None:
    conn = await tx("registry")
    checked = await inbox.reconcile_positions(conn, {(TOPIC, 0): log(start=3)})
    assert checked[(TOPIC, 0)].verdict.start == 3
    assert dict(await position(conn) or {}) == {
        "next_offset": 3, "cluster_id": A, "topic_id": "t-1"}
    assert await mismatches(conn) == []


async def test_a_new_cluster_rewinds_the_stored_position_and_records_the_replay(
        tx: OpenTransaction) -> None:
    """The measured bug: 719 stored, a fresh broker's offsets start again at 0."""
    conn = await tx("registry")
    await applied_up_to(conn, 719)
    checked = await inbox.reconcile_positions(conn, {(TOPIC, 0): log(end=11, cluster=B,
                                                                      topic_id="t-9")})
    assert checked[(TOPIC, 0)].verdict.start == 0
    assert dict(await position(conn) or {}) == {
        "next_offset": 0, "cluster_id": B, "topic_id": "t-9"}
    [row] = await mismatches(conn)
    assert (row["reason"], row["action"], row["stored_offset"], row["stored_cluster_id"],
            row["resumed_from"]) == ("new_cluster", "replayed", 719, A, 0)
    assert row["resumed_at"] is not None
    # Then the messages of the new log are not taken for ones already applied.
    fresh = [InboundMessage(TOPIC, 0, offset, "k", b"{}", 0) for offset in range(11)]
    assert await inbox.unapplied(conn, fresh) == fresh
    replays = await inbox.recent_replays(conn)
    assert [(r["topic"], r["partition"], r["reason"]) for r in replays] == [
        (TOPIC, 0, "new_cluster")]


async def test_a_recreated_topic_is_told_by_its_id(tx: OpenTransaction) -> None:
    conn = await tx("publisher")
    await applied_up_to(conn, 50)
    checked = await inbox.reconcile_positions(conn, {(TOPIC, 0): log(end=60, committed=50,
                                                                      topic_id="t-2")})
    assert checked[(TOPIC, 0)].verdict.found == "new_topic"
    assert (await position(conn) or {})["next_offset"] == 0


async def test_a_restored_database_replays_from_its_own_position(tx: OpenTransaction) -> None:
    conn = await tx("ingest")
    await applied_up_to(conn, 30)
    checked = await inbox.reconcile_positions(conn, {(TOPIC, 0): log(committed=45)})
    assert checked[(TOPIC, 0)].verdict.start == 30
    [row] = await mismatches(conn)
    assert (row["reason"], row["action"], row["committed"]) == ("database_behind", "replayed", 45)


async def test_a_gap_holds_the_partition_once_until_an_operator_resolves_it(
        tx: OpenTransaction) -> None:
    conn = await tx("registry")
    await applied_up_to(conn, 5)
    first = await inbox.reconcile_positions(conn, {(TOPIC, 0): log(start=10, committed=5)})
    assert first[(TOPIC, 0)].verdict.paused
    assert "log starts at 10" in (first[(TOPIC, 0)].detail or "")
    assert (await position(conn) or {})["next_offset"] == 5  # left as it was
    [hold] = await inbox.open_holds(conn)
    assert (hold.topic, hold.partition, hold.reason, hold.resolution) == (TOPIC, 0, "gap", None)

    # Checked again (the next check, a restart): still held, not recorded twice.
    again = await inbox.reconcile_positions(conn, {(TOPIC, 0): log(start=10, committed=5)})
    assert again[(TOPIC, 0)].verdict.held_by == "gap"
    assert again[(TOPIC, 0)].detail == first[(TOPIC, 0)].detail
    assert len(await mismatches(conn)) == 1

    assert await inbox.resolve_holds(conn, TOPIC, None, "from-start") == [0]
    [pending] = await inbox.open_holds(conn)
    assert pending.resolution == "from-start"
    resumed = await inbox.reconcile_positions(conn, {(TOPIC, 0): log(start=10, committed=5)})
    assert resumed[(TOPIC, 0)].verdict.start == 10
    assert resumed[(TOPIC, 0)].verdict.resolved == "from-start"
    assert (await position(conn) or {})["next_offset"] == 10
    assert await inbox.open_holds(conn) == []
    [row] = await mismatches(conn)
    assert (row["resumed_from"], row["resolution"]) == (10, "from-start")


async def test_a_truncated_log_resolved_from_the_end(tx: OpenTransaction) -> None:
    conn = await tx("objection")
    await applied_up_to(conn, 80, partition=2)
    checked = await inbox.reconcile_positions(conn, {(TOPIC, 2): log(end=40, committed=80)})
    assert checked[(TOPIC, 2)].verdict.found == "truncated"
    assert await inbox.resolve_holds(conn, TOPIC, 1, "from-end") == []  # not that partition
    assert await inbox.resolve_holds(conn, TOPIC, 2, "from-end") == [2]
    resumed = await inbox.reconcile_positions(conn, {(TOPIC, 2): log(end=42, committed=80)})
    assert resumed[(TOPIC, 2)].verdict.start == 42
    assert (await position(conn, 2) or {})["next_offset"] == 42


async def test_nothing_to_resolve_resolves_nothing(tx: OpenTransaction) -> None:
    conn = await tx("ingest")
    assert await inbox.resolve_holds(conn, TOPIC, None, "from-end") == []


async def test_a_row_written_before_ids_were_kept_adopts_them(tx: OpenTransaction) -> None:
    conn = await tx("registry")
    await inbox.advance(conn, [InboundMessage(TOPIC, 1, 9, "k", b"{}", 0)])  # no ids
    checked = await inbox.reconcile_positions(conn, {(TOPIC, 1): log(end=20, committed=10)})
    assert checked[(TOPIC, 1)].verdict.start == 10 and checked[(TOPIC, 1)].verdict.found is None
    assert dict(await position(conn, 1) or {}) == {
        "next_offset": 10, "cluster_id": A, "topic_id": "t-1"}

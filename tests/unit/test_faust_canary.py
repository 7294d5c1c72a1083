"""Canaries on faust-streaming's internals that stats-windows relies on: a faust upgrade
that changes them fails here first (services/stats/windows.py; docs/decisions.md)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from services.stats import windows
from services.stats.windows import Delta, _Consumer
from shared.catalogue import load_catalogue
from shared.kafka import make_consumer
from shared.settings import Settings


def _consumer(committed: int, acked: list[int]) -> tuple[Any, TP]:
    tp = TP("credit.stats.deltas", 0)
    consumer: Any = type("Bare", (), {})()  # only the state _new_offset reads
    consumer._acked = defaultdict(list, {tp: list(acked)})
    consumer._acked_index = defaultdict(set, {tp: set(acked)})
    consumer._gap = defaultdict(IntervalTree)
    consumer._committed_offset = defaultdict(lambda: None, {tp: committed})
    return consumer, tp


def test_new_offset_commits_only_up_to_the_first_gap() -> None:
    # faust-streaming #606: committed 2585, acked 2586-2589: the next commit is 2590.
    consumer, tp = _consumer(2585, [2586, 2587, 2588, 2589])
    assert Consumer._new_offset(consumer, tp) == 2590
    # An event not acked yet (2586) holds the commit back, whatever came after it.
    consumer, tp = _consumer(2585, [2587, 2588, 2589])
    assert Consumer._new_offset(consumer, tp) is None


def test_the_pins() -> None:
    from importlib.metadata import version

    import aiokafka

    assert faust.__version__ == "0.15.3"
    assert aiokafka.__version__ == "0.14.0"
    assert version("mode-streaming") == "0.7.1"  # its module says 0.0.1


def test_the_table_reads_its_windows_from_the_delta() -> None:
    field = Delta.on
    assert field.field == "on"


def _ours(committed: int | None, acked: list[int]) -> tuple[Any, TP]:
    bare, tp = _consumer(0, acked)
    consumer: Any = _Consumer.__new__(_Consumer)
    consumer.__dict__.update(bare.__dict__)
    consumer._committed_offset = defaultdict(lambda: None, {tp: committed})
    consumer._next, consumer._reseed, consumer._rereading = {}, set(), {}
    consumer.last_event_at = 0.0
    return consumer, tp


def test_stats_windows_commits_only_from_the_committed_offsets_own_ack() -> None:
    # faust's committed offset is the next to read: above, 2585 was never acked, yet faust
    # commits 2590 (one delta lost). stats-windows' consumer waits for 2585's own ack.
    consumer, tp = _ours(2585, [2586, 2587, 2588, 2589])
    assert consumer._new_offset(tp) is None
    consumer, tp = _ours(2585, [2585, 2586, 2587])
    assert consumer._new_offset(tp) == 2588
    consumer, tp = _ours(None, [40, 41])  # the group's first commit
    assert consumer._new_offset(tp) == 42


def test_after_an_assignment_counting_starts_at_the_committed_offset_or_past_its_own() -> None:
    consumer, tp = _ours(100, [])
    assert consumer.next_to_count(tp, 97) == 97  # nothing known: the first delta read
    consumer.counted(tp, 97)
    assert consumer.next_to_count(tp, 98) == 98
    # Reassigned, another worker having committed up to 100: 98 and 99 are not its own.
    consumer._reseed.add(tp)
    assert consumer.next_to_count(tp, 98) == 100
    # Reassigned with its own count past the commit (counted, not yet acked): not again.
    consumer.counted(tp, 104)
    consumer._committed_offset[tp] = 103
    consumer._reseed.add(tp)
    assert consumer.next_to_count(tp, 103) == 105


def test_a_partition_is_stalled_when_its_end_is_ahead_and_the_agent_idle() -> None:
    consumer, tp = _ours(100, [])
    consumer._paused_partitions = set()
    consumer.assignment = lambda: {tp}
    consumer.highwater = lambda _: 110
    consumer.next_to_count(tp, 100)
    consumer.counted(tp, 100)
    consumer.last_event_at = now = 1000.0
    assert consumer.stalled(now + 1, quiet=5) == []  # the agent took an event a second ago
    assert consumer.stalled(now + 6, quiet=5) == [(tp, 101)]
    consumer.highwater = lambda _: 101  # the end is where counting goes on: nothing lost
    assert consumer.stalled(now + 6, quiet=5) == []
    consumer.highwater = lambda _: 110
    consumer._paused_partitions = {tp}  # paused for a rebalance: not a loss
    assert consumer.stalled(now + 6, quiet=5) == []


async def test_a_missing_delta_is_sought_once_and_an_expired_one_given_up() -> None:
    consumer, tp = _ours(100, [])
    sought: list[int] = []
    earliest = {tp: 0}

    async def seek(_: Any, offset: int) -> None:
        sought.append(offset)

    async def earliest_offsets(*_: Any) -> dict[TP, int]:
        return earliest

    consumer.assignment = lambda: {tp}
    consumer.seek, consumer.earliest_offsets = seek, earliest_offsets
    consumer.next_to_count(tp, 100)
    await consumer.resume_at(tp, 100, "delta 100 missing before 101")
    # The deltas fetched behind it come as gaps too: no second fetch of the backlog.
    await consumer.resume_at(tp, 100, "delta 100 missing before 102")
    assert sought == [100]
    consumer._rereading[tp] = (100, consumer._rereading[tp][1] - 6)  # nothing for 6 s
    await consumer.resume_at(tp, 100, "nothing counted from 100")
    assert sought == [100, 100]
    # Expired from the topic before it was counted: from the first offset kept, and a
    # commit no longer waits for an ack that cannot come.
    earliest[tp] = 150
    await consumer.resume_at(tp, 120, "delta 120 missing before 151")
    assert sought[-1] == 150
    assert consumer.next_to_count(tp, 151) == 150
    assert consumer._committed_offset[tp] == 150


async def test_stats_windows_keeps_the_groups_session_of_every_other_worker(
        tmp_path: Path) -> None:
    """faust's own default is a 60 s session: a killed stats-windows kept its partitions from
    the process started after it twice as long as any other worker's (and `up` after a
    `kill -9` waited for it)."""
    settings = Settings(kafka_session_timeout_ms=6_000, home=tmp_path)
    conf = windows.build(settings, load_catalogue()).conf
    worker = make_consumer(settings, "g", [])  # never started
    assert int(conf.broker_session_timeout * 1000) == worker._session_timeout_ms == 6_000
    assert int(conf.broker_heartbeat_interval * 1000) == worker._heartbeat_interval_ms

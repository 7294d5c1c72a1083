"""Canaries on faust-streaming's internals that stats-windows relies on: a faust upgrade
that changes them fails here first (services/stats/windows.py; docs/decisions.md)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from services.stats.windows import Delta


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

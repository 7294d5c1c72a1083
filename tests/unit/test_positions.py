"""shared/positions.py: whether a stored position can be trusted against its log."""

from __future__ import annotations

import pytest

from shared.positions import (
    Hold,
    LogState,
    StoredPosition,
    Verdict,
    commit_metadata,
    committed_on,
    decide,
    explain,
    resolve_command,
)

CLUSTER, TOPIC = "cluster-A", "topic-1"


def log(start: int = 0, end: int = 100, committed: int | None = 40,
        cluster: str = CLUSTER, topic: str = TOPIC,
        counted_on: tuple[str, str] | None = None) -> LogState:
    return LogState(cluster_id=cluster, topic_id=topic, log_start=start, log_end=end,
                    committed=committed, committed_on=counted_on)


def at(offset: int, cluster: str | None = CLUSTER, topic: str | None = TOPIC) -> StoredPosition:
    return StoredPosition(next_offset=offset, cluster_id=cluster, topic_id=topic)


def test_agreeing_positions_resume_where_the_database_stands() -> None:
    assert decide(at(40), log(committed=40)) == Verdict(40)


def test_ahead_of_the_group_is_the_normal_crash_window() -> None:
    """The database commits before Kafka does: the stored position wins, silently."""
    assert decide(at(55), log(committed=40)) == Verdict(55)
    assert decide(at(55), log(committed=None)) == Verdict(55)


def test_a_partition_never_consumed_starts_at_the_log_start() -> None:
    assert decide(None, log(start=7, committed=None)) == Verdict(7)


def test_no_stored_position_but_a_group_offset_is_a_database_behind() -> None:
    """The group consumed it, this database never did: replay all of it."""
    assert decide(None, log(start=0, committed=40)) == Verdict(0, found="database_behind")


def test_no_stored_position_and_a_log_that_lost_its_beginning_is_a_gap() -> None:
    assert decide(None, log(start=10, committed=40)) == Verdict(None, found="gap")


def test_a_new_cluster_replays_from_the_start() -> None:
    """A stored 719 on a fresh broker would skip its first 719 messages."""
    v = decide(at(719), log(end=30, committed=None, cluster="cluster-B"))
    assert v == Verdict(0, found="new_cluster")
    assert v.replayed and not v.paused


def test_a_recreated_topic_replays_from_the_start() -> None:
    v = decide(at(300), log(end=500, committed=300, topic="topic-2"))
    assert v == Verdict(0, found="new_topic")


def test_a_new_log_that_already_deleted_messages_is_held() -> None:
    assert decide(at(10), log(start=5, committed=None, cluster="cluster-B")) == Verdict(
        None, found="new_cluster")
    assert decide(at(10), log(start=5, topic="topic-2")) == Verdict(None, found="new_topic")


def test_a_restored_database_replays_from_its_own_position() -> None:
    v = decide(at(25), log(committed=40))
    assert v == Verdict(25, found="database_behind")


def test_a_group_offset_counted_on_another_log_is_not_this_logs() -> None:
    """A commit in flight when the old broker went away arrives at the new one (stored
    0 on the new cluster after its replay began, committed 413 from the old one)."""
    stale = ("cluster-gone", "topic-gone")
    assert decide(at(0), log(end=0, committed=413, counted_on=stale)) == Verdict(0)
    assert decide(None, log(start=0, committed=413, counted_on=stale)) == Verdict(0)
    assert decide(at(0), log(committed=40, counted_on=(CLUSTER, "topic-gone"))) == Verdict(0)


def test_a_group_offset_counted_on_this_log_or_unnamed_still_finds_a_restored_database(
        ) -> None:
    for counted_on in ((CLUSTER, TOPIC), None):
        assert decide(at(25), log(committed=40, counted_on=counted_on)) == Verdict(
            25, found="database_behind")


def test_commit_metadata_names_the_log_and_reads_back() -> None:
    assert committed_on(commit_metadata("Kab-tq_6", "maOS-M_9")) == ("Kab-tq_6", "maOS-M_9")
    assert commit_metadata(None, TOPIC) == commit_metadata(CLUSTER, None) == ""
    for other in ("", None, "log ", "log a", "log a b c", "something else", "log  b"):
        assert committed_on(other) is None, other


def test_deleted_before_applied_is_a_gap() -> None:
    v = decide(at(5), log(start=10, committed=5))
    assert v == Verdict(None, found="gap")
    assert v.paused


def test_past_the_end_with_the_same_ids_is_a_truncation() -> None:
    assert decide(at(120), log(end=100, committed=120)) == Verdict(None, found="truncated")


def test_a_position_at_the_very_end_is_fine() -> None:
    assert decide(at(100), log(end=100, committed=100)) == Verdict(100)


def test_rows_without_ids_adopt_the_log_but_offsets_are_still_checked() -> None:
    assert decide(at(40, None, None), log(committed=40)) == Verdict(40)
    assert decide(at(120, None, None), log(end=100)) == Verdict(None, found="truncated")


def test_cluster_change_is_named_before_topic_change() -> None:
    v = decide(at(5), log(cluster="cluster-B", topic="topic-2", committed=None))
    assert v.found == "new_cluster"


def test_an_open_hold_keeps_the_partition_paused_even_if_the_log_grew_back() -> None:
    """A truncated log that grew past the stored offset still lost what was in between."""
    v = decide(at(120), log(end=150, committed=120), Hold("truncated"))
    assert v == Verdict(None, held_by="truncated")
    assert v.found is None  # not counted again


@pytest.mark.parametrize(("resolution", "start"), [
    ("from-start", 10), ("from-end", 100), ("from-stored", 60)])
def test_a_resolution_resumes_where_the_operator_chose(resolution: str, start: int) -> None:
    v = decide(at(60), log(start=10, end=100), Hold("truncated", resolution))  # type: ignore[arg-type]
    assert v == Verdict(start, resolved=resolution)  # type: ignore[arg-type]


def test_from_stored_is_kept_within_the_log() -> None:
    assert decide(at(3), log(start=10), Hold("gap", "from-stored")).start == 10
    assert decide(at(300), log(end=100), Hold("truncated", "from-stored")).start == 100
    assert decide(None, log(start=4), Hold("gap", "from-stored")).start == 4


def test_explanations_name_the_numbers_and_the_command_names_the_partition() -> None:
    assert "log starts at 10" in explain("gap", at(5), log(start=10))
    assert "cluster-A -> cluster-B" in explain("new_cluster", at(5), log(cluster="cluster-B"))
    assert resolve_command("ingest", "credit.inbound.tax", 2) == (
        "./xinyong positions resolve ingest credit.inbound.tax --partition 2 "
        "--from-start|--from-end|--from-stored")

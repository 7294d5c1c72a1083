"""What the registry's replay work (issue 9, docs/performance.md "Replay (issue 9)") must not
change: batch sizes that grow only behind a backlog, a
change's record key and subject as its payload states them, and the collector left
collecting."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from services.registry.handlers import parse_changes
from shared.contract import AcceptedRecord, RecordStatusChanged, RecordSubmission, SubjectRef
from shared.messages import InboundMessage, OutboundEvent
from shared.service import GC_YOUNG_THRESHOLD, settle_garbage_collector
from shared.settings import Settings
from shared.topics import RECORDS_ACCEPTED, RECORDS_STATUS
from shared.worker import linger_records, linger_seconds, next_batch_limit

SETTINGS = Settings(batch_max=1000, batch_max_backlog=5000)


def test_batches_grow_while_they_come_full_and_shrink_at_once() -> None:
    limit, seen = SETTINGS.batch_max, []
    for _ in range(4):
        limit = next_batch_limit(limit, limit, SETTINGS)
        seen.append(limit)
    assert seen == [2000, 4000, 5000, 5000]
    assert next_batch_limit(5000, 4999, SETTINGS) == 1000
    assert next_batch_limit(1000, 0, SETTINGS) == 1000
    assert next_batch_limit(1000, 999, SETTINGS) == 1000


def test_a_small_batch_lingers_as_long_as_the_last_took_and_no_longer_than_the_cap() -> None:
    settings = Settings(batch_linger_ms=25, batch_linger_records=200)
    assert linger_seconds(3, 0.004, settings) == 0.004  # quiet: next to nothing
    assert linger_seconds(3, 0.300, settings) == 0.025  # busy: capped
    assert linger_seconds(0, 0.300, settings) == 0.0  # nothing fetched: the loop goes on
    assert linger_seconds(200, 0.300, settings) == 0.0  # large enough
    assert linger_seconds(3, 0.300, Settings(batch_linger_ms=0)) == 0.0  # turned off


def test_a_service_that_gathers_waits_its_time_for_any_batch_until_the_batch_is_full() -> None:
    settings = Settings(batch_linger_ms=25, batch_linger_records=200)
    assert linger_seconds(3, 0.004, settings, gather_ms=500) == 0.5  # even when quiet
    assert linger_seconds(200, 0.004, settings, gather_ms=500) == 0.5  # past the 200 too
    assert linger_seconds(0, 0.004, settings, gather_ms=500) == 0.0  # nothing to gather for
    assert linger_records(1000, settings, gather_ms=500) == 1000  # until a full batch
    assert linger_records(1000, settings) == 200
    assert linger_records(100, settings) == 100


def test_the_services_off_the_notice_path_gather_and_those_on_it_do_not() -> None:
    gathering = Settings().batch_gather_ms
    assert set(gathering) == {"stats", "objection"} and all(gathering.values())
    assert not {"ingest", "registry", "publisher"} & set(gathering)


def test_a_backlog_limit_below_batch_max_never_shrinks_batches() -> None:
    settings = Settings(batch_max=1000, batch_max_backlog=500)
    assert next_batch_limit(1000, 1000, settings) == 1000


def _message(topic: str, value: bytes, offset: int) -> InboundMessage:
    return InboundMessage(topic, 0, offset, None, value, 0)


def test_a_change_knows_its_record_and_subject() -> None:
    subject = SubjectRef(type="enterprise", id="91440400MA4UHKJN0X", name="珠海某有限公司")
    accepted = AcceptedRecord(
        department="market", source_event_id="e-1", accepted_at=datetime(2026, 1, 2, tzinfo=UTC),
        submission=RecordSubmission(record_id="R-1", revision=1, action="withdraw",
                                    subject=subject))
    status = RecordStatusChanged.model_validate({
        "change": "flag", "department": "court", "record_id": "R-2",
        "subject": {"type": "individual", "id": "440402199001011234"}, "objection_id": "o-1"})
    a = OutboundEvent.of(RECORDS_ACCEPTED, RECORDS_ACCEPTED.writer, subject.key, accepted)
    s = OutboundEvent.of(RECORDS_STATUS, RECORDS_STATUS.writer, status.subject.key, status)
    changes, dead = parse_changes([_message(RECORDS_ACCEPTED.name, a.value, 1),
                                   _message(RECORDS_STATUS.name, s.value, 2)])
    assert dead == []
    assert [(c.record_key, c.subject) for c in changes] == [
        (("market", "R-1"), subject), (("court", "R-2"), status.subject)]


def test_settling_the_collector_keeps_it_collecting() -> None:
    before = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

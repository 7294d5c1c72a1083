"""Objection's reading of the events it consumes, and ingest's reading of a submission: CPU
per event, no Kafka, no database (docs/performance.md, "Objection and ingest").

For each event objection consumes (shaped like the bench pipeline's), the contract model
read whole (`read_event`) against the reading objection uses (`read_event_as`); and
ingest's `parse_message` over the pipeline bench's own submissions. Figures are this
process's CPU time (`time.process_time`), the best of three passes.

    python -m bench.readings --events 5000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import BaseModel

from bench.pipeline import make_batch
from services.ingest.domain import parse_message
from services.objection.contracts import AcceptedReading, ListReading, SnapshotReading
from shared.contract import (
    AcceptedRecord,
    ArchivedRecord,
    Grade,
    ListChanged,
    RecordSubmission,
    SubjectChanged,
    SubjectRef,
)
from shared.envelope import submission_json
from shared.messages import InboundMessage, OutboundEvent, read_event, read_event_as
from shared.topics import LISTS_CHANGED, RECORDS_ACCEPTED, SUBJECTS_CHANGED, Topic

SUBJECT = {"type": "enterprise", "id": "91440400MA4UXXXX1X", "name": "珠海某某科技有限公司"}


def _archived(i: int) -> ArchivedRecord:
    return ArchivedRecord.model_validate({
        "department": "amr", "record_id": f"R-{i}", "revision": 1,
        "catalogue_item": "amr.admin_penalty", "decided_on": "2026-01-05",
        "document_no": "珠市监罚〔2026〕12号", "summary": "未按规定公示年度报告",
        "district": "440402", "status": "active", "repair_from": "2026-04-05",
        "public_until": "2027-01-05", "disclosure_rule": "amr.penalty.3y",
        "attributes": {"penalty_class": "other"},
        "provenance": {"department": "amr", "record_id": f"R-{i}", "revision": 1,
                       "event_id": f"e-{i}", "received_at": "2026-01-06T00:00:00Z"}})


def _message(topic: Topic[Any], data: BaseModel) -> InboundMessage:
    event = OutboundEvent.of(topic, topic.writer, "k", data)
    return InboundMessage(topic=topic.name, partition=0, offset=0, key=None,
                          value=event.value, timestamp_ms=0)


def cases() -> dict[str, tuple[InboundMessage, Topic[Any], type[BaseModel]]]:
    subject = SubjectRef.model_validate(SUBJECT)
    submission = RecordSubmission.model_validate({
        "record_id": "R-1", "revision": 1, "action": "upsert",
        "catalogue_item": "amr.admin_penalty", "decided_on": "2026-01-05",
        "document_no": "珠市监罚〔2026〕12号", "summary": "未按规定公示年度报告",
        "district": "440402", "subject": SUBJECT, "attributes": {"penalty_class": "other"}})
    return {
        "snapshot, 1 record": (_message(SUBJECTS_CHANGED, SubjectChanged(
            subject=subject, version=1, records=[_archived(0)],
            grade=Grade(grade="B", explanation=["一条行政处罚"]))), SUBJECTS_CHANGED,
            SnapshotReading),
        "snapshot, 4 records": (_message(SUBJECTS_CHANGED, SubjectChanged(
            subject=subject, version=4, records=[_archived(i) for i in range(4)],
            grade=Grade(grade="C", explanation=["四条行政处罚"]))), SUBJECTS_CHANGED,
            SnapshotReading),
        "accepted record": (_message(RECORDS_ACCEPTED, AcceptedRecord.model_validate({
            "department": "amr", "submission": submission, "source_event_id": "e-2",
            "accepted_at": "2026-06-02T00:00:00Z"})), RECORDS_ACCEPTED, AcceptedReading),
        "list change": (_message(LISTS_CHANGED, ListChanged.model_validate({
            "list": "court.dishonest_debtor", "op": "ADD",
            "entry_id": "0b8f4a5e-2f7e-4d7c-9d63-5c1d2a3b4c5d", "subject": SUBJECT,
            "since": "2026-06-01", "until": None,
            "basis": [{"department": "court", "record_id": "C-1", "revision": 1}]})),
            LISTS_CHANGED, ListReading),
    }


def cpu_us(step: Callable[[], object], times: int) -> float:
    """CPU microseconds of one `step`, the best of three passes of `times`."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(times):
            step()
        best = min(best, time.process_time() - started)
    return best / times * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    n = parser.parse_args().events
    for name, (message, topic, reading) in cases().items():
        whole = cpu_us(partial(read_event, message, topic), n)
        narrow = cpu_us(partial(read_event_as, message, topic, reading), n)
        print(f"objection, {name} ({len(message.value)} bytes): whole {whole:.1f} µs, "
              f"reading {narrow:.1f} µs")
    raws = iter([submission_json(dept, data) for dept, data in make_batch(n * 3)])
    print(f"ingest, parse_message: {cpu_us(lambda: parse_message(next(raws)), n):.1f} µs")


if __name__ == "__main__":
    main()

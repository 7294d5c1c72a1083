"""The official figures on the real stats database (rolled back), against a hand-computed
fixture: events as the stats service receives them (feedback with error codes, duplicates
and stale revisions, accepted revisions and a withdrawal, list entries, objections decided
late), the figures from SQL, and the deltas the early warning is sent."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from pydantic import BaseModel

from services.stats import api, domain, handlers, store
from services.stats import sweeps as stats_sweeps
from shared import clock
from shared.catalogue import Catalogue
from shared.contract import (
    AcceptedRecord,
    BasisRecord,
    ComplaintRouted,
    FieldError,
    ListChanged,
    ObjectionClosed,
    ObjectionRouted,
    RecordFeedback,
    RecordRef,
    RecordSubmission,
    StatsWindow,
    SubjectRef,
    WindowRange,
)
from shared.envelope import encode_event
from shared.messages import InboundMessage
from shared.topics import (
    COMPLAINTS,
    FEEDBACK,
    LISTS_CHANGED,
    OBJECTIONS,
    OBJECTIONS_CLOSED,
    RECORDS_ACCEPTED,
    STATS_WINDOWS,
    Topic,
)
from tests.db.conftest import OpenTransaction
from tests.unit.factories import resident_id, uscc

pytestmark = pytest.mark.db
_offsets = count()
DISTRICT = "440404"


def _message(topic: Topic[Any], data: BaseModel, key: str = "k",
             event_id: str | None = None) -> InboundMessage:
    _, value = encode_event(topic.event_type, topic.writer, key, data, event_id)
    return InboundMessage(topic=topic.name, partition=0, offset=next(_offsets), key=key,
                          value=value, timestamp_ms=0)


def _accepted(dept: str, record_id: str, revision: int, item: str | None, subject: SubjectRef,
              decided_on: date | None, at: datetime, action: str = "upsert") -> InboundMessage:
    data: dict[str, Any] = {"record_id": record_id, "revision": revision, "action": action,
                            "subject": subject.model_dump()}
    if action == "upsert":
        data.update(catalogue_item=item, decided_on=decided_on, district=DISTRICT)
    accepted = AcceptedRecord(department=dept, submission=RecordSubmission.model_validate(data),
                              source_event_id=str(uuid.uuid4()), accepted_at=at)
    return _message(RECORDS_ACCEPTED, accepted, subject.key,
                    f"{dept}|{record_id}|{revision}")


def _feedback(dept: str, status: str, record_id: str, codes: tuple[str, ...] = ()
              ) -> InboundMessage:
    fb = RecordFeedback(event_id=str(uuid.uuid4()), record_id=record_id, revision=1,
                        status=status,  # type: ignore[arg-type]
                        errors=[FieldError(field="f", code=c, message="m") for c in codes])
    return _message(FEEDBACK.of(dept), fb)


async def test_districts_and_scorecards_equal_the_hand_computed_fixture(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("stats")
    firm = SubjectRef(type="enterprise", id=uscc("91440400MA4W8KY10"), name="甲")
    other = SubjectRef(type="enterprise", id=uscc("91440400MA4W8KY20"), name="乙")
    person = SubjectRef(type="individual", id=resident_id(sequence=321), name="丙")
    # Accepted on Friday 2026-10-09 in Zhuhai: decided Wednesday 2026-09-30, that is 2
    # working days (10-8, 10-9) across the National Day holiday; decided 2026-09-18, 10
    # working days (Sunday 9-20 worked, 9-21..24, the Mid-Autumn 9-25 off, 9-28..30, 10-8,
    # 10-9): 双公示 within 7 for one of the three amr penalties.
    at = datetime(2026, 10, 9, 10, 0, tzinfo=clock.ZHUHAI)
    events = [
        _accepted("amr", "A-1", 1, "amr.admin_penalty", firm, date(2026, 9, 30), at),
        _accepted("amr", "A-1", 1, "amr.admin_penalty", firm, date(2026, 9, 30), at),  # again
        _accepted("amr", "A-2", 1, "amr.admin_penalty", other, date(2026, 9, 18), at),
        _accepted("amr", "A-3", 1, "amr.admin_penalty", other, date(2026, 9, 18), at),
        _accepted("amr", "A-3", 2, None, other, None, at, action="withdraw"),  # withdrawn
        _accepted("hrss", "H-1", 1, "hrss.wage_arrears", person, date(2026, 9, 30), at),
        _accepted("court", "C-1", 1, "court.dishonest_debtor", firm, date(2026, 9, 30), at),
        _accepted("tax", "T-1", 1, "tax.a_grade_taxpayer", other, date(2026, 9, 30), at),
        _feedback("amr", "accepted", "A-1"), _feedback("amr", "duplicate", "A-1"),
        _feedback("amr", "accepted", "A-2"), _feedback("amr", "stale", "A-2"),
        _feedback("amr", "rejected", "A-9", ("unknown_district", "checksum")),
        _feedback("amr", "rejected", "A-8", ("checksum",)),
        _message(LISTS_CHANGED, ListChanged(
            list="court.dishonest_debtor", op="ADD", entry_id=str(uuid.uuid4()), subject=firm,
            since=date(2026, 10, 9), until=None,
            basis=[BasisRecord(department="court", record_id="C-1", revision=1)])),
        _message(LISTS_CHANGED, ListChanged(
            list="tax.a_grade", op="ADD", entry_id=str(uuid.uuid4()), subject=other,
            since=date(2026, 10, 9), until=None,
            basis=[BasisRecord(department="tax", record_id="T-1", revision=1)])),
    ]
    objection, late = str(uuid.uuid4()), str(uuid.uuid4())
    for oid, due in ((objection, date(2026, 10, 29)), (late, date(2026, 10, 5))):
        events.append(_message(OBJECTIONS.of("amr"), ObjectionRouted(
            objection_id=oid, kind="objection", subject=firm,
            record=RecordRef(department="amr", record_id="A-1"), reason="r", due_by=due,
            received_at=datetime(2026, 10, 1, tzinfo=UTC))))
        events.append(_message(OBJECTIONS_CLOSED, ObjectionClosed(
            objection_id=oid, kind="objection", department="amr",
            record=RecordRef(department="amr", record_id="A-1"), decision="upheld",
            received_at=datetime(2026, 10, 1, tzinfo=UTC), due_by=due,
            decided_at=datetime(2026, 10, 9, 3, tzinfo=UTC))))
    # Feedback facts are dated by their event's time: set it in the month.
    await handlers.apply(conn, catalogue, events)
    await handlers.apply(conn, catalogue, events[:3])  # delivered again: nothing doubles
    await conn.execute("UPDATE feedback_facts SET at = $1", at)

    negative = sorted(k for k, v in catalogue.items.items() if v.polarity == "negative")
    rows = await store.district_counts(conn, date(2026, 9, 1), date(2026, 10, 31), negative)
    got = {(r["district"], r["subject_type"], r["what"]): r["n"] for r in rows}
    assert got == {(DISTRICT, "enterprise", "negative_records"): 3,   # C-1
                   (DISTRICT, "individual", "negative_records"): 1,   # H-1
                   (DISTRICT, "enterprise", "black_list_entries"): 1,
                   (DISTRICT, "enterprise", "red_list_entries"): 1}
    # Decided outside the period: not counted.
    assert not await store.district_counts(conn, date(2026, 1, 1), date(2026, 8, 31), negative)

    month = domain.month("2026-10", date(2026, 11, 29))
    verdicts = {r["department"]: r for r in
                await store.feedback_month(conn, month.start, month.end)}
    codes = await store.rejections_by_code(conn, month.start, month.end)
    firsts = await store.first_deliveries(conn, month.start, month.end)
    objections = await store.objections_month(conn, month.start, month.end)
    card = api._scorecard(catalogue, "amr", verdicts.get("amr"), codes, firsts, objections)
    assert card["submissions"] == 6 and card["accepted"] == 2 and card["rejected"] == 2
    assert card["duplicates"] == 1 and card["stale"] == 1
    assert card["rejected_by_code"] == {"checksum": 2, "unknown_district": 1}
    # 2 working days: 10 each (A-3 counts: its first delivery was accepted).
    assert card["delay_working_days"] == {
        "records": 3, "median": 10, "p95": 10, "double_publicity_records": 3,
        "double_publicity_within_7": pytest.approx(1 / 3)}
    assert card["objections"] == {"received": 2, "upheld": 2, "decided_after_due_by": 1}
    assert not month.partial

    # The early warning's deltas: +1 per negative case counted, -1 for the withdrawal.
    deltas = await conn.fetch('SELECT measure, district, delta FROM deltas ORDER BY fact_id')
    by_rule: dict[str, int] = {}
    for d in deltas:
        by_rule[d["measure"]] = by_rule.get(d["measure"], 0) + d["delta"]
    assert by_rule == {"negative.high_incidence": 4, "wage_arrears.high_incidence": 1}
    assert len(deltas) == 7  # 5 +1 for negative, 1 for wage arrears, 1 -1
    # stats-windows gets their sums per district, rule and day: 9-30 (A-1, C-1; H-1 under
    # both rules), 9-18 (A-2, A-3 and A-3's withdrawal).
    sent = [json.loads(r["value"])["data"] for r in await conn.fetch(
        "SELECT value FROM outbox WHERE topic = 'credit.stats.deltas'")]
    assert sorted((d["measure"], d["on"][:10], d["delta"]) for d in sent) == [
        ("negative.high_incidence", "2026-09-18", 1),
        ("negative.high_incidence", "2026-09-30", 3),
        ("wage_arrears.high_incidence", "2026-09-30", 1)]
    assert {d["district"] for d in sent} == {DISTRICT}


def test_bad_periods_and_months() -> None:
    with pytest.raises(domain.Invalid) as bad:
        domain.period("2026-02-30", "2026-13-01")
    assert [e["code"] for e in bad.value.errors] == ["date_invalid", "date_invalid"]
    with pytest.raises(domain.Invalid) as after:
        domain.period("2026-05-02", "2026-05-01")
    assert after.value.errors[0]["code"] == "after_to"
    with pytest.raises(domain.Invalid) as long:
        domain.period("2020-01-01", "2025-01-01")
    assert long.value.errors[0]["code"] == "span_too_long"
    assert domain.period("2020-01-02", "2025-01-01") == (date(2020, 1, 2), date(2025, 1, 1))
    with pytest.raises(domain.Invalid):
        domain.month("2026-12", date(2026, 11, 29))  # not begun
    assert domain.month("2026-11", date(2026, 11, 29)).partial


def _snapshot(window_from: datetime, count: int, offset: int) -> InboundMessage:
    window = WindowRange(**{"from": window_from, "to": window_from + timedelta(days=28)})
    key = f"{DISTRICT}|negative.high_incidence|{window_from.isoformat()}"
    _, value = encode_event(STATS_WINDOWS.event_type, STATS_WINDOWS.writer, DISTRICT,
                            StatsWindow(district=DISTRICT, measure="negative.high_incidence",
                                        window=window, count=count, threshold=5))
    return InboundMessage(topic=STATS_WINDOWS.name, partition=0, offset=offset, key=key,
                          value=value, timestamp_ms=0, raw_key=key.encode())


async def test_the_windows_sink_keeps_each_windows_latest_count(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    """A batch holds several snapshots of a window (one per delta): the last one is stored,
    whether it is read or passed over for the later one; a later batch overwrites it, and an
    unreadable snapshot followed by a good one of its window is passed over."""
    conn = await tx("stats")
    first = datetime(2026, 10, 1, tzinfo=clock.ZHUHAI)
    second = first + timedelta(days=7)
    poison = InboundMessage(topic=STATS_WINDOWS.name, partition=0, offset=3,
                            key="k", value=b"not json", timestamp_ms=0,
                            raw_key=f"{DISTRICT}|negative.high_incidence|{second.isoformat()}"
                            .encode())
    await handlers.apply(conn, catalogue, [
        _snapshot(first, 1, 1), _snapshot(second, 1, 2), poison, _snapshot(first, 2, 4),
        _snapshot(second, 3, 5)])
    rows = await conn.fetch("SELECT window_from, count FROM windows ORDER BY window_from")
    assert [(r["window_from"], r["count"]) for r in rows] == [(first, 2), (second, 3)]
    assert not await conn.fetch("SELECT 1 FROM outbox")  # nothing dead-lettered
    await handlers.apply(conn, catalogue, [_snapshot(first, 1, 6), poison])
    rows = await conn.fetch("SELECT window_from, count FROM windows ORDER BY window_from")
    assert [(r["window_from"], r["count"]) for r in rows] == [(first, 1), (second, 3)]
    assert len(await conn.fetch("SELECT 1 FROM outbox")) == 1  # the poison, last of its key


async def test_what_each_record_counts_for_follows_its_last_revision_in_a_batch(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    """Revisions of one record in one batch: the rows kept are those of the last."""
    conn = await tx("stats")
    firm = SubjectRef(type="enterprise", id=uscc("91440400MA4W8KY30"), name="丁")
    at = datetime(2026, 10, 9, 10, 0, tzinfo=clock.ZHUHAI)
    await handlers.apply(conn, catalogue, [
        _accepted("amr", "B-1", 1, "amr.admin_penalty", firm, date(2026, 9, 30), at),
        _accepted("amr", "B-1", 2, "amr.admin_penalty", firm, date(2026, 9, 29), at),
        _accepted("amr", "B-2", 1, "amr.admin_penalty", firm, date(2026, 9, 30), at),
        _accepted("amr", "B-2", 2, None, firm, None, at, action="withdraw"),
        _accepted("tax", "T-2", 1, "tax.a_grade_taxpayer", firm, date(2026, 9, 30), at)])
    rows = await conn.fetch('SELECT department, record_id, rule, "on", revision'
                            " FROM warning_counted ORDER BY record_id")
    assert [(r["record_id"], r["rule"], r["on"].astimezone(clock.ZHUHAI).date(),
             r["revision"]) for r in rows] == [
        ("B-1", "negative.high_incidence", date(2026, 9, 29), 2)]
    deltas = await conn.fetch('SELECT "on", delta FROM deltas')
    assert sum(d["delta"] for d in deltas) == 1


async def test_a_complaint_on_an_objections_topic_is_passed_over_not_dead_lettered(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    """Complaints reach a department on its objections topic (CONTRACT.md): the statistics
    count the objections beside them and keep nothing of a complaint, its text least of all
    (a dead letter would)."""
    conn = await tx("stats")
    firm = SubjectRef(type="enterprise", id=uscc("91440400MA4W8KY40"), name="戊")
    complaint = _message(COMPLAINTS.of("amr"), ComplaintRouted(
        complaint_id=str(uuid.uuid4()), about={"kind": "record", "record_id": "A-1"},
        subject=firm, text="投诉内容：联系电话13800000000", due_by=date(2026, 11, 9),
        received_at=datetime(2026, 10, 9, tzinfo=UTC)))
    assert complaint.topic == OBJECTIONS.of("amr").name
    objection = _message(OBJECTIONS.of("amr"), ObjectionRouted(
        objection_id=str(uuid.uuid4()), kind="objection", subject=firm,
        record=RecordRef(department="amr", record_id="A-1"), reason="r",
        due_by=date(2026, 10, 29), received_at=datetime(2026, 10, 1, tzinfo=UTC)))
    await handlers.apply(conn, catalogue, [complaint, objection])
    assert not await conn.fetch("SELECT 1 FROM outbox")  # nothing dead-lettered
    assert await conn.fetchval("SELECT count(*) FROM objection_facts") == 1


async def test_kept_messages_are_forgotten_after_their_days(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    """The statistics cannot erase by subject: what they could not read (which may name a
    person) is deleted after `stats_dead_letter_days`, and only that."""
    conn = await tx("stats")
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    for days, reason in ((31, "old"), (29, "recent")):
        await conn.execute(
            "INSERT INTO dead_letters (service, topic, partition, \"offset\", key, value,"
            " reason, at) VALUES ('stats', 't', 0, 0, 'individual:440402198505171239',"
            " '张伟', $1, $2)", reason, now - timedelta(days=days))
        await conn.execute(
            "INSERT INTO outbox_set_aside (outbox_id, event_id, topic, key, value, created_at,"
            " error, set_aside_at) VALUES (1, $1, 't', 'k', '张伟', $2, 'e', $2)",
            reason, now - timedelta(days=days))
    assert await stats_sweeps.forget_kept_messages(conn, now - timedelta(days=30)) == 2
    assert [r["reason"] for r in await conn.fetch("SELECT reason FROM dead_letters")] == [
        "recent"]
    assert [r["event_id"] for r in await conn.fetch(
        "SELECT event_id FROM outbox_set_aside")] == ["recent"]

"""The subject's rights as use cases on a real PostgreSQL (rolled back): repair requests and
complaints in the objection service; notifications before listing in the publisher."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.objection import domain as objection_domain
from services.objection import handlers as objection
from services.objection.contracts import ComplaintRequest, RepairRequest
from services.publisher import handlers as publisher
from services.publisher import rights_store, senders
from shared import clock
from shared.catalogue import Catalogue
from shared.contract import (
    ListChanged,
    ObjectionDecision,
    RequestChanged,
    SubjectChanged,
    SubjectRef,
)
from shared.http import Problem
from shared.messages import InboundMessage, OutboundEvent
from shared.settings import Settings
from shared.topics import COMPLAINTS, LISTS_CHANGED, RECORDS_STATUS, SUBJECTS_NOTIFIED
from tests.db.builders import FIRM_A, FIRM_B, accepted_message, archived, snapshot_message
from tests.db.conftest import OpenTransaction

pytestmark = pytest.mark.db

LIMITS = objection.Limits(objection_domain.Rate(1000, 3600), objection_domain.Rate(1000, 3600))
COMMITMENT = {"text_version": "2026-04", "signer_name": "张三", "signer_role": "法定代表人"}


def repair(record_id: str, **extra: Any) -> RepairRequest:
    return RepairRequest.model_validate({
        "subject": {"type": "enterprise", "id": FIRM_A},
        "record": {"department": "amr", "record_id": record_id},
        "reason": "已履行", "contact": "13800000000", **extra})


async def outbox(conn: asyncpg.Connection, topic: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topic)
    return [json.loads(bytes(r["value"]))["data"] for r in rows]


async def known(conn: asyncpg.Connection, record_id: str, **facts: Any) -> None:
    """The record as ingest accepted it and as the registry's snapshot shows it."""
    await objection.remember(conn, [accepted_message(record_id, FIRM_A)])
    await objection.remember(conn, [snapshot_message(FIRM_A, archived(record_id, **facts))])


# --- repair ------------------------------------------------------------------------------


async def test_a_repair_request_is_refused_with_every_reason_and_nothing_is_taken(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    today = clock.today()
    await known(conn, "E-1", repair_from=today + timedelta(days=3),
                public_until=today + timedelta(days=200))
    with pytest.raises(Problem) as caught:
        await objection.submit(conn, catalogue, LIMITS, "repair", repair("E-1"), "192.0.2.1")
    problem = caught.value
    assert (problem.status, problem.code) == (422, "repair_not_eligible")
    assert [e["code"] for e in problem.errors or []] == [
        "too_early", "commitment_missing", "obligations_not_declared"]
    assert problem.extensions == {"eligible_from": (today + timedelta(days=3)).isoformat()}
    assert await conn.fetchval("SELECT count(*) FROM objections") == 0


async def test_a_granted_repair_carries_its_commitment_and_is_passed_on(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    today = clock.today()
    await known(conn, "G-1", repair_from=today - timedelta(days=1),
                public_until=today + timedelta(days=200))
    body = repair("G-1", commitment=COMMITMENT,
                  obligations={"declaration": "罚款已缴清", "evidence": ["缴款书 1"]})
    created = await objection.submit(conn, catalogue, LIMITS, "repair", body, "192.0.2.1")
    assert created.access_token and created.result_by is not None
    again = await objection.submit(conn, catalogue, LIMITS, "repair", body, "192.0.2.2")
    assert (again.objection_id, again.access_token) == (created.objection_id, None)

    await objection.decide(conn, "amr", ObjectionDecision(
        objection_id=created.objection_id, decision="upheld", reason="符合修复条件"),
        catalogue)
    [status] = await outbox(conn, RECORDS_STATUS.name)
    assert status["change"] == "repair"
    assert status["commitment"]["signer_name"] == "张三"
    assert status["commitment"]["signed_on"] == today.isoformat()

    # The registry's snapshot shows the record repaired by this request: passed on.
    repaired = archived("G-1", status="repaired", repair={
        "objection_id": created.objection_id, "granted_on": today.isoformat(),
        "commitment": status["commitment"]})
    await objection.remember(conn, [snapshot_message(FIRM_A, repaired, version=2)])
    steps = [r["status"] for r in await conn.fetch(
        "SELECT status FROM objection_events WHERE objection_id = $1::uuid ORDER BY id",
        created.objection_id)]
    assert steps == ["accepted", "checked", "routed", "upheld", "passed_on"]
    # A repaired record is no longer published: a new request has nothing to repair.
    with pytest.raises(Problem) as caught:
        await objection.submit(conn, catalogue, LIMITS, "repair", repair(
            "G-1", contact="13900000000", commitment=COMMITMENT,
            obligations={"declaration": "x" * 5}), "192.0.2.3")
    assert [e["code"] for e in caught.value.errors or []] == ["not_published"]
    # The subject's own view is told each step.
    states = await outbox(conn, "credit.requests.changed")
    assert [s["status"] for s in states] == ["routed", "upheld", "upheld"]
    assert states[-1]["timeline"][-1]["status"] == "passed_on"


# --- complaints ----------------------------------------------------------------------------


def complaint(about: dict[str, Any], contact: str = "13800000000") -> ComplaintRequest:
    return ComplaintRequest.model_validate({"about": about, "text": "长期未处理",
                                            "contact": contact})


def list_change(entry_id: str, subject_id: str) -> InboundMessage:
    change = ListChanged.model_validate({
        "list": "court.dishonest_debtor", "op": "ADD", "entry_id": entry_id,
        "subject": {"type": "enterprise", "id": subject_id}, "since": "2026-06-01",
        "until": "2028-06-01"})
    event = OutboundEvent.of(LISTS_CHANGED, "xinyong/publisher", f"enterprise:{subject_id}",
                             change)
    return InboundMessage(topic=LISTS_CHANGED.name, partition=0, offset=1, key=event.key,
                          value=event.value, timestamp_ms=0)


async def test_complaints_are_routed_to_whom_they_concern(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await objection.remember(conn, [accepted_message("C-1", FIRM_A)])
    entry_id = "0b8f4a5e-2f7e-4d7c-9d63-5c1d2a3b4c5d"
    await objection.remember(conn, [list_change(entry_id, FIRM_A)])

    record = {"kind": "record", "subject": {"type": "enterprise", "id": FIRM_A},
              "record": {"department": "amr", "record_id": "C-1"}}
    made, new = await objection.submit_complaint(conn, catalogue, LIMITS, complaint(record),
                                                 "192.0.2.1")
    assert new and made.routed_to == "amr"
    assert made.due_by == clock.next_working_day(clock.today() + timedelta(days=30)).day
    again, new = await objection.submit_complaint(conn, catalogue, LIMITS,
                                                  complaint(record, "138-0000-0000"),
                                                  "192.0.2.1")
    assert (new, again.complaint_id, again.access_token) == (False, made.complaint_id, None)
    [routed] = await outbox(conn, COMPLAINTS.of("amr").name)
    assert routed["complaint_id"] == made.complaint_id

    entry = {"kind": "list_entry", "subject": {"type": "enterprise", "id": FIRM_A},
             "list": "court.dishonest_debtor", "entry_id": entry_id}
    made_entry, _ = await objection.submit_complaint(conn, catalogue, LIMITS, complaint(entry),
                                                     "192.0.2.1")
    assert made_entry.routed_to == "court"
    with pytest.raises(Problem) as caught:
        await objection.submit_complaint(
            conn, catalogue, LIMITS,
            complaint({**entry, "subject": {"type": "enterprise", "id": FIRM_B}}), "192.0.2.1")
    assert caught.value.code == "entry_subject_mismatch"

    system, _ = await objection.submit_complaint(conn, catalogue, LIMITS,
                                                 complaint({"kind": "system"}), "192.0.2.1")
    assert system.routed_to == "operators"
    # Only the department it went to (or the operators, for theirs) answers.
    with pytest.raises(objection.AnswerRefused):
        await objection.answer_complaint(conn, made.complaint_id, "department", "court", "x")
    with pytest.raises(objection.AnswerRefused):
        await objection.answer_complaint(conn, made.complaint_id, "operator", "ops", "x")
    assert await objection.answer_complaint(conn, made.complaint_id, "department", "amr",
                                            "已更正") == "answered"
    assert await objection.answer_complaint(conn, system.complaint_id, "operator", "ops",
                                            "已修复") == "answered"
    # The complaint about the system names no subject: no subject's view shows it.
    subjects = {s["request_id"] for s in await outbox(conn, "credit.requests.changed")}
    assert made.complaint_id in subjects and system.complaint_id not in subjects


# --- telling the subject before listing ------------------------------------------------------


def spooled(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in folder.glob("*.jsonl")
            for line in f.read_text().splitlines()]


def wage_snapshot(subject_id: str, record_id: str, **extra: Any) -> SubjectChanged:
    message = snapshot_message(subject_id, archived(
        record_id, department="hrss", item="hrss.wage_arrears",
        decided_on=clock.today() - timedelta(days=10),
        public_until=clock.today() + timedelta(days=1000), **extra))
    return SubjectChanged.model_validate(json.loads(message.value)["data"])


async def test_a_listing_waits_for_its_notification_then_for_its_notice_period(
        tx: OpenTransaction, catalogue: Catalogue, tmp_path: Path) -> None:
    conn = await tx("publisher")
    settings = Settings(notification_spool_dir=tmp_path)
    sender = senders.FileSender(tmp_path)
    told = wage_snapshot(FIRM_A, "W-1", contact="13800001111")
    unreachable = wage_snapshot(FIRM_B, "W-2", contact="not a channel")
    await publisher.apply_snapshots(conn, catalogue, [told, unreachable],
                                    key_secret="key")
    entries = await conn.fetch("SELECT subject_key, status, publish_at FROM list_entries")
    assert {(e["status"], e["publish_at"]) for e in entries} == {("pending", None)}

    assert await publisher.deliver_due(conn, catalogue, settings, sender) == 2
    [message] = spooled(tmp_path)
    assert message["to"] == "13800001111" and "拖欠农民工工资" in message["text"]
    [notified] = await outbox(conn, SUBJECTS_NOTIFIED.name)
    assert (notified["channel"], notified["subject"]["id"]) == ("contact", FIRM_A)
    publish_at = await conn.fetchval(
        "SELECT publish_at FROM list_entries WHERE subject_key = $1", told.subject.key)
    assert publish_at is not None
    assert publish_at.astimezone(clock.ZHUHAI).date().isoformat() == \
        notified["planned_publication"]
    deliveries = await conn.fetch("SELECT outcome, contact_masked FROM notification_deliveries"
                                  " ORDER BY id")
    assert [d["outcome"] for d in deliveries] == ["delivered", "failed"]
    # The unreachable one is tried again later, still with no publication date.
    assert await conn.fetchval(
        "SELECT publish_at FROM list_entries WHERE subject_key = $1",
        unreachable.subject.key) is None
    assert await publisher.deliver_due(conn, catalogue, settings, sender) == 0

    # An objection on the basis record holds the entry; its decision releases it.
    disputed = wage_snapshot(FIRM_A, "W-1", contact="13800001111", disputed=True)
    await publisher.apply_snapshots(conn, catalogue, [disputed.model_copy(
        update={"version": 2})], key_secret="key")
    assert await conn.fetchval("SELECT held FROM list_entries WHERE subject_key = $1",
                               told.subject.key)
    await publisher.apply_snapshots(conn, catalogue, [told.model_copy(update={"version": 3})],
                                    key_secret="key")
    assert not await conn.fetchval("SELECT held FROM list_entries WHERE subject_key = $1",
                                   told.subject.key)


async def test_the_notification_timer_leaves_alone_an_entry_a_batch_holds(
        pools: dict[str, asyncpg.Pool]) -> None:
    """A stream batch locks a subject's entries, then cancels their notifications; the timer
    must not lock the notification and then wait for the entry (a deadlock PostgreSQL broke
    by aborting one of them). Committed rows: another connection must see them."""
    pool = pools["publisher"]
    key, entry, notification = f"enterprise:lock-{uuid.uuid4().hex[:8]}", uuid.uuid4(), \
        uuid.uuid4()
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO subjects (subject_key, type, id, version, snapshot, discoverable)"
            " VALUES ($1, 'enterprise', $1, 1, '{}', false)", key)
        await conn.execute(
            "INSERT INTO list_entries (entry_id, list, subject_key, status, basis)"
            " VALUES ($1, 'wage_arrears', $2, 'pending', '[]')", entry, key)
        await conn.execute(
            "INSERT INTO notifications (notification_id, entry_id, subject_key, list, status,"
            " created_at, next_attempt_at) VALUES ($1, $2, $3, 'wage_arrears', 'to_deliver',"
            " now() - interval '1 minute', now() - interval '1 minute')",
            notification, entry, key)
    try:
        def ours(rows: list[asyncpg.Record]) -> list[str]:
            return [r["notification_id"] for r in rows if r["subject_key"] == key]

        async with pool.acquire() as batch, batch.transaction():
            await batch.execute("SELECT 1 FROM list_entries WHERE subject_key = $1 FOR UPDATE",
                                key)
            async with pool.acquire() as timer, timer.transaction():
                assert ours(await rights_store.lock_due_notifications(timer, clock.now())) == []
        async with pool.acquire() as timer, timer.transaction():
            assert ours(await rights_store.lock_due_notifications(timer, clock.now())) == \
                [str(notification)]
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM notifications WHERE subject_key = $1", key)
            await conn.execute("DELETE FROM list_entries WHERE subject_key = $1", key)
            await conn.execute("DELETE FROM subjects WHERE subject_key = $1", key)


async def test_the_subjects_view_keeps_the_latest_version_of_each_request(
        tx: OpenTransaction) -> None:
    """`save_requests`: one statement for the batch; the highest version wins, within the
    batch and against what is stored."""
    conn = await tx("publisher")
    subject = SubjectRef.model_validate({"type": "enterprise", "id": FIRM_A, "name": "甲"})
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    def request(request_id: str, version: int, status: str) -> RequestChanged:
        return RequestChanged(request_id=request_id, kind="objection", subject=subject,
                              about={"department": "amr", "record_id": "A-1"},
                              status=status, due_by=clock.today(), received_at=clock.now(),
                              version=version)

    await rights_store.save_requests(conn, [request(first, 1, "received"),
                                            request(first, 2, "routed"),
                                            request(second, 1, "received")])
    await rights_store.save_requests(conn, [request(first, 1, "stale")])
    rows = await conn.fetch("SELECT request_id::text, version, body::jsonb ->> 'status' AS s"
                            " FROM subject_requests WHERE subject_key = $1", subject.key)
    assert {r["request_id"]: (r["version"], r["s"]) for r in rows} == {
        first: (2, "routed"), second: (1, "received")}

"""The objection service's use cases on a real database (rolled back): its projection of the
accepted records, and which public requests it takes (CONTRACT.md, "Objections and repair")."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from services.ingest import handlers as ingest_handlers
from services.objection import domain, handlers, store, sweeps
from services.objection.contracts import ObjectionRequest, RepairRequest
from shared import clock
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import ObjectionDecision
from shared.http import Problem
from shared.messages import InboundMessage, OutboundEvent
from shared.topics import (
    DECISIONS,
    DECISIONS_RECEIVED,
    RECORDS_ACCEPTED,
    RECORDS_STATUS,
    REQUESTS_CHANGED,
)
from tests.db.builders import (
    FIRM_A,
    FIRM_B,
    accepted_message,
    archived,
    decision_message,
    snapshot_message,
)
from tests.db.conftest import OpenTransaction
from tests.unit.factories import resident_id

pytestmark = pytest.mark.db

PERSON = resident_id(sequence=400)  # its check character is X
GENEROUS = handlers.Limits(domain.Rate(1000, 3600), domain.Rate(1000, 3600))


def request(record_id: str, subject_id: str = FIRM_A, *, subject_type: str = "enterprise",
            contact: str = "13800000000", department: str = "amr") -> ObjectionRequest:
    return ObjectionRequest.model_validate({
        "subject": {"type": subject_type, "id": subject_id},
        "record": {"department": department, "record_id": record_id},
        "reason": "处罚决定已撤销", "contact": contact})


async def submit(conn: asyncpg.Connection, catalogue: Catalogue, req: ObjectionRequest, *,
                 kind: str = "objection", limits: handlers.Limits = GENEROUS,
                 client: str = "198.51.100.1") -> Any:
    return await handlers.submit(conn, catalogue, limits, kind, req, client)


async def refused(conn: asyncpg.Connection, catalogue: Catalogue, req: ObjectionRequest,
                  **kwargs: Any) -> Problem:
    with pytest.raises(Problem) as caught:
        await submit(conn, catalogue, req, **kwargs)
    return caught.value


async def outbox_events(conn: asyncpg.Connection) -> list[tuple[str, dict[str, Any]]]:
    """The events for other services and departments (not the requests' states for the
    subject's own view, tested apart)."""
    rows = await conn.fetch("SELECT topic, value FROM outbox WHERE topic <> $1 ORDER BY id",
                            REQUESTS_CHANGED.name)
    return [(r["topic"], json.loads(bytes(r["value"]))) for r in rows]


async def nothing_taken(conn: asyncpg.Connection) -> bool:
    return (await conn.fetchval("SELECT count(*) FROM objections") == 0
            and await conn.fetchval("SELECT count(*) FROM outbox") == 0)


# --- the projection of credit.records.accepted ------------------------------------------


async def test_the_projection_keeps_the_highest_revision_and_marks_withdrawals(
        tx: OpenTransaction) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("P-1", FIRM_A, 2)])
    await handlers.remember(conn, [accepted_message("P-1", FIRM_B, 1)])  # late, lower
    row = await conn.fetchrow("SELECT * FROM known_records WHERE record_id = 'P-1'")
    assert (row["subject_id"], row["revision"], row["withdrawn"]) == (FIRM_A, 2, False)
    assert row["catalogue_item"] == "amr.admin_penalty"

    await handlers.remember(conn, [accepted_message("P-1", FIRM_A, 3,
                                                    action="withdraw")])
    row = await conn.fetchrow("SELECT * FROM known_records WHERE record_id = 'P-1'")
    assert (row["revision"], row["withdrawn"], row["catalogue_item"]) == (
        3, True, "amr.admin_penalty")


async def test_a_replay_of_an_older_revision_brings_back_neither_its_row_nor_its_schedule(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    person = resident_id(sequence=401)
    first = accepted_message("P-2", person, 1, subject_type="individual",
                             decided_on=date(2026, 1, 5))
    second = accepted_message("P-2", person, 2, subject_type="individual",
                              decided_on=date(2026, 3, 9))

    async def kept() -> tuple[int, date]:
        row = await conn.fetchrow(
            "SELECT k.revision, p.purge_on FROM known_records k JOIN purge_schedule p"
            " USING (department, record_id) WHERE k.record_id = 'P-2'")
        return row["revision"], row["purge_on"]

    await handlers.remember(conn, [first], catalogue)
    once = await kept()
    await handlers.remember(conn, [second], catalogue)
    twice = await kept()
    assert once[0] == 1 and twice[0] == 2 and twice[1] > once[1]
    broken = InboundMessage(topic=RECORDS_ACCEPTED.name, partition=0, offset=10_000,
                            key=None, value=b"{not json", timestamp_ms=0)
    await handlers.remember(conn, [first, broken], catalogue)  # a replay of the topic
    assert await kept() == twice
    [(topic, letter)] = await outbox_events(conn)
    assert topic == "credit.deadletter.objection"
    assert letter["data"]["offset"] == broken.offset


# --- which requests are taken -----------------------------------------------------------


async def test_an_objection_about_a_known_record_names_its_real_subject_and_revision(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    # Stored as a department sent it before identifiers were normalized (lower-case x).
    assert PERSON.endswith("X")
    stored_id = PERSON[:-1] + "x"
    await handlers.remember(conn, [
        accepted_message("S-1", stored_id, 4, subject_type="individual")])
    created = await submit(conn, catalogue, request(
        "S-1", "".join(chr(ord(c) + 0xFEE0) for c in PERSON), subject_type="individual"))
    assert created.status == "routed"
    [(routed_topic, routed), (status_topic, status)] = await outbox_events(conn)
    assert routed_topic == "credit.objections.amr"
    assert routed["data"]["record"] == {"department": "amr", "record_id": "S-1",
                                        "revision": 4}
    assert routed["data"]["subject"]["id"] == stored_id
    assert status_topic == "credit.records.status"
    assert status["subject"] == f"individual:{stored_id}"
    assert status["data"]["subject"]["id"] == stored_id
    assert status["data"]["change"] == "flag"
    row = await conn.fetchrow("SELECT subject_key, revision, requester FROM objections")
    assert (row["subject_key"], row["revision"]) == (f"individual:{stored_id}", 4)
    assert row["requester"] == domain.requester_of("13800000000")


async def test_an_unknown_record_is_refused_and_nothing_is_stored(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("U-1", FIRM_A)])
    for req in (request("U-2"), request("U-1", department="tax")):
        problem = await refused(conn, catalogue, req)
        assert (problem.status, problem.code) == (422, "record_not_found")
        assert problem.errors == [{"field": "record.record_id", "code": "record_not_found",
                                   "message": "no record with this id at this department"}]
    assert await nothing_taken(conn)


async def test_a_record_of_another_subject_is_refused_and_nothing_is_stored(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("M-1", FIRM_A)])
    problem = await refused(conn, catalogue, request("M-1", FIRM_B))
    assert (problem.status, problem.code) == (422, "record_subject_mismatch")
    assert [(e["field"], e["code"]) for e in problem.errors or []] == [
        ("subject.id", "record_subject_mismatch")]
    assert FIRM_A not in json.dumps(problem.errors)
    assert await nothing_taken(conn)


async def test_a_withdrawn_record_is_not_found(tx: OpenTransaction,
                                               catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("W-1", FIRM_A, 1),
                                   accepted_message("W-1", FIRM_A, 2,
                                                    action="withdraw")])
    problem = await refused(conn, catalogue, request("W-1"))
    assert (problem.status, problem.code) == (422, "record_not_found")
    assert await nothing_taken(conn)


async def test_one_open_objection_per_record_and_requester(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("D-1", FIRM_A)])
    first = await submit(conn, catalogue, request("D-1", contact="138 0000 0000"))
    events = len(await outbox_events(conn))

    problem = await refused(conn, catalogue, request("D-1", contact="138-0000-0000"))
    assert (problem.status, problem.code) == (409, "objection_open")
    assert problem.extensions == {"objection_id": first.objection_id}
    assert await conn.fetchval("SELECT count(*) FROM objections") == 1
    assert len(await outbox_events(conn)) == events

    # Another requester, or a repair request by the same one, is a request of its own.
    await submit(conn, catalogue, request("D-1", contact="13900000000"))
    await handlers.remember(conn, [snapshot_message(FIRM_A, archived("D-1"))])
    repair = RepairRequest.model_validate({
        **request("D-1", contact="138 0000 0000").model_dump(mode="json"),
        "commitment": {"text_version": "2026-04", "signer_name": "张三",
                       "signer_role": "法定代表人", "signed_on": "2026-05-01"},
        "obligations": {"declaration": "罚款已缴清"}})
    await submit(conn, catalogue, repair, kind="repair")
    assert await conn.fetchval("SELECT count(*) FROM objections") == 3

    # Once the department has decided, the requester may object again.
    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=first.objection_id, decision="rejected", reason="经核查无误"))
    again = await submit(conn, catalogue, request("D-1", contact="13800000000"))
    assert again.objection_id != first.objection_id


async def test_too_many_requests_from_one_client_are_refused_failures_included(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("R-1", FIRM_A)])
    limits = handlers.Limits(domain.Rate(3, 3600), domain.Rate(1000, 3600))
    for _ in range(2):  # probing record ids counts
        problem = await refused(conn, catalogue, request("NO-SUCH"), limits=limits)
        assert problem.code == "record_not_found"
    await submit(conn, catalogue, request("R-1"), limits=limits)
    problem = await refused(conn, catalogue, request("R-1", contact="13900000000"),
                            limits=limits)
    assert (problem.status, problem.code) == (429, "rate_limited")
    assert 1 <= int((problem.headers or {})["Retry-After"]) <= 3600
    # Another client is counted apart.
    await submit(conn, catalogue, request("R-1", contact="13900000000"), limits=limits,
                 client="198.51.100.2")


async def test_too_many_requests_about_one_record_are_refused(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("R-2", FIRM_A),
                                   accepted_message("R-3", FIRM_A)])
    limits = handlers.Limits(domain.Rate(1000, 3600), domain.Rate(2, 60))
    # Requests that do not name the record's subject do not use up its budget...
    for _ in range(3):
        assert (await refused(conn, catalogue, request("R-2", FIRM_B),
                              limits=limits)).code == "record_subject_mismatch"
    for i in range(2):
        await submit(conn, catalogue, request("R-2", contact=f"1380000000{i}"),
                     limits=limits, client=f"198.51.100.{i}")
    problem = await refused(conn, catalogue, request("R-2", contact="13800000009"),
                            limits=limits, client="198.51.100.9")
    assert (problem.status, problem.code) == (429, "rate_limited")
    assert 1 <= int((problem.headers or {})["Retry-After"]) <= 60
    # ...and another record has its own.
    await submit(conn, catalogue, request("R-3", contact="13800000009"), limits=limits)


async def test_an_upheld_withdrawal_closes_the_record_to_new_objections(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("X-1", FIRM_A)])
    created = await submit(conn, catalogue, request("X-1"))
    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=created.objection_id, decision="upheld", reason="撤销", withdraw=True))
    problem = await refused(conn, catalogue, request("X-1", contact="13900000000"))
    assert problem.code == "record_not_found"
    # The record's accepted event again (a replay): the withdrawal stays.
    await handlers.remember(conn, [accepted_message("X-1", FIRM_A)])
    problem = await refused(conn, catalogue, request("X-1", contact="13700000000"))
    assert problem.code == "record_not_found"


async def test_a_decision_names_the_records_subject_as_it_now_is(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("V-1", FIRM_A)])
    created = await submit(conn, catalogue, request("V-1"))
    # The department corrects the record's subject (a new revision, through ingest).
    await handlers.remember(conn, [accepted_message("V-1", FIRM_B, 2)])
    await conn.execute("DELETE FROM outbox")
    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=created.objection_id, decision="rejected", reason="无误"))
    [(_, status)] = [e for e in await outbox_events(conn) if e[0] == "credit.records.status"]
    assert (status["data"]["change"], status["data"]["subject"]["id"]) == ("unflag", FIRM_B)


async def test_a_department_decision_is_passed_on_by_ingest_and_decided_by_objection(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    """The decision as the department sent it on its inbound topic: ingest passes it on
    (credit.decisions.received) with the department its topic names, and gives no feedback
    for it; objection decides on what ingest passed on."""
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("K-1", FIRM_A)])
    created = await submit(conn, catalogue, request("K-1"))
    await conn.execute("DELETE FROM outbox")
    decision = ObjectionDecision(objection_id=created.objection_id, decision="rejected",
                                 reason="核实无误")
    sent = OutboundEvent.of(DECISIONS.of("amr"), "dept/amr", f"enterprise:{FIRM_A}", decision)
    inbound = InboundMessage(topic=sent.topic, partition=0, offset=7, key=sent.key,
                             value=sent.value, timestamp_ms=0)
    ingest = await tx("ingest")
    await ingest_handlers.make_handler(context_of("ingest"))(ingest, [inbound])
    rows = await ingest.fetch("SELECT topic, key, value FROM outbox ORDER BY id")
    assert [(r["topic"], r["key"]) for r in rows] == [
        (DECISIONS_RECEIVED.name, f"enterprise:{FIRM_A}")]
    passed = json.loads(bytes(rows[0]["value"]))
    assert (passed["source"], passed["data"]) == (
        "xinyong/ingest", {"department": "amr", "sent": json.loads(sent.value)})

    await handlers.make_handler(context_of("objection"))(conn, [InboundMessage(
        topic=DECISIONS_RECEIVED.name, partition=0, offset=0, key=rows[0]["key"],
        value=bytes(rows[0]["value"]), timestamp_ms=0)])
    assert [(t, e["data"]["change"]) for t, e in await outbox_events(conn)
            if t == "credit.records.status"] == [("credit.records.status", "unflag")]
    assert await conn.fetchval("SELECT status FROM objections WHERE objection_id = $1",
                               created.objection_id) == "rejected"


async def test_a_decision_that_speaks_for_another_department_is_a_dead_letter(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    """Sent on amr's inbound topic, it claims tax's source: objection takes the department
    from the topic (through ingest), not from the event, and sets it aside."""
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("K-2", FIRM_A)])
    created = await submit(conn, catalogue, request("K-2"))
    await conn.execute("DELETE FROM outbox")
    await handlers.make_handler(context_of("objection"))(conn, [decision_message(
        "amr", f"enterprise:{FIRM_A}", ObjectionDecision(
            objection_id=created.objection_id, decision="rejected", reason="核实无误"),
        source="dept/tax")])
    [(topic, dead)] = await outbox_events(conn)
    assert topic == "credit.deadletter.objection"
    assert "'dept/tax' is not 'dept/amr'" in dead["data"]["reason"]
    assert await conn.fetchval("SELECT status FROM objections WHERE objection_id = $1",
                               created.objection_id) == "routed"


async def test_a_decision_of_any_bytes_is_passed_on_or_set_aside_never_stalls_ingest(
        tx: OpenTransaction, context_of: Callable[[str], ServiceContext]) -> None:
    """A key with NUL (PostgreSQL text refuses it) is passed on cleaned; text that strict
    JSON cannot carry (an unpaired surrogate, which the lenient parse let through) makes
    ingest's dead letter. Neither fails the batch."""
    conn = await tx("ingest")
    value = (b'{"specversion": "1.0", "id": "d-1", "source": "dept/amr", "type": '
             b'"cn.zhuhai.credit.objection.decided.v1", "time": "2026-11-01T00:00:00Z", '
             b'"data": {"objection_id": "x", "decision": "rejected", "reason": "%s"}}')
    messages = [InboundMessage(topic=DECISIONS.of("amr").name, partition=0, offset=n,
                               key="enterprise:\x00", value=value % reason, timestamp_ms=0)
                for n, reason in enumerate((b"ok", b"\\ud800"))]
    await ingest_handlers.make_handler(context_of("ingest"))(conn, messages)
    rows = await conn.fetch("SELECT topic, key, value FROM outbox ORDER BY id")
    assert [(r["topic"], r["key"]) for r in rows] == [
        (DECISIONS_RECEIVED.name, "enterprise:\N{REPLACEMENT CHARACTER}"),
        ("credit.deadletter.ingest", "enterprise:\N{REPLACEMENT CHARACTER}")]
    assert "could not be passed on" in json.loads(bytes(rows[1]["value"]))["data"]["reason"]


# --- an upheld objection without the corrected revision ------------------------------------


def status_changes(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    return [(e["data"]["change"], e["data"]["record_id"]) for topic, e in events
            if topic == RECORDS_STATUS.name]


async def test_an_upheld_objection_keeps_the_flag_until_the_corrected_revision_arrives(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    """Upheld over HTTP (which carries no corrected revision): the record the department
    agrees is wrong stays disputed; its next revision lifts the flag, once."""
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("C-1", FIRM_A, 1)])
    taken = await submit(conn, catalogue, request("C-1"))
    assert status_changes(await outbox_events(conn)) == [("flag", "C-1")]

    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=taken.objection_id, decision="upheld", reason="处罚决定金额有误"))
    assert status_changes(await outbox_events(conn)) == [("flag", "C-1")]
    assert await conn.fetchval("SELECT correction_awaited FROM objections") is True

    await handlers.remember(conn, [accepted_message("C-1", FIRM_A, 1)])  # a replay: not it
    assert status_changes(await outbox_events(conn)) == [("flag", "C-1")]
    await handlers.remember(conn, [accepted_message("C-1", FIRM_A, 2)])  # the correction
    await handlers.remember(conn, [accepted_message("C-1", FIRM_A, 3)])  # a later one
    assert status_changes(await outbox_events(conn)) == [("flag", "C-1"), ("unflag", "C-1")]
    assert await conn.fetchval("SELECT correction_awaited FROM objections") is False


async def test_an_upheld_objection_after_its_correction_lifts_the_flag_at_once(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("C-2", FIRM_A, 1)])
    taken = await submit(conn, catalogue, request("C-2"))
    await handlers.remember(conn, [accepted_message("C-2", FIRM_A, 2)])  # corrected first
    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=taken.objection_id, decision="upheld", reason="已更正"))
    assert status_changes(await outbox_events(conn)) == [("flag", "C-2"), ("unflag", "C-2")]
    assert await conn.fetchval("SELECT correction_awaited FROM objections") is False


# --- one objection's decision lifts no other's flag -----------------------------------------


async def test_a_rejected_objection_lifts_no_flag_another_holds(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    """Two open objections on one record (the subject's, and anyone's): the department
    rejecting one does not show the record undisputed while the other waits."""
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("F-1", FIRM_A, 1)])
    genuine = await submit(conn, catalogue, request("F-1", contact="13800000001"))
    frivolous = await submit(conn, catalogue, request("F-1", contact="13800000002"),
                             client="203.0.113.9")
    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=frivolous.objection_id, decision="rejected", reason="无新事实"))
    assert status_changes(await outbox_events(conn)) == [("flag", "F-1"), ("flag", "F-1")]
    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=genuine.objection_id, decision="rejected", reason="经核查无误"))
    assert status_changes(await outbox_events(conn))[-1] == ("unflag", "F-1")


async def test_objecting_again_to_a_revision_already_rejected_holds_nothing(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    """The department examined this revision on an objection and rejected it: a new
    objection about it is routed, but does not mark the record disputed again (which would
    hold a pending listing for as long as objections follow each other). A new revision may
    be objected to as before; an upheld repeat objection marks the record."""
    conn = await tx("objection")
    await handlers.remember(conn, [accepted_message("G-1", FIRM_A, 1)])
    first = await submit(conn, catalogue, request("G-1"))
    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=first.objection_id, decision="rejected", reason="经核查无误"))
    before = status_changes(await outbox_events(conn))
    assert before == [("flag", "G-1"), ("unflag", "G-1")]

    again = await submit(conn, catalogue, request("G-1"))
    assert again.status == "routed"
    routed = [e for topic, e in await outbox_events(conn) if topic == "credit.objections.amr"]
    assert routed[-1]["data"]["objection_id"] == again.objection_id
    assert status_changes(await outbox_events(conn)) == before
    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=again.objection_id, decision="upheld", reason="补充材料证实有误"))
    assert status_changes(await outbox_events(conn)) == [*before, ("flag", "G-1")]

    await handlers.remember(conn, [accepted_message("H-1", FIRM_A, 1)])
    other = await submit(conn, catalogue, request("H-1"))
    assert status_changes(await outbox_events(conn))[-1] == ("flag", "H-1")
    assert other.status == "routed"


# --- contacts are erased after the answer ---------------------------------------------------


async def test_contacts_of_answered_complaints_and_decided_objections_are_erased(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("objection")
    now = clock.now()
    for n, answered in enumerate((now - timedelta(days=200), now - timedelta(days=10), None)):
        await store.create_complaint(
            conn, complaint_id=str(uuid.uuid4()), about_kind="system", about={},
            about_key=f"system:{n}", subject=None, department=None, text="网站无法访问",
            contact=f"1380000000{n}", requester=f"r{n}", token_hash="t", due_by=date.today(),
            received_at=now - timedelta(days=300))
        if answered is not None:
            await conn.execute("UPDATE complaints SET status = 'answered', answered_at = $1"
                               " WHERE about_key = $2", answered, f"system:{n}")
    await handlers.remember(conn, [accepted_message("E-1", FIRM_A)])
    taken = await submit(conn, catalogue, request("E-1", contact="13900000009"))
    await handlers.decide(conn, "amr", ObjectionDecision(
        objection_id=taken.objection_id, decision="rejected", reason="经核查无误"))
    await conn.execute("UPDATE objections SET decided_at = $1", now - timedelta(days=200))

    assert await sweeps.erase_contacts(conn, now - timedelta(days=180), 100) == 2
    rows = await conn.fetch("SELECT about_key, contact, requester, contact_erased_at IS NOT NULL"
                            " AS erased FROM complaints ORDER BY about_key")
    assert [(r["about_key"], r["contact"], r["erased"]) for r in rows] == [
        ("system:0", None, True), ("system:1", "13800000001", False),
        ("system:2", "13800000002", False)]
    assert rows[0]["requester"] is None
    assert await conn.fetchval("SELECT contact FROM objections") is None
    assert await sweeps.erase_contacts(conn, now - timedelta(days=180), 100) == 0

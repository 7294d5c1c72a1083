"""Public credit commitments through ingest and the registry on a real PostgreSQL: a
commitment signed, breached (the grade falls), and every refusal ingest owes a department:
unknown kind or text version, no signer, a term already over, a breach of an unknown or an
already breached commitment, a subject type the item does not allow."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.ingest import handlers as ingest
from services.publisher.commitments import public_commitments
from services.registry import handlers as registry
from shared import clock
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import RecordSubmission, SubjectChanged, SubjectRef
from shared.envelope import submission_json
from shared.messages import InboundMessage, OutboundEvent
from shared.topics import COMMITMENTS_SIGNED
from tests.unit.factories import ENTERPRISE, PERSON, uscc

pytestmark = pytest.mark.db

ITEM = "industry.enterprise_commitment"
BODY = SubjectRef(type="government", id=uscc("11440400007000001"), name="珠海市某某局")


def commitment(record_id: str, revision: int = 1, subject: SubjectRef = ENTERPRISE,
               item: str = ITEM, breach: bool = False, **changes: Any) -> dict[str, Any]:
    today = clock.today()
    signed: dict[str, Any] = {"kind": "enterprise", "text_version": "2026-01",
                              "signer": {"name": "李明", "role": "法定代表人"},
                              "term_until": (today + timedelta(days=700)).isoformat()}
    signed.update(changes)
    attributes: dict[str, Any] = {"commitment": signed}
    if breach:
        attributes["breach"] = {"on": (today - timedelta(days=1)).isoformat(),
                                "document_no": "珠科工贸〔2026〕9号", "summary": "未履行承诺"}
    return {"record_id": record_id, "revision": revision, "action": "upsert",
            "catalogue_item": item, "subject": subject.model_dump(),
            "decided_on": (today - timedelta(days=30)).isoformat(), "district": "440402",
            "attributes": attributes}


def log(department: str, records: list[dict[str, Any]]) -> list[InboundMessage]:
    return [InboundMessage(topic=f"credit.inbound.{department}", partition=0, offset=i,
                           key=f"{r['subject']['type']}:{r['subject']['id']}",
                           value=submission_json(department, r, f"{department}-cm-{i}"),
                           timestamp_ms=0)
            for i, r in enumerate(records)]


async def run(conn: asyncpg.Connection, handler: Any, messages: list[InboundMessage]
              ) -> list[dict[str, Any]]:
    await handler(conn, messages)
    rows = await conn.fetch("DELETE FROM outbox RETURNING id, topic, value")
    return [{"topic": r["topic"], **json.loads(r["value"])}
            for r in sorted(rows, key=lambda r: r["id"])]


def feedback(events: list[dict[str, Any]]) -> list[tuple[str, set[tuple[str, str]]]]:
    return [(e["data"]["status"], {(x["field"], x["code"]) for x in e["data"]["errors"]})
            for e in events if e["topic"].startswith("credit.feedback.")]


async def test_signed_then_breached_lowers_the_grade_and_shows(
        tx: Callable[[str], Any], context_of: Callable[[str], ServiceContext],
        catalogue: Catalogue) -> None:
    ingest_conn = await tx("ingest")
    out = await run(ingest_conn, ingest.make_handler(context_of("ingest")), log("industry", [
        commitment("CM-1"), commitment("CM-1", revision=2, breach=True)]))
    assert feedback(out) == [("accepted", set()), ("accepted", set())]
    accepted = [e for e in out if e["topic"] == "credit.records.accepted"]
    registry_conn = await tx("registry")
    handle = registry.make_handler(context_of("registry"))
    snapshots = []
    for i, event in enumerate(accepted):
        message = InboundMessage(topic="credit.records.accepted", partition=0, offset=i,
                                 key=ENTERPRISE.key,
                                 value=json.dumps({k: v for k, v in event.items()
                                                   if k != "topic"}).encode(),
                                 timestamp_ms=0)
        snapshots += [SubjectChanged.model_validate(e["data"])
                      for e in await run(registry_conn, handle, [message])
                      if e["topic"] == "credit.subjects.changed"]
    kept, breached = snapshots
    assert kept.grade.grade == "B"
    assert breached.grade.grade == "C" and "违背企业守信公开承诺" in breached.grade.explanation[0]
    [shown] = public_commitments(catalogue, ENTERPRISE, breached.records, clock.today())
    assert shown["status"] == "breached" and shown["commitment_id"] == "CM-1"
    assert shown["breach"]["document_no"] == "珠科工贸〔2026〕9号"


async def test_every_refusal_names_its_field(
        tx: Callable[[str], Any], context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("ingest")
    handle = ingest.make_handler(context_of("ingest"))
    yesterday = (clock.today() - timedelta(days=1)).isoformat()
    out = await run(conn, handle, log("industry", [
        commitment("CM-2", kind="moon"),
        commitment("CM-3", text_version="1999"),
        commitment("CM-4", signer={"role": "法定代表人"}),
        commitment("CM-5", term_until=yesterday),
        commitment("CM-6", breach=True),                  # a breach of nothing signed
        commitment("CM-7"),
        commitment("CM-7", revision=2, breach=True),
        commitment("CM-7", revision=3, breach=True),      # already breached
        commitment("CM-8", subject=PERSON),               # not about a person
    ]))
    assert feedback(out) == [
        ("rejected", {("attributes.commitment.kind", "unknown_kind")}),
        ("rejected", {("attributes.commitment.text_version", "unknown_text_version")}),
        ("rejected", {("attributes.commitment.signer.name", "required")}),
        ("rejected", {("attributes.commitment.term_until", "term_over")}),
        ("rejected", {("attributes.breach", "unknown_commitment")}),
        ("accepted", set()),
        ("accepted", set()),
        ("rejected", {("attributes.breach", "already_breached")}),
        ("rejected", {("subject.type", "not_allowed")}),
    ]
    # The state survives the batch: a later batch is judged against the stored state.
    again = await run(conn, handle, log("industry", [
        commitment("CM-7", revision=4, breach=True),
        commitment("CM-7", revision=5)]))
    assert [s for s, _ in feedback(again)] == ["rejected", "rejected"]
    assert await conn.fetchval("SELECT commitment_state FROM records WHERE record_id = 'CM-7'"
                               ) == "breached"


async def test_a_withdrawn_commitment_cannot_be_breached(
        tx: Callable[[str], Any], context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("ingest")
    handle = ingest.make_handler(context_of("ingest"))
    withdraw = {"record_id": "CM-9", "revision": 2, "action": "withdraw",
                "subject": ENTERPRISE.model_dump()}
    out = await run(conn, handle, log("industry", [
        commitment("CM-9"), withdraw, commitment("CM-9", revision=3, breach=True)]))
    assert feedback(out)[2] == ("rejected", {("attributes.breach", "unknown_commitment")})


async def test_a_government_body_signs_a_service_commitment(
        tx: Callable[[str], Any], context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("ingest")
    out = await run(conn, ingest.make_handler(context_of("ingest")), log("supervision", [
        commitment("SC-1", subject=BODY, item="supervision.service_commitment",
                   kind="government_service")]))
    assert feedback(out) == [("accepted", set())]


def from_publisher(record: dict[str, Any], source: str = "xinyong/publisher") -> InboundMessage:
    event = OutboundEvent.of(COMMITMENTS_SIGNED, source, ENTERPRISE.key,
                             RecordSubmission.model_validate(record),
                             event_id=f"me-commitment/{record['record_id']}")
    return InboundMessage(topic=COMMITMENTS_SIGNED.name, partition=0, offset=0,
                          key=event.key, value=event.value, timestamp_ms=0)


async def test_a_subjects_own_commitment_is_recorded_under_the_platform_department(
        tx: Callable[[str], Any], context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("ingest")
    handle = ingest.make_handler(context_of("ingest"))
    own = commitment("CM-ME-1", item="ndrc.conduct_commitment", kind="conduct")
    out = await run(conn, handle, [from_publisher(own)])
    assert feedback(out) == [("accepted", set())]
    [accepted] = [e for e in out if e["topic"] == "credit.records.accepted"]
    assert accepted["data"]["department"] == "ndrc"
    assert [e["topic"] for e in out if e["topic"].startswith("credit.feedback.")] == [
        "credit.feedback.ndrc"]
    # Only the publisher passes them on, and only the platform's item.
    forged = await run(conn, handle, [from_publisher(
        commitment("CM-ME-2", item="ndrc.conduct_commitment", kind="conduct"),
        source="dept/ndrc")])
    assert feedback(forged) == [("rejected", {("envelope.source", "wrong_department")})]
    other = await run(conn, handle, [from_publisher(commitment("CM-ME-3"))])
    assert ("catalogue_item", "not_allowed") in feedback(other)[0][1]

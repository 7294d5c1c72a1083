"""Bad input on the real broker and database (issue 6, item 7): over Kafka each case gets
exactly one feedback and never stops ingest; over HTTP each is answered, never with a 500.
Plus the outbox setting aside an event the broker refuses, and dead letters that name their
stored body."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy import credentials
from deploy.stack import ServiceProcess
from services.ingest.api import MAX_BODY
from services.ingest.domain import ATTRIBUTES_MAX_BYTES
from shared.contract import REVISION_MAX
from shared.envelope import submission_json
from shared.settings import REPO_ROOT, Settings
from tests import polling
from tests.integration import kit
from tests.integration.conftest import ENV, TopicWatcher
from tests.integration.helpers import enterprise, individual, key_of, record
from tests.integration.kit import feedback_for, send

pytestmark = pytest.mark.integration


def errors_of(feedback: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["field"], e["code"]) for e in feedback["errors"]}


def full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def penalty(**fields: Any) -> dict[str, Any]:
    """A market-regulation penalty about a new firm, with `fields` in place."""
    return record(enterprise(), "amr.admin_penalty") | fields


def superscript_two(resident_id: str) -> str:
    """The helpers' identity numbers start 440402: the 2 at index 5, written `²`."""
    assert resident_id[5] == "2"
    return resident_id[:5] + "²" + resident_id[6:]


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def the_feedback(watcher: TopicWatcher, dept: str, record_id: str) -> dict[str, Any]:
    """The one feedback of a record sent once: waits for it, then makes sure no second one
    follows."""
    [fb] = await watcher.wait_for(f"credit.feedback.{dept}", feedback_for(record_id))
    await asyncio.sleep(0.3)
    assert len([e for e in watcher.events[f"credit.feedback.{dept}"]
                if feedback_for(record_id)(e)]) == 1
    data: dict[str, Any] = fb["data"]
    return data


# --- over Kafka -----------------------------------------------------------------------------


async def test_full_width_and_superscript_identifiers_are_accepted_in_their_one_form(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    firm, person = enterprise(), individual()
    wide = record(firm, "amr.admin_penalty")
    wide["subject"]["id"] = full_width(firm.id.lower())
    sup = record(person, "court.dishonest_debtor")
    sup["subject"]["id"] = superscript_two(person.id)
    await send(producer, settings, "amr", wide)
    await send(producer, settings, "court", sup)

    assert (await the_feedback(watcher, "amr", wide["record_id"]))["status"] == "accepted"
    assert (await the_feedback(watcher, "court", sup["record_id"]))["status"] == "accepted"
    for data, subject in ((wide, firm), (sup, person)):
        [accepted] = await watcher.wait_for(
            "credit.records.accepted",
            lambda e, d=data: e["data"]["submission"]["record_id"] == d["record_id"])
        assert accepted["data"]["submission"]["subject"]["id"] == subject.id
        assert accepted["subject"] == f"{subject.type}:{subject.id}"


async def test_every_bad_case_gets_exactly_one_feedback_naming_the_field(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    topic = settings.topic("credit.inbound.amr")
    cases: list[tuple[dict[str, Any], bytes | None, tuple[str, str]]] = []

    def case(expect: tuple[str, str], key: bytes | None = None, **fields: Any) -> None:
        data = penalty(**fields)
        cases.append((data, key or key_of(data), expect))

    case(("subject.id", "characters"), subject={"type": "enterprise", "id": "珠海-123",
                                                 "name": "珠海"})
    case(("attributes", "too_deep"), attributes=nested(250))
    case(("attributes", "too_large"), attributes={"x": "字" * (ATTRIBUTES_MAX_BYTES // 3)})
    case(("revision", "less_than_equal"), revision=REVISION_MAX + 1)
    case(("summary", "nul_character"), summary="违法\x00事实")
    case(("attributes.note", "nul_character"), attributes={"note": "\x00"})
    case(("key", "nul_character"), key=b"enterprise:\x00")
    for data, key, _ in cases:
        await producer.send_and_wait(topic, submission_json("amr", data), key=key)
    # Ingest is still there after all of them: the next record is accepted.
    after = record(enterprise(), "amr.admin_penalty")
    await send(producer, settings, "amr", after)

    for data, _, expect in cases:
        fb = await the_feedback(watcher, "amr", data["record_id"])
        assert fb["status"] == "rejected"
        assert expect in errors_of(fb), (expect, fb["errors"])
    assert (await the_feedback(watcher, "amr", after["record_id"]))["status"] == "accepted"


async def test_nul_in_the_envelope_is_unparseable_with_one_feedback_and_a_stored_dead_letter(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        db: Any) -> None:
    data = record(enterprise(), "amr.admin_penalty")
    doc = json.loads(submission_json("amr", data))
    doc["id"] = "ev\x00" + doc["id"]
    value = json.dumps(doc).encode()
    key = key_of(data)
    sent = await producer.send_and_wait(settings.topic("credit.inbound.amr"), value, key=key)
    after = record(enterprise(), "amr.admin_penalty")
    await send(producer, settings, "amr", after)

    def at_position(e: dict[str, Any]) -> bool:
        raw = e["data"].get("raw") or {}
        return (raw.get("partition"), raw.get("offset")) == (sent.partition, sent.offset)

    [fb] = await watcher.wait_for("credit.feedback.amr", at_position)
    assert fb["data"]["status"] == "rejected" and fb["data"]["event_id"] is None
    assert ("envelope.id", "nul_character") in errors_of(fb["data"])
    [dead] = await watcher.wait_for(
        "credit.deadletter.ingest",
        lambda e: (e["data"]["partition"], e["data"]["offset"]) == (sent.partition,
                                                                     sent.offset))
    letter = dead["data"]
    assert "value_base64" not in letter
    assert (letter["size"], letter["sha256"]) == (len(value), hashlib.sha256(value).hexdigest())
    stored = await db("ingest").fetchrow("SELECT key, value FROM dead_letters WHERE id = $1",
                                         letter["stored_id"])
    assert (bytes(stored["key"]), bytes(stored["value"])) == (key, value)
    assert (await the_feedback(watcher, "amr", after["record_id"]))["status"] == "accepted"
    await asyncio.sleep(0.3)
    assert len([e for e in watcher.events["credit.feedback.amr"] if at_position(e)]) == 1


async def test_an_event_the_broker_refuses_is_set_aside_and_the_outbox_goes_on(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        db: Any) -> None:
    """A row over the broker's size limit (written straight into the outbox, past the cap
    that `enqueue` applies: as a row from before the cap would be) is set aside with its
    error; the events after it leave; the operators' commands list and replay it."""
    ingest = db("ingest")
    event_id = f"oversized-{time.monotonic_ns()}"
    await ingest.execute("INSERT INTO outbox (event_id, topic, key, value)"
                         " VALUES ($1, 'credit.feedback.amr', 'k', $2)",
                         event_id, b"x" * 1_100_000)
    after = record(enterprise(), "amr.admin_penalty")
    await send(producer, settings, "amr", after)
    assert (await the_feedback(watcher, "amr", after["record_id"]))["status"] == "accepted"
    row = await poll_row(ingest, event_id)
    assert row["error"].startswith("MessageSizeTooLargeError")
    assert await ingest.fetchval("SELECT count(*) FROM outbox WHERE event_id = $1",
                                 event_id) == 0

    listed = cli("outbox", "list", "ingest")
    assert f"#{row['id']}" in listed and event_id in listed and "1100000 bytes" in listed
    assert cli("outbox", "replay", "ingest", "--id", str(row["id"])).strip() == (
        "ingest: 1 moved back to the outbox")
    again = await poll_row(ingest, event_id, newer_than=row["id"])  # still too large
    assert again["error"].startswith("MessageSizeTooLargeError")
    await ingest.execute("DELETE FROM outbox_set_aside WHERE event_id = $1", event_id)


async def poll_row(conn: Any, event_id: str, newer_than: int = 0) -> Any:
    return await polling.until(lambda: conn.fetchrow(
        "SELECT * FROM outbox_set_aside WHERE event_id = $1 AND id > $2", event_id,
        newer_than), "the row is set aside", timeout=30, interval=0.1)


def cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=REPO_ROOT,
                          env={**os.environ, **ENV}, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


# --- over HTTP ------------------------------------------------------------------------------


async def _token(settings: Settings, base: str) -> dict[str, str]:
    token = (await credentials.issue(settings, "department", "amr")).token
    async with httpx.AsyncClient() as client:
        await kit.until_answer(lambda: client.post(
            base + "/api/v1/records", json={}, headers={"Authorization": f"Bearer {token}"}),
            lambda r: r.status_code != 401, "the token reaches ingest")
    return {"Authorization": f"Bearer {token}"}


async def test_bad_records_over_http_are_answered_never_a_500(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    base = services["ingest"].url()
    auth = await _token(settings, base)
    firm, person = enterprise(), individual()
    wide = record(firm, "amr.admin_penalty")
    wide["subject"]["id"] = full_width(firm.id)
    sup = record(enterprise(), "amr.legal_representative", attributes={
        "legal_representative": {"id": superscript_two(person.id), "name": person.name}})
    bad: list[tuple[bytes, tuple[str, str]]] = [
        (json.dumps(penalty(revision=2**31)).encode(), ("revision", "less_than_equal")),
        (json.dumps(penalty(attributes=nested(900))).encode(), ("attributes", "too_deep")),
        (json.dumps(penalty(summary="a\x00b")).encode(), ("summary", "nul_character")),
        (json.dumps(penalty(summary="SURROGATE")).encode().replace(b"SURROGATE", b"\\ud800"),
         ("summary", "unpaired_surrogate")),
        (json.dumps(penalty(subject={"type": "enterprise", "id": "９１４４０４００²",
                                     "name": "x"})).encode(), ("subject.id", "length")),
    ]
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=60) as client:
        for good in (wide, sup):
            r = await client.post("/api/v1/records", json=good)
            assert r.status_code == 200, r.text
            result = r.json()["results"][0]
            assert result["status"] == "accepted", result
        history = await client.get(f"/api/v1/records/amr/{wide['record_id']}/submissions")
        assert [h["status"] for h in history.json()] == ["accepted"]

        for body, expect in bad:
            r = await client.post("/api/v1/records", content=body,
                                  headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text
            [result] = r.json()["results"]
            assert result["status"] == "rejected"
            assert expect in {(e["field"], e["code"]) for e in result["errors"]}, result

        too_deep = await client.post("/api/v1/records", content=b'{"a":' * 100_000)
        assert too_deep.status_code == 400 and too_deep.json()["code"] == "unparseable"

        csv_text = ("record_id,revision,action,subject.type,subject.id\n"
                    f"CSV-1,²,withdraw,enterprise,{firm.id}\n"
                    f"CSV-2,{2**31},withdraw,enterprise,{firm.id}\n"
                    f"CSV-3,1,withdraw,enterprise,{firm.id}\x00\n"
                    f"CSV-4,1,withdraw,enterprise,{full_width(firm.id)}\n")
        r = await client.post("/api/v1/records:batch", content=csv_text.encode(),
                              headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["rejected", "rejected", "rejected",
                                                  "accepted"]
        assert [errors_of(x) for x in results[:3]] == [
            {("revision", "int_parsing")}, {("revision", "less_than_equal")},
            {("subject.id", "nul_character")}]

        long_key = await client.post("/api/v1/records", json=wide,
                                     headers={"Idempotency-Key": "k" * 129})
        assert long_key.status_code == 422
        nul_path = await client.get("/api/v1/records/amr/a%00b/submissions")
        assert nul_path.status_code == 404 and nul_path.json()["code"] == "not_found"


async def test_a_body_over_the_cap_is_refused_by_its_declared_length_before_it_is_read(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    service = services["ingest"]
    auth = await _token(settings, service.url())
    reader, writer = await asyncio.open_connection(settings.http_host,
                                                   settings.http_port("ingest"))
    writer.write((f"POST /api/v1/records HTTP/1.1\r\nHost: ingest\r\n"
                  f"Authorization: {auth['Authorization']}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n"
                  "{").encode())
    await writer.drain()
    # Answered with one byte of the body sent: it did not wait for the rest.
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    assert status_line.split()[1] == b"413"


async def test_a_chunked_body_over_the_cap_is_cut_off_while_it_is_read(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    """No Content-Length: the body is counted as it streams in, and refused once past the
    cap, while the client is still sending."""
    auth = await _token(settings, services["ingest"].url())
    reader, writer = await asyncio.open_connection(settings.http_host,
                                                   settings.http_port("ingest"))
    writer.write((f"POST /api/v1/records HTTP/1.1\r\nHost: ingest\r\n"
                  f"Authorization: {auth['Authorization']}\r\n"
                  "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                  ).encode())
    status = asyncio.create_task(reader.readline())
    chunk = b" " * (1024 * 1024)
    sent = 0
    try:
        while not status.done() and sent <= 2 * MAX_BODY:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await asyncio.wait_for(writer.drain(), timeout=10)
            sent += len(chunk)
    except (ConnectionError, TimeoutError):
        pass  # the server stopped reading: its answer is on the way
    status_line = await asyncio.wait_for(status, timeout=10)
    writer.close()
    assert status_line.split()[1] == b"413"
    assert MAX_BODY < sent < 2 * MAX_BODY

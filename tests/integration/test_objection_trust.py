"""Objections can only be about a record's real subject, and the public forms resist abuse:
the four services on the real broker and database (issue 6, items 1 and 6)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.stack import ServiceProcess
from shared.contract import RecordStatusChanged
from shared.messages import OutboundEvent
from shared.settings import Settings
from shared.topics import RECORDS_STATUS
from tests.integration.conftest import TopicWatcher
from tests.integration.helpers import enterprise, record
from tests.integration.kit import (
    as_client,
    feedback_for,
    once_record_known,
    poll_json,
    send,
    send_raw,
    token_header,
)

pytestmark = pytest.mark.integration


def objection(subject_id: str, department: str, record_id: str,
              contact: str = "13800000000", **extra: Any) -> dict[str, Any]:
    return {"subject": {"type": "enterprise", "id": subject_id},
            "record": {"department": department, "record_id": record_id},
            "reason": "该信息与事实不符", "contact": contact, **extra}


async def accepted_record(settings: Settings, producer: AIOKafkaProducer,
                          watcher: TopicWatcher, department: str = "amr",
                          item: str = "amr.admin_penalty") -> tuple[str, dict[str, Any]]:
    """A firm and one record about it that ingest has accepted."""
    firm = enterprise()
    data = record(firm, item)
    await send(producer, settings, department, data)
    [fb] = await watcher.wait_for(f"credit.feedback.{department}",
                                  feedback_for(data["record_id"]))
    assert fb["data"]["status"] == "accepted", fb
    return firm.id, data


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url)


def about(subject_id: str) -> Any:
    return lambda e: (e.get("data") or {}).get("subject", {}).get("id") == subject_id


async def _at_least_left_in_window(seconds: int, left: float) -> None:
    """Wait for the next fixed window when fewer than `left` seconds remain in this one, so
    that a test's requests all fall in one window."""
    remaining = seconds - time.time() % seconds
    if remaining < left:
        await asyncio.sleep(remaining + 0.5)


async def test_an_objection_about_another_firms_record_is_refused_and_changes_nothing(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    """The exploit: an objection naming firm B on firm A's record used to list B, send
    penalty notices against B and delist A."""
    firm_a, data = await accepted_record(settings, producer, watcher, "court",
                                         "court.dishonest_debtor")
    firm_b = enterprise().id
    await watcher.wait_for("credit.notices.land", about(firm_a))
    publisher = services["publisher"].url()
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        r = await once_record_known(lambda: client.post(
            "/api/v1/objections", json=objection(firm_b, "court", data["record_id"])))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "record_subject_mismatch"
        assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [
            ("subject.id", "record_subject_mismatch")]
        assert firm_a not in r.text  # the answer does not say whose record it is

        # A's own objection afterwards: once its flag shows, anything the refused one had
        # sent would have arrived before it.
        own = await client.post("/api/v1/objections",
                                json=objection(firm_a, "court", data["record_id"]))
        assert own.status_code == 201, own.text
    profile = (await poll_json(f"{publisher}/api/v1/subjects/enterprise/{firm_a}",
                               lambda r: r.json()["records"][0]["disputed"] is True)).json()
    assert [e["list"] for e in profile["lists"]] == ["court.dishonest_debtor"]

    assert (await get(f"{publisher}/api/v1/subjects/enterprise/{firm_b}")).status_code == 404
    assert await db("registry").fetchval(
        "SELECT count(*) FROM subjects WHERE subject_key = $1", f"enterprise:{firm_b}") == 0
    assert await db("publisher").fetchval(
        "SELECT count(*) FROM list_entries WHERE subject_key = $1",
        f"enterprise:{firm_b}") == 0
    assert await db("objection").fetchval(
        "SELECT count(*) FROM objections WHERE subject_key = $1", f"enterprise:{firm_b}") == 0
    for topic, events in watcher.events.items():
        if topic.startswith(("credit.notices.", "credit.lists.changed", "credit.objections.",
                             "credit.records.status")):
            assert not [e for e in events if about(firm_b)(e)], topic
    assert not [e for e in watcher.events["credit.notices.land"]
                if about(firm_a)(e) and e["data"]["kind"] == "revocation"]


async def test_a_forged_status_change_is_dead_lettered_by_the_registry(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any, producer_as: Any) -> None:
    """Only the objection service may write credit.records.status (ACLs): the forgery comes
    from its principal, as a bug or a compromise of that service would send it."""
    firm_a, data = await accepted_record(settings, producer, watcher, "court",
                                         "court.dishonest_debtor")
    firm_b = enterprise().id
    await watcher.wait_for("credit.notices.land", about(firm_a))
    forged = RecordStatusChanged(change="flag", department="court",
                                 record_id=data["record_id"],
                                 subject={"type": "enterprise", "id": firm_b},
                                 objection_id=str(uuid.uuid4()))
    nowhere = forged.model_copy(update={"record_id": f"NOWHERE-{uuid.uuid4().hex[:8]}"})
    for payload in (forged, nowhere):
        event = OutboundEvent.of(RECORDS_STATUS, "xinyong/objection", f"enterprise:{firm_b}",
                                 payload)
        await send_raw(await producer_as("objection"), settings, RECORDS_STATUS.name,
                       event.value, f"enterprise:{firm_b}".encode())

    await watcher.wait_for(
        "credit.deadletter.registry",
        lambda e: e["data"]["topic"] == "credit.records.status"
        and f"enterprise:{firm_b}" in e["data"]["reason"]
        and data["record_id"] in e["data"]["reason"])
    await watcher.wait_for(
        "credit.deadletter.registry",
        lambda e: nowhere.record_id in e["data"]["reason"]
        and "does not hold" in e["data"]["reason"])
    # Applied (as a dead letter) in a committed batch: nothing else changed.
    row = await db("registry").fetchrow(
        "SELECT subject_key, body::text FROM records WHERE department = 'court'"
        " AND record_id = $1", data["record_id"])
    assert row["subject_key"] == f"enterprise:{firm_a}"
    assert '"disputed":false' in row["body"].replace(" ", "")
    assert await db("registry").fetchval(
        "SELECT count(*) FROM subjects WHERE subject_key = $1", f"enterprise:{firm_b}") == 0
    profile = (await get(
        f"{services['publisher'].url()}/api/v1/subjects/enterprise/{firm_a}")).json()
    assert [e["list"] for e in profile["lists"]] == ["court.dishonest_debtor"]
    assert not [e for e in watcher.events["credit.notices.land"] if about(firm_b)(e)]


async def test_an_unknown_record_is_refused(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    firm, data = await accepted_record(settings, producer, watcher)
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        await once_record_known(lambda: client.post(
            "/api/v1/repairs", json=objection(firm, "amr", data["record_id"])))
        for body in (objection(firm, "amr", data["record_id"] + "-NO"),
                     objection(firm, "tax", data["record_id"])):
            r = await client.post("/api/v1/objections", json=body)
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "record_not_found"
            assert r.json()["errors"][0]["field"] == "record.record_id"
    assert await db("objection").fetchval(
        "SELECT count(*) FROM objections WHERE subject_key = $1 AND kind = 'objection'",
        f"enterprise:{firm}") == 0


async def test_one_open_objection_per_record_and_requester(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    firm, data = await accepted_record(settings, producer, watcher)
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        first = await once_record_known(lambda: client.post(
            "/api/v1/objections",
            json=objection(firm, "amr", data["record_id"], "Li.Lei@Example.com")))
        assert first.status_code == 201, first.text
        again = await client.post("/api/v1/objections", json=objection(
            firm.lower(), "amr", data["record_id"], " lilei@example.COM "))
        assert again.status_code == 409, again.text
        assert again.json()["code"] == "objection_open"
        assert again.json()["objection_id"] == first.json()["objection_id"]
        other = await client.post("/api/v1/objections", json=objection(
            firm, "amr", data["record_id"], "hanmeimei@example.com"))
        assert other.status_code == 201, other.text
    await watcher.wait_for("credit.objections.amr", about(firm), count=2)
    await asyncio.sleep(0.5)
    assert len([e for e in watcher.events["credit.objections.amr"] if about(firm)(e)]) == 2


async def test_too_many_requests_from_one_client(services: dict[str, ServiceProcess],
                                                 settings: Settings) -> None:
    """The test stack allows 40 a minute per client (tests/integration/conftest.py)."""
    limit = 40
    client_headers = as_client()
    await _at_least_left_in_window(60, 20)
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=client_headers) as client:
        body = objection(enterprise().id, "amr", "PROBE-1")
        answers = [await client.post("/api/v1/objections", json=body) for _ in range(limit)]
        assert {r.json()["code"] for r in answers} == {"record_not_found"}
        limited = await client.post("/api/v1/objections", json=body)
        assert limited.status_code == 429, limited.text
        assert limited.json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        # The form counts against the same budget, and answers in HTML.
        form = await client.post("/objections/new", data={
            "type": "enterprise", "id": enterprise().id, "department": "amr",
            "record_id": "PROBE-1", "reason": "信息有误", "contact": "13800000000"})
        assert form.status_code == 429 and "Retry-After" in form.headers
        assert 'lang="zh-CN"' in form.text
        # Another address behind the trusted proxy has a budget of its own.
        other = await client.post("/api/v1/objections", json=body, headers=as_client())
        assert other.status_code == 422


async def test_too_many_requests_about_one_record(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    """The default: 10 an hour that name a record and its subject correctly, from any
    number of clients and requesters."""
    limit = 10
    firm, data = await accepted_record(settings, producer, watcher)
    await _at_least_left_in_window(3600, 60)
    async with httpx.AsyncClient(base_url=services["objection"].url()) as client:
        body = objection(firm, "amr", data["record_id"])
        first = await once_record_known(lambda: client.post(
            "/api/v1/objections", json=body, headers=as_client()))
        assert first.status_code == 201, first.text
        for i in range(1, limit):
            r = await client.post("/api/v1/objections", headers=as_client(),
                                  json={**body, "contact": f"1390000{i:04d}"})
            assert r.status_code == 201, r.text
        limited = await client.post("/api/v1/objections", headers=as_client(),
                                    json={**body, "contact": "13700000000"})
        assert limited.status_code == 429, limited.text
        assert 1 <= int(limited.headers["Retry-After"]) <= 3600


async def test_bodies_over_the_cap_are_refused_before_they_are_read(
        services: dict[str, ServiceProcess], settings: Settings) -> None:
    cap = settings.objection_body_max_bytes
    host, port = settings.http_host, settings.http_port("objection")

    async def exchange(head: str, chunks: list[bytes]) -> bytes:
        """Send a request and read the answer. Callers send no more than it takes to pass
        the cap: bytes the server never reads would make it reset the connection, which
        could drop its answer."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(head.encode())
            for chunk in chunks:
                writer.write(chunk)
            await writer.drain()
            # The answer, read by its length: the server may keep the connection open.
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            return head + await asyncio.wait_for(reader.readexactly(length), timeout=10)
        finally:
            writer.close()

    # Declared too large, and not one byte of the body sent: answered anyway.
    answer = await exchange(
        f"POST /api/v1/objections HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {cap * 100}\r\n\r\n", [])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer and b'"too_large"' in answer

    # Chunked, no length declared: read up to the cap, then refused.
    chunk = b"x" * 16384
    answer = await exchange(
        "POST /objections/new HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        # One chunk past the cap, and no end: the server must answer without the rest.
        [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * (cap // len(chunk) + 1))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    # Within the cap, a field over its bound is named.
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        r = await client.post("/api/v1/objections", json=objection(
            enterprise().id, "amr", "X-1", reason="长" * 4001))
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["reason"]
        r = await client.post("/api/v1/objections", json=objection(
            enterprise().id, "amr", "X-1", reason="a\x00b"))
        assert r.status_code == 422
        assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [
            ("reason", "nul_character")]


async def test_the_follow_up_token_is_taken_from_the_header_only(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    firm, data = await accepted_record(settings, producer, watcher)
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        created = (await once_record_known(lambda: client.post(
            "/api/v1/objections", json=objection(firm, "amr", data["record_id"])))).json()
        path = f"/api/v1/objections/{created['objection_id']}"
        by_query = await client.get(path, params={"token": created["access_token"]})
        assert by_query.status_code == 404
        by_header = await client.get(path, headers=token_header(created["access_token"]))
        assert by_header.status_code == 200
        assert by_header.json()["record"]["record_id"] == data["record_id"]

"""The HTTP side of the contract for departments and agencies, with operator-issued bearer
tokens, on the real broker and database."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy import credentials
from deploy.stack import ServiceProcess
from shared.settings import Settings
from tests.integration import kit
from tests.integration.conftest import TopicWatcher, wait_until_accepted
from tests.integration.helpers import enterprise, record
from tests.integration.kit import as_client, feedback_for, once_record_known, poll_json, send

pytestmark = pytest.mark.integration


async def _accepted_token(settings: Settings, kind: Any, party: str, url: str) -> str:
    """Issue a token and wait until the service has it (it arrives through Kafka)."""
    issued = await credentials.issue(settings, kind, party)
    await wait_until_accepted(issued.token, url, "POST")
    return issued.token


async def test_records_over_http_with_a_department_token(
        settings: Settings, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    base = services["ingest"].url()
    token = await _accepted_token(settings, "department", "amr", base + "/api/v1/records")
    auth = {"Authorization": f"Bearer {token}"}
    good = record(enterprise(), "amr.admin_penalty")
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/api/v1/records", json=good, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["status"] == "accepted"
        [fb] = await watcher.wait_for("credit.feedback.amr", feedback_for(good["record_id"]))
        assert fb["data"]["status"] == "accepted"

        again = await client.post("/api/v1/records", json=good, headers=auth)
        assert again.json()["results"][0]["status"] == "duplicate"

        court_item = record(enterprise(), "court.dishonest_debtor")
        r = await client.post("/api/v1/records", json=court_item, headers=auth)
        assert r.json()["results"][0]["status"] == "rejected"
        assert {(e["field"], e["code"]) for e in r.json()["results"][0]["errors"]} >= {
            ("catalogue_item", "wrong_department")}

        anonymous = await client.post("/api/v1/records", json=good)
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"].startswith("application/problem+json")
        assert anonymous.headers["www-authenticate"] == "Bearer"

        garbage = await client.post("/api/v1/records", content=b"{not json", headers=auth)
        assert garbage.status_code == 400 and garbage.json()["code"] == "unparseable"


async def test_csv_batch_answers_per_row(settings: Settings,
                                         services: dict[str, ServiceProcess]) -> None:
    base = services["ingest"].url()
    token = await _accepted_token(settings, "department", "amr", base + "/api/v1/records")
    ok, bad = enterprise("珠海市批量甲有限公司"), enterprise("珠海市批量乙有限公司")
    bad_id = bad.id[:-1] + ("0" if bad.id[-1] != "0" else "1")
    csv_text = (
        "record_id,revision,action,catalogue_item,subject.type,subject.id,subject.name,"
        "decided_on,document_no,district,attributes\n"
        f"CSV-{ok.id},1,upsert,amr.admin_penalty,enterprise,{ok.id},{ok.name},2026-10-01,"
        '珠市监罚〔2026〕1号,440402,"{""penalty_class"": ""small_fine"", ""amount"": 5000}"\n'
        f"CSV-{bad.id},1,upsert,amr.admin_penalty,enterprise,{bad_id},{bad.name},2026-10-01,"
        "珠市监罚〔2026〕2号,440402,\n"
        f"CSV-X-{ok.id},one,upsert,amr.admin_penalty,enterprise,{ok.id},{ok.name},2026-10-01,"
        "珠市监罚〔2026〕3号,440402,\n")
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/api/v1/records:batch", content=csv_text.encode(),
                              headers={"Authorization": f"Bearer {token}",
                                       "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [x["status"] for x in answer["results"]] == ["accepted", "rejected", "rejected"]
    assert ("subject.id", "checksum") in {(e["field"], e["code"])
                                          for e in answer["results"][1]["errors"]}
    assert [(e["field"], e["code"]) for e in answer["results"][2]["errors"]] == [
        ("revision", "int_parsing")]
    assert (answer["accepted"], answer["rejected"]) == (1, 2)


async def test_revoked_token_is_refused(settings: Settings,
                                        services: dict[str, ServiceProcess]) -> None:
    base = services["ingest"].url()
    token = await _accepted_token(settings, "department", "tax", base + "/api/v1/records")
    await credentials.revoke(settings, token.removeprefix("xyt_").split(".")[0])
    await poll_json(base + "/healthz", lambda r: True)
    async with httpx.AsyncClient(base_url=base) as client:
        await kit.until_answer(lambda: client.post(
            "/api/v1/records", json={}, headers={"Authorization": f"Bearer {token}"}),
            lambda r: r.status_code == 401, "the revocation takes effect")


async def test_agency_feedback_and_department_decision_over_http(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    firm = enterprise()
    data = record(firm, "court.dishonest_debtor")
    await send(producer, settings, "court", data)
    [notice] = await watcher.wait_for("credit.notices.land",
                                      lambda e: e["data"]["subject"]["id"] == firm.id)
    notice_id = notice["data"]["notice_id"]
    publisher = services["publisher"].url()
    probe = f"{publisher}/api/v1/notices/{notice_id}/feedback"
    land = await _accepted_token(settings, "agency", "land", probe)
    bidding = await _accepted_token(settings, "agency", "housing-bidding", probe)
    async with httpx.AsyncClient() as client:
        r = await client.post(probe, json={"status": "applied", "note": "已限制竞买"},
                              headers={"Authorization": f"Bearer {land}"})
        assert r.status_code == 200, r.text
        other = await client.post(probe, json={"status": "applied"},
                                  headers={"Authorization": f"Bearer {bidding}"})
        assert other.status_code == 404
    assert await db("publisher").fetchval(
        "SELECT feedback_status FROM notices WHERE notice_id = $1::uuid", notice_id) == "applied"

    objection = services["objection"].url()
    async with httpx.AsyncClient(base_url=objection, headers=as_client()) as client:
        created = (await once_record_known(lambda: client.post("/api/v1/objections", json={
            "subject": {"type": "enterprise", "id": firm.id},
            "record": {"department": "court", "record_id": data["record_id"]},
            "reason": "已履行完毕", "contact": "13900000000"}))).json()
        path = f"/api/v1/objections/{created['objection_id']}/decision"
        court = await _accepted_token(settings, "department", "court", objection + path)
        amr = await _accepted_token(settings, "department", "amr", objection + path)
        wrong = await client.post(path, json={"decision": "upheld", "reason": "x"},
                                  headers={"Authorization": f"Bearer {amr}"})
        assert wrong.status_code == 404
        r = await client.post(path, json={"decision": "upheld", "reason": "已履行，撤销",
                                          "withdraw": True},
                              headers={"Authorization": f"Bearer {court}"})
        assert r.status_code == 200 and r.json()["status"] == "upheld"
    [revocation] = await watcher.wait_for(
        "credit.notices.land",
        lambda e: e["data"]["subject"]["id"] == firm.id and e["data"]["kind"] == "revocation")
    assert revocation["data"]["revokes"] == notice_id

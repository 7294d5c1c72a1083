"""Publisher and objection against the real broker and database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.stack import ServiceProcess
from shared import clock
from shared.settings import Settings
from tests.integration.conftest import TopicWatcher
from tests.integration.helpers import enterprise, individual, key_of, record
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


async def test_tax_major_violation_waits_for_its_notice_period(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    firm = enterprise()
    data = record(firm, "tax.major_violation")
    await send(producer, settings, "tax", data)
    await watcher.wait_for("credit.feedback.tax", feedback_for(data["record_id"]))
    key = f"enterprise:{firm.id}"
    entry = None
    # Xinyong tells the subject first (here by announcement: no contact); the notice period
    # runs from then.
    for _ in range(300):
        entry = await db("publisher").fetchrow(
            "SELECT entry_id, status, publish_at FROM list_entries WHERE subject_key = $1", key)
        if entry is not None and entry["publish_at"] is not None:
            break
        await asyncio.sleep(0.1)
    assert entry is not None and entry["status"] == "pending"
    wait = entry["publish_at"] - clock.now()
    assert timedelta(days=6, hours=23) < wait <= timedelta(days=7)  # 公示期 of 7 days
    url = f"{services['publisher'].url()}/api/v1/subjects/enterprise/{firm.id}"
    profile = (await poll_json(url, lambda r: r.status_code == 200)).json()
    assert profile["lists"] == []
    assert not [e for e in watcher.events.get("credit.notices.land", [])
                if e["data"]["subject"]["id"] == firm.id]

    # The notice period runs out: the timer publishes the entry and notifies the agencies.
    await db("publisher").execute(
        "UPDATE list_entries SET publish_at = now() - interval '1 second'"
        " WHERE entry_id = $1", entry["entry_id"])
    [notice] = await watcher.wait_for("credit.notices.land",
                                      lambda e: e["data"]["subject"]["id"] == firm.id)
    assert notice["data"]["list"] == "tax.major_violation"
    profile = (await poll_json(url, lambda r: r.json()["lists"] != [])).json()
    assert profile["lists"][0]["list"] == "tax.major_violation"


async def test_hiring_notice_extends_to_the_legal_representative(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    firm, boss = enterprise(), individual()
    await send(producer, settings, "amr", record(
        firm, "amr.legal_representative",
        attributes={"legal_representative": {"id": boss.id, "name": boss.name}}))
    await send(producer, settings, "court", record(firm, "court.dishonest_debtor"))
    [hiring] = await watcher.wait_for("credit.notices.hrss-hiring",
                                      lambda e: e["data"]["subject"]["id"] == firm.id)
    assert hiring["data"]["related_subjects"] == [
        {"type": "individual", "id": boss.id, "name": boss.name,
         "role": "legal_representative"}]
    [land] = await watcher.wait_for("credit.notices.land",
                                    lambda e: e["data"]["subject"]["id"] == firm.id)
    assert land["data"]["related_subjects"] == []


async def test_agency_feedback_closes_the_loop(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        db: Any) -> None:
    firm = enterprise()
    await send(producer, settings, "court", record(firm, "court.dishonest_debtor"))
    [notice] = await watcher.wait_for("credit.notices.land",
                                      lambda e: e["data"]["subject"]["id"] == firm.id)
    notice_id = notice["data"]["notice_id"]
    feedback = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "agency/land",
                "type": "cn.zhuhai.credit.notice.feedback.v1", "subject": notice["subject"],
                "datacontenttype": "application/json",
                "data": {"notice_id": notice_id, "status": "applied", "note": "已限制竞买"}}
    import json
    await send_raw(producer, settings, "credit.notice-feedback.land",
                   json.dumps(feedback).encode(), notice["subject"].encode())
    for _ in range(100):
        status = await db("publisher").fetchval(
            "SELECT feedback_status FROM notices WHERE notice_id = $1::uuid", notice_id)
        if status:
            break
        await asyncio.sleep(0.1)
    assert status == "applied"

    # Feedback from an agency about a notice that is not its own is set aside, not applied.
    other = {**feedback, "id": str(uuid.uuid4()), "source": "agency/housing-bidding"}
    await send_raw(producer, settings, "credit.notice-feedback.housing-bidding",
                   json.dumps(other).encode(), notice["subject"].encode())
    await watcher.wait_for("credit.deadletter.publisher",
                           lambda e: e["data"]["topic"] == "credit.notice-feedback.housing-bidding"
                           and notice_id in e["data"]["reason"])


async def test_objection_flags_the_record_routes_it_and_a_rejection_lifts_the_flag(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    person = individual()
    # The court's record shows as soon as it arrives (its list is published at once); a
    # record of a list the subject is told of first would show only after its notice period.
    data = record(person, "court.dishonest_debtor")
    await send(producer, settings, "court", data)
    profile_url = f"{services['publisher'].url()}/api/v1/subjects/individual/{person.id}"
    profile = (await poll_json(profile_url, lambda r: r.status_code == 200)).json()
    assert profile["subject"]["id"] == person.id[:6] + "*" * 11 + person.id[-1]
    assert profile["records"][0]["disputed"] is False

    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        r = await once_record_known(lambda: client.post("/api/v1/objections", json={
            "subject": {"type": "individual", "id": person.id},
            "record": {"department": "court", "record_id": data["record_id"]},
            "reason": "款项已于立案前履行", "contact": "13800000000"}))
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["status"] == "routed"
        # 20 days from the day received in Zhuhai (China Standard Time), not UTC, moved to
        # the next working day when the 20th is none.
        twentieth = clock.today() + timedelta(days=20)
        assert created["due_by"] == clock.next_working_day(twentieth).day.isoformat()

        [routed] = await watcher.wait_for(
            "credit.objections.court",
            lambda e: e["data"]["objection_id"] == created["objection_id"])
        assert routed["type"] == "cn.zhuhai.credit.objection.routed.v1"
        assert routed["data"]["record"] == {"department": "court",
                                            "record_id": data["record_id"], "revision": 1}
        assert routed["data"]["due_by"] == created["due_by"]
        await poll_json(profile_url, lambda r: r.json()["records"][0]["disputed"] is True)

        token = created["access_token"]
        status = await client.get(f"/api/v1/objections/{created['objection_id']}",
                                  headers=token_header(token))
        assert status.status_code == 200
        assert [e["status"] for e in status.json()["timeline"]] == ["routed"]
        wrong = await client.get(f"/api/v1/objections/{created['objection_id']}",
                                 headers=token_header("not-the-token"))
        assert wrong.status_code == 404
        assert wrong.headers["content-type"].startswith("application/problem+json")

        decision = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "dept/court",
                    "type": "cn.zhuhai.credit.objection.decided.v1",
                    "subject": f"individual:{person.id}", "datacontenttype": "application/json",
                    "data": {"objection_id": created["objection_id"], "decision": "rejected",
                             "reason": "经核查，未履行事实清楚"}}
        import json
        await send_raw(producer, settings, "credit.inbound.court", json.dumps(decision).encode(),
                       key_of(data))
        await poll_json(profile_url, lambda r: r.json()["records"][0]["disputed"] is False)
        final = await poll_json(
            f"{services['objection'].url()}/api/v1/objections/{created['objection_id']}",
            lambda r: r.json()["status"] == "rejected", headers=token_header(token))
        assert [e["status"] for e in final.json()["timeline"]] == ["routed", "rejected"]


async def test_bad_objection_gets_a_problem_naming_the_field(
        services: dict[str, ServiceProcess]) -> None:
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        r = await client.post("/api/v1/objections", json={
            "subject": {"type": "company", "id": "x"}, "record": {"department": "amr"},
            "reason": "", "contact": "1"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"subject.type", "record.record_id", "reason"} <= fields

    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        bad_id = enterprise().id[:-1] + "I"  # I is not in the GB 32100 alphabet
        r = await client.post("/api/v1/objections", json={
            "subject": {"type": "enterprise", "id": bad_id},
            "record": {"department": "amr", "record_id": "X-1"},
            "reason": "信息有误", "contact": "13800000000"})
    assert r.status_code == 422
    assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [("subject.id", "alphabet")]


async def test_upheld_objection_with_a_corrected_revision(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    """The department upholds the objection and sends the corrected record inside its
    decision: the record is corrected, the flag lifted, and the correction gets feedback."""
    import json
    firm = enterprise()
    data = record(firm, "amr.admin_penalty", document_no="珠市监罚〔2026〕8号")
    await send(producer, settings, "amr", data)
    profile_url = f"{services['publisher'].url()}/api/v1/subjects/enterprise/{firm.id}"
    await poll_json(profile_url, lambda r: r.status_code == 200)
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        created = (await once_record_known(lambda: client.post("/api/v1/objections", json={
            "subject": {"type": "enterprise", "id": firm.id},
            "record": {"department": "amr", "record_id": data["record_id"]},
            "reason": "文书号有误", "contact": "0756-0000000"}))).json()
    await poll_json(profile_url, lambda r: r.json()["records"][0]["disputed"] is True)
    corrected = {**data, "revision": 2, "document_no": "珠市监罚〔2026〕18号"}
    decision = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "dept/amr",
                "type": "cn.zhuhai.credit.objection.decided.v1",
                "subject": f"enterprise:{firm.id}", "datacontenttype": "application/json",
                "data": {"objection_id": created["objection_id"], "decision": "upheld",
                         "reason": "文书号录入错误，已更正", "corrected": corrected}}
    await send_raw(producer, settings, "credit.inbound.amr", json.dumps(decision).encode(),
                   key_of(data))
    [fb] = await watcher.wait_for(
        "credit.feedback.amr",
        lambda e: e["data"].get("record_id") == data["record_id"]
        and e["data"]["revision"] == 2)
    assert fb["data"]["status"] == "accepted"
    assert fb["data"]["event_id"] == decision["id"] + "/corrected"
    profile = (await poll_json(profile_url, lambda r: (
        r.json()["records"][0]["document_no"] == "珠市监罚〔2026〕18号"
        and r.json()["records"][0]["disputed"] is False))).json()
    assert len(profile["records"]) == 1


async def test_the_objection_form_for_people(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    firm = enterprise()
    data = record(firm, "amr.admin_penalty")
    await send(producer, settings, "amr", data)
    await watcher.wait_for("credit.feedback.amr", feedback_for(data["record_id"]))
    form = {"kind": "objection", "type": "enterprise", "id": firm.id, "department": "amr",
            "record_id": data["record_id"], "reason": "处罚已撤销", "contact": "13700000000"}
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        page = await client.get("/objections/new", params={"id": firm.id})
        assert page.status_code == 200 and 'lang="zh-CN"' in page.text
        done = await once_record_known(lambda: client.post("/objections/new", data=form))
        assert done.status_code == 201 and "申请已受理" in done.text
        assert "?token=" not in done.text  # the token never goes in a URL
        refused = await client.post("/objections/new", data={**form, "id": firm.id[:-1]})
        assert refused.status_code == 422 and "18" in refused.text
        again = await client.post("/objections/new", data=form)
        assert again.status_code == 409
        other = await client.post("/objections/new", data={**form, "id": enterprise().id})
        assert other.status_code == 422 and "not about this subject" in other.text


async def test_an_objection_past_its_deadline_is_marked_overdue(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    firm = enterprise()
    data = record(firm, "tax.major_violation")
    await send(producer, settings, "tax", data)
    await watcher.wait_for("credit.feedback.tax", feedback_for(data["record_id"]))
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        created = (await once_record_known(lambda: client.post("/api/v1/objections", json={
            "subject": {"type": "enterprise", "id": firm.id},
            "record": {"department": "tax", "record_id": data["record_id"]},
            "reason": "长期未答复", "contact": "13600000000"}))).json()
    await db("objection").execute(
        "UPDATE objections SET due_by = current_date - 1 WHERE objection_id = $1::uuid",
        created["objection_id"])
    url = f"{services['objection'].url()}/api/v1/objections/{created['objection_id']}"
    answer = await poll_json(url, lambda r: len(r.json()["timeline"]) == 2,
                             headers=token_header(created["access_token"]))
    assert [e["status"] for e in answer.json()["timeline"]] == ["routed", "overdue"]
    assert answer.json()["status"] == "routed"  # still waiting for the department

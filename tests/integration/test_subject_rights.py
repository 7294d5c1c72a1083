"""The subject's rights end to end, on the real broker and database with the four services
(issue 7 items 3, 5, 7 and 9): credit repair, complaints, the subject's own view and its
query log, and telling the subject before listing (this one moves the clock: last)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy import credentials
from deploy.stack import ServiceProcess
from shared import clock
from shared.settings import Settings
from tests.integration.conftest import STACK, TopicWatcher, wait_until_accepted
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
from tests.polling import until

pytestmark = pytest.mark.integration

COMMITMENT = {"text_version": "2026-04", "signer_name": "张三", "signer_role": "法定代表人"}
OBLIGATIONS = {"declaration": "罚款已全额缴纳，违法行为已整改",
               "evidence": ["缴款书 44040026110001", "整改报告 2026-08"]}


def request_body(subject_type: str, subject_id: str, department: str, record_id: str,
                 **extra: Any) -> dict[str, Any]:
    return {"subject": {"type": subject_type, "id": subject_id},
            "record": {"department": department, "record_id": record_id},
            "reason": "已履行法定义务，申请信用修复", "contact": "13800000000", **extra}


def decision(department: str, subject_key: str, objection_id: str, verdict: str) -> bytes:
    return json.dumps({
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": f"dept/{department}",
        "type": "cn.zhuhai.credit.objection.decided.v1", "subject": subject_key,
        "datacontenttype": "application/json",
        "data": {"objection_id": objection_id, "decision": verdict, "reason": "经核查"}}).encode()


async def until_judged(send_it: Any, wanted: str, timeout: float = 30) -> httpx.Response:
    """Send a repair request until the objection service has the registry's figures for the
    record (its snapshot follows the record by a moment) and answers with `wanted` in it."""
    last: list[httpx.Response] = []

    async def judged() -> httpx.Response | None:
        last[:] = [r := await once_record_known(send_it)]
        return r if wanted in r.text else None

    return await until(judged, lambda: last[0].text, timeout=timeout)  # type: ignore[no-any-return]


# --- item 3: repair ----------------------------------------------------------------------


async def test_repair_is_refused_with_every_reason_or_stops_display_sharing_and_measures(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    firm = enterprise()
    old = record(firm, "amr.admin_penalty", decided_on=clock.today() - timedelta(days=130))
    recent = record(firm, "amr.admin_penalty", decided_on=clock.today() - timedelta(days=20))
    court = record(firm, "court.dishonest_debtor")
    for dept, data in (("amr", old), ("amr", recent), ("court", court)):
        await send(producer, settings, dept, data)
    profile_url = f"{services['publisher'].url()}/api/v1/subjects/enterprise/{firm.id}"
    await poll_json(profile_url, lambda r: r.status_code == 200 and len(r.json()["records"]) == 3)

    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        # Too early, and nothing signed or declared: every reason at once.
        r = await until_judged(lambda: client.post("/api/v1/repairs", json=request_body(
            "enterprise", firm.id, "amr", recent["record_id"])), "too_early")
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["code"] == "repair_not_eligible"
        assert [e["code"] for e in problem["errors"]] == [
            "too_early", "commitment_missing", "obligations_not_declared"]
        eligible = (clock.today() - timedelta(days=20)).replace(day=1)  # a lower bound
        assert problem["eligible_from"] == problem["errors"][0]["eligible_from"]
        assert problem["eligible_from"] > eligible.isoformat()

        # A court's record has its own removal procedure.
        r = await until_judged(lambda: client.post("/api/v1/repairs", json=request_body(
            "enterprise", firm.id, "court", court["record_id"], commitment=COMMITMENT,
            obligations=OBLIGATIONS)), "not_repairable")
        assert r.status_code == 422
        [reason] = r.json()["errors"]
        assert "法释〔2017〕7号" in reason["procedure"]

        # A text version that does not exist is named.
        r = await client.post("/api/v1/repairs", json=request_body(
            "enterprise", firm.id, "amr", old["record_id"],
            commitment={**COMMITMENT, "text_version": "1999"}, obligations=OBLIGATIONS))
        assert r.status_code == 422
        assert ("commitment.text_version", "unknown_text_version") in [
            (e["field"], e["code"]) for e in r.json()["errors"]]

        # Eligible: taken, with its working-day steps.
        r = await until_judged(lambda: client.post("/api/v1/repairs", json=request_body(
            "enterprise", firm.id, "amr", old["record_id"], commitment=COMMITMENT,
            obligations=OBLIGATIONS)), "objection_id")
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["kind"] == "repair" and created["access_token"]
        assert created["due_by"] == clock.add_working_days(clock.today(), 10).day.isoformat()
        assert created["result_by"] == clock.add_working_days(
            clock.add_working_days(clock.today(), 10).day, 3).day.isoformat()
        # The same request again is the same request.
        again = await client.post("/api/v1/repairs", json=request_body(
            "enterprise", firm.id, "amr", old["record_id"], commitment=COMMITMENT,
            obligations=OBLIGATIONS))
        assert again.status_code == 200, again.text
        assert again.json()["objection_id"] == created["objection_id"]
        assert "access_token" not in again.json()

    [routed] = await watcher.wait_for(
        "credit.objections.amr", lambda e: e["data"]["objection_id"] == created["objection_id"])
    assert routed["data"]["kind"] == "repair"
    assert routed["data"]["commitment"]["signer_name"] == "张三"
    assert routed["data"]["obligations"]["evidence"] == OBLIGATIONS["evidence"]

    await send_raw(producer, settings, "credit.inbound.amr",
                   decision("amr", f"enterprise:{firm.id}", created["objection_id"], "upheld"),
                   key_of(old))
    profile = (await poll_json(profile_url, lambda r: old["record_id"] not in r.text)).json()
    assert [r["record_id"] for r in profile["records"]] != []
    [commitment] = profile["commitments"]
    assert commitment["kind"] == "repair" and commitment["status"] == "kept"
    assert "诚信经营" in commitment["text"]
    assert commitment["signer"] == {"name": "张三", "role": "法定代表人"}
    status = await poll_json(
        f"{services['objection'].url()}/api/v1/objections/{created['objection_id']}",
        lambda r: r.json()["timeline"][-1]["status"] == "passed_on",
        headers=token_header(created["access_token"]))
    assert [e["status"] for e in status.json()["timeline"]] == [
        "accepted", "checked", "routed", "upheld", "passed_on"]


# --- item 7: complaints --------------------------------------------------------------------


async def test_complaints_are_routed_answered_with_the_token_and_followed(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], operator_token: str) -> None:
    firm = enterprise()
    data = record(firm, "amr.admin_penalty")
    await send(producer, settings, "amr", data)
    await watcher.wait_for("credit.feedback.amr", feedback_for(data["record_id"]))
    amr = await credentials.issue(settings, "department", "amr", timedelta(hours=1))
    base = services["objection"].url()
    await wait_until_accepted(amr.token, f"{base}/api/v1/complaints")
    about = {"kind": "record", "subject": {"type": "enterprise", "id": firm.id},
             "record": {"department": "amr", "record_id": data["record_id"]}}
    async with httpx.AsyncClient(base_url=base, headers=as_client()) as client:
        r = await once_record_known(lambda: client.post("/api/v1/complaints", json={
            "about": about, "text": "处罚信息长期未更正", "contact": "lilei@example.com"}))
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["routed_to"] == "amr"
        assert created["due_by"] == clock.next_working_day(
            clock.today() + timedelta(days=30)).day.isoformat()
        again = await client.post("/api/v1/complaints", json={
            "about": about, "text": "再次投诉", "contact": "LiLei@Example.com"})
        assert again.status_code == 200
        assert again.json()["complaint_id"] == created["complaint_id"]
        assert "access_token" not in again.json()

        # Bad input: a record of another subject, an unknown objection, a field named.
        for body, code in (
                ({**about, "subject": {"type": "enterprise", "id": enterprise().id}},
                 "record_subject_mismatch"),
                ({"kind": "objection", "objection_id": str(uuid.uuid4())},
                 "objection_not_found"),
                ({"kind": "list_entry", "subject": about["subject"],
                  "list": "court.dishonest_debtor", "entry_id": str(uuid.uuid4())},
                 "entry_not_found")):
            bad = await client.post("/api/v1/complaints", json={
                "about": body, "text": "投诉", "contact": "13900000000"})
            assert (bad.status_code, bad.json()["code"]) == (422, code), bad.text
        bad = await client.post("/api/v1/complaints", json={"about": {"kind": "nothing"},
                                                            "text": "x" * 4001,
                                                            "contact": "13900000000"})
        assert bad.status_code == 422
        assert {"about", "text"} <= {e["field"].split(".")[0] for e in bad.json()["errors"]}

        [routed] = await watcher.wait_for(
            "credit.objections.amr",
            lambda e: e["data"].get("complaint_id") == created["complaint_id"])
        assert routed["type"] == "cn.zhuhai.credit.complaint.routed.v1"
        assert routed["data"]["due_by"] == created["due_by"]

        # Another department cannot answer; the department it was routed to can.
        listed = await client.get("/api/v1/complaints", headers=token_header(amr.token))
        assert listed.status_code == 200, listed.text
        assert created["complaint_id"] in [c["complaint_id"] for c in
                                           listed.json()["complaints"]]
        denied = await client.post(f"/api/v1/complaints/{created['complaint_id']}/answer",
                                   json={"answer": "已处理"},
                                   headers=token_header(operator_token))
        assert denied.status_code == 404
        answered = await client.post(f"/api/v1/complaints/{created['complaint_id']}/answer",
                                     json={"answer": "已更正并书面答复"},
                                     headers=token_header(amr.token))
        assert answered.json() == {"complaint_id": created["complaint_id"],
                                   "status": "answered"}
        followed = await client.get(f"/api/v1/complaints/{created['complaint_id']}",
                                    headers=token_header(created["access_token"]))
        assert followed.json()["answer"] == "已更正并书面答复"
        assert [e["status"] for e in followed.json()["timeline"]] == ["routed", "answered"]
        wrong = await client.get(f"/api/v1/complaints/{created['complaint_id']}",
                                 headers=token_header("wrong"))
        assert wrong.status_code == 404

        # About the system: the operators answer it.
        system = await client.post("/api/v1/complaints", json={
            "about": {"kind": "system"}, "text": "网站无法打开", "contact": "13700000000"})
        assert system.status_code == 201 and system.json()["routed_to"] == "operators"
        answered = await client.post(
            f"/api/v1/complaints/{system.json()['complaint_id']}/answer",
            json={"answer": "已修复"}, headers=token_header(operator_token))
        assert answered.json()["status"] == "answered"
    await credentials.revoke(settings, amr.credential_id)


# --- item 9: the subject's own access --------------------------------------------------------


async def test_the_subject_sees_its_whole_archive_and_who_looked(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], operator_token: str) -> None:
    firm, other = enterprise(), enterprise()
    penalty = record(firm, "amr.admin_penalty")
    internal = record(firm, "amr.legal_representative", attributes={
        "legal_representative": {"id": individual().id, "name": "李四"}})
    wage = record(firm, "hrss.wage_arrears", contact="13800002222")
    others = record(other, "amr.admin_penalty")
    for dept, data in (("amr", penalty), ("amr", internal), ("hrss", wage), ("amr", others)):
        await send(producer, settings, dept, data)
    publisher = services["publisher"].url()
    profile_url = f"{publisher}/api/v1/subjects/enterprise/{firm.id}"
    await poll_json(profile_url, lambda r: r.status_code == 200 and len(r.json()["records"]) == 1)
    await poll_json(f"{publisher}/api/v1/subjects/enterprise/{other.id}",
                    lambda r: r.status_code == 200)

    issued = await credentials.issue(settings, "subject", f"enterprise:{firm.id}")
    me_url = f"{publisher}/api/v1/me"
    await wait_until_accepted(issued.token, me_url)
    mine = token_header(issued.token)
    me = (await poll_json(me_url, lambda r: len(r.json()["records"]) == 3
                          and r.json()["lists"] != [], headers=mine)).json()
    assert me["subject"]["id"] == firm.id
    records = {r["record_id"]: r for r in me["records"]}
    assert records[internal["record_id"]]["disclosure"] == "internal"
    assert records[internal["record_id"]]["public_now"] is False
    assert records[penalty["record_id"]]["public_now"] is True
    # A market regulation penalty follows SAMR Order 45 by its class (shared/disclosure.py).
    assert records[penalty["record_id"]]["disclosure_rule"] == (
        f"samr-order-45/{penalty['attributes']['penalty_class']}")
    assert records[penalty["record_id"]]["repair_from"] and \
        records[penalty["record_id"]]["public_until"]
    assert records[wage["record_id"]]["contact_from_department"] == "138****22"
    [entry] = me["lists"]
    assert (entry["list"], entry["status"]) == ("hrss.wage_arrears", "pending")
    # The wage record is the listing: while its entry waits for the notice period, the
    # public sees neither the record nor the grade it gives (D), and the subject is told so.
    assert records[wage["record_id"]]["public_now"] is False
    async with httpx.AsyncClient() as client:
        public = (await client.get(profile_url)).json()
    assert [r["record_id"] for r in public["records"]] == [penalty["record_id"]]
    assert (public["grade"]["grade"], public["lists"]) == ("C", [])

    # Views: the API with a purpose, the web page, a full-code search; a 404 is not logged.
    async with httpx.AsyncClient(headers={"X-Forwarded-For": "203.0.113.77"}) as client:
        assert (await client.get(profile_url, params={"purpose": "招标资格审查"})
                ).status_code == 200
        assert (await client.get(f"{publisher}/subjects/enterprise/{firm.id}",
                                 headers={"X-Forwarded-For": "2001:db8:1234:5678::9"})
                ).status_code == 200
        found = await client.get(f"{publisher}/api/v1/subjects", params={"q": firm.id})
        assert len(found.json()["results"]) == 1
        await client.get(f"{publisher}/api/v1/subjects", params={"q": "珠海"})  # not a view
        assert (await client.get(f"{publisher}/api/v1/subjects/enterprise/{enterprise().id}")
                ).status_code == 404
    # Newest first (the polls above, from 127.0.0.1, were views too: they come after these).
    # Views are written within a tenth of a second (services/publisher/rights_api.py).
    queries = (await poll_json(f"{me_url}/queries?limit=200", lambda r: [
        q["address"] for q in r.json()["queries"][:3]] == [
            "203.0.113.0/24", "2001:db8:1234::/48", "203.0.113.0/24"], headers=mine)).json()
    assert [(q["channel"], q["purpose"], q["address"]) for q in queries["queries"][:3]] == [
        ("api", None, "203.0.113.0/24"), ("web", None, "2001:db8:1234::/48"),
        ("api", "招标资格审查", "203.0.113.0/24")]
    assert {q["address"] for q in queries["queries"][3:]} == {"127.0.0.0/24"}
    assert queries["next"] is None
    page = (await poll_json(f"{me_url}/queries?limit=2", lambda r: True, headers=mine)).json()
    assert len(page["queries"]) == 2 and page["next"]
    rest = (await poll_json(f"{me_url}/queries?limit=200&cursor={page['next']}",
                            lambda r: True, headers=mine)).json()
    assert rest["queries"][0]["purpose"] == "招标资格审查"
    assert len(rest["queries"]) == len(queries["queries"]) - 2
    assert rest["next"] is None

    async with httpx.AsyncClient(base_url=publisher) as client:
        # Bad input.
        assert (await client.get("/api/v1/me/queries?cursor=bm90LWEtY3Vyc29y",
                                 headers=mine)).status_code == 400
        too_big = await client.get("/api/v1/me/queries?limit=100000", headers=mine)
        assert too_big.status_code == 422 and too_big.json()["errors"][0]["field"] == "limit"
        assert (await client.get("/api/v1/me")).status_code == 401
        assert (await client.get("/api/v1/me", headers=token_header("xyt_0.nothing"))
                ).status_code == 401
        assert (await client.get("/api/v1/me", headers=token_header(operator_token))
                ).status_code == 401
        # Another subject's record is not found; its own is.
        assert (await client.get(f"/api/v1/me/records/amr/{others['record_id']}",
                                 headers=mine)).status_code == 404
        own = await client.get(f"/api/v1/me/records/amr/{penalty['record_id']}", headers=mine)
        assert own.status_code == 200 and own.json()["status"] == "active"
        # The subject's own contact.
        bad = await client.put("/api/v1/me/contact", json={"contact": "no channel"},
                               headers=mine)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "contact"
        put = await client.put("/api/v1/me/contact", json={"contact": "boss@example.com"},
                               headers=mine)
        assert put.status_code == 200 and put.json()["contact"]["contact"] == "boss@example.com"

    await credentials.revoke(settings, issued.credential_id)
    await poll_json(me_url, lambda r: r.status_code == 401, headers=mine)


# --- item 5: told before listing (moves the clock) ----------------------------------------


def spooled(notification_id: str) -> list[dict[str, Any]]:
    folder = Path(STACK.env["XINYONG_NOTIFICATION_SPOOL_DIR"])
    lines = [json.loads(line) for f in sorted(folder.glob("*.jsonl"))
             for line in f.read_text(encoding="utf-8").splitlines()]
    return [m for m in lines if m["notification_id"] == notification_id]


async def test_no_listing_xinyong_announces_is_published_before_its_notification(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    told, unreachable, silent = enterprise(), enterprise(), enterprise()
    told_rec = record(told, "hrss.wage_arrears", contact="13800003333")
    unreachable_rec = record(unreachable, "hrss.wage_arrears", contact="no channel at all")
    silent_rec = record(silent, "hrss.wage_arrears")
    for data in (told_rec, unreachable_rec, silent_rec):
        await send(producer, settings, "hrss", data)

    def about(firm: Any) -> Any:
        return lambda e: e["data"]["subject"]["id"] == firm.id

    # Told by message: the notification event, the message handed over, the delivery log.
    [event] = await watcher.wait_for("credit.subjects.notified", about(told))
    notified = event["data"]
    assert notified["channel"] == "contact"
    assert notified["list"] == "hrss.wage_arrears"
    assert [r["record_id"] for r in notified["reasons"]] == [told_rec["record_id"]]
    [message] = spooled(notified["notification_id"])
    assert message["to"] == "13800003333" and message["channel"] == "sms"
    assert notified["planned_publication"] in message["text"]
    # No contact: the public announcement page.
    [announced] = await watcher.wait_for("credit.subjects.notified", about(silent))
    assert announced["data"]["channel"] == "announcement"
    page = await poll_json(f"{services['publisher'].url()}/api/v1/announcements",
                           lambda r: silent.id in r.text)
    assert "公告送达" in page.json()["basis"]
    # A contact no sender can reach: a failed delivery, tried again later.
    rows = await _wait_rows(db("publisher"),
                            "SELECT d.outcome FROM notification_deliveries d JOIN notifications n"
                            " USING (notification_id) WHERE n.subject_key = $1",
                            f"enterprise:{unreachable.id}")
    assert rows[0]["outcome"] == "failed"

    # An objection during the notice period holds the listing it rests on.
    async with httpx.AsyncClient(base_url=services["objection"].url(),
                                 headers=as_client()) as client:
        objected = (await once_record_known(lambda: client.post("/api/v1/objections", json={
            "subject": {"type": "enterprise", "id": told.id},
            "record": {"department": "hrss", "record_id": told_rec["record_id"]},
            "reason": "工资已结清", "contact": "13800003333"}))).json()
    await _wait_rows(db("publisher"), "SELECT 1 FROM list_entries WHERE subject_key = $1"
                     " AND held", f"enterprise:{told.id}")
    assert not [e for e in watcher.events["credit.notices.land"] if about(told)(e)]

    # Past the notice period and the delivery fallback; the clock goes back after, so that
    # later tests (and the calendar's own check) see today again.
    STACK.move_clock(timedelta(days=8))
    try:
        await watcher.wait_for("credit.notices.land", about(silent), timeout=60)
        [late] = await watcher.wait_for("credit.subjects.notified", about(unreachable),
                                        timeout=60)
        assert late["data"]["channel"] == "announcement"  # deliveries kept failing
        await asyncio.sleep(6)  # a timer round: the held entry stays unpublished
        assert not [e for e in watcher.events["credit.notices.land"] if about(told)(e)]
        assert not [e for e in watcher.events["credit.notices.land"] if about(unreachable)(e)]

        # The department decides: the hold is lifted and the entry published.
        await send_raw(producer, settings, "credit.inbound.hrss",
                       decision("hrss", f"enterprise:{told.id}", objected["objection_id"],
                                "rejected"), key_of(told_rec))
        await watcher.wait_for("credit.notices.land", about(told), timeout=60)
    finally:
        STACK.move_clock(-timedelta(days=8))


async def _wait_rows(pool: Any, sql: str, *args: Any, timeout: float = 30) -> list[Any]:
    return list(await until(lambda: pool.fetch(sql, *args), f"rows for {sql}", timeout=timeout))

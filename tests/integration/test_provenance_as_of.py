"""Provenance and as-of profiles end to end, on the real broker and database with the four
services (issue 8 items 1 and 2): a Kafka and an HTTP submission carry the department's
event id and receipt time through to the public profile, /api/v1/me and the department's
audit; `as_of` answers before and after a correction, a withdrawal after an upheld
objection and a repair, publicly and for the subject (the clock moves: the stack's clock only goes
forward, and every later test reads the same clock)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy import credentials
from deploy.stack import ServiceProcess
from shared import clock
from shared.settings import Settings
from tests.integration.conftest import STACK, TopicWatcher, wait_until_accepted
from tests.integration.helpers import enterprise, record
from tests.integration.kit import as_client, once_record_known, poll_json, send

pytestmark = pytest.mark.integration


@pytest.fixture
def clock_put_back() -> Iterator[None]:
    """The suite's clock back where it was after the test: the stack is shared, and a later
    test (the restore drill) compares states that a sweep due on a moved day would change."""
    path = STACK.settings.test_clock_file
    assert path is not None

    def offset() -> float:
        return float(path.read_text().strip() or 0) if path.exists() else 0.0
    before = offset()
    yield
    STACK.move_clock(timedelta(seconds=before - offset()))


def by_id(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["record_id"]: r for r in profile["records"]}


async def test_provenance_reaches_profile_me_and_audit_and_as_of_reads_the_past(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], operator_token: str, clock_put_back: None) -> None:
    firm = enterprise("珠海市来源测试有限公司")
    by_kafka = record(firm, "amr.admin_penalty", document_no="珠市监罚〔2026〕1号")
    by_http = record(firm, "amr.admin_penalty", document_no="珠市监罚〔2026〕2号")
    # Old enough to be repaired later (its minimum disclosure period over).
    to_repair = record(firm, "amr.admin_penalty", document_no="珠市监罚〔2026〕3号",
                       decided_on=clock.today() - timedelta(days=130))
    kafka_event = str(uuid.uuid4())
    await send(producer, settings, "amr", by_kafka, kafka_event)
    await send(producer, settings, "amr", to_repair)

    ingest, publisher = services["ingest"].url(), services["publisher"].url()
    # Long enough to outlive the clock moves below.
    amr = await credentials.issue(settings, "department", "amr", timedelta(days=30))
    await wait_until_accepted(amr.token, f"{ingest}/api/v1/records", "POST")
    department = {"Authorization": f"Bearer {amr.token}"}
    key = f"prov-{uuid.uuid4().hex[:12]}"
    async with httpx.AsyncClient(base_url=ingest, headers=department) as client:
        answer = (await client.post("/api/v1/records", json=by_http,
                                    headers={"Idempotency-Key": key})).json()
        assert [(r["status"], r["event_id"]) for r in answer["results"]] == [("accepted", key)]
        # Without a key, the answer names the id generated for the submission.
        generated = (await client.post("/api/v1/records", json=record(firm, "amr.admin_penalty"))
                     ).json()["results"][0]["event_id"]
        assert str(uuid.UUID(generated)) == generated

    profile_url = f"{publisher}/api/v1/subjects/enterprise/{firm.id}"
    profile = (await poll_json(profile_url, lambda r: r.status_code == 200
                               and len(r.json()["records"]) == 4)).json()
    shown = by_id(profile)
    assert shown[by_kafka["record_id"]]["provenance"]["event_id"] == kafka_event
    assert shown[by_http["record_id"]]["provenance"]["event_id"] == key
    assert shown[by_kafka["record_id"]]["disputed_since"] is None

    # The department finds each event and its receipt time in its audit.
    async with httpx.AsyncClient(headers=department) as client:
        for data in (by_kafka, by_http):
            audit = (await client.get(
                f"{ingest}/api/v1/records/amr/{data['record_id']}/submissions")).json()
            [delivery] = [d for d in audit if d["status"] == "accepted"]
            provenance = shown[data["record_id"]]["provenance"]
            assert provenance == {"department": "amr", "record_id": data["record_id"],
                                  "revision": 1, "event_id": delivery["event_id"],
                                  "received_at": provenance["received_at"]}
            assert datetime.fromisoformat(provenance["received_at"]) == \
                datetime.fromisoformat(delivery["received_at"])

    # The subject's own view carries the same provenance.
    issued = await credentials.issue(settings, "subject", f"enterprise:{firm.id}",
                                     timedelta(days=30))
    me_url = f"{publisher}/api/v1/me"
    await wait_until_accepted(issued.token, me_url)
    mine = {"Authorization": f"Bearer {issued.token}"}
    me = (await poll_json(me_url, lambda r: len(r.json()["records"]) == 4, headers=mine)).json()
    assert by_id(me)[by_kafka["record_id"]]["provenance"] == \
        shown[by_kafka["record_id"]]["provenance"]

    # --- as_of ------------------------------------------------------------------------------
    first_day = clock.today()
    STACK.move_clock(timedelta(days=2))
    corrected_event = str(uuid.uuid4())
    corrected = {**by_kafka, "revision": 2, "document_no": "珠市监罚〔2026〕1号（更正）"}
    await send(producer, settings, "amr", corrected, corrected_event)
    await poll_json(profile_url, lambda r: "（更正）" in r.text)
    corrected_day = clock.today()

    # An objection flags the HTTP record; upheld, the department withdraws it.
    objection = services["objection"].url()
    async with httpx.AsyncClient(base_url=objection, headers=as_client()) as client:
        created = (await once_record_known(lambda: client.post("/api/v1/objections", json={
            "subject": {"type": "enterprise", "id": firm.id},
            "record": {"department": "amr", "record_id": by_http["record_id"]},
            "reason": "处罚已撤销", "contact": "13800000000"}))).json()
    flagged = by_id((await poll_json(profile_url, lambda r: any(
        x["disputed"] for x in r.json()["records"]))).json())[by_http["record_id"]]
    assert flagged["disputed_since"] is not None
    assert flagged["provenance"]["event_id"] == key  # a flag never rewrites provenance
    STACK.move_clock(timedelta(days=2))
    await wait_until_accepted(amr.token, f"{objection}/api/v1/objections/"
                              f"{created['objection_id']}/decision", "POST")
    async with httpx.AsyncClient(base_url=objection, headers=department) as client:
        r = await client.post(f"/api/v1/objections/{created['objection_id']}/decision",
                              json={"decision": "upheld", "reason": "经核查属实",
                                    "withdraw": True})
        assert r.status_code == 200, r.text
    await poll_json(profile_url, lambda r: by_http["record_id"] not in r.text)
    withdrawn_day = clock.today()

    # A day on, the old penalty is repaired (NDRC Order 36): its display stops.
    STACK.move_clock(timedelta(days=1))
    async with httpx.AsyncClient(base_url=objection, headers=as_client()) as client:
        asked = await once_record_known(lambda: client.post("/api/v1/repairs", json={
            "subject": {"type": "enterprise", "id": firm.id},
            "record": {"department": "amr", "record_id": to_repair["record_id"]},
            "reason": "已履行法定义务，申请信用修复", "contact": "13800000000",
            "commitment": {"text_version": "2026-04", "signer_name": "张三",
                           "signer_role": "法定代表人"},
            "obligations": {"declaration": "罚款已全额缴纳", "evidence": ["缴款书"]}}))
        assert asked.status_code == 201, asked.text
    async with httpx.AsyncClient(base_url=objection, headers=department) as client:
        r = await client.post(f"/api/v1/objections/{asked.json()['objection_id']}/decision",
                              json={"decision": "upheld", "reason": "已履行"})
        assert r.status_code == 200, r.text
    await poll_json(profile_url, lambda r: to_repair["record_id"] not in r.text)

    async with httpx.AsyncClient() as client:
        async def as_of(day: Any, url: str = profile_url,
                        headers: dict[str, str] | None = None) -> httpx.Response:
            return await client.get(url, params={"as_of": str(day)}, headers=headers)

        # Before the correction: the first revision and its event; the withdrawn record is
        # not shown again publicly.
        then = (await as_of(first_day)).json()
        assert then["as_of"] == first_day.isoformat() and then["history_from"]
        assert by_kafka["record_id"] in by_id(then)
        assert by_id(then)[by_kafka["record_id"]]["document_no"] == "珠市监罚〔2026〕1号"
        assert by_id(then)[by_kafka["record_id"]]["provenance"]["event_id"] == kafka_event
        assert by_http["record_id"] not in by_id(then)
        # Repaired since: not shown again for any day before the repair either.
        for day in (first_day, corrected_day, withdrawn_day):
            assert to_repair["record_id"] not in by_id((await as_of(day)).json())
        after = by_id((await as_of(corrected_day)).json())[by_kafka["record_id"]]
        assert (after["document_no"], after["provenance"]["event_id"]) == (
            "珠市监罚〔2026〕1号（更正）", corrected_event)
        # The live profile is the same function at now.
        live = (await client.get(profile_url)).json()
        assert by_id(live)[by_kafka["record_id"]] == by_id(
            (await as_of(clock.today())).json())[by_kafka["record_id"]]

        # The subject sees the full past: the withdrawn record as it stood then.
        own = (await as_of(first_day, me_url, mine)).json()
        assert by_id(own)[by_http["record_id"]]["status"] == "active"
        assert by_id(own)[by_http["record_id"]]["provenance"]["event_id"] == key
        assert by_id((await as_of(withdrawn_day, me_url, mine)).json())[
            to_repair["record_id"]]["status"] == "active"
        assert by_id((await as_of(clock.today(), me_url, mine)).json())[
            to_repair["record_id"]]["status"] == "repaired"
        assert by_id((await as_of(clock.today(), me_url, mine)).json())[
            by_http["record_id"]]["status"] == "withdrawn"

        # Bad input: not a date, a day to come (422 naming as_of); before history and an
        # unknown subject: the same 404.
        for bad in ("2026-02-30", "tomorrow", clock.today() + timedelta(days=1)):
            r = await as_of(bad)
            assert r.status_code == 422, r.text
            assert [e["field"] for e in r.json()["errors"]] == ["as_of"]
        before = await as_of(first_day - timedelta(days=1))
        unknown = await as_of(first_day, profile_url.replace(firm.id, enterprise().id))
        assert before.status_code == unknown.status_code == 404
        assert before.json() == unknown.json()
        assert (await as_of(first_day - timedelta(days=1), me_url, mine)).status_code == 404

        # Operators see the full past of any subject; nobody else does.
        operators = f"{publisher}/api/v1/operators/subjects/enterprise/{firm.id}"
        full = (await as_of(first_day, operators, {"Authorization": f"Bearer {operator_token}"}
                            )).json()
        assert by_id(full)[by_http["record_id"]]["status"] == "active"
        assert (await as_of(first_day, operators, mine)).status_code == 401

        # The page: a date field, the past shown.
        page = await client.get(f"{publisher}/subjects/enterprise/{firm.id}",
                                params={"as_of": first_day.isoformat()})
        assert page.status_code == 200
        assert 'type="date"' in page.text and "珠市监罚〔2026〕1号" in page.text
        assert kafka_event in page.text

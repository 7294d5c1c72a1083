"""Public credit commitments and government integrity end to end (issue 8 items 4 and 5), on
the real broker and database with the services: a commitment signed, breached, shown and
the grade changed; a subject's own commitment; a government body listed through its
defaults with a notice to its supervisor, and the district figures equal to a direct SQL
count; every bad input."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy import credentials
from deploy.demo import DemoSubject, make_uscc
from deploy.stack import ServiceProcess
from shared import clock
from shared.settings import Settings
from tests.integration.conftest import TopicWatcher, wait_until_accepted
from tests.integration.helpers import enterprise, record
from tests.integration.kit import feedback_for, poll_json, send, token_header

pytestmark = pytest.mark.integration

_rng = random.Random()


def signed(kind: str = "enterprise", term_days: int = 700, **changes: Any) -> dict[str, Any]:
    commitment: dict[str, Any] = {
        "kind": kind, "text_version": "2026-01",
        "signer": {"name": "李明", "role": "法定代表人"},
        "term_until": (clock.today() + timedelta(days=term_days)).isoformat()}
    commitment.update(changes)
    return {"commitment": commitment}


BREACH = {"document_no": "珠科工贸〔2026〕9号", "summary": "未按承诺履行合同"}


def breach() -> dict[str, Any]:
    return {**BREACH, "on": (clock.today() - timedelta(days=2)).isoformat()}


async def feedback_of(watcher: TopicWatcher, dept: str, record_id: str,
                      count: int = 1) -> list[dict[str, Any]]:
    return [e["data"] for e in await watcher.wait_for(f"credit.feedback.{dept}",
                                                      feedback_for(record_id), count=count)]


def codes(fb: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["field"], e["code"]) for e in fb["errors"]}


async def test_a_commitment_signed_breached_shown_and_graded(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    firm = enterprise("珠海市守信承诺测试有限公司")
    signing = record(firm, "industry.enterprise_commitment", decided_on=clock.today()
                     - timedelta(days=30), attributes=signed())
    await send(producer, settings, "industry", signing)
    url = f"{services['publisher'].url()}/api/v1/subjects/enterprise/{firm.id}"
    kept = (await poll_json(url, lambda r: r.status_code == 200
                            and len(r.json()["commitments"]) == 1)).json()
    [c] = kept["commitments"]
    assert (c["commitment_id"], c["kind"], c["status"]) == (signing["record_id"], "enterprise",
                                                            "kept")
    assert c["text"].startswith("本企业承诺") and kept["grade"]["grade"] == "B"
    async with httpx.AsyncClient() as client:
        page = await client.get(f"{services['publisher'].url()}/subjects/enterprise/{firm.id}")
    assert "本企业承诺" in page.text and "履行中" in page.text

    await send(producer, settings, "industry",
               {**signing, "revision": 2, "attributes": {**signed(), "breach": breach()}})
    broken = (await poll_json(url, lambda r: r.json()["commitments"][0]["status"]
                              == "breached")).json()
    assert broken["grade"]["grade"] == "C"
    assert any("违背企业守信公开承诺" in line for line in broken["grade"]["explanation"])
    assert broken["commitments"][0]["breach"]["document_no"] == BREACH["document_no"]
    assert [r["polarity"] for r in broken["records"]
            if r["record_id"] == signing["record_id"]] == ["negative"]
    async with httpx.AsyncClient() as client:
        page = await client.get(f"{services['publisher'].url()}/subjects/enterprise/{firm.id}")
    assert "已违背" in page.text and BREACH["summary"] in page.text

    # Breaching it again is refused, naming the field.
    await send(producer, settings, "industry",
               {**signing, "revision": 3, "attributes": {**signed(), "breach": breach()}})
    fates = await feedback_of(watcher, "industry", signing["record_id"], count=3)
    assert [f["status"] for f in sorted(fates, key=lambda f: f["revision"])] == [
        "accepted", "accepted", "rejected"]
    assert codes(max(fates, key=lambda f: f["revision"])) == {
        ("attributes.breach", "already_breached")}


@pytest.mark.parametrize(("attributes", "item", "subject_type", "expected"), [
    (signed(kind="moon"), "industry.enterprise_commitment", "enterprise",
     ("attributes.commitment.kind", "unknown_kind")),
    (signed(text_version="1999-01"), "industry.enterprise_commitment", "enterprise",
     ("attributes.commitment.text_version", "unknown_text_version")),
    (signed(signer={}), "industry.enterprise_commitment", "enterprise",
     ("attributes.commitment.signer.name", "required")),
    (signed(term_days=-1), "industry.enterprise_commitment", "enterprise",
     ("attributes.commitment.term_until", "term_over")),
    ({**signed(), "breach": breach()}, "industry.enterprise_commitment",
     "enterprise", ("attributes.breach", "unknown_commitment")),
    (signed(kind="government_service"), "supervision.service_commitment", "enterprise",
     ("subject.type", "not_allowed")),
])
async def test_bad_commitments_are_refused_naming_the_field(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        attributes: dict[str, Any], item: str, subject_type: str,
        expected: tuple[str, str]) -> None:
    firm = enterprise()
    data = record(firm, item, decided_on=clock.today() - timedelta(days=30),
                  attributes=attributes)
    dept = item.split(".")[0]
    await send(producer, settings, dept, data)
    [fb] = await feedback_of(watcher, dept, data["record_id"])
    assert fb["status"] == "rejected" and expected in codes(fb)


async def test_a_subject_signs_its_own_commitment(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    firm = enterprise("珠海市自律承诺测试有限公司")
    issued = await credentials.issue(settings, "subject", f"enterprise:{firm.id}")
    base = services["publisher"].url()
    await wait_until_accepted(issued.token, f"{base}/api/v1/me")
    body = {"subject": {"type": "enterprise", "id": firm.id, "name": firm.name},
            "text_version": "2026-01", "signer": {"name": "王芳", "role": "法定代表人"},
            "term_until": (clock.today() + timedelta(days=365)).isoformat()}
    async with httpx.AsyncClient() as client:
        async def post(payload: dict[str, Any], token: str | None = issued.token
                       ) -> httpx.Response:
            return await client.post(f"{base}/api/v1/me/commitments", json=payload,
                                     headers=token_header(token) if token else {})

        assert (await post(body, None)).status_code == 401
        other = {**body, "subject": {**body["subject"], "id": enterprise().id}}
        assert (await post(other)).status_code == 404
        for bad, field in (({"text_version": "1999-01"}, "text_version"),
                           ({"term_until": (clock.today() - timedelta(days=1)).isoformat()},
                            "term_until"),
                           ({"signer": {"name": " ", "role": "法定代表人"}}, "signer.name")):
            r = await post({**body, **bad})
            assert r.status_code == 422, r.text
            assert field in {e["field"] for e in r.json()["errors"]}
        no_signer = await post({k: v for k, v in body.items() if k != "signer"})
        assert no_signer.status_code == 422
        assert no_signer.headers["content-type"].startswith("application/problem+json")
        taken = await post(body)
        assert taken.status_code == 202, taken.text
        commitment_id = taken.json()["commitment_id"]
    profile = await poll_json(f"{base}/api/v1/subjects/enterprise/{firm.id}",
                              lambda r: r.status_code == 200 and any(
                                  c["commitment_id"] == commitment_id
                                  for c in r.json()["commitments"]))
    [mine] = [c for c in profile.json()["commitments"] if c["commitment_id"] == commitment_id]
    assert (mine["kind"], mine["department"], mine["status"]) == ("conduct", "ndrc", "kept")


async def test_a_subject_signing_cannot_rename_itself(
        settings: Settings, producer: AIOKafkaProducer,
        services: dict[str, ServiceProcess]) -> None:
    """The name in the signing request is the subject's word; once a department has named
    the subject, the archive, the profile and the agencies keep the department's."""
    firm = enterprise("珠海市改名测试有限公司")
    base = services["publisher"].url()
    url = f"{base}/api/v1/subjects/enterprise/{firm.id}"
    await send(producer, settings, "tax", record(firm, "tax.a_grade_taxpayer"))
    await poll_json(url, lambda r: r.status_code == 200)
    issued = await credentials.issue(settings, "subject", f"enterprise:{firm.id}")
    await wait_until_accepted(issued.token, f"{base}/api/v1/me")
    body = {"subject": {"type": "enterprise", "id": firm.id, "name": "珠海市冒名顶替有限公司"},
            "text_version": "2026-01", "signer": {"name": "王芳", "role": "法定代表人"},
            "term_until": (clock.today() + timedelta(days=365)).isoformat()}
    async with httpx.AsyncClient() as client:
        taken = await client.post(f"{base}/api/v1/me/commitments", json=body,
                                  headers=token_header(issued.token))
    assert taken.status_code == 202, taken.text
    commitment_id = taken.json()["commitment_id"]
    profile = (await poll_json(url, lambda r: r.status_code == 200 and any(
        c["commitment_id"] == commitment_id for c in r.json()["commitments"]))).json()
    assert profile["subject"]["name"] == firm.name


async def test_a_body_is_listed_through_its_defaults_and_counted_per_district(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Callable[[str], Any]) -> None:
    body = DemoSubject("government", make_uscc("11", "440403", _rng), "珠海市斗门区测试局")
    debt = record(body, "finance.unpaid_government_debt", district="440403",
                  document_no="珠财〔2026〕3号")
    court = record(body, "court.government_dishonest_debtor", district="440403")
    await send(producer, settings, "finance", debt)
    await send(producer, settings, "court", court)
    base = services["publisher"].url()
    url = f"{base}/api/v1/subjects/government/{body.id}"
    profile = (await poll_json(url, lambda r: r.status_code == 200 and [
        m["list"] for m in r.json()["lists"]] == ["supervision.defaulting_bodies"])).json()
    assert profile["grade"]["grade"] == "D"
    notices = await watcher.wait_for("credit.notices.supervising-body",
                                     lambda e: e["data"]["subject"]["id"] == body.id)
    assert notices[0]["data"]["measure"] == "accountability.notice"
    async with httpx.AsyncClient() as client:
        listed = await client.get(f"{base}/lists/supervision.defaulting_bodies")
        assert body.name in listed.text
        page = await client.get(f"{base}/subjects/government/{body.id}")
        assert "机关" in page.text and "政务失信机构名单" in page.text

    start = (clock.today() - timedelta(days=60)).isoformat()
    end = clock.today().isoformat()
    figures_url = f"{base}/api/v1/government/districts?from={start}&to={end}"

    async def matches_sql() -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            answer = (await client.get(figures_url)).json()
        pool = db("publisher")
        for d in answer["districts"]:
            for kind, got in d["by_kind"].items():
                direct = await pool.fetchrow(
                    "SELECT"
                    " (SELECT count(*) FROM government_defaults WHERE district = $1"
                    "  AND default_kind = $2 AND opened_on BETWEEN $3 AND $4) AS opened,"
                    " (SELECT count(*) FROM government_defaults WHERE district = $1"
                    "  AND default_kind = $2 AND resolved_on BETWEEN $3 AND $4) AS resolved,"
                    " (SELECT count(*) FROM government_defaults WHERE district = $1"
                    "  AND default_kind = $2 AND opened_on <= $4"
                    "  AND (resolved_on IS NULL OR resolved_on > $4)) AS open_at_end",
                    d["district"], kind, clock.today() - timedelta(days=60), clock.today())
                assert got == dict(direct), (d["district"], kind)
        return {d["district"]: d for d in answer["districts"]}

    doumen = (await matches_sql())["440403"]
    assert doumen["by_kind"]["unpaid_debt"]["open_at_end"] >= 1

    # The debt paid: the finance bureau withdraws it; the court's record still lists it.
    await send(producer, settings, "finance", record(body, action="withdraw", revision=2,
                                                     record_id=debt["record_id"]))
    pool = db("publisher")
    await poll_json(url, lambda r: r.status_code == 200)  # the service answers throughout
    for _ in range(300):
        if await pool.fetchval("SELECT resolved_on FROM government_defaults"
                               " WHERE record_id = $1", debt["record_id"]) is not None:
            break
        await asyncio.sleep(0.1)
    resolved = (await matches_sql())["440403"]
    assert resolved["by_kind"]["unpaid_debt"]["resolved"] >= 1

    async with httpx.AsyncClient() as client:
        for query, field in (("from=2026-02-30&to=2026-03-01", "from"),
                             ("from=yesterday&to=2026-03-01", "from"),
                             ("from=2026-03-02&to=2026-03-01", "from"),
                             ("from=2010-01-01&to=2026-03-01", "to"),
                             ("to=2026-03-01", "from")):
            r = await client.get(f"{base}/api/v1/government/districts?{query}")
            assert r.status_code == 422, (query, r.text)
            assert field in {e["field"] for e in r.json()["errors"]}
        page = await client.get(f"{base}/government/districts?from={start}&to={end}")
        assert page.status_code == 200 and "斗门区" in page.text
        bad_page = await client.get(f"{base}/government/districts?from=x&to={end}")
        assert bad_page.status_code == 422 and "<html" in bad_page.text

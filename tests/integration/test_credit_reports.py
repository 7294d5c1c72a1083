"""Credit reports end to end on the real broker and database (issue 8 item 3): report -> PDF ->
verify with the file's sha256, a tampered file, the subject's own report, the query log, and
every bad input."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pypdf import PdfReader

from deploy import credentials
from deploy.stack import ServiceProcess
from services.publisher import report
from shared.identifiers import mask_resident_id
from shared.settings import Settings
from tests.integration.conftest import wait_until_accepted
from tests.integration.helpers import enterprise, individual, record
from tests.integration.kit import as_client, poll_json, send, token_header

pytestmark = pytest.mark.integration


def text_of(pdf: bytes) -> str:
    """The PDF's text without whitespace: a table cell may break a document number over two
    lines."""
    text = "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)
    return "".join(text.split())


async def take(client: httpx.AsyncClient, subject: dict[str, str], purpose: str = "银行贷款审查",
               headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/api/v1/reports", json={"subject": subject, "purpose": purpose},
                             headers={**as_client(), **(headers or {})})


async def test_a_report_is_a_chinese_pdf_whose_verify_answer_matches_its_bytes(
        settings: Settings, producer: AIOKafkaProducer,
        services: dict[str, ServiceProcess]) -> None:
    firm = enterprise("珠海市报告测试贸易有限公司")
    penalty = record(firm, "amr.admin_penalty", document_no="珠市监罚〔2026〕88号")
    await send(producer, settings, "amr", penalty)
    publisher = services["publisher"].url()
    await poll_json(f"{publisher}/api/v1/subjects/enterprise/{firm.id}",
                    lambda r: r.status_code == 200 and len(r.json()["records"]) == 1)

    async with httpx.AsyncClient(base_url=publisher, timeout=60) as client:
        r = await take(client, {"type": "enterprise", "id": firm.id})
        assert r.status_code == 201, r.text
        issued = r.json()
        code = issued["verification_code"]
        assert report.normalize_code(code) == code
        assert issued["url"] == f"/api/v1/reports/{issued['report_id']}.pdf"

        pdf = await client.get(issued["url"])
        assert pdf.status_code == 200
        assert pdf.headers["content-type"] == "application/pdf"
        text = text_of(pdf.content)
        for wanted in ("公共信用信息报告", firm.name, firm.id, code, "珠市监罚〔2026〕88号",
                       "银行贷款审查", "未查询到相关记录", issued["report_id"]):
            assert wanted in text, wanted

        verified = (await client.get(f"/api/v1/reports/verify/{code}")).json()
        assert verified["valid"] is True
        assert verified["report_id"] == issued["report_id"]
        assert verified["subject"] == {"type": "enterprise", "id": firm.id, "name": firm.name}
        assert verified["sha256"] == hashlib.sha256(pdf.content).hexdigest()
        assert verified["issued_at"]
        # Typed loosely by a clerk: the same report.
        loose = (await client.get(f"/api/v1/reports/verify/{code.lower().replace('-', '')}"))
        assert loose.json()["sha256"] == verified["sha256"]
        # A file changed by one byte does not match.
        tampered = bytearray(pdf.content)
        tampered[len(tampered) // 2] ^= 0x01
        assert hashlib.sha256(bytes(tampered)).hexdigest() != verified["sha256"]
        # The page a clerk types the code into.
        page = await client.get("/reports/verify", params={"code": code})
        assert page.status_code == 200 and verified["sha256"] in page.text
        assert firm.name in page.text and 'lang="zh-CN"' in page.text
        assert (await client.get("/reports/verify")).status_code == 200
        unknown_page = await client.get("/reports/verify", params={"code": report.new_code()})
        assert unknown_page.status_code == 404 and "未找到" in unknown_page.text

        # The subject page's form, without JavaScript: a page with the code and the PDF.
        subject_page = await client.get(f"/subjects/enterprise/{firm.id}")
        assert 'name="purpose"' in subject_page.text
        form = {"purpose": "招投标审查"}
        taken = await client.post(f"/subjects/enterprise/{firm.id}", data=form,
                                  headers=as_client())
        assert taken.status_code == 201, taken.text
        [form_code] = set(re.findall(r"[0-9A-Z]{5}(?:-[0-9A-Z]{5}){3}", taken.text))
        form_pdf = await client.get(re.findall(r'href="(/api/v1/reports/[^"]+\.pdf)"',
                                               taken.text)[0])
        assert form_code in text_of(form_pdf.content)
        refused = await client.post(f"/subjects/enterprise/{firm.id}",
                                    data={"purpose": ""}, headers=as_client())
        assert refused.status_code == 422 and "查询用途" in refused.text

        # Unknown or malformed codes and report ids: 404.
        for path in (f"/api/v1/reports/verify/{report.new_code()}", "/api/v1/reports/verify/x",
                     f"/api/v1/reports/{uuid.uuid4()}.pdf", "/api/v1/reports/nope.pdf",
                     f"/api/v1/reports/{issued['report_id']}.txt"):
            answer = await client.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("application/problem+json")


async def test_an_individual_is_masked_and_a_hidden_one_gets_a_report_only_with_its_token(
        settings: Settings, producer: AIOKafkaProducer,
        services: dict[str, ServiceProcess]) -> None:
    debtor = individual(name="王报告")
    await send(producer, settings, "court", record(debtor))
    publisher = services["publisher"].url()
    await poll_json(f"{publisher}/api/v1/subjects/individual/{debtor.id}",
                    lambda r: r.status_code == 200 and r.json()["lists"] != [], timeout=60)
    hidden = individual(name="赵无记录")

    async with httpx.AsyncClient(base_url=publisher, timeout=60) as client:
        r = await take(client, {"type": "individual", "id": debtor.id})
        assert r.status_code == 201, r.text
        text = text_of((await client.get(r.json()["url"])).content)
        assert "王报告" in text and mask_resident_id(debtor.id) in text
        assert debtor.id not in text
        assert "黑名单" in text

        # Nothing public about this person: the same 404 as an unknown subject...
        assert (await take(client, {"type": "individual", "id": hidden.id})).status_code == 404
        # ...but with its own token, a clean report, logged for it with the purpose.
        issued = await credentials.issue(settings, "subject", f"individual:{hidden.id}")
        await wait_until_accepted(issued.token, f"{publisher}/api/v1/me")
        own = await take(client, {"type": "individual", "id": hidden.id}, "租房审核",
                         headers=token_header(issued.token))
        assert own.status_code == 201, own.text
        text = text_of((await client.get(own.json()["url"])).content)
        assert text.count("未查询到相关记录") == len(report.SECTIONS)
        assert mask_resident_id(hidden.id) in text and own.json()["verification_code"] in text
        # Another subject's token is no key to this one; a bad token is refused.
        other = await credentials.issue(settings, "subject", f"individual:{debtor.id}")
        await wait_until_accepted(other.token, f"{publisher}/api/v1/me")
        assert (await take(client, {"type": "individual", "id": hidden.id},
                           headers=token_header(other.token))).status_code == 404
        assert (await take(client, {"type": "individual", "id": hidden.id},
                           headers=token_header("xy_nope.nope"))).status_code == 401
        logged = await poll_json(f"{publisher}/api/v1/me/queries",
                                 lambda q: any(v["channel"] == "report"
                                               for v in q.json()["queries"]),
                                 headers=token_header(issued.token))
        [view] = [v for v in logged.json()["queries"] if v["channel"] == "report"]
        assert view["purpose"] == "租房审核"


@pytest.mark.parametrize(("body", "field"), [
    ({"subject": {"type": "enterprise", "id": "91440400MA4W8KX"}, "purpose": "x"},
     "subject.id"),
    ({"subject": {"type": "planet", "id": "91440400MA4W8KXA0Y"}, "purpose": "x"},
     "subject.type"),
    ({"subject": {"type": "enterprise", "id": "ABC"}}, "purpose"),
    ({"subject": {"type": "enterprise", "id": "ABC"}, "purpose": "用" * 201}, "purpose"),
    ({"subject": {"type": "enterprise", "id": "ABC"}, "purpose": ""}, "purpose"),
    ({"subject": {"type": "enterprise", "id": "ABC"}, "purpose": "a\x00b"}, "purpose"),
    ({"purpose": "x"}, "subject"),
])
async def test_bad_input_is_refused_naming_the_field(
        services: dict[str, ServiceProcess], body: dict[str, Any], field: str) -> None:
    async with httpx.AsyncClient(base_url=services["publisher"].url()) as client:
        r = await client.post("/api/v1/reports", json=body, headers=as_client())
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.json()


async def test_an_unknown_subject_is_404(services: dict[str, ServiceProcess]) -> None:
    async with httpx.AsyncClient(base_url=services["publisher"].url()) as client:
        r = await take(client, {"type": "individual", "id": individual().id})
    assert r.status_code == 404


async def test_a_client_over_its_limit_gets_429_with_retry_after(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    client_address = as_client()
    limit = int(settings.report_rate_limit.split("/")[0])
    async with httpx.AsyncClient(base_url=services["publisher"].url()) as client:
        unknown = {"subject": {"type": "individual", "id": individual().id}, "purpose": "x"}
        for _ in range(limit):
            r = await client.post("/api/v1/reports", json=unknown, headers=client_address)
            assert r.status_code == 404
        r = await client.post("/api/v1/reports", json=unknown, headers=client_address)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) > 0
        # Another client is not held back.
        assert (await client.post("/api/v1/reports", json=unknown, headers=as_client())
                ).status_code == 404


async def test_a_saturated_renderer_answers_503_with_retry_after(
        settings: Settings, producer: AIOKafkaProducer,
        services: dict[str, ServiceProcess]) -> None:
    firm = enterprise("珠海市并发报告测试有限公司")
    await send(producer, settings, "amr", record(firm, "amr.admin_penalty"))
    publisher = services["publisher"].url()
    await poll_json(f"{publisher}/api/v1/subjects/enterprise/{firm.id}",
                    lambda r: r.status_code == 200)
    burst = 4 * (settings.report_workers + settings.report_queue_max)
    async with httpx.AsyncClient(base_url=publisher, timeout=120) as client:
        answers = await asyncio.gather(*(take(client, {"type": "enterprise", "id": firm.id})
                                         for _ in range(burst)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {201, 503}, statuses
    assert 201 in statuses and 503 in statuses, statuses
    busy = next(a for a in answers if a.status_code == 503)
    assert int(busy.headers["Retry-After"]) > 0
    assert busy.json()["code"] == "busy"

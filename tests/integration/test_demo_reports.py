"""Every demo subject's report is a Chinese PDF whose verify answer matches its sha256 (issue 8,
"Done when"): `deploy/demo.py`'s demo records, all of them (the seed `./xinyong up` loads,
about 300 subjects of the five types), sent as the departments send them; then each
subject's report is taken, downloaded and verified.

Every demo subject but a few persons has something public, so each report is taken on the
public route, as anyone would (no token; a 404 fails the test). A person whose every record
is the listing of a list told before publication (tax, wage arrears: their entries wait out
the notice period) has nothing public yet: the public route answers 404 for them. Reports
are taken a few at a time, within the renderer's queue (`report_queue_max`), each as a
client of its own (the per-client report limit). About a minute on the 2-core machine for
the 306 subjects."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pypdf import PdfReader

from deploy import demo
from deploy.stack import ServiceProcess
from services.publisher import report
from shared import clock
from shared.catalogue import Catalogue, load_catalogue
from shared.contract import subject_key
from shared.identifiers import mask_resident_id
from shared.settings import Settings
from tests.integration.kit import as_client, send
from tests.polling import until

pytestmark = pytest.mark.integration

# The seed `./xinyong up` and `./xinyong load-demo` use (deploy/cli.py): the demo itself.
DEMO_SEED = 2026
# Reports in flight at once: the renderer's workers, busy, without filling its queue (a
# full queue answers 503, which this test would then have to wait out).
IN_FLIGHT = 3
TITLE = "公共信用信息报告"


def text_of(pdf: bytes) -> str:
    """The PDF's text without whitespace: a table cell may break a long value."""
    text = "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)
    return "".join(text.split())


def waiting_items(catalogue: Catalogue) -> set[str]:
    """Items whose record shows only once its entry is published, and whose entry waits: a
    list Xinyong tells the subject of, with a notice period or Order 54's month (the test's
    own reading of docs/decisions.md, "A record that is the listing waits for it")."""
    return {item for lst in catalogue.lists.values()
            if lst.notified_by == "xinyong" or lst.notice_period_days > 0
            or lst.publish_month_after_service for item in lst.items}


def printed_code(subject: dict[str, str]) -> str:
    """The subject's code as a report prints it: an identity number masked."""
    if subject["type"] == "individual":
        return mask_resident_id(subject["id"])
    return subject["id"]


async def test_every_demo_subjects_report_is_a_chinese_pdf_that_verify_matches(
        settings: Settings, producer: AIOKafkaProducer,
        services: dict[str, ServiceProcess], db: Callable[[str], Any]) -> None:
    records = list(demo.demo_records(seed=DEMO_SEED, today=clock.today()))
    subjects: dict[str, dict[str, str]] = {}
    shown: set[str] = set()  # has a record that shows before any notice period ends
    waits = waiting_items(load_catalogue())
    for _, data in records:
        key = subject_key(data["subject"]["type"], data["subject"]["id"])
        subjects[key] = data["subject"]
        if data.get("catalogue_item") not in waits:
            shown.add(key)
    hidden = set(subjects) - shown
    assert hidden and all(subjects[k]["type"] == "individual" for k in hidden)
    types = {s["type"] for s in subjects.values()}
    assert types == {"enterprise", "individual", "institution", "social_org", "government"}
    # In order per subject (a breach after its signing, a withdrawal after its record).
    for dept, data in records:
        await send(producer, settings, dept, data)

    # Every demo subject published (its first record is enough: the report prints what is
    # public when it is taken, whatever that is).
    pool = db("publisher")
    held: list[int] = [0]

    async def published() -> bool:
        held[0] = await pool.fetchval("SELECT count(*) FROM subjects WHERE subject_key = ANY($1)",
                                      list(subjects))
        return held[0] >= len(subjects)

    await until(published, lambda: f"published {held[0]} of {len(subjects)} subjects",
                timeout=90, interval=0.5)

    publisher = services["publisher"].url()
    gate = asyncio.Semaphore(IN_FLIGHT)
    taken: set[str] = set()

    async def one(client: httpx.AsyncClient, key: str, subject: dict[str, str]) -> None:
        body = {"subject": {"type": subject["type"], "id": subject["id"]},
                "purpose": "示例数据报告核验"}
        async with gate:
            r = await client.post("/api/v1/reports", json=body, headers=as_client())
            if key in hidden:
                assert r.status_code == 404, (key, r.text)
                return
            assert r.status_code == 201, (key, r.text)
            issued = r.json()
            pdf = await client.get(issued["url"])
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.content.startswith(b"%PDF-")
        code = issued["verification_code"]
        assert report.normalize_code(code) == code
        text = text_of(pdf.content)
        for wanted in (TITLE, code, printed_code(subject)):
            assert wanted in text, (key, wanted)
        verified = (await client.get(f"/api/v1/reports/verify/{code}")).json()
        assert verified["valid"] is True and verified["report_id"] == issued["report_id"]
        assert verified["sha256"] == hashlib.sha256(pdf.content).hexdigest(), key
        assert verified["subject"]["type"] == subject["type"]
        taken.add(key)

    async with httpx.AsyncClient(base_url=publisher, timeout=120) as client:
        await asyncio.gather(*(one(client, k, s) for k, s in subjects.items()))
    assert taken == shown

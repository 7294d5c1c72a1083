"""The public site in a real browser: Debian's Chromium (deploy/browser.sh installs it)
driven by Playwright, on the integration suite's stack (one stack for both: the `services`
fixture counts its users).

A journey is one test function taking `visit` (a page at one size: each journey runs at
desktop 1280x800 and phone 390x844 with touch) and `site` (the subjects this suite
publishes once). `await visit.open(path, "name")` and `await visit.landed("name")` check
every page they reach, once per page name and size:

- `lang="zh-CN"`, one `h1`, every form control with a label;
- axe-core: no serious or critical violation;
- on the phone, no horizontal scroll;
- a full-page screenshot in tests/browser/screenshots/<size>/<name>.png (git-ignored).
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from deploy.demo import DemoSubject, make_uscc
from shared import clock
from shared.settings import Settings
from tests.integration.conftest import producer, services, settings  # noqa: F401
from tests.integration.helpers import enterprise, record
from tests.integration.kit import send
from tests.polling import until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).with_name("screenshots")

SIZES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
              "device_scale_factor": 2},
}

# axe-core's impacts that fail a page; "moderate" and "minor" are reported, not failed.
FAILING_IMPACTS = {"serious", "critical"}

# The name the search journeys look for: simplified here, each character of 视窗浏览测试贸易
# differs from its traditional form (視窗瀏覽測試貿易), so both searches are real tests of the
# site's conversion.
FIRM_NAME = "珠海市视窗浏览测试贸易有限公司"
SEARCH_SIMPLIFIED = "浏览测试贸易"
SEARCH_TRADITIONAL = "瀏覽測試貿易"
LIST = "court.dishonest_debtor"
# More members than one list page holds (services/publisher/api.py::PAGE_SIZE = 20).
LIST_MEMBERS = 21
# The objection journeys each object to a record of their own (an objected record shows
# 异议处理中 instead of the link).
OBJECTION_JOURNEYS = ("mouse", "keyboard", "nojs")
# The firm's public credit commitment (shared/commitments.py) and a government body (机关,
# registered in 斗门区) with an unpaid debt and a court record: on 政务失信机构名单.
COMMITMENT_SIGNER = "李视窗"
BODY_NAME = "珠海市斗门区视窗浏览测试局"
BODY_DISTRICT = "440403"
DEFAULTING_BODIES = "supervision.defaulting_bodies"


@dataclass
class Site:
    public: str
    objection: str
    firm: DemoSubject
    # (journey, size) -> the record that journey objects to
    penalties: dict[tuple[str, str], dict[str, Any]]
    commitment: dict[str, Any]
    body: DemoSubject
    debt: dict[str, Any]

    @property
    def subject_path(self) -> str:
        return f"/subjects/{self.firm.type}/{self.firm.id}"

    @property
    def body_path(self) -> str:
        return f"/subjects/{self.body.type}/{self.body.id}"


def chromium_path() -> str:
    """Debian's Chromium, installed by the project's script when missing."""
    found = subprocess.run(["bash", str(REPO / "deploy" / "browser.sh"), "path"],
                           check=True, capture_output=True, text=True)
    return found.stdout.strip().splitlines()[-1]


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    args = ["--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--no-first-run",
            "--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        # Chromium's sandbox refuses to run as root; the pages are our own.
        args.append("--no-sandbox")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=path, args=args)
        yield b
        await b.close()


@pytest_asyncio.fixture(scope="session")
async def site(settings: Settings, services: Any,  # noqa: F811
               producer: AIOKafkaProducer) -> Site:  # noqa: F811
    """One firm with a court record (on the black list), administrative penalties to
    object to and a public credit commitment, enough other listed firms for a second list
    page, and a government body with two defaults (on 政务失信机构名单); sent as the
    departments send them, waited for on the public API."""
    firm = enterprise(FIRM_NAME)
    penalties: dict[tuple[str, str], dict[str, Any]] = {}
    for n, (journey, size) in enumerate(
            (j, s) for j in OBJECTION_JOURNEYS for s in SIZES):
        data = record(firm, "amr.admin_penalty", document_no=f"珠市监罚〔2026〕{n + 1}号",
                      decided_on=clock.today() - timedelta(days=30 + n))
        penalties[(journey, size)] = data
        await send(producer, settings, "amr", data)
    await send(producer, settings, "court", record(firm, LIST))
    for n in range(LIST_MEMBERS - 1):
        await send(producer, settings, "court",
                   record(enterprise(f"珠海市名单分页测试{n + 1}号商行"), LIST))
    commitment = record(firm, "industry.enterprise_commitment",
                        decided_on=clock.today() - timedelta(days=40), attributes={
                            "commitment": {
                                "kind": "enterprise", "text_version": "2026-01",
                                "signer": {"name": COMMITMENT_SIGNER, "role": "法定代表人"},
                                "term_until": (clock.today() + timedelta(days=700)).isoformat()}})
    await send(producer, settings, "industry", commitment)
    body = DemoSubject("government", make_uscc("11", BODY_DISTRICT, random.Random()), BODY_NAME)
    debt = record(body, "finance.unpaid_government_debt", district=BODY_DISTRICT,
                  document_no="珠财〔2026〕77号", decided_on=clock.today() - timedelta(days=25))
    await send(producer, settings, "finance", debt)
    await send(producer, settings, "court",
               record(body, "court.government_dishonest_debtor", district=BODY_DISTRICT))
    public = services["publisher"].url()
    last: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=public) as client:
        async def published() -> bool:
            profile = await client.get(f"/api/v1/subjects/enterprise/{firm.id}")
            second = await client.get(f"/api/v1/lists/{LIST}", params={"page": 2})
            government = await client.get(f"/api/v1/subjects/government/{body.id}")
            last[:] = [profile, government]
            return bool(profile.status_code == 200 and len(profile.json()["records"]) >= 7
                        and profile.json()["lists"] and profile.json()["commitments"]
                        and second.status_code == 200 and second.json()["members"]
                        and government.status_code == 200 and [
                            m["list"] for m in government.json()["lists"]] == [DEFAULTING_BODIES])

        await until(published, lambda: f"published: {last[0].text[:300]} {last[1].text[:300]}")
    return Site(public=public, objection=services["objection"].url(), firm=firm,
                penalties=penalties, commitment=commitment, body=body, debt=debt)


@dataclass
class Visit:
    """A browser page at one size, and the checks every page it reaches must pass."""

    page: Page
    size: str
    base: str
    # Where axe-core runs when `page` has JavaScript off (axe is a script: in such a page
    # it never answers): a page of the same size with it on, given the same document.
    axe_page: Page | None = None

    async def open(self, url: str, name: str, status: int = 200) -> Page:
        """Go to `url` (a path on the public site, or a full URL) and check the page."""
        answer = await self.page.goto(url if "://" in url else self.base + url)
        assert answer is not None and answer.status == status, \
            f"{url}: {answer.status if answer else None}"
        await self.landed(name)
        return self.page

    async def landed(self, name: str) -> None:
        """The page the browser is on now (after a click or a submit) passes the checks."""
        await self.page.wait_for_load_state()
        await check_page(self.page, self.size, name, self.axe_page)


_AXE = Axe()
# Page names already screenshot and checked with axe at each size: axe takes about a second
# a page here, and a page visited by several journeys is the same page.
_AXE_DONE: set[tuple[str, str]] = set()


async def check_page(page: Page, size: str, name: str, axe_page: Page | None = None) -> None:
    assert await page.get_attribute("html", "lang") == "zh-CN", name
    assert await page.locator("h1").count() == 1, f"{name}: not one h1"
    unlabelled = await page.evaluate("""() => [...document.querySelectorAll(
        'input:not([type=hidden]):not([type=submit]), select, textarea')].filter(
        el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
              && !el.getAttribute('aria-labelledby')).map(el => el.name || el.outerHTML)""")
    assert unlabelled == [], f"{name}: controls without a label: {unlabelled}"
    if size == "phone":
        widths = await page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"{name}: scrolls sideways on the phone: {widths}"
    if (name, size) not in _AXE_DONE:
        _AXE_DONE.add((name, size))
        shot = SCREENSHOTS / size / f"{name}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(shot), full_page=True)
        if axe_page is not None:
            # The pages have no script of their own (the no-JavaScript journey checks):
            # the same document with scripting on is the same page to axe.
            await axe_page.set_content(await page.content())
        results = await _AXE.run(axe_page or page)
        failing = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                   for v in results.response["violations"] if v["impact"] in FAILING_IMPACTS]
        assert failing == [], f"{name} ({size}): axe-core: {failing}"


def client_address() -> str:
    """An address of the context's own for the objection service's per-client limit (the
    test stack trusts X-Forwarded-For from 127.0.0.1): journeys never share a budget."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


async def new_context(browser: Browser, size: str, **options: Any) -> BrowserContext:
    return await browser.new_context(
        **SIZES[size], locale="zh-CN",
        extra_http_headers={"X-Forwarded-For": client_address()}, **options)


@pytest_asyncio.fixture(params=list(SIZES))
async def visit(request: pytest.FixtureRequest, browser: Browser,
                site: Site) -> AsyncIterator[Visit]:
    context = await new_context(browser, request.param)
    page = await context.new_page()
    yield Visit(page, request.param, site.public)
    await context.close()


@pytest_asyncio.fixture(params=list(SIZES))
async def visit_without_js(request: pytest.FixtureRequest, browser: Browser,
                           site: Site) -> AsyncIterator[Visit]:
    """The same, with JavaScript off in the page (axe-core runs on the same document in a
    page of its own with scripting on: in this one it would never answer)."""
    context = await new_context(browser, request.param, java_script_enabled=False)
    axe_context = await new_context(browser, request.param)
    page = await context.new_page()
    yield Visit(page, request.param, site.public, await axe_context.new_page())
    await axe_context.close()
    await context.close()

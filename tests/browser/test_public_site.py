"""Journeys on the public site and the objection form, each at desktop and phone size.

Adding a journey: one `async def test_...(visit, site)` that opens pages with `visit.open`
(or clicks and then calls `visit.landed`); the per-page checks (conftest.py) come with it.
A journey whose page does not exist yet is written and skipped with the page it waits for
(`waits_for`); remove the mark when that page lands.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import (
    FIRM_NAME,
    LIST,
    SEARCH_SIMPLIFIED,
    SEARCH_TRADITIONAL,
    Site,
    Visit,
)
from tests.integration.helpers import enterprise

pytestmark = pytest.mark.integration


def waits_for(page: str, issue: str) -> pytest.MarkDecorator:
    return pytest.mark.skip(reason=f"waits for the page {page} ({issue})")


# --- search -------------------------------------------------------------------------------

async def search(visit: Visit, text: str, name: str) -> Page:
    page = await visit.open("/", "home")
    await page.get_by_label("企业、机构名称或统一社会信用代码").fill(text)
    await page.get_by_role("button", name="查询").click()
    await visit.landed(name)
    return page


async def test_search_by_a_fragment_in_simplified_characters(visit: Visit, site: Site) -> None:
    page = await search(visit, SEARCH_SIMPLIFIED, "search-results")
    await expect(page.get_by_role("row").filter(has_text=FIRM_NAME)
                 ).to_contain_text("失信被执行人名单（黑名单）")
    await page.get_by_role("link", name=FIRM_NAME).click()
    await visit.landed("subject")
    await expect(page.locator("h1")).to_have_text(FIRM_NAME)


async def test_search_by_a_fragment_in_traditional_characters(visit: Visit, site: Site) -> None:
    page = await search(visit, SEARCH_TRADITIONAL, "search-results-traditional")
    await expect(page.get_by_role("link", name=FIRM_NAME)).to_be_visible()


async def test_a_refused_search_says_why_beside_its_field(visit: Visit, site: Site) -> None:
    page = await visit.open("/?q=" + "珠" * 101, "search-refused", status=422)
    field = page.get_by_label("企业、机构名称或统一社会信用代码")
    await expect(field).to_have_attribute("aria-invalid", "true")
    described = (await field.get_attribute("aria-describedby") or "").split()
    assert "q-error" in described
    await expect(page.locator("#q-error")).to_contain_text("100")


# --- subject and list pages ---------------------------------------------------------------

async def test_a_subject_page(visit: Visit, site: Site) -> None:
    page = await visit.open(site.subject_path, "subject")
    await expect(page.locator("h1")).to_have_text(FIRM_NAME)
    penalty = site.penalties[("mouse", visit.size)]
    row = page.get_by_role("row").filter(has_text=penalty["document_no"])
    await expect(row).to_contain_text("市场监督管理局")
    # The list's kind in words, not only in red.
    await expect(page.get_by_role("listitem").filter(has_text="失信被执行人名单")
                 ).to_contain_text("黑名单")


async def test_a_list_page_with_paging(visit: Visit, site: Site) -> None:
    page = await visit.open(f"/lists/{LIST}", "list")
    await expect(page.locator("h1")).to_contain_text("黑名单")
    first = await page.get_by_role("row").count()
    assert first == 21  # a header and a full page of 20
    await page.get_by_role("link", name="下一页").click()
    await visit.landed("list-page-2")
    assert re.search(r"[?&]page=2\b", page.url)
    assert await page.get_by_role("row").count() >= 2
    await expect(page.get_by_role("link", name="上一页")).to_be_visible()


async def test_an_unknown_subject_has_a_page_too(visit: Visit, site: Site) -> None:
    page = await visit.open(f"/subjects/enterprise/{enterprise().id}", "subject-unknown",
                            status=404)
    await expect(page.locator("h1")).to_contain_text("未找到")
    await expect(page.get_by_role("link", name="返回查询首页")).to_be_visible()


async def test_the_announcements_page(visit: Visit, site: Site) -> None:
    page = await visit.open("/announcements", "announcements")
    await expect(page.locator("h1")).to_have_text("拟列入失信名单公告")
    assert await page.get_by_role("row").count() >= 2  # a header, and an entry or 暂无公告


# --- the objection form (its own port) ----------------------------------------------------

async def object_to(page: Page, visit: Visit, site: Site, journey: str) -> None:
    """From the subject page: the link of this journey's record to the objection form."""
    penalty = site.penalties[(journey, visit.size)]
    await visit.open(site.subject_path, "subject")
    await page.get_by_role("link", name=re.compile(re.escape(penalty["document_no"]))).click()
    await visit.landed("objection-form")
    assert page.url.startswith(site.objection + "/objections/new")
    await expect(page.get_by_label("信息编号")).to_have_value(penalty["record_id"])
    await expect(page.get_by_label("统一社会信用代码或身份证号")).to_have_value(site.firm.id)


async def test_the_objection_form_from_the_subject_page(visit: Visit, site: Site) -> None:
    page = visit.page
    await object_to(page, visit, site, "mouse")
    await page.get_by_label("理由").fill("该处罚决定已被复议机关撤销。")
    await page.get_by_label("联系方式").fill("13700000000")
    await page.get_by_role("button", name="提交").click()
    await visit.landed("objection-created")
    await expect(page.locator("h1")).to_have_text("申请已受理")
    # Back on the subject page the record is under objection (once the flag has gone
    # through Kafka to the publisher: the page is loaded again until then).
    penalty = site.penalties[("mouse", visit.size)]
    row = page.get_by_role("row").filter(has_text=penalty["document_no"])
    deadline = time.monotonic() + 30
    while True:
        await visit.open(site.subject_path, "subject-disputed")
        if "异议处理中" in await row.inner_text():
            break
        assert time.monotonic() < deadline, "the record never showed 异议处理中"
        await asyncio.sleep(0.3)


async def test_objection_errors_are_tied_to_their_field(visit: Visit, site: Site) -> None:
    page = visit.page
    penalty = site.penalties[("mouse", visit.size)]
    await visit.open(f"{site.objection}/objections/new?type=enterprise&id={site.firm.id[:-1]}"
                     f"&department=amr&record_id={penalty['record_id']}", "objection-form")
    await page.get_by_label("理由").fill("理由")
    await page.get_by_label("联系方式").fill("13700000000")
    await page.get_by_role("button", name="提交").click()
    await visit.landed("objection-refused")
    field = page.get_by_label("统一社会信用代码或身份证号")
    await expect(field).to_have_attribute("aria-invalid", "true")
    error = page.locator(f"#{await field.get_attribute('aria-describedby')}")
    await expect(error).to_contain_text("18")
    # The summary links to the field; what was typed is still there.
    await expect(page.get_by_role("alert").locator('a[href="#f-id"]')).to_be_visible()
    await expect(page.get_by_label("理由")).to_have_value("理由")


# --- keyboard alone -----------------------------------------------------------------------

async def tab_to(page: Page, selector: str, most: int = 40) -> None:
    """Tab until the element matching `selector` has the focus; every element the focus
    passes through shows it (WCAG 2.1 2.4.7)."""
    for _ in range(most):
        await page.keyboard.press("Tab")
        state = await page.evaluate("""(selector) => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {target: el.matches(selector), visible: el.matches(':focus-visible')
                    && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
                    what: el.outerHTML.slice(0, 80)};
        }""", selector)
        assert state["visible"], f"focus not visible on {state['what']}"
        if state["target"]:
            return
    raise AssertionError(f"{selector} never took the focus")


async def press_enter(page: Page) -> None:
    """Enter on a link or in a form: a key press does not wait for the navigation it starts,
    so the checks would otherwise read the page being left."""
    async with page.expect_navigation():
        await page.keyboard.press("Enter")


async def test_search_by_keyboard_alone(visit: Visit, site: Site) -> None:
    page = await visit.open("/", "home")
    await tab_to(page, "#q")
    await page.keyboard.type(SEARCH_SIMPLIFIED)
    await press_enter(page)
    await visit.landed("search-results")
    await tab_to(page, f'a[href="{site.subject_path}"]')
    await press_enter(page)
    await visit.landed("subject")
    await expect(page.locator("h1")).to_have_text(FIRM_NAME)


async def test_the_objection_form_by_keyboard_alone(visit: Visit, site: Site) -> None:
    page = visit.page
    penalty = site.penalties[("keyboard", visit.size)]
    await visit.open(site.subject_path, "subject")
    await tab_to(page, f'a[href*="{penalty["record_id"]}"]')
    await press_enter(page)
    await visit.landed("objection-form")
    await tab_to(page, "#f-reason")
    await page.keyboard.type("处罚所依据的事实有误。")
    await tab_to(page, "#f-contact")
    await page.keyboard.type("13700000001")
    await tab_to(page, "button[type=submit]")
    await press_enter(page)
    await visit.landed("objection-created")
    await expect(page.locator("h1")).to_have_text("申请已受理")


# --- without JavaScript -------------------------------------------------------------------

async def test_search_and_objection_work_without_javascript(visit_without_js: Visit,
                                                            site: Site) -> None:
    visit = visit_without_js
    page = await search(visit, SEARCH_SIMPLIFIED, "search-results")
    await page.get_by_role("link", name=FIRM_NAME).click()
    await visit.landed("subject")
    penalty = site.penalties[("nojs", visit.size)]
    await page.get_by_role("link", name=re.compile(re.escape(penalty["document_no"]))).click()
    await visit.landed("objection-form")
    await page.get_by_label("理由").fill("处罚对象有误。")
    await page.get_by_label("联系方式").fill("13700000002")
    await page.get_by_role("button", name="提交").click()
    await visit.landed("objection-created")
    await expect(page.locator("h1")).to_have_text("申请已受理")
    assert await page.evaluate("() => document.scripts.length") == 0


# --- pages other work brings (issue 8): written, skipped until their page lands ------------

@waits_for("/subjects/{type}/{id}?as_of= (a date field on the subject page)", "issue 8 item 2")
async def test_a_subject_page_as_of_a_date(visit: Visit, site: Site) -> None:
    page = await visit.open(site.subject_path, "subject")
    await page.get_by_label(re.compile("日期")).fill("2026-01-01")
    await press_enter(page)
    await visit.landed("subject-as-of")
    assert "as_of=2026-01-01" in page.url


@waits_for("/reports/verify and the report download on the subject page", "issue 8 item 3")
async def test_a_credit_report_taken_and_verified(visit: Visit, site: Site) -> None:
    page = await visit.open(site.subject_path, "subject")
    async with page.expect_download() as download:
        await page.get_by_role("button", name=re.compile("信用报告")).click()
    assert (await download.value).suggested_filename.endswith(".pdf")
    await visit.open("/reports/verify", "report-verify")


@waits_for("commitments on the subject page", "issue 8 item 4")
async def test_commitments_on_a_subject_page(visit: Visit, site: Site) -> None:
    page = await visit.open(site.subject_path, "subject")
    await expect(page.get_by_role("heading", name=re.compile("承诺"))).to_be_visible()


@waits_for("/government pages (bodies, their list, district counts)", "issue 8 item 5")
async def test_the_government_pages(visit: Visit, site: Site) -> None:
    await visit.open("/government", "government")

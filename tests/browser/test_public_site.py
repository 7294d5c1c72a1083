"""Journeys on the public site and the objection form, each at desktop and phone size.

Adding a journey: one `async def test_...(visit, site)` that opens pages with `visit.open`
(or clicks and then calls `visit.landed`); the per-page checks (conftest.py) come with it.
A journey whose page does not exist yet is written and skipped with the page it waits for
(`waits_for`); remove the mark when that page lands.
"""

from __future__ import annotations

import hashlib
import io
import re
from datetime import timedelta

import pytest
from playwright.async_api import Page, expect
from pypdf import PdfReader

from shared import clock
from tests.browser.conftest import (
    BODY_NAME,
    COMMITMENT_SIGNER,
    DEFAULTING_BODIES,
    FIRM_NAME,
    LIST,
    SEARCH_SIMPLIFIED,
    SEARCH_TRADITIONAL,
    Site,
    Visit,
)
from tests.integration.helpers import enterprise
from tests.polling import until

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
    async def disputed() -> bool:
        await visit.open(site.subject_path, "subject-disputed")
        return "异议处理中" in await row.inner_text()

    await until(disputed, "the record shows 异议处理中", timeout=30, interval=0.3)


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
            // The outline the element has now, with the focus in it (a date field is never
            // :focus itself: Chromium focuses its day, month or year inside it).
            return {target: el.matches(selector), visible: el.matches(':focus-within')
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


# --- provenance, as-of, commitments, reports, government (issue 8) ------------------------

async def test_a_subject_page_with_provenance(visit: Visit, site: Site) -> None:
    page = await visit.open(site.subject_path, "subject")
    penalty = site.penalties[("mouse", visit.size)]
    row = page.get_by_role("row").filter(has_text=penalty["document_no"])
    # Where the record came from: its id and revision as the department sent them.
    await expect(row).to_contain_text(f"{penalty['record_id']} 第1版")
    await expect(row).to_contain_text("接收")


async def test_a_subject_page_as_of_a_date(visit: Visit, site: Site) -> None:
    page = await visit.open(site.subject_path, "subject")
    today = clock.today().isoformat()
    await page.get_by_label(re.compile("查询日期")).fill(today)
    await page.get_by_role("button", name="查看").click()
    await visit.landed("subject-as-of")
    assert f"as_of={today}" in page.url
    await expect(page.get_by_text(f"以下为 {today} 日终的公示信息")).to_be_visible()
    penalty = site.penalties[("mouse", visit.size)]
    await expect(page.get_by_role("row").filter(has_text=penalty["document_no"])).to_have_count(1)
    # Before Xinyong held anything about the firm there is nothing to show, as for anyone
    # unknown; a day still to come is refused, naming the field.
    yesterday = (clock.today() - timedelta(days=1)).isoformat()
    await visit.open(f"{site.subject_path}?as_of={yesterday}", "subject-unknown", status=404)
    await visit.open(f"{site.subject_path}?as_of=2999-01-01", "subject-as-of-refused",
                     status=422)
    await expect(page.locator("main")).to_contain_text("查询日期")


async def test_commitments_on_a_subject_page(visit: Visit, site: Site) -> None:
    page = await visit.open(site.subject_path, "subject")
    await expect(page.get_by_role("heading", name="信用承诺", exact=True)).to_be_visible()
    section = page.locator("section.commitment").filter(has_text=site.commitment["record_id"])
    # Its state in words.
    await expect(section.get_by_role("heading")).to_contain_text("履行中")
    await expect(section).to_contain_text(COMMITMENT_SIGNER)
    await expect(section).to_contain_text("本企业承诺")


async def test_a_credit_report_taken_and_verified(visit: Visit, site: Site) -> None:
    page = await visit.open(site.subject_path, "subject")
    await page.get_by_label("查询用途").fill("招投标资格审查")
    await page.get_by_role("button", name="出具信用报告").click()
    await visit.landed("report-issued")
    await expect(page.locator("h1")).to_have_text("公共信用信息报告已出具")
    code = (await page.get_by_role("row").filter(has_text="验证码").locator("td").inner_text()
            ).strip()
    async with page.expect_download() as download:
        await page.get_by_role("link", name="下载报告（PDF）").click()
    saved = await (await download.value).path()
    assert (await download.value).suggested_filename.endswith(".pdf")
    pdf = saved.read_bytes()
    text = "".join("".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages
                           ).split())
    for wanted in ("公共信用信息报告", FIRM_NAME, site.firm.id, code, "招投标资格审查"):
        assert wanted in text, wanted

    # The verify page, by the link beside the code: the file in hand matches.
    await page.get_by_role("link", name="信用报告验证").click()
    await visit.landed("report-verified")
    await expect(page.locator("h1")).to_have_text("信用报告验证")
    await expect(page.get_by_label("验证码")).to_have_value(code)
    await expect(page.get_by_role("heading", name="验证结果：有效")).to_be_visible()
    await expect(page.locator("code")).to_have_text(hashlib.sha256(pdf).hexdigest())

    # Typed by a clerk, loosely: the same report; a wrong code says so beside its field.
    await visit.open("/reports/verify", "report-verify")
    await page.get_by_label("验证码").fill(code.lower().replace("-", ""))
    await page.get_by_role("button", name="验证").click()
    await visit.landed("report-verified")
    await expect(page.locator("code")).to_have_text(hashlib.sha256(pdf).hexdigest())
    await page.get_by_label("验证码").fill("A" * 20)
    await page.get_by_role("button", name="验证").click()
    await visit.landed("report-not-verified")
    field = page.get_by_label("验证码")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(f"#{await field.get_attribute('aria-describedby')}")
                 ).to_contain_text("未找到")


async def test_a_report_without_a_purpose_says_why(visit_without_js: Visit, site: Site) -> None:
    """Without JavaScript the browser still refuses an empty purpose (`required`); a purpose
    of spaces reaches the server, which shows the subject page again with the error beside
    the field."""
    visit = visit_without_js
    page = await visit.open(site.subject_path, "subject")
    await page.get_by_label("查询用途").fill("   ")
    await page.get_by_role("button", name="出具信用报告").click()
    await visit.landed("report-refused")
    await expect(page.locator("h1")).to_have_text(FIRM_NAME)
    field = page.get_by_label("查询用途")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(f"#{await field.get_attribute('aria-describedby')}")
                 ).to_contain_text("请填写查询用途")
    # Filled in, the same form issues the report.
    await field.fill("银行贷款审查")
    await page.get_by_role("button", name="出具信用报告").click()
    await visit.landed("report-issued")
    await expect(page.locator("h1")).to_have_text("公共信用信息报告已出具")


async def test_the_government_pages(visit: Visit, site: Site) -> None:
    page = await visit.open(site.body_path, "government-body")
    await expect(page.locator("h1")).to_have_text(BODY_NAME)
    await expect(page.get_by_role("listitem").filter(has_text="政务失信机构名单")
                 ).to_contain_text("黑名单")
    await expect(page.get_by_role("row").filter(has_text=site.debt["document_no"])
                 ).to_contain_text("财政局")

    page = await visit.open(f"/lists/{DEFAULTING_BODIES}", "government-list")
    await expect(page.locator("h1")).to_contain_text("黑名单")
    await expect(page.get_by_role("row").filter(has_text=BODY_NAME)).to_contain_text(
        site.body.id)

    page = await visit.open("/government/districts", "government-districts")
    await page.get_by_role("link", name=re.compile("政务失信机构名单")).click()
    await visit.landed("government-list")
    await visit.open("/government/districts", "government-districts")
    await page.get_by_label("起始日期").fill((clock.today() - timedelta(days=60)).isoformat())
    await page.get_by_label("截止日期").fill(clock.today().isoformat())
    await page.get_by_role("button", name="统计").click()
    await visit.landed("government-districts-figures")
    row = page.get_by_role("row").filter(has_text="斗门区").filter(has_text="拖欠企业账款")
    # 新增, 已纠正, 期末未纠正: this suite's body's debt at least, opened and still open.
    cells = [int(c) for c in (await row.locator("td").all_inner_texts())[2:]]
    assert cells[0] >= 1 and cells[2] >= 1, cells

"""The public site's privacy on the live publisher: masked identity numbers everywhere, one
404 for every subject the public may not see, no minors, and bad input that never gives a
500 (CONTRACT.md, public query site; issue 6, items 5 and 7)."""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.demo import DemoSubject, make_resident_id
from deploy.stack import ServiceProcess
from shared import clock
from shared.settings import Settings
from tests import polling
from tests.integration.conftest import TopicWatcher
from tests.integration.helpers import enterprise, record
from tests.integration.kit import feedback_for, poll_json, send

pytestmark = pytest.mark.integration

COURT = "court.dishonest_debtor"


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def masked(id_number: str) -> str:
    """CONTRACT.md: `440402***********X`, written out here rather than imported."""
    return id_number[:6] + "*" * 11 + id_number[17]


_rng = random.Random()


def person(name: str, birth: date | None = None) -> DemoSubject:
    """A person no other test uses: other modules' people are mostly born on one day, and
    a shared number would make an 'unknown' person known."""
    birth = birth or date(1950, 1, 1) + timedelta(days=_rng.randrange(365 * 40))
    return DemoSubject("individual", make_resident_id("440402", birth, _rng.randrange(1000)),
                       unique_name(name))


def years_ago(years: int, plus_days: int = 0) -> date:
    today = clock.today()
    day = today.replace(year=today.year - years, day=min(today.day, 28))  # no 29 February
    return day + timedelta(days=plus_days + today.day - day.day)


def adult_now_minor_then() -> date:
    """A birth date 18 years and 1-19 days ago: an adult today, 17 on a decision 20 days
    ago (the helpers' default decision date)."""
    return years_ago(18, plus_days=-_rng.randint(1, 19))


DECIDED = clock.today() - timedelta(days=20)


async def accepted(watcher: TopicWatcher, dept: str, data: dict[str, Any]) -> None:
    [fb] = await watcher.wait_for(f"credit.feedback.{dept}", feedback_for(data["record_id"]))
    assert fb["data"]["status"] == "accepted", fb["data"]


async def publisher_snapshot(db: Any, key: str, check: Callable[[dict[str, Any]], bool],
                             timeout: float = 30) -> dict[str, Any]:
    """The snapshot the publisher stored for a subject, once it satisfies `check`: the
    publisher has then seen what the test sent, so a 404 is its answer, not a delay."""
    async def stored() -> dict[str, Any] | None:
        body = await db("publisher").fetchval(
            "SELECT snapshot::text FROM subjects WHERE subject_key = $1", key)
        snapshot = json.loads(body) if body is not None else None
        return snapshot if snapshot is not None and check(snapshot) else None

    return await polling.until(stored, f"the publisher stores {key} as expected",  # type: ignore[no-any-return]
                           timeout=timeout, interval=0.1)


def has_records(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: len(s["records"]) >= count


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    r = await client.get(path, params=params or None)
    assert r.status_code < 500, f"{path}: {r.status_code} {r.text[:300]}"
    return r


def same_answer(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.headers["content-type"], a.headers["content-length"]) == (
        b.status_code, b.headers["content-type"], b.headers["content-length"])
    assert a.content == b.content


async def test_unknown_hidden_expired_and_minor_subjects_get_one_and_the_same_404(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    unknown, hidden, expired = person("无人"), person("撤回"), person("期满")
    # 18 today, but 17 on the decision date 20 days ago: the decision date is what counts.
    minor, shown = person("少年", adult_now_minor_then()), person("公示")

    # The court's records show as soon as they arrive (its list is published at once), so
    # that the 404s below are the withdrawal's, the period's and the age's; ingest refuses
    # the court's record about a minor outright, so the minor's is another item.
    withdrawn = record(hidden, "court.dishonest_debtor", decided_on=DECIDED)
    # Past its 2 years of display, not yet its 5 years of retention (征信业管理条例 art. 16).
    long_ago = record(expired, "court.dishonest_debtor",
                      decided_on=DECIDED - timedelta(days=4 * 365))
    young = record(minor, "hrss.wage_arrears", decided_on=DECIDED)
    public = record(shown, "court.dishonest_debtor", decided_on=DECIDED)
    for data in (withdrawn, long_ago, young, public):
        department = data["catalogue_item"].split(".")[0]
        await send(producer, settings, department, data)
        await accepted(watcher, department, data)
    await send(producer, settings, "court", record(
        hidden, record_id=withdrawn["record_id"], revision=2, action="withdraw"))
    await publisher_snapshot(db, f"individual:{hidden.id}",
                             lambda s: s["records"] and s["records"][0]["status"] == "withdrawn")
    await publisher_snapshot(db, f"individual:{expired.id}", has_records(1))
    await publisher_snapshot(db, f"individual:{minor.id}", has_records(1))
    await publisher_snapshot(db, f"individual:{shown.id}", has_records(1))

    async with httpx.AsyncClient(base_url=services["publisher"].url()) as client:
        # The control: a person with a public record is shown, so the 404s below are choices.
        assert (await get(client, f"/api/v1/subjects/individual/{shown.id}")).status_code == 200
        assert (await get(client, f"/subjects/individual/{shown.id}")).status_code == 200

        api_404 = await get(client, f"/api/v1/subjects/individual/{unknown.id}")
        web_404 = await get(client, f"/subjects/individual/{unknown.id}")
        assert api_404.status_code == web_404.status_code == 404
        assert api_404.headers["content-type"] == "application/problem+json"
        assert web_404.headers["content-type"].startswith("text/html")
        for who in (hidden, expired, minor):
            same_answer(await get(client, f"/api/v1/subjects/individual/{who.id}"), api_404)
            same_answer(await get(client, f"/subjects/individual/{who.id}"), web_404)
            assert who.id not in web_404.text
        # Not a code at all, or a type that does not exist: the same answer again.
        for bad in ("%00", "%C2%B2", "44040219%E2%80%8B85"):
            same_answer(await get(client, f"/api/v1/subjects/individual/{bad}"), api_404)
            same_answer(await get(client, f"/subjects/individual/{bad}"), web_404)
        same_answer(await get(client, f"/api/v1/subjects/person/{shown.id}"), api_404)

        # Searching the full number (or the name) of someone not public answers like an
        # unknown number: the same bytes but for the query it echoes.
        by_unknown = await get(client, "/api/v1/subjects", q=unknown.id)
        assert by_unknown.json()["results"] == []
        for who in (hidden, expired, minor):
            r = await get(client, "/api/v1/subjects", q=who.id)
            assert r.content == by_unknown.content.replace(unknown.id.encode(), who.id.encode())
            assert (await get(client, "/api/v1/subjects", q=who.name)).json()["results"] == []
            page = await get(client, "/", q=who.id)
            assert "未找到相关信用主体" in page.text and who.name not in page.text
        [found] = (await get(client, "/api/v1/subjects", q=shown.id)).json()["results"]
        assert found["id"] == masked(shown.id)


async def test_identity_numbers_are_masked_on_every_public_surface(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    debtor = person("失信人")
    data = record(debtor, COURT, decided_on=DECIDED)
    await send(producer, settings, "court", data)
    await accepted(watcher, "court", data)
    base = services["publisher"].url()
    full, shown = debtor.id.encode(), masked(debtor.id)

    profile = await poll_json(f"{base}/api/v1/subjects/individual/{debtor.id}",
                              lambda r: r.status_code == 200 and r.json()["lists"] != [])
    assert profile.json()["subject"]["id"] == shown
    assert full not in profile.content

    async with httpx.AsyncClient(base_url=base) as client:
        # A full-width copy of the number finds the same person (normalized like ingest).
        wide = debtor.id.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789X"})
        assert (await get(client, f"/api/v1/subjects/individual/{wide}")).json() == \
            profile.json()

        for q in (debtor.id, debtor.name, debtor.id.lower()):
            r = await get(client, "/api/v1/subjects", q=q)
            assert [s["id"] for s in r.json()["results"]] == [shown], q
            assert debtor.id not in json.dumps(r.json()["results"])  # `query` echoes q
        web_search = await get(client, "/", q=debtor.name)
        assert shown in web_search.text and debtor.id not in web_search.text

        member = await find_list_member(client, f"/api/v1/lists/{COURT}", debtor.name)
        assert member["subject"]["id"] == shown
        web_list = await find_web_list_page(client, f"/lists/{COURT}", debtor.name)
        assert shown in web_list and debtor.id not in web_list

        change, body = await find_change(client, f"/api/v1/lists/{COURT}/changes", debtor.name)
        assert (change["op"], change["subject"]["id"]) == ("ADD", shown)
        assert full not in body

        # The subject's page shows the masked number; the full one, which the visitor typed
        # into the address, is only in the objection links (the form needs it).
        page = (await get(client, f"/subjects/individual/{debtor.id}")).text
        assert shown in page
        outside_links = page.replace(f"id={debtor.id}&", "")
        assert debtor.id not in outside_links


async def find_list_member(client: httpx.AsyncClient, path: str, name: str) -> dict[str, Any]:
    page: int | None = 1
    while page is not None:
        r = (await get(client, path, page=page)).json()
        for m in r["members"]:
            if m["subject"]["name"] == name:
                return m  # type: ignore[no-any-return]
        page = r["next_page"]
    raise AssertionError(f"{name} is not on {path}")


async def find_web_list_page(client: httpx.AsyncClient, path: str, name: str) -> str:
    for page in range(1, 501):
        r = await get(client, path, page=page)
        if name in r.text:
            return r.text
        if "下一页" not in r.text:
            break
    raise AssertionError(f"{name} is not on {path}")


async def find_change(client: httpx.AsyncClient, path: str,
                      name: str) -> tuple[dict[str, Any], bytes]:
    since: str | None = None
    while True:
        r = await get(client, path, **({"since": since} if since else {}))
        for c in r.json()["changes"]:
            if c["subject"]["name"] == name:
                return c, r.content
        if not r.json()["changes"]:
            raise AssertionError(f"{name} is not in {path}")
        since = r.json()["next"]


async def test_a_minor_is_neither_listed_nor_shown(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any) -> None:
    """A record decided when its subject was 17 puts nobody on a list and shows nowhere,
    whatever the item (ingest refuses only the court's outright); the person is an adult
    today, so it is the decision date that counts."""
    minor, adult = person("少年", adult_now_minor_then()), person("成年")
    young = record(minor, "tax.major_violation", decided_on=DECIDED)
    control = record(adult, "tax.major_violation", decided_on=DECIDED)
    for data in (young, control):
        await send(producer, settings, "tax", data)
        await accepted(watcher, "tax", data)
    await publisher_snapshot(db, f"individual:{minor.id}", has_records(1))
    await publisher_snapshot(db, f"individual:{adult.id}", has_records(1))

    async def entries() -> list[tuple[str, str]]:
        return [(e["subject_key"], e["status"]) for e in await db("publisher").fetch(
            "SELECT subject_key, status FROM list_entries WHERE subject_key = ANY($1::text[])",
            [f"individual:{minor.id}", f"individual:{adult.id}"])]

    # The adult waits out the 7-day notice period; the minor is never listed.
    assert await polling.until(entries, "the adult's entry") == [
        (f"individual:{adult.id}", "pending")]
    async with httpx.AsyncClient(base_url=services["publisher"].url()) as client:
        for who in (minor, adult):
            # Neither shown nor found: the adult's record is the listing, not yet published.
            assert (await get(client, f"/api/v1/subjects/individual/{who.id}")).status_code == 404
            for q in (who.id, who.name):
                assert (await get(client, "/api/v1/subjects", q=q)).json()["results"] == []


async def test_a_minor_legal_representative_is_not_named_on_the_hiring_notice(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        db: Any) -> None:
    firm, kid = enterprise(unique_name("珠海市少年代表公司")), person("童", years_ago(10))
    registration = record(firm, "amr.legal_representative",
                          attributes={"legal_representative": {"id": kid.id, "name": kid.name}})
    await send(producer, settings, "amr", registration)
    await accepted(watcher, "amr", registration)
    # The registration is in the archive before the court's record: a notice issued without
    # it would name nobody for the wrong reason.
    stored = await publisher_snapshot(db, f"enterprise:{firm.id}", has_records(1))
    assert stored["related_subjects"] == []

    await send(producer, settings, "court", record(firm, COURT))
    [hiring] = await watcher.wait_for("credit.notices.hrss-hiring",
                                      lambda e: e["data"]["subject"]["id"] == firm.id)
    assert hiring["data"]["related_subjects"] == []
    assert kid.id not in str(hiring["data"])


async def test_bad_public_input_is_answered_never_with_a_500(
        services: dict[str, ServiceProcess]) -> None:
    async with httpx.AsyncClient(base_url=services["publisher"].url()) as client:
        r = await client.get("/api/v1/subjects", params={"q": "a\x00b"})
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [
            ("q", "control_character")]
        r = await client.get("/", params={"q": "a\x00b"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")

        unknown = await client.get(f"/api/v1/subjects/individual/{person('无人').id}")
        for path in ("/api/v1/subjects/individual/%00", "/api/v1/subjects/enterprise/%00"):
            same_answer(await client.get(path), unknown)
        web = await client.get("/subjects/individual/%00")
        assert web.status_code == 404 and web.headers["content-type"].startswith("text/html")

        changes = f"/api/v1/lists/{COURT}/changes"
        for since in (_cursor("v1:99999999999999999999"), _cursor(f"v1:{2**63}"),
                      "v1:99999999999999999999", "%00"):
            r = await client.get(f"{changes}?since={since}")
            assert r.status_code == 400, since
            assert r.json()["code"] == "bad_cursor"
        last = (await client.get(changes, params={"since": _cursor(f"v1:{2**63 - 1}")}))
        assert last.status_code == 200 and last.json()["changes"] == []

        for path in ("/api/v1/subjects?q=x", f"/api/v1/lists/{COURT}"):
            r = await client.get(f"{path}{'&' if '?' in path else '?'}page=501")
            assert r.status_code == 422
            assert [e["field"] for e in r.json()["errors"]] == ["page"]
        for path in ("/?q=x&page=501", f"/lists/{COURT}?page=501"):
            assert (await client.get(path)).status_code == 422


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


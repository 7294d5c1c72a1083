"""One court record through all four services, on the real broker and database."""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaProducer

from deploy.stack import ServiceProcess
from shared.settings import Settings
from tests.integration.conftest import TopicWatcher
from tests.integration.helpers import enterprise, record
from tests.integration.kit import poll_json, send

pytestmark = pytest.mark.integration


async def test_court_record_lists_notifies_and_withdrawal_revokes(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    firm = enterprise("珠海市骨架测试建设工程有限公司")
    data = record(firm, "court.dishonest_debtor")
    started = time.monotonic()
    await send(producer, settings, "court", data)

    feedback = await watcher.wait_for(
        "credit.feedback.court", lambda e: e["data"]["record_id"] == data["record_id"])
    assert feedback[0]["data"]["status"] == "accepted"
    assert feedback[0]["type"] == "cn.zhuhai.credit.record.feedback.v1"

    notices = await watcher.wait_for(
        "credit.notices.finance-procurement",
        lambda e: e["data"]["subject"]["id"] == firm.id and e["data"]["kind"] == "penalty")
    notice = notices[0]["data"]
    assert notice["list"] == "court.dishonest_debtor"
    assert notice["measure"] == "procurement.exclude"
    assert notice["basis"] == [{"department": "court", "record_id": data["record_id"],
                                "revision": 1}]
    assert notices[0]["type"] == "cn.zhuhai.credit.notice.v1"
    assert notices[0]["subject"] == f"enterprise:{firm.id}"

    profile_url = f"{services['publisher'].url()}/api/v1/subjects/enterprise/{firm.id}"
    profile = (await poll_json(profile_url,
                               lambda r: r.status_code == 200 and r.json()["lists"])).json()
    assert [m["list"] for m in profile["lists"]] == ["court.dishonest_debtor"]
    assert profile["lists"][0]["kind"] == "black"
    assert profile["records"][0]["record_id"] == data["record_id"]
    print(f"\naccepted, notice and profile within {time.monotonic() - started:.2f}s")

    page = await poll_json(f"{services['publisher'].url()}/subjects/enterprise/{firm.id}",
                           lambda r: r.status_code == 200)
    assert 'lang="zh-CN"' in page.text and firm.name in page.text
    assert "失信被执行人名单" in page.text
    found = await poll_json(f"{services['publisher'].url()}/api/v1/subjects?q=骨架测试",
                            lambda r: r.status_code == 200)
    assert [(m["id"], m["lists"]) for m in found.json()["results"]] == [
        (firm.id, ["court.dishonest_debtor"])]

    # Every other black-list agency got its own notice, each with its own stable id.
    for agency in ("housing-bidding", "land", "ndrc-projects", "hrss-hiring"):
        await watcher.wait_for(f"credit.notices.{agency}",
                               lambda e: e["data"]["subject"]["id"] == firm.id)

    await send(producer, settings, "court",
               record(firm, record_id=data["record_id"], revision=2, action="withdraw"))
    revocations = await watcher.wait_for(
        "credit.notices.finance-procurement",
        lambda e: e["data"]["subject"]["id"] == firm.id and e["data"]["kind"] == "revocation")
    revocation = revocations[0]["data"]
    assert revocation["revokes"] == notice["notice_id"]
    assert revocation["notice_id"] != notice["notice_id"]
    await poll_json(profile_url, lambda r: r.json()["lists"] == [] and r.json()["records"] == [])

    ops, cursor = [], ""
    while True:  # the feed comes in pages; `next` is the cursor for the following one
        page_of_changes = (await poll_json(
            f"{services['publisher'].url()}/api/v1/lists/court.dishonest_debtor/changes"
            f"?since={cursor}", lambda r: r.status_code == 200)).json()
        if not page_of_changes["changes"]:
            break
        ops += [c["op"] for c in page_of_changes["changes"] if c["subject"]["id"] == firm.id]
        cursor = page_of_changes["next"]
    assert ops == ["ADD", "DEL"]

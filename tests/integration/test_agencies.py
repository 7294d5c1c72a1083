"""Agencies over HTTP and notices that follow the catalogue and the archive, on the real
broker and database: the history seen by a poller while the worker, the list timer and
HTTP feedback write, and again after the topic's records are deleted; deadlines across a
holiday and the gauge; feedback that only moves forward; a measure added then removed
across restarts, as what-if predicted; a legal representative changed."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer, TopicPartition
from confluent_kafka import TopicPartition as AdminPartition

from deploy import credentials
from deploy.stack import ServiceProcess
from shared.settings import Settings
from tests.integration.conftest import STACK, TopicWatcher, wait_until_accepted
from tests.integration.helpers import enterprise, individual, record
from tests.integration.kit import send, token_header
from tests.polling import until

pytestmark = pytest.mark.integration

# The issue asks for a 20,000-record run; on this machine's 2 shared cores the suite takes
# fewer (each a court record: 5 notices, 1 of them to land), set by the environment.
RECORDS = int(os.environ.get("XINYONG_TEST_HISTORY_RECORDS", "400"))


@pytest.fixture(scope="module")
async def land(settings: Settings, services: dict[str, ServiceProcess]) -> str:
    issued = await credentials.issue(settings, "agency", "land")
    await wait_until_accepted(issued.token, services["publisher"].url()
                              + "/api/v1/agencies/land/notices")
    return issued.token


async def _history(client: httpx.AsyncClient, path: str, token: str,
                   since: str | None = None) -> tuple[list[dict[str, Any]], str]:
    seen: list[dict[str, Any]] = []
    while True:
        r = await client.get(path, params={"limit": 1000, **({"since": since} if since else {})},
                             headers=token_header(token))
        assert r.status_code == 200, r.text
        page = r.json()
        seen += page["notices"]
        if page["next"] == since or not page["notices"]:
            return seen, page["next"]
        since = page["next"]


async def test_a_poller_sees_every_notice_once_in_topic_order_whatever_the_retention(
        settings: Settings, services: dict[str, ServiceProcess], producer: AIOKafkaProducer,
        watcher: TopicWatcher, land: str, db: Any) -> None:
    url = services["publisher"].url()
    firms = [enterprise() for _ in range(RECORDS)]
    delayed = [enterprise() for _ in range(10)]  # published by the list timer
    seen: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    done = asyncio.Event()

    async def poll() -> None:
        since = None
        async with httpx.AsyncClient(base_url=url) as client:
            while not done.is_set():
                page, since = await _history(client, "/api/v1/agencies/land/notices", land,
                                             since)
                for item in page:
                    notice_id = item["notice"]["notice_id"]
                    assert notice_id not in seen, f"{notice_id} seen twice"
                    seen[notice_id] = item
                    order.append(notice_id)
                await asyncio.sleep(0.05)

    async def answer() -> None:
        """HTTP writes beside the worker and the timer: feedback on what the poller saw."""
        answered: set[str] = set()
        async with httpx.AsyncClient(base_url=url) as client:
            while not done.is_set():
                for notice_id in [n for n in list(order) if n not in answered][:20]:
                    r = await client.post(f"/api/v1/notices/{notice_id}/feedback",
                                          json={"status": "received"}, headers=token_header(land))
                    assert r.status_code == 200, r.text
                    answered.add(notice_id)
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(poll()), asyncio.create_task(answer())]
    for f in delayed:
        await send(producer, settings, "tax", record(f, "tax.major_violation"))
    for f in firms:
        await send(producer, settings, "court", record(f, "court.dishonest_debtor"))
    keys = [f"enterprise:{f.id}" for f in delayed]
    async def entered() -> bool:
        return await db("publisher").fetchval(  # type: ignore[no-any-return]
            "SELECT count(*) FROM list_entries WHERE subject_key = ANY($1::text[])", keys) >= 10

    await until(entered, "the delayed firms' entries", timeout=120)
    await db("publisher").execute(
        "UPDATE list_entries SET publish_at = now() WHERE subject_key = ANY($1::text[])"
        " AND status = 'pending'", keys)
    ours = {f.id for f in [*firms, *delayed]}
    sent = await watcher.wait_for("credit.notices.land",
                                  lambda e: e["data"]["subject"]["id"] in ours,
                                  count=len(ours), timeout=300)
    await until(lambda: not {e["data"]["notice_id"] for e in sent} - set(seen),
                "the poller saw every notice")
    done.set()
    await asyncio.gather(*tasks)

    # Each notice exactly as sent; one subject's in topic order (here: one each, by partition
    # offset order across the subjects of a partition).
    for e in sent:
        assert seen[e["data"]["notice_id"]]["notice"] == e["data"]
    by_partition: dict[str, list[str]] = {}
    for e in sorted(watcher.events["credit.notices.land"], key=lambda e: e["_offset"]):
        by_partition.setdefault(e["subject"], []).append(e["data"]["notice_id"])
    position = {n: i for i, n in enumerate(order)}
    for notices in by_partition.values():
        known = [n for n in notices if n in position]
        assert known == sorted(known, key=position.__getitem__)

    # The topic loses its records (retention, delete_records): the history still has them.
    # Up to where the watcher has read, so that its position stays within the log.
    kafka = credentials.admin(settings).client
    topic = settings.topic("credit.notices.land")
    assert watcher._consumer is not None
    ends = {}
    for p in kafka.list_topics(topic, timeout=10).topics[topic].partitions:
        tp = TopicPartition(topic, p)
        ends[p] = await watcher._consumer.position(tp)
    for future in kafka.delete_records(
            [AdminPartition(topic, p, offset) for p, offset in ends.items()]).values():
        future.result(timeout=30)
    # The watcher's consumer does not survive records deleted under it (measured): it reads
    # every topic again from the start, as later tests expect.
    await watcher.stop()
    await watcher.start()
    async with httpx.AsyncClient(base_url=url) as client:
        replay, _ = await _history(client, "/api/v1/agencies/land/notices", land)
    assert {e["data"]["notice_id"] for e in sent} <= {r["notice"]["notice_id"] for r in replay}


async def test_errors_of_the_history(services: dict[str, ServiceProcess], land: str) -> None:
    async with httpx.AsyncClient(base_url=services["publisher"].url()) as client:
        assert (await client.get("/api/v1/agencies/land/notices")).status_code == 401
        other = await client.get("/api/v1/agencies/housing-bidding/notices",
                                 headers=token_header(land))
        assert other.status_code == 403
        import base64
        for cursor in [base64.urlsafe_b64encode(b"n1:99999999999999999999").decode(),
                       base64.urlsafe_b64encode(b"v1:1").decode(), "not a cursor"]:
            r = await client.get("/api/v1/agencies/land/notices", params={"since": cursor},
                                 headers=token_header(land))
            assert r.status_code == 400 and r.json()["code"] == "bad_cursor", r.text
        for limit in ("0", "1001", "x"):
            r = await client.get("/api/v1/agencies/land/overdue", params={"limit": limit},
                                 headers=token_header(land))
            assert r.status_code == 422, r.text


async def test_overdue_across_a_holiday_the_gauge_and_forward_only_feedback(
        settings: Settings, services: dict[str, ServiceProcess], producer: AIOKafkaProducer,
        watcher: TopicWatcher, land: str, db: Any) -> None:
    firm = enterprise()
    await send(producer, settings, "court", record(firm, "court.dishonest_debtor"))
    [notice] = await watcher.wait_for("credit.notices.land",
                                      lambda e: e["data"]["subject"]["id"] == firm.id)
    notice_id = notice["data"]["notice_id"]
    # Issued on Wednesday 2026-09-30: 10 working days over the National Day holiday
    # (1-7 October) and the make-up Saturday 10 October are due Tuesday 20 October.
    await db("publisher").execute(
        "UPDATE notices SET issued_at = '2026-09-30 10:00+08', due_by = NULL"
        " WHERE notice_id = $1::uuid", notice_id)
    url = services["publisher"].url()
    async with httpx.AsyncClient(base_url=url) as client:
        async def listed_overdue() -> list[dict[str, Any]]:
            page, _ = await _history(client, "/api/v1/agencies/land/overdue", land)
            return [o for o in page if o["notice"]["notice_id"] == notice_id]

        mine = await until(listed_overdue, "the notice listed overdue", timeout=30)
        assert mine[0]["due_by"] == "2026-10-20" and mine[0]["overdue"] is True
        metrics = f"http://127.0.0.1:{settings.metrics_port('publisher')}/metrics"

        async def counted() -> bool:
            return 'xinyong_notices_overdue{agency="land",measure="land.restrict",' \
                'service="publisher"} 0.0' not in (await client.get(metrics)).text

        await until(counted, "the gauge counted it", interval=1)

        applied = await client.post(f"/api/v1/notices/{notice_id}/feedback",
                                    json={"status": "applied"}, headers=token_header(land))
        assert applied.status_code == 200
        late = await client.post(f"/api/v1/notices/{notice_id}/feedback",
                                 json={"status": "received"}, headers=token_header(land))
        assert late.status_code == 409 and late.json()["code"] == "feedback_final"
        assert late.json()["feedback_status"] == "applied"
        overdue, _ = await _history(client, "/api/v1/agencies/land/overdue", land)
        assert notice_id not in {o["notice"]["notice_id"] for o in overdue}
    # Over Kafka a late `received` is recorded and changes nothing.
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "agency/land",
             "type": "cn.zhuhai.credit.notice.feedback.v1", "subject": notice["subject"],
             "datacontenttype": "application/json",
             "data": {"notice_id": notice_id, "status": "received"}}
    await producer.send_and_wait(settings.topic("credit.notice-feedback.land"),
                                 json.dumps(event).encode(), key=notice["subject"].encode())
    await until(lambda: db("publisher").fetchval(
        "SELECT count(*) FROM notice_feedback_history WHERE notice_id = $1::uuid"
        " AND channel = 'kafka' AND outcome = 'refused'", notice_id),
        "the late Kafka feedback recorded as refused", timeout=30)
    assert await db("publisher").fetchval(
        "SELECT feedback_status FROM notices WHERE notice_id = $1::uuid", notice_id) == "applied"


def _catalogue_with(tmp: Path, extra: dict[str, Any]) -> Path:
    raw = yaml.safe_load(Path(STACK.settings.catalogue_path).read_text(encoding="utf-8"))
    raw["measures"].update(extra)
    path = tmp / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _restart(publisher: ServiceProcess, catalogue: Path | None) -> None:
    publisher.stop()
    env = dict(STACK.env)
    if catalogue is not None:
        env["XINYONG_CATALOGUE_PATH"] = str(catalogue)
    publisher.start(env)
    publisher.wait_ready(120)


async def test_a_measure_added_then_removed_across_restarts_as_what_if_predicted(
        settings: Settings, services: dict[str, ServiceProcess], producer: AIOKafkaProducer,
        watcher: TopicWatcher, operator_token: str, tmp_path: Path, db: Any) -> None:
    firms = [enterprise() for _ in range(3)]
    for f in firms:
        await send(producer, settings, "court", record(f, "court.dishonest_debtor"))
    for f in firms:
        await watcher.wait_for("credit.notices.land",
                               lambda e, f=f: e["data"]["subject"]["id"] == f.id)
    measure = {"name": "土地出让前核查", "agency": "land", "kind": "penalty",
               "lists": ["court.dishonest_debtor"], "feedback_within": 5}
    publisher = services["publisher"]
    async with httpx.AsyncClient(base_url=publisher.url()) as client:
        r = await client.post("/api/v1/what-if", content=yaml.safe_dump(
            {"measures": {"land.notify": measure}}, allow_unicode=True).encode(),
            headers={**token_header(operator_token), "Content-Type": "application/yaml"})
    assert r.status_code == 200, r.text
    predicted = r.json()["agencies"]["land"]["sent"]
    assert not predicted["truncated"]
    expected = {s["subject"]["key"] for s in predicted["subjects"]
                if s["measure"] == "land.notify"}
    assert {f"enterprise:{f.id}" for f in firms} <= expected

    async def notify(kind: str) -> list[Any]:
        """What the publisher sent (its notices, written with their outbox events)."""
        return await db("publisher").fetch(  # type: ignore[no-any-return]
            "SELECT notice_id, subject_key FROM notices WHERE agency = 'land'"
            " AND measure = 'land.notify' AND kind = $1", kind)

    async def until_count(kind: str, n: int) -> list[Any]:
        async def enough() -> list[Any] | None:
            return rows if len(rows := await notify(kind)) >= n else None

        return await until(enough, f"{n} {kind} notices", timeout=120,  # type: ignore[no-any-return]
                           interval=0.5)

    _restart(publisher, _catalogue_with(tmp_path, {"land.notify": measure}))
    sent = await until_count("penalty", len(expected))
    await asyncio.sleep(3)
    assert {r["subject_key"] for r in await notify("penalty")} == expected  # as predicted
    assert len(sent) == len(expected)

    _restart(publisher, None)  # the measure removed: one revocation each
    await until_count("revocation", len(expected))
    _restart(publisher, None)  # a third start sends nothing
    await asyncio.sleep(5)
    assert len(await notify("penalty")) == len(await notify("revocation")) == len(expected)


async def test_a_new_legal_representative_replaces_the_hiring_notice_revocation_first(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    firm, old, new = enterprise(), individual(), individual()
    rep = record(firm, "amr.legal_representative",
                 attributes={"legal_representative": {"id": old.id, "name": old.name}})
    await send(producer, settings, "amr", rep)
    await asyncio.sleep(1)
    await send(producer, settings, "court", record(firm, "court.dishonest_debtor"))
    [first] = await watcher.wait_for(
        "credit.notices.hrss-hiring", lambda e: e["data"]["subject"]["id"] == firm.id)
    assert first["data"]["related_subjects"][0]["id"] == old.id
    await send(producer, settings, "amr", {**rep, "revision": 2, "attributes": {
        "legal_representative": {"id": new.id, "name": new.name}}})
    events = await watcher.wait_for(
        "credit.notices.hrss-hiring", lambda e: e["data"]["subject"]["id"] == firm.id,
        count=3)
    events.sort(key=lambda e: e["_offset"])
    revocation, replacement = events[1]["data"], events[2]["data"]
    assert revocation["kind"] == "revocation" and revocation["revokes"] == first["id"]
    assert replacement["supersedes"] == first["id"]
    assert [r["id"] for r in replacement["related_subjects"]] == [new.id]

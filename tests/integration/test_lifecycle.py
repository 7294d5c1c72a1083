"""The lifecycle of credit information end to end (issue 7, items 1, 2, 4 and 8) on the real
broker and database with the four services, moving their clock.

These tests run on a stack of their own (topics, databases, ports, and above all a clock
that only moves forward): years pass here, which the rest of the suite must not see. Each
test counts from the clock as it finds it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, ResourceType

from deploy import stack
from deploy.credentials import admin as kafka_admin
from shared import clock
from shared.catalogue import load_catalogue
from shared.kafka import make_producer
from shared.topics import AGGREGATES, CREDENTIALS, SERVICES, all_topics
from tests import polling
from tests.integration.conftest import STACK, TopicWatcher
from tests.integration.helpers import enterprise, individual, record
from tests.integration.kit import as_client, poll_json, send, send_raw

pytestmark = pytest.mark.integration

LIFE = stack.IsolatedStack(
    "lc", int(os.environ.get("XINYONG_TEST_PORT_BASE", "18000")) + 10,
    XINYONG_PUBLIC_RATE_LIMIT="100000/minute",
    XINYONG_TRUSTED_PROXIES="127.0.0.1",
    XINYONG_OBJECTION_RATE_LIMIT_CLIENT="40/minute",
    # The sweeps look every second: a test moves the clock and waits a moment.
    XINYONG_SWEEP_INTERVAL_SECONDS="1",
    XINYONG_PURGE_BATCH="10")
COURT = "court.dishonest_debtor"
WAGES = "hrss.wage_arrears"
WAIT = 180.0  # seconds: the machine is shared, and sometimes very busy


class Life:
    """This module's stack, and the clients a test needs on it."""

    def __init__(self) -> None:
        self.stack = LIFE
        self.settings = LIFE.settings
        self.producer: AIOKafkaProducer | None = None
        self.watcher: TopicWatcher | None = None
        self.pools: dict[str, asyncpg.Pool] = {}

    def url(self, service: str) -> str:
        return self.stack.processes[service].url()

    def db(self, service: str) -> asyncpg.Pool:
        return self.pools[service]

    def move_clock(self, by: timedelta) -> None:
        self.stack.move_clock(by)

    def move_clock_to(self, day: date) -> None:
        """Move forward so that it is `day` in Zhuhai (a few hours into it)."""
        assert day >= clock.today(), f"the clock only moves forward ({day} < {clock.today()})"
        self.move_clock(timedelta(days=(day - clock.today()).days))

    async def wait(self, topic: str, match: Callable[[dict[str, Any]], bool],
                   count: int = 1) -> list[dict[str, Any]]:
        """Events on a topic of this stack (generous: the machine may be loaded)."""
        assert self.watcher is not None
        return await self.watcher.wait_for(topic, match, timeout=WAIT, count=count)

    async def send(self, dept: str, data: dict[str, Any]) -> dict[str, Any]:
        """Send a record as its department and wait for its feedback."""
        assert self.producer is not None and self.watcher is not None
        event_id = str(uuid.uuid4())
        await send(self.producer, self.settings, dept, data, event_id)
        [feedback] = await self.wait(
            f"credit.feedback.{dept}", lambda e: e["data"]["event_id"] == event_id)
        return feedback["data"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def life_stack() -> Iterator[stack.IsolatedStack]:
    try:
        LIFE.start()
        yield LIFE
    finally:
        LIFE.stop()


@pytest_asyncio.fixture(scope="module")
async def life(life_stack: stack.IsolatedStack) -> AsyncIterator[Life]:
    """The stack started, a department producer, a watcher on its topics, its databases; this
    process reads the stack's clock meanwhile (the suite's other tests read their own)."""
    lf = Life()
    clock.configure(LIFE.settings.test_clock_file)
    lf.producer = make_producer(lf.settings, **LIFE.tester)
    await lf.producer.start()
    lf.watcher = TopicWatcher(lf.settings, LIFE.observer)
    await lf.watcher.start()
    for service in SERVICES:
        lf.pools[service] = await asyncpg.create_pool(lf.settings.dsn(service), min_size=1,
                                                      max_size=2)
    try:
        yield lf
    finally:
        for pool in lf.pools.values():
            await pool.close()
        await lf.watcher.stop()
        await lf.producer.stop()
        clock.configure(STACK.settings.test_clock_file)


# Every wait here is long: a lifecycle step may follow a restart on a busy machine.
until = functools.partial(polling.until, timeout=WAIT)


async def start_again(lf: Life, process: stack.ServiceProcess) -> None:
    """Start a stopped service and wait until it is ready (until the child has become the
    service, its command line is still this process's: not yet "exited")."""
    await asyncio.to_thread(process.start, lf.stack.env)

    async def running() -> bool:
        return process.pid() is not None
    await until(running, f"{process.name} running", timeout=30)
    await asyncio.to_thread(process.wait_ready)


async def outboxes_empty(lf: Life) -> None:
    async def empty() -> bool:
        for service in SERVICES:
            if await lf.db(service).fetchval("SELECT count(*) FROM outbox"):
                return False
        return True
    await until(empty, "every outbox relayed")


# --- item 1 and bad input: what a submission must carry -------------------------------------


async def test_bad_lifecycle_input_is_rejected_naming_the_field(life: Life) -> None:
    today = clock.today()
    firm, person = enterprise(), individual()
    cases = [
        ("hrss", record(person, WAGES, decided_on=today - timedelta(days=10),
                        act_ended_on=(today - timedelta(days=11)).isoformat()),
         ("act_ended_on", "before_decided_on")),
        ("hrss", record(person, WAGES, decided_on=today - timedelta(days=10),
                        act_ended_on=(today + timedelta(days=1)).isoformat()),
         ("act_ended_on", "future_date")),
        ("amr", record(firm, "amr.admin_penalty", attributes={}),
         ("attributes.penalty_class", "required")),
        ("amr", record(firm, "amr.admin_penalty", attributes={"penalty_class": "警告"}),
         ("attributes.penalty_class", "unknown_class")),
        ("court", record(firm, COURT, attributes={"extension_years": 4}),
         ("attributes.extension_years", "out_of_range")),
        ("hrss", record(firm, WAGES, attributes={"extension_years": 1}),
         ("attributes.extension_years", "not_extendable")),
        # Already past its erasure date (征信业管理条例 art. 16): never taken in.
        ("hrss", record(person, WAGES, decided_on=today - timedelta(days=5 * 366)),
         ("decided_on", "retention_expired")),
    ]
    for dept, data, expected in cases:
        feedback = await life.send(dept, data)
        assert feedback["status"] == "rejected", data
        assert [(e["field"], e["code"]) for e in feedback["errors"]] == [expected]
    # The class in force is taken, and decides how long the penalty shows.
    fine = record(firm, "amr.admin_penalty", decided_on=today - timedelta(days=10),
                  attributes={"penalty_class": "small_fine", "penalty_field": "fire_safety"})
    assert (await life.send("amr", fine))["status"] == "accepted"
    body = await until(lambda: life.db("registry").fetchval(
        "SELECT body::text FROM records WHERE record_id = $1", fine["record_id"]),
        "the fine archived")
    archived = json.loads(body)
    assert archived["disclosure_rule"] == "samr-order-45/small_fine/fire_safety"
    # A small fine shows 3 months, but in fire safety at least a year.
    assert archived["public_until"] == _plus_months(fine["decided_on"], 12)


def _described(admin: Any, topic: str) -> Any:
    """A topic's configuration; the broker's answer may take a while on a loaded machine."""
    for attempt in range(5):
        [future] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
        try:
            return future.result(timeout=60)
        except KafkaException:
            if attempt == 4:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def _plus_months(day: str, months: int) -> str:
    from shared.disclosure import add_months
    return add_months(date.fromisoformat(day), months).isoformat()


async def test_every_topic_keeps_personal_data_no_longer_than_it_says(life: Life) -> None:
    """Each topic's retention is explicit on the broker (shared/topics.py)."""
    admin = kafka_admin(life.settings).client  # reading topic configurations: an operator
    topics = all_topics(load_catalogue(life.settings.catalogue_path))
    for t in topics:
        config = await asyncio.to_thread(_described, admin, life.settings.topic(t.name))
        assert config["retention.ms"].value == t.config["retention.ms"], t.name
        assert config["cleanup.policy"].value == t.config["cleanup.policy"], t.name
        # Credentials are compacted for ever (operators only); counts per district carry no
        # personal data.
        if t.name not in {CREDENTIALS.name, *(a.name for a in AGGREGATES)}:
            assert 0 < int(config["retention.ms"].value) <= 30 * 24 * 3600 * 1000, t.name


# --- helpers: what the stack holds ----------------------------------------------------------


async def scan(lf: Life, needle: str) -> list[str]:
    """Every text, JSON, bytes and text-array column of every table of every service's
    database that holds `needle` somewhere, as `service.table.column: rows`."""
    found = []
    for service in SERVICES:
        pool = lf.db(service)
        columns = await pool.fetch(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
            "  AND c.data_type IN ('text', 'character varying', 'json', 'jsonb', 'bytea',"
            "   'ARRAY')")
        for c in columns:
            column = f'"{c["column_name"]}"'
            arg: str | bytes
            if c["data_type"] == "bytea":
                condition, arg = f"position($1::bytea IN {column}) > 0", needle.encode()
            elif c["data_type"] == "ARRAY":
                condition, arg = f"array_to_string({column}, ' ') LIKE $1", f"%{needle}%"
            else:
                condition, arg = f"{column}::text LIKE $1", f"%{needle}%"
            rows = await pool.fetchval(
                f'SELECT count(*) FROM "{c["table_name"]}" WHERE {condition}', arg)
            if rows:
                found.append(f"{service}.{c['table_name']}.{c['column_name']}: {rows}")
    return found


async def scheduled(lf: Life, subject_key: str) -> dict[str, int]:
    return {s: await lf.db(s).fetchval(
        "SELECT count(*) FROM purge_schedule WHERE subject_key = $1", subject_key)
        for s in SERVICES}


async def entry_of(lf: Life, subject_key: str, status: str = "active") -> asyncpg.Record:
    return await until(lambda: lf.db("publisher").fetchrow(
        "SELECT entry_id::text, list, status, since, until, exit_reason FROM list_entries"
        " WHERE subject_key = $1 AND status = $2 ORDER BY created_at DESC LIMIT 1",
        subject_key, status), f"an {status} entry of {subject_key}")


async def feed(lf: Life, list_name: str, since: str | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=lf.url("publisher")) as client:
        return await client.get(f"/api/v1/lists/{list_name}/changes",
                                params={"since": since} if since else {})


async def whole_feed(lf: Life, list_name: str) -> tuple[list[dict[str, Any]], str]:
    changes: list[dict[str, Any]] = []
    since = None
    while True:
        page = (await feed(lf, list_name, since)).json()
        changes += page["changes"]
        since = page["next"]
        if not page["changes"]:
            return changes, since


def objection_body(subject: Any, dept: str, record_id: str, contact: str) -> dict[str, Any]:
    return {"subject": {"type": subject.type, "id": subject.id},
            "record": {"department": dept, "record_id": record_id},
            "reason": "该记录信息有误", "contact": contact}


async def object_to(lf: Life, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=lf.url("objection"), headers=as_client()) as client:
        async def taken() -> httpx.Response | None:
            r = await client.post("/api/v1/objections", json=body)
            return r if r.status_code != 422 else None
        r = await until(taken, "the objection service knows the record")
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# --- item 8: list extensions (延长) ---------------------------------------------------------


async def test_an_extension_moves_the_listing_supersedes_the_notices_and_only_a_new_decision_lists_again(  # noqa: E501
        life: Life) -> None:
    assert life.watcher is not None
    today = clock.today()
    firm = enterprise("珠海市延长测试有限公司")
    decided = today - timedelta(days=10)
    first = record(firm, COURT, decided_on=decided)
    assert (await life.send("court", first))["status"] == "accepted"
    key = f"enterprise:{firm.id}"

    def notices_of(kind: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e["data"]["subject"]["id"] == firm.id and e["data"]["kind"] == kind

    earlier = await life.wait("credit.notices.land", notices_of("penalty"))
    entry = await entry_of(life, key)
    assert entry["until"] == _plus_years(decided, 2)  # two years from the decision

    # The court extends the listing by two years: a revision of the same decision.
    extension = {**first, "revision": 2, "attributes": {"extension_years": 2}}
    assert (await life.send("court", extension))["status"] == "accepted"
    new_until = _plus_years(decided, 4)
    [mod] = await life.wait(
        "credit.lists.changed",
        lambda e: e["data"]["entry_id"] == entry["entry_id"] and e["data"]["op"] == "MOD")
    assert mod["data"]["until"] == new_until.isoformat()
    agencies = ["finance-procurement", "housing-bidding", "land", "ndrc-projects",
                "hrss-hiring"]
    superseded = {}
    for agency in agencies:
        [old] = await life.wait(
            f"credit.notices.{agency}",
            lambda e: notices_of("penalty")(e) and e["data"].get("supersedes") is None)
        [new] = await life.wait(
            f"credit.notices.{agency}",
            lambda e: notices_of("penalty")(e) and e["data"].get("supersedes") is not None)
        assert new["data"]["supersedes"] == old["data"]["notice_id"]
        assert new["data"]["notice_id"] != old["data"]["notice_id"]
        assert new["data"]["effective_until"] == new_until.isoformat()
        assert new["data"]["effective_from"] == old["data"]["effective_from"]
        superseded[agency] = new["data"]["notice_id"]
    assert len(earlier) == 1
    profile_url = f"{life.url('publisher')}/api/v1/subjects/enterprise/{firm.id}"
    profile = (await poll_json(profile_url, lambda r: r.status_code == 200 and r.json()[
        "lists"][0]["until"] == new_until.isoformat(), timeout=WAIT)).json()
    assert profile["records"][0]["public_until"] == new_until.isoformat()

    # A typo fixed in the document number updates the profile and sends nothing.
    typo = {**extension, "revision": 3, "document_no": "（2026）粤04执999号"}
    assert (await life.send("court", typo))["status"] == "accepted"
    await poll_json(profile_url,
                    lambda r: r.json()["records"][0]["document_no"] == "（2026）粤04执999号",
                    timeout=WAIT)
    await asyncio.sleep(2)
    for agency in agencies:
        assert len([e for e in life.watcher.events[f"credit.notices.{agency}"]
                    if notices_of("penalty")(e)]) == 2
    assert [e["data"]["op"] for e in life.watcher.events["credit.lists.changed"]
            if e["data"]["entry_id"] == entry["entry_id"]] == ["ADD", "MOD"]

    # The extended term runs out: the entry exits, revoking the notices in force.
    life.move_clock_to(new_until + timedelta(days=1))
    for agency in agencies:
        [revocation] = await life.wait(f"credit.notices.{agency}",
                                                   notices_of("revocation"))
        assert revocation["data"]["revokes"] == superseded[agency]
    exited = await entry_of(life, key, "exited")
    assert exited["exit_reason"] == "expired"

    # Another revision of the same decision does not list it again, nor show it.
    again = {**extension, "revision": 4, "attributes": {"extension_years": 3}}
    assert (await life.send("court", again))["status"] == "accepted"
    await until(lambda: life.db("publisher").fetchval(
        "SELECT (snapshot -> 'records' -> 0 ->> 'revision')::int = 4 FROM subjects"
        " WHERE subject_key = $1", key), "revision 4 in the publisher")
    assert await life.db("publisher").fetchval(
        "SELECT count(*) FROM list_entries WHERE subject_key = $1"
        " AND status IN ('pending', 'active')", key) == 0
    shown = (await poll_json(profile_url, lambda r: r.status_code == 200, timeout=WAIT)).json()
    assert shown["records"] == [] and shown["lists"] == []
    # A new decision does.
    renewed = {**first, "revision": 5, "decided_on": (clock.today() - timedelta(days=1))
               .isoformat(), "attributes": {}}
    assert (await life.send("court", renewed))["status"] == "accepted"
    relisted = await entry_of(life, key)
    assert relisted["entry_id"] != entry["entry_id"]


def _plus_years(day: date, years: int) -> date:
    from shared.disclosure import add_years
    return add_years(day, years)


# --- objections: a 20th day that is no working day -------------------------------------------


async def test_an_objection_whose_20th_day_is_no_working_day_is_due_the_next_one(
        life: Life) -> None:
    day = clock.today()
    while clock.is_working_day(day + timedelta(days=20)):
        day += timedelta(days=1)
    life.move_clock_to(day)
    firm = enterprise("珠海市期限测试有限公司")
    data = record(firm, "amr.admin_penalty", decided_on=day - timedelta(days=5))
    assert (await life.send("amr", data))["status"] == "accepted"
    created = await object_to(life, objection_body(firm, "amr", data["record_id"],
                                                   "13900000001"))
    twentieth = day + timedelta(days=20)
    expected = clock.next_working_day(twentieth).day
    assert expected > twentieth
    assert created["due_by"] == expected.isoformat()
    assert life.watcher is not None
    [routed] = await life.wait(
        "credit.objections.amr", lambda e: e["data"]["objection_id"] == created["objection_id"])
    assert routed["data"]["due_by"] == expected.isoformat()


async def test_an_objections_contact_is_erased_a_while_after_its_decision(life: Life) -> None:
    assert life.producer is not None
    firm = enterprise("珠海市联系方式测试有限公司")
    data = record(firm, "amr.admin_penalty", decided_on=clock.today() - timedelta(days=5))
    assert (await life.send("amr", data))["status"] == "accepted"
    created = await object_to(life, objection_body(firm, "amr", data["record_id"],
                                                   "lifecycle@example.com"))
    decision = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "dept/amr",
                "type": "cn.zhuhai.credit.objection.decided.v1",
                "subject": f"enterprise:{firm.id}", "datacontenttype": "application/json",
                "data": {"objection_id": created["objection_id"], "decision": "rejected",
                         "reason": "经核查无误"}}
    await send_raw(life.producer, life.settings, "credit.inbound.amr",
                   json.dumps(decision).encode(), f"enterprise:{firm.id}".encode())
    await until(lambda: life.db("objection").fetchval(
        "SELECT status = 'rejected' FROM objections WHERE objection_id = $1::uuid",
        created["objection_id"]), "the decision applied")
    life.move_clock(timedelta(days=life.settings.objection_contact_days - 1))
    await asyncio.sleep(2)
    assert await life.db("objection").fetchval(
        "SELECT contact FROM objections WHERE objection_id = $1::uuid",
        created["objection_id"]) == "lifecycle@example.com"
    life.move_clock(timedelta(days=2))
    await until(lambda: life.db("objection").fetchval(
        "SELECT contact IS NULL AND contact_erased_at IS NOT NULL FROM objections"
        " WHERE objection_id = $1::uuid", created["objection_id"]), "the contact erased")
    assert await scan(life, "lifecycle@example.com") == []


# --- item 2: expiry at rest -----------------------------------------------------------------


async def test_a_record_past_its_period_leaves_every_public_surface_after_one_sweep(
        life: Life) -> None:
    """A person's wage-arrears record shows 36 months from its decision: the day after, one
    sweep (even one that had to catch up after the registry was down) takes it off the
    grade, search, the list (with revocations) and, a window later, the changes feed."""
    assert life.watcher is not None
    today = clock.today()
    from shared.disclosure import add_months
    ends = today + timedelta(days=10)
    decided = add_months(ends, -36)
    person = individual(name=f"到期{uuid.uuid4().hex[:4]}")
    key = f"individual:{person.id}"
    # With a contact: Xinyong tells the person at once (the list is `notified_by: xinyong`),
    # so the notice period runs from now.
    data = record(person, WAGES, decided_on=decided, contact="13800000066")
    assert (await life.send("hrss", data))["status"] == "accepted"
    archived = json.loads(await until(lambda: life.db("registry").fetchval(
        "SELECT body::text FROM records WHERE record_id = $1", data["record_id"]), "archived"))
    assert archived["public_until"] == ends.isoformat()

    # The notice period (7 days, from when the publisher saw the record) passes: listed
    # until the record's end of display.
    await entry_of(life, key, "pending")
    await until(lambda: life.db("publisher").fetchval(
        "SELECT notified_at FROM notifications WHERE subject_key = $1"
        " AND status = 'delivered'", key), "the person told (the period runs from then)")
    life.move_clock(timedelta(days=8))
    entry = await entry_of(life, key)
    assert entry["until"] == ends
    publisher = life.url("publisher")
    profile_url = f"{publisher}/api/v1/subjects/individual/{person.id}"
    profile = (await poll_json(profile_url, lambda r: r.status_code == 200, timeout=WAIT)).json()
    assert profile["grade"]["grade"] == "D" and len(profile["records"]) == 1
    search = f"{publisher}/api/v1/subjects?q={person.name}"
    await poll_json(search, lambda r: len(r.json()["results"]) == 1, timeout=WAIT)
    notices = await life.wait(
        "credit.notices.land", lambda e: e["data"]["subject"]["id"] == person.id)
    assert notices[0]["data"]["effective_until"] == ends.isoformat()

    # The registry is down when the period ends, and catches up when it comes back.
    registry = life.stack.processes["registry"]
    await asyncio.to_thread(registry.stop)
    life.move_clock_to(ends + timedelta(days=1))
    await start_again(life, registry)

    await until(lambda: life.db("registry").fetchval(
        "SELECT display_ended FROM records WHERE record_id = $1", data["record_id"]),
        "the record swept")
    stored = await until(lambda: life.db("publisher").fetchrow(
        "SELECT snapshot::jsonb -> 'grade' ->> 'grade' AS grade, discoverable, name_norm,"
        " name_grams FROM subjects WHERE subject_key = $1"
        " AND snapshot::jsonb -> 'grade' ->> 'grade' = 'B'", key), "the grade recomputed")
    assert (stored["discoverable"], stored["name_norm"], stored["name_grams"]) == (False, "", [])
    assert await life.db("registry").fetchval(
        "SELECT count(*) FROM record_history WHERE record_id = $1 AND cause = 'display_ended'",
        data["record_id"]) == 1
    exited = await entry_of(life, key, "exited")
    assert exited["exit_reason"] == "expired"
    [revocation] = await life.wait(
        "credit.notices.land", lambda e: e["data"]["subject"]["id"] == person.id
        and e["data"]["kind"] == "revocation")
    assert revocation["data"]["revokes"] == notices[0]["data"]["notice_id"]
    async with httpx.AsyncClient(base_url=publisher) as client:
        assert (await client.get(profile_url)).status_code == 404
        assert (await client.get(search)).json()["results"] == []
        members = (await client.get(f"/api/v1/lists/{WAGES}")).json()["members"]
        assert person.name not in json.dumps(members, ensure_ascii=False)

    # The feed names the person for the window after the exit, then keeps only the facts.
    changes, cursor = await whole_feed(life, WAGES)
    mine = [c for c in changes if c["entry_id"] == entry["entry_id"]]
    assert [c["op"] for c in mine] == ["ADD", "DEL"]
    assert all(c["subject"]["name"] == person.name for c in mine)
    window = life.settings.list_changes_identity_days
    life.move_clock(timedelta(days=window + 1))
    changes, _ = await whole_feed(life, WAGES)
    mine = [c for c in changes if c["entry_id"] == entry["entry_id"]]
    assert [(c["op"], c["subject"]) for c in mine] == [("ADD", None), ("DEL", None)]
    assert all(c["since"] and c["until"] for c in mine)
    expired = await feed(life, WAGES, cursor)
    assert expired.status_code == 410
    assert expired.json()["code"] == "cursor_expired"


# --- item 4: erasure 5 years after the act ---------------------------------------------------


async def test_a_persons_negative_information_is_erased_everywhere_and_stays_erased(
        life: Life, ) -> None:
    assert life.watcher is not None and life.producer is not None
    today = clock.today()
    person = individual(name=f"删除{uuid.uuid4().hex[:4]}")
    key = f"individual:{person.id}"
    decided = today - timedelta(days=10)
    erase_on = _plus_years(decided, 5)
    # A court listing extended to its longest (2 + 3 years) still stands on the erasure day.
    data = record(person, COURT, decided_on=decided, attributes={"extension_years": 3})
    assert (await life.send("court", data))["status"] == "accepted"
    entry = await entry_of(life, key)
    assert entry["until"] == erase_on
    notices = {a: (await life.wait(
        f"credit.notices.{a}", lambda e: e["data"]["subject"]["id"] == person.id))[0]
        for a in ("land", "finance-procurement")}
    # The person objects (contact and reason kept), sends a broken message and a bad one.
    created = await object_to(life, objection_body(person, "court", data["record_id"],
                                                   "13800000077"))
    await send_raw(life.producer, life.settings, "credit.inbound.court",
                   f'{{"broken": "{person.id}"'.encode(), key.encode())
    bad = record(person, COURT, decided_on=decided, attributes={"extension_years": 9})
    assert (await life.send("court", bad))["status"] == "rejected"
    await until(lambda: life.db("ingest").fetchval(
        "SELECT count(*) FROM dead_letters WHERE key = $1", key.encode()), "the dead letter")
    await until(lambda: life.db("objection").fetchval(
        "SELECT count(*) FROM objection_events WHERE objection_id = $1::uuid",
        created["objection_id"]), "the objection's timeline")
    await outboxes_empty(life)
    before = await scan(life, person.id)
    for where in ("ingest.submissions", "ingest.dead_letters", "registry.records",
                  "registry.subjects", "publisher.subjects", "publisher.notices",
                  "publisher.list_changes", "objection.objections", "objection.known_records"):
        assert any(f.startswith(where) for f in before), (where, before)

    # The erasure day: the listing exits first (revocations), then everything goes.
    life.move_clock_to(erase_on)

    async def erased() -> bool:
        return sum((await scheduled(life, key)).values()) == 0
    await until(erased, "every service's schedule done")
    await outboxes_empty(life)
    for agency, notice in notices.items():
        revoked = notice["data"]["notice_id"]
        [revocation] = await life.wait(
            f"credit.notices.{agency}", lambda e, n=revoked: e["data"].get("revokes") == n)
        assert revocation["data"]["kind"] == "revocation"
    [gone] = await life.wait(
        "credit.lists.changed",
        lambda e: e["data"]["entry_id"] == entry["entry_id"] and e["data"]["op"] == "DEL")
    assert gone["data"]["until"] == erase_on.isoformat()
    assert await scan(life, person.id) == []
    changes, _ = await whole_feed(life, COURT)
    assert [(c["op"], c["subject"]) for c in changes if c["entry_id"] == entry["entry_id"]] \
        == [("ADD", None), ("DEL", None)]
    # Every service that held the record keeps a ledger line; stats never held it (its facts
    # name a subject type and a district, no subject: the scan above found nothing there).
    for service in (s for s in SERVICES if s != "stats"):
        assert await life.db(service).fetchval(
            "SELECT count(*) FROM erasure_ledger WHERE kind = 'record'") >= 1, service

    # A redelivery: the same submission, and a later revision, stay out.
    again = await life.send("court", data)
    assert [(e["field"], e["code"]) for e in again["errors"]] == [
        ("decided_on", "retention_expired")]
    later = {**data, "revision": 2, "act_ended_on": clock.today().isoformat()}
    refused = await life.send("court", later)
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("record_id", "erased")]
    # A replay of the internal topics (events under new ids, as after a restore that lost
    # the processed ids) and a department's late decision on the erased objection: dropped.
    [accepted] = await life.wait(
        "credit.records.accepted", lambda e: e["data"]["submission"]["record_id"] == data[
            "record_id"])
    [snapshot] = (await life.wait(
        "credit.subjects.changed", lambda e: e["data"]["subject"]["id"] == person.id))[-1:]
    replays = [("ingest", "credit.records.accepted", accepted),
               ("registry", "credit.subjects.changed", snapshot)]
    for service, topic, event in replays:
        producer = make_producer(life.settings, **LIFE.service_credentials(service))
        await producer.start()
        try:
            replayed = {k: v for k, v in event.items() if k != "_offset"} | {
                "id": str(uuid.uuid4())}
            await send_raw(producer, life.settings, topic, json.dumps(replayed).encode(),
                           key.encode())
        finally:
            await producer.stop()
    decision = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "dept/court",
                "type": "cn.zhuhai.credit.objection.decided.v1", "subject": key,
                "datacontenttype": "application/json",
                "data": {"objection_id": created["objection_id"], "decision": "upheld",
                         "reason": "迟到的答复", "withdraw": True}}
    await send_raw(life.producer, life.settings, "credit.inbound.court",
                   json.dumps(decision).encode(), key.encode())
    for service in ("registry", "objection", "publisher"):
        await until(lambda s=service: _dropped(life, s), f"{service} dropped the replay")
    await outboxes_empty(life)
    assert await scan(life, person.id) == []
    async with httpx.AsyncClient(base_url=life.url("publisher")) as client:
        r = await client.get(f"/api/v1/subjects/individual/{person.id}")
        assert r.status_code == 404


async def _dropped(lf: Life, service: str) -> bool:
    async with httpx.AsyncClient() as client:
        text = (await client.get(lf.stack.processes[service].metrics_url())).text
    for line in text.splitlines():
        if line.startswith("xinyong_erased_dropped_total{"):
            return float(line.rsplit(" ", 1)[1]) > 0
    return False


async def test_a_purge_killed_midway_never_leaves_a_half_erased_subject(life: Life) -> None:
    """SIGKILL while the registry erases many people: each is erased whole or not at all,
    and the sweep finishes after the restart."""
    today = clock.today()
    # Birth dates of their own: a shared one leaves only 1000 sequence numbers to draw from.
    people = [individual(date(1980, 1, 1) + timedelta(days=i), f"中断{i}") for i in range(150)]
    keys = [f"individual:{p.id}" for p in people]
    # Decided almost 5 years ago: erased in 2 days.
    decided = _plus_years(today, -5) + timedelta(days=2)
    records = [record(p, COURT, decided_on=decided) for p in people]
    assert life.producer is not None
    for data in records:
        await send(life.producer, life.settings, "court", data)
    registry = life.db("registry")

    async def remaining() -> int:
        return int(await registry.fetchval(
            "SELECT count(*) FROM subjects WHERE subject_key = ANY($1::text[])", keys))
    await until(lambda: _all(remaining, len(keys)), "every record archived")
    await outboxes_empty(life)

    life.move_clock(timedelta(days=3))
    process = life.stack.processes["registry"]
    async def begun() -> bool:
        return await remaining() != len(keys)

    await until(begun, "the purge started", interval=0.005)
    await asyncio.to_thread(process.kill)
    left = await remaining()
    assert 0 < left < len(keys), f"the kill missed the purge ({left} of {len(keys)} left)"

    # Each person: archive, record, history and schedule all there, or none of them.
    rows = await registry.fetch(
        "SELECT k, EXISTS (SELECT 1 FROM subjects s WHERE s.subject_key = k) AS subject,"
        " EXISTS (SELECT 1 FROM records r WHERE r.record_id = i) AS record,"
        " EXISTS (SELECT 1 FROM record_history h WHERE h.record_id = i) AS history,"
        " EXISTS (SELECT 1 FROM purge_schedule p WHERE p.record_id = i) AS schedule"
        " FROM unnest($1::text[], $2::text[]) AS u(k, i)",
        keys, [d["record_id"] for d in records])
    states = {(r["subject"], r["record"], r["history"], r["schedule"]) for r in rows}
    assert states == {(True, True, True, True), (False, False, False, False)}, states

    await start_again(life, process)
    await until(lambda: _all(remaining, 0), "the purge finished after the restart")
    assert await registry.fetchval(
        "SELECT count(*) FROM purge_schedule WHERE subject_key = ANY($1::text[])", keys) == 0


async def _all(count: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await count() == expected

"""Small async helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from aiokafka import AIOKafkaProducer

from deploy.stack import PositionsPaused, ServiceProcess
from shared.envelope import submission_json
from shared.settings import Settings
from tests.integration.helpers import key_of
from tests.polling import until

if TYPE_CHECKING:
    from tests.integration.conftest import TopicWatcher


async def send(producer: AIOKafkaProducer, settings: Settings, dept: str,
               data: dict[str, Any], event_id: str | None = None) -> None:
    await producer.send_and_wait(settings.topic(f"credit.inbound.{dept}"),
                                 submission_json(dept, data, event_id), key=key_of(data))


async def send_raw(producer: AIOKafkaProducer, settings: Settings, topic: str, value: bytes,
                   key: bytes | None) -> None:
    await producer.send_and_wait(settings.topic(topic), value, key=key)


async def until_answer(ask: Callable[[], Awaitable[httpx.Response]],
                       check: Callable[[httpx.Response], bool], what: str,
                       timeout: float = 30, interval: float = 0.1) -> httpx.Response:
    """Ask until the answer satisfies `check`, and return that answer; fails with `what`
    and the last answer."""
    last: list[httpx.Response] = []

    async def answered() -> httpx.Response | None:
        last[:] = [await ask()]
        return last[0] if check(last[0]) else None

    try:
        return await until(answered, what, timeout=timeout, interval=interval)  # type: ignore[no-any-return]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last answer: {last[0].status_code}"
                             f" {last[0].text[:500]}") from None


async def poll_json(url: str, check: Callable[[httpx.Response], bool],
                    timeout: float = 30, headers: dict[str, str] | None = None
                    ) -> httpx.Response:
    """GET until `check` holds; fails with the last answer."""
    async with httpx.AsyncClient() as client:
        return await until_answer(lambda: client.get(url, headers=headers), check,
                                  f"GET {url} answers as expected", timeout=timeout)


def feedback_for(record_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("data", {}).get("record_id") == record_id


def as_client() -> dict[str, str]:
    """Headers that make the objection service count a request against an address of its
    own (the test stack trusts X-Forwarded-For from 127.0.0.1), so that one test's
    requests never use up another's rate limit."""
    return {"X-Forwarded-For": f"10.{random.randrange(256)}.{random.randrange(256)}."
                               f"{random.randrange(1, 255)}"}


def token_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def once_record_known(send: Callable[[], Awaitable[httpx.Response]],
                            timeout: float = 30) -> httpx.Response:
    """Send an objection or repair request until the objection service knows the record
    (its projection of accepted records lags ingest by a moment); the first other answer."""
    last: list[httpx.Response] = []

    async def known() -> httpx.Response | None:
        last[:] = [r := await send()]
        unknown = r.status_code == 422 and (
            "record_not_found" in r.text or "no record with this id" in r.text)
        return None if unknown else r

    return await until(known, lambda: f"the record never became known: "  # type: ignore[no-any-return]
                       f"{last[0].text[:500]}", timeout=timeout)


def tagged_feedback(watcher: TopicWatcher, tag: str) -> list[dict[str, Any]]:
    """The feedback received so far for the records whose ids start with `tag`: the
    streams of administrative penalties and court records that the crash, scale-out, order
    and three-broker tests send."""
    return [e for t in ("credit.feedback.amr", "credit.feedback.court")
            for e in watcher.events[t]
            if str((e.get("data") or {}).get("record_id") or "").startswith(tag)]


async def each_record_once(db: Callable[[str], Any], watcher: TopicWatcher, tag: str,
                           ids: set[str], listed: set[str], timeout: float) -> None:
    """Once the stream of the records `ids` (each starting with `tag`) is through, whatever
    was killed on the way: one feedback per delivery, each an acceptance; every record in
    the publisher's snapshots, once in the registry's history and once in ingest's audit;
    each subject in `listed` (a court record's) with five notices, one notice id on the land
    bureau's topic (a resent notice keeps its id) and one ADD on its list."""
    records = len(ids)

    async def all_feedback() -> bool:
        return {e["data"]["record_id"] for e in tagged_feedback(watcher, tag)} >= ids

    await until(all_feedback, "a feedback for every record", timeout)
    event_ids: dict[str, set[str]] = defaultdict(set)
    for e in tagged_feedback(watcher, tag):
        event_ids[e["data"]["record_id"]].add(e["id"])
        assert e["data"]["status"] == "accepted", e
    # A relay resend after a crash repeats the same event (same id); never a second verdict.
    assert all(len(v) == 1 for v in event_ids.values()), "one feedback per delivery"

    async def all_published() -> bool:
        n = await db("publisher").fetchval(
            "SELECT count(*) FROM subjects s, json_array_elements(s.snapshot->'records') r"
            " WHERE r->>'record_id' LIKE $1", tag + "%")
        return bool(n == records)

    await until(all_published, "every record in the publisher's snapshots", timeout)
    for service, table in (("registry", "record_history"), ("ingest", "submissions")):
        rows = await db(service).fetch(
            f"SELECT record_id, count(*) AS n FROM {table} WHERE record_id LIKE $1"
            " GROUP BY record_id", tag + "%")
        assert len(rows) == records and {r["n"] for r in rows} == {1}, (service, table)

    keys = [f"enterprise:{s}" for s in listed]
    notices = await db("publisher").fetch(
        "SELECT subject_key, count(*) AS n FROM notices WHERE subject_key = ANY($1::text[])"
        " GROUP BY subject_key", keys)
    assert len(notices) == len(listed) and {r["n"] for r in notices} == {5}

    def land_notices() -> list[dict[str, Any]]:
        return [e for e in watcher.events["credit.notices.land"]
                if e.get("data", {}).get("subject", {}).get("id") in listed]

    async def all_notified() -> bool:
        return {e["data"]["subject"]["id"] for e in land_notices()} >= listed

    await until(all_notified, "a notice to the land agency for every listed subject", timeout)
    per_subject: dict[str, set[str]] = defaultdict(set)
    for e in land_notices():
        per_subject[e["data"]["subject"]["id"]].add(e["data"]["notice_id"])
    assert {len(v) for v in per_subject.values()} == {1}, "one notice id per subject"
    adds = await db("publisher").fetch(
        "SELECT subject_key, count(*) AS n FROM list_changes WHERE op = 'ADD'"
        " AND subject_key = ANY($1::text[]) GROUP BY subject_key", keys)
    assert len(adds) == len(listed) and {r["n"] for r in adds} == {1}, "one ADD a subject"


async def ready_again(services: Mapping[str, ServiceProcess], env: Mapping[str, str]
                      ) -> list[str]:
    """Every service ready; a service that exited, or exits while it is awaited, is started
    again, as the supervisor would (deploy/supervisor.py). Returns those started again.
    A service holding a partition for an operator (`PositionsPaused`) is not waited for."""
    restarted = []
    for proc in services.values():
        for attempt in (1, 2):
            if proc.pid() is None:
                restarted.append(proc.label)
                proc.start(env)
            try:
                await asyncio.to_thread(proc.wait_ready, 120)
                break
            except PositionsPaused:
                raise
            except RuntimeError:  # it exited while awaited
                if attempt == 2:
                    raise
                deadline = time.monotonic() + 30
                while proc.pid() is not None and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
    return restarted

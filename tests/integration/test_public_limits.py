"""The public site under a slow database, on the live publisher: a statement past the HTTP
pool's timeout is answered 503 with Retry-After (never a 500), and searches beyond the cap
on concurrent searches are refused at once with 503 and Retry-After instead of queueing for
connections that profiles need (issue 9, items 5 and 6)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from deploy.stack import ServiceProcess
from shared.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_statement_past_the_timeout_is_503_and_searches_past_the_cap_are_refused(
        settings: Settings, services: dict[str, ServiceProcess], db: Any) -> None:
    url = services["publisher"].url()
    cap = settings.public_search_concurrency
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        # Searches answer (and the statistics the choice reads are taken) before the lock.
        assert (await client.get("/api/v1/subjects", params={"q": "珠海"})).status_code == 200
        async with db("publisher").acquire() as conn:
            lock = conn.transaction()
            await lock.start()
            try:
                # Every query of the publisher's subjects now waits for this transaction.
                await conn.execute("LOCK TABLE subjects IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                searches = [client.get("/api/v1/subjects", params={"q": f"慢查询{i}"})
                            for i in range(cap + 3)]
                profile = client.get(f"/api/v1/subjects/enterprise/{uuid.uuid4().hex[:18]}")
                answers = await asyncio.gather(*searches, profile)
                waited = time.monotonic() - started
                page = await client.get("/", params={"q": "慢查询"})
            finally:
                await lock.rollback()
        for r in [*answers, page]:
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1"
        assert all(r.headers["content-type"] == "application/problem+json" for r in answers)
        assert page.headers["content-type"].startswith("text/html")  # the web page: a page
        problems = [r.json() for r in answers]
        codes = Counter(p["code"] for p in problems[:-1])
        # `cap` searches got a turn and were cancelled at the timeout; the others found no
        # turn within the wait and were refused without touching the database.
        assert set(codes) == {"query_timeout", "busy"}, codes
        assert codes["query_timeout"] >= cap and codes["busy"] >= 1, codes
        assert problems[-1]["code"] == "query_timeout"  # the profile, cancelled too
        assert waited >= settings.http_statement_timeout_ms / 1000
        # The lock gone, the same search answers again.
        again = await client.get("/api/v1/subjects", params={"q": "慢查询0"})
        assert again.status_code == 200 and again.json()["results"] == []

"""The public API is rate-limited (CONTRACT.md: no authentication; rate-limited), and its
errors are problem+json. In-process HTTP only: these routes answer before any database."""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi.testclient import TestClient
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from services.publisher.api import create_app
from shared.context import ServiceContext
from shared.guard import public_limiter
from shared.http import SweptMemoryStorage
from shared.settings import Settings

FRONT_DOOR = "127.0.0.2"  # deploy/frontdoor.py's source address, every visitor's peer


def _client(catalogue: Any, limit: str, trusted: tuple[str, ...] = ()) -> TestClient:
    ctx = ServiceContext("publisher", Settings(public_rate_limit=limit,
                                               trusted_proxies=list(trusted)), catalogue,
                         pool=None)  # type: ignore[arg-type]
    return TestClient(create_app(ctx), client=(FRONT_DOOR, 40000))


def test_public_api_answers_429_past_the_limit(catalogue: Any) -> None:
    client = _client(catalogue, "2/minute")
    answers = [client.get("/api/v1/lists/no.such_list").status_code for _ in range(3)]
    assert answers == [404, 404, 429]
    limited = client.get("/api/v1/lists/no.such_list")
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert limited.json()["code"] == "rate_limited"


def test_behind_the_front_door_each_visitor_has_a_budget_of_its_own(catalogue: Any) -> None:
    """The front door is every visitor's peer: counted by it, one visitor past the limit
    would shut the public site for the city."""
    client = _client(catalogue, "2/minute", trusted=(FRONT_DOOR,))

    def status(visitor: str) -> int:
        return client.get("/api/v1/lists/no.such_list",
                          headers={"X-Forwarded-For": visitor}).status_code

    assert [status("203.0.113.7") for _ in range(3)] == [404, 404, 429]
    assert [status("198.51.100.9") for _ in range(2)] == [404, 404]


def test_a_forwarded_address_from_an_untrusted_peer_counts_for_nothing(catalogue: Any) -> None:
    client = _client(catalogue, "2/minute")
    answers = [client.get("/api/v1/lists/no.such_list",
                          headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
               for i in range(3)]
    assert answers == [404, 404, 429]


def test_unknown_subject_type_is_a_problem_naming_the_field(catalogue: Any) -> None:
    r = _client(catalogue, "100/minute").get("/api/v1/subjects", params={"q": "格力",
                                                                          "type": "company"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "type", "code": "not_allowed",
                                   "message": "one of enterprise, individual, institution, "
                                              "social_org, government"}]


def test_a_cursor_the_api_never_gave_is_refused(catalogue: Any) -> None:
    r = _client(catalogue, "100/minute").get(
        "/api/v1/lists/court.dishonest_debtor/changes", params={"since": "not-a-cursor"})
    assert r.status_code == 400 and r.json()["code"] == "bad_cursor"


# --- the limiter's storage: it keeps limiting, without a thread per request burst ---


def test_the_limit_holds_per_client() -> None:
    limiter = FixedWindowRateLimiter(SweptMemoryStorage())
    three = parse("3/minute")
    assert [limiter.hit(three, "10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(three, "10.0.0.2")  # another client has its own window


def test_a_window_ends_when_read_without_a_sweep() -> None:
    storage = SweptMemoryStorage()
    storage.SWEEP_SECONDS = 3600
    storage.incr("k", expiry=0.05)
    assert storage.get("k") == 1
    time.sleep(0.08)
    assert storage.get("k") == 0


def test_quiet_clients_are_swept_by_a_later_request() -> None:
    storage = SweptMemoryStorage()
    storage.SWEEP_SECONDS = 0.05
    storage.incr("gone", expiry=0.01)
    time.sleep(0.08)
    storage.incr("here", expiry=60)
    assert set(storage.expirations) == {"here"}


def test_requests_start_no_threads() -> None:
    storage = SweptMemoryStorage()
    time.sleep(0.05)  # the timer the base class starts once has run
    before = threading.active_count()
    for i in range(500):
        storage.incr(f"client{i % 7}", expiry=60)
    assert threading.active_count() == before


def test_the_apis_use_it() -> None:
    assert isinstance(storage_from_string("swept-memory://"), SweptMemoryStorage)
    limiter = public_limiter([])
    assert limiter._storage_uri == "swept-memory://"

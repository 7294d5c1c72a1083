"""The public API is rate-limited (CONTRACT.md: no authentication; rate-limited), and its
errors are problem+json. In-process HTTP only: these routes answer before any database."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from services.publisher.api import create_app
from shared.context import ServiceContext
from shared.settings import Settings


def _client(catalogue: Any, limit: str) -> TestClient:
    ctx = ServiceContext("publisher", Settings(public_rate_limit=limit), catalogue,
                         pool=None)  # type: ignore[arg-type]
    return TestClient(create_app(ctx))


def test_public_api_answers_429_past_the_limit(catalogue: Any) -> None:
    client = _client(catalogue, "2/minute")
    answers = [client.get("/api/v1/lists/no.such_list").status_code for _ in range(3)]
    assert answers == [404, 404, 429]
    limited = client.get("/api/v1/lists/no.such_list")
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert limited.json()["code"] == "rate_limited"


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

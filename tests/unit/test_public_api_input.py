"""What the public sends that the publisher refuses before any database: identifiers that
are not codes, control characters in `q`, pages past the bound, cursors it never gave. In-
process HTTP only (no pool): each of these must be answered without reaching PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.publisher.api import MAX_PAGE, create_app
from services.publisher.contracts import FeedbackRequest
from shared.context import ServiceContext
from shared.settings import Settings


@pytest.fixture(scope="module")
def client(catalogue: Any) -> TestClient:
    ctx = ServiceContext("publisher", Settings(public_rate_limit="100000/minute"), catalogue,
                         pool=None)  # type: ignore[arg-type]
    return TestClient(create_app(ctx), raise_server_exceptions=True)


@pytest.mark.parametrize("path", [
    "/api/v1/subjects/individual/%00", "/api/v1/subjects/enterprise/%00",
    "/api/v1/subjects/individual/%C2%B2%00", "/api/v1/subjects/individual/44040219%2D8",
    "/api/v1/subjects/individual/%E7%8F%A0%E6%B5%B7", "/api/v1/subjects/company/91440400",
    "/api/v1/subjects/%00/91440400"])
def test_a_path_that_names_no_code_gets_the_one_404(client: TestClient, path: str) -> None:
    reference = client.get("/api/v1/subjects/individual/%00")
    r = client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.content == reference.content
    assert r.json()["code"] == "not_found"


def test_the_web_page_of_a_path_that_names_no_code_is_the_404_page(client: TestClient) -> None:
    r = client.get("/subjects/individual/%00")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "未找到该信用主体的公开信用信息" in r.text
    assert client.get("/subjects/nobody/123").content == r.content


@pytest.mark.parametrize("q", ["a\x00b", "\x00", "格力\x1b", "a\tb"])
def test_control_characters_in_q_are_refused_naming_q(client: TestClient, q: str) -> None:
    r = client.get("/api/v1/subjects", params={"q": q})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    [error] = r.json()["errors"]
    assert (error["field"], error["code"]) == ("q", "control_character")


def test_control_characters_in_q_on_the_web_page_are_a_page(client: TestClient) -> None:
    r = client.get("/", params={"q": "a\x00b"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("text/html")
    assert "查询内容" in r.text


@pytest.mark.parametrize("path", ["/api/v1/subjects?q=x", "/api/v1/lists/court.dishonest_debtor",
                                  "/?q=x", "/lists/court.dishonest_debtor"])
@pytest.mark.parametrize("page", [str(MAX_PAGE + 1), "99999999999999999999999", "0", "-1",
                                  "abc"])
def test_page_is_bounded_on_every_paged_route(client: TestClient, path: str, page: str) -> None:
    sep = "&" if "?" in path else "?"
    r = client.get(f"{path}{sep}page={page}")
    assert r.status_code == 422
    if path.startswith("/api/"):
        assert [e["field"] for e in r.json()["errors"]] == ["page"]
    else:
        assert r.headers["content-type"].startswith("text/html")
        assert "页码" in r.text


@pytest.mark.parametrize("since", ["djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5",  # v1:99999999999999999999
                                   "djE6OTIyMzM3MjAzNjg1NDc3NTgwOA",  # v1:2**63
                                   "djE6LTE",  # v1:-1
                                   "%00", "x" * 5000])
def test_a_cursor_outside_bigint_is_a_bad_cursor(client: TestClient, since: str) -> None:
    r = client.get(f"/api/v1/lists/court.dishonest_debtor/changes?since={since}")
    assert r.status_code == 400
    assert r.json()["code"] == "bad_cursor"
    assert r.json()["errors"][0]["field"] == "since"


def test_a_nul_in_an_agency_note_is_refused_naming_note() -> None:
    with pytest.raises(ValidationError) as refused:
        FeedbackRequest.model_validate({"status": "applied", "note": "已限制\x00竞买"})
    [error] = refused.value.errors()
    assert error["loc"] == ("note",)
    assert "U+0000" in error["msg"]


def test_line_breaks_stay_allowed_in_an_agency_note() -> None:
    note = "已限制竞买\n2026年第4季度"
    assert FeedbackRequest.model_validate({"status": "applied", "note": note}).note == note

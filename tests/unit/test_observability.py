"""The pure parts of what services report: consumer lag and the HTTP request metrics (an
in-process ASGI app, no socket)."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from shared.http import RequestMetrics, base_app
from shared.probes import lag_by_topic


def test_lag_is_log_end_minus_stored_position_summed_per_topic() -> None:
    ends = {("credit.inbound.tax", 0): 10, ("credit.inbound.tax", 1): 7,
            ("credit.records.accepted", 3): 5}
    positions = {("credit.inbound.tax", 0): 4, ("credit.inbound.tax", 1): 7,
                 ("credit.inbound.amr", 0): 99}
    assert lag_by_topic(ends, positions, ["credit.inbound.tax", "credit.records.accepted",
                                          "credit.inbound.amr"]) == {
        "credit.inbound.tax": 6,          # 6 + 0
        "credit.records.accepted": 5,     # never applied: counts from offset 0
        "credit.inbound.amr": 0,          # no partition of it assigned here
    }


def test_lag_is_never_negative() -> None:
    # A position read after the log end was (the worker moved on between the two reads).
    assert lag_by_topic({("t", 0): 3}, {("t", 0): 5}, ["t"]) == {"t": 0}


def _app(service: str) -> FastAPI:
    app = base_app("t", "t")

    @app.get("/api/v1/subjects/{subject_type}/{subject_id}")
    async def subject(subject_type: str, subject_id: str) -> dict[str, str]:
        return {"type": subject_type}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_middleware(RequestMetrics, service=service)
    return app


def _requests(service: str, method: str, route: str, status: str) -> float:
    return REGISTRY.get_sample_value("xinyong_http_requests_total", {
        "service": service, "method": method, "route": route, "status": status}) or 0.0


def test_requests_are_counted_by_route_template_never_by_path() -> None:
    service = f"svc{uuid.uuid4().hex[:6]}"
    client = TestClient(_app(service), raise_server_exceptions=False)
    for subject_id in ("91440400MA4UHBKX6N", "440402198505170012"):
        assert client.get(f"/api/v1/subjects/enterprise/{subject_id}").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/boom").status_code == 500
    assert client.request("BREW", "/healthz").status_code == 405

    template = "/api/v1/subjects/{subject_type}/{subject_id}"
    assert _requests(service, "GET", template, "200") == 2
    assert _requests(service, "GET", "unmatched", "404") == 1
    assert _requests(service, "GET", "/boom", "500") == 1
    assert _requests(service, "other", "/healthz", "405") == 1
    assert REGISTRY.get_sample_value("xinyong_http_request_seconds_count", {
        "service": service, "method": "GET", "route": template}) == 2
    # No series names a subject.
    exported = [s for m in REGISTRY.collect() if m.name.startswith("xinyong_http")
                for s in m.samples if s.labels.get("service") == service]
    assert exported and not [s for s in exported if "9144" in str(s.labels)
                             or "4404" in str(s.labels)]

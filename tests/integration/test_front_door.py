"""The front door (deploy/frontdoor.py, Debian's nginx) in front of the session's services:
one base URL per group routes to the service behind it, the probes stay behind the door,
its body cap answers problem JSON, and the forwarding header is nginx's alone: a client
cannot pass for another by writing X-Forwarded-For, and two clients behind the door are
two clients to the objection service's rate limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from deploy import frontdoor, stack
from shared.settings import Settings
from tests.integration.helpers import enterprise, individual
from tests.polling import until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def doors(settings: Settings, services: dict[str, stack.ServiceProcess]
          ) -> Iterator[dict[str, str]]:
    door = frontdoor.FrontDoor(settings)
    door.start({s: 1 for s in services})
    try:
        yield frontdoor.urls(settings)
    finally:
        door.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def _from(address: str) -> httpx.AsyncClient:
    """A client whose connections come from another loopback address: another client."""
    return httpx.AsyncClient(timeout=10, transport=httpx.AsyncHTTPTransport(
        local_address=address))


async def test_each_group_has_one_base_url_in_front_of_its_services(
        doors: dict[str, str], client: httpx.AsyncClient, operator_token: str) -> None:
    assert set(doors) == {"public", "objection", "ingest", "operator"}
    assert len(set(doors.values())) == 4
    page = await client.get(doors["public"] + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    search = await client.get(doors["public"] + "/api/v1/subjects", params={"q": "珠海"})
    assert search.status_code == 200 and "results" in search.json()
    assert (await client.get(doors["objection"] + "/objections/new")).status_code == 200
    # The ingest gateway and the operators' API answer as their services do: a token needed.
    unauthenticated = await client.post(doors["ingest"] + "/api/v1/records", json={})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == "application/problem+json"
    operator = {"Authorization": f"Bearer {operator_token}"}
    archive = await client.get(doors["operator"] + "/api/v1/archive/enterprise/none",
                               headers=operator)
    assert archive.status_code == 404 and archive.json()["code"] == "not_found"
    # ... and the audit of submissions, ingest's, on the same base URL.
    audit = await client.get(doors["operator"] + "/api/v1/records/tax/NONE/submissions",
                             headers=operator)
    assert audit.status_code == 404 and audit.json()["title"] == "No submissions of this record"
    # Each door's OpenAPI is its main service's.
    titles = {g: (await client.get(u + "/openapi.json")).json()["info"]["title"]
              for g, u in doors.items()}
    assert titles["ingest"] == "Xinyong ingest"
    assert len(set(titles.values())) == 4


async def test_probes_and_metrics_stay_behind_the_door(
        doors: dict[str, str], client: httpx.AsyncClient,
        services: dict[str, stack.ServiceProcess]) -> None:
    for url in doors.values():
        for path in ("/readyz", "/healthz", "/metrics"):
            assert (await client.get(url + path)).status_code == 404, (url, path)
    assert (await client.get(services["publisher"].url() + "/readyz")).status_code == 200


async def test_a_body_over_the_doors_cap_is_refused_there(
        doors: dict[str, str], client: httpx.AsyncClient, settings: Settings) -> None:
    big = b"x" * (settings.objection_body_max_bytes + 1024)
    refused = await client.post(doors["objection"] + "/api/v1/objections", content=big,
                                headers={"Content-Type": "application/json"})
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "too_large"


async def test_the_forwarding_header_is_the_doors_alone(
        doors: dict[str, str], settings: Settings) -> None:
    """The session's objection service allows 40 requests a minute per client. Through the
    door, one client writing a new X-Forwarded-For each time is still one client; another
    client beside it is not held back by the first one's count."""
    limit = int(settings.objection_rate_limit_client.split("/")[0])
    if time.time() % 60 > 40:  # the window is a minute on the clock: start early in one
        await asyncio.sleep(61 - time.time() % 60)
    subject = enterprise()
    body = {"subject": {"type": subject.type, "id": subject.id},
            "record": {"department": "amr", "record_id": "NO-SUCH-RECORD"},
            "reason": "前门测试", "contact": "13800000000"}
    url = doors["objection"] + "/api/v1/objections"
    async with _from("127.0.0.3") as one, _from("127.0.0.4") as other:
        statuses = [(await one.post(url, json=body, headers={
            "X-Forwarded-For": f"198.51.100.{i % 250}"})).status_code
            for i in range(limit + 1)]
        assert statuses[:limit] == [422] * limit, statuses
        assert statuses[limit] == 429
        assert (await other.post(url, json=body)).status_code == 422


async def test_the_access_log_keeps_no_path_query_or_client_address(
        doors: dict[str, str], settings: Settings) -> None:
    """A person's profile path holds their identity number and a search its words: neither
    may outlive an erasure in nginx's log. Its lines still say which door answered what."""
    person = individual()
    async with _from("127.0.0.9") as visitor:
        page = await visitor.get(f"{doors['public']}/api/v1/subjects/individual/{person.id}")
        assert page.status_code == 404
        await visitor.get(doors["public"] + "/api/v1/subjects", params={"q": "冒昧一问"})
    log = frontdoor.FrontDoor(settings).directory / "access.log"
    port = str(frontdoor.DOORS[0].port(settings))

    def written() -> str:
        text = log.read_text(encoding="utf-8") if log.exists() else ""
        return text if " 404 " in text else ""

    text = await until(written, "the requests in the access log")
    assert port in text and "GET" in text
    for kept in (person.id, person.id[:6] + person.id[-4:], "q=", "subjects", "127.0.0.9",
                 "%E5%86%92"):
        assert kept not in text, kept

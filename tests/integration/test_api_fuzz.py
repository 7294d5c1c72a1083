"""Every service's OpenAPI, fuzzed by schemathesis against the running services with real
tokens: no answer is a 5xx, and every answer matches what the schema documents.

Each operation gets generated cases, valid and invalid (bodies, parameters and headers that
break the schema); a route that needs a token gets one of the kind it takes, so the
generated input reaches the code behind the authentication.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode, checks

from deploy import credentials
from deploy.stack import ServiceProcess
from shared.settings import Settings
from tests.integration.conftest import wait_until_accepted
from tests.integration.kit import as_client

pytestmark = pytest.mark.integration

# Per operation, valid and invalid input mixed; each example is a real request.
EXAMPLES = 60
CHECKS = [checks.not_a_server_error, checks.response_schema_conformance,
          checks.content_type_conformance]


@pytest.fixture(scope="session")
async def tokens(settings: Settings, services: dict[str, ServiceProcess],
                 operator_token: str) -> dict[str, str]:
    department = await credentials.issue(settings, "department", "court")
    agency = await credentials.issue(settings, "agency", "land")
    await wait_until_accepted(department.token, services["ingest"].url() + "/api/v1/records",
                              "POST")
    await wait_until_accepted(agency.token, services["publisher"].url()
                              + "/api/v1/notices/00000000-0000-0000-0000-000000000000/feedback",
                              "POST")
    return {"operator": operator_token, "department": department.token,
            "agency": agency.token}


def _token_for(service: str, path: str) -> str | None:
    """The kind of party a route takes, if any."""
    if service == "registry":
        return "operator"
    if service == "ingest":
        return "operator" if path.endswith("/submissions") else "department"
    if service == "objection":
        return "department" if path.endswith("/decision") else None
    if service == "publisher":
        if path.startswith(("/api/v1/notices/", "/api/v1/agencies/")):
            return "agency"
        return "operator" if path == "/api/v1/what-if" else None
    if service == "stats":
        return "operator" if path.startswith("/api/v1/scorecards/") else None
    return None


_SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=list(hypothesis.HealthCheck))


def _fuzz(service: str, services: dict[str, ServiceProcess], tokens: dict[str, str]) -> int:
    """Every operation of the service's OpenAPI; returns how many cases were sent."""
    schema = schemathesis.openapi.from_url(services[service].url() + "/openapi.json")
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(case=hypothesis.strategies.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE)))
        @_SETTINGS
        def call(case: Any) -> None:
            nonlocal sent
            headers = dict(as_client())  # an address of its own: the rate limits are real
            kind = _token_for(service, case.path)
            if kind is not None:
                headers["Authorization"] = f"Bearer {tokens[kind]}"
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
            sent += 1

        call()
    assert sent > 0
    print(f"\n{service}: {sent} cases")
    return sent


@pytest.mark.parametrize("service", ["ingest", "registry", "publisher", "objection", "stats"])
def test_no_answer_is_a_server_error_or_off_its_schema(
        service: str, services: dict[str, ServiceProcess], tokens: dict[str, str]) -> None:
    _fuzz(service, services, tokens)

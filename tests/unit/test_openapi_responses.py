"""Every route of every service documents its answers (issue 11, item 7): a typed JSON
schema for each success (a model, not `dict[str, Any]`), and every error as
application/problem+json. Built in process from each service's app (no pool is touched)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.http import PROBLEM
from shared.settings import Settings
from shared.topics import SERVICES


def openapi(service: str, catalogue: Catalogue) -> dict[str, Any]:
    api = importlib.import_module(f"services.{service}.api")
    ctx = ServiceContext(service, Settings(), catalogue, pool=None)  # type: ignore[arg-type]
    return api.create_app(ctx).openapi()  # type: ignore[no-any-return]


def _typed(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """A schema that names its fields: a model's reference (with properties), or an array
    of them. `dict[str, Any]` is an object with no properties."""
    if schema.get("type") == "array":
        return _typed(schema["items"], components)
    if "$ref" in schema:
        return _typed(components[schema["$ref"].rsplit("/", 1)[1]], components)
    return bool(schema.get("properties"))


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items()
            for method, op in ops.items()]


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_has_a_typed_answer_and_problem_errors(service: str,
                                                           catalogue: Catalogue) -> None:
    spec = openapi(service, catalogue)
    components = spec["components"]["schemas"]
    found = operations(spec)
    assert found
    for method, path, op in found:
        where = f"{service} {method} {path}"
        successes = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        assert successes, where
        for status, response in successes.items():
            if status == "204":
                assert "content" not in response, where
                continue
            content = response["content"]
            if "application/json" not in content:
                # A file (a report's PDF): its media type is the answer's type.
                assert content and all(t.startswith("application/") for t in content), where
                continue
            schema = content["application/json"]["schema"]
            assert _typed(schema, components), f"{where} {status}: untyped {schema}"
        for status in ("4XX", "5XX"):
            assert op["responses"][status]["content"][PROBLEM]["schema"] == {
                "$ref": "#/components/schemas/Problem"}, where
        assert not [s for s in op["responses"] if s[0] in "45" and s[1:] != "XX"], where


def test_the_check_sees_an_untyped_answer() -> None:
    components = {"M": {"type": "object", "properties": {"a": {"type": "string"}}},
                  "Loose": {"type": "object", "additionalProperties": True}}
    assert _typed({"$ref": "#/components/schemas/M"}, components)
    assert _typed({"type": "array", "items": {"$ref": "#/components/schemas/M"}}, components)
    assert not _typed({"type": "object", "additionalProperties": True}, components)
    assert not _typed({"$ref": "#/components/schemas/Loose"}, components)


def test_answers_keep_the_fields_a_route_returns(catalogue: Catalogue) -> None:
    """`Answer` takes more fields than it names, and a field a route leaves out is not
    added: the JSON shapes CONTRACT.md fixes do not change with the models."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from services.publisher.responses import ListChanges
    from shared.http import ANSWERED_AS_RETURNED

    app = FastAPI()

    @app.get("/x", response_model=ListChanges, **ANSWERED_AS_RETURNED)
    async def x() -> dict[str, Any]:
        return {"list": "l", "next": "c", "extra": 1, "changes": [
            {"op": "ADD", "entry_id": "e", "at": "2026-11-28T09:00:00+08:00",
             "since": "2026-11-28", "until": None, "subject": None, "more": True}]}

    assert TestClient(app).get("/x").json() == {
        "list": "l", "next": "c", "extra": 1, "changes": [
            {"op": "ADD", "entry_id": "e", "at": "2026-11-28T09:00:00+08:00",
             "since": "2026-11-28", "until": None, "subject": None, "more": True}]}

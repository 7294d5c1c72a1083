"""What a service reads and writes is declared once (services/*/contracts.py CONSUMES,
PRODUCES) and used for the ACLs and docs/asyncapi.yaml: its outbox writes no topic it does
not declare, it subscribes to no topic it does not declare, and the topics it declares it
writes have it as their one writer."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.kafka_admin import SERVICE_TOPICS
from shared import topics as t
from shared.catalogue import load_catalogue
from shared.settings import REPO_ROOT

CATALOGUE = load_catalogue()
BUILDERS = {"of", "of_json"}  # OutboundEvent.of / .of_json: every event the outbox writes


def _event_topics(path: Path) -> Iterator[tuple[int, ast.expr]]:
    """(line, topic expression) of every `OutboundEvent.of(topic, ...)` in a module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in BUILDERS and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "OutboundEvent"):
            yield node.lineno, node.args[0]


def _declared(expression: ast.expr, module: Any) -> Any:
    """The Topic or TopicFamily an expression names: `NAME` or `FAMILY.of(code)`."""
    if isinstance(expression, ast.Call) and isinstance(expression.func, ast.Attribute) \
            and expression.func.attr == "of":
        expression = expression.func.value
    if isinstance(expression, ast.Attribute) and isinstance(expression.value, ast.Name):
        return getattr(getattr(module, expression.value.id), expression.attr)
    assert isinstance(expression, ast.Name), ast.unparse(expression)
    return getattr(module, expression.id)


def written_by(service: str) -> list[tuple[str, Any]]:
    found = []
    for path in sorted((REPO_ROOT / "services" / service).glob("*.py")):
        if path.stem == "__main__":  # runs the service when imported; builds no event
            assert not list(_event_topics(path))
            continue
        module = importlib.import_module(f"services.{service}.{path.stem}")
        found += [(f"{path.name}:{line}", _declared(expr, module))
                  for line, expr in _event_topics(path)]
    return found


@pytest.mark.parametrize("service", t.SERVICES)
def test_a_service_writes_only_what_it_declares(service: str) -> None:
    contracts = importlib.import_module(f"services.{service}.contracts")
    written = written_by(service)
    assert written, f"{service} writes no event?"
    for where, declared in written:
        # COMPLAINTS shares OBJECTIONS' topics (and so its grant): a declared prefix counts.
        names = {getattr(d, "prefix", getattr(d, "name", None)) for d in contracts.PRODUCES}
        name = getattr(declared, "prefix", getattr(declared, "name", None))
        assert name in names, f"{where} writes {name}, not in {service}'s PRODUCES"


def test_the_check_finds_an_undeclared_topic(tmp_path: Path) -> None:
    spoiled = tmp_path / "spoiled.py"
    spoiled.write_text("OutboundEvent.of(NOTICES.of(agency), SOURCE, key, data)\n"
                       "OutboundEvent.of_json(t.LISTS_CHANGED, SOURCE, key, body)\n")
    found = [_declared(e, type("m", (), {"NOTICES": t.NOTICES, "t": t}))
             for _, e in _event_topics(spoiled)]
    assert found == [t.NOTICES, t.LISTS_CHANGED]
    assert t.NOTICES not in importlib.import_module("services.ingest.contracts").PRODUCES


@pytest.mark.parametrize("service", t.SERVICES)
def test_a_service_subscribes_only_to_what_it_declares(service: str) -> None:
    contracts = importlib.import_module(f"services.{service}.contracts")
    declared = set()
    for d in contracts.CONSUMES:
        declared |= ({d.of(code).name for code in t.family_members(d, CATALOGUE)}
                     if isinstance(d, t.TopicFamily) else {d.name})
    # Exactly: a topic declared and not read would be granted for nothing.
    assert set(contracts.consumed_topics(CATALOGUE)) == declared


@pytest.mark.parametrize("service", SERVICE_TOPICS)
def test_what_a_service_produces_has_it_as_writer(service: str) -> None:
    _, produces = SERVICE_TOPICS[service]
    for declared in produces:
        assert declared.writer == f"xinyong/{service}", (service, declared)
    for declared in t.SINGLE_TOPICS:
        if declared.writer == f"xinyong/{service}":
            assert declared in produces, (service, declared.name)

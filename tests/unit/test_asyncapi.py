"""docs/asyncapi.yaml: what `python -m deploy.asyncapi` writes, valid AsyncAPI 3.0.0, one
channel for every topic, each with its one writer, and CONTRACT.md's examples valid against
both the document's schemas and the contract models."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from deploy import asyncapi
from deploy.kafka_admin import SERVICE_TOPICS
from shared import topics as t
from shared.catalogue import load_catalogue
from shared.envelope import CloudEvent

CATALOGUE = load_catalogue()
DOCUMENT: dict[str, Any] = yaml.safe_load(asyncapi.DOCUMENT.read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft7Validator(
    json.loads(asyncapi.SCHEMA.read_text(encoding="utf-8")))


def test_the_document_is_what_the_generator_writes() -> None:
    assert asyncapi.DOCUMENT.read_text(encoding="utf-8") == asyncapi.render(asyncapi.build()), \
        "run `python -m deploy.asyncapi` and commit docs/asyncapi.yaml"


def test_the_document_is_valid_asyncapi_3() -> None:
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in VALIDATOR.iter_errors(DOCUMENT)]
    assert errors == []


@pytest.mark.parametrize("spoil", ["no address", "bad action", "unknown field"])
def test_the_schema_refuses_a_spoiled_document(spoil: str) -> None:
    spoiled = copy.deepcopy(DOCUMENT)
    match spoil:
        case "no address":
            spoiled["channels"]["credit-inbound"]["address"] = 42
        case "bad action":
            next(iter(spoiled["operations"].values()))["action"] = "publish"
        case "unknown field":
            spoiled["channels"]["credit-feedback"]["topic"] = "credit.feedback"
    assert not VALIDATOR.is_valid(spoiled)


def _addresses(channel: dict[str, Any]) -> set[str]:
    parameters = channel.get("parameters", {})
    if not parameters:
        return {channel["address"]}
    (name, parameter), = parameters.items()
    return {channel["address"].replace("{" + name + "}", code) for code in parameter["enum"]}


def test_every_topic_has_a_channel_and_every_channel_a_topic() -> None:
    documented = set().union(*(_addresses(c) for c in DOCUMENT["channels"].values()))
    assert documented == {topic.name for topic in t.all_topics(CATALOGUE)}


def test_every_event_type_of_a_topic_is_a_message_of_its_channel() -> None:
    for declared in asyncapi.DECLARED:
        channel = DOCUMENT["channels"][asyncapi.channel_id(declared)]
        message = DOCUMENT["components"]["messages"][asyncapi.message_id(declared)]
        assert asyncapi.message_id(declared) in channel["messages"]
        assert message["name"] == declared.event_type


def test_each_channel_has_one_writer_which_is_the_envelope_source() -> None:
    for cid, channel in DOCUMENT["channels"].items():
        assert channel["x-writers-allowed"] == [channel["x-writer"]], cid


def test_readers_are_the_declared_consumers() -> None:
    for service, (consumes, _) in SERVICE_TOPICS.items():
        for declared in consumes:
            channel = DOCUMENT["channels"][asyncapi.channel_id(declared)]
            assert f"xinyong/{service}" in channel["x-readers"], (service, declared)
            operation = f"xinyong-{service}.receive.{asyncapi.channel_id(declared)}"
            assert DOCUMENT["operations"][operation]["action"] == "receive"
    readers = {r for c in DOCUMENT["channels"].values() for r in c["x-readers"]}
    assert readers - {f"xinyong/{s}" for s in SERVICE_TOPICS} == {
        "dept/{department}", "agency/{agency}"}


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    """A message's payload schema with the document's components beside it, so that its
    `#/components/...` references resolve."""
    return {**schema, "components": DOCUMENT["components"]}


def _examples() -> list[tuple[str, dict[str, Any]]]:
    return [(mid, example["payload"])
            for mid, message in DOCUMENT["components"]["messages"].items()
            for example in message.get("examples", [])]


def test_contract_examples_are_documented() -> None:
    names = {DOCUMENT["components"]["messages"][mid]["name"] for mid, _ in _examples()}
    assert names == set(asyncapi.EXAMPLES)


@pytest.mark.parametrize(("mid", "example"), _examples(), ids=lambda v: str(v)[:40])
def test_examples_are_valid_by_the_document_and_the_models(mid: str,
                                                           example: dict[str, Any]) -> None:
    message = DOCUMENT["components"]["messages"][mid]
    jsonschema.Draft202012Validator(_resolved(message["payload"])).validate(example)
    model = next(d.payload for d in asyncapi.DECLARED
                 if d.event_type == message["name"])
    assert issubclass(model, BaseModel)
    CloudEvent[model].model_validate(example)  # type: ignore[valid-type]


def test_a_payload_schema_refuses_what_its_model_refuses() -> None:
    message = DOCUMENT["components"]["messages"]["record-feedback-v1"]
    example = copy.deepcopy(message["examples"][0]["payload"])
    example["data"]["status"] = "lost"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_resolved(message["payload"])).validate(example)
    example = copy.deepcopy(message["examples"][0]["payload"])
    example["source"] = "dept/tax"  # only ingest writes feedback
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_resolved(message["payload"])).validate(example)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [*([node["$ref"]] if isinstance(node.get("$ref"), str) else []),
                *(r for v in node.values() for r in _refs(v))]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(pointer: str) -> Any:
    node: Any = DOCUMENT
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_resolves_in_the_document() -> None:
    """The JSON Schema does not follow references: an operation naming a channel that is
    not there, or a message a payload schema that is not, would pass it."""
    refs = set(_refs(DOCUMENT))
    assert refs and all(r.startswith("#/") for r in refs)
    for ref in sorted(refs):
        _resolve(ref)
    for operation in DOCUMENT["operations"].values():
        channel = _resolve(operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert _resolve(message["$ref"]) in channel["messages"].values()

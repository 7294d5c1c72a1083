"""The AsyncAPI 3.0 document of every topic (docs/asyncapi.yaml), written from the code it
describes: the topics, their keys, partitions and retention from shared/topics.py, the
payloads from the contract models (shared/contract.py, as pydantic's JSON Schema), the
CloudEvents envelope (shared/envelope.py), who writes and who reads each topic from the
broker's grants (shared/access.py over each service's CONSUMES/PRODUCES, the same grants the
broker and the KafkaUsers get), and CONTRACT.md's examples (checked against the models by
tests/unit/test_asyncapi.py).

`python -m deploy.asyncapi` rewrites the document; a test fails when the committed file
differs from what this writes, and validates it against the AsyncAPI 3.0.0 JSON Schema
(docs/schemas/asyncapi-3.0.0.json, from the @asyncapi/specs package, version in
docs/schemas/README.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from deploy.kafka_admin import SERVICE_TOPICS
from shared import topics as t
from shared.access import (
    Grant,
    Principal,
    agency_grants,
    department_grants,
    grants_for,
    operator_grants,
)
from shared.catalogue import Catalogue, load_catalogue
from shared.envelope import CloudEvent
from shared.settings import REPO_ROOT, Settings
from shared.topics import Topic, TopicFamily

DOCUMENT = REPO_ROOT / "docs" / "asyncapi.yaml"
SCHEMA = REPO_ROOT / "docs" / "schemas" / "asyncapi-3.0.0.json"
# The Kafka bindings' version the AsyncAPI 3.0.0 schema knows best.
KAFKA_BINDINGS = "0.5.0"
SCHEMAS = "#/components/schemas/"

# Every event type on a family's topics: a topic may carry more than one (a department's
# inbound topic carries its records and its objection decisions; its objections topic the
# objections routed to it and the complaints).
CHANNEL_FAMILIES: tuple[TopicFamily[Any], ...] = (
    t.INBOUND, t.DECISIONS, t.FEEDBACK, t.OBJECTIONS, t.COMPLAINTS, t.NOTICES,
    t.NOTICE_FEEDBACK, t.DEAD_LETTERS)
# Every (topic or family, event type) the document describes.
DECLARED: tuple[Topic[Any] | TopicFamily[Any], ...] = (*CHANNEL_FAMILIES, *t.SINGLE_TOPICS)
# The faust changelog carries faust's own records, not CloudEvents: described, not modelled.
NOT_CLOUDEVENTS = (t.STATS_WINDOWS_CHANGELOG,)

_PARAMETER = {"department": "department", "agency": "agency", "service": "service"}

# CONTRACT.md's examples, by event type: each is checked against its model by a test.
EXAMPLES: dict[str, dict[str, Any]] = {
    t.RECORD_SUBMITTED: {
        "record_id": "TAX-2026-000123", "revision": 1, "action": "upsert",
        "catalogue_item": "tax.major_violation",
        "subject": {"type": "enterprise", "id": "91440400MA4W8KXXXX",
                    "name": "珠海某某貿易有限公司"},
        "decided_on": "2026-11-01", "document_no": "珠稅稽罰〔2026〕12號",
        "summary": "free text", "district": "440402", "attributes": {}},
    t.FEEDBACK.event_type: {
        "event_id": "3f0c2a52-6a5e-4d1e-9a56-1f2f0b0e7c11", "record_id": "TAX-2026-000123",
        "revision": 1, "status": "rejected",
        "errors": [{"field": "subject.id", "code": "checksum",
                    "message": "the check character does not match"}]},
    t.NOTICES.event_type: {
        "notice_id": "n-5b0e1c9a7f3d", "kind": "penalty", "list": "court.dishonest_debtor",
        "measure": "procurement.exclude",
        "subject": {"type": "enterprise", "id": "91440400MA4W8KXXXX",
                    "name": "珠海某某貿易有限公司"},
        "related_subjects": [{"type": "individual", "id": "44040219800101123X",
                              "role": "legal_representative"}],
        "effective_from": "2026-11-08", "effective_until": "2029-11-08",
        "basis": [{"department": "tax", "record_id": "TAX-2026-000123", "revision": 1}],
        "issued_at": "2026-11-08T09:00:00+08:00"},
    t.NOTICE_FEEDBACK.event_type: {
        "notice_id": "n-5b0e1c9a7f3d", "status": "applied", "note": "excluded from tender 17"},
    t.OBJECTION_DECIDED: {
        "objection_id": "obj-7d2f", "decision": "upheld", "reason": "the fine was annulled",
        "withdraw": True},
}
# The envelope around CONTRACT.md's record example.
ENVELOPE_EXAMPLE = {
    "specversion": "1.0", "id": "producer-unique id", "source": "dept/tax",
    "type": t.RECORD_SUBMITTED, "subject": "enterprise:91440400MA4W8KXXXX",
    "time": "2026-11-28T09:00:00+08:00", "datacontenttype": "application/json"}


def channel_id(declared: Topic[Any] | TopicFamily[Any]) -> str:
    return (declared.prefix if isinstance(declared, TopicFamily) else declared.name
            ).replace(".", "-")


def message_id(declared: Topic[Any] | TopicFamily[Any]) -> str:
    return declared.event_type.removeprefix("cn.zhuhai.credit.").replace(".", "-")


def address(declared: Topic[Any] | TopicFamily[Any]) -> str:
    if isinstance(declared, TopicFamily):
        return f"{declared.prefix}.{{{_PARAMETER[declared.owner]}}}"
    return declared.name


def payload_schemas(models: Iterable[type[BaseModel]]) -> tuple[dict[str, str], dict[str, Any]]:
    """JSON Schema of every payload model, each in components/schemas under its own name:
    (model name -> its schema's name, every schema)."""
    unique = sorted(set(models), key=lambda m: m.__name__)
    refs, top = models_json_schema([(m, "validation") for m in unique],
                                   ref_template=SCHEMAS + "{model}")
    names = {m.__name__: refs[(m, "validation")]["$ref"].removeprefix(SCHEMAS)
             for m in unique}
    return names, dict(sorted(top.get("$defs", {}).items()))


def envelope_schema() -> dict[str, Any]:
    """CloudEvents 1.0, structured JSON mode, as shared/envelope.py reads it; `data` is each
    message's payload."""
    schema = CloudEvent.model_json_schema()
    schema["title"] = "CloudEvent"
    schema["description"] = ("CloudEvents 1.0 in structured JSON mode (UTF-8) around every "
                             "event on every topic (CONTRACT.md, \"Envelope\"). `subject` "
                             "is the Kafka key; `id` is stable across redeliveries.")
    schema["properties"].pop("data", None)
    schema["required"] = [*schema.get("required", []), "data"]
    return schema


def _writer_source(declared: Topic[Any] | TopicFamily[Any]) -> dict[str, Any]:
    if isinstance(declared, TopicFamily) and "{code}" in declared.writer:
        head, tail = declared.writer.split("{code}")
        return {"type": "string", "pattern": f"^{head}[a-z0-9-]+{tail}$",
                "description": f"`{declared.writer}`, the code of the topic's "
                               f"{declared.owner}"}
    return {"const": declared.writer}


def message(declared: Topic[Any] | TopicFamily[Any], payload_name: str) -> dict[str, Any]:
    example = EXAMPLES.get(declared.event_type)
    body: dict[str, Any] = {
        "name": declared.event_type,
        "title": declared.payload.__name__,
        "summary": summary(declared),
        "contentType": "application/json",
        "payload": {"allOf": [
            {"$ref": SCHEMAS + "CloudEvent"},
            {"type": "object", "required": ["type", "source", "data"], "properties": {
                "type": {"const": declared.event_type},
                "source": _writer_source(declared),
                "data": {"$ref": SCHEMAS + payload_name}}}]},
        "bindings": {"kafka": {"key": key_schema(declared),
                               "bindingVersion": KAFKA_BINDINGS}},
    }
    if example is not None:
        source = ("dept/tax" if declared.writer == "dept/{code}" else
                  "agency/finance-procurement" if declared.writer == "agency/{code}" else
                  declared.writer)
        body["examples"] = [{"name": "contract", "summary": "CONTRACT.md's example",
                             "payload": {**ENVELOPE_EXAMPLE, "source": source,
                                         "type": declared.event_type, "data": example}}]
    return body


def summary(declared: Topic[Any] | TopicFamily[Any]) -> str:
    """The first paragraph of the payload model's docstring, on one line."""
    doc = (declared.payload.__doc__ or declared.event_type).strip()
    return " ".join(doc.split("\n\n")[0].split())


KEYS: dict[str, dict[str, Any]] = {
    "SubjectKey": {"type": "string", "pattern": "^[a-z_]+:.+$",
                   "description": "The subject key `<type>:<identifier>`: every event of one "
                                  "subject on one partition, in order (CONTRACT.md)."},
    "DistrictKey": {"type": "string", "description": "The district code (GB/T 2260)."},
    "WindowKey": {"type": "string",
                  "description": "`<district>|<measure>|<window start>`: compaction keeps a "
                                 "window's last count."},
    "TokenKey": {"type": "string",
                 "description": "The credential's `token_id`: compaction keeps its last state."},
    "TableKey": {"description": "faust's key of stats-windows' table, as JSON: "
                                "`[\"<district>|<rule>\", <window>]`."},
    "OriginalKey": {"type": ["string", "null"],
                    "description": "The key of the message set aside, as text."},
}


def key_schema(declared: Topic[Any] | TopicFamily[Any]) -> dict[str, Any]:
    """The Kafka key's schema, inline: the 3.0.0 JSON Schema takes a `$ref` here for both a
    Reference and a Schema, and its `oneOf` then refuses it."""
    return KEYS[{"subject": "SubjectKey", "district": "DistrictKey", "window": "WindowKey",
            "token": "TokenKey", "table": "TableKey", "original": "OriginalKey"}[declared.key]]


def _topic_configuration(config: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "cleanup.policy" in config:
        out["cleanup.policy"] = config["cleanup.policy"].split(",")
    if "retention.ms" in config:
        out["retention.ms"] = int(config["retention.ms"])
    return out


def _principals(catalogue: Catalogue) -> list[tuple[str, list[Grant]]]:
    """Every kind of principal with its grants, for one member of each party kind (the
    grants of every department are the same but for its code)."""
    out = [(f"xinyong/{s}", grants_for(Principal("service", s, s), "", SERVICE_TOPICS))
           for s in SERVICE_TOPICS]
    out += [(f"dept/{d}", department_grants(d, "")) for d in catalogue.departments]
    out += [(f"agency/{a}", agency_grants(a, "")) for a in catalogue.agencies]
    out.append(("xinyong/operator", operator_grants("")))
    return out


def _allowed(grants: Sequence[Grant], topic: str, operation: str) -> bool:
    return any(g.resource == "topic" and g.operation == operation and (
        (g.pattern == "literal" and g.name == topic)
        or (g.pattern == "prefixed" and topic.startswith(g.name))) for g in grants)


def parties(topic_names: Sequence[str], operation: str,
            principals: Sequence[tuple[str, list[Grant]]], parameter: str | None) -> list[str]:
    """Who may `operation` the topics of a channel, by the broker's grants. A principal
    allowed on its own member topic only (a department on its inbound topic, a service on
    its dead letters) is named with the channel's parameter: `dept/{department}`. The
    operators' blanket read is left out."""
    found: set[str] = set()
    for name, grants in principals:
        if name == "xinyong/operator" and operation == "read":
            continue
        hits = [topic for topic in topic_names if _allowed(grants, topic, operation)]
        if not hits:
            continue
        kind = name.partition("/")[0]
        found.add(f"{kind}/{{{parameter}}}" if parameter and len(hits) < len(topic_names)
                  else name)
    return sorted(found)


def build(catalogue: Catalogue | None = None) -> dict[str, Any]:
    catalogue = catalogue or load_catalogue()
    # The default, not this machine's environment: the document is the same everywhere.
    local_bootstrap = Settings.model_fields["kafka_bootstrap"].default
    channels_of: dict[str, list[Topic[Any] | TopicFamily[Any]]] = {}
    for declared in DECLARED:
        channels_of.setdefault(channel_id(declared), []).append(declared)
    payload_names, schemas = payload_schemas(
        d.payload for group in channels_of.values() for d in group)
    principals = _principals(catalogue)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cid, group in channels_of.items():
        first = group[0]
        if isinstance(first, TopicFamily):
            members = t.family_members(first, catalogue)
            names = [first.of(code).name for code in members]
        else:
            members, names = [], [first.name]
        channel: dict[str, Any] = {
            "address": address(first),
            "title": first.prefix if isinstance(first, TopicFamily) else first.name,
            "description": _channel_description(first),
            "messages": {},
        }
        for declared in group:
            mid = message_id(declared)
            if declared in NOT_CLOUDEVENTS:
                messages[mid] = {
                    "name": declared.event_type, "title": "faust changelog record",
                    "summary": "faust's own record of stats-windows' table (not a "
                               "CloudEvent): the table's state for a restart.",
                    "contentType": "application/json",
                    "payload": {"description": "faust's serialized value of the table: a "
                                               "window's count"},
                    "bindings": {"kafka": {"key": key_schema(declared),
                                           "bindingVersion": KAFKA_BINDINGS}}}
            else:
                messages[mid] = message(declared, payload_names[declared.payload.__name__])
            channel["messages"][mid] = {"$ref": f"#/components/messages/{mid}"}
        parameter: str | None = None
        binding: dict[str, Any] = {"partitions": first.partitions,
                                   "bindingVersion": KAFKA_BINDINGS}
        if isinstance(first, TopicFamily):
            parameter = _PARAMETER[first.owner]
            channel["parameters"] = {parameter: {
                "description": f"The {first.owner}'s code (shared/catalogue.yaml)"
                               if first.owner != "service" else "The service's name",
                "enum": list(members)}}
        else:
            binding = {"topic": first.name, **binding}
        configuration = _topic_configuration(dict(first.config))
        if configuration:
            binding["topicConfiguration"] = configuration
        channel["bindings"] = {"kafka": binding}
        writers = parties(names, "write", principals, parameter)
        readers = parties(names, "read", principals, parameter)
        channel["x-writer"] = writer_of(first)
        channel["x-writers-allowed"] = writers
        channel["x-readers"] = readers
        channel["x-external"] = first.external
        channels[cid] = channel
        refs = [{"$ref": f"#/channels/{cid}/messages/{message_id(d)}"} for d in group]
        for who in writers:
            operations[_operation_id(who, "send", cid)] = {
                "action": "send", "channel": {"$ref": f"#/channels/{cid}"},
                "title": f"{who} writes {channel['title']}", "messages": refs}
        for who in readers:
            operations[_operation_id(who, "receive", cid)] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{cid}"},
                "title": f"{who} reads {channel['title']}", "messages": refs}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Xinyong (信用) events",
            "version": "1.0.0",
            "description": (
                "Every Kafka topic of Xinyong, the public joint credit information system of "
                "Zhuhai. Generated by `python -m deploy.asyncapi` from shared/topics.py, "
                "shared/contract.py and the services' contracts.py; do not edit by hand. "
                "External topics (`x-external: true`) are CONTRACT.md's promise to "
                "departments and agencies; the others are the services' own. Every event "
                "is a CloudEvents 1.0 event in structured JSON mode, keyed by its subject; "
                "delivery is at least once, consumers deduplicate by `id`. `x-writer` is the "
                "envelope `source` every reader checks, `x-writers-allowed` and `x-readers` "
                "the principals the broker's ACLs let write and read (operators read "
                "everything)."),
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "xinyong-kafka-bootstrap.xinyong.svc:9093", "protocol": "kafka-secure",
                "description": "Strimzi's bootstrap in Kubernetes (deploy/k8s): "
                               "SASL/SCRAM-SHA-512 over TLS.",
                "security": [{"$ref": "#/components/securitySchemes/scram"}]},
            "local": {
                "host": local_bootstrap, "protocol": "kafka",
                "description": "`./xinyong up` on one machine: plain SASL/SCRAM-SHA-512 on "
                               "the loopback interface.",
                "security": [{"$ref": "#/components/securitySchemes/scram"}]},
        },
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {
            "schemas": {"CloudEvent": envelope_schema(), **schemas},
            "messages": dict(sorted(messages.items())),
            "securitySchemes": {"scram": {
                "type": "scramSha512",
                "description": "One Kafka user per service, department, agency and "
                               "operator credential (`./xinyong credentials issue`); ACLs "
                               "as CONTRACT.md, \"Connecting\" (shared/access.py)."}},
        },
    }


def _operation_id(who: str, action: str, cid: str) -> str:
    party = who.replace("/", "-").replace("{", "").replace("}", "")
    return f"{party}.{action}.{cid}"


def writer_of(declared: Topic[Any] | TopicFamily[Any]) -> str:
    """The envelope `source` of the channel's events, a family's code as its parameter."""
    if isinstance(declared, TopicFamily):
        return declared.writer.replace("{code}", "{" + _PARAMETER[declared.owner] + "}")
    return declared.writer


def _channel_description(declared: Topic[Any] | TopicFamily[Any]) -> str:
    scope = ("one topic per " + declared.owner if isinstance(declared, TopicFamily)
             else "one topic")
    side = "external (CONTRACT.md)" if declared.external else "internal"
    return (f"{scope}, {side}; {declared.partitions} partition(s); the one writer is "
            f"`{writer_of(declared)}`.")


def render(document: dict[str, Any]) -> str:
    return ("# Generated by `python -m deploy.asyncapi`: do not edit.\n"
            + yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=100))


def write(path: Path = DOCUMENT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(build()), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCUMENT))

"""Who may do what on the broker (CONTRACT.md, "Connecting"): the ACL grants of every kind
of principal, derived from the topic registry and each service's declared topics.

Pure data: `deploy/kafka_admin.py` turns grants into the broker's ACLs. One principal per
service, department, agency and operator credential; nothing is allowed that is not granted
here (the broker runs with `allow.everyone.if.no.acl.found=false`).

- A department writes only `credit.inbound.<dept>`, reads only `credit.feedback.<dept>` and
  `credit.objections.<dept>`, and uses consumer groups starting with `<dept>.`.
- An agency reads only `credit.notices.<agency>`, writes only `credit.notice-feedback.<agency>`,
  and uses groups starting with `<agency>.`.
- A service reads what it consumes and writes what it produces (its `contracts.py`), its
  own dead-letter topic, and reads `credit.credentials`; each internal topic has exactly one
  writing service.
- An operator reads every topic (dead letters included), alone writes `credit.credentials`,
  and administers users and ACLs; it writes no other topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared.topics import CREDENTIALS, DEAD_LETTERS, INBOUND, NOTICE_FEEDBACK, Topic, TopicFamily

Resource = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["read", "write", "describe", "describe_configs", "alter", "create",
                    "delete"]
PrincipalKind = Literal["service", "department", "agency", "operator", "observer", "tester",
                        "bench"]

Declared = TopicFamily[Any] | Topic[Any]


@dataclass(frozen=True, order=True)
class Grant:
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation


@dataclass(frozen=True)
class Principal:
    """A Kafka user and the party it acts for."""

    kind: PrincipalKind
    code: str  # service name, department or agency code, credential id
    username: str


def _topic(declared: Declared, namespace: str, operation: Operation) -> Grant:
    if isinstance(declared, TopicFamily):
        return Grant("topic", f"{namespace}{declared.prefix}.", "prefixed", operation)
    return Grant("topic", f"{namespace}{declared.name}", "literal", operation)


def _everything(namespace: str) -> tuple[str, Pattern]:
    # Production has no namespace: the wildcard. A test or benchmark namespace: its prefix.
    return (namespace, "prefixed") if namespace else ("*", "literal")


def service_grants(service: str, consumes: Sequence[Declared], produces: Sequence[Declared],
                   namespace: str) -> list[Grant]:
    grants = [_topic(t, namespace, "read") for t in (*consumes, CREDENTIALS)]
    grants += [_topic(t, namespace, "write") for t in (*produces, DEAD_LETTERS.of(service))]
    # Its stream workers' groups, `<ns>xinyong-<service>` and `...-credentials`, by name: a
    # prefix `xinyong-stats` would also be stats-windows' group.
    group = f"{namespace}xinyong-{service}"
    grants += [Grant("group", g, "literal", "read") for g in (group, f"{group}-credentials")]
    return sorted(set(grants))


def department_grants(department: str, namespace: str) -> list[Grant]:
    return [
        Grant("topic", f"{namespace}{INBOUND.prefix}.{department}", "literal", "write"),
        Grant("topic", f"{namespace}credit.feedback.{department}", "literal", "read"),
        Grant("topic", f"{namespace}credit.objections.{department}", "literal", "read"),
        Grant("group", f"{namespace}{department}.", "prefixed", "read"),
    ]


def agency_grants(agency: str, namespace: str) -> list[Grant]:
    return [
        Grant("topic", f"{namespace}credit.notices.{agency}", "literal", "read"),
        Grant("topic", f"{namespace}{NOTICE_FEEDBACK.prefix}.{agency}", "literal", "write"),
        Grant("group", f"{namespace}{agency}.", "prefixed", "read"),
    ]


def operator_grants(namespace: str) -> list[Grant]:
    name, pattern = _everything(namespace)
    return [
        Grant("cluster", "kafka-cluster", "literal", "describe"),
        Grant("cluster", "kafka-cluster", "literal", "alter"),  # users and ACLs
        Grant("topic", name, pattern, "read"),
        Grant("topic", name, pattern, "describe_configs"),
        Grant("topic", f"{namespace}{CREDENTIALS.name}", "literal", "write"),
        Grant("group", f"{namespace}ops.", "prefixed", "read"),
    ]


def observer_grants(namespace: str) -> list[Grant]:
    """Reads every topic of a test or benchmark namespace: the suite's and the bench's
    view of what went by. Never granted without a namespace."""
    assert namespace, "an observer exists only inside a test or benchmark namespace"
    return [Grant("topic", namespace, "prefixed", "read"),
            Grant("group", f"{namespace}observer.", "prefixed", "read")]


def tester_grants(namespace: str) -> list[Grant]:
    """Writes every department's and agency's external topics of a test or benchmark
    namespace: the load of the suite and the bench, sent as the parties would."""
    assert namespace, "a tester exists only inside a test or benchmark namespace"
    return [_topic(INBOUND, namespace, "write"), _topic(NOTICE_FEEDBACK, namespace, "write")]


def bench_grants(namespace: str) -> list[Grant]:
    """The benchmark's own client in its namespace: it sends as every party (tester),
    receives every topic (observer), and keeps topics of its own (`bench.*`: the bare
    pass-through it measures the pipeline against)."""
    own = f"{namespace}bench."
    return [*tester_grants(namespace), *observer_grants(namespace),
            *(Grant("topic", own, "prefixed", op)
              for op in ("read", "write", "create", "delete")),
            Grant("group", f"{namespace}bench", "prefixed", "read")]


def username(kind: str, code: str, namespace: str, credential_id: str | None = None) -> str:
    """Kafka user names: `svc.<service>`, `dept.<code>.<id>`, `agency.<code>.<id>`,
    `operator.<id>`, prefixed by the namespace of a test or benchmark run."""
    short = {"service": "svc", "department": "dept"}.get(kind, kind)
    parts = [short] + ([code] if code else []) + ([credential_id] if credential_id else [])
    return namespace + ".".join(parts)


def grants_for(principal: Principal, namespace: str,
               service_topics: dict[str, tuple[Sequence[Declared], Sequence[Declared]]]
               ) -> list[Grant]:
    match principal.kind:
        case "service":
            consumes, produces = service_topics[principal.code]
            return service_grants(principal.code, consumes, produces, namespace)
        case "department":
            return department_grants(principal.code, namespace)
        case "agency":
            return agency_grants(principal.code, namespace)
        case "operator":
            return operator_grants(namespace)
        case "observer":
            return observer_grants(namespace)
        case "tester":
            return tester_grants(namespace)
        case "bench":
            return bench_grants(namespace)


def writers(grants_by_principal: Iterable[tuple[str, list[Grant]]], topic: str) -> set[str]:
    """The principals that may write a topic: for the single-writer check."""
    found = set()
    for name, grants in grants_by_principal:
        for g in grants:
            if g.resource == "topic" and g.operation == "write" and (
                    (g.pattern == "literal" and g.name in (topic, "*"))
                    or (g.pattern == "prefixed" and topic.startswith(g.name))):
                found.add(name)
    return found

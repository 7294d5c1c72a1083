"""deploy/k8s against the code and the schemas, offline: the manifests are what
deploy/manifests.py writes from the code; core kinds pass kubernetes-validate (the schemas
it ships); Strimzi and CloudNativePG resources pass their CRDs' schemas, committed with
their versions in deploy/k8s/schemas; the Kafka users have the local broker's ACLs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from deploy import manifests
from deploy.frontdoor import DOORS
from deploy.kafka_admin import SERVICE_TOPICS
from shared.access import service_grants, username
from shared.catalogue import load_catalogue
from shared.settings import REPO_ROOT, Settings
from shared.topics import SERVICES, STREAM_APPS, all_topics

pytestmark = pytest.mark.deploy

K8S = REPO_ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
DOCUMENTS = manifests.documents(sorted(K8S.glob("*.yaml")))
SETTINGS = Settings(topic_namespace="")
CUSTOM_GROUPS = ("kafka.strimzi.io/", "postgresql.cnpg.io/")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in DOCUMENTS if d["kind"] == kind]


def test_manifests_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = {p.name: p.read_text(encoding="utf-8") for p in manifests.write(tmp_path)}
    committed = {p.name: p.read_text(encoding="utf-8") for p in K8S.glob("*.yaml")}
    assert written == committed, "run `python -m deploy.manifests` and commit the result"


@pytest.mark.parametrize("document", [d for d in DOCUMENTS
                                      if not d["apiVersion"].startswith(CUSTOM_GROUPS)],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_core_kinds_pass_kubernetes_validate(document: dict[str, Any]) -> None:
    # strict: an unknown field is an error, not silently dropped by the API server.
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in (K8S / "schemas").glob("*/*.json"):
        entry = json.loads(path.read_text(encoding="utf-8"))
        found[(entry["apiVersion"], entry["kind"])] = _closed(entry["schema"])
    return found


def _closed(schema: Any) -> Any:
    """The CRD schema as the API server's strict field validation reads it: an object with
    declared properties takes no others, unless it says it keeps unknown fields."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


SCHEMAS = _schemas()


@pytest.mark.parametrize("document", [d for d in DOCUMENTS
                                      if d["apiVersion"].startswith(CUSTOM_GROUPS)],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_custom_resources_pass_their_crd_schema(document: dict[str, Any]) -> None:
    schema = SCHEMAS.get((document["apiVersion"], document["kind"]))
    assert schema is not None, f"no committed schema for {document['apiVersion']} " \
                               f"{document['kind']}"
    jsonschema.Draft7Validator(schema).validate(document)


def test_a_crd_schema_refuses_what_the_operator_would() -> None:
    """The schema check can fail: a misspelt field, a wrong type, a missing field."""
    [user] = [u for u in of_kind("KafkaUser") if u["metadata"]["name"] == "svc.ingest"]
    validator = jsonschema.Draft7Validator(SCHEMAS[("kafka.strimzi.io/v1", "KafkaUser")])
    assert validator.is_valid(user)
    typo = {**user, "spec": {**user["spec"], "authentification": {"type": "scram-sha-512"}}}
    wrong = {**user, "spec": {**user["spec"], "authentication": {"type": "scram-sha-256"}}}
    missing = {**user, "spec": {"authorization": {"type": "simple"}}}
    assert not [d for d in (typo, wrong, missing) if validator.is_valid(d)]


def test_names_are_valid_kubernetes_names() -> None:
    for d in DOCUMENTS:
        name = d["metadata"]["name"]
        assert len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name), name
        if d["kind"] in ("Service", "Namespace"):
            assert len(name) <= 63 and _DNS_LABEL.fullmatch(name), name
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == manifests.NAMESPACE


def test_every_topic_has_a_kafka_topic_with_replicas_and_min_isr() -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind("KafkaTopic")}
    expected = all_topics(load_catalogue())
    assert set(topics) == {t.name for t in expected}
    for t in expected:
        spec = topics[t.name]
        assert spec["partitions"] == t.partitions
        assert spec["replicas"] == 3 and spec["config"]["min.insync.replicas"] == 2
        assert {k: v for k, v in spec["config"].items() if k != "min.insync.replicas"} \
            == dict(t.config)
    [kafka] = of_kind("Kafka")
    config = kafka["spec"]["kafka"]["config"]
    assert config["unclean.leader.election.enable"] is False
    assert config["min.insync.replicas"] == 2 and config["default.replication.factor"] == 3
    [listener] = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] and listener["authentication"]["type"] == "scram-sha-512"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    [pool] = of_kind("KafkaNodePool")
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller",
                                                                           "broker"}


def test_kafka_users_have_the_local_brokers_acls() -> None:
    users = {u["metadata"]["name"]: u for u in of_kind("KafkaUser")}
    for service in (*SERVICES, *STREAM_APPS):
        user = users.pop(username("service", service, ""))
        consumes, produces = SERVICE_TOPICS[service]
        granted = [manifests.grant_of(a) for a in user["spec"]["authorization"]["acls"]]
        assert sorted(granted) == service_grants(service, consumes, produces, "")
    # The one other user is the operators' administrator, a super user.
    [kafka] = of_kind("Kafka")
    assert set(users) == set(kafka["spec"]["kafka"]["authorization"]["superUsers"])


def test_one_database_and_role_per_service() -> None:
    [cluster] = of_kind("Cluster")
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"] for d in of_kind("Database")}
    assert set(roles) == set(databases) == {SETTINGS.db_name(s) for s in SERVICES}
    for name, spec in databases.items():
        assert spec["owner"] == name and roles[name]["login"]
        assert spec["cluster"]["name"] == cluster["metadata"]["name"]
        assert spec["encoding"] == "UTF8" and spec["localeCType"] == "C.UTF-8"


def test_deployments_use_the_settings_and_probe_health_and_readiness() -> None:
    [config] = of_kind("ConfigMap")
    fields = {f"XINYONG_{n.upper()}" for n in Settings.model_fields}
    assert set(config["data"]) <= fields
    Settings(**{k.removeprefix("XINYONG_").lower(): v  # type: ignore[arg-type]
                for k, v in config["data"].items()})
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    budgets = {p["metadata"]["name"]: p for p in of_kind("PodDisruptionBudget")}
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    for service in SERVICES:
        name = f"xinyong-{service}"
        deployment = deployments[name]
        pod = deployment["spec"]["template"]
        [container] = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": SETTINGS.http_port(service),
                         "metrics": SETTINGS.metrics_port(service)}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        env = {e["name"]: e for e in container["env"]}
        assert env["XINYONG_KAFKA_SASL_USERNAME"]["value"] == username("service", service, "")
        assert set(env) <= fields
        labels = pod["metadata"]["labels"]
        for selector in (deployment["spec"]["selector"]["matchLabels"],
                         budgets[name]["spec"]["selector"]["matchLabels"],
                         services[name]["spec"]["selector"]):
            assert selector.items() <= labels.items()
        assert deployment["spec"]["replicas"] > budgets[name]["spec"]["minAvailable"]


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    return all(labels.get(e["key"]) in e["values"]
               for e in selector.get("matchExpressions", []) if e["operator"] == "In")


def test_network_policies_keep_the_registry_and_metrics_internal() -> None:
    policies = of_kind("NetworkPolicy")
    for service in SERVICES:
        [deployment] = [d for d in of_kind("Deployment")
                        if d["metadata"]["name"] == f"xinyong-{service}"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        rules = [r for p in policies if _selects(p, labels) for r in p["spec"]["ingress"]]
        assert rules, f"{service}: no policy selects it, so everything may reach it"
        by_port: dict[str, list[list[dict[str, Any]]]] = {}
        for rule in rules:
            for port in rule["ports"]:
                by_port.setdefault(port["port"], []).append(rule.get("from", []))
        assert set(by_port) == {"http", "metrics"}, service
        # Metrics: only from the monitoring namespace.
        assert by_port["metrics"] == [[{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": manifests.MONITORING_NAMESPACE}}}]]
        # HTTP: from this namespace and the ingress controller (the front doors) only; the
        # registry (whole archives) is behind the operators' door alone.
        assert by_port["http"] == [[{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": manifests.INGRESS_NAMESPACE}}},
            {"podSelector": {}}]], service
        doors = {d["spec"]["rules"][0]["host"]: d for d in of_kind("Ingress")
                 if d["metadata"]["name"] != "xinyong-probes-hidden"}
        behind = {p["backend"]["service"]["name"] for d in doors.values()
                  for p in d["spec"]["rules"][0]["http"]["paths"]}
        assert f"xinyong-{service}" in behind, f"{service} behind no front door"


def test_one_ingress_per_front_door_with_its_caps_and_routes() -> None:
    ingresses = {i["metadata"]["name"]: i for i in of_kind("Ingress")}
    assert set(ingresses) == {f"xinyong-{d.group}" for d in DOORS} | {"xinyong-probes-hidden"}
    for door in DOORS:
        ingress = ingresses[f"xinyong-{door.group}"]
        notes = ingress["metadata"]["annotations"]
        assert notes["nginx.ingress.kubernetes.io/proxy-read-timeout"] == \
            str(door.read_timeout_s)
        size = notes["nginx.ingress.kubernetes.io/proxy-body-size"]
        assert int(size[:-1]) * {"k": 1024, "m": 1024 * 1024}[size[-1]] == \
            door.body_max(SETTINGS)
        [rule] = ingress["spec"]["rules"]
        assert rule["host"] == door.host
        assert ingress["spec"]["tls"] == [{"hosts": [door.host],
                                           "secretName": f"xinyong-{door.group}-tls"}]
        paths = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
        assert paths["/"] == f"xinyong-{door.service}"
        assert len(paths) == 1 + len(door.live_routes())
    hidden = ingresses["xinyong-probes-hidden"]
    assert hidden["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/denylist-source-range"] == "0.0.0.0/0,::/0"
    assert {r["host"] for r in hidden["spec"]["rules"]} == {d.host for d in DOORS}
    [config] = of_kind("ConfigMap")
    assert config["data"]["XINYONG_OBJECTION_PUBLIC_URL"] == \
        f"https://{next(d for d in DOORS if d.group == 'objection').host}"


def test_secrets_referenced_are_strimzis_or_documented() -> None:
    users = {u["metadata"]["name"] for u in of_kind("KafkaUser")}
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    for d in DOCUMENTS:
        text = json.dumps(d)
        for secret in re.findall(r'"secretKeyRef": \{"name": "([^"]+)"', text) + re.findall(
                r'"secretName": "([^"]+)"', text) + re.findall(
                r'"passwordSecret": \{"name": "([^"]+)"', text):
            generic = re.sub(r"-(ingest|registry|publisher|objection|stats)$", "-<service>", secret)
            assert secret in users or secret.endswith("-cluster-ca-cert") \
                or f"`{generic}`" in readme, f"{secret}: who creates it? (deploy/k8s/README.md)"

"""Kubernetes manifests (deploy/k8s/), written from the code they mirror: the topics from
shared/topics.py and the catalogue, each service's Kafka ACLs from shared/access.py (the same
grants the local broker gets from deploy/kafka_admin.py), ports and names from
shared/settings.py. `python -m deploy.manifests` rewrites them; a test fails when the
committed files differ from what this writes.

What runs where:
- Kafka: Strimzi (`Kafka` + one `KafkaNodePool` of 3 KRaft nodes, broker and controller,
  SCRAM-SHA-512 over TLS, simple authorization), a `KafkaTopic` per topic, a `KafkaUser` per
  service, and the operators' administrator (a super user: `xinyong credentials`).
- PostgreSQL: one CloudNativePG `Cluster` with one role and one `Database` per service.
- The services: a Deployment, a Service and a PodDisruptionBudget each; NetworkPolicies
  that keep the registry's HTTP inside the namespace and every metrics port to the
  monitoring namespace; the credential sweep as a CronJob.

Secrets are not here: Strimzi writes each KafkaUser's password to a Secret of the user's
name; the database roles' passwords (`xinyong-pg-<service>`, basic-auth) and the subject
key (`xinyong-subject-key`) are created by the operators (deploy/k8s/README.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from deploy.frontdoor import DOORS, Door
from deploy.kafka_admin import SERVICE_TOPICS
from shared.access import Grant, service_grants, username
from shared.catalogue import load_catalogue
from shared.settings import REPO_ROOT, Settings
from shared.topics import SERVICES, STREAM_APPS, all_topics

K8S = REPO_ROOT / "deploy" / "k8s"
NAMESPACE = "xinyong"
KAFKA_CLUSTER = "xinyong"
PG_CLUSTER = "xinyong-pg"
IMAGE = "xinyong:0.1.0"  # built from the Dockerfile; push it where the cluster pulls from
KAFKA_VERSION = "4.3.1"  # Strimzi 1.2.0's default
REPLICATION = 3
MIN_INSYNC = 2
SERVICE_REPLICAS = 2
MONITORING_NAMESPACE = "monitoring"
# Where the ingress controller (ingress-nginx) runs: the only source of public HTTP.
INGRESS_NAMESPACE = "ingress-nginx"
INGRESS_CLASS = "nginx"
# The ingress controller's pods: the proxies whose X-Forwarded-For the services believe
# (`trusted_proxies`). The pod network of a typical cluster; set it to yours
# (deploy/k8s/README.md). The network policies let only the controller reach the services'
# HTTP ports from outside this namespace.
TRUSTED_PROXIES = "10.0.0.0/8"
ADMIN_USER = Settings.model_fields["kafka_admin_username"].default

Manifest = dict[str, Any]


def _meta(name: str, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if labels:
        meta["labels"] = labels
    return meta


def _labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "xinyong",
            "app.kubernetes.io/component": "service"}


def namespace() -> list[Manifest]:
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "xinyong"}}}]


# --- Kafka (Strimzi) -------------------------------------------------------------------------

def kafka() -> list[Manifest]:
    cluster = {"strimzi.io/cluster": KAFKA_CLUSTER}
    return [
        {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaNodePool",
         "metadata": _meta("dual-role", **cluster),
         "spec": {
             "replicas": REPLICATION, "roles": ["controller", "broker"],
             "storage": {"type": "jbod", "volumes": [
                 {"id": 0, "type": "persistent-claim", "size": "100Gi", "deleteClaim": False,
                  "kraftMetadata": "shared"}]},
             "resources": {"requests": {"cpu": "1", "memory": "4Gi"},
                           "limits": {"memory": "4Gi"}},
             "jvmOptions": {"-Xms": "2g", "-Xmx": "2g"},
         }},
        {"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka",
         "metadata": _meta(KAFKA_CLUSTER),
         "spec": {
             "kafka": {
                 "version": KAFKA_VERSION,
                 # CONTRACT.md, "Connecting": every client authenticates, over TLS.
                 "listeners": [{"name": "tls", "port": 9093, "type": "internal", "tls": True,
                                "authentication": {"type": "scram-sha-512"}}],
                 # Nothing is allowed that is not granted (shared/access.py).
                 "authorization": {"type": "simple", "superUsers": [ADMIN_USER]},
                 "config": {
                     "default.replication.factor": REPLICATION,
                     "min.insync.replicas": MIN_INSYNC,
                     "unclean.leader.election.enable": False,
                     "auto.create.topics.enable": False,
                     "offsets.topic.replication.factor": REPLICATION,
                     "transaction.state.log.replication.factor": REPLICATION,
                     "transaction.state.log.min.isr": MIN_INSYNC,
                 },
             },
             "entityOperator": {"topicOperator": {}, "userOperator": {}},
             # The cluster's view for the alert rules (under-replicated partitions, ISR).
             "kafkaExporter": {"topicRegex": ".*", "groupRegex": ".*"},
         }},
    ]


def topics(settings: Settings) -> list[Manifest]:
    catalogue = load_catalogue(settings.catalogue_path)
    return [
        {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
         "metadata": _meta(t.name, **{"strimzi.io/cluster": KAFKA_CLUSTER}),
         "spec": {"topicName": t.name, "partitions": t.partitions, "replicas": REPLICATION,
                  "config": {"min.insync.replicas": MIN_INSYNC, **dict(t.config)}}}
        for t in sorted(all_topics(catalogue), key=lambda t: t.name)]


_OPERATIONS: dict[str, str] = {"read": "Read", "write": "Write", "describe": "Describe",
               "describe_configs": "DescribeConfigs", "alter": "Alter"}
_PATTERNS: dict[str, str] = {"literal": "literal", "prefixed": "prefix"}


def strimzi_acl(grant: Grant) -> dict[str, Any]:
    resource: dict[str, Any] = {"type": grant.resource}
    if grant.resource != "cluster":
        resource |= {"name": grant.name, "patternType": _PATTERNS[grant.pattern]}
    return {"resource": resource, "operations": [_OPERATIONS[grant.operation]]}


def grant_of(acl: dict[str, Any]) -> Grant:
    """The inverse of `strimzi_acl` (for the test that both brokers grant the same)."""
    r = acl["resource"]
    [operation] = acl["operations"]
    pattern = {v: k for k, v in _PATTERNS.items()}[r.get("patternType", "literal")]
    return Grant(r["type"], r.get("name", "kafka-cluster"), pattern,  # type: ignore[arg-type]
                 {v: k for k, v in _OPERATIONS.items()}[operation])  # type: ignore[arg-type]


def users() -> list[Manifest]:
    cluster = {"strimzi.io/cluster": KAFKA_CLUSTER}
    out: list[Manifest] = []
    for service in (*SERVICES, *STREAM_APPS):
        consumes, produces = SERVICE_TOPICS[service]
        out.append({
            "apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
            "metadata": _meta(username("service", service, ""), **cluster),
            "spec": {"authentication": {"type": "scram-sha-512"},
                     "authorization": {"type": "simple", "acls": [
                         strimzi_acl(g) for g in service_grants(service, consumes, produces, "")
                     ]}}})
    # The operators' administrator: a super user (no ACLs needed), used by `xinyong
    # credentials` to issue and revoke the parties' own Kafka users.
    out.append({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
                "metadata": _meta(ADMIN_USER, **cluster),
                "spec": {"authentication": {"type": "scram-sha-512"}}})
    return out


# --- PostgreSQL (CloudNativePG) --------------------------------------------------------------

def postgres(settings: Settings) -> list[Manifest]:
    cluster: Manifest = {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": _meta(PG_CLUSTER),
        "spec": {
            "instances": 3,
            "storage": {"size": "50Gi"},
            "postgresql": {"parameters": {"max_connections": "300"}},
            "enablePDB": True,
            # One login role per service, its password in `xinyong-pg-<service>`.
            "managed": {"roles": [
                {"name": settings.db_name(s), "ensure": "present", "login": True,
                 "passwordSecret": {"name": f"xinyong-pg-{s}"}} for s in SERVICES]},
        }}
    databases = [
        {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Database",
         "metadata": _meta(f"xinyong-{s}"),
         "spec": {"name": settings.db_name(s), "owner": settings.db_name(s),
                  "cluster": {"name": PG_CLUSTER}, "ensure": "present",
                  # As shared/db.py::ensure_database: bigram search over Chinese names needs
                  # a UTF-8 ctype.
                  "encoding": "UTF8", "localeCollate": "C.UTF-8", "localeCType": "C.UTF-8",
                  "template": "template0", "databaseReclaimPolicy": "retain"}}
        for s in SERVICES]
    return [cluster, *databases]


# --- the services ----------------------------------------------------------------------------

# Behind the ingress: the site (statistics under the public base URL), the gateways.
PUBLIC_SERVICES = ("publisher", "ingest", "objection", "stats")


def settings_env(settings: Settings) -> dict[str, str]:
    """What every service process shares (a ConfigMap): XINYONG_* settings."""
    return {
        "XINYONG_KAFKA_BOOTSTRAP": f"{KAFKA_CLUSTER}-kafka-bootstrap.{NAMESPACE}.svc:9093",
        "XINYONG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "XINYONG_KAFKA_SSL_CAFILE": "/etc/xinyong/kafka-ca/ca.crt",
        "XINYONG_PG_HOST": f"{PG_CLUSTER}-rw.{NAMESPACE}.svc",
        "XINYONG_PG_PORT": "5432",
        "XINYONG_HTTP_HOST": "0.0.0.0",
        "XINYONG_METRICS_HOST": "0.0.0.0",
        "XINYONG_OBJECTION_PUBLIC_URL": f"https://{_door('objection').host}",
        "XINYONG_TRUSTED_PROXIES": TRUSTED_PROXIES,
        "XINYONG_HOME": "/tmp/xinyong",
        "XINYONG_LOG_LEVEL": settings.log_level,
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def deployment(service: str, settings: Settings) -> Manifest:
    labels = _labels(service)
    http, metrics = settings.http_port(service), settings.metrics_port(service)
    kafka_user = username("service", service, "")
    container = {
        "name": service, "image": IMAGE, "command": ["python", "-m", f"services.{service}"],
        "ports": [{"name": "http", "containerPort": http, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": metrics, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": "xinyong-settings"}}],
        "env": [
            {"name": "XINYONG_KAFKA_SASL_USERNAME", "value": kafka_user},
            _secret_env("XINYONG_KAFKA_SASL_PASSWORD", kafka_user, "password"),
            _secret_env("XINYONG_PG_PASSWORD", f"xinyong-pg-{service}", "password"),
            _secret_env("XINYONG_SUBJECT_KEY_SECRET", "xinyong-subject-key", "secret"),
        ],
        # Migrations run at start: allow a minute before liveness counts.
        "startupProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                         "periodSeconds": 2, "failureThreshold": 60},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                          "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
        # Ready once its stream worker holds partitions (shared/service.py).
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"},
                           "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                      "limits": {"memory": "768Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "kafka-ca", "mountPath": "/etc/xinyong/kafka-ca",
                          "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(f"xinyong-{service}", **labels),
        "spec": {
            "replicas": SERVICE_REPLICAS,
            "selector": {"matchLabels": {"app.kubernetes.io/name": service,
                                         "app.kubernetes.io/part-of": "xinyong"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    # The image's own user (Dockerfile).
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                        "runAsGroup": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    # SIGTERM ends the batch in hand; the group hands its partitions over.
                    "terminationGracePeriodSeconds": 40,
                    "containers": [container],
                    "volumes": [
                        # Strimzi's cluster CA, to check the brokers' certificates.
                        {"name": "kafka-ca",
                         "secret": {"secretName": f"{KAFKA_CLUSTER}-cluster-ca-cert"}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": service}}}],
                },
            },
        },
    }


def stream_app(name: str, settings: Settings) -> Manifest:
    """A faust worker (stats-windows): its own Kafka user, no database, readiness and
    metrics on its metrics port; one replica (its windows are rebuilt from the changelog
    by whichever pod holds a partition)."""
    manifest = deployment(name, settings)
    spec = manifest["spec"]
    spec["replicas"] = 1
    # The old pod stops (and commits) before the new one starts: a rolling update would run
    # two workers at once, and the rebalance between them counts the event in progress twice
    # (docs/decisions.md, "Early warning on faust").
    spec["strategy"] = {"type": "Recreate"}
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    container["command"] = ["python", "-m", "services.stats.windows"]
    container["ports"] = [{"name": "metrics", "containerPort": settings.metrics_port(name),
                           "protocol": "TCP"}]
    container["env"] = [e for e in container["env"]
                        if e["name"] not in ("XINYONG_PG_PASSWORD", "XINYONG_SUBJECT_KEY_SECRET")]
    for probe in ("startupProbe", "livenessProbe"):
        container[probe]["httpGet"] = {"path": "/healthz", "port": "metrics"}
    container["readinessProbe"]["httpGet"] = {"path": "/readyz", "port": "metrics"}
    return manifest


def service_object(service: str, settings: Settings) -> Manifest:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(f"xinyong-{service}", **_labels(service)),
        "spec": {"selector": {"app.kubernetes.io/name": service,
                              "app.kubernetes.io/part-of": "xinyong"},
                 "ports": [{"name": "http", "port": settings.http_port(service),
                            "targetPort": "http", "protocol": "TCP"},
                           {"name": "metrics", "port": settings.metrics_port(service),
                            "targetPort": "metrics", "protocol": "TCP"}]},
    }


def disruption_budget(service: str) -> Manifest:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": _meta(f"xinyong-{service}", **_labels(service)),
        "spec": {"minAvailable": 1,
                 "selector": {"matchLabels": {"app.kubernetes.io/name": service,
                                              "app.kubernetes.io/part-of": "xinyong"}}},
    }


def network_policies(settings: Settings) -> list[Manifest]:
    """Every service pod is selected by an ingress policy, so what no policy allows is
    refused: the public services' HTTP from the ingress controller (the front doors) and
    this namespace, the registry's HTTP (whole archives, operators only) from this
    namespace and the operators' door only, metrics from the monitoring namespace only."""
    controller = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": INGRESS_NAMESPACE}}}
    def policy(name: str, selector: dict[str, Any], rules: list[dict[str, Any]]) -> Manifest:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": _meta(name, **{"app.kubernetes.io/part-of": "xinyong"}),
                "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": rules}}

    return [
        policy("xinyong-public-http", {"matchExpressions": [
            {"key": "app.kubernetes.io/name", "operator": "In",
             "values": list(PUBLIC_SERVICES)}]},
            [{"from": [controller, {"podSelector": {}}],
              "ports": [{"port": "http", "protocol": "TCP"}]}]),
        policy("xinyong-registry-internal",
               {"matchLabels": {"app.kubernetes.io/name": "registry"}},
               [{"from": [controller, {"podSelector": {}}],
                 "ports": [{"port": "http", "protocol": "TCP"}]}]),
        policy("xinyong-metrics-monitoring",
               {"matchLabels": {"app.kubernetes.io/part-of": "xinyong",
                                "app.kubernetes.io/component": "service"}},
               [{"from": [{"namespaceSelector": {"matchLabels": {
                   "kubernetes.io/metadata.name": MONITORING_NAMESPACE}}}],
                 "ports": [{"port": "metrics", "protocol": "TCP"}]}]),
    ]


def credential_sweep() -> Manifest:
    """`xinyong credentials sweep` every minute, as the administrator."""
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": _meta("xinyong-credentials-sweep", **{"app.kubernetes.io/part-of": "xinyong"}),
        "spec": {
            "schedule": "* * * * *", "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"backoffLimit": 0, "activeDeadlineSeconds": 120,
                                     "template": {"spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                    "runAsGroup": 1000,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "sweep", "image": IMAGE,
                    "command": ["xinyong", "credentials", "sweep"],
                    "envFrom": [{"configMapRef": {"name": "xinyong-settings"}}],
                    "env": [{"name": "XINYONG_KAFKA_ADMIN_USERNAME", "value": ADMIN_USER},
                            _secret_env("XINYONG_KAFKA_ADMIN_PASSWORD", ADMIN_USER, "password")],
                    "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                  "limits": {"memory": "256Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "kafka-ca", "mountPath": "/etc/xinyong/kafka-ca",
                                      "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "kafka-ca",
                             "secret": {"secretName": f"{KAFKA_CLUSTER}-cluster-ca-cert"}},
                            {"name": "tmp", "emptyDir": {}}],
            }}}},
        },
    }


def _door(group: str) -> Door:
    [door] = [d for d in DOORS if d.group == group]
    return door


def _backend(service: str, settings: Settings) -> dict[str, Any]:
    return {"service": {"name": f"xinyong-{service}", "port": {"name": "http"}}}


def ingresses(settings: Settings) -> list[Manifest]:
    """One Ingress per front door (deploy/frontdoor.py::DOORS): its host, its body cap and
    timeouts, its paths to the services; ingress-nginx sets X-Forwarded-For to the
    address it saw. The probes and metrics paths answer 403 on every host."""
    out: list[Manifest] = []
    for door in DOORS:
        regex = any(r.path.startswith("~") for r in door.live_routes())
        paths = [{"path": r.path.removeprefix("~").strip().removeprefix("^"),
                  "pathType": "ImplementationSpecific" if r.path.startswith("~") else "Prefix",
                  "backend": _backend(r.service, settings)} for r in door.live_routes()]
        paths.append({"path": "/", "pathType": "Prefix",
                      "backend": _backend(door.service, settings)})
        annotations = {
            "nginx.ingress.kubernetes.io/proxy-body-size": _nginx_size(door.body_max(settings)),
            "nginx.ingress.kubernetes.io/proxy-connect-timeout": "3",
            "nginx.ingress.kubernetes.io/proxy-read-timeout": str(door.read_timeout_s),
            "nginx.ingress.kubernetes.io/proxy-send-timeout": str(door.read_timeout_s),
            "nginx.ingress.kubernetes.io/ssl-redirect": "true",
        }
        if regex:
            annotations["nginx.ingress.kubernetes.io/use-regex"] = "true"
        out.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {**_meta(f"xinyong-{door.group}",
                                 **{"app.kubernetes.io/part-of": "xinyong"}),
                         "annotations": annotations},
            "spec": {"ingressClassName": INGRESS_CLASS,
                     "tls": [{"hosts": [door.host], "secretName": f"xinyong-{door.group}-tls"}],
                     "rules": [{"host": door.host, "http": {"paths": paths}}]}})
    hidden = [{"path": path, "pathType": "Exact" if path != "/metrics" else "Prefix",
               "backend": _backend(door.service, settings)}
              for path in ("/readyz", "/healthz", "/metrics")]
    out.append({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {**_meta("xinyong-probes-hidden", **{"app.kubernetes.io/part-of": "xinyong"}),
                     # Refused to everyone: ingress-nginx merges these paths into each host.
                     "annotations": {"nginx.ingress.kubernetes.io/denylist-source-range":
                                     "0.0.0.0/0,::/0"}},
        "spec": {"ingressClassName": INGRESS_CLASS,
                 "rules": [{"host": door.host, "http": {"paths": [
                     {**h, "backend": _backend(door.service, settings)} for h in hidden]}}
                           for door in DOORS]}})
    return out


def _nginx_size(n: int) -> str:
    return f"{n // 1024}k" if n % (1024 * 1024) else f"{n // (1024 * 1024)}m"


def services(settings: Settings) -> list[Manifest]:
    out: list[Manifest] = [{"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": _meta("xinyong-settings"),
                            "data": settings_env(settings)}]
    for service in SERVICES:
        out += [deployment(service, settings), service_object(service, settings),
                disruption_budget(service)]
    out.append(stream_app("stats-windows", settings))
    return [*out, *network_policies(settings), credential_sweep(), *ingresses(settings)]


# --- files -----------------------------------------------------------------------------------

HEADER = ("# Generated by `python -m deploy.manifests` from shared/topics.py, shared/access.py,\n"
          "# shared/settings.py and the catalogue: do not edit, change the code and rewrite.\n")


def all_manifests(settings: Settings | None = None) -> dict[str, list[Manifest]]:
    # The production shape: the contract's topic names, no test namespace.
    settings = settings or Settings(topic_namespace="")
    return {"namespace.yaml": namespace(), "kafka.yaml": kafka(),
            "topics.yaml": topics(settings), "users.yaml": users(),
            "postgres.yaml": postgres(settings), "services.yaml": services(settings)}


def render(documents: Sequence[Manifest]) -> str:
    return HEADER + yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True,
                                       explicit_start=True, width=100)


def write(directory: Path = K8S) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, documents in all_manifests().items():
        (directory / name).write_text(render(documents), encoding="utf-8")
        written.append(directory / name)
    return written


def crd_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of a CRD's stored version, descriptions left out (they do not
    validate anything): what deploy/k8s/schemas/ holds."""
    [version] = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: dict[str, Any] = _without_descriptions(version["schema"]["openAPIV3Schema"])
    return schema


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_descriptions(v) for k, v in node.items()
                if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node


def documents(paths: Iterable[Path]) -> list[Manifest]:
    return [d for p in paths for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else K8S):
        print(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)

"""docker-compose.yml against the code: every XINYONG_* variable is a setting, the ports
are the settings' ports, the services run modules that exist, SASL and the topics agree
with the broker and `provision`, and the observability profile mounts what deploy/ holds."""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.frontdoor import DOORS, compose_config
from deploy.observe import prometheus_config
from shared.access import username
from shared.settings import REPO_ROOT, Settings
from shared.topics import SERVICES, STREAM_APPS

pytestmark = pytest.mark.deploy

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
DEFAULTS = Settings()


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_every_xinyong_variable_is_a_setting() -> None:
    fields = {f"XINYONG_{name.upper()}" for name in Settings.model_fields}
    for name, service in COMPOSE["services"].items():
        env = {k: v for k, v in _environment(service).items() if k.startswith("XINYONG_")}
        if name == "kafka":
            # The broker's container runs deploy/kafka.sh: its variables are the script's.
            script = (REPO_ROOT / "deploy" / "kafka.sh").read_text(encoding="utf-8")
            assert all(f"#   {k} " in script for k in env), f"kafka: {sorted(env)}"
            continue
        unknown = set(env) - fields
        assert not unknown, f"{name}: {sorted(unknown)} are not settings (shared/settings.py)"
        # ... and holds a value the setting accepts (files are read in the container).
        Settings(**{k.removeprefix("XINYONG_").lower(): v  # type: ignore[arg-type]
                    for k, v in env.items() if not k.endswith("_FILE")})


def test_services_publish_nothing_and_run_their_module() -> None:
    for service in SERVICES:
        spec = COMPOSE["services"][service]
        # Outside parties reach them through the front door only; metrics stay internal.
        assert spec.get("ports", []) == []
        assert spec["command"] == ["python", "-m", f"services.{service}"]
        assert importlib.util.find_spec(f"services.{service}.__main__") is not None
        env = _environment(spec)
        # Reachable from the other containers: HTTP and metrics on every interface.
        assert env["XINYONG_HTTP_HOST"] == env["XINYONG_METRICS_HOST"] == "0.0.0.0"
        assert env["XINYONG_KAFKA_SASL_USERNAME"] == f"svc.{service}"


def test_kafka_and_postgres_are_where_the_services_look() -> None:
    env = _environment(COMPOSE["services"]["ingest"])
    host, port = env["XINYONG_KAFKA_BOOTSTRAP"].rsplit(":", 1)
    kafka = _environment(COMPOSE["services"]["kafka"])
    assert host in COMPOSE["services"] and kafka["XINYONG_KAFKA_PORT"] == port
    assert env["XINYONG_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["XINYONG_PG_HOST"] in COMPOSE["services"]
    assert env["XINYONG_PG_PORT"] == "5432"


def test_compose_prometheus_scrapes_the_settings_metrics_ports() -> None:
    scraped = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "compose.yml").read_text())
    assert scraped == prometheus_config(DEFAULTS, rules="/etc/prometheus/alerts.yml",
                                        host=lambda service: service)
    prometheus = COMPOSE["services"]["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/compose.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "./deploy/prometheus/alerts.yml"


def test_grafana_is_provisioned_with_the_dashboards_of_deploy() -> None:
    grafana = COMPOSE["services"]["grafana"]
    assert grafana["profiles"] == ["observe"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    for source in mounts.values():
        if source.startswith("./"):
            assert (REPO_ROOT / source).exists(), source
    provider = yaml.safe_load((REPO_ROOT / "deploy/grafana/provisioning/dashboards/xinyong.yml")
                              .read_text())
    [path] = [p["options"]["path"] for p in provider["providers"]]
    assert mounts[path] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    home = _environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO_ROOT / "deploy/grafana/dashboards" / home.removeprefix(path + "/")).exists()
    assert _environment(grafana)["PROMETHEUS_URL"] == "http://prometheus:9090"


def test_the_front_door_is_what_deploy_frontdoor_writes_and_all_that_is_published() -> None:
    door = COMPOSE["services"]["frontdoor"]
    assert door["image"].startswith("nginx:")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in door["volumes"]}
    assert mounts["/etc/nginx/nginx.conf"] == "./deploy/frontdoor/compose.conf"
    assert (REPO_ROOT / "deploy/frontdoor/compose.conf").read_text(encoding="utf-8") == \
        compose_config(DEFAULTS), "run `python -m deploy.frontdoor` and commit the result"
    ports = {d.port(DEFAULTS) for d in DOORS}
    assert door["ports"] == [f"{p}:{p}" for p in sorted(ports)]
    # Besides the doors, only Kafka's TLS listener (and the observability profile) publish.
    published = {name for name, spec in COMPOSE["services"].items() if spec.get("ports")
                 and "observe" not in spec.get("profiles", [])}
    assert published == {"frontdoor", "kafka"}
    # Every upstream is a compose service on its settings' port.
    for service, port in re.findall(r"server (\w+):(\d+) ", compose_config(DEFAULTS)):
        assert service in COMPOSE["services"] and int(port) == DEFAULTS.http_port(service)


def test_the_services_trust_the_front_doors_address_alone() -> None:
    door = COMPOSE["services"]["frontdoor"]
    address = door["networks"]["default"]["ipv4_address"]
    [subnet] = COMPOSE["networks"]["default"]["ipam"]["config"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet["subnet"])
    for service in SERVICES:
        env = _environment(COMPOSE["services"][service])
        assert env["XINYONG_TRUSTED_PROXIES"] == address
    objection = next(d for d in DOORS if d.group == "objection")
    assert _environment(COMPOSE["services"]["publisher"])["XINYONG_OBJECTION_PUBLIC_URL"] \
        == f"http://localhost:{objection.port(DEFAULTS)}"


def _kafka_script_setting(name: str) -> str:
    """A line `name=value` of the broker configuration deploy/kafka.sh writes."""
    script = (REPO_ROOT / "deploy" / "kafka.sh").read_text(encoding="utf-8")
    [value] = re.findall(rf"^{re.escape(name)}=(.*)$", script, re.MULTILINE)
    return value


def test_sasl_agrees_with_the_brokers_client_listener() -> None:
    """The services speak what the broker's CLIENT listener takes (deploy/kafka.sh, which
    the kafka container runs), as the user and password file `provision` makes."""
    protocols = dict(p.split(":") for p in
                     _kafka_script_setting("listener.security.protocol.map").split(","))
    mechanisms = _kafka_script_setting("listener.name.client.sasl.enabled.mechanisms")
    kafka = _environment(COMPOSE["services"]["kafka"])
    for service in (*SERVICES, *STREAM_APPS):
        env = _environment(COMPOSE["services"][service])
        settings = Settings(**{k.removeprefix("XINYONG_").lower(): v  # type: ignore[arg-type]
                               for k, v in env.items()
                               if k.startswith("XINYONG_") and not k.endswith("_FILE")})
        assert settings.kafka_security_protocol == protocols["CLIENT"], service
        assert settings.kafka_sasl_mechanism in mechanisms.split(","), service
        assert settings.kafka_bootstrap.rsplit(":", 1)[1] == kafka["XINYONG_KAFKA_PORT"]
        assert env["XINYONG_KAFKA_SASL_USERNAME"] == username("service", service,
                                                              settings.topic_namespace)
        home = Settings(home=Path(env["XINYONG_HOME"]))
        assert env["XINYONG_KAFKA_SASL_PASSWORD_FILE"] == str(
            home.secrets_dir / f"kafka-{settings.topic_namespace}svc.{service}.password")


def test_topics_are_made_where_the_services_read_them() -> None:
    """`provision` makes the topics (names, partitions, replication) from the same settings
    the services read them with: one namespace, and a replication factor one broker holds."""
    provision = _environment(COMPOSE["services"]["provision"])
    assert COMPOSE["services"]["provision"]["command"] == ["xinyong", "provision"]
    for service in (*SERVICES, *STREAM_APPS):
        env = _environment(COMPOSE["services"][service])
        for name in ("XINYONG_TOPIC_NAMESPACE", "XINYONG_KAFKA_BOOTSTRAP",
                     "XINYONG_KAFKA_REPLICATION_FACTOR"):
            assert env.get(name) == provision.get(name), (service, name)
    settings = Settings(**{k.removeprefix("XINYONG_").lower(): v  # type: ignore[arg-type]
                           for k, v in provision.items()
                           if k.startswith("XINYONG_") and not k.endswith("_FILE")})
    kafka = _environment(COMPOSE["services"]["kafka"])
    brokers = int(kafka.get("XINYONG_KAFKA_BROKERS", "1"))
    assert settings.kafka_min_insync_replicas <= settings.kafka_replication_factor <= brokers
    assert "kafka" not in COMPOSE["services"]["provision"].get("profiles", [])

"""Alert rules, their promtool unit tests, the dashboards and the Prometheus configuration."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from deploy import dashboards, observe
from shared import metrics  # noqa: F401  (registers the services' metrics)
from shared.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.deploy

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
GRAFANA = REPO_ROOT / "deploy" / "grafana"
# Read by rules or panels, exported by no Xinyong process (tests/integration/
# test_observability.py checks the same list against running services).
NOT_FROM_THE_SERVICES = {
    "up",                                                   # Prometheus, per target
    "kafka_topic_partition_under_replicated_partition",    # kafka_exporter
    "kafka_topic_partition_in_sync_replica",               # kafka_exporter
    "xinyong_outbox_set_aside",                             # the outbox set-aside (issue 11)
}


def _run(*command: str, cwd: Path = PROMETHEUS) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    return [r for g in groups for r in g["rules"]]


def test_rules_pass_promtool_check_and_unit_tests(promtool: str | None) -> None:
    if promtool is None:
        pytest.skip("promtool could not be installed (Debian's prometheus package): only "
                    "the Python check of the rules ran (test_rules_python_check)")
    assert "SUCCESS" in _run(promtool, "check", "rules", "alerts.yml")
    assert "SUCCESS" in _run(promtool, "test", "rules", "alerts_test.yml")


def test_rules_python_check() -> None:
    """What promtool cannot say: every alert has a severity, a summary, a runbook section
    that exists, and unit tests where it fires and where it stays silent; every metric it
    reads is defined in shared/metrics.py (or comes from elsewhere, named above)."""
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.M)}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text(encoding="utf-8"))
    cases = [c for t in tests["tests"] for c in t["alert_rule_test"]]
    rules = _rules()
    assert len({r["alert"] for r in rules}) == len(rules), "alert names are unique"
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert rule["annotations"]["runbook"] == f"docs/runbook.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbook.md has no section {name}"
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), name
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"no test where {name} fires"
        assert any(not c["exp_alerts"] for c in mine), f"no test where {name} stays silent"
    defined = _defined_metrics()
    for rule in rules:
        unknown = observe.metric_names(rule["expr"]) - defined - NOT_FROM_THE_SERVICES
        assert not unknown, f"{rule['alert']} reads undefined metrics {unknown}"


def _defined_metrics() -> set[str]:
    """Sample names of every metric registered in this process: shared/metrics.py and the
    process collector."""
    names = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                    "summary": ("_count", "_sum")}.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    return names


def test_metric_names_are_read_from_promql() -> None:
    assert observe.metric_names(
        'sum by (service, topic) (rate(xinyong_messages_total{service="a", topic=~"x.*"}'
        '[$__rate_interval])) / on (service) group_left max(up{job="xinyong"}) > 0.5 '
        "unless histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m] offset 1h)))"
    ) == {"xinyong_messages_total", "up", "x_bucket"}
    assert observe.metric_names("count(a == 0 or b == 0) or vector(0)") == {"a", "b"}


def test_dashboards_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = {p.name: p.read_text(encoding="utf-8") for p in dashboards.write(tmp_path)}
    committed = {p.name: p.read_text(encoding="utf-8")
                 for p in (GRAFANA / "dashboards").glob("*.json")}
    assert written == committed, "run `python -m deploy.dashboards` and commit the result"


def test_dashboards_read_only_defined_metrics_through_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [uid] = [d["uid"] for d in datasource["datasources"]]
    defined = _defined_metrics()
    for name, board in dashboards.all_dashboards().items():
        assert json.loads(dashboards.render(board)) == board
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid
                unknown = observe.metric_names(target["expr"]) - defined - NOT_FROM_THE_SERVICES
                assert not unknown, f"{name} {panel['title']!r} reads {unknown}"


def test_dashboard_queries_are_valid_promql(promtool: str | None, tmp_path: Path) -> None:
    if promtool is None:
        pytest.skip("promtool could not be installed: dashboard queries not parsed")
    exprs = sorted({e.replace("$__rate_interval", "5m")
                    for b in dashboards.all_dashboards().values()
                    for e in dashboards.expressions(b)})
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    assert "SUCCESS" in _run(promtool, "check", "rules", "queries.yml", cwd=tmp_path)


def test_the_local_prometheus_configuration_passes_promtool(
        promtool: str | None, tmp_path: Path) -> None:
    config = observe.prometheus_config(Settings())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    targets = {c["labels"]["service"]: c["targets"] for c in jobs["xinyong"]["static_configs"]}
    assert targets == {"ingest": ["127.0.0.1:9401"], "registry": ["127.0.0.1:9402"],
                       "publisher": ["127.0.0.1:9400"], "objection": ["127.0.0.1:9403"],
                       "stats": ["127.0.0.1:9404"], "stats-windows": ["127.0.0.1:9405"]}
    if promtool is None:
        pytest.skip("promtool could not be installed: configuration not checked by it")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    assert "SUCCESS" in _run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)


def test_the_kubernetes_scrape_configuration_labels_as_the_rules_expect() -> None:
    """deploy/prometheus/kubernetes.yml (Debian's promtool is built without Kubernetes
    discovery, so this one is checked here): the pods of deploy/k8s it keeps, and the
    `service` label it gives them."""
    from deploy import manifests

    config = yaml.safe_load((PROMETHEUS / "kubernetes.yml").read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    xinyong = jobs["xinyong"]
    assert xinyong["honor_labels"] is True
    assert xinyong["kubernetes_sd_configs"] == [
        {"role": "pod", "namespaces": {"names": [manifests.NAMESPACE]}}]
    keep, service = xinyong["relabel_configs"][:2]
    [deployment] = [d for d in manifests.all_manifests()["services.yaml"]
                    if d["kind"] == "Deployment" and d["metadata"]["name"] == "xinyong-ingest"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    port_names = [p["name"] for p in container["ports"]]
    assert keep["action"] == "keep" and re.fullmatch(keep["regex"], ";".join([
        labels["app.kubernetes.io/part-of"], labels["app.kubernetes.io/component"],
        "metrics"])) and "metrics" in port_names
    assert service == {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                       "target_label": "service"}
    assert labels["app.kubernetes.io/name"] == "ingest"
    exporter_keep = jobs["kafka-exporter"]["relabel_configs"][0]
    assert exporter_keep["regex"] == f"{manifests.KAFKA_CLUSTER}-kafka-exporter;tcp-prometheus"
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]

"""Local observability: the Prometheus that `./xinyong up --observe` starts (Debian's
package, deploy/prometheus.sh) scraping the stack's metrics ports with the alert rules
loaded, and what the tests need to check rules and dashboards against running services.

Grafana has no Debian package: it runs from docker-compose.yml (profile `observe`) with the
dashboards and the datasource of deploy/grafana/.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from shared.settings import REPO_ROOT, Settings
from shared.topics import SERVICES, STREAM_APPS

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
DEFAULT_PORT = 9090


def prometheus_config(settings: Settings, scrape_interval: str = "15s",
                      rules: str = str(ALERTS),
                      host: Callable[[str], str] | None = None,
                      replicas: int = 1) -> dict[str, Any]:
    """Scrape every service's metrics port as job `xinyong`, one target per process with a
    `service` label. `honor_labels`: the services' own `service` label is kept as it is
    (without it, Prometheus would rename it `exported_service` beside the target's).
    `host(service)`: where a service is reached (docker-compose: its name). `replicas`:
    processes of each service (instance N on its metrics port + INSTANCE_PORT_STEP*(N-1),
    deploy/stack.py)."""
    from deploy.stack import INSTANCE_PORT_STEP

    host = host or (lambda _: settings.metrics_host)
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [rules],
        "scrape_configs": [
            {"job_name": "xinyong", "honor_labels": True, "static_configs": [
                {"targets": [f"{host(s)}:{settings.metrics_port(s) + INSTANCE_PORT_STEP * i}"
                             for i in range(1 if s in STREAM_APPS else replicas)],
                 "labels": {"service": s}} for s in (*SERVICES, *STREAM_APPS)]},
        ],
    }


class Prometheus:
    """The local Prometheus process: its folder, port and address."""

    def __init__(self, settings: Settings, port: int | None = None,
                 directory: Path | None = None) -> None:
        self.settings = settings
        self.port = port or int(os.environ.get("XINYONG_PROMETHEUS_PORT", DEFAULT_PORT))
        self.directory = directory or settings.home / "prometheus"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, scrape_interval: str = "15s", replicas: int = 1) -> None:
        """Write the configuration, then start (or reload) Prometheus; returns when it is
        ready."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        text = yaml.safe_dump(prometheus_config(self.settings, scrape_interval,
                                                replicas=replicas), sort_keys=False)
        config.write_text("# Written by deploy/observe.py; rewritten at each start.\n" + text)
        self._script("start")

    def stop(self) -> None:
        self._script("stop")

    def _script(self, action: str) -> None:
        subprocess.run(["bash", str(REPO_ROOT / "deploy" / "prometheus.sh"), action],
                       check=True, env={**os.environ, "XINYONG_HOME": str(self.settings.home),
                                        "XINYONG_PROMETHEUS_DIR": str(self.directory),
                                        "XINYONG_PROMETHEUS_PORT": str(self.port)})


# --- what rules and panels read ------------------------------------------------------------

_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes",
    "clamp", "clamp_max", "clamp_min", "count", "count_over_time", "count_values", "delta",
    "deriv", "floor", "group", "histogram_quantile", "holt_winters", "idelta", "increase",
    "irate", "label_join", "label_replace", "last_over_time", "max", "max_over_time", "min",
    "min_over_time", "predict_linear", "quantile", "quantile_over_time", "rate", "resets",
    "round", "scalar", "sort", "sort_desc", "sqrt", "stddev", "stdvar", "sum", "sum_over_time",
    "time", "timestamp", "topk", "vector",
}
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "offset", "bool", "inf", "nan"}
_BRACES = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names (inside braces or a grouping) or Grafana variables ($x)."""
    text = _STRINGS.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _GROUPING.sub("", text)
    text = _RANGE.sub("", text)
    return {m for m in _IDENTIFIER.findall(text)
            if m not in _FUNCTIONS and m not in _KEYWORDS and not m.isdigit()}


def rule_expressions(path: Path = ALERTS) -> dict[str, str]:
    """Alert name → expression, from a rules file."""
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return {r.get("alert") or r["record"]: r["expr"] for g in groups for r in g["rules"]}

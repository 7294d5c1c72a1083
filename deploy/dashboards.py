"""Grafana dashboards as provisioned JSON (deploy/grafana/dashboards/), written from here so
that the six stay alike: `python -m deploy.dashboards` rewrites them, and a test fails when
the committed files differ from what this writes.

- `xinyong-overview`: the pipeline at a glance (every service, Kafka).
- `xinyong-<service>`: one per service.
- `xinyong-closed-loops`: notices and their agencies' feedback, objections and their
  departments' decisions.

Every panel reads the datasource provisioned with uid `prometheus`
(deploy/grafana/provisioning/datasources/prometheus.yml).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.settings import REPO_ROOT
from shared.topics import SERVICES

DASHBOARDS = REPO_ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"

Panel = dict[str, Any]


def series(title: str, *targets: tuple[str, str], unit: str = "short",
           stack: bool = False, description: str = "") -> Panel:
    """A time series panel; targets are (PromQL, legend)."""
    custom: dict[str, Any] = {"fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal"}
    return {
        "type": "timeseries", "title": title, "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom",
                               "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": _targets(targets),
    }


def stat(title: str, expr: str, legend: str, unit: str = "short",
         thresholds: tuple[tuple[str, float | None], ...] = (("green", None), ("red", 1)),
         description: str = "") -> Panel:
    """A single-value panel coloured by thresholds (colour, from value)."""
    return {
        "type": "stat", "title": title, "description": description, "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {
            "unit": unit,
            "thresholds": {"mode": "absolute", "steps": [
                {"color": color, "value": value} for color, value in thresholds]},
        }, "overrides": []},
        "options": {"colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": _targets(((expr, legend),)),
    }


def _targets(targets: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    return [{"datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
             "refId": chr(ord("A") + i)} for i, (expr, legend) in enumerate(targets)]


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(panels: list[Panel]) -> list[Panel]:
    """Grid positions: rows across, stats 4 wide, series 12 wide, in reading order; stats
    and series never share a line."""
    x = y = 0
    height = 0
    placed = []
    previous = "row"
    for i, panel in enumerate(panels):
        width = {"row": 24, "stat": 4}.get(panel["type"], 12)
        if panel["type"] == "row" or x + width > 24 or (x and panel["type"] != previous):
            x, y = 0, y + height
            height = 0
        h = {"row": 1, "stat": 4}.get(panel["type"], 8)
        placed.append({**panel, "id": i + 1, "gridPos": {"x": x, "y": y, "w": width, "h": h}})
        x += width
        height = max(height, h)
        previous = panel["type"]
        if panel["type"] == "row":
            x, y, height = 0, y + 1, 0
    return placed


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["xinyong"], "timezone": "browser", "schemaVersion": 39, "version": 1,
        "editable": True, "graphTooltip": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "links": [{"type": "dashboards", "tags": ["xinyong"], "asDropdown": True,
                   "title": "Xinyong", "includeVars": False, "keepTime": True}],
        "annotations": {"list": []}, "templating": {"list": []},
        "panels": layout(panels),
    }


# --- the dashboards ------------------------------------------------------------------------

def overview() -> dict[str, Any]:
    per = "sum by (service)"
    return dashboard("xinyong-overview", "Xinyong: pipeline overview",
                     "ingest → registry → publisher, objection; their backlogs and Kafka.", [
        row("Processes"),
        *[stat(f"{s} up", f'min(up{{job="xinyong", service="{s}"}})', s,
               thresholds=(("red", None), ("green", 1))) for s in SERVICES],
        stat("Restarts (1h)", "sum(max by (service) "
             "(increase(xinyong_service_starts_total[1h])))", "starts",
             thresholds=(("green", None), ("orange", 1), ("red", 3))),
        stat("Unreachable", "count((xinyong_database_up == 0) or (xinyong_kafka_up == 0)) or "
             "vector(0)", "probes failing"),
        row("Flow"),
        series("Messages applied per second", (f"{per} (rate(xinyong_messages_total[{RATE}]))",
                                               "{{service}}"), unit="ops"),
        series("Events relayed from the outboxes per second",
               (f"{per} (rate(xinyong_outbox_sent_total[{RATE}]))", "{{service}}"), unit="ops"),
        series("Consumer lag (messages)",
               ("sum by (service, topic) (xinyong_consumer_lag) > 0", "{{service}} {{topic}}"),
               stack=True),
        series("Outbox backlog", ("max by (service) (xinyong_outbox_pending)", "{{service}}"),
               ("max by (service) (xinyong_outbox_oldest_age_seconds)",
                "{{service}} oldest (s)")),
        series("Per hop, p99: event age when consumed, outbox age when sent",
               ("histogram_quantile(0.99, sum by (service, le) "
                f"(rate(xinyong_event_age_at_consume_seconds_bucket[{RATE}])))",
                "{{service}} consumed"),
               ("histogram_quantile(0.99, sum by (service, le) "
                f"(rate(xinyong_outbox_age_at_send_seconds_bucket[{RATE}])))", "{{service}} sent"),
               unit="s", description="Where a notice's time goes: each service's wait before "
               "it consumes an event, and from its transaction to the broker's acknowledgement."),
        row("Problems"),
        series("Dead letters (per hour)",
               (f"{per} (increase(xinyong_dead_letters_total[1h]))", "{{service}}")),
        series("Set aside by the outbox, paused partitions, position mismatches",
               ("max by (service) (xinyong_outbox_set_aside)", "{{service}} set aside"),
               ("max by (service) (xinyong_partitions_paused)", "{{service}} paused"),
               (f"{per} (increase(xinyong_position_mismatch_total[1h]))",
                "{{service}} mismatches (1h)")),
        series("HTTP requests per second",
               (f"{per} (rate(xinyong_http_requests_total[{RATE}]))", "{{service}}"), unit="reqps"),
        series("HTTP 5xx ratio",
               (f'{per} (rate(xinyong_http_requests_total{{status=~"5.."}}[{RATE}])) / '
                f"{per} (rate(xinyong_http_requests_total[{RATE}]))", "{{service}}"),
               unit="percentunit"),
        row("Kafka (kafka_exporter)"),
        series("Under-replicated partitions",
               ("sum by (topic) (kafka_topic_partition_under_replicated_partition) > 0",
                "{{topic}}")),
        series("Fewest in-sync replicas per topic",
               ("min by (topic) (kafka_topic_partition_in_sync_replica)", "{{topic}}")),
    ])


def service_dashboard(service: str) -> dict[str, Any]:
    sel = f'service="{service}"'
    panels: list[Panel] = [
        row("Process"),
        stat("Processes up", f'sum(up{{job="xinyong", {sel}}})', "up",
             thresholds=(("red", None), ("green", 1))),
        stat("Database", f"min(xinyong_database_up{{{sel}}})", "reachable",
             thresholds=(("red", None), ("green", 1))),
        stat("Kafka", f"min(xinyong_kafka_up{{{sel}}})", "reachable",
             thresholds=(("red", None), ("green", 1))),
        stat("Starts (24h)", f"max(increase(xinyong_service_starts_total{{{sel}}}[24h]))",
             "starts", thresholds=(("green", None), ("orange", 2), ("red", 5))),
        stat("Partitions", f"sum(xinyong_assigned_partitions{{{sel}}})", "assigned",
             thresholds=(("red", None), ("green", 1))),
        stat("Paused partitions", f"max(xinyong_partitions_paused{{{sel}}})", "paused",
             description="Held on a position mismatch: ./xinyong positions show"),
        stat("Dead letters (24h)",
             f"sum(increase(xinyong_dead_letters_total{{{sel}}}[24h]))", "dead letters"),
        series("CPU", (f"rate(process_cpu_seconds_total{{job=\"xinyong\", {sel}}}[{RATE}])",
                       "{{instance}}"), unit="percentunit"),
        series("Memory", (f'process_resident_memory_bytes{{job="xinyong", {sel}}}',
                          "{{instance}}"), unit="bytes"),
        row("Stream"),
        series("Messages applied per second by topic",
               (f"sum by (topic) (rate(xinyong_messages_total{{{sel}}}[{RATE}]))", "{{topic}}"),
               unit="ops", stack=True),
        series("Consumer lag by topic",
               (f"sum by (topic) (xinyong_consumer_lag{{{sel}}})", "{{topic}}"), stack=True),
        series("Batch time",
               (f"histogram_quantile(0.5, sum by (le) (rate(xinyong_batch_seconds_bucket{{{sel}}}"
                f"[{RATE}])))", "p50"),
               (f"histogram_quantile(0.99, sum by (le) (rate(xinyong_batch_seconds_bucket"
                f"{{{sel}}}[{RATE}])))", "p99"), unit="s"),
        series("Per hop",
               ("histogram_quantile(0.99, sum by (le) (rate("
                f"xinyong_event_age_at_consume_seconds_bucket{{{sel}}}[{RATE}])))",
                "p99 event age when consumed"),
               ("histogram_quantile(0.99, sum by (le) (rate("
                f"xinyong_outbox_age_at_send_seconds_bucket{{{sel}}}[{RATE}])))",
                "p99 outbox age when sent"), unit="s"),
        series("Outbox",
               (f"max(xinyong_outbox_pending{{{sel}}})", "waiting"),
               (f"sum(rate(xinyong_outbox_sent_total{{{sel}}}[{RATE}]))", "sent per second"),
               (f"max(xinyong_outbox_oldest_age_seconds{{{sel}}})", "oldest (s)"),
               (f"max(xinyong_outbox_set_aside{{{sel}}})", "set aside")),
        row("HTTP"),
        series("Requests per second by route",
               (f"sum by (method, route, status) (rate(xinyong_http_requests_total{{{sel}}}"
                f"[{RATE}]))", "{{method}} {{route}} {{status}}"), unit="reqps"),
        series("p99 answer time by route",
               (f"histogram_quantile(0.99, sum by (route, le) "
                f"(rate(xinyong_http_request_seconds_bucket{{{sel}}}[{RATE}])))", "{{route}}"),
               unit="s"),
    ]
    if service == "publisher":
        panels += [row("Notices (closed loop)"), *_notice_panels()]
    if service == "objection":
        panels += [row("Objections (closed loop)"), *_objection_panels()]
    return dashboard(f"xinyong-{service}", f"Xinyong: {service}",
                     f"The {service} service: process, stream, outbox, HTTP.", panels)


def _notice_panels() -> list[Panel]:
    return [
        series("Notices awaiting feedback by agency",
               ("max by (agency) (xinyong_notices_awaiting_feedback)", "{{agency}}"),
               stack=True),
        series("Notices past their feedback deadline by agency and measure",
               ("max by (agency, measure) (xinyong_notices_overdue) > 0",
                "{{agency}} {{measure}}"),
               stack=True, description="No `applied` or `not_applicable` feedback "
               "within the measure's `feedback_within` working days."),
        series("Feedback received per hour by agency topic",
               ('sum by (topic) (increase(xinyong_messages_total{service="publisher", '
                'topic=~"credit.notice-feedback.*"}[1h]))', "{{topic}}")),
        series("Feedback over HTTP per hour",
               ('sum by (status) (increase(xinyong_http_requests_total{service="publisher", '
                'route="/api/v1/notices/{notice_id}/feedback"}[1h]))', "{{status}}")),
    ]


def _objection_panels() -> list[Panel]:
    return [
        stat("Open", "max(xinyong_objections_open)", "routed, undecided",
             thresholds=(("green", None),)),
        stat("Overdue", "max(xinyong_objections_overdue)", "past due_by"),
        series("Objections and repairs open, overdue",
               ("max(xinyong_objections_open)", "open"),
               ("max(xinyong_objections_overdue)", "overdue")),
        series("Requests and decisions over HTTP per hour",
               ('sum by (route, status) (increase(xinyong_http_requests_total'
                '{service="objection", method="POST"}[1h]))', "{{route}} {{status}}")),
    ]


def closed_loops() -> dict[str, Any]:
    return dashboard(
        "xinyong-closed-loops", "Xinyong: closed loops",
        "Joint measures: notices sent and the agencies' feedback; objections and repairs: "
        "routed to departments and decided within their deadline.", [
            row("Notices and agency feedback"), *_notice_panels(),
            row("Objections and repairs"), *_objection_panels(),
        ])


def all_dashboards() -> dict[str, dict[str, Any]]:
    boards = [overview(), *[service_dashboard(s) for s in SERVICES], closed_loops()]
    return {f"{b['uid']}.json": b for b in boards}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def expressions(board: dict[str, Any]) -> Iterator[str]:
    for panel in board["panels"]:
        for target in panel.get("targets", ()):
            yield target["expr"]


def write(directory: Path = DASHBOARDS) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in all_dashboards().items():
        (directory / name).write_text(render(board), encoding="utf-8")
        written.append(directory / name)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARDS):
        print(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)

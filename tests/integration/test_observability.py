"""What the services export, against the running services: every metric an alert rule or a
dashboard panel reads is there, the counts match what happened, and the Prometheus of
`./xinyong up --observe` scrapes the stack with the rules loaded."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from deploy import dashboards, observe
from deploy.stack import ServiceProcess
from shared.settings import Settings
from shared.topics import SERVICES, STREAM_APPS
from tests import polling
from tests.integration.conftest import TopicWatcher
from tests.integration.helpers import enterprise, key_of, record
from tests.integration.kit import feedback_for, send, send_raw

pytestmark = pytest.mark.integration

# Metrics that rules or panels read but no Xinyong service exports, each with its source.
NOT_FROM_THE_SERVICES = {
    # Prometheus's own, per scrape target.
    "up",
    # kafka_exporter (Strimzi's `kafkaExporter`, deploy/k8s/kafka.yaml): the cluster's view.
    "kafka_topic_partition_under_replicated_partition",
    "kafka_topic_partition_in_sync_replica",
    # Issue 11's outbox set-aside, built beside this: rows the relay sets aside as unsendable.
    "xinyong_outbox_set_aside",
}
# Exported, but only once what they count has happened: a counter labelled by topic and
# reason has no series before its first event (the rule reading it allows for that).
ONCE_IT_HAPPENS = {"xinyong_position_mismatch_total"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(settings: Settings, service: str) -> Samples:
    url = f"http://{settings.metrics_host}:{settings.metrics_port(service)}/metrics"
    async with httpx.AsyncClient() as client:
        text = (await client.get(url)).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, /, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# Probes run every `probe_interval_seconds` (15 s): wait a little over two rounds.
until = functools.partial(polling.until, timeout=45, interval=0.25)


def _read(board_or_rules: Any) -> set[str]:
    exprs = (dashboards.expressions(board_or_rules) if isinstance(board_or_rules, dict)
             else board_or_rules)
    return set().union(*(observe.metric_names(e) for e in exprs))


async def test_every_metric_a_rule_or_a_panel_reads_is_exported(
        settings: Settings, services: dict[str, ServiceProcess], operator_token: str) -> None:
    # The operator token has been applied by every service: each has applied a batch.
    names: dict[str, set[str]] = {}

    async def all_there() -> bool:
        for service in SERVICES:
            names[service] = {name for name, _ in await scrape(settings, service)}
        return all("xinyong_batch_seconds_bucket" in names[s]
                   and "xinyong_consumer_lag" in names[s] for s in SERVICES)

    await until(all_there, "every service applied a batch and probed")
    exported = set().union(*names.values())
    boards = dashboards.all_dashboards()

    read_anywhere = _read(observe.rule_expressions().values()) | set().union(
        *(_read(b) for b in boards.values()))
    elsewhere = NOT_FROM_THE_SERVICES | ONCE_IT_HAPPENS
    missing = read_anywhere - exported - elsewhere
    assert not missing, f"read by a rule or panel, exported by no service: {sorted(missing)}"
    for service in SERVICES:
        # A service's own dashboard reads only what that service exports.
        own = _read(boards[f"xinyong-{service}.json"]) - names[service] - elsewhere
        assert not own, f"the {service} dashboard reads what {service} lacks: {sorted(own)}"
    # The allow-list holds only what is really not there (so it cannot hide a typo).
    assert not (NOT_FROM_THE_SERVICES - {"up"}) & exported, \
        "now exported: take it off NOT_FROM_THE_SERVICES"
    assert elsewhere <= read_anywhere


async def test_metrics_count_what_happened(
        settings: Settings, services: dict[str, ServiceProcess], producer: AIOKafkaProducer,
        watcher: TopicWatcher, db: Any) -> None:
    topic = "credit.inbound.staffing"
    before = {s: await scrape(settings, s) for s in ("ingest", "objection", "publisher")}

    # Three records and one unreadable message on one department's inbound topic.
    sent = [record(enterprise(), "staffing.report_overdue") for _ in range(3)]
    for data in sent:
        await send(producer, settings, "staffing", data)
    await send_raw(producer, settings, topic, b"\x00 not an event", key_of(sent[0]))
    for data in sent:
        await watcher.wait_for("credit.feedback.staffing", feedback_for(data["record_id"]))
    # Two lookups of an unknown subject and one unknown path on the publisher.
    async with httpx.AsyncClient() as client:
        base = services["publisher"].url()
        for _ in range(2):
            assert (await client.get(f"{base}/api/v1/subjects/enterprise/"
                                     f"{enterprise().id}")).status_code == 404
        assert (await client.get(f"{base}/no/such/page")).status_code == 404

    def delta(of: str, after: Samples, name: str, /, **labels: str) -> float:
        return value(after, name, **labels) - value(before[of], name, **labels)

    async def applied(service: str) -> bool:
        after = await scrape(settings, service)
        return delta(service, after, "xinyong_messages_total", service=service,
                     topic=topic) >= 4

    await until(lambda: applied("ingest"), "ingest applied the four messages")
    ingest, objection = await scrape(settings, "ingest"), await scrape(settings, "objection")
    assert delta("ingest", ingest, "xinyong_messages_total", service="ingest", topic=topic) == 4
    # Ingest alone reads the departments' inbound topics (objection gets their decisions
    # from ingest): objection counts no inbound topic at all, but does count its own.
    counted = {dict(labels)["topic"] for name, labels in objection
               if name == "xinyong_messages_total"}
    assert "credit.decisions.received" in counted
    assert not [t for t in counted if t.startswith("credit.inbound.")]
    # The unreadable message is ingest's dead letter, not the objection service's business.
    assert delta("ingest", ingest, "xinyong_dead_letters_total", service="ingest") == 1
    assert delta("objection", objection, "xinyong_dead_letters_total",
                 service="objection") == 0

    publisher = await scrape(settings, "publisher")
    subject_route = "/api/v1/subjects/{subject_type}/{identifier}"
    assert delta("publisher", publisher, "xinyong_http_requests_total", service="publisher",
                 method="GET", route=subject_route, status="404") == 2
    assert delta("publisher", publisher, "xinyong_http_requests_total", service="publisher",
                 method="GET", route="unmatched", status="404") == 1
    assert delta("publisher", publisher, "xinyong_http_request_seconds_count",
                 service="publisher", method="GET", route=subject_route) == 2
    assert not [name for name, labels in publisher
                if any(v.startswith("/no/") or "9144" in v for _, v in labels)], \
        "a raw path or an identifier in a label"

    # Probes: the stored positions caught up with the log end; reachability; starts equal
    # the count kept in each service's database.
    async def caught_up() -> bool:
        return value(await scrape(settings, "ingest"), "xinyong_consumer_lag",
                     service="ingest", topic=topic) == 0
    await until(caught_up, "ingest's lag on the staffing topic back to 0")
    for service in SERVICES:
        samples = await scrape(settings, service)
        assert value(samples, "xinyong_database_up", service=service) == 1
        assert value(samples, "xinyong_kafka_up", service=service) == 1
        starts = await db(service).fetchval(
            "SELECT starts FROM service_starts WHERE service = $1", service)
        assert value(samples, "xinyong_service_starts_total", service=service) == starts >= 1

    # The closed loop of notices: what the publisher reports is what its database holds.
    async def same_as_database() -> bool:
        rows = await db("publisher").fetch(
            "SELECT agency, count(*) AS n FROM notices WHERE feedback_status IS NULL"
            " OR feedback_status NOT IN ('applied', 'not_applicable') GROUP BY agency")
        held = {r["agency"]: r["n"] for r in rows}
        samples = await scrape(settings, "publisher")
        reported = {dict(labels)["agency"]: v for (name, labels), v in samples.items()
                    if name == "xinyong_notices_awaiting_feedback"}
        return bool(reported) and all(reported.get(a, 0) == n for a, n in held.items()) \
            and all(held.get(a, 0) == v for a, v in reported.items())
    await until(same_as_database, "notices awaiting feedback as the database counts them")


async def test_prometheus_scrapes_the_stack_with_the_rules_loaded(
        settings: Settings, services: dict[str, ServiceProcess], tmp_path: Path) -> None:
    prometheus = observe.Prometheus(settings, port=settings.publisher_http_port + 9,
                                    directory=tmp_path / "prometheus")
    prometheus.start(scrape_interval="1s")
    try:
        async with httpx.AsyncClient(base_url=prometheus.url) as client:
            async def all_up() -> bool:
                targets = (await client.get("/api/v1/targets")).json()["data"]["activeTargets"]
                return sorted(t["labels"]["service"] for t in targets
                              if t["health"] == "up") == sorted((*SERVICES, *STREAM_APPS))
            await until(all_up, "Prometheus scrapes every process", timeout=30)

            groups = (await client.get("/api/v1/rules")).json()["data"]["groups"]
            loaded = {r["name"] for g in groups for r in g["rules"]}
            assert loaded == set(observe.rule_expressions())

            result = (await client.get("/api/v1/query", params={
                "query": "xinyong_service_starts_total"})).json()["data"]["result"]
            # The services' own `service` label survives the scrape (honor_labels).
            assert sorted(r["metric"]["service"] for r in result) == sorted(SERVICES)
            assert not [r for r in result if "exported_service" in r["metric"]]
    finally:
        prometheus.stop()

"""Who may do what, with real credentials on the real broker (CONTRACT.md, "Connecting"):
departments and agencies reach only their own topics, each internal topic has one writer,
and unauthenticated, revoked and expired clients are refused, over Kafka and HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from deploy import credentials
from deploy.stack import ServiceProcess
from shared.envelope import submission_json
from shared.kafka import client_options, make_producer
from shared.settings import Settings
from shared.topics import (
    CREDENTIALS,
    LISTS_CHANGED,
    RECORDS_ACCEPTED,
    RECORDS_STATUS,
    SERVICES,
    SUBJECTS_CHANGED,
)
from tests.integration import kit
from tests.integration.conftest import ENV, TopicWatcher, wait_until_accepted
from tests.integration.helpers import enterprise, key_of, record
from tests.integration.kit import feedback_for

pytestmark = pytest.mark.integration

REFUSED = (TopicAuthorizationFailedError, GroupAuthorizationFailedError)


def _login(issued: credentials.Issued) -> dict[str, str]:
    return {"username": issued.kafka_user or "", "password": issued.kafka_password or ""}


# What a probe write sends: shaped like an event so that other tests watching the same
# topics (dead letters included) can read past it; its consumers dead-letter it.
PROBE = json.dumps({"specversion": "1.0", "id": "access-probe", "source": "access-test",
                    "type": "access.probe",
                    "data": {"topic": "access-test", "reason": "access test", "key": None,
                             "partition": -1, "offset": -1, "record_id": None}}).encode()


async def _can_write(settings: Settings, login: dict[str, str], topic: str,
                     value: bytes = PROBE, key: bytes = b"access-test") -> bool:
    producer = make_producer(settings, **login)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topic), value, key=key)
        return True
    except TopicAuthorizationFailedError:
        return False
    finally:
        await producer.stop()


async def _can_read(settings: Settings, login: dict[str, str], topic: str, group: str) -> bool:
    consumer = AIOKafkaConsumer(settings.topic(topic), **client_options(settings, **login),
                                group_id=settings.topic(group), enable_auto_commit=False,
                                auto_offset_reset="earliest")
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=1000)
        return True
    except REFUSED:
        return False
    finally:
        await consumer.stop()


async def test_a_department_reaches_only_its_own_topics(
        settings: Settings, services: dict[str, ServiceProcess],
        watcher: TopicWatcher) -> None:
    tax = _login(await credentials.issue(settings, "department", "tax"))
    data = record(enterprise(), "tax.a_grade_taxpayer")
    assert await _can_write(settings, tax, "credit.inbound.tax",
                            submission_json("tax", data), key_of(data))
    [fb] = await watcher.wait_for("credit.feedback.tax", feedback_for(data["record_id"]))
    assert fb["data"]["status"] == "accepted"
    assert await _can_read(settings, tax, "credit.feedback.tax", "tax.audit")
    assert await _can_read(settings, tax, "credit.objections.tax", "tax.objections")

    assert not await _can_write(settings, tax, "credit.inbound.amr")
    assert not await _can_read(settings, tax, "credit.feedback.amr", "tax.spy")
    assert not await _can_read(settings, tax, "credit.feedback.tax", "amr.borrowed-group")
    assert not await _can_read(settings, tax, "credit.notices.land", "tax.notices")
    for internal in (RECORDS_ACCEPTED, SUBJECTS_CHANGED, CREDENTIALS):
        assert not await _can_write(settings, tax, internal.name), internal.name


async def test_an_agency_reads_only_its_notices_and_answers_only_on_its_topic(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    land = _login(await credentials.issue(settings, "agency", "land"))
    assert await _can_read(settings, land, "credit.notices.land", "land.notices")
    assert not await _can_read(settings, land, "credit.notices.housing-bidding", "land.spy")
    assert not await _can_read(settings, land, "credit.lists.changed", "land.lists")
    assert await _can_write(settings, land, "credit.notice-feedback.land")
    assert not await _can_write(settings, land, "credit.notice-feedback.housing-bidding")
    assert not await _can_write(settings, land, "credit.inbound.tax")


async def test_each_internal_topic_is_written_by_its_one_writer_only(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    from tests.integration.conftest import STACK

    writer = {RECORDS_ACCEPTED.name: "ingest", RECORDS_STATUS.name: "objection",
              SUBJECTS_CHANGED.name: "registry", LISTS_CHANGED.name: "publisher"}
    for topic, owner in writer.items():
        for service in SERVICES:
            allowed = await _can_write(settings, STACK.service_credentials(service), topic)
            assert allowed == (service == owner), (topic, service)
    for service in SERVICES:
        login = STACK.service_credentials(service)
        assert not await _can_write(settings, login, CREDENTIALS.name), service
        for other in SERVICES:
            allowed = await _can_write(settings, login, f"credit.deadletter.{other}")
            assert allowed == (service == other), (service, other)


async def test_a_service_joins_its_own_groups_only(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    """Group grants are names, not prefixes: `xinyong-stats` as a prefix was also the group
    of stats-windows, whose rebalances stats could then disturb."""
    from tests.integration.conftest import STACK

    stats = STACK.service_credentials("stats")
    topic = "credit.records.accepted"  # which stats may read (in its own groups, which the
    # running stats shows; joining them here would only disturb it)
    assert not await _can_read(settings, stats, topic, "xinyong-stats-windows")
    assert not await _can_read(settings, stats, topic, "xinyong-statsx")


async def test_unauthenticated_and_wrong_password_clients_are_refused(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    anonymous = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap,
                                 request_timeout_ms=3000)
    with pytest.raises(KafkaError):
        await asyncio.wait_for(anonymous.start(), 15)
    await anonymous.stop()
    tax = _login(await credentials.issue(settings, "department", "tax"))
    wrong = make_producer(settings, username=tax["username"], password=tax["password"] + "x")
    with pytest.raises(KafkaConnectionError):
        await wrong.start()
    await wrong.stop()


async def test_revocation_cuts_http_and_kafka_even_on_an_open_connection(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    issued = await credentials.issue(settings, "department", "court")
    login = _login(issued)
    url = services["ingest"].url() + "/api/v1/records"
    await wait_until_accepted(issued.token, url, "POST")
    consumer = AIOKafkaConsumer(settings.topic("credit.feedback.court"),
                                **client_options(settings, **login),
                                group_id=settings.topic("court.open"),
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    await consumer.getmany(timeout_ms=500)  # connected, assigned, reading

    await credentials.revoke(settings, issued.credential_id)

    deadline = time.monotonic() + 30
    with pytest.raises(REFUSED):  # the open connection's next requests are refused
        while time.monotonic() < deadline:
            await consumer.seek_to_beginning()
            await consumer.getmany(timeout_ms=500)
            await consumer.commit()
    await consumer.stop()
    with pytest.raises(KafkaConnectionError):  # and the user is gone
        reconnect = make_producer(settings, **login)
        try:
            await reconnect.start()
        finally:
            await reconnect.stop()
    await _until_refused(issued.token, url)


async def _until_refused(token: str, url: str) -> None:
    async with httpx.AsyncClient() as client:
        await kit.until_answer(lambda: client.post(
            url, json={}, headers={"Authorization": f"Bearer {token}"}),
            lambda r: r.status_code == 401, "the token is refused")


async def test_an_expired_credential_is_refused_and_the_sweep_removes_its_kafka_user(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    issued = await credentials.issue(settings, "agency", "land", lifetime=timedelta(seconds=4))
    url = services["publisher"].url() + f"/api/v1/notices/{uuid.uuid4()}/feedback"
    async with httpx.AsyncClient() as client:
        answer = await kit.until_answer(lambda: client.post(
            url, json={"status": "received"},
            headers={"Authorization": f"Bearer {issued.token}"}),
            lambda r: r.status_code != 401, "the credential reaches the publisher", timeout=20)
        assert answer.status_code == 404  # accepted: the notice is unknown
        await asyncio.sleep(max(0.0, (issued.expires_at - _now()).total_seconds()) + 0.5)
        expired = await client.post(url, json={"status": "received"},
                                    headers={"Authorization": f"Bearer {issued.token}"})
        assert expired.status_code == 401
    assert issued.credential_id in await credentials.sweep(settings)
    with pytest.raises(KafkaConnectionError):
        producer = make_producer(settings, **_login(issued))
        try:
            await producer.start()
        finally:
            await producer.stop()
    assert issued.credential_id not in await credentials.sweep(settings)  # idempotent


def _now() -> Any:
    from shared import clock

    return clock.now()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], env={**_environ(), **ENV},
                          capture_output=True, text=True, timeout=120)


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


async def test_the_command_line_prints_the_contracts_lines_lists_and_revokes(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    done = await asyncio.to_thread(_cli, "credentials", "issue", "--department", "customs",
                                   "--format", "env")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        "XINYONG_TOKEN", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "CREDENTIAL_ID"]
    env = dict(line.split("=", 1) for line in lines)
    assert env["XINYONG_TOKEN"].startswith(f"xyt_{env['CREDENTIAL_ID']}.")
    login = {"username": env["KAFKA_SASL_USERNAME"], "password": env["KAFKA_SASL_PASSWORD"]}
    assert await _can_write(settings, login, "credit.inbound.customs")

    listed = await asyncio.to_thread(_cli, "credentials", "list")
    assert env["CREDENTIAL_ID"] in listed.stdout and "customs" in listed.stdout

    subject = await asyncio.to_thread(_cli, "credentials", "issue", "--subject",
                                      f"enterprise:{enterprise().id}", "--format", "env")
    assert [line.split("=", 1)[0] for line in subject.stdout.splitlines()] == [
        "XINYONG_TOKEN", "CREDENTIAL_ID"], subject.stderr

    revoked = await asyncio.to_thread(_cli, "credentials", "revoke", env["CREDENTIAL_ID"])
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"revoked {env['CREDENTIAL_ID']}"
    assert not await _can_connect(settings, login)
    listed = await asyncio.to_thread(_cli, "credentials", "list")
    assert env["CREDENTIAL_ID"] not in listed.stdout
    unknown = await asyncio.to_thread(_cli, "credentials", "revoke", "000000000000")
    assert unknown.returncode == 1


async def _can_connect(settings: Settings, login: dict[str, str]) -> bool:
    producer = make_producer(settings, **login)
    try:
        await producer.start()
        return True
    except KafkaConnectionError:
        return False
    finally:
        await producer.stop()


async def test_a_client_connects_over_sasl_ssl_with_the_generated_ca(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    from tests.integration.conftest import STACK

    port = int(settings.kafka_bootstrap.rsplit(":", 1)[1]) + 3
    tls = settings.model_copy(update={
        "kafka_bootstrap": f"127.0.0.1:{port}", "kafka_security_protocol": "SASL_SSL",
        "kafka_ssl_cafile": settings.home / "kafka" / "tls" / "ca.pem"})
    data = record(enterprise(), "amr.admin_penalty")
    assert await _can_write(tls, STACK.tester, "credit.inbound.amr",
                            submission_json("amr", data), key_of(data))
    untrusted = tls.model_copy(update={"kafka_ssl_cafile": None})
    assert not await _can_connect(untrusted, STACK.tester)


async def test_internal_http_needs_an_operator_or_the_owning_department(
        settings: Settings, services: dict[str, ServiceProcess], operator_token: str,
        producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    from tests.integration.kit import send

    firm = enterprise()
    data = record(firm, "amr.admin_penalty")
    await send(producer, settings, "amr", data)
    await watcher.wait_for("credit.feedback.amr", feedback_for(data["record_id"]))
    amr = await credentials.issue(settings, "department", "amr")
    tax = await credentials.issue(settings, "department", "tax")
    archive = f"{services['registry'].url()}/api/v1/archive/enterprise/{firm.id}"
    audit = f"{services['ingest'].url()}/api/v1/records/amr/{data['record_id']}/submissions"
    await wait_until_accepted(amr.token, audit)
    await wait_until_accepted(tax.token, services["ingest"].url() + "/api/v1/records", "POST")

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient() as client:
        assert (await client.get(archive)).status_code == 401
        assert (await client.get(archive, headers=bearer(amr.token))).status_code == 401
        found = await _eventually(client, archive, bearer(operator_token))
        assert [r["record_id"] for r in found.json()["records"]] == [data["record_id"]]

        assert (await client.get(audit)).status_code == 401
        own = await client.get(audit, headers=bearer(amr.token))
        assert own.status_code == 200 and own.json()[0]["status"] == "accepted"
        other = await client.get(audit, headers=bearer(tax.token))
        unknown = await client.get(audit.replace(data["record_id"], "NO-SUCH-RECORD"),
                                   headers=bearer(amr.token))
        assert other.status_code == unknown.status_code == 404
        assert other.content == unknown.content
        assert (await client.get(audit, headers=bearer(operator_token))).status_code == 200

        for name, process in services.items():
            if process.command:  # stats-windows: no public port, metrics on its own
                continue
            assert (await client.get(process.url() + "/metrics")).status_code == 404, name
            scraped = await client.get(
                f"http://{settings.metrics_host}:{_metrics_port(name)}/metrics")
            assert scraped.status_code == 200 and "xinyong_" in scraped.text, name


def _metrics_port(service: str) -> int:
    return int(ENV[f"XINYONG_{service.upper()}_METRICS_PORT"])


async def _eventually(client: httpx.AsyncClient, url: str,
                      headers: dict[str, str]) -> httpx.Response:
    return await kit.until_answer(lambda: client.get(url, headers=headers),
                                  lambda r: r.status_code == 200, f"GET {url} answers 200")


async def test_a_service_database_rebuilt_from_nothing_knows_every_credential(
        settings: Settings, services: dict[str, ServiceProcess]) -> None:
    """credit.credentials is compacted and kept for ever: a service whose database is made
    again from nothing learns every token from it, revocations included."""
    from shared.db import drop_database, ensure_database

    kept = await credentials.issue(settings, "agency", "land")
    revoked = await credentials.issue(settings, "agency", "land")
    url = services["publisher"].url() + f"/api/v1/notices/{uuid.uuid4()}/feedback"
    await wait_until_accepted(revoked.token, url, "POST")
    await credentials.revoke(settings, revoked.credential_id)
    await _until_refused(revoked.token, url)

    publisher = services["publisher"]
    publisher.stop()
    await drop_database(settings, "publisher")
    await ensure_database(settings, "publisher")
    publisher.start(ENV)
    await asyncio.to_thread(publisher.wait_ready, 120)

    await wait_until_accepted(kept.token, url, "POST")
    async with httpx.AsyncClient() as client:
        answer = await client.post(url, json={"status": "received"},
                                   headers={"Authorization": f"Bearer {revoked.token}"})
    assert answer.status_code == 401

"""Ingest against the real broker and database: bad input, redelivery, revision order."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from deploy.stack import ServiceProcess
from shared.settings import Settings
from tests.integration.conftest import TopicWatcher
from tests.integration.helpers import enterprise, individual, key_of, record
from tests.integration.kit import feedback_for, poll_json, send, send_raw

pytestmark = pytest.mark.integration


def errors_of(event: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["field"], e["code"]) for e in event["data"]["errors"]}


async def test_bad_check_character_is_rejected_naming_subject_id(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    firm = enterprise()
    bad_id = firm.id[:-1] + ("0" if firm.id[-1] != "0" else "1")
    data = record(firm, "court.dishonest_debtor")
    data["subject"]["id"] = bad_id
    await send(producer, settings, "court", data)
    [fb] = await watcher.wait_for("credit.feedback.court", feedback_for(data["record_id"]))
    assert fb["data"]["status"] == "rejected"
    assert ("subject.id", "checksum") in errors_of(fb)


async def test_another_departments_item_is_refused(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    data = record(enterprise(), "tax.major_violation")
    await send(producer, settings, "court", data)
    [fb] = await watcher.wait_for("credit.feedback.court", feedback_for(data["record_id"]))
    assert fb["data"]["status"] == "rejected"
    assert ("catalogue_item", "wrong_department") in errors_of(fb)


async def test_minor_is_not_put_on_the_dishonest_debtor_list(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    from datetime import date, timedelta
    child = individual(birth=date.today() - timedelta(days=365 * 15))
    data = record(child, "court.dishonest_debtor")
    await send(producer, settings, "court", data)
    [fb] = await watcher.wait_for("credit.feedback.court", feedback_for(data["record_id"]))
    assert fb["data"]["status"] == "rejected"
    assert ("subject.id", "minor") in errors_of(fb)


async def test_garbage_is_rejected_and_the_next_record_on_its_partition_is_accepted(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    firm = enterprise()
    data = record(firm, "amr.admin_penalty")
    key = key_of(data)
    # The same key puts both on the same partition, the garbage first.
    await send_raw(producer, settings, "credit.inbound.amr", b"\x00\xff not json {", key)
    await send(producer, settings, "amr", data)

    [fb] = await watcher.wait_for("credit.feedback.amr", feedback_for(data["record_id"]))
    assert fb["data"]["status"] == "accepted"
    garbage = await watcher.wait_for(
        "credit.feedback.amr",
        lambda e: e["data"].get("raw") is not None and e["subject"] == key.decode())
    assert len(garbage) == 1
    g = garbage[0]["data"]
    assert g["status"] == "rejected"
    assert g["event_id"] is None and g["record_id"] is None and g["revision"] is None
    assert g["raw"]["topic"] == "credit.inbound.amr"
    assert g["errors"][0]["code"] == "unparseable"
    dead = await watcher.wait_for("credit.deadletter.ingest",
                                  lambda e: e["data"]["offset"] == g["raw"]["offset"]
                                  and e["data"]["partition"] == g["raw"]["partition"])
    assert dead[0]["data"]["topic"] == "credit.inbound.amr"


async def test_redelivered_event_is_duplicate_and_archived_once(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], db: Any, operator_token: str) -> None:
    firm = enterprise()
    data = record(firm, "amr.abnormal_operation")
    event_id = str(uuid.uuid4())
    await send(producer, settings, "amr", data, event_id)
    await send(producer, settings, "amr", data, event_id)       # the department retried
    await send(producer, settings, "amr", data)                 # same revision, new event id
    fbs = await watcher.wait_for("credit.feedback.amr", feedback_for(data["record_id"]),
                                 count=3)
    assert [f["data"]["status"] for f in fbs] == ["accepted", "duplicate", "duplicate"]

    url = f"{services['registry'].url()}/api/v1/archive/enterprise/{firm.id}"
    archive = (await poll_json(url, lambda r: r.status_code == 200,
                               headers={"Authorization": f"Bearer {operator_token}"})).json()
    assert [r["record_id"] for r in archive["records"]] == [data["record_id"]]
    history = await db("registry").fetchval(
        "SELECT count(*) FROM record_history WHERE record_id = $1", data["record_id"])
    assert history == 1


async def test_older_revision_is_stale_and_changes_nothing(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess]) -> None:
    firm = enterprise()
    v2 = record(firm, "amr.admin_penalty", revision=2, document_no="珠市监罚〔2026〕2号")
    v1 = record(firm, "amr.admin_penalty", record_id=v2["record_id"], revision=1,
                document_no="珠市监罚〔2026〕1号")
    await send(producer, settings, "amr", v2)
    await send(producer, settings, "amr", v1)
    fbs = await watcher.wait_for("credit.feedback.amr", feedback_for(v2["record_id"]), count=2)
    assert [(f["data"]["revision"], f["data"]["status"]) for f in fbs] == [
        (2, "accepted"), (1, "stale")]
    url = f"{services['publisher'].url()}/api/v1/subjects/enterprise/{firm.id}"
    profile = (await poll_json(url, lambda r: r.status_code == 200)).json()
    assert [r["document_no"] for r in profile["records"]] == ["珠市监罚〔2026〕2号"]


async def test_poison_event_on_an_internal_topic_goes_to_dead_letters_without_stalling(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher,
        services: dict[str, ServiceProcess], producer_as: Any, operator_token: str) -> None:
    """A message the registry cannot read is set aside with its reason; the next record on
    the same partition is still archived. (Only ingest may write the topic: the poison
    comes from its principal, as a bug in ingest would send it.)"""
    firm = enterprise()
    key = f"enterprise:{firm.id}".encode()
    await send_raw(await producer_as("ingest"), settings, "credit.records.accepted",
                   b'{"specversion": "1.0"}', key)
    data = record(firm, "amr.admin_penalty")
    await send(producer, settings, "amr", data)
    [dead] = await watcher.wait_for("credit.deadletter.registry",
                                    lambda e: e["data"]["key"] == key.decode())
    assert dead["data"]["topic"] == "credit.records.accepted"
    assert "unreadable event" in dead["data"]["reason"]
    url = f"{services['registry'].url()}/api/v1/archive/enterprise/{firm.id}"
    archive = (await poll_json(url, lambda r: r.status_code == 200,
                               headers={"Authorization": f"Bearer {operator_token}"})).json()
    assert [r["record_id"] for r in archive["records"]] == [data["record_id"]]


async def test_a_rejected_event_may_be_sent_again_corrected_under_the_same_id(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher) -> None:
    data = record(enterprise(), "amr.admin_penalty", district="999999")
    event_id = str(uuid.uuid4())
    await send(producer, settings, "amr", data, event_id)
    await send(producer, settings, "amr", {**data, "district": "440402"}, event_id)
    fbs = await watcher.wait_for("credit.feedback.amr", feedback_for(data["record_id"]),
                                 count=2)
    assert [f["data"]["status"] for f in fbs] == ["rejected", "accepted"]
    assert ("district", "unknown_district") in errors_of(fbs[0])

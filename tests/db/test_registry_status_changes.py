"""The registry's `apply_changes` on a real database (rolled back): a status change applies
only to a record the registry holds, under that record's subject (defence in depth behind
the objection service's own check); and the objection service's projection backfilled from
the registry's archive."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from services.objection import backfill
from services.objection import handlers as objection
from services.registry import handlers
from shared.catalogue import Catalogue
from shared.contract import RecordStatusChanged
from shared.messages import InboundMessage, OutboundEvent
from shared.topics import RECORDS_STATUS
from tests.db.builders import FIRM_A, FIRM_B, accepted_message
from tests.db.conftest import OpenTransaction

pytestmark = pytest.mark.db


def status_message(record_id: str, subject_id: str, change: str = "flag") -> InboundMessage:
    payload = RecordStatusChanged(change=change, department="amr", record_id=record_id,
                                  subject={"type": "enterprise", "id": subject_id},
                                  objection_id="00000000-0000-0000-0000-000000000001")
    event = OutboundEvent.of(RECORDS_STATUS, "xinyong/objection", f"enterprise:{subject_id}",
                             payload)
    return InboundMessage(topic=RECORDS_STATUS.name, partition=1, offset=7, key=event.key,
                          value=event.value, timestamp_ms=0)


async def apply(conn: asyncpg.Connection, catalogue: Catalogue,
                messages: list[InboundMessage]) -> None:
    changes, dead = handlers.parse_changes(messages)
    assert dead == []
    await handlers.apply_changes(conn, catalogue, changes)


async def outbox(conn: asyncpg.Connection) -> list[tuple[str, dict[str, Any]]]:
    rows = await conn.fetch("SELECT topic, value FROM outbox ORDER BY id")
    return [(r["topic"], json.loads(bytes(r["value"]))) for r in rows]


async def test_a_status_change_naming_another_subject_is_a_dead_letter_and_changes_nothing(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("registry")
    await apply(conn, catalogue, [accepted_message("G-1", FIRM_A)])
    before = await conn.fetchrow("SELECT subject_key, body::text FROM records")
    await conn.execute("DELETE FROM outbox")

    forged = status_message("G-1", FIRM_B)
    await apply(conn, catalogue, [forged])
    after = await conn.fetchrow("SELECT subject_key, body::text FROM records")
    assert after == before and after["subject_key"] == f"enterprise:{FIRM_A}"
    assert await conn.fetchval(
        "SELECT count(*) FROM subjects WHERE subject_key = $1", f"enterprise:{FIRM_B}") == 0
    [(topic, letter)] = await outbox(conn)
    assert topic == "credit.deadletter.registry"
    assert (letter["data"]["topic"], letter["data"]["offset"]) == ("credit.records.status", 7)
    assert f"enterprise:{FIRM_B}" in letter["data"]["reason"]


async def test_a_status_change_for_a_record_not_held_is_a_dead_letter(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("registry")
    await apply(conn, catalogue, [status_message("NONE-1", FIRM_B)])
    assert await conn.fetchval("SELECT count(*) FROM records") == 0
    assert await conn.fetchval("SELECT count(*) FROM subjects") == 0
    [(topic, letter)] = await outbox(conn)
    assert topic == "credit.deadletter.registry"
    assert "does not hold" in letter["data"]["reason"]


async def test_a_status_change_under_the_records_subject_applies_in_the_same_batch(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("registry")
    await apply(conn, catalogue, [accepted_message("G-2", FIRM_A),
                                  status_message("G-2", FIRM_A)])
    body = json.loads(await conn.fetchval("SELECT body::text FROM records"))
    assert body["disputed"] is True
    assert [t for t, _ in await outbox(conn)] == ["credit.subjects.changed"]


async def test_an_accepted_revision_still_moves_a_record_to_another_subject(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("registry")
    await apply(conn, catalogue, [accepted_message("G-3", FIRM_A)])
    await apply(conn, catalogue, [accepted_message("G-3", FIRM_B, 2)])
    assert await conn.fetchval("SELECT subject_key FROM records") == f"enterprise:{FIRM_B}"


async def test_the_objection_projection_is_backfilled_from_the_archive(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    """services/objection/backfill.py: the upgrade step for records older than the topic's
    retention."""
    registry = await tx("registry")
    await apply(registry, catalogue, [
        accepted_message("B-1", FIRM_A), accepted_message("B-2", FIRM_A),
        accepted_message("B-2", FIRM_B, 2), accepted_message("B-3", FIRM_A),
        accepted_message("B-3", FIRM_A, 2, action="withdraw"),
        accepted_message("B-4", FIRM_A)])
    target = await tx("objection")
    await objection.remember(target, [accepted_message("B-4", FIRM_B, 5)])

    assert await backfill.backfill(registry, target) == 4
    rows = {r["record_id"]: (r["subject_id"], r["revision"], r["withdrawn"])
            for r in await target.fetch("SELECT * FROM known_records")}
    assert rows == {"B-1": (FIRM_A, 1, False), "B-2": (FIRM_B, 2, False),
                    "B-3": (FIRM_A, 2, True),
                    "B-4": (FIRM_B, 5, False)}  # the projection's higher revision stays

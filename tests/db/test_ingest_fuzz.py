"""Ingest's use case over generated inbound messages, on a real database (issue 6, item 9).

For any batch of messages (any bytes, broken JSON, mutated envelopes and data, objection
decisions carrying a corrected record, with any key): reading them never raises,
`ingest_deliveries` gives exactly one outcome and one feedback event per submission, never
raises, writes nothing PostgreSQL refuses (it would raise: NUL in text, an int out of range),
every feedback is strict JSON of the contract's shape, and a valid record sent after the
batch is accepted. Each example runs in its own rolled-back transaction.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.ingest import handlers
from shared.catalogue import Catalogue
from shared.contract import RecordFeedback
from shared.envelope import submission_json
from shared.messages import InboundMessage
from tests.integration.helpers import enterprise, record
from tests.strategies import DEPARTMENTS, inbound_value, message_keys

pytestmark = pytest.mark.db

EXAMPLES = 500  # batches of 1 to 6 messages (about 1,800 messages in all)


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[str, InboundMessage]]:
    out = []
    for offset in range(draw(st.integers(1, 6))):
        department = draw(st.sampled_from([*DEPARTMENTS, "nobody"]))
        family, value = draw(inbound_value(department if department != "nobody" else "tax"))
        key = draw(message_keys)
        out.append((family, InboundMessage(
            topic=f"credit.inbound.{department}", partition=draw(st.integers(0, 5)),
            offset=offset, key=key.decode("utf-8", "replace") if key is not None else None,
            value=value, timestamp_ms=0, raw_key=key)))
    return out


def strict_json(value: bytes) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(constant)

    return json.loads(value.decode("utf-8"), parse_constant=refuse)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=batches())
async def test_every_submission_gets_one_outcome_and_a_valid_record_after_is_accepted(
        pools: dict[str, asyncpg.Pool], catalogue: Catalogue,
        batch: list[tuple[str, InboundMessage]]) -> None:
    event(f"batch of {len(batch)}")
    for family, _ in batch:
        event(f"family: {family}")
    deliveries = [d for d in (handlers.delivery_of(m) for _, m in batch) if d is not None]
    async with pools["ingest"].acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            outcomes = await handlers.ingest_deliveries(conn, catalogue, deliveries)
            assert [o.delivery.message for o in outcomes] == [d.message for d in deliveries]
            feedback = [strict_json(r["value"]) for r in await conn.fetch(
                "SELECT value FROM outbox WHERE topic LIKE 'credit.feedback.%' ORDER BY id")]
            assert len(feedback) == len(deliveries)
            for fb, outcome in zip(feedback, outcomes, strict=True):
                data = RecordFeedback.model_validate(fb["data"])
                assert data == outcome.feedback
                assert (data.status == "rejected") == bool(data.errors)
                if outcome.delivery.parsed.unparseable:
                    assert data.raw is not None and data.status == "rejected"
                event(f"status: {data.status}")
            assert await conn.fetchval("SELECT count(*) FROM submissions") == len(deliveries)

            good = record(enterprise(), "amr.admin_penalty")
            after = handlers.delivery_of(InboundMessage(
                topic="credit.inbound.amr", partition=0, offset=99,
                key=f"enterprise:{good['subject']['id']}",
                value=submission_json("amr", good, str(uuid.uuid4())), timestamp_ms=0))
            assert after is not None
            [accepted] = await handlers.ingest_deliveries(conn, catalogue, [after])
            assert accepted.feedback.status == "accepted", accepted.feedback
        finally:
            await transaction.rollback()

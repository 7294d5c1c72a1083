"""Generated messages on a real inbound topic (issue 6, item 9): every message gets exactly
one feedback and one line in ingest's audit trail, and a valid record sent after them is
accepted. The strategies are tests/strategies.py's (bytes, broken JSON, mutated envelopes
and data, decisions carrying a corrected record, any key)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.envelope import submission_json
from shared.settings import Settings
from tests import polling
from tests.integration.conftest import TopicWatcher
from tests.integration.helpers import enterprise, key_of, record
from tests.strategies import inbound_value, message_keys

pytestmark = pytest.mark.integration

DEPT = "civil"
BATCHES, BATCH_SIZE = 30, 10  # 300 generated messages, and 30 valid records after them


def envelope_id(value: bytes) -> str | None:
    """The id a parseable message's feedback names (a decision's correction gets
    `<id>/corrected`), as the producer wrote it; None when there is no such string."""
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return None
    corrected = isinstance(doc.get("data"), dict) and "corrected" in doc["data"] and \
        doc.get("type") == "cn.zhuhai.credit.objection.decided.v1"
    return f"{doc['id']}/corrected" if corrected else doc["id"]


@settings(max_examples=BATCHES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(inbound_value(DEPT), message_keys),
                      min_size=BATCH_SIZE, max_size=BATCH_SIZE))
async def test_each_generated_message_gets_exactly_one_feedback(
        settings: Settings, producer: AIOKafkaProducer, watcher: TopicWatcher, db: Any,
        batch: list[tuple[tuple[str, bytes], bytes | None]]) -> None:
    feedback_topic = f"credit.feedback.{DEPT}"
    seen_before = len(watcher.events[feedback_topic])
    topic = settings.topic(f"credit.inbound.{DEPT}")
    positions, ids = [], Counter[str]()
    for (_, value), key in batch:
        sent = await producer.send_and_wait(topic, value, key=key)
        positions.append((sent.partition, sent.offset))
        if (event_id := envelope_id(value)) is not None:
            ids[event_id] += 1
    after = record(enterprise(), "amr.admin_penalty")
    await producer.send_and_wait(settings.topic("credit.inbound.amr"),
                                 submission_json("amr", after, str(uuid.uuid4())),
                                 key=key_of(after))

    def ours(e: dict[str, Any]) -> bool:
        raw = e["data"].get("raw")
        if raw is not None:
            return (raw["partition"], raw["offset"]) in positions
        return e["data"].get("event_id") in ids

    await polling.until(lambda: len([e for e in watcher.events[feedback_topic][seen_before:]
                                 if ours(e)]) >= len(batch),
                    "every message gets its feedback", timeout=60, interval=0.05)
    [accepted] = await watcher.wait_for(
        "credit.feedback.amr", lambda e: e["data"].get("record_id") == after["record_id"])
    assert accepted["data"]["status"] == "accepted"
    await asyncio.sleep(0.2)  # a second feedback would come with the first

    mine = [e["data"] for e in watcher.events[feedback_topic][seen_before:] if ours(e)]
    by_position = Counter((d["raw"]["partition"], d["raw"]["offset"]) for d in mine
                          if d.get("raw"))
    by_id = Counter(d["event_id"] for d in mine if not d.get("raw"))
    assert all(n == 1 for n in by_position.values()), by_position
    assert all(by_id[i] <= ids[i] for i in by_id), (by_id, ids)
    assert len(mine) == len(batch)
    audit = await db("ingest").fetch(
        'SELECT partition, "offset" FROM submissions WHERE topic = $1'
        ' AND (partition, "offset") IN (SELECT * FROM unnest($2::int[], $3::bigint[]))',
        f"credit.inbound.{DEPT}", [p for p, _ in positions], [o for _, o in positions])
    assert sorted((r["partition"], r["offset"]) for r in audit) == sorted(positions)

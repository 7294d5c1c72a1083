"""Building submissions as departments send them, for the integration tests."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from typing import Any

from deploy.demo import DemoSubject, make_resident_id, make_uscc
from shared import clock
from tests.unit.factories import default_attributes

_rng = random.Random()


def enterprise(name: str = "珠海市测试贸易有限公司") -> DemoSubject:
    return DemoSubject("enterprise", make_uscc("91", "440402", _rng), name)


def individual(birth: date = date(1985, 5, 17), name: str = "测试人") -> DemoSubject:
    return DemoSubject("individual", make_resident_id("440402", birth, _rng.randrange(1000)),
                       name)


def record(subject: DemoSubject, item: str = "court.dishonest_debtor", *,
           record_id: str | None = None, revision: int = 1, action: str = "upsert",
           decided_on: date | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "record_id": record_id or f"T-{uuid.uuid4().hex[:12]}",
        "revision": revision,
        "action": action,
        "subject": {"type": subject.type, "id": subject.id, "name": subject.name},
    }
    if action == "upsert":
        data.update({
            "catalogue_item": item,
            "decided_on": (decided_on or clock.today() - timedelta(days=20)).isoformat(),
            "document_no": "（2026）粤04执123号",
            "summary": "集成测试",
            "district": "440402",
            "attributes": default_attributes(item),
        })
    data.update(extra)
    return data


def key_of(data: dict[str, Any]) -> bytes:
    return f"{data['subject']['type']}:{data['subject']['id']}".encode()

"""The CloudEvents 1.0 envelope (structured JSON mode) around every event on every topic."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

P = TypeVar("P")


class CloudEvent(BaseModel, Generic[P]):
    """`CloudEvent` reads any event; `CloudEvent[Payload]` also validates its data, in one
    pass over the JSON."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: P = None  # type: ignore[assignment]  # a missing `data` is reported by readers


@cache
def typed(payload: type[BaseModel]) -> type[CloudEvent[Any]]:
    return CloudEvent[payload]  # type: ignore[valid-type]


def encode_event(event_type: str, source: str, subject: str | None, data: BaseModel,
                 event_id: str | None = None) -> tuple[str, bytes]:
    """(event id, UTF-8 JSON) of a new event. The data is serialized by pydantic directly;
    null fields stay, as the contract shows them."""
    event_id = event_id or str(uuid.uuid4())
    head = json.dumps({
        "specversion": "1.0", "id": event_id, "source": source, "type": event_type,
        "subject": subject, "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
    }, ensure_ascii=False)
    return event_id, (head[:-1] + ', "data": ').encode() + data.model_dump_json().encode() + b"}"

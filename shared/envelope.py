"""The CloudEvents 1.0 envelope (structured JSON mode) around every event on every topic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CST_SOURCE_PREFIX = "xinyong/"


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: Any = None


def new_event(
    event_type: str, source: str, subject: str | None, data: BaseModel, event_id: str | None = None
) -> CloudEvent:
    return CloudEvent(
        specversion="1.0",
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=event_type,
        subject=subject,
        time=datetime.now(UTC),
        data=data.model_dump(mode="json", exclude_none=False),
    )


def encode(event: CloudEvent) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


def data_of(event: CloudEvent) -> dict[str, Any]:
    return event.data if isinstance(event.data, dict) else {}

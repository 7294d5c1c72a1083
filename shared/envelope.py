"""The CloudEvents 1.0 envelope (structured JSON mode) around every event on every topic."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from functools import cache
from json.encoder import encode_basestring as _string
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared import clock

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


AnyEvent = CloudEvent[Any]


@cache
def typed(payload: type[Any]) -> type[CloudEvent[Any]]:
    return CloudEvent[payload]  # type: ignore[valid-type]


def encode_event(event_type: str, source: str, subject: str | None, data: BaseModel,
                 event_id: str | None = None) -> tuple[str, bytes]:
    """(event id, UTF-8 JSON) of a new event. Written out by hand because it is on every
    event's path; the data is serialized by pydantic, null fields kept as the contract
    shows them."""
    event_id = event_id or str(uuid.uuid4())
    head = (f'{{"specversion":"1.0","id":{_string(event_id)},"source":{_string(source)},'
            f'"type":{_string(event_type)},'
            f'"subject":{_string(subject) if subject is not None else "null"},'
            f'"time":"{clock.now().isoformat()}","datacontenttype":"application/json",'
            '"data":')
    return event_id, head.encode() + data.model_dump_json().encode() + b"}"


def submission_json(department: str, data: Any, event_id: str | None = None) -> bytes:
    """A record.submitted.v1 event as a department sends it, around data that may be
    anything (it is not checked here: ingest checks it)."""
    subject = data.get("subject") if isinstance(data, dict) else None
    key = (f"{subject.get('type')}:{subject.get('id')}" if isinstance(subject, dict) else None)
    return json.dumps({
        "specversion": "1.0", "id": event_id or str(uuid.uuid4()),
        "source": f"dept/{department}", "type": "cn.zhuhai.credit.record.submitted.v1",
        "subject": key, "time": clock.now().isoformat(),
        "datacontenttype": "application/json", "data": data,
    }, ensure_ascii=False, default=str).encode()

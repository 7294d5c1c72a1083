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

    # A validation error's text goes into dead letters and logs: without the values, which
    # may be a person's identity number or name (pydantic quotes each wrong value).
    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)

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
                 event_id: str | None = None, at: datetime | None = None) -> tuple[str, bytes]:
    """(event id, UTF-8 JSON) of a new event. Written out by hand because it is on every
    event's path; the data is serialized by pydantic, null fields kept as the contract
    shows them. `at`: the envelope's `time` (default: the clock now)."""
    return encode_event_json(event_type, source, subject, data.model_dump_json().encode(),
                             event_id, at)


# What precedes `data` in every event `encode_event_json` writes: the data of such an event
# is what follows, up to the closing brace (`data_json`).
DATA_MARK = b',"datacontenttype":"application/json","data":'


def encode_event_json(event_type: str, source: str, subject: str | None, data_json: bytes,
                      event_id: str | None = None,
                      at: datetime | None = None) -> tuple[str, bytes]:
    """`encode_event` around data already serialized (by pydantic, once: the same bytes may
    also be stored, or be the bytes an earlier hop sent). A writer of many events at once
    passes their `at` (the clock read once, not per event)."""
    event_id = event_id or str(uuid.uuid4())
    head = (f'{{"specversion":"1.0","id":{_string(event_id)},"source":{_string(source)},'
            f'"type":{_string(event_type)},'
            f'"subject":{_string(subject) if subject is not None else "null"},'
            f'"time":"{(at or clock.now()).isoformat()}"')
    return event_id, head.encode() + DATA_MARK + data_json + b"}"


def data_json(value: bytes) -> bytes | None:
    """The `data` of an event as its bytes, when `encode_event_json` wrote the event (the
    head's strings are escaped, so the mark cannot occur before the real one); None for an
    event written otherwise. Only for events already parsed and checked as a whole."""
    at = value.find(DATA_MARK)
    if at < 0 or not value.endswith(b"}"):
        return None
    return value[at + len(DATA_MARK):-1]


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

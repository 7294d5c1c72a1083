"""What a stream handler sees of a Kafka message, and how events leave a service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from shared.envelope import AnyEvent, CloudEvent, encode_event, encode_event_json, typed
from shared.identifiers import uuid5_text
from shared.topics import Topic

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)
_CAUSED_NS = uuid.UUID("0c7e52a4-3f51-4f0e-9d53-6a1e8f0b2d77")


def caused_id(*cause: object) -> str:
    """The id of an event that `cause` (its source, a kind, and what names the input that
    caused it) makes: the same input applied again, by a replay from Kafka or a restored
    database, re-emits the event under the same id, which consumers de-duplicate."""
    return uuid5_text(_CAUSED_NS, "|".join(map(str, cause)))


@dataclass(frozen=True)
class InboundMessage:
    """A consumed message; `topic` is the contract name (without the test namespace)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp_ms: int
    # The key as it came (`key` is its UTF-8 text, invalid bytes replaced): what dead letters
    # keep.
    raw_key: bytes | None = None
    # The broker's id of the topic (unknown outside a worker): a topic deleted and created
    # again under the same name reuses offsets, never its id.
    topic_id: str | None = None

    @property
    def delivery(self) -> str:
        """This delivery's place in the log, the same each time it is read again."""
        return f"{self.topic_id or self.topic}|{self.partition}|{self.offset}"


@dataclass(frozen=True)
class OutboundEvent:
    topic: str
    key: str | None
    event_id: str
    value: bytes

    @classmethod
    def of(cls, topic: Topic[P], source: str, key: str | None, data: P,
           event_id: str | None = None, at: datetime | None = None) -> OutboundEvent:
        event_id, value = encode_event(topic.event_type, source, key, data, event_id, at)
        return cls(topic.name, key, event_id, value)

    @classmethod
    def of_json(cls, topic: Topic[P], source: str, key: str | None, data_json: bytes,
                event_id: str | None = None, at: datetime | None = None) -> OutboundEvent:
        """An event whose data is already serialized: the JSON of a `topic.payload`, written
        by pydantic (e.g. the bytes also stored in the database)."""
        event_id, value = encode_event_json(topic.event_type, source, key, data_json, event_id,
                                            at)
        return cls(topic.name, key, event_id, value)


class ForeignSource(ValueError):
    """An event whose envelope names another writer than the topic's one writer."""


def check_source(event: AnyEvent, topic: Topic[P]) -> None:
    """Only the topic's writer may speak on it (CONTRACT.md, "Connecting"): the broker's ACLs
    keep others off the topic, and this keeps a writer from speaking for another."""
    if event.source != topic.writer:
        raise ForeignSource(f"source {event.source!r} is not {topic.writer!r}, the one writer "
                            f"of {topic.name}")


class _EventType(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)  # as the envelope's (envelope.py)

    type: str = ""


def event_type_of(message: InboundMessage) -> str:
    """The `type` of the event a message holds ('' without one), for a topic that carries
    more than one (credit.objections.<dept>: objections and complaints); raises ValueError
    for a value that is not a JSON object."""
    return _EventType.model_validate_json(message.value).type


def read_event(message: InboundMessage, topic: Topic[P]) -> CloudEvent[P]:
    """The message as an event of the topic's type from the topic's writer, its data
    validated (one pass over the JSON); raises ValueError (pydantic's ValidationError is
    one) otherwise."""
    return read_event_as(message, topic, topic.payload)


def read_event_as(message: InboundMessage, topic: Topic[P], reading: type[R]) -> CloudEvent[R]:
    """`read_event`, the data read as `reading`: some of the fields of `topic.payload` (same
    names, same types), the others skipped unbuilt. For a consumer that needs a few fields
    of large events (whole snapshots); `topic.payload` stays the definition of the topic,
    and each reading is held to it by a test (tests/unit/test_readings.py)."""
    event: CloudEvent[R] = typed(reading).model_validate_json(message.value)
    if event.data is None:
        raise ValueError(f"{event.type} on {message.topic} has no data")
    if event.type != topic.event_type:
        raise ValueError(f"expected {topic.event_type} on {message.topic}, got {event.type}")
    check_source(event, topic)
    return event

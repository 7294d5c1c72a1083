"""What a stream handler sees of a Kafka message, and how events leave a service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from shared.envelope import CloudEvent, encode_event, typed
from shared.topics import Topic

P = TypeVar("P", bound=BaseModel)


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


@dataclass(frozen=True)
class OutboundEvent:
    topic: str
    key: str | None
    event_id: str
    value: bytes

    @classmethod
    def of(cls, topic: Topic[P], source: str, key: str | None, data: P,
           event_id: str | None = None) -> OutboundEvent:
        event_id, value = encode_event(topic.event_type, source, key, data, event_id)
        return cls(topic.name, key, event_id, value)


def read_event(message: InboundMessage, topic: Topic[P]) -> CloudEvent[P]:
    """The message as an event of the topic's type, its data validated (one pass over the
    JSON); raises ValueError (pydantic's ValidationError is one) otherwise."""
    event: CloudEvent[P] = typed(topic.payload).model_validate_json(message.value)
    if event.data is None:
        raise ValueError(f"{event.type} on {message.topic} has no data")
    if event.type != topic.event_type:
        raise ValueError(f"expected {topic.event_type} on {message.topic}, got {event.type}")
    return event

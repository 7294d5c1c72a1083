"""What a stream handler sees of a Kafka message, and how events leave a service."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from shared.envelope import CloudEvent, encode, new_event
from shared.topics import Topic


@dataclass(frozen=True)
class InboundMessage:
    """A consumed message; `topic` is the contract name (without the test namespace)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    timestamp_ms: int


@dataclass(frozen=True)
class OutboundEvent:
    topic: str
    key: str | None
    event_id: str
    value: bytes

    @classmethod
    def of(cls, topic: Topic[BaseModel], source: str, key: str | None, data: BaseModel,
           event_id: str | None = None) -> OutboundEvent:
        event = new_event(topic.event_type, source, key, data, event_id)
        return cls.from_event(topic.name, event)

    @classmethod
    def from_event(cls, topic: str, event: CloudEvent) -> OutboundEvent:
        return cls(topic, event.subject, event.id, encode(event))

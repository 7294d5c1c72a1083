"""What the objection service consumes and produces, and its HTTP models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from shared.catalogue import Catalogue
from shared.contract import SubjectType
from shared.topics import INBOUND, OBJECTIONS, OBJECTIONS_CLOSED, RECORDS_ACCEPTED, RECORDS_STATUS

# Inbound: only the departments' objection decisions. Accepted records: the projection that
# an objection's record and subject are checked against.
CONSUMES = (INBOUND, RECORDS_ACCEPTED)
PRODUCES = (OBJECTIONS, RECORDS_STATUS, OBJECTIONS_CLOSED)


def consumed_topics(catalogue: Catalogue) -> list[str]:
    return [RECORDS_ACCEPTED.name, *(INBOUND.of(dept).name for dept in catalogue.departments)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text cannot hold U+0000: refused here, named, instead of failing there.
        if isinstance(value, str) and "\x00" in value:
            raise PydanticCustomError("nul_character", "must not contain the NUL character")
        return value


class SubjectInput(_Request):
    type: SubjectType
    id: str = Field(min_length=1, max_length=64)


class RecordInput(_Request):
    department: str = Field(min_length=1, max_length=32)
    record_id: str = Field(min_length=1, max_length=64)


class ObjectionRequest(_Request):
    subject: SubjectInput
    record: RecordInput
    reason: str = Field(min_length=2, max_length=4000)
    contact: str = Field(min_length=3, max_length=200)


class DecisionRequest(_Request):
    decision: Literal["upheld", "rejected"]
    reason: str = Field(min_length=1, max_length=4000)
    withdraw: bool = False


class ObjectionCreated(BaseModel):
    objection_id: str
    kind: Literal["objection", "repair"]
    status: str
    due_by: date
    access_token: str


class TimelineEvent(BaseModel):
    status: str
    note: str | None
    at: datetime


class ObjectionStatus(BaseModel):
    objection_id: str
    kind: str
    status: str
    due_by: date
    record: RecordInput
    timeline: list[TimelineEvent]

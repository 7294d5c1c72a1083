"""The statistics service's HTTP answers (CONTRACT.md, "City statistics and department
assessment")."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from shared.http import Answer


class Figures(Answer):
    negative_records: int
    black_list_entries: int
    red_list_entries: int


class DistrictCounts(Answer):
    district: str
    name: str
    by_subject_type: dict[str, Figures]


class Districts(Answer):
    from_: date = Field(alias="from")
    to: date
    districts: list[DistrictCounts]


class Window(Answer):
    from_: datetime = Field(alias="from")
    to: datetime


class Warning(Answer):
    district: str
    measure: str
    name: str | None
    window: Window
    count: int
    threshold: int


class Warnings(Answer):
    warnings: list[Warning]


class Delay(Answer):
    records: int
    median: int | None
    p95: int | None
    double_publicity_records: int
    double_publicity_within_7: float | None


class ObjectionCounts(Answer):
    received: int
    upheld: int
    decided_after_due_by: int


class Scorecard(Answer):
    department: str
    name: str
    submissions: int
    accepted: int
    rejected: int
    rejected_by_code: dict[str, int]
    duplicates: int
    stale: int
    delay_working_days: Delay
    objections: ObjectionCounts


class Scorecards(Answer):
    month: str | None
    from_: date = Field(alias="from")
    to: date
    partial: bool
    departments: list[Scorecard]

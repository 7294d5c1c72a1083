"""The objection service's HTTP answers that are not in contracts.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from shared.http import Answer


class OpenComplaint(Answer):
    complaint_id: str
    about_kind: str
    about: dict[str, Any]
    subject: dict[str, Any] | None
    text: str
    due_by: date
    received_at: datetime
    overdue: bool


class OpenComplaints(Answer):
    complaints: list[OpenComplaint]


class ComplaintAnswered(Answer):
    complaint_id: str
    status: str


class ObjectionDecided(Answer):
    objection_id: str
    status: str

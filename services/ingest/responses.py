"""The ingest gateway's HTTP answers besides the submission's own (contracts.py,
SubmissionAnswer)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.contract import FieldError
from shared.http import Answer


class Submission(Answer):
    """One delivery of a record and its fate."""

    channel: Literal["kafka", "http"]
    event_id: str | None
    revision: int | None
    status: str
    errors: list[FieldError]
    received_at: datetime

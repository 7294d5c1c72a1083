"""What the publisher consumes and produces."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.publisher.domain import control_characters
from shared.catalogue import Catalogue
from shared.topics import (
    COMMITMENTS_SIGNED,
    LISTS_CHANGED,
    NOTICE_FEEDBACK,
    NOTICES,
    REQUESTS_CHANGED,
    SUBJECTS_CHANGED,
    SUBJECTS_NOTIFIED,
)

# Requests: the subject's objections, repairs and complaints for its own view (/api/v1/me).
CONSUMES = (SUBJECTS_CHANGED, NOTICE_FEEDBACK, REQUESTS_CHANGED)
PRODUCES = (LISTS_CHANGED, NOTICES, SUBJECTS_NOTIFIED, COMMITMENTS_SIGNED)


def consumed_topics(catalogue: Catalogue) -> list[str]:
    return [SUBJECTS_CHANGED.name, REQUESTS_CHANGED.name,
            *(NOTICE_FEEDBACK.of(agency).name for agency in catalogue.agencies)]


class FeedbackRequest(BaseModel):
    """An agency's answer about one notice, over HTTP."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["received", "applied", "not_applicable"]
    note: str | None = Field(default=None, max_length=2000)

    @field_validator("note")
    @classmethod
    def _no_control_characters(cls, note: str | None) -> str | None:
        # PostgreSQL text refuses NUL; line breaks and tabs are a note's own.
        bad = control_characters(note or "", allowed="\t\n\r")
        if bad:
            raise ValueError(f"control characters are not allowed: {', '.join(bad)}")
        return note

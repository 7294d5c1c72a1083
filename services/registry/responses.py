"""The registry's HTTP answers (docs: its OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.http import Answer


class Archive(Answer):
    """A subject's whole archive as the registry keeps it, internal fields included: the
    subject's row and every record's stored body (shared/contract.py, ArchivedRecord)."""

    subject_key: str
    type: str
    id: str
    name: str | None
    version: int
    updated_at: datetime
    records: list[dict[str, Any]]

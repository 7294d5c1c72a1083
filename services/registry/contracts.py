"""What the registry consumes and produces."""

from __future__ import annotations

from shared.catalogue import Catalogue
from shared.topics import RECORDS_ACCEPTED, RECORDS_STATUS, SUBJECTS_CHANGED

CONSUMES = (RECORDS_ACCEPTED, RECORDS_STATUS)
PRODUCES = (SUBJECTS_CHANGED,)


def consumed_topics(_: Catalogue) -> list[str]:
    return [t.name for t in CONSUMES]

"""What the publisher consumes and produces."""

from __future__ import annotations

from shared.catalogue import Catalogue
from shared.topics import LISTS_CHANGED, NOTICE_FEEDBACK, NOTICES, SUBJECTS_CHANGED

CONSUMES = (SUBJECTS_CHANGED, NOTICE_FEEDBACK)
PRODUCES = (LISTS_CHANGED, NOTICES)


def consumed_topics(catalogue: Catalogue) -> list[str]:
    return [SUBJECTS_CHANGED.name,
            *(NOTICE_FEEDBACK.of(agency).name for agency in catalogue.agencies)]

"""What the stats service consumes and produces."""

from __future__ import annotations

from shared.catalogue import Catalogue
from shared.topics import (
    FEEDBACK,
    LISTS_CHANGED,
    OBJECTIONS,
    OBJECTIONS_CLOSED,
    RECORDS_ACCEPTED,
    STATS_DELTAS,
    STATS_WARNINGS,
    STATS_WINDOWS,
    STATS_WINDOWS_CHANGELOG,
)

# Facts from every pipeline stage, and the early warning's outputs (its sink).
CONSUMES = (FEEDBACK, RECORDS_ACCEPTED, LISTS_CHANGED, OBJECTIONS, OBJECTIONS_CLOSED,
            STATS_WINDOWS, STATS_WARNINGS)
PRODUCES = (STATS_DELTAS,)


def consumed_topics(catalogue: Catalogue) -> list[str]:
    return [RECORDS_ACCEPTED.name, LISTS_CHANGED.name, OBJECTIONS_CLOSED.name,
            STATS_WINDOWS.name, STATS_WARNINGS.name,
            *(FEEDBACK.of(d).name for d in catalogue.departments),
            *(OBJECTIONS.of(d).name for d in catalogue.departments)]

# stats-windows (faust, services/stats/windows.py): its source, its table's changelog, its
# outputs.
WINDOWS_CONSUMES = (STATS_DELTAS, STATS_WINDOWS_CHANGELOG)
WINDOWS_PRODUCES = (STATS_WINDOWS, STATS_WARNINGS, STATS_WINDOWS_CHANGELOG)

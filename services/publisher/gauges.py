"""What the publisher reports to the operators besides its stream (shared/probes.py runs
these): the closed loop of notices, per agency and measure."""

from __future__ import annotations

import asyncpg

from services.publisher import store
from shared import clock, metrics
from shared.context import ServiceContext


async def notice_feedback(ctx: ServiceContext, conn: asyncpg.Connection) -> None:
    """Notices awaiting their agency's feedback, and those past their measure's deadline
    (`due_by`, dated by the sequencer: services/publisher/history.py). Kept as counts by
    the database (migration 096): the probe reads a few rows, not the backlog."""
    counts = await store.awaiting_counts(conn, clock.today())
    awaiting: dict[str, int] = {}
    for (agency, _), (waiting, _) in counts.items():
        awaiting[agency] = awaiting.get(agency, 0) + waiting
    # Every agency and measure of the catalogue, so that a loop closed since the last probe
    # shows 0.
    for agency in sorted({*ctx.catalogue.agencies, *awaiting}):
        metrics.NOTICES_AWAITING_FEEDBACK.labels(ctx.name, agency).set(awaiting.get(agency, 0))
    pairs = {(m.agency, name) for name, m in ctx.catalogue.measures.items()} | set(counts)
    for agency, measure in sorted(pairs):
        metrics.NOTICES_OVERDUE.labels(ctx.name, agency, measure).set(
            counts.get((agency, measure), (0, 0))[1])

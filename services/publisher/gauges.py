"""What the publisher reports to the operators besides its stream (shared/probes.py runs
these): the closed loop of notices, per agency and measure."""

from __future__ import annotations

import asyncio

import asyncpg

from services.publisher import store
from shared import clock, metrics
from shared.context import ServiceContext

# Between two agencies' counts: the backlog is counted in slices, each a short burst on
# one core, with the public API's requests between them (docs/performance.md, "The public
# query targets, held": 83 ms at once on a city's 470,000 notices stalled them every probe).
SLICE_PAUSE_SECONDS = 0.02


async def notice_feedback(ctx: ServiceContext, conn: asyncpg.Connection) -> None:
    """Notices awaiting their agency's feedback, and those past their measure's deadline
    (`due_by`, dated by the sequencer: services/publisher/history.py), one agency at a
    time."""
    today = clock.today()
    awaiting: dict[str, int] = {}
    overdue: dict[tuple[str, str], int] = {}
    for agency in await store.awaiting_agencies(conn):
        for measure, (waiting, late) in (await store.agency_backlog(conn, agency, today)).items():
            awaiting[agency] = awaiting.get(agency, 0) + waiting
            overdue[(agency, measure)] = late
        await asyncio.sleep(SLICE_PAUSE_SECONDS)
    # Every agency and measure of the catalogue, so that a loop closed since the last probe
    # shows 0.
    for agency in sorted({*ctx.catalogue.agencies, *awaiting}):
        metrics.NOTICES_AWAITING_FEEDBACK.labels(ctx.name, agency).set(awaiting.get(agency, 0))
    pairs = {(m.agency, name) for name, m in ctx.catalogue.measures.items()} | set(overdue)
    for agency, measure in sorted(pairs):
        metrics.NOTICES_OVERDUE.labels(ctx.name, agency, measure).set(
            overdue.get((agency, measure), 0))

"""What the publisher reports to the operators besides its stream (shared/probes.py runs
these): the closed loop of notices, per agency."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import asyncpg

from services.publisher import domain, store
from shared import clock, metrics
from shared.context import ServiceContext


async def notice_feedback(ctx: ServiceContext, conn: asyncpg.Connection) -> None:
    """Notices awaiting their agency's feedback, and those past the deadline."""
    through = domain.feedback_overdue_through(clock.today(),
                                              ctx.settings.notice_feedback_working_days)
    overdue_before = datetime.combine(through + timedelta(days=1), time(), clock.ZHUHAI)
    backlog = await store.feedback_backlog(conn, domain.FEEDBACK_CLOSING, overdue_before)
    # Every agency of the catalogue, so that a loop closed since the last probe shows 0.
    for agency in sorted({*ctx.catalogue.agencies, *backlog}):
        awaiting, overdue = backlog.get(agency, (0, 0))
        metrics.NOTICES_AWAITING_FEEDBACK.labels(ctx.name, agency).set(awaiting)
        metrics.NOTICES_FEEDBACK_OVERDUE.labels(ctx.name, agency).set(overdue)

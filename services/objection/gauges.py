"""What the objection service reports to the operators besides its stream (shared/probes.py
runs these; the overdue count is the deadline timer's, services/objection/handlers.py)."""

from __future__ import annotations

import asyncpg

from shared import metrics
from shared.context import ServiceContext


async def open_objections(ctx: ServiceContext, conn: asyncpg.Connection) -> None:
    """Objections and repair requests routed to their department and not yet decided."""
    metrics.OBJECTIONS_OPEN.labels(ctx.name).set(await conn.fetchval(
        "SELECT count(*) FROM objections WHERE status = 'routed'"))

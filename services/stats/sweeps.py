"""The statistics' daily sweep. The statistics keep no subject (their facts name types,
districts and records, never who), so they cannot erase by subject as the other services do
(shared/purge.py); what may hold personal data is what they could not read: their dead
letters and refused events, kept whole for the operators. Those are deleted
`stats_dead_letter_days` after they were kept."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from shared import clock, sweeps
from shared.context import ServiceContext

SWEEP = "dead_letters"


async def forget_kept_messages(conn: asyncpg.Connection, before: datetime) -> int:
    """Delete the dead letters and refused events kept before `before`; how many."""
    dead = await conn.fetchval(
        "WITH gone AS (DELETE FROM dead_letters WHERE at < $1 RETURNING 1)"
        " SELECT count(*) FROM gone", before)
    refused = await conn.fetchval(
        "WITH gone AS (DELETE FROM outbox_set_aside WHERE set_aside_at < $1 RETURNING 1)"
        " SELECT count(*) FROM gone", before)
    return int(dead) + int(refused)


async def forget_once(ctx: ServiceContext) -> int:
    """One pass, which takes everything due: returns 0 so that the timer waits for the next
    look (`sweeps.run_all` repeats a pass while it finds work)."""
    async with ctx.pool.acquire() as conn:
        await forget_kept_messages(
            conn, clock.now() - timedelta(days=ctx.settings.stats_dead_letter_days))
    return 0


TIMER = sweeps.timer(sweeps.Sweep(SWEEP, forget_once))

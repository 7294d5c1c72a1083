"""The daily sweeps of a service (expiry at rest, the purge, contacts' erasure): one timer
that runs each sweep until it finds nothing due, then waits `sweep_interval_seconds`.

A sweep acts on what is due by the Zhuhai date (shared/clock.py), so it is daily however
often it looks, and it catches up by itself after any downtime: what fell due meanwhile is
still due. Each pass is a transaction of its own: a sweep killed midway loses that pass
only, and the next start does it again. An item that fails for a reason other than the
database being away is dead-lettered with its reason (`dead_letters`, and an event on the
service's dead-letter topic), skipped for the rest of the day and tried again the next:
the sweep goes on with the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import asyncpg

from shared import clock, metrics, outbox
from shared.context import ServiceContext
from shared.db import TRANSIENT
from shared.messages import InboundMessage, caused_id

log = logging.getLogger(__name__)

# One pass: handles what is due (up to a batch) and returns how many items it finished; 0
# when nothing is left for now.
Pass = Callable[[ServiceContext], Awaitable[int]]


@dataclass(frozen=True)
class Sweep:
    name: str
    run_once: Pass


def timer(*sweeps: Sweep | Callable[[ServiceContext], Sequence[Sweep]]
          ) -> Callable[[ServiceContext], Coroutine[Any, Any, None]]:
    """A service timer (ServiceSpec.timers) running the sweeps one after the other; a sweep
    may be given as a function of the service's context (one that needs its catalogue)."""

    async def sweeps_timer(ctx: ServiceContext) -> None:
        made = [s for item in sweeps
                for s in ((item,) if isinstance(item, Sweep) else item(ctx))]
        while True:
            await run_all(ctx, made)
            await asyncio.sleep(ctx.settings.sweep_interval_seconds)

    return sweeps_timer


async def run_all(ctx: ServiceContext, sweeps: Sequence[Sweep]) -> None:
    for sweep in sweeps:
        try:
            while await sweep.run_once(ctx):
                pass
        except TRANSIENT as exc:
            log.warning("%s sweep: database unavailable (%s)", sweep.name, exc)


async def failed_today(conn: asyncpg.Connection, sweep: str, today: date) -> set[str]:
    rows = await conn.fetch(
        "SELECT item FROM sweep_failures WHERE sweep = $1 AND failed_on = $2", sweep, today)
    return {r["item"] for r in rows}


async def record_failure(conn: asyncpg.Connection, service: str, sweep: str, item: str,
                         reason: str) -> None:
    """Dead-letter an item a sweep could not handle, once a day: a row of `dead_letters`
    (the item and the reason as JSON; topic `sweep/<name>`), its event on the service's
    dead-letter topic, and a `sweep_failures` row that keeps it out of today's passes. `item`
    names the work (a record reference), never a person."""
    today = clock.today()
    log.error("%s sweep: %s failed: %s", sweep, item, reason)
    metrics.SWEEP_ITEMS.labels(service, sweep, "failed").inc()
    fresh = await conn.fetchval(
        "INSERT INTO sweep_failures (sweep, item, failed_on, reason) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING true", sweep, item, today,
        outbox.text_for_storage(reason, outbox.REASON_MAX_CHARS))
    if not fresh:
        return
    body = json.dumps({"sweep": sweep, "item": item, "day": today.isoformat()},
                      ensure_ascii=False).encode()
    # No Kafka message failed: the dead letter names the sweep and the item instead.
    message = InboundMessage(topic=f"sweep/{sweep}", partition=0, offset=0, key=None,
                             value=body, timestamp_ms=0)
    letter = outbox.dead_letter(service, message, reason)
    await outbox.enqueue(conn, [replace(
        letter, event_id=caused_id(f"xinyong/{service}", "sweep-failure", sweep, item, today))])

"""Agencies over HTTP (CONTRACT.md): every notice sent to an agency, in the order sent and
whatever the topic's retention, with its current feedback and deadline; the notices past
their deadline; and the sequencer that gives each committed notice its place in that order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI, Query

from services.publisher import domain, store
from services.publisher.responses import AgencyNotices
from shared import clock, credentials
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.db import TRANSIENT
from shared.http import ANSWERED_AS_RETURNED, Problem

log = logging.getLogger(__name__)

SEQUENCER_IDLE_SECONDS = 0.5
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CURSOR_CHARS = 64


async def sequencer(ctx: ServiceContext) -> None:
    """Give committed notices their place in the agencies' history and their deadline, as
    they commit (store.sequence_notices)."""
    while True:
        try:
            async with ctx.pool.acquire() as conn:
                done = await sequence_once(conn, ctx.catalogue,
                                           ctx.settings.notice_feedback_working_days)
        except TRANSIENT as exc:
            log.warning("notice sequencer: database unavailable (%s)", exc)
            done = 0
        if not done:
            await asyncio.sleep(SEQUENCER_IDLE_SECONDS)


async def sequence_once(conn: asyncpg.Connection, catalogue: Catalogue,
                        fallback_working_days: int) -> int:
    return await store.sequence_notices(conn, catalogue, fallback_working_days)


def _entry(row: asyncpg.Record, today: Any) -> dict[str, Any]:
    feedback = None
    if row["feedback_status"] is not None:
        feedback = {"status": row["feedback_status"], "note": row["feedback_note"],
                    "at": row["feedback_at"]}
    return {"notice": row["body"], "feedback": feedback, "due_by": row["due_by"],
            "due_provisional": row["due_provisional"],
            "overdue": domain.is_overdue(row["feedback_status"], row["due_by"], today)}


def _after(since: str | None, last: int) -> int:
    """The place a cursor names; 400 `bad_cursor` for one this API never gave: malformed,
    another feed's, or past the last notice numbered (`v1:99999999999999999999` too)."""
    try:
        after = domain.decode_notices_cursor(since)
        if after > last:
            raise ValueError("past the last notice")
    except ValueError as exc:
        raise Problem(400, "bad_cursor", "`since` is not a cursor this API gave",
                      errors=[{"field": "since", "code": "bad_cursor",
                               "message": "use the `next` value of a previous answer"}]
                      ) from exc
    return after


def add_routes(app: FastAPI, ctx: ServiceContext) -> None:
    agency_of = credentials.bearer(ctx.pool, "agency")
    since_query = Query(None, max_length=_CURSOR_CHARS,
                        description="the `next` of the previous answer")
    limit_query = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)

    def own(agency: str, caller: str) -> None:
        if agency != caller:
            raise Problem(403, "forbidden", "A token of this agency is required",
                          detail=f"the token is {caller}'s")

    @app.get("/api/v1/agencies/{agency}/notices",
             response_model=AgencyNotices, **ANSWERED_AS_RETURNED)
    async def agency_notices(agency: str, caller: str = Depends(agency_of),
                             since: str | None = since_query,
                             limit: int = limit_query) -> dict[str, Any]:
        """Every notice sent to the agency, in the order sent, each exactly as sent with its
        current feedback and deadline; `next` resumes after the last one."""
        own(agency, caller)
        async with ctx.pool.acquire() as conn:
            after = _after(since, await store.last_notice_seq(conn))
            rows = await store.agency_notices(conn, agency, after, limit)
        return _page(agency, rows, after)

    @app.get("/api/v1/agencies/{agency}/overdue",
             response_model=AgencyNotices, **ANSWERED_AS_RETURNED)
    async def agency_overdue(agency: str, caller: str = Depends(agency_of),
                             since: str | None = since_query,
                             limit: int = limit_query) -> dict[str, Any]:
        """The agency's notices without `applied` or `not_applicable` feedback past their
        measure's deadline, in the order sent."""
        own(agency, caller)
        async with ctx.pool.acquire() as conn:
            after = _after(since, await store.last_notice_seq(conn))
            rows = await store.agency_overdue(conn, agency, clock.today(), after, limit,
                                              domain.FEEDBACK_CLOSING)
        return _page(agency, rows, after)


def _page(agency: str, rows: list[asyncpg.Record], after: int) -> dict[str, Any]:
    today = clock.today()
    last = rows[-1]["seq"] if rows else after
    return {"agency": agency, "notices": [_entry(r, today) for r in rows],
            "next": domain.encode_notices_cursor(last)}

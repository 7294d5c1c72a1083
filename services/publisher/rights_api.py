"""The subject's own access (CONTRACT.md, "A subject's own access") and the public
announcements of listings a subject could not be told of directly; the log of public
profile views that /api/v1/me/queries reads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.publisher import domain, responses, rights, rights_store, store
from shared import clock, credentials, guard
from shared.context import ServiceContext
from shared.contract import SUBJECT_TYPES, SubjectChanged, subject_key
from shared.db import TRANSIENT
from shared.http import ANSWERED_AS_RETURNED, Problem
from shared.identifiers import is_uuid, normalize_identifier

log = logging.getLogger(__name__)

VIEWS_LOGGED = Counter("xinyong_profile_views_logged_total",
                       "Public profile views and reports written to the query log", ["channel"])
NOT_FOUND = Counter("xinyong_profile_lookups_not_found_total",
                    "Public profile lookups answered 404 (counted only, never logged)",
                    ["channel"])
LOG_FAILED = Counter("xinyong_query_log_failures_total",
                     "Public views that could not be written to the query log")
LOG_SECONDS = Histogram("xinyong_query_log_seconds",
                        "Time a public view spends writing its query-log row",
                        buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05))


class QueryLog:
    """Writes who looked at a subject's public profile (征信业管理条例 art. 17: the subject may
    know who queried it): one row per view, the caller's network masked.

    A view is kept in memory and written with others every `FLUSH_SECONDS` by one COPY (the
    service's `query_log_writer` timer), not in the request: a round trip to PostgreSQL in
    every public view cost several milliseconds at p99 on this machine, the buffer costs
    microseconds (docs/performance.md). What a crash of the process can lose is the last
    `FLUSH_SECONDS` of views; a stop writes them first; while the database is away they wait,
    up to `BUFFER_MAX` rows, then are counted as lost (docs/decisions.md)."""

    FLUSH_SECONDS = 0.1
    BUFFER_MAX = 100_000

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.client_of = guard.client_of(ctx.settings.trusted_proxies)
        self._rows: list[tuple[str, datetime, str, str | None, str | None]] = []

    def address(self, request: Request) -> str | None:
        return rights.mask_address(self.client_of(request))

    async def record(self, key: str, channel: rights.Channel, request: Request,
                     purpose: str | None = None) -> None:
        """Log one view (written within FLUSH_SECONDS). Never the caller's failure."""
        started = time.perf_counter()
        if len(self._rows) >= self.BUFFER_MAX:
            LOG_FAILED.inc()
        else:
            self._rows.append((key, clock.now(), channel, purpose, self.address(request)))
            VIEWS_LOGGED.labels(channel).inc()
        LOG_SECONDS.observe(time.perf_counter() - started)

    async def flush(self) -> int:
        """Write what is buffered; returns the rows written. On a database failure the rows
        stay for the next attempt."""
        rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            async with self.ctx.pool.acquire() as conn:
                await conn.copy_records_to_table(
                    "query_log", columns=["subject_key", "at", "channel", "purpose", "address"],
                    records=rows)
        except TRANSIENT as exc:
            self._rows = (rows + self._rows)[:self.BUFFER_MAX]
            log.warning("query log: %d views wait for the database (%s)", len(rows), exc)
            return 0
        return len(rows)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.FLUSH_SECONDS)
                await self.flush()
        finally:  # the service stops: write what is left before its pool closes
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), timeout=5)


    async def profile(self, answer: Callable[[], Awaitable[dict[str, Any]]],
                      channel: rights.Channel, request: Request, subject_type: str,
                      identifier: str, purpose: str | None) -> dict[str, Any]:
        """The public profile, its view logged; a 404 only counted."""
        try:
            found = await answer()
        except Problem as exc:
            if exc.status == 404:
                NOT_FOUND.labels(channel).inc()
            raise
        code = normalize_identifier(identifier)
        if code is not None:
            await self.record(subject_key(subject_type, code), channel, request, purpose)
        return found

    async def search(self, result: dict[str, Any], channel: rights.Channel, request: Request,
                     q: str) -> None:
        """A full-code search that lands on one subject is a view of its profile."""
        code = normalize_identifier(q.strip())
        hits = result.get("results") or []
        if code is None or len(hits) != 1:
            return
        hit = hits[0]
        if hit["id"] == rights.mask(hit["type"], code):
            await self.record(subject_key(hit["type"], code), channel, request)


_LOGS: dict[int, QueryLog] = {}


def query_log_of(ctx: ServiceContext) -> QueryLog:
    """The one query log of a service (its API records, its timer writes). Found by the
    settings object: the API's context differs from the timers' by its pool (the HTTP pool,
    shared/service.py), not by its settings."""
    return _LOGS.setdefault(id(ctx.settings), QueryLog(ctx))


async def query_log_writer(ctx: ServiceContext) -> None:
    """The publisher's timer that writes the buffered views."""
    await query_log_of(ctx).run()


def as_of_moment(as_of: str | None) -> datetime | None:
    """The moment `as_of` names (the end of that day, CST), None for now; 422 naming `as_of`
    for a text that is not a date or a day still to come."""
    if as_of is None:
        return None
    try:
        return domain.as_of_moment(as_of, clock.now())[1]
    except domain.AsOfRefused as exc:
        raise Problem(422, "validation", "The request is not valid", errors=[
            {"field": "as_of", "code": exc.code, "message": str(exc)}]) from exc


def purpose_of(purpose: str | None) -> str | None:
    if purpose is None:
        return None
    bad = domain.control_characters(purpose)
    if bad:
        raise Problem(422, "validation", "The request is not valid", errors=[
            {"field": "purpose", "code": "control_character",
             "message": f"control characters are not allowed: {', '.join(bad)}"}])
    return purpose.strip() or None


class ContactRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    contact: str = Field(min_length=3, max_length=200)

    @field_validator("contact")
    @classmethod
    def _reachable(cls, contact: str) -> str:
        if rights.channel_of(contact) is None:
            raise ValueError("a mobile phone number or an e-mail address")
        return contact


def install(app: FastAPI, ctx: ServiceContext, render: Callable[..., HTMLResponse]) -> None:
    """/api/v1/me (a subject's bearer token), and the announcements."""
    subject_token = credentials.caller(ctx.pool, "subject")
    settings, catalogue = ctx.settings, ctx.catalogue
    # Not an Annotated alias: FastAPI reads string annotations in the module's globals, where
    # a dependency made here is not.
    token = Depends(subject_token)

    async def own_key(caller: credentials.Caller) -> str | None:
        async with ctx.pool.acquire() as conn:
            return await rights_store.subject_of_party(conn, caller.party)

    @app.get("/api/v1/me", response_model=responses.Me, **ANSWERED_AS_RETURNED)
    async def me(caller: credentials.Caller = token,
                 as_of: str | None = None) -> dict[str, Any]:
        """Everything Xinyong holds about the token's subject, public or not (征信业管理条例
        art. 17): records with status, rule version, repair_from, public_until and purge
        date; list entries (pending too); notices about it with their feedback;
        notifications; objections, repairs and complaints. With `as_of` (YYYY-MM-DD): the
        archive and its list entries as they stood at the end of that day (CST), in full,
        whatever has stopped being shown since."""
        at = as_of_moment(as_of)
        key = await own_key(caller)
        if at is not None:
            return await full_past_view(key, at)
        async with ctx.pool.acquire() as conn:
            contact = await rights_store.own_contact(conn, caller.party)
            if key is None:
                return _empty(contact)
            snapshot = (await store.snapshots(conn, [key])).get(key)
            entries = await rights_store.entries_of(conn, key)
            notices = await store.notices_of_subject(conn, key)
            notifications = await rights_store.notifications_of(conn, key)
            requests = await rights_store.requests_of(conn, key)
        today = clock.today()
        return {
            "subject": snapshot.subject.model_dump() if snapshot else None,
            "records": rights.own_records(catalogue, snapshot, today, {
                (b["department"], b["record_id"]) for e in entries if e["status"] == "active"
                for b in e["basis"]}) if snapshot else [],
            "grade": snapshot.grade.model_dump() if snapshot else None,
            "lists": [_entry(catalogue, e, snapshot) for e in entries],
            "notices": [_notice(n) for n in notices],
            "notifications": notifications,
            **rights.requests_by_kind(requests),
            "contact": _contact(contact),
        }

    async def full_past_view(key: str | None, at: datetime) -> dict[str, Any]:
        """The subject's own or an operator's view of a past day; the same 404 as the
        public's for a subject unknown then."""
        past = None
        if key is not None:
            async with ctx.pool.acquire() as conn:
                past = await store.profile_at(conn, key, at)
        if past is None or past.past is None:
            raise Problem(404, "not_found", "No credit information for this subject then")
        day = at.astimezone(clock.ZHUHAI).date()
        return {"as_of": day.isoformat(), "history_from": past.history_from,
                **domain.own_profile(catalogue, SubjectChanged.model_validate_json(past.past),
                                     past.past_entries, day)}

    operator = Depends(credentials.caller(ctx.pool, "operator"))

    @app.get("/api/v1/operators/subjects/{subject_type}/{identifier}",
             response_model=responses.Me, **ANSWERED_AS_RETURNED)
    async def operator_view(subject_type: str, identifier: str,
                            as_of: str | None = None,
                            _: credentials.Caller = operator) -> dict[str, Any]:
        """An operator's full view of a subject at the end of a day (`as_of`, default
        today): everything stored then, shown or not since."""
        at = as_of_moment(as_of) or clock.now()
        code = normalize_identifier(identifier)
        known = code is not None and subject_type in SUBJECT_TYPES
        return await full_past_view(subject_key(subject_type, code) if known and code else None,
                                    at)

    @app.get("/api/v1/me/queries", response_model=responses.Queries, **ANSWERED_AS_RETURNED)
    async def my_queries(cursor: str | None = None, caller: credentials.Caller = token,
                         limit: int = Query(settings.me_page_size, ge=1,
                                            le=settings.me_page_max)) -> dict[str, Any]:
        """Who looked at the subject's public profile or took a report, newest first
        (`next`: the cursor of the following page)."""
        try:
            before = rights.decode_cursor(cursor)
        except ValueError as exc:
            raise Problem(400, "bad_cursor", "`cursor` is not a cursor this API gave",
                          errors=[{"field": "cursor", "code": "bad_cursor",
                                   "message": "use the `next` value of a previous answer"}]
                          ) from exc
        key = await own_key(caller)
        rows = []
        if key is not None:
            async with ctx.pool.acquire() as conn:
                rows = await rights_store.views(conn, key, before, limit + 1)
        page = rows[:limit]
        return {"queries": [{"at": r["at"], "channel": r["channel"], "purpose": r["purpose"],
                             "address": r["address"]} for r in page],
                "next": rights.encode_cursor(page[-1]["id"]) if len(rows) > limit else None}

    @app.put("/api/v1/me/contact", response_model=responses.ContactAnswer, **ANSWERED_AS_RETURNED)
    async def set_contact(body: ContactRequest,
                          caller: credentials.Caller = token) -> dict[str, Any]:
        """Where Xinyong tells the subject before listing it; it takes precedence over a
        contact a department gave."""
        key = await own_key(caller)
        async with ctx.pool.acquire() as conn:
            await rights_store.set_contact(conn, caller.party, key, body.contact)
            return {"contact": _contact(await rights_store.own_contact(conn, caller.party))}

    @app.delete("/api/v1/me/contact", status_code=204)
    async def remove_contact(caller: credentials.Caller = token) -> Response:
        async with ctx.pool.acquire() as conn:
            await rights_store.remove_contact(conn, caller.party)
        return Response(status_code=204)

    @app.get("/api/v1/me/records/{department}/{record_id}",
             response_model=responses.OwnRecordWithNotices, **ANSWERED_AS_RETURNED)
    async def my_record(department: str, record_id: str,
                        caller: credentials.Caller = token) -> dict[str, Any]:
        """One record of the subject's, with the notices it is the basis of; another
        subject's record is not found."""
        key = await own_key(caller)
        async with ctx.pool.acquire() as conn:
            snapshot = (await store.snapshots(conn, [key])).get(key) if key else None
            notices = await store.notices_of_subject(conn, key) if snapshot and key else []
        found = [r for r in rights.own_records(catalogue, snapshot, clock.today())
                 if (r["department"], r["record_id"]) == (department, record_id)
                 ] if snapshot else []
        if not found:
            raise Problem(404, "not_found", "No record of yours with this id")
        return {**found[0], "notices": [
            _notice(n) for n in notices
            if any((b["department"], b["record_id"]) == (department, record_id)
                   for b in n["body"]["basis"])]}

    @app.get("/api/v1/me/notifications/{notification_id}",
             response_model=responses.Notification, **ANSWERED_AS_RETURNED)
    async def my_notification(notification_id: str,
                              caller: credentials.Caller = token) -> dict[str, Any]:
        key = await own_key(caller)
        found = []
        if key is not None and is_uuid(notification_id):
            async with ctx.pool.acquire() as conn:
                found = await rights_store.notifications_of(conn, key, notification_id)
        if not found:
            raise Problem(404, "not_found", "No notification of yours with this id")
        return found[0]

    async def announced(list_name: str | None, page: int) -> dict[str, Any]:
        if list_name is not None and list_name not in catalogue.lists:
            raise Problem(404, "unknown_list", f"No list named {list_name}")
        async with ctx.pool.acquire() as conn:
            rows = await rights_store.announcements(conn, list_name, clock.now(), 21,
                                                    (page - 1) * 20)
        shown = []
        for r in rows[:20]:
            body = r["body"]
            subject = body["subject"]
            shown.append({**{k: v for k, v in body.items() if k != "subject"},
                          "subject": {"type": subject["type"],
                                      "id": rights.mask(subject["type"], subject["id"]),
                                      "name": subject.get("name")}})
        return {"basis": rights.ANNOUNCEMENT_BASIS, "page": page, "announcements": shown,
                "next_page": page + 1 if len(rows) > 20 else None}

    @app.get("/api/v1/announcements",
             response_model=responses.Announcements, **ANSWERED_AS_RETURNED)
    async def announcements(list: str | None = None,
                            page: int = Query(1, ge=1, le=500)) -> dict[str, Any]:
        """Listings announced publicly because the subject could not be told directly (no
        contact, or deliveries failing): what, why, when, and how to object."""
        return await announced(list, page)

    @app.get("/announcements", response_class=HTMLResponse, include_in_schema=False)
    async def announcements_page(request: Request,
                                 page: int = Query(1, ge=1, le=500)) -> HTMLResponse:
        return render(request, "announcements.html", data=await announced(None, page))


def _empty(contact: Any) -> dict[str, Any]:
    """A token whose subject Xinyong holds nothing about."""
    return {"subject": None, "records": [], "grade": None, "lists": [], "notices": [],
            "notifications": [], "objections": [], "repairs": [], "complaints": [],
            "contact": _contact(contact)}


def _contact(row: Any) -> dict[str, Any] | None:
    return {"contact": row["contact"], "set_at": row["set_at"]} if row else None


def _entry(catalogue: Any, e: dict[str, Any],
           snapshot: SubjectChanged | None = None) -> dict[str, Any]:
    """A list entry of the subject's, each basis record with its provenance."""
    lst = catalogue.lists.get(e["list"])
    records = {(r.department, r.record_id): r for r in snapshot.records} if snapshot else {}
    basis = [{**b, "provenance": domain.provenance(records[(b["department"], b["record_id"])])
              if (b["department"], b["record_id"]) in records else None}
             for b in e["basis"]]
    return {**e, "basis": basis, "name": lst.name if lst else None,
            "kind": lst.kind if lst else None}


def _notice(n: dict[str, Any]) -> dict[str, Any]:
    body = n["body"]
    return {"notice_id": body["notice_id"], "agency": n["agency"], "kind": body["kind"],
            "list": body["list"], "measure": body["measure"],
            "effective_from": body["effective_from"],
            "effective_until": body["effective_until"], "issued_at": body["issued_at"],
            "revokes": body.get("revokes"),
            "feedback": {"status": n["feedback_status"], "note": n["feedback_note"],
                         "at": n["feedback_at"]} if n["feedback_status"] else None}

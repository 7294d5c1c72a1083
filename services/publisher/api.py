"""The public query site and API (信用珠海网): no authentication, rate-limited, only what the
catalogue marks public and only within its disclosure period, individuals masked."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

from services.publisher import domain, store
from services.publisher.contracts import FeedbackRequest
from shared import clock, credentials
from shared.context import ServiceContext
from shared.contract import (
    SUBJECT_TYPES,
    NoticeFeedback,
    SubjectChanged,
    SubjectRef,
    subject_key,
)
from shared.http import Problem, base_app, problem_response

PAGE_SIZE = 20


TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
TEMPLATES.env.globals["subject_type_names"] = {
    "enterprise": "企业", "individual": "个人", "institution": "事业单位", "social_org": "社会组织"}


def create_app(ctx: ServiceContext) -> FastAPI:
    app = base_app("信用珠海 Xinyong public API",
                   "Public credit information of Zhuhai (CONTRACT.md, public query site).")
    limiter = Limiter(key_func=get_remote_address)
    app.state.limiter = limiter
    app.state.catalogue = ctx.catalogue

    @app.exception_handler(RateLimitExceeded)
    async def _limited(_: Request, exc: RateLimitExceeded) -> JSONResponse:
        return problem_response(429, "rate_limited", "Too many requests", str(exc.detail))

    views = PublicViews(ctx)

    @app.get("/api/v1/subjects")
    @limiter.limit(ctx.settings.public_rate_limit)
    async def search(request: Request, q: str = Query(min_length=1, max_length=100),
                     type: str | None = None, page: int = Query(1, ge=1, le=500)
                     ) -> dict[str, Any]:
        return await views.search(q, _subject_type(type), page)

    @app.get("/api/v1/subjects/{subject_type}/{identifier}")
    @limiter.limit(ctx.settings.public_rate_limit)
    async def profile(request: Request, subject_type: str, identifier: str) -> dict[str, Any]:
        return await views.profile(_subject_type(subject_type) or "", identifier)

    @app.get("/api/v1/lists/{list_name}")
    @limiter.limit(ctx.settings.public_rate_limit)
    async def list_members(request: Request, list_name: str,
                           page: int = Query(1, ge=1)) -> dict[str, Any]:
        return await views.list_members(list_name, page)

    @app.get("/api/v1/lists/{list_name}/changes")
    @limiter.limit(ctx.settings.public_rate_limit)
    async def list_changes(request: Request, list_name: str,
                           since: str | None = None) -> dict[str, Any]:
        return await views.list_changes(list_name, since)

    agency_of = credentials.bearer(ctx.pool, "agency")

    @app.post("/api/v1/notices/{notice_id}/feedback")
    async def notice_feedback(notice_id: str, answer: FeedbackRequest,
                              agency: str = Depends(agency_of)) -> dict[str, str]:
        """An agency reports what it did with one of its notices (closed loop)."""
        try:
            feedback = NoticeFeedback(notice_id=str(uuid.UUID(notice_id)),
                                      status=answer.status, note=answer.note)
        except ValueError as exc:
            raise Problem(404, "not_found", "No notice with this id") from exc
        async with ctx.pool.acquire() as conn, conn.transaction():
            updated = await store.record_feedback(conn, [(agency, feedback)])
        if not updated:
            raise Problem(404, "not_found", f"{agency} has no notice {notice_id}")
        return {"notice_id": feedback.notice_id, "status": feedback.status}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def home(request: Request, q: str | None = None, type: str | None = None,
                   page: int = Query(1, ge=1, le=500)) -> HTMLResponse:
        result = await views.search(q, _subject_type(type), page) if q else None
        return _page(request, "search.html", q=q or "", result=result,
                     lists=ctx.catalogue.lists)

    @app.get("/subjects/{subject_type}/{identifier}", response_class=HTMLResponse,
             include_in_schema=False)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def subject_page(request: Request, subject_type: str,
                           identifier: str) -> HTMLResponse:
        data = await views.profile(_subject_type(subject_type) or "", identifier)
        return _page(request, "subject.html", p=data, path_id=identifier,
                     objection_url=ctx.settings.objection_public_url)

    @app.get("/lists/{list_name}", response_class=HTMLResponse, include_in_schema=False)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def list_page(request: Request, list_name: str,
                        page: int = Query(1, ge=1)) -> HTMLResponse:
        return _page(request, "list.html", data=await views.list_members(list_name, page))

    return app


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    catalogue = request.app.state.catalogue
    return TEMPLATES.TemplateResponse(request, template, {
        "list_names": {k: v.name for k, v in catalogue.lists.items()},
        "departments": {k: v.name for k, v in catalogue.departments.items()}, **context})


def _subject_type(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in SUBJECT_TYPES:
        raise Problem(422, "validation", "Unknown subject type",
                      errors=[{"field": "type", "code": "not_allowed",
                               "message": f"one of {', '.join(SUBJECT_TYPES)}"}])
    return value


class PublicViews:
    """The public answers, shared by the JSON API and the web pages."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.catalogue = ctx.catalogue

    async def search(self, q: str, subject_type: str | None, page: int) -> dict[str, Any]:
        norm = domain.normalize_name(q)
        exact = q.strip().upper()
        async with self.ctx.pool.acquire() as conn:
            rows = await store.search_subjects(
                conn, norm, domain.query_grams(norm), exact, subject_type, PAGE_SIZE + 1,
                (page - 1) * PAGE_SIZE)
            lists = await store.active_entries(conn, [r["subject_key"] for r in rows])
        results = [{**domain.public_subject(SubjectChanged.model_validate(r["snapshot"]).subject),
                    "lists": [e.list for e in lists.get(r["subject_key"], [])]}
                   for r in rows[:PAGE_SIZE]]
        return {"query": q, "page": page, "results": results,
                "next_page": page + 1 if len(rows) > PAGE_SIZE else None}

    async def profile(self, subject_type: str, identifier: str) -> dict[str, Any]:
        key = subject_key(subject_type, identifier.upper())
        async with self.ctx.pool.acquire() as conn:
            snapshot = await store.subject(conn, key)
            entries = (await store.active_entries(conn, [key])).get(key, [])
        today = clock.today()
        if snapshot is None or not domain.is_discoverable(self.catalogue, snapshot, today):
            raise Problem(404, "not_found", "No public credit information for this subject")
        return {
            "subject": domain.public_subject(snapshot.subject),
            "records": domain.public_records(self.catalogue, snapshot.records, today),
            "lists": [self._membership(e) for e in entries],
            "grade": snapshot.grade.model_dump(),
        }

    def _membership(self, entry: domain.Entry) -> dict[str, Any]:
        lst = self.catalogue.lists[entry.list]
        return {"list": entry.list, "name": lst.name, "kind": lst.kind,
                "since": entry.since, "until": entry.until}

    def _list(self, list_name: str) -> Any:
        if list_name not in self.catalogue.lists:
            raise Problem(404, "unknown_list", f"No list named {list_name}")
        return self.catalogue.lists[list_name]

    async def list_members(self, list_name: str, page: int) -> dict[str, Any]:
        lst = self._list(list_name)
        async with self.ctx.pool.acquire() as conn:
            total, rows = await store.list_members(conn, list_name, PAGE_SIZE,
                                                   (page - 1) * PAGE_SIZE)
        members = [{"subject": domain.public_subject(
                        SubjectChanged.model_validate(r["snapshot"]).subject),
                    "since": r["since"], "until": r["until"]} for r in rows]
        return {"list": list_name, "name": lst.name, "kind": lst.kind, "basis": lst.basis,
                "exit": lst.exit, "total": total, "page": page, "members": members,
                "next_page": page + 1 if page * PAGE_SIZE < total else None}

    async def list_changes(self, list_name: str, since: str | None) -> dict[str, Any]:
        self._list(list_name)
        after = _decode_cursor(since)
        async with self.ctx.pool.acquire() as conn:
            rows = await store.list_changes(conn, list_name, after, 500)
        changes = []
        for r in rows:
            body = r["body"]
            changes.append({"op": r["op"], "at": r["at"], "since": body["since"],
                            "until": body["until"],
                            "subject": domain.public_subject(
                                SubjectRef.model_validate(body["subject"]))})
        last = rows[-1]["seq"] if rows else after
        return {"list": list_name, "changes": changes, "next": _encode_cursor(last)}


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, seq = raw.partition(":")
        if version != "v1":
            raise ValueError(version)
        return int(seq)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "bad_cursor", "`since` is not a cursor this API gave",
                      errors=[{"field": "since", "code": "bad_cursor",
                               "message": "use the `next` value of a previous answer"}]) from exc

"""The public query site and API (信用珠海网): no authentication, rate-limited, only what the
catalogue marks public and only within its disclosure period, individuals masked."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.publisher import domain, rights, rights_api, store
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
from shared.http import Problem, base_app, field_errors, problem_response
from shared.identifiers import normalize_identifier

PAGE_SIZE = 20
# Every paged route stops here (10,000 rows at 20 a page): deeper pages only make the
# database skip rows. A whole list is read through its changes feed instead.
MAX_PAGE = 500


TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
TEMPLATES.env.globals["subject_type_names"] = {
    "enterprise": "企业", "individual": "个人", "institution": "事业单位", "social_org": "社会组织"}


def create_app(ctx: ServiceContext) -> FastAPI:
    app = base_app("信用珠海 Xinyong public API",
                   "Public credit information of Zhuhai (CONTRACT.md, public query site).")
    limiter = Limiter(key_func=get_remote_address)
    app.state.limiter = limiter
    app.state.catalogue = ctx.catalogue
    _answer_web_pages_in_html(app)

    views = PublicViews(ctx)
    # Every public profile view is logged for the subject (/api/v1/me/queries).
    query_log = rights_api.query_log_of(ctx)
    rights_api.install(app, ctx, _page)

    @app.get("/api/v1/subjects")
    @limiter.limit(ctx.settings.public_rate_limit)
    async def search(request: Request, q: str = Query(min_length=1, max_length=100),
                     type: str | None = None, page: int = Query(1, ge=1, le=MAX_PAGE)
                     ) -> dict[str, Any]:
        result = await views.search(q, _subject_type(type), page)
        await query_log.search(result, "api", request, q)
        return result

    @app.get("/api/v1/subjects/{subject_type}/{identifier}")
    @limiter.limit(ctx.settings.public_rate_limit)
    async def profile(request: Request, subject_type: str, identifier: str,
                      purpose: str | None = Query(None, max_length=200)) -> dict[str, Any]:
        """`purpose` (optional): why the caller looks, shown to the subject with the view."""
        return await query_log.profile(lambda: views.profile(subject_type, identifier), "api",
                                       request, subject_type, identifier,
                                       rights_api.purpose_of(purpose))

    @app.get("/api/v1/lists/{list_name}")
    @limiter.limit(ctx.settings.public_rate_limit)
    async def list_members(request: Request, list_name: str,
                           page: int = Query(1, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
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
    async def home(request: Request, q: str | None = Query(None, max_length=100),
                   type: str | None = None,
                   page: int = Query(1, ge=1, le=MAX_PAGE)) -> HTMLResponse:
        result = await views.search(q, _subject_type(type), page) if q else None
        if result is not None and q:
            await query_log.search(result, "web", request, q)
        return _page(request, "search.html", q=q or "", result=result,
                     lists=ctx.catalogue.lists)

    @app.get("/subjects/{subject_type}/{identifier}", response_class=HTMLResponse,
             include_in_schema=False)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def subject_page(request: Request, subject_type: str,
                           identifier: str) -> HTMLResponse:
        data = await query_log.profile(lambda: views.profile(subject_type, identifier), "web",
                                       request, subject_type, identifier, None)
        # The objection form needs the full number, which the visitor typed into this path;
        # the page shows it masked.
        return _page(request, "subject.html", p=data, path_id=normalize_identifier(identifier),
                     objection_url=ctx.settings.objection_public_url)

    @app.get("/lists/{list_name}", response_class=HTMLResponse, include_in_schema=False)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def list_page(request: Request, list_name: str,
                        page: int = Query(1, ge=1, le=MAX_PAGE)) -> HTMLResponse:
        return _page(request, "list.html", data=await views.list_members(list_name, page))

    return app


def _page(request: Request, template: str, status_code: int = 200,
          headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    catalogue = request.app.state.catalogue
    return TEMPLATES.TemplateResponse(request, template, {
        "list_names": {k: v.name for k, v in catalogue.lists.items()},
        "departments": {k: v.name for k, v in catalogue.departments.items()}, **context},
        status_code=status_code, headers=headers)


# What a person reads on an error page (zh-CN), by the problem's code; the API's problem
# JSON stays as it is.
_WEB_MESSAGES = {
    "not_found": "未找到该信用主体的公开信用信息。该主体可能不存在，或没有依法可以公示的信息。",
    "unknown_list": "没有这个名单。",
    "bad_cursor": "查询条件有误。",
    "validation": "查询条件有误，请检查后重试。",
    "rate_limited": "查询过于频繁，请稍后再试。",
    "http_404": "页面不存在。",
}
_WEB_FIELDS = {"q": "查询内容", "type": "主体类型", "page": "页码"}


def _answer_web_pages_in_html(app: FastAPI) -> None:
    """Errors on the web pages are pages (the same for every cause of one code, so that an
    unknown subject and a hidden one read alike); under /api/ they stay problem JSON."""

    def answer(request: Request, status: int, code: str, title: str, detail: str | None = None,
               errors: list[dict[str, str]] | None = None,
               headers: dict[str, str] | None = None) -> Response:
        if request.url.path.startswith("/api/"):
            return problem_response(status, code, title, detail, errors, headers)
        fields = sorted({_WEB_FIELDS.get(e["field"], e["field"]) for e in errors or []})
        return _page(request, "error.html", status_code=status, headers=headers,
                     status=status, message=_WEB_MESSAGES.get(code, "请求未能完成。"),
                     fields=fields)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return answer(request, exc.status, exc.code, exc.title, exc.detail, exc.errors,
                      exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return answer(request, 422, "validation", "The request is not valid",
                      errors=field_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return answer(request, exc.status_code, f"http_{exc.status_code}", str(exc.detail),
                      headers=getattr(exc, "headers", None))

    @app.exception_handler(RateLimitExceeded)
    async def _limited(request: Request, exc: RateLimitExceeded) -> Response:
        return answer(request, 429, "rate_limited", "Too many requests", str(exc.detail))


def _subject_type(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in SUBJECT_TYPES:
        raise Problem(422, "validation", "Unknown subject type",
                      errors=[{"field": "type", "code": "not_allowed",
                               "message": f"one of {', '.join(SUBJECT_TYPES)}"}])
    return value


def no_public_subject() -> Problem:
    """The one answer for a subject that is unknown, hidden, past its disclosure period, a
    minor's, or not even a valid type or code: nothing in it may tell them apart."""
    return Problem(404, "not_found", "No public credit information for this subject")


class PublicViews:
    """The public answers, shared by the JSON API and the web pages."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.catalogue = ctx.catalogue

    async def search(self, q: str, subject_type: str | None, page: int) -> dict[str, Any]:
        text = q.strip()
        bad = domain.control_characters(text)
        if bad:
            raise Problem(422, "validation", "The request is not valid", errors=[
                {"field": "q", "code": "control_character",
                 "message": f"control characters are not allowed: {', '.join(bad)}"}])
        norm = domain.normalize_name(text)
        today = clock.today()
        async with self.ctx.pool.acquire() as conn:
            rows = await store.search_subjects(
                conn, norm, domain.query_grams(norm), normalize_identifier(text), subject_type,
                today, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
            # The stored date already filtered; the full rule, checked again here, also
            # covers rows stored before that date existed (the migration's estimate).
            found: list[SubjectChanged] = []
            for r in rows[:PAGE_SIZE]:
                snapshot = SubjectChanged.model_validate(r["snapshot"])
                if domain.is_discoverable(self.catalogue, snapshot, today):
                    found.append(snapshot)
            lists = await store.active_entries(conn, [s.subject.key for s in found])
        results = [{**domain.public_subject(s.subject),
                    "lists": [e.list for e in lists.get(s.subject.key, [])]} for s in found]
        more = len(rows) > PAGE_SIZE and page < MAX_PAGE
        return {"query": q, "page": page, "results": results,
                "next_page": page + 1 if more else None}

    async def profile(self, subject_type: str, identifier: str) -> dict[str, Any]:
        code = normalize_identifier(identifier)
        if subject_type not in SUBJECT_TYPES or code is None:
            raise no_public_subject()
        key = subject_key(subject_type, code)
        async with self.ctx.pool.acquire() as conn:
            snapshot = await store.subject(conn, key)
            entries = (await store.active_entries(conn, [key])).get(key, [])
        today = clock.today()
        if snapshot is None or not domain.is_discoverable(self.catalogue, snapshot, today):
            raise no_public_subject()
        return {
            "subject": domain.public_subject(snapshot.subject),
            "records": domain.public_records(self.catalogue, snapshot.subject,
                                             snapshot.records, today),
            "lists": [self._membership(e) for e in entries],
            "grade": snapshot.grade.model_dump(),
            "commitments": rights.public_commitments(self.catalogue, snapshot.records),
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
                "next_page": page + 1 if page * PAGE_SIZE < total and page < MAX_PAGE
                else None}

    async def list_changes(self, list_name: str, since: str | None) -> dict[str, Any]:
        self._list(list_name)
        try:
            after = domain.decode_cursor(since)
        except ValueError as exc:
            raise Problem(400, "bad_cursor", "`since` is not a cursor this API gave",
                          errors=[{"field": "since", "code": "bad_cursor",
                                   "message": "use the `next` value of a previous answer"}]
                          ) from exc
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
        return {"list": list_name, "changes": changes, "next": domain.encode_cursor(last)}

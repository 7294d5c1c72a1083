"""The public query site and API (信用珠海网): no authentication, rate-limited, only what the
catalogue marks public and only within its disclosure period, individuals masked."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from slowapi.errors import RateLimitExceeded
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.publisher import (
    agencies,
    domain,
    government,
    lifecycle,
    me_commitments,
    report_api,
    responses,
    rights_api,
    store,
    whatif,
)
from services.publisher.contracts import FeedbackRequest
from shared import clock, credentials, guard
from shared.context import ServiceContext
from shared.contract import (
    SUBJECT_TYPES,
    NoticeFeedback,
    SubjectChanged,
    SubjectRef,
    subject_key,
)
from shared.http import (
    ANSWERED_AS_RETURNED,
    DATABASE_UNAVAILABLE,
    RETRY_AFTER_SECONDS,
    Problem,
    base_app,
    field_errors,
    problem_response,
    unavailable,
)
from shared.identifiers import normalize_identifier

PAGE_SIZE = 20
# A refused query is shown back in the form, cut to what the field accepts.
MAX_QUERY_ECHO = 100
# Every paged route stops here (10,000 rows at 20 a page): deeper pages only make the
# database skip rows. A whole list is read through its changes feed instead.
MAX_PAGE = 500


TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
TEMPLATES.env.globals["zhuhai"] = clock.ZHUHAI
TEMPLATES.env.globals["subject_type_names"] = {
    "enterprise": "企业", "individual": "个人", "institution": "事业单位", "social_org": "社会组织",
    "government": "机关"}
TEMPLATES.env.globals["commitment_kind_names"] = {
    "enterprise": "企业守信公开承诺", "key_person": "重点涉信人群守信公开承诺",
    "institution": "事业单位守信公开承诺", "social_org": "社会组织守信公开承诺",
    "government_service": "政务服务承诺", "conduct": "守信自律承诺", "repair": "信用修复承诺"}


def create_app(ctx: ServiceContext) -> FastAPI:
    app = base_app("信用珠海 Xinyong public API",
                   "Public credit information of Zhuhai (CONTRACT.md, public query site). "
                   "Subject types: enterprise, individual, institution, social_org, and "
                   "government (机关: unified social credit code category 11, and 13 群团组织 "
                   "as an addition to CONTRACT.md; docs/decisions.md, 'Government "
                   "integrity').")
    limiter = guard.public_limiter(ctx.settings.trusted_proxies)
    app.state.limiter = limiter
    app.state.catalogue = ctx.catalogue
    _answer_web_pages_in_html(app)

    views = PublicViews(ctx)
    # Every public profile view is logged for the subject (/api/v1/me/queries).
    query_log = rights_api.query_log_of(ctx)
    rights_api.install(app, ctx, _page)

    @app.get("/api/v1/subjects", response_model=responses.SearchAnswer, **ANSWERED_AS_RETURNED)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def search(request: Request, q: str = Query(min_length=1, max_length=100),
                     type: str | None = None, page: int = Query(1, ge=1, le=MAX_PAGE)
                     ) -> dict[str, Any]:
        result = await views.search(q, _subject_type(type), page)
        await query_log.search(result, "api", request, q)
        return result

    @app.get("/api/v1/subjects/{subject_type}/{identifier}",
             response_model=responses.Profile, **ANSWERED_AS_RETURNED)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def profile(request: Request, subject_type: str, identifier: str,
                      purpose: str | None = Query(None, max_length=200),
                      as_of: str | None = None) -> dict[str, Any]:
        """`purpose` (optional): why the caller looks, shown to the subject with the view.
        `as_of` (YYYY-MM-DD): the profile as the public saw it at the end of that day (China
        Standard Time), less what has stopped being shown since (docs/decisions.md)."""
        at = rights_api.as_of_moment(as_of)
        return await query_log.profile(lambda: views.profile(subject_type, identifier, at),
                                       "api", request, subject_type, identifier,
                                       rights_api.purpose_of(purpose))

    @app.get("/api/v1/lists/{list_name}",
             response_model=responses.ListMembers, **ANSWERED_AS_RETURNED)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def list_members(request: Request, list_name: str,
                           page: int = Query(1, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
        return await views.list_members(list_name, page)

    @app.get("/api/v1/lists/{list_name}/changes",
             response_model=responses.ListChanges, **ANSWERED_AS_RETURNED)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def list_changes(request: Request, list_name: str,
                           since: str | None = None) -> dict[str, Any]:
        return await views.list_changes(list_name, since)

    agency_of = credentials.bearer(ctx.pool, "agency")

    @app.post("/api/v1/notices/{notice_id}/feedback",
              response_model=responses.FeedbackTaken, **ANSWERED_AS_RETURNED)
    async def notice_feedback(notice_id: str, answer: FeedbackRequest,
                              agency: str = Depends(agency_of)) -> dict[str, str]:
        """An agency reports what it did with one of its notices (closed loop)."""
        try:
            feedback = NoticeFeedback(notice_id=str(uuid.UUID(notice_id)),
                                      status=answer.status, note=answer.note)
        except ValueError as exc:
            raise Problem(404, "not_found", "No notice with this id") from exc
        async with ctx.pool.acquire() as conn, conn.transaction():
            [(about, outcome)] = await store.answer_notices(conn, [(agency, feedback)], "http")
            current = await conn.fetchval(
                "SELECT feedback_status FROM notices WHERE notice_id = $1::uuid",
                feedback.notice_id) if outcome == "refused" else None
        if about is None:
            raise Problem(404, "not_found", f"{agency} has no notice {notice_id}")
        if outcome == "refused":
            # Feedback only moves forward (received -> applied | not_applicable); the answer
            # is kept in the notice's feedback history all the same.
            raise Problem(409, "feedback_final",
                          f"The notice's feedback is already {current}",
                          detail=f"{current} is final; {feedback.status} is not taken",
                          extensions={"feedback_status": current})
        return {"notice_id": feedback.notice_id, "status": feedback.status}

    agencies.add_routes(app, ctx)
    whatif.add_routes(app, ctx)
    government.add_routes(app, ctx, limiter, _page)
    me_commitments.add_routes(app, ctx)
    report_api.install(app, ctx, limiter, views.profile, query_log, _page)

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
    async def subject_page(request: Request, subject_type: str, identifier: str,
                           as_of: str | None = None) -> HTMLResponse:
        at = rights_api.as_of_moment(as_of or None)  # the form's empty date field: today
        data = await query_log.profile(lambda: views.profile(subject_type, identifier, at),
                                       "web", request, subject_type, identifier, None)
        # The objection form needs the full number, which the visitor typed into this path;
        # the page shows it masked.
        return _page(request, "subject.html", p=data, path_id=normalize_identifier(identifier),
                     objection_url=ctx.settings.objection_public_url,
                     as_of=as_of or "", today=clock.today().isoformat())

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
        "list_kinds": {k: v.kind for k, v in catalogue.lists.items()},
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
    "busy": "查询的人较多，请稍后再试。",
    "query_timeout": "查询超时，请稍后再试，或缩小查询范围。",
    "database_unavailable": "服务暂时不可用，请稍后再试。",
    "http_404": "页面不存在。",
}
_WEB_FIELDS = {"q": "查询内容", "type": "主体类型", "page": "页码", "as_of": "查询日期",
               "code": "验证码", "purpose": "查询用途", "subject.id": "信用主体代码",
               "subject.type": "主体类型"}
# What the search form says under its field, by the error's code.
_QUERY_MESSAGES = {
    "string_too_long": "查询内容不能超过100个字，请缩短后重试。",
    "string_too_short": "请输入查询内容。",
    "control_character": "查询内容含有不可见的控制字符，请删除后重试。",
}


def _answer_web_pages_in_html(app: FastAPI) -> None:
    """Errors on the web pages are pages (the same for every cause of one code, so that an
    unknown subject and a hidden one read alike); under /api/ they stay problem JSON."""

    def answer(request: Request, status: int, code: str, title: str, detail: str | None = None,
               errors: list[dict[str, str]] | None = None,
               headers: dict[str, str] | None = None,
               extensions: dict[str, Any] | None = None) -> Response:
        if request.url.path.startswith("/api/"):
            return problem_response(status, code, title, detail, errors, headers, extensions)
        query_errors = [e for e in errors or [] if e["field"] == "q"]
        if request.url.path == "/" and query_errors:
            # The search form again, the error beside its field (WCAG 2.1 3.3.1).
            return _page(request, "search.html", status_code=status, headers=headers,
                         q="".join(c for c in request.query_params.get("q", "")[:MAX_QUERY_ECHO]
                                   if c.isprintable()), result=None,
                         lists=request.app.state.catalogue.lists,
                         q_error=_QUERY_MESSAGES.get(query_errors[0]["code"],
                                                     _WEB_MESSAGES["validation"]))
        fields = sorted({_WEB_FIELDS.get(e["field"], e["field"]) for e in errors or []})
        return _page(request, "error.html", status_code=status, headers=headers,
                     status=status, message=_WEB_MESSAGES.get(code, "请求未能完成。"),
                     fields=fields)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return answer(request, exc.status, exc.code, exc.title, exc.detail, exc.errors,
                      exc.headers, exc.extensions)

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
        # Retry-After: the window of the limit that was hit (a report's is stricter).
        limit = getattr(getattr(exc, "limit", None), "limit", None)
        retry = str(limit.get_expiry()) if limit is not None else str(RETRY_AFTER_SECONDS)
        return answer(request, 429, "rate_limited", "Too many requests", str(exc.detail),
                      headers={"Retry-After": retry})

    for kind in (asyncpg.QueryCanceledError, *DATABASE_UNAVAILABLE):
        @app.exception_handler(kind)
        async def _unavailable(request: Request, exc: Exception) -> Response:
            p = unavailable(exc)
            return answer(request, p.status, p.code, p.title, p.detail, headers=p.headers)


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


# How long the gram statistics (domain.GramStatistics) and a list's size are kept before
# they are read again: both move slowly, and reading them is not free.
STATISTICS_SECONDS = 300.0
LIST_SIZE_SECONDS = 60.0


class PublicViews:
    """The public answers, shared by the JSON API and the web pages."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.catalogue = ctx.catalogue
        self._searches = asyncio.Semaphore(ctx.settings.public_search_concurrency)
        self._statistics = domain.GramStatistics()
        self._statistics_read = -STATISTICS_SECONDS
        self._statistics_lock = asyncio.Lock()
        self._list_sizes: dict[str, tuple[float, int]] = {}

    @contextlib.asynccontextmanager
    async def _search_turn(self) -> AsyncIterator[None]:
        """A turn among the searches of this process (`public_search_concurrency`), waited
        for at most `public_search_wait_ms`: beyond, 503 with Retry-After, so that searches
        never hold every connection and profiles are answered whatever they do."""
        try:
            await asyncio.wait_for(self._searches.acquire(),
                                   self.ctx.settings.public_search_wait_ms / 1000)
        except TimeoutError as exc:
            raise Problem(503, "busy", "Too many searches at once",
                          "Try again in a moment.",
                          headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from exc
        try:
            yield
        finally:
            self._searches.release()

    async def _gram_statistics(self, conn: asyncpg.Connection) -> domain.GramStatistics:
        if time.monotonic() - self._statistics_read >= STATISTICS_SECONDS:
            async with self._statistics_lock:
                if time.monotonic() - self._statistics_read >= STATISTICS_SECONDS:
                    self._statistics = await store.gram_statistics(conn)
                    self._statistics_read = time.monotonic()
        return self._statistics

    async def search(self, q: str, subject_type: str | None, page: int) -> dict[str, Any]:
        text = q.strip()
        bad = domain.control_characters(text)
        if bad:
            raise Problem(422, "validation", "The request is not valid", errors=[
                {"field": "q", "code": "control_character",
                 "message": f"control characters are not allowed: {', '.join(bad)}"}])
        norm = domain.normalize_name(text)
        grams = domain.query_grams(norm)
        code = normalize_identifier(text)
        today = clock.today()
        offset = (page - 1) * PAGE_SIZE
        rows: list[asyncpg.Record] = []
        if grams or code is not None:
            async with self._search_turn(), self.ctx.pool.acquire() as conn:
                stats = await self._gram_statistics(conn)
                # One row more than a page says whether another page follows.
                if domain.search_in_fixed_order(stats, grams, subject_type,
                                                offset + PAGE_SIZE + 1):
                    rows = await store.search_in_order(conn, norm, code, subject_type, today,
                                                       PAGE_SIZE + 1, offset)
                else:
                    rows = await store.search_ranked(conn, norm, grams, code, subject_type,
                                                     today, PAGE_SIZE + 1, offset)
        results = [{**domain.public_subject(SubjectRef(type=r["type"], id=r["id"],
                                                       name=r["name"])),
                    "lists": list(r["lists"])}
                   for r in rows[:PAGE_SIZE] if self._still_discoverable(r, today)]
        more = len(rows) > PAGE_SIZE and page < MAX_PAGE
        return {"query": q, "page": page, "results": results,
                "next_page": page + 1 if more else None}

    def _still_discoverable(self, row: asyncpg.Record, today: date) -> bool:
        """The stored date already filtered; a person's hit is checked again against the full
        rule with the lists the person is on, which also covers rows stored before that date
        existed (the migration's estimate). An organization can always be found."""
        if row["person_snapshot"] is None:
            return True
        snapshot = SubjectChanged.model_validate_json(row["person_snapshot"])
        return domain.is_discoverable(self.catalogue, snapshot, today, set(row["lists"]))

    async def profile(self, subject_type: str, identifier: str,
                      at: datetime | None = None) -> dict[str, Any]:
        """The public profile at `at` (None: now), the one function every public product
        answers with (the page, the API, `as_of`, the credit report). Live, it reads today's
        snapshot; in the past, the history the publisher stored (never Kafka)."""
        code = normalize_identifier(identifier)
        if subject_type not in SUBJECT_TYPES or code is None:
            raise no_public_subject()
        key = subject_key(subject_type, code)
        today = clock.today()
        if at is None:
            async with self.ctx.pool.acquire() as conn:
                found = await store.profile(conn, key)
            if found is None:
                raise no_public_subject()
            current = SubjectChanged.model_validate_json(found[0])
            shown = domain.public_profile(self.catalogue, current, found[1], today, current,
                                          found[1], today)
            if shown is None:
                raise no_public_subject()
            return shown
        async with self.ctx.pool.acquire() as conn:
            past = await store.profile_at(conn, key, at)
        if past.past is None or past.current is None:
            raise no_public_subject()
        day = at.astimezone(clock.ZHUHAI).date()
        shown = domain.public_profile(
            self.catalogue, SubjectChanged.model_validate_json(past.past), past.past_entries,
            day, SubjectChanged.model_validate_json(past.current), past.current_entries, today)
        if shown is None:
            raise no_public_subject()
        return {"as_of": day.isoformat(), "history_from": past.history_from, **shown}

    def _list(self, list_name: str) -> Any:
        if list_name not in self.catalogue.lists:
            raise Problem(404, "unknown_list", f"No list named {list_name}")
        return self.catalogue.lists[list_name]

    async def _list_size(self, conn: asyncpg.Connection, list_name: str) -> int:
        """The number of a list's active members, counted at most once a minute per process:
        a page shows it, and counting the whole list on every page cost more than the page."""
        counted = self._list_sizes.get(list_name)
        if counted is None or time.monotonic() - counted[0] >= LIST_SIZE_SECONDS:
            counted = (time.monotonic(), await store.list_size(conn, list_name))
            self._list_sizes[list_name] = counted
        return counted[1]

    async def list_members(self, list_name: str, page: int) -> dict[str, Any]:
        lst = self._list(list_name)
        async with self.ctx.pool.acquire() as conn:
            rows = await store.list_members(conn, list_name, PAGE_SIZE + 1,
                                            (page - 1) * PAGE_SIZE)
            total = await self._list_size(conn, list_name)
        members = [{"subject": domain.public_subject(
                        SubjectRef(type=r["type"], id=r["id"], name=r["name"])),
                    "since": r["since"], "until": r["until"]} for r in rows[:PAGE_SIZE]]
        return {"list": list_name, "name": lst.name, "kind": lst.kind, "basis": lst.basis,
                "exit": lst.exit, "total": total, "page": page, "members": members,
                "next_page": page + 1 if len(rows) > PAGE_SIZE and page < MAX_PAGE
                else None}

    async def list_changes(self, list_name: str, since: str | None) -> dict[str, Any]:
        self._list(list_name)
        try:
            cursor = domain.read_cursor(since)
        except ValueError as exc:
            raise Problem(400, "bad_cursor", "`since` is not a cursor this API gave",
                          errors=[{"field": "since", "code": "bad_cursor",
                                   "message": "use the `next` value of a previous answer"}]
                          ) from exc
        window = self.ctx.settings.list_changes_identity_days
        now, today = clock.now(), clock.today()
        if domain.cursor_expired(cursor, now, window):
            raise Problem(410, "cursor_expired",
                          f"`since` is older than {window} days: read the list again and "
                          "start the feed over without `since`")
        async with self.ctx.pool.acquire() as conn:
            rows = await lifecycle.feed(conn, list_name, cursor.seq, 500)
        changes = []
        for r in rows:
            body = r["body"]
            named = body.get("subject") and domain.feed_names_subject(
                r["status"], r["until"], today, window)
            changes.append({"op": r["op"], "entry_id": r["entry_id"], "at": r["at"],
                            "since": body["since"], "until": body["until"],
                            "subject": domain.public_subject(
                                SubjectRef.model_validate(body["subject"])) if named else None})
        last = rows[-1]["seq"] if rows else cursor.seq
        return {"list": list_name, "changes": changes, "next": domain.encode_cursor(last, now)}

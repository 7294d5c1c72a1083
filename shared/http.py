"""What every service's HTTP API has: RFC 9457 problem responses, health, and request
metrics per route."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from limits.storage import MemoryStorage
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics

PROBLEM = "application/problem+json"


class Problem(Exception):
    """An error answered as application/problem+json with a machine-readable `code`."""

    def __init__(self, status: int, code: str, title: str, detail: str | None = None,
                 errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None,
                 extensions: dict[str, Any] | None = None) -> None:
        super().__init__(title)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.errors, self.headers = errors, headers
        # RFC 9457 extension members: more fields of the answer (e.g. the objection already
        # open), beside the standard ones.
        self.extensions = extensions or {}


class SweptMemoryStorage(MemoryStorage):
    """limits' in-process storage, its expired keys swept at most once a second by the
    request that finds them due. The library's own sweeps run on a new thread 10 ms after
    each request that finds none running: under load about a hundred threads a second, each
    taking the interpreter lock from the event loop (13 % of the publisher's samples at 500
    requests/s, and tail latency; docs/performance.md). A fixed window checks its own
    expiry when read (`get`), so the sweep only frees the keys of clients gone quiet."""

    STORAGE_SCHEME = ["swept-memory"]  # noqa: RUF012  (as the base class declares it)
    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 **options: str) -> None:
        self._swept = time.monotonic()
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the per-request timer
        now = time.monotonic()
        if now - self._swept >= self.SWEEP_SECONDS:
            self._swept = now
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class Answer(BaseModel):
    """A JSON answer's model, for the OpenAPI and to check what a route returns. More fields
    may be added (CONTRACT.md: 'field lists are the minimum'), so a route's answer keeps
    every field it has; a route that returns a dict sets `response_model_exclude_unset`
    (`ANSWERED_AS_RETURNED`) so that a field it leaves out is not added as null."""

    model_config = ConfigDict(extra="allow")


# For a route that returns a dict: its answer has exactly the fields the dict has.
ANSWERED_AS_RETURNED: dict[str, Any] = {"response_model_exclude_unset": True}


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header ('' when there is none)."""
    return (authorization or "").removeprefix("Bearer ").strip()


def problem_response(status: int, code: str, title: str, detail: str | None = None,
                     errors: list[dict[str, str]] | None = None,
                     headers: dict[str, str] | None = None,
                     extensions: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {**(extensions or {}),
                            "type": "about:blank", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as {field, code, message}, the field as a dotted path in the body."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        out.append({"field": ".".join(loc) or "body", "code": str(err.get("type", "invalid")),
                    "message": str(err.get("msg", ""))})
    return out


# Seconds a client is asked to wait when the database cannot answer now.
RETRY_AFTER_SECONDS = 1

# The database is away or refuses connections: a moment's state, not the request's fault.
DATABASE_UNAVAILABLE = (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                        asyncpg.TooManyConnectionsError, ConnectionError)


def unavailable(exc: Exception) -> Problem:
    """503 with Retry-After for a statement cancelled past the HTTP pool's timeout
    (`http_statement_timeout_ms`) or a database that cannot be reached: the request may
    succeed a moment later, and a 500 would call it a bug."""
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if isinstance(exc, asyncpg.QueryCanceledError):
        return Problem(503, "query_timeout", "The query took too long and was cancelled",
                       "Try again in a moment, or narrow the query.", headers=retry)
    return Problem(503, "database_unavailable", "The database cannot answer now",
                   headers=retry)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(asyncpg.QueryCanceledError)
    async def _cancelled(_: Request, exc: asyncpg.QueryCanceledError) -> JSONResponse:
        return _answer(unavailable(exc))

    for kind in DATABASE_UNAVAILABLE:
        @app.exception_handler(kind)
        async def _away(_: Request, exc: Exception) -> JSONResponse:
            return _answer(unavailable(exc))

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.title, exc.detail, exc.errors,
                                exc.headers, exc.extensions)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, "validation", "The request is not valid",
                                errors=field_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, f"http_{exc.status_code}", str(exc.detail),
                                headers=getattr(exc, "headers", None))


def _answer(p: Problem) -> JSONResponse:
    return problem_response(p.status, p.code, p.title, p.detail, p.errors, p.headers,
                            p.extensions)


# RFC 9457 problem details as every error is answered (CONTRACT.md, "Errors").
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "machine-readable reason"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "code", "message"],
            "properties": {"field": {"type": "string"}, "code": {"type": "string"},
                           "message": {"type": "string"}}}},
    },
    "additionalProperties": True,
}


def _document_problems(app: FastAPI) -> None:
    """Every error of every route, in the OpenAPI as it is answered: application/problem+json
    (FastAPI would document its own 422 body as application/json)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = \
            PROBLEM_SCHEMA
        problem = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status in list(responses):
                    if status[:1] in ("4", "5"):
                        del responses[status]
                responses["4XX"] = {"description": "The request cannot be answered as asked",
                                    "content": problem}
                responses["5XX"] = {"description": "The service cannot answer now",
                                    "content": problem}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def base_app(title: str, description: str) -> FastAPI:
    app = FastAPI(title=title, description=description, version="1.0")
    install_problem_handlers(app)
    _document_problems(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """ASGI middleware: requests, their status and their latency per route *template*
    (`/api/v1/subjects/{subject_type}/{subject_id}`), never the raw path, which would name
    subjects and grow without bound. A path that matches no route counts as `unmatched`."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # An exception that escapes the app becomes a 500 outside this middleware.
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = route_template(scope)
            metrics.HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(self.service, method, route).observe(
                time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The template of the route the router matched (it leaves it in the scope)."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"

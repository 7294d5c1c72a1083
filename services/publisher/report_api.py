"""Credit reports (信用报告) on the public API (CONTRACT.md, "Public query site and API"):
`POST /api/v1/reports`, `GET /api/v1/reports/<report_id>.pdf`,
`GET /api/v1/reports/verify/<code>` and the page `/reports/verify` where a clerk types a code.

A report prints what the public profile shows (`api.PublicViews.profile`: the one disclosure
and masking code); a subject with its own bearer token may always take its own, a clean one
when nothing about it is public. Every report is logged for the subject (query log, channel
`report`, with its purpose)."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from slowapi import Limiter

from services.publisher import domain, report, report_store, responses, rights_store
from services.publisher.report_render import Renderer, Saturated
from services.publisher.rights_api import QueryLog
from shared import clock, credentials, guard, metrics, sweeps
from shared.context import ServiceContext
from shared.contract import SUBJECT_TYPES, SubjectChanged, SubjectRef, subject_key
from shared.http import ANSWERED_AS_RETURNED, RETRY_AFTER_SECONDS, Problem
from shared.identifiers import check_resident_id, check_uscc, normalize_identifier

log = logging.getLogger(__name__)


class ReportSubject(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: str = Field(max_length=20)
    id: str = Field(min_length=1, max_length=40)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in SUBJECT_TYPES:
            raise ValueError(f"one of {', '.join(SUBJECT_TYPES)}")
        return value

    @field_validator("id")
    @classmethod
    def _valid_code(cls, value: str) -> str:
        code = normalize_identifier(value)
        if code is None:
            raise ValueError("a unified social credit code or a resident identity number "
                             "whose check character is right")
        return code


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    subject: ReportSubject
    purpose: str = Field(min_length=1, max_length=report.PURPOSE_MAX_CHARS,
                         description="Why the report is taken; shown to the subject")

    @field_validator("purpose")
    @classmethod
    def _printable(cls, value: str) -> str:
        bad = domain.control_characters(value)
        if bad:
            raise ValueError(f"control characters are not allowed: {', '.join(bad)}")
        return value


NOT_VERIFIED = ("未找到与该验证码对应的信用报告。请核对验证码；"
                "报告超过保存期限或依法删除后也无法验证。")


# What the subject page's report form says under its purpose field, by the error's code.
PURPOSE_MESSAGES = {
    "string_too_short": "请填写查询用途。",
    "string_too_long": f"查询用途不能超过{report.PURPOSE_MAX_CHARS}个字，请缩短后重试。",
    "value_error": "查询用途含有不可见的控制字符，请删除后重试。",
    "": "查询用途有误，请检查后重试。",
}


def _busy(reason: str) -> Problem:
    return Problem(503, "busy", "Too many reports are being rendered", reason,
                   headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _no_report() -> Problem:
    """The one answer for a report id or code that is malformed, unknown, expired or erased."""
    return Problem(404, "not_found", "No report with this id or code")


def install(app: FastAPI, ctx: ServiceContext, limiter: Limiter,
            profile: Callable[[str, str], Awaitable[dict[str, Any]]], query_log: QueryLog,
            render_page: Callable[..., HTMLResponse]) -> Renderer:
    settings, catalogue = ctx.settings, ctx.catalogue
    renderer = Renderer(settings.report_workers, settings.report_queue_max,
                        settings.report_render_timeout_s)
    app.router.on_startup.append(renderer.start)
    app.router.on_shutdown.append(renderer.close)
    subject_token = credentials.caller(ctx.pool, "subject")
    # The reports' stricter limit counts the client behind the front door, not the door.
    client_of = guard.client_of(settings.trusted_proxies)

    async def own(authorization: str | None, key: str) -> bool:
        """A subject's valid token naming this subject (a token that is not valid: 401)."""
        if authorization is None:
            return False
        caller = await subject_token(authorization)
        secret = credentials.subject_key_secret(settings)
        if not secret or credentials.subject_party(secret, key) != caller.party:
            return False
        # The token has shown whose it is: /api/v1/me/queries can now find this subject's
        # log even if Xinyong holds nothing else about it (the timer maps known ones only).
        async with ctx.pool.acquire() as conn:
            await rights_store.save_parties(conn, [(caller.party, key)],
                                            credentials.key_id(secret))
        return True

    async def clean(key: str, subject: ReportSubject) -> dict[str, Any]:
        """A subject's own report when nothing about it is public: who it is, no entries."""
        async with ctx.pool.acquire() as conn:
            found = await conn.fetchval(
                "SELECT snapshot::text FROM subjects WHERE subject_key = $1", key)
        ref = (SubjectChanged.model_validate_json(found).subject if found
               else SubjectRef(type=subject.type, id=subject.id, name=None))
        return {"subject": domain.public_subject(ref), "records": [], "lists": [],
                "grade": None, "commitments": []}

    @app.post("/api/v1/reports", status_code=201, response_model=responses.ReportTaken,
              **ANSWERED_AS_RETURNED, responses={
        404: {"description": "unknown or hidden subject (without the subject's own token)"},
        429: {"description": "too many reports from this client (Retry-After)"},
        503: {"description": "the renderer is saturated (Retry-After)"}})
    @limiter.limit(settings.report_rate_limit, key_func=client_of)
    async def take_report(request: Request, body: ReportRequest,
                          authorization: Annotated[str | None, Header()] = None
                          ) -> dict[str, Any]:
        """A credit report (信用报告) of what the public profile shows today; with the
        subject's own bearer token, always (a clean report when nothing is public)."""
        answer, _ = await issue(request, body, authorization)
        return answer

    @app.post("/subjects/{subject_type}/{identifier}", response_class=HTMLResponse,
              include_in_schema=False)
    @limiter.limit(settings.report_rate_limit, key_func=client_of)
    async def take_report_page(request: Request, subject_type: str,
                               identifier: str) -> HTMLResponse:
        """The subject page's form, posted back to the page's own address (no JavaScript,
        and the full identity number the visitor typed stays out of the page): the public
        rules apply."""
        form = await request.form()
        purpose = form.get("purpose")
        purpose = purpose if isinstance(purpose, str) else ""
        try:
            body = ReportRequest.model_validate({
                "subject": {"type": subject_type, "id": identifier}, "purpose": purpose})
        except ValidationError as exc:
            errors = [{"field": ".".join(str(p) for p in e["loc"]), "code": e["type"],
                       "message": e["msg"]} for e in exc.errors()]
            if {e["field"] for e in errors} == {"purpose"}:
                # The subject page again, the error beside its field (WCAG 2.1 3.3.1).
                return await subject_page_with_error(request, subject_type, identifier,
                                                     purpose, errors[0]["code"])
            raise Problem(422, "validation", "The request is not valid",
                          errors=errors) from exc
        issued, subject = await issue(request, body, None)
        return render_page(request, "report_issued.html", issued=issued, subject=subject,
                           status_code=201)

    async def subject_page_with_error(request: Request, subject_type: str, identifier: str,
                                      purpose: str, code: str) -> HTMLResponse:
        """The subject page (its view logged as a GET of it is) with the report form's
        purpose marked invalid and what was typed kept."""
        shown = await query_log.profile(lambda: profile(subject_type, identifier), "web",
                                        request, subject_type, identifier, None)
        return render_page(request, "subject.html", status_code=422, p=shown,
                           path_id=normalize_identifier(identifier),
                           objection_url=settings.objection_public_url, as_of="",
                           today=clock.today().isoformat(),
                           purpose="".join(c for c in purpose[:report.PURPOSE_MAX_CHARS]
                                           if c.isprintable()),
                           purpose_error=PURPOSE_MESSAGES.get(code, PURPOSE_MESSAGES[""]))

    async def issue(request: Request, body: ReportRequest,
                    authorization: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The report's answer, and the subject as printed on it."""
        problems = (check_resident_id(body.subject.id, clock.today())
                    if body.subject.type == "individual"
                    else check_uscc(body.subject.id, body.subject.type, catalogue.legacy_uscc))
        if problems:
            raise Problem(422, "validation", "The subject's identifier is not valid", errors=[
                {"field": "subject.id", "code": p.code, "message": p.message}
                for p in problems])
        key = subject_key(body.subject.type, body.subject.id)
        is_own = await own(authorization, key)
        try:
            shown = await profile(body.subject.type, body.subject.id)
        except Problem as exc:
            if exc.status != 404 or not is_own:
                raise
            shown = await clean(key, body.subject)
        report_id, code, issued_at = str(uuid.uuid4()), report.new_code(), clock.now()
        async with ctx.pool.acquire() as conn:
            as_of = await report_store.data_as_of(conn, key) or issued_at
        as_of = min(as_of, issued_at)
        content = report.content(
            catalogue, shown, report_id=report_id, code=code, issued_at=issued_at,
            data_as_of=as_of, purpose=body.purpose,
            verify_url=f"{settings.public_site_url}/reports/verify?code={code}",
            objection_url=f"{settings.objection_public_url}/objections/new")
        try:
            pdf = await renderer.render(content)
        except Saturated as exc:
            raise _busy(str(exc)) from exc
        async with ctx.pool.acquire() as conn:
            await report_store.insert(conn, report_store.Issued(
                report_id=report_id, code=code, subject_key=key, subject=content["subject"],
                purpose=body.purpose, own=is_own, issued_at=issued_at, data_as_of=as_of,
                records=report.shown_records(shown), sha256=hashlib.sha256(pdf).hexdigest(),
                pdf=pdf))
        await query_log.record(key, "report", request, body.purpose)
        return ({"report_id": report_id, "verification_code": code,
                 "url": f"/api/v1/reports/{report_id}.pdf"}, content["subject"])

    @app.get("/api/v1/reports/verify/{code}", response_model=responses.ReportVerified,
             **ANSWERED_AS_RETURNED)
    @limiter.limit(settings.public_rate_limit)
    async def verify(request: Request, code: str) -> dict[str, Any]:
        """Is this a report Xinyong issued: its id, subject (as printed), time and the sha256
        of its PDF, which the file in hand must match byte for byte."""
        return await _verified(code)

    async def _verified(code: str) -> dict[str, Any]:
        plain = report.normalize_code(code)
        if plain is None:
            raise _no_report()
        async with ctx.pool.acquire() as conn:
            row = await report_store.by_code(conn, plain)
        if row is None:
            raise _no_report()
        return {"valid": True, "report_id": row["report_id"],
                "subject": json.loads(row["subject"]), "issued_at": row["issued_at"],
                "sha256": row["sha256"]}

    @app.get("/api/v1/reports/{report_file}", response_class=Response, responses={
        200: {"content": {"application/pdf": {}}, "description": "the report's PDF"}})
    @limiter.limit(settings.public_rate_limit)
    async def report_pdf(request: Request, report_file: str) -> Response:
        """The report's PDF exactly as issued (its sha256 is verify's)."""
        name, _, suffix = report_file.rpartition(".")
        try:
            report_id = uuid.UUID(name)
        except ValueError as exc:
            raise _no_report() from exc
        if suffix != "pdf":
            raise _no_report()
        async with ctx.pool.acquire() as conn:
            found = await report_store.pdf(conn, report_id)
        if found is None:
            raise _no_report()
        return Response(bytes(found), media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="xinyong-report-{report_id}.pdf"'})

    @app.get("/reports/verify", response_class=HTMLResponse, include_in_schema=False)
    @limiter.limit(settings.public_rate_limit)
    async def verify_page(request: Request,
                          code: str | None = Query(None, max_length=64)) -> HTMLResponse:
        result, error = None, None
        if code:
            try:
                result = await _verified(code)
            except Problem as exc:
                if exc.status != 404:
                    raise
                error = NOT_VERIFIED
        return render_page(request, "verify.html", code=code or "", result=result,
                           error=error, status_code=404 if error else 200)

    return renderer


async def expire_once(ctx: ServiceContext) -> int:
    """The retention sweep: reports older than `report_retention_days` are deleted (verify
    then answers 404, as for a code never issued)."""
    before = clock.now() - timedelta(days=ctx.settings.report_retention_days)
    async with ctx.pool.acquire() as conn:
        done = await report_store.expire(conn, before, ctx.settings.purge_batch)
    metrics.SWEEP_ITEMS.labels("publisher", RETENTION, "done").inc(done)
    return done


RETENTION = "report_retention"


def retention_sweep() -> sweeps.Sweep:
    return sweeps.Sweep(RETENTION, expire_once)

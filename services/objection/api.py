"""The public side of objections and repair (异议与信用修复): JSON API and zh-CN forms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Form, Header, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from services.objection import handlers, store
from services.objection.contracts import (
    AnswerRequest,
    ComplaintCreated,
    ComplaintRequest,
    ComplaintStatus,
    DecisionRequest,
    ObjectionCreated,
    ObjectionRequest,
    ObjectionStatus,
    RecordInput,
    RepairRequest,
    TimelineEvent,
)
from services.objection.responses import ComplaintAnswered, ObjectionDecided, OpenComplaints
from shared import credentials, guard
from shared.context import ServiceContext
from shared.contract import ObjectionDecision
from shared.http import ANSWERED_AS_RETURNED, Problem, base_app, bearer_token
from shared.identifiers import is_uuid

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


async def _held_with_token(ctx: ServiceContext,
                           lookup: Callable[[asyncpg.Connection, str],
                                            Awaitable[dict[str, Any] | None]],
                           item_id: str, authorization: str | None, what: str
                           ) -> dict[str, Any]:
    """The objection or complaint `item_id`, for the holder of its access token only. The
    same answer for an unknown id and a wrong token: ids cannot be probed."""
    given = bearer_token(authorization)
    found = None
    if is_uuid(item_id):
        async with ctx.pool.acquire() as conn:
            found = await lookup(conn, item_id)
    if found is None or not given or not credentials.secret_matches(given, found["token_hash"]):
        raise Problem(404, "not_found", f"No {what} with this id and token")
    return found


def create_app(ctx: ServiceContext) -> FastAPI:
    app = base_app("Xinyong objections and repair",
                   "Objections (异议) and credit repair requests (信用修复).")
    # Every body, the public forms' above all, is refused past the cap before it is read.
    app.add_middleware(guard.BodyCap, max_bytes=ctx.settings.objection_body_max_bytes)
    limits = handlers.Limits.of(ctx.settings)
    client_of = guard.client_of(ctx.settings.trusted_proxies)

    async def submit(kind: str, body: ObjectionRequest, request: Request) -> ObjectionCreated:
        async with ctx.pool.acquire() as conn:
            return await handlers.submit(conn, ctx.catalogue, limits, kind, body,
                                         client_of(request))

    @app.post("/api/v1/objections", status_code=201, response_model_exclude_none=True)
    async def create_objection(body: ObjectionRequest, request: Request) -> ObjectionCreated:
        return await submit("objection", body, request)

    @app.post("/api/v1/repairs", status_code=201, response_model_exclude_none=True,
              responses={200: {"model": ObjectionCreated,
                               "description": "The same open request: its id, no token"}})
    async def create_repair(body: RepairRequest, request: Request,
                            response: Response) -> ObjectionCreated:
        """A repair request (信用修复, NDRC Order 36): refused with every failing reason
        (`too_early` with `eligible_from`, `not_repairable` naming the item's own procedure,
        `not_published`, `commitment_missing`, `obligations_not_declared`); the same open
        request again answers 200 with its id."""
        created = await submit("repair", body, request)
        if created.access_token is None:
            response.status_code = 200
        return created

    @app.post("/api/v1/complaints", status_code=201, response_model_exclude_none=True,
              responses={200: {"model": ComplaintCreated,
                               "description": "The same open complaint: its id, no token"}})
    async def create_complaint(body: ComplaintRequest, request: Request,
                               response: Response) -> ComplaintCreated:
        """A complaint (投诉) about a record, an objection, a list entry or the system,
        answered within 30 days (征信业管理条例 art. 26); the same open complaint again
        answers 200 with its id."""
        async with ctx.pool.acquire() as conn:
            created, new = await handlers.submit_complaint(conn, ctx.catalogue, limits, body,
                                                           client_of(request))
        if not new:
            response.status_code = 200
        return created

    @app.get("/api/v1/complaints/{complaint_id}")
    async def complaint_status(complaint_id: str, authorization: Annotated[
            str | None, Header()] = None) -> ComplaintStatus:
        """With the complaint's access token (`Authorization: Bearer`): status and timeline."""
        found = await _held_with_token(ctx, store.complaint, complaint_id, authorization,
                                       "complaint")
        return _complaint_status(found)

    answerer = credentials.caller(ctx.pool, "department", "operator")

    @app.get("/api/v1/complaints", response_model=OpenComplaints, **ANSWERED_AS_RETURNED)
    async def open_complaints(status: str = Query("routed", pattern="^routed$"),
                              # Not Annotated: FastAPI reads string annotations in the module's
                              # globals, where `answerer` is not.
                              caller: credentials.Caller = Depends(answerer),  # noqa: B008
                              ) -> dict[str, Any]:
        """The open complaints the caller answers: a department's own, or (operators) those
        about the system and its parts no department owns."""
        async with ctx.pool.acquire() as conn:
            rows = await store.open_complaints(
                conn, caller.party if caller.kind == "department" else None)
        return {"complaints": [
            {**{k: v for k, v in r.items() if k != "overdue_at"},
             "overdue": r["overdue_at"] is not None} for r in rows]}

    @app.post("/api/v1/complaints/{complaint_id}/answer",
              response_model=ComplaintAnswered, **ANSWERED_AS_RETURNED)
    async def answer_complaint(complaint_id: str, body: AnswerRequest,
                               caller: credentials.Caller = Depends(answerer),  # noqa: B008
                               ) -> dict[str, str]:
        """The answer of the department the complaint was routed to, or of an operator for
        those routed to the operators."""
        try:
            async with ctx.pool.acquire() as conn, conn.transaction():
                status = await handlers.answer_complaint(conn, complaint_id, caller.kind,
                                                         caller.party, body.answer)
        except handlers.AnswerRefused as exc:
            raise Problem(404, "not_found", "No complaint of yours with this id",
                          str(exc)) from exc
        return {"complaint_id": complaint_id, "status": status}

    @app.get("/api/v1/objections/{objection_id}")
    async def status(objection_id: str,
                     authorization: Annotated[str | None, Header()] = None) -> ObjectionStatus:
        """The token goes in `Authorization: Bearer <access_token>` only: a URL with it would
        end up in logs, browser history and Referer headers."""
        found = await _held_with_token(ctx, store.with_timeline, objection_id, authorization,
                                       "objection")
        return ObjectionStatus(
            objection_id=found["objection_id"], kind=found["kind"], status=found["status"],
            due_by=found["due_by"],
            record=RecordInput(department=found["department"], record_id=found["record_id"]),
            timeline=[TimelineEvent(**e) for e in found["timeline"]])

    department_of = credentials.bearer(ctx.pool, "department")

    @app.post("/api/v1/objections/{objection_id}/decision",
              response_model=ObjectionDecided, **ANSWERED_AS_RETURNED)
    async def decide(objection_id: str, decision: DecisionRequest,
                     department: str = Depends(department_of)) -> dict[str, str]:
        """The owning department's decision (CONTRACT.md). A corrected revision is sent to
        ingest (`POST /api/v1/records`), not here."""
        if not is_uuid(objection_id):
            raise Problem(404, "not_found", "No objection with this id")
        payload = ObjectionDecision(objection_id=objection_id, decision=decision.decision,
                                    reason=decision.reason, withdraw=decision.withdraw)
        try:
            async with ctx.pool.acquire() as conn, conn.transaction():
                status = await handlers.decide(conn, department, payload, ctx.catalogue)
        except handlers.DecisionRefused as exc:
            raise Problem(404, "not_found", "No objection of this department with this id",
                          str(exc)) from exc
        return {"objection_id": objection_id, "status": status}

    version, text = max(ctx.catalogue.repair.commitment_texts.items(),
                        key=lambda kv: kv[1].effective_from)
    commitment = {"commitment_version": version, "commitment_text": text.text}

    department_options = [(code, d.name) for code, d in ctx.catalogue.departments.items()]
    blank = {"reason": "", "contact": "", "signer_name": "", "signer_role": "",
             "declaration": "", "evidence": "", "errors": [], "field_errors": {}}

    @app.get("/objections/new", response_class=HTMLResponse, include_in_schema=False)
    async def form(request: Request, type: str = "", id: str = "", department: str = "",
                   record_id: str = "", kind: str = "objection") -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, "form.html", {
            **blank, "type": type, "id": id, "department": department,
            "record_id": record_id, "kind": kind, "department_options": department_options,
            **commitment})

    @app.post("/objections/new", response_class=HTMLResponse, include_in_schema=False)
    async def form_post(request: Request, type: Annotated[str, Form()],
                        id: Annotated[str, Form()], department: Annotated[str, Form()],
                        record_id: Annotated[str, Form()], reason: Annotated[str, Form()],
                        contact: Annotated[str, Form()],
                        kind: Annotated[str, Form()] = "objection",
                        signer_name: Annotated[str, Form()] = "",
                        signer_role: Annotated[str, Form()] = "",
                        declaration: Annotated[str, Form()] = "",
                        evidence: Annotated[str, Form()] = "") -> HTMLResponse:
        # What the person typed comes back with the errors: nothing is typed twice.
        values = {"type": type, "id": id, "department": department, "record_id": record_id,
                  "kind": kind, "reason": reason, "contact": contact,
                  "signer_name": signer_name, "signer_role": signer_role,
                  "declaration": declaration, "evidence": evidence,
                  "department_options": department_options, **commitment}
        fields: dict[str, Any] = {
            "subject": {"type": type, "id": id},
            "record": {"department": department, "record_id": record_id},
            "reason": reason, "contact": contact}
        if kind == "repair":
            # A form left blank is a request without them: the answer lists what is missing.
            if signer_name.strip() or signer_role.strip():
                fields["commitment"] = {"text_version": commitment["commitment_version"],
                                        "signer_name": signer_name,
                                        "signer_role": signer_role}
            if declaration.strip():
                fields["obligations"] = {"declaration": declaration, "evidence": [
                    line.strip() for line in evidence.splitlines() if line.strip()]}
        try:
            model = RepairRequest if kind == "repair" else ObjectionRequest
            req = model.model_validate(fields)
            created = await submit("repair" if kind == "repair" else "objection", req, request)
        except ValidationError as exc:
            problems = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                        for e in exc.errors()]
            return TEMPLATES.TemplateResponse(request, "form.html", {
                **values, **form_errors(problems)}, status_code=422)
        except Problem as exc:
            problems = ([{"field": e.get("field", ""), "message": e["message"]}
                         for e in exc.errors or []]
                        or [{"field": "", "message": exc.title
                             + (f"：{exc.detail}" if exc.detail else "")}])
            return TEMPLATES.TemplateResponse(request, "form.html", {
                **values, **form_errors(problems)}, status_code=exc.status, headers=exc.headers)
        return TEMPLATES.TemplateResponse(request, "created.html", {"created": created},
                                          status_code=201)

    return app


# The form's field for each path of the request's fields (ObjectionRequest, RepairRequest):
# an error is shown beside the field the person can change. A path not here is shown in the
# summary only.
_FORM_FIELDS = {
    "kind": "kind", "subject.type": "type", "subject.id": "id", "subject": "id",
    "record.department": "department", "record.record_id": "record_id", "record": "record_id",
    "reason": "reason", "contact": "contact",
    "commitment.signer_name": "signer_name", "commitment.signer_role": "signer_role",
    "commitment": "signer_name", "obligations.evidence": "evidence",
    "obligations.declaration": "declaration", "obligations": "declaration",
}
_FORM_LABELS = {
    "kind": "申请类型", "type": "主体类型", "id": "统一社会信用代码或身份证号",
    "department": "数据提供部门", "record_id": "信息编号", "reason": "理由",
    "contact": "联系方式", "signer_name": "承诺人姓名", "signer_role": "承诺人职务",
    "declaration": "已履行法定义务的说明", "evidence": "证明材料编号",
}


def form_field(path: str) -> str | None:
    """The form field of an error's path: the longest known prefix of it."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        found = _FORM_FIELDS.get(".".join(parts[:end]))
        if found:
            return found
    return None


def form_errors(problems: list[dict[str, str]]) -> dict[str, Any]:
    """The form's errors: a summary (each linked to its field) and, per field, the messages
    shown under it and tied to it by aria-describedby."""
    summary: list[dict[str, str]] = []
    by_field: dict[str, list[str]] = {}
    for p in problems:
        name = form_field(p["field"]) if p["field"] else None
        summary.append({"field": name or "", "label": _FORM_LABELS.get(name or "", ""),
                        "message": p["message"]})
        if name:
            by_field.setdefault(name, []).append(p["message"])
    return {"errors": summary, "field_errors": by_field}


def _complaint_status(found: dict[str, Any]) -> ComplaintStatus:
    return ComplaintStatus(
        complaint_id=found["complaint_id"], status=found["status"],
        routed_to=found["department"] or "operators", due_by=found["due_by"],
        about=found["about"], answer=found["answer"],
        timeline=[TimelineEvent(**e) for e in found["timeline"]])

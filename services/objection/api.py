"""The public side of objections and repair (异议与信用修复): JSON API and zh-CN forms."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Form, Header, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from services.objection import domain, handlers, store
from services.objection.contracts import (
    DecisionRequest,
    ObjectionCreated,
    ObjectionRequest,
    ObjectionStatus,
    RecordInput,
    TimelineEvent,
)
from shared import credentials
from shared.context import ServiceContext
from shared.contract import ObjectionDecision
from shared.http import Problem, base_app, bearer_token

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def create_app(ctx: ServiceContext) -> FastAPI:
    app = base_app("Xinyong objections and repair",
                   "Objections (异议) and credit repair requests (信用修复).")

    async def submit(kind: str, request: ObjectionRequest) -> ObjectionCreated:
        async with ctx.pool.acquire() as conn, conn.transaction():
            return await handlers.submit(conn, ctx.catalogue, kind, request)

    @app.post("/api/v1/objections", status_code=201)
    async def create_objection(request: ObjectionRequest) -> ObjectionCreated:
        return await submit("objection", request)

    @app.post("/api/v1/repairs", status_code=201)
    async def create_repair(request: ObjectionRequest) -> ObjectionCreated:
        return await submit("repair", request)

    @app.get("/api/v1/objections/{objection_id}")
    async def status(objection_id: str, token: str | None = None,
                     authorization: Annotated[str | None, Header()] = None) -> ObjectionStatus:
        given = token or bearer_token(authorization)
        found = None
        if _is_uuid(objection_id):
            async with ctx.pool.acquire() as conn:
                found = await store.with_timeline(conn, objection_id)
        # The same answer for an unknown id and a wrong token: ids cannot be probed.
        if found is None or not given or not domain.token_matches(given, found["token_hash"]):
            raise Problem(404, "not_found", "No objection with this id and token")
        return ObjectionStatus(
            objection_id=found["objection_id"], kind=found["kind"], status=found["status"],
            due_by=found["due_by"],
            record=RecordInput(department=found["department"], record_id=found["record_id"]),
            timeline=[TimelineEvent(**e) for e in found["timeline"]])

    department_of = credentials.bearer(ctx.pool, "department")

    @app.post("/api/v1/objections/{objection_id}/decision")
    async def decide(objection_id: str, decision: DecisionRequest,
                     department: str = Depends(department_of)) -> dict[str, str]:
        """The owning department's decision (CONTRACT.md). A corrected revision is sent to
        ingest (`POST /api/v1/records`), not here."""
        if not _is_uuid(objection_id):
            raise Problem(404, "not_found", "No objection with this id")
        payload = ObjectionDecision(objection_id=objection_id, decision=decision.decision,
                                    reason=decision.reason, withdraw=decision.withdraw)
        try:
            async with ctx.pool.acquire() as conn, conn.transaction():
                status = await handlers.decide(conn, department, payload)
        except handlers.DecisionRefused as exc:
            raise Problem(404, "not_found", "No objection of this department with this id",
                          str(exc)) from exc
        return {"objection_id": objection_id, "status": status}

    @app.get("/objections/new", response_class=HTMLResponse, include_in_schema=False)
    async def form(request: Request, type: str = "", id: str = "", department: str = "",
                   record_id: str = "", kind: str = "objection") -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, "form.html", {
            "type": type, "id": id, "department": department, "record_id": record_id,
            "kind": kind, "departments": ctx.catalogue.departments, "errors": []})

    @app.post("/objections/new", response_class=HTMLResponse, include_in_schema=False)
    async def form_post(request: Request, type: Annotated[str, Form()],
                        id: Annotated[str, Form()], department: Annotated[str, Form()],
                        record_id: Annotated[str, Form()], reason: Annotated[str, Form()],
                        contact: Annotated[str, Form()],
                        kind: Annotated[str, Form()] = "objection") -> HTMLResponse:
        values = {"type": type, "id": id, "department": department, "record_id": record_id,
                  "kind": kind, "departments": ctx.catalogue.departments}
        try:
            req = ObjectionRequest.model_validate({
                "subject": {"type": type, "id": id},
                "record": {"department": department, "record_id": record_id},
                "reason": reason, "contact": contact})
            created = await submit("repair" if kind == "repair" else "objection", req)
        except ValidationError as exc:
            errors = [".".join(str(p) for p in e["loc"]) + "：" + e["msg"] for e in exc.errors()]
            return TEMPLATES.TemplateResponse(request, "form.html", {**values, "errors": errors},
                                              status_code=422)
        except Problem as exc:
            errors = [e["message"] for e in exc.errors or []] or [exc.title]
            return TEMPLATES.TemplateResponse(request, "form.html", {**values, "errors": errors},
                                              status_code=exc.status)
        return TEMPLATES.TemplateResponse(request, "created.html", {"created": created},
                                          status_code=201)

    return app


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False

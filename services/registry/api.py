"""The registry's HTTP API: a subject's whole archive, internal records included, for
operators only (an operator's bearer token; the registry is never exposed publicly)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI

from services.registry import store
from services.registry.responses import Archive
from shared import credentials
from shared.context import ServiceContext
from shared.contract import subject_key
from shared.http import ANSWERED_AS_RETURNED, Problem, base_app


def create_app(ctx: ServiceContext) -> FastAPI:
    app = base_app("Xinyong registry", "The credit archive of every subject.")
    operator = credentials.bearer(ctx.pool, "operator")

    @app.get("/api/v1/archive/{subject_type}/{identifier}",
             dependencies=[Depends(operator)], response_model=Archive, **ANSWERED_AS_RETURNED)
    async def archive(subject_type: str, identifier: str) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            found = await store.archive(conn, subject_key(subject_type, identifier))
        if found is None:
            raise Problem(404, "not_found", "No archive for this subject")
        return found

    return app

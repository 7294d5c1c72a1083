"""Ingest's HTTP API: the audit trail of a record's deliveries (for operators)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.ingest import store
from shared.http import base_app
from shared.service import ServiceContext


def create_app(ctx: ServiceContext) -> FastAPI:
    app = base_app("Xinyong ingest", "Validates department submissions (CONTRACT.md).")

    @app.get("/api/v1/records/{department}/{record_id}/submissions")
    async def submissions(department: str, record_id: str) -> list[dict[str, Any]]:
        async with ctx.pool.acquire() as conn:
            return await store.submission_history(conn, department, record_id)

    return app

"""City statistics and department assessment (CONTRACT.md): district counts and the early
warnings (public, rate-limited), the departments' scorecards (operators)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from slowapi.errors import RateLimitExceeded

from services.stats import domain, store
from services.stats.responses import Districts, Scorecards, Warnings
from shared import clock, credentials, guard
from shared.context import ServiceContext
from shared.contract import SUBJECT_TYPES
from shared.http import (
    ANSWERED_AS_RETURNED,
    Problem,
    base_app,
    problem_response,
)

FIGURES = ("negative_records", "black_list_entries", "red_list_entries")


def create_app(ctx: ServiceContext) -> FastAPI:
    app = base_app("Xinyong statistics",
                   "City statistics and department assessment (CONTRACT.md).")
    limiter = guard.public_limiter(ctx.settings.trusted_proxies)
    app.state.limiter = limiter

    @app.exception_handler(RateLimitExceeded)
    async def _limited(request: Request, exc: RateLimitExceeded) -> JSONResponse:
        return problem_response(429, "rate_limited", "Too many requests", str(exc.detail))

    catalogue = ctx.catalogue
    negative = sorted(k for k, v in catalogue.items.items() if v.polarity == "negative")
    operator: Callable[..., Any] = credentials.bearer(ctx.pool, "operator")

    @app.get("/api/v1/stats/districts", response_model=Districts, **ANSWERED_AS_RETURNED)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def districts(request: Request,
                        from_: str | None = Query(None, alias="from", max_length=32,
                                                  description="YYYY-MM-DD"),
                        to: str | None = Query(None, max_length=32, description="YYYY-MM-DD")
                        ) -> dict[str, Any]:
        """Per district of the catalogue (zeros included) and subject type: negative
        records (once per record, not withdrawn, decided in the period), black- and red-list
        entries whose `since` is in it (in their basis record's district)."""
        start, end = _checked(lambda: domain.period(from_, to))
        async with ctx.pool.acquire() as conn:
            rows = await store.district_counts(conn, start, end, negative)
        counts: dict[tuple[str | None, str, str], int] = {
            (r["district"], r["subject_type"], r["what"]): r["n"] for r in rows}
        return {"from": start, "to": end, "districts": [
            {"district": code, "name": d.name, "by_subject_type": {
                t: {f: counts.get((code, t, f), 0) for f in FIGURES} for t in SUBJECT_TYPES}}
            for code, d in catalogue.districts.items()]}

    @app.get("/api/v1/stats/warnings", response_model=Warnings, **ANSWERED_AS_RETURNED)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def warnings(request: Request) -> dict[str, Any]:
        """The early warnings now (建立信用风险预警): per district and rule, the raised
        window that contains this moment."""
        async with ctx.pool.acquire() as conn:
            rows = await store.current_warnings(conn, clock.now())
        return {"warnings": [
            {"district": r["district"], "measure": r["measure"],
             "name": catalogue.early_warnings[r["measure"]].name
             if r["measure"] in catalogue.early_warnings else None,
             "window": {"from": r["window_from"], "to": r["window_to"]},
             "count": r["count"], "threshold": r["threshold"]} for r in rows]}

    @app.get("/api/v1/scorecards/departments", response_model=Scorecards, **ANSWERED_AS_RETURNED)
    async def scorecards(_: str = Depends(operator),
                         month: str | None = Query(None, max_length=16,
                                                   description="YYYY-MM")) -> dict[str, Any]:
        """Per department, the month's reporting (CST): submissions, verdicts, rejections
        by error code, the delay from decision to first accepted delivery in working days,
        objections received, upheld and decided late."""
        period = _checked(lambda: domain.month(month, clock.today()))
        async with ctx.pool.acquire() as conn:
            verdicts = {r["department"]: r for r in
                        await store.feedback_month(conn, period.start, period.end)}
            codes = await store.rejections_by_code(conn, period.start, period.end)
            firsts = await store.first_deliveries(conn, period.start, period.end)
            objections = await store.objections_month(conn, period.start, period.end)
        return {"month": month, "from": period.first, "to": period.last,
                "partial": period.partial,
                "departments": [_scorecard(catalogue, dept, verdicts.get(dept), codes, firsts,
                                           objections) for dept in catalogue.departments]}

    return app


def _checked(compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except domain.Invalid as exc:
        raise Problem(422, "validation", "The request is not valid",
                      errors=exc.errors) from exc


def _scorecard(catalogue: Any, department: str, verdicts: Any, codes: Any, firsts: Any,
               objections: Any) -> dict[str, Any]:
    delays, double = [], []
    for f in firsts:
        if f["department"] != department or f["decided_on"] is None:
            continue
        received = f["accepted_at"].astimezone(clock.ZHUHAI).date()
        days = clock.working_days_between(f["decided_on"], received)
        delays.append(days)
        item = catalogue.items.get(f["catalogue_item"])
        if item is not None and item.double_publicity:
            double.append(days <= domain.DOUBLE_PUBLICITY_WORKING_DAYS)
    counts = {o["what"]: o["n"] for o in objections if o["department"] == department}
    v = dict(verdicts) if verdicts is not None else {}
    return {
        "department": department, "name": catalogue.departments[department].name,
        "submissions": v.get("submissions", 0), "accepted": v.get("accepted", 0),
        "rejected": v.get("rejected", 0),
        "rejected_by_code": {c["code"]: c["n"] for c in sorted(codes, key=lambda c: c["code"])
                             if c["department"] == department},
        "duplicates": v.get("duplicates", 0), "stale": v.get("stale", 0),
        "delay_working_days": {
            "records": len(delays), "median": domain.nearest_rank(delays, 0.5),
            "p95": domain.nearest_rank(delays, 0.95),
            "double_publicity_records": len(double),
            "double_publicity_within_7": (sum(double) / len(double)) if double else None},
        "objections": {"received": counts.get("received", 0),
                       "upheld": counts.get("upheld", 0),
                       "decided_after_due_by": counts.get("decided_late", 0)},
    }


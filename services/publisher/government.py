"""Government integrity (政务诚信, the seed work plan: 建立失信案例按地区划分的统计调查制度): the
defaults of government bodies (subject type `government`) per district, opened, resolved
and open at the end of a period, by kind, counted exactly in SQL; the public API and page.

A default is a record of an item with a `default_kind` (unpaid government debts, breached
government contracts, court dishonest-debtor records against a body) or a breached service
commitment (服务承诺, kind `service_commitment`), about a government body. It opens on its
decision date (a breach: the breach's date) and is resolved on the day the publisher first
holds it withdrawn or repaired (the department's withdrawal once the debt is paid or the
contract performed). Its district is the division in force on the day it opened: the
record's `district`, else the registering authority's code (characters 3-8 of the body's
unified social credit code), a retired division counting in its successor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

import asyncpg
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from slowapi import Limiter

from services.publisher import responses
from shared import commitments
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import SubjectChanged
from shared.http import ANSWERED_AS_RETURNED, Problem
from shared.periods import FieldProblem, field_problem, query_day

# The longest period one answer counts (both days included): five years, the span of the
# city's statistics (services/stats/domain.py), documented in the OpenAPI.
MAX_SPAN_DAYS = 5 * 366
SERVICE_COMMITMENT = "service_commitment"
OTHER = "other"  # a body registered outside Zhuhai's divisions

DefaultRow = tuple[str, str, str, str, str, date, bool]


def default_kinds(catalogue: Catalogue) -> list[str]:
    kinds = {i.default_kind for i in catalogue.items.values() if i.default_kind}
    if any(i.commitment is not None and "government" in i.subject_types
           for i in catalogue.items.values()):
        kinds.add(SERVICE_COMMITMENT)
    return sorted(kinds)


def attribute_district(catalogue: Catalogue, district: str | None, code: str, on: date) -> str:
    """The division in force on `on` a default counts in: the record's `district`, else the
    code's characters 3-8 (GB 32100: the registering authority's division); a retired
    division is followed to its successor; outside Zhuhai: `other`."""
    found = district if district in catalogue.districts else code[2:8]
    seen: set[str] = set()
    while found in catalogue.districts and found not in seen:
        seen.add(found)
        division = catalogue.districts[found]
        if division.in_force_on(on) or division.succeeded_by is None:
            return found
        found = division.succeeded_by
    return OTHER


def default_rows(catalogue: Catalogue, snapshot: SubjectChanged) -> list[DefaultRow]:
    """(department, record_id, subject_key, kind, district, opened_on, resolved) of each
    default in a government body's archive."""
    if snapshot.subject.type != "government":
        return []
    rows = []
    for r in snapshot.records:
        item = catalogue.items.get(r.catalogue_item)
        if item is None:
            continue
        kind = item.default_kind
        if item.commitment is not None and commitments.state(r.attributes) == "breached":
            kind = SERVICE_COMMITMENT
        if kind is None:
            continue
        opened = commitments.decided_for_disclosure(item, r.decided_on, r.attributes)
        rows.append((r.department, r.record_id, snapshot.subject.key, kind,
                     attribute_district(catalogue, r.district, snapshot.subject.id, opened),
                     opened, r.status in ("withdrawn", "repaired")))
    return rows


def period(from_text: str | None, to_text: str | None) -> tuple[date, date]:
    """[from, to], both days included; at most MAX_SPAN_DAYS. Raises Problem 422 naming
    each bad field."""
    errors: list[FieldProblem] = []
    start, end = query_day("from", from_text, errors), query_day("to", to_text, errors)
    if start is not None and end is not None:
        if start > end:
            errors.append(field_problem("from", "after_to", "`from` is after `to`"))
        elif (end - start).days + 1 > MAX_SPAN_DAYS:
            errors.append(field_problem("to", "span_too_long",
                                   f"a period of at most {MAX_SPAN_DAYS} days"))
    if errors or start is None or end is None:
        raise Problem(422, "validation", "The request is not valid", errors=errors)
    return start, end




# --- store ----------------------------------------------------------------------------------


async def save_defaults(conn: asyncpg.Connection, rows: Sequence[DefaultRow],
                        today: date) -> None:
    """Upsert each default as the latest snapshot states it; a resolution keeps the day it
    was first seen (a snapshot applied again changes nothing), a reopening clears it."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO government_defaults (department, record_id, subject_key, default_kind,"
        " district, opened_on, resolved_on)"
        " SELECT d, r, s, k, di, o, CASE WHEN res THEN $8::date END"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::date[], $7::bool[]) AS t(d, r, s, k, di, o, res)"
        " ON CONFLICT (department, record_id) DO UPDATE SET"
        " subject_key = EXCLUDED.subject_key, default_kind = EXCLUDED.default_kind,"
        " district = EXCLUDED.district, opened_on = EXCLUDED.opened_on,"
        " resolved_on = CASE WHEN EXCLUDED.resolved_on IS NULL THEN NULL"
        " ELSE COALESCE(government_defaults.resolved_on, EXCLUDED.resolved_on) END",
        *[list(c) for c in zip(*rows, strict=True)], today)


# The figures, exactly: every default opened by `to` is read once.
DISTRICT_COUNTS_SQL = (
    "SELECT district, default_kind,"
    " count(*) FILTER (WHERE opened_on >= $1) AS opened,"
    " count(*) FILTER (WHERE resolved_on BETWEEN $1 AND $2) AS resolved,"
    " count(*) FILTER (WHERE resolved_on IS NULL OR resolved_on > $2) AS open_at_end"
    " FROM government_defaults WHERE opened_on <= $2"
    " GROUP BY district, default_kind")


async def district_counts(conn: asyncpg.Connection, start: date, end: date
                          ) -> list[asyncpg.Record]:
    return list(await conn.fetch(DISTRICT_COUNTS_SQL, start, end))


# --- HTTP -----------------------------------------------------------------------------------

FIGURES = ("opened", "resolved", "open_at_end")


def answer(catalogue: Catalogue, start: date, end: date,
           rows: Iterable[asyncpg.Record | dict[str, Any]]) -> dict[str, Any]:
    kinds = default_kinds(catalogue)
    counts = {(r["district"], r["default_kind"]): r for r in rows}
    codes = [c for c, d in catalogue.districts.items()
             if d.valid_until is None or d.valid_until >= start]
    codes += sorted({d for d, _ in counts if d not in codes})
    out = []
    for code in codes:
        by_kind = {k: {f: int(counts[(code, k)][f]) if (code, k) in counts else 0
                       for f in FIGURES} for k in kinds}
        out.append({"district": code,
                    "name": catalogue.districts[code].name
                    if code in catalogue.districts else "珠海市外",
                    "by_kind": by_kind,
                    "total": {f: sum(v[f] for v in by_kind.values()) for f in FIGURES}})
    return {"from": start, "to": end, "max_span_days": MAX_SPAN_DAYS, "kinds": kinds,
            "districts": out}


KIND_NAMES = {"unpaid_debt": "拖欠企业账款", "contract_breach": "违约毁约",
              "dishonest_debtor": "失信被执行", SERVICE_COMMITMENT: "违背服务承诺"}


def add_routes(app: FastAPI, ctx: ServiceContext, limiter: Limiter,
               page: Callable[..., HTMLResponse]) -> None:
    catalogue = ctx.catalogue

    async def figures(from_: str | None, to: str | None) -> dict[str, Any]:
        start, end = period(from_, to)
        async with ctx.pool.acquire() as conn:
            rows = await district_counts(conn, start, end)
        return answer(catalogue, start, end, rows)

    @app.get("/api/v1/government/districts", response_model=responses.GovernmentDistricts,
             **ANSWERED_AS_RETURNED)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def government_districts(
            request: Request,
            from_: str | None = Query(None, alias="from", max_length=32,
                                      description="YYYY-MM-DD"),
            to: str | None = Query(None, max_length=32,
                                   description=f"YYYY-MM-DD; at most {MAX_SPAN_DAYS} days "
                                               "from `from`, both included")
    ) -> dict[str, Any]:
        """政务诚信: per district (the division in force where each default opened: the
        record's `district`, else characters 3-8 of the body's code), government bodies'
        defaults opened in the period, resolved in it, and open at its end, by kind
        (`unpaid_debt`, `contract_breach`, `dishonest_debtor`, `service_commitment`).
        `422` for a malformed date, `from` after `to`, or a period over `max_span_days`."""
        return await figures(from_, to)

    @app.get("/government/districts", response_class=HTMLResponse, include_in_schema=False)
    @limiter.limit(ctx.settings.public_rate_limit)
    async def government_districts_page(
            request: Request,
            from_: str | None = Query(None, alias="from", max_length=32),
            to: str | None = Query(None, max_length=32)) -> HTMLResponse:
        if from_ is None and to is None:
            return page(request, "government.html", data=None, kind_names=KIND_NAMES,
                        list_name="supervision.defaulting_bodies", from_="", to="")
        data = await figures(from_, to)
        return page(request, "government.html", data=data, kind_names=KIND_NAMES,
                    list_name="supervision.defaulting_bodies", from_=from_, to=to)

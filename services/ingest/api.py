"""Ingest's HTTP gateway (CONTRACT.md): departments submit one record or a batch (JSON array
or CSV) with their bearer token, and get each record's fate in the answer; plus the audit
trail of a record's deliveries."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request

from services.ingest import domain, handlers, store
from services.ingest.contracts import RecordResult, SubmissionAnswer
from services.ingest.responses import Submission
from shared import credentials, outbox
from shared.context import ServiceContext
from shared.http import ANSWERED_AS_RETURNED, Problem, base_app

MAX_BATCH = 10_000
MAX_BODY = 20 * 1024 * 1024
# An Idempotency-Key becomes the event id (`<key>/<index>` in a batch): it must leave room
# for the index within the envelope's 200 characters.
MAX_IDEMPOTENCY_KEY = 128


def create_app(ctx: ServiceContext) -> FastAPI:
    app = base_app("Xinyong ingest", "Validates department submissions (CONTRACT.md).")
    department_of = credentials.bearer(ctx.pool, "department")

    async def submit(department: str, parsed: list[domain.ParsedSubmission]
                     ) -> SubmissionAnswer:
        deliveries = [handlers.Delivery(department, p) for p in parsed]
        try:
            async with ctx.pool.acquire() as conn, conn.transaction():
                outcomes = await handlers.ingest_deliveries(
                    conn, ctx.catalogue, deliveries, ctx.settings.max_event_bytes)
        except outbox.EventTooLarge as exc:
            raise Problem(413, "too_large", "A record would make an event over the size "
                          "allowed", str(exc)) from exc
        results = [RecordResult(index=i, event_id=o.feedback.event_id,
                                record_id=o.feedback.record_id,
                                revision=o.feedback.revision, status=o.feedback.status,
                                errors=o.feedback.errors) for i, o in enumerate(outcomes)]
        return SubmissionAnswer(
            accepted=sum(r.status == "accepted" for r in results),
            rejected=sum(r.status == "rejected" for r in results), results=results)

    @app.post("/api/v1/records")
    async def post_record(
            request: Request, department: str = Depends(department_of),
            idempotency_key: Annotated[str | None, Header()] = None) -> SubmissionAnswer:
        """One record (the `data` of a record.submitted.v1 event). An `Idempotency-Key`
        header becomes the event id, so that a retried request is answered `duplicate`."""
        data = _json_body(await _body(request))
        event_id = _idempotency(idempotency_key) or str(uuid.uuid4())
        return await submit(department, [domain.parse_http_record(department, data, event_id)])

    @app.post("/api/v1/records:batch")
    async def post_batch(
            request: Request, department: str = Depends(department_of),
            idempotency_key: Annotated[str | None, Header()] = None) -> SubmissionAnswer:
        """A JSON array of records, or `text/csv` with a header row of the same field names
        (`subject.type`, `subject.id`, `subject.name`; `attributes` as a JSON column)."""
        body = await _body(request)
        base = _idempotency(idempotency_key) or str(uuid.uuid4())
        if request.headers.get("content-type", "").startswith("text/csv"):
            parsed = _csv_records(department, body, base)
        else:
            records = _json_body(body)
            if not isinstance(records, list):
                raise Problem(422, "validation", "A batch is a JSON array of records",
                              errors=[{"field": "body", "code": "list_type",
                                       "message": "expected a JSON array"}])
            _check_size(len(records))
            parsed = [domain.parse_http_record(department, r, f"{base}/{i}")
                      for i, r in enumerate(records)]
        return await submit(department, parsed)

    operator_or_department = credentials.caller(ctx.pool, "operator", "department")

    @app.get("/api/v1/records/{department}/{record_id}/submissions",
             response_model=list[Submission], **ANSWERED_AS_RETURNED)
    async def submissions(department: str, record_id: str,
                          caller: credentials.Caller = Depends(  # noqa: B008
                              operator_or_department)) -> list[dict[str, Any]]:
        """Every delivery of a record and its fate: for operators, and for the department
        that owns the record (another department gets the same 404 as an unknown record)."""
        history: list[dict[str, Any]] = []
        # PostgreSQL text cannot hold NUL: nothing stored has one.
        if "\x00" not in department + record_id and (
                caller.kind == "operator" or caller.party == department):
            async with ctx.pool.acquire() as conn:
                history = await store.submission_history(conn, department, record_id)
        if not history:
            raise Problem(404, "not_found", "No submissions of this record")
        return history

    return app


async def _body(request: Request) -> bytes:
    """The body, refused before it is read when its declared length is over the cap, and
    while it is read when it turns out longer (a chunked body declares none)."""
    too_large = Problem(413, "too_large", f"At most {MAX_BODY // (1024 * 1024)} MiB a request")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise Problem(400, "bad_request", "Content-Length is not a number",
                          errors=[{"field": "Content-Length", "code": "int_parsing",
                                   "message": "expected a number of bytes"}])
        if int(declared) > MAX_BODY:
            raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _idempotency(key: str | None) -> str | None:
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        raise Problem(422, "validation", "The Idempotency-Key is too long",
                      errors=[{"field": "Idempotency-Key", "code": "string_too_long",
                               "message": f"at most {MAX_IDEMPOTENCY_KEY} characters"}])
    return key


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Problem(400, "unparseable", "The body is not JSON", str(exc)) from exc


def _check_size(count: int) -> None:
    if count > MAX_BATCH:
        raise Problem(413, "too_large", f"At most {MAX_BATCH} records a batch, got {count}")


def _csv_records(department: str, body: bytes, base: str) -> list[domain.ParsedSubmission]:
    try:
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise Problem(400, "unparseable", "The body is not UTF-8 CSV", str(exc)) from exc
    _check_size(len(rows))
    parsed = []
    for i, row in enumerate(rows):
        data, cell_errors = domain.record_from_csv_row(row)
        p = domain.parse_http_record(department, data, f"{base}/{i}")
        if cell_errors:  # the cell's own error says more than "required"
            named = {e.field for e in cell_errors}
            p = domain.ParsedSubmission(p.event, None,
                                        cell_errors + [e for e in p.errors if e.field not in named],
                                        p.record_id, p.revision)
        parsed.append(p)
    return parsed

"""A subject signs a conduct commitment (守信自律承诺) itself, with its own token:
`POST /api/v1/me/commitments`. The publisher checks it as ingest will (shared/commitments.py)
and passes it on through its outbox on credit.commitments.signed; ingest records it under the
catalogue's platform department (the city credit office at 市发改局), and it reaches the
archive, the profile and /me like any department's commitment."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field

from services.publisher import responses, store
from shared import clock, commitments, credentials, outbox
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.contract import RecordSubmission, SubjectRef, SubjectType, subject_key
from shared.http import ANSWERED_AS_RETURNED, Problem
from shared.identifiers import normalize_identifier
from shared.messages import OutboundEvent
from shared.topics import COMMITMENTS_SIGNED


class Signer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=100)
    role: str = Field(max_length=100)


class OwnSubject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: SubjectType
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)


class SignRequest(BaseModel):
    """The subject (the token's own: its full identifier and name), the text version signed,
    the signer and the term's last day; `district` where the subject is registered (else
    read from its code)."""

    model_config = ConfigDict(extra="forbid")
    subject: OwnSubject
    text_version: str = Field(max_length=32)
    signer: Signer
    term_until: str = Field(max_length=32, description="YYYY-MM-DD")
    district: str | None = Field(default=None, max_length=6)


def district_of(catalogue: Catalogue, subject: OwnSubject, given: str | None) -> str:
    """The division a subject registered in: given, else its code's (an organization's
    characters 3-8, a person's first 6), else the city."""
    if given is not None:
        return given
    code = subject.id[:6] if subject.type == "individual" else subject.id[2:8]
    district = catalogue.districts.get(code)
    return code if district is not None and district.in_force_on(clock.today()) else "440400"


def add_routes(app: FastAPI, ctx: ServiceContext) -> None:
    catalogue = ctx.catalogue
    token = Depends(credentials.caller(ctx.pool, "subject"))
    item_name = catalogue.platform_commitment_item()
    item = catalogue.items[item_name]
    assert item.commitment is not None

    @app.post("/api/v1/me/commitments", status_code=202,
              response_model=responses.CommitmentTaken, **ANSWERED_AS_RETURNED)
    async def sign_commitment(body: SignRequest,
                              caller: credentials.Caller = token) -> dict[str, Any]:
        """Sign a conduct commitment (守信自律承诺) of the catalogue's platform item. `202`:
        passed on to be recorded under the city credit office; it shows in `/api/v1/me` and
        the public profile once recorded. `404` when the subject named is not the token's;
        `422` naming the field: unknown text version, no signer, a term already over or too
        long."""
        code = normalize_identifier(body.subject.id)
        key = subject_key(body.subject.type, code or "")
        secret = credentials.subject_key_secret(ctx.settings)
        if code is None or not secret or credentials.subject_party(secret, key) != caller.party:
            # Another subject's or a malformed identifier: the same answer (nothing is told
            # about subjects the token does not name).
            raise Problem(404, "not_found", "No such subject for this token")
        today = clock.today()
        assert item.commitment is not None
        attributes = {"commitment": {"kind": item.commitment.kind,
                                     "text_version": body.text_version,
                                     "signer": body.signer.model_dump(),
                                     "term_until": body.term_until}}
        errors = [{"field": f.removeprefix("attributes.commitment."), "code": c, "message": m}
                  for f, c, m in commitments.submission_problems(
                      catalogue, item_name, today, attributes, today)]
        district = district_of(catalogue, body.subject, body.district)
        if district not in catalogue.districts:
            errors.append({"field": "district", "code": "unknown_district",
                           "message": "a Zhuhai division code (GB/T 2260)"})
        if errors:
            raise Problem(422, "validation", "The commitment is not valid", errors=errors)
        commitment_id = f"CM-{uuid.uuid4().hex[:20].upper()}"
        async with ctx.pool.acquire() as conn, conn.transaction():
            # The archive names a subject as its departments do: a record carries the
            # subject's name into the registry, and a subject may not rename itself on the
            # public site and in agencies' notices by signing. Its own word names it only
            # while no department has.
            name = await store.subject_name(conn, key) or body.subject.name
            submission = {"record_id": commitment_id, "revision": 1, "action": "upsert",
                          "catalogue_item": item_name,
                          "subject": SubjectRef(type=body.subject.type, id=code,
                                                name=name).model_dump(),
                          "decided_on": today.isoformat(), "district": district,
                          "summary": "主体自行签署的守信自律承诺", "attributes": attributes}
            await outbox.enqueue(conn, [OutboundEvent.of(
                COMMITMENTS_SIGNED, COMMITMENTS_SIGNED.writer, key,
                RecordSubmission.model_validate(submission),
                event_id=f"me-commitment/{commitment_id}")])
        text = item.commitment.texts[body.text_version]
        return {"commitment_id": commitment_id, "kind": item.commitment.kind,
                "department": catalogue.commitments.platform_department,
                "signed_on": today.isoformat(), "text_version": body.text_version,
                "text": text.text, "term_until": body.term_until, "status": "submitted"}

"""The public credit commitments (守信公开承诺) of a profile (CONTRACT.md, public profile:
`commitments`): those departments submitted as records of commitment items, kept or
breached, and those signed with a granted repair (kind `repair`, NDRC Order 36). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from services.publisher import domain, rights
from shared import commitments
from shared.catalogue import Catalogue
from shared.contract import ArchivedRecord, SubjectRef


def public_commitments(catalogue: Catalogue, subject: SubjectRef,
                       records: Iterable[ArchivedRecord], today: date) -> list[dict[str, Any]]:
    """What the public sees: a department's commitment under the same rules as any record
    (public item, in force, within its window: a kept one until its term ends, a breached
    one for the breach's disclosure period; nothing about a minor), and the repair
    commitments."""
    records = list(records)
    out = rights.public_commitments(catalogue, records)
    for r in records:
        item = catalogue.items.get(r.catalogue_item)
        if item is None or item.commitment is None:
            continue
        if (r.public_until is None or r.public_until < today
                or not domain.is_public_record(catalogue, subject, r)):
            continue
        out.append(commitment_entry(catalogue, r))
    return sorted(out, key=lambda x: x["signed_on"], reverse=True)


def commitment_entry(catalogue: Catalogue, r: ArchivedRecord) -> dict[str, Any]:
    item = catalogue.items[r.catalogue_item]
    raw = r.attributes.get("commitment")
    signed: dict[str, Any] = raw if isinstance(raw, dict) else {}
    signer: dict[str, Any] = signed["signer"] if isinstance(signed.get("signer"), dict) else {}
    version_text = commitments.text_of(item, r.attributes)
    state = commitments.state(r.attributes)
    entry: dict[str, Any] = {
        "commitment_id": r.record_id, "kind": commitments.public_kind(item),
        "department": r.department, "catalogue_item": r.catalogue_item,
        "item_name": item.name, "signed_on": r.decided_on.isoformat(),
        "text_version": version_text[0] if version_text else None,
        "text": version_text[1] if version_text else None,
        "signer": {"name": signer.get("name"), "role": signer.get("role")},
        "term_until": signed.get("term_until"), "status": state,
        "disputed": r.disputed, "public_until": r.public_until.isoformat()
        if r.public_until else None}
    breach = commitments.breach_of(r.attributes)
    if breach is not None:
        entry["breach"] = {"on": breach.get("on"), "document_no": breach.get("document_no"),
                           "summary": breach.get("summary")}
        entry["severity"] = item.commitment.breach_severity if item.commitment else None
        entry["severity_basis"] = catalogue.commitments.breach_basis
    return entry

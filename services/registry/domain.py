"""The credit archive's rules (信用档案): record lifecycle, disclosure windows, key persons
and the credit grade. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from shared import disclosure
from shared.catalogue import Catalogue
from shared.contract import (
    AcceptedRecord,
    ArchivedRecord,
    Provenance,
    RecordStatusChanged,
    RelatedSubject,
    Repair,
)
from shared.disclosure import add_months as add_months  # its callers from before
from shared.grading import grade as grade  # the one implementation, shared with as_of
from shared.grading import is_about_a_minor as is_about_a_minor
from shared.identifiers import is_minor_on
from shared.messages import caused_id


def snapshot_id(subject_key: str, version: int) -> str:
    """The event id of a subject's archive snapshot (credit.subjects.changed): the subject
    and the version its changes brought it to, so a replay re-emits the same id."""
    return caused_id("xinyong/registry", "snapshot", subject_key, version)


def disclosure_window(catalogue: Catalogue, item_name: str, decided_on: date,
                      attributes: dict[str, Any] | None = None
                      ) -> tuple[str | None, date | None, date | None]:
    """(rule version, earliest repair date, end of public display) for a record: the one
    implementation of the disclosure rules is shared/disclosure.py."""
    w = disclosure.window(catalogue, item_name, decided_on, attributes)
    return w.rule, w.repair_from, w.public_until


def archive_accepted(catalogue: Catalogue, existing: ArchivedRecord | None,
                     accepted: AcceptedRecord) -> ArchivedRecord | None:
    """The record after an accepted submission, or None if it changes nothing (an older or
    replayed revision, or a withdrawal of a record never seen)."""
    sub = accepted.submission
    if existing is not None and existing.revision >= sub.revision:
        return None
    if sub.action == "withdraw":
        if existing is None:
            return None
        return existing.model_copy(update={"revision": sub.revision, "status": "withdrawn",
                                           "provenance": provenance_of(accepted)})
    assert sub.catalogue_item is not None and sub.decided_on is not None  # checked by ingest
    rule, repair_from, public_until = disclosure_window(catalogue, sub.catalogue_item,
                                                        sub.decided_on, sub.attributes)
    # The end of the act, as this revision states it (CONTRACT.md: absent, the decision
    # date); a later revision may set it.
    act_ended_on = sub.act_ended_on or sub.decided_on
    return ArchivedRecord(
        department=accepted.department, record_id=sub.record_id, revision=sub.revision,
        catalogue_item=sub.catalogue_item, decided_on=sub.decided_on,
        document_no=sub.document_no, summary=sub.summary, district=sub.district, zone=sub.zone,
        # A corrected revision keeps the record's objection flag and its repair: repair
        # stops display and measures for the decision, whatever revision states it.
        status="repaired" if existing and existing.status == "repaired" else "active",
        disputed=existing.disputed if existing else False,
        disclosure_rule=rule, repair_from=repair_from, public_until=public_until,
        attributes=sub.attributes, act_ended_on=act_ended_on,
        purge_on=disclosure.purge_on(catalogue, sub.subject.type, sub.catalogue_item,
                                     act_ended_on, sub.attributes),
        # The department's contact for the subject (internal): the latest revision's, or the
        # one it gave before.
        contact=sub.contact or (existing.contact if existing else None),
        repair=existing.repair if existing and existing.status == "repaired" else None,
        provenance=provenance_of(accepted),
        disputed_since=existing.disputed_since if existing and existing.disputed else None)


def provenance_of(accepted: AcceptedRecord) -> Provenance:
    """The department's event behind a revision: its CloudEvent id and ingest's receipt."""
    sub = accepted.submission
    return Provenance(department=accepted.department, record_id=sub.record_id,
                      revision=sub.revision, event_id=accepted.source_event_id,
                      received_at=accepted.accepted_at)


def apply_status_change(existing: ArchivedRecord, change: RecordStatusChanged,
                        today: date | None = None, at: datetime | None = None
                        ) -> ArchivedRecord:
    """An objection flag (异议标注), its removal, or a decision to withdraw or repair. None of
    them changes the record's provenance: the department's event still stands behind it;
    a flag keeps when it was first set (`disputed_since`)."""
    match change.change:
        case "flag":
            return existing.model_copy(update={
                "disputed": True,
                "disputed_since": existing.disputed_since if existing.disputed else at})
        case "unflag":
            return existing.model_copy(update={"disputed": False, "disputed_since": None})
        case "withdraw":
            return existing.model_copy(update={"status": "withdrawn", "disputed": False,
                                               "disputed_since": None})
        case "repair":
            # The request and the commitment signed for it go with the record (the public
            # profile lists the commitment: NDRC Order 36).
            repair = Repair(objection_id=change.objection_id, granted_on=today or date.today(),
                            commitment=change.commitment)
            return existing.model_copy(update={"status": "repaired", "disputed": False,
                                               "disputed_since": None, "repair": repair})


def key_persons(catalogue: Catalogue, records: Iterable[ArchivedRecord]) -> list[RelatedSubject]:
    """Key-person links (e.g. the legal representative, 法定代表人) from active records; the
    latest decision per role wins. A person under 18 on that decision's date is not linked
    (shared.identifiers.is_minor_on), and no earlier holder of the role stands in."""
    found: dict[str, RelatedSubject | None] = {}
    for r in sorted(records, key=lambda r: r.decided_on):
        role = catalogue.items[r.catalogue_item].key_person_role
        person = r.attributes.get(role) if role else None
        if r.status == "active" and role and isinstance(person, dict):
            person_id = str(person.get("id"))
            found[role] = None if is_minor_on(person_id, r.decided_on) else RelatedSubject(
                type="individual", id=person_id, name=person.get("name"), role=role)
    return [p for p in found.values() if p is not None]


def status_change_refusal(change: RecordStatusChanged,
                          stored_subject_key: str | None) -> str | None:
    """Why a status change cannot apply, or None. A status change is about a record the
    registry holds and names that record's subject: it never creates a record nor moves one
    to another subject (only a department's new revision does, through ingest)."""
    if stored_subject_key is None:
        return (f"status change {change.change} for record {change.department}/"
                f"{change.record_id}, which the registry does not hold")
    if change.subject.key != stored_subject_key:
        return (f"status change {change.change} for record {change.department}/"
                f"{change.record_id} names subject {change.subject.key}, the record is about "
                f"{stored_subject_key}")
    return None

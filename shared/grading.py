"""The credit grade (信用等级), one implementation: the registry grades each snapshot with it,
and the publisher grades a past profile (`as_of`) with it after taking out what the public
may no longer see (docs/decisions.md, "as the public saw it"). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from shared import commitments
from shared.catalogue import Catalogue
from shared.contract import ArchivedRecord, Grade, GradeBasis, SubjectRef
from shared.identifiers import is_minor_on


def is_about_a_minor(subject: SubjectRef, record: ArchivedRecord) -> bool:
    """A record about a person under 18 on its decision date: never shown, listed or graded."""
    return subject.type == "individual" and is_minor_on(subject.id, record.decided_on)


def grade(catalogue: Catalogue, subject: SubjectRef, records: Iterable[ArchivedRecord],
          today: date) -> Grade:
    """A first, explainable grade: D with a serious negative record in force, C with a general
    one, A with positive records and no negative ones, B otherwise. Records that were
    withdrawn, repaired or are past their disclosure period do not count, nor records about a
    minor: the public grade explains itself with records the public may see, named by
    department and record_id (in words and in `basis`)."""
    serious: list[ArchivedRecord] = []
    general: list[ArchivedRecord] = []
    positive: list[ArchivedRecord] = []
    for r in records:
        item = catalogue.items.get(r.catalogue_item)
        if item is None or r.status != "active" or (
                r.public_until is not None and r.public_until < today):
            continue
        if is_about_a_minor(subject, r):
            continue
        # A breached commitment counts as negative information of its item's breach
        # severity (shared/commitments.py), from its breach date.
        polarity, severity = commitments.standing(item, r.attributes)
        if polarity == "negative" and severity == "serious":
            serious.append(r)
        elif polarity == "negative" and severity == "general":
            general.append(r)
        elif polarity == "positive":
            positive.append(r)

    def label(r: ArchivedRecord) -> str:
        item = catalogue.items[r.catalogue_item]
        on = commitments.decided_for_disclosure(item, r.decided_on, r.attributes)
        named = f"{item.name}（{r.department} {r.record_id}，{on}）"
        breached = (item.commitment is not None
                    and commitments.standing(item, r.attributes)[0] == "negative")
        return f"违背{named}" if breached else named

    def explained(letter: str, prefix: str, rs: list[ArchivedRecord]) -> Grade:
        return Grade.model_validate({
            "grade": letter,
            "explanation": [f"{prefix}：{label(r)}" for r in rs],
            "basis": [GradeBasis(department=r.department, record_id=r.record_id,
                                 revision=r.revision) for r in rs]})

    if serious:
        return explained("D", "严重失信记录", serious)
    if general:
        return explained("C", "一般失信记录", general)
    if positive:
        return explained("A", "守信激励记录", positive)
    return Grade(grade="B", explanation=["无在效的失信或守信记录"])

"""Builders for unit-test inputs, using the real contract models (shared/contract.py).

The identifier helpers here are written from DOMAIN.md's description of GB 32100 and
GB 11643, independently of shared/identifiers.py, so that they can serve as an oracle.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from shared.contract import (
    AcceptedRecord,
    ArchivedRecord,
    Grade,
    RecordSubmission,
    RelatedSubject,
    SubjectChanged,
    SubjectRef,
)

# DOMAIN.md "Identifiers": 31 symbols, weights 3^(i-1) mod 31 written out.
USCC_SYMBOLS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# DOMAIN.md: GB 11643 weights and the check string indexed by sum mod 11.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

KNOWN_USCC = "91110000600037341L"
KNOWN_IDS = ("360426199101010071", "53010219200508011X")
LEGACY_USCC = "91350100M0001TGQXM"


def uscc_check(first17: str) -> str:
    total = sum(USCC_SYMBOLS.index(ch) * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_SYMBOLS[(31 - total % 31) % 31]


def uscc(first17: str) -> str:
    """A code with a correct check character."""
    return first17 + uscc_check(first17)


def resident_id(division: str = "440402", birth: date = date(1985, 5, 17),
                sequence: int = 123) -> str:
    first17 = f"{division}{birth:%Y%m%d}{sequence:03d}"
    total = sum(int(ch) * w for ch, w in zip(first17, ID_WEIGHTS, strict=True))
    return first17 + ID_CHECK[total % 11]


def other_check_char(code: str, alphabet: str) -> str:
    """The same code with a different (hence wrong) last character."""
    replacement = next(ch for ch in alphabet if ch != code[-1])
    return code[:-1] + replacement


ENTERPRISE_ID = uscc("91440400MA4W8KXX0")
INSTITUTION_ID = uscc("12440400455860012")
SOCIAL_ORG_ID = uscc("51440400MJ0000010")
PERSON_ID = resident_id()

ENTERPRISE = SubjectRef(type="enterprise", id=ENTERPRISE_ID, name="珠海市测试贸易有限公司")
PERSON = SubjectRef(type="individual", id=PERSON_ID, name="张伟")


def submission(item: str = "court.dishonest_debtor", subject: SubjectRef = ENTERPRISE,
               **overrides: Any) -> RecordSubmission:
    data: dict[str, Any] = {
        "record_id": "R-1", "revision": 1, "action": "upsert", "catalogue_item": item,
        "subject": subject.model_dump(), "decided_on": date(2026, 6, 1),
        "document_no": "（2026）粤04执123号", "summary": "单元测试", "district": "440402",
        "attributes": default_attributes(item),
    }
    data.update(overrides)
    return RecordSubmission.model_validate(data)


def default_attributes(item: str) -> dict[str, Any]:
    """What an item's disclosure regime requires in `attributes` (a market regulation
    penalty's class: shared/catalogue.yaml, samr-order-45)."""
    return {"penalty_class": "other"} if item == "amr.admin_penalty" else {}


def accepted(sub: RecordSubmission, department: str = "court") -> AcceptedRecord:
    return AcceptedRecord(department=department, submission=sub, source_event_id="ev-1",
                          accepted_at=datetime(2026, 6, 2, 9, 0))


def archived(item: str = "court.dishonest_debtor", **overrides: Any) -> ArchivedRecord:
    data: dict[str, Any] = {
        "department": item.split(".", 1)[0], "record_id": "R-1", "revision": 1,
        "catalogue_item": item, "decided_on": date(2026, 6, 1), "status": "active",
        "public_until": date(2029, 6, 1),
    }
    data.update(overrides)
    return ArchivedRecord.model_validate(data)


def snapshot(subject: SubjectRef = ENTERPRISE, records: list[ArchivedRecord] | None = None,
             related: list[RelatedSubject] | None = None, version: int = 1) -> SubjectChanged:
    return SubjectChanged(subject=subject, version=version, records=records or [],
                          related_subjects=related or [],
                          grade=Grade(grade="B", explanation=[]))

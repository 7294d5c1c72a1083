"""Demo and test data: valid identifiers and department submissions, generated from a seed so
that the same run gives the same subjects (and a second load is answered `duplicate`)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from shared.identifiers import (
    ID_CHECK,
    ID_WEIGHTS,
    USCC_ALPHABET,
    org_code_check_character,
    uscc_check_character,
)

DISTRICTS = ("440402", "440403", "440404")
_ORG_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_NAME_HEADS = ("格力", "华发", "港珠", "横琴", "金湾", "斗门", "香洲", "海岛", "南屏", "唐家",
               "拱北", "前山", "湾仔", "高栏", "白藤", "井岸", "三灶", "平沙", "红旗", "万山")
_NAME_TRADES = ("贸易", "科技", "建设工程", "电器", "物流", "餐饮管理", "医药", "海洋渔业",
                "电子", "投资", "房地产开发", "旅游")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗梁"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def make_uscc(category: str, division: str, rng: random.Random) -> str:
    """A GB 32100 code whose organization code part (GB 11714) and check character are valid."""
    while True:
        body = "".join(rng.choice("0123456789") for _ in range(2)) + "".join(
            rng.choice(_ORG_ALPHABET) for _ in range(6))
        org_check = org_code_check_character(body)
        if org_check is not None and org_check in USCC_ALPHABET:
            first17 = category + division + body + org_check
            return first17 + uscc_check_character(first17)


def make_resident_id(division: str, birth: date, sequence: int) -> str:
    first17 = f"{division}{birth:%Y%m%d}{sequence % 1000:03d}"
    total = sum(int(ch) * w for ch, w in zip(first17, ID_WEIGHTS, strict=True))
    return first17 + ID_CHECK[total % 11]


@dataclass(frozen=True)
class DemoSubject:
    type: str
    id: str
    name: str


def make_subjects(rng: random.Random, count: int) -> list[DemoSubject]:
    """A mix of the four subject types, mostly enterprises, as in a real archive."""
    out = []
    for i in range(count):
        division = rng.choice(DISTRICTS)
        roll = i % 10
        if roll < 6:
            name = f"珠海市{rng.choice(_NAME_HEADS)}{rng.choice(_NAME_TRADES)}有限公司"
            out.append(DemoSubject("enterprise", make_uscc("91", division, rng), name))
        elif roll < 8:
            birth = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 40))
            name = rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN)
            out.append(DemoSubject("individual",
                                   make_resident_id(division, birth, rng.randrange(1000)), name))
        elif roll < 9:
            name = f"珠海市{rng.choice(_NAME_HEADS)}{rng.choice(('医院', '学校', '研究所'))}"
            out.append(DemoSubject("institution", make_uscc("12", division, rng), name))
        else:
            name = f"珠海市{rng.choice(_NAME_HEADS)}{rng.choice(('行业协会', '商会', '基金会'))}"
            out.append(DemoSubject("social_org", make_uscc("51", division, rng), name))
    return out


# Which catalogue items fit which subject type, by department, for demo records.
_ITEMS_BY_TYPE = {
    "enterprise": [("court", "court.dishonest_debtor"), ("tax", "tax.major_violation"),
                   ("tax", "tax.a_grade_taxpayer"), ("amr", "amr.admin_penalty"),
                   ("amr", "amr.abnormal_operation"), ("hrss", "hrss.wage_arrears"),
                   ("customs", "customs.advanced_certified")],
    "individual": [("court", "court.dishonest_debtor"), ("tax", "tax.major_violation"),
                   ("hrss", "hrss.wage_arrears")],
    "institution": [("staffing", "staffing.report_overdue"), ("court", "court.dishonest_debtor")],
    "social_org": [("civil", "civil.activity_abnormal"), ("court", "court.dishonest_debtor")],
}

_DOC_PREFIX = {"court": "(2026)粤04执", "tax": "珠税稽罚〔2026〕", "amr": "珠市监罚〔2026〕",
               "hrss": "珠人社监〔2026〕", "customs": "拱关认〔2026〕", "civil": "珠民社〔2026〕",
               "staffing": "珠编办〔2026〕"}


def submission(dept: str, item: str, subject: DemoSubject, record_id: str, decided_on: date,
               rng: random.Random, revision: int = 1) -> dict[str, Any]:
    """The `data` of a record.submitted.v1 event, as CONTRACT.md shows it."""
    return {
        "record_id": record_id, "revision": revision, "action": "upsert",
        "catalogue_item": item,
        "subject": {"type": subject.type, "id": subject.id, "name": subject.name},
        "decided_on": decided_on.isoformat(),
        "document_no": f"{_DOC_PREFIX[dept]}{rng.randrange(1, 999)}号",
        "summary": "示例数据", "district": rng.choice(DISTRICTS),
        # A market regulation penalty carries its class (shared/catalogue.yaml, samr-order-45).
        "attributes": ({"penalty_class": rng.choice(("criticism", "small_fine", "other"))}
                       if item == "amr.admin_penalty" else {}),
    }


def legal_representative(subject: DemoSubject, person: DemoSubject, record_id: str,
                         decided_on: date) -> dict[str, Any]:
    return {
        "record_id": record_id, "revision": 1, "action": "upsert",
        "catalogue_item": "amr.legal_representative",
        "subject": {"type": subject.type, "id": subject.id, "name": subject.name},
        "decided_on": decided_on.isoformat(), "district": "440402",
        "attributes": {"legal_representative": {"id": person.id, "name": person.name}},
    }


def demo_records(seed: int = 2026, subjects: int = 300,
                 today: date | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(department, data) for a few hundred subjects of all four types, records from every
    department, some subjects on each list."""
    rng = random.Random(seed)
    today = today or date.today()
    people = make_subjects(rng, subjects)
    individuals = [p for p in people if p.type == "individual"]
    for n, subject in enumerate(people):
        for k in range(rng.choice((1, 1, 2, 3))):
            dept, item = rng.choice(_ITEMS_BY_TYPE[subject.type])
            decided_on = today - timedelta(days=rng.randrange(1, 300))
            record_id = f"DEMO-{dept.upper()}-{n:05d}-{k}"
            yield dept, submission(dept, item, subject, record_id, decided_on, rng)
        if subject.type == "enterprise" and individuals:
            person = individuals[n % len(individuals)]
            yield "amr", legal_representative(subject, person, f"DEMO-AMR-LR-{n:05d}",
                                              today - timedelta(days=400))



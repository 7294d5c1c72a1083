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
               "staffing": "珠编办〔2026〕", "industry": "珠科工贸信〔2026〕",
               "finance": "珠财〔2026〕", "supervision": "珠监〔2026〕"}


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
    # A generator of its own: the records above stay what they were for a seed.
    yield from commitments_and_bodies(random.Random(seed + 1), people, today)


_COMMITMENT_ITEMS = {"enterprise": ("industry", "industry.enterprise_commitment", "enterprise"),
                     "institution": ("staffing", "staffing.institution_commitment",
                                     "institution"),
                     "social_org": ("civil", "civil.social_org_commitment", "social_org"),
                     "government": ("supervision", "supervision.service_commitment",
                                    "government_service")}
# The sixth is a 群团组织 (category 13).
_BODIES = ("发展和改革局", "住房和城乡建设局", "交通运输局", "城市管理和综合执法局", "卫生健康局",
           "妇女联合会")
_DISTRICT_NAMES = {"440402": "香洲区", "440403": "斗门区", "440404": "金湾区"}
_DEFAULTS = (("finance", "finance.unpaid_government_debt", "拖欠中小企业工程款"),
             ("supervision", "supervision.contract_breach", "未履行招商引资合同约定"),
             ("court", "court.government_dishonest_debtor", "未履行生效判决"))


def commitment_record(dept: str, item: str, kind: str, subject: DemoSubject, record_id: str,
                      signed_on: date, today: date, rng: random.Random,
                      breach_on: date | None = None) -> dict[str, Any]:
    """A signed public credit commitment (shared/commitments.py); with `breach_on`, its
    breach as revision 2."""
    data = submission(dept, item, subject, record_id, signed_on, rng,
                      revision=2 if breach_on else 1)
    data["attributes"] = {"commitment": {
        "kind": kind, "text_version": "2026-01",
        "signer": {"name": "王" + rng.choice(_GIVEN), "role": "法定代表人"
                   if subject.type == "enterprise" else "主要负责人"},
        "term_until": (today + timedelta(days=700)).isoformat()}}
    if breach_on is not None:
        document_no = f"{_DOC_PREFIX[dept]}{rng.randrange(1, 999)}号"
        data["attributes"]["breach"] = {"on": breach_on.isoformat(), "document_no": document_no,
                                        "summary": "未按承诺履行，经核查属实"}
    return data


def commitments_and_bodies(rng: random.Random, people: list[DemoSubject],
                           today: date) -> Iterator[tuple[str, dict[str, Any]]]:
    """Public credit commitments (some breached) and government bodies with service
    commitments and defaults (one resolved), for the commitment and 政务诚信 pages."""
    signed_on = max(today - timedelta(days=200), date(2026, 1, 1))
    for n, subject in enumerate(people):
        if subject.type not in _COMMITMENT_ITEMS or n % 7:
            continue
        dept, item, kind = _COMMITMENT_ITEMS[subject.type]
        record_id = f"DEMO-CM-{n:05d}"
        yield dept, commitment_record(dept, item, kind, subject, record_id, signed_on, today,
                                      rng)
        if n % 3 == 0:
            yield dept, commitment_record(dept, item, kind, subject, record_id, signed_on,
                                          today, rng, breach_on=today - timedelta(days=10))
    for n, name in enumerate(_BODIES):
        division = DISTRICTS[n % len(DISTRICTS)]
        body = DemoSubject("government", make_uscc("13" if n == 5 else "11", division, rng),
                           f"珠海市{_DISTRICT_NAMES[division]}{name}")
        dept, item, kind = _COMMITMENT_ITEMS["government"]
        yield dept, commitment_record(dept, item, kind, body, f"DEMO-SC-{n:02d}", signed_on,
                                      today, rng)
        if n == 1:
            yield dept, commitment_record(dept, item, kind, body, f"DEMO-SC-{n:02d}",
                                          signed_on, today, rng,
                                          breach_on=today - timedelta(days=20))
        if n >= 3:
            continue
        dept, item, summary = _DEFAULTS[n]
        default = submission(dept, item, body, f"DEMO-GOV-{n:02d}",
                             today - timedelta(days=rng.randrange(30, 120)), rng)
        default.update(summary=summary, district=division)
        yield dept, default
        if n == 0:  # the debt paid: withdrawn, so the list shows an exit
            yield dept, {"record_id": default["record_id"], "revision": 2,
                         "action": "withdraw", "subject": default["subject"]}



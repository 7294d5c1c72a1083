"""The credit report's content and verification codes (services/publisher/report.py)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest

from services.publisher import domain, report, report_render
from shared.catalogue import Catalogue
from shared.contract import SubjectRef
from tests.db.builders import archived
from tests.unit.factories import resident_id

ISSUED = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def content(catalogue: Catalogue, profile: dict[str, object]) -> dict[str, object]:
    return report.content(catalogue, profile, report_id="r-1", code="C", issued_at=ISSUED,
                          data_as_of=ISSUED, purpose="银行贷款审查",
                          verify_url="http://site/reports/verify?code=C",
                          objection_url="http://objections/new")


def sections(c: dict[str, object]) -> dict[str, dict[str, object]]:
    return {s["key"]: s for s in c["sections"]}  # type: ignore[attr-defined, index]


def test_a_subject_with_nothing_public_gets_every_section_empty(catalogue: Catalogue) -> None:
    profile = {"subject": {"type": "enterprise", "id": "91440400MA4W8KXA0X", "name": "珠海甲"},
               "records": [], "lists": [], "grade": None, "commitments": []}
    c = content(catalogue, profile)
    found = sections(c)
    assert set(found) == {"penalties", "lists", "positive", "other", "commitments",
                          "objections"}
    for s in found.values():
        assert s["entries"] == [] and s["empty"] == "未查询到相关记录"
    assert c["title"] == "公共信用信息报告"
    assert c["issued_at"] == "2026-11-30 10:00:00"  # CST
    assert c["purpose"] == "银行贷款审查"


def test_entries_go_to_their_sections_with_department_and_document_number(
        catalogue: Catalogue) -> None:
    subject = SubjectRef(type="enterprise", id="91440400MA4W8KXA0X", name="珠海甲")
    today = date(2026, 11, 30)
    penalty = archived("P-1", document_no="珠市监罚〔2026〕1号", disputed=True,
                       decided_on=date(2026, 10, 1), public_until=date(2027, 10, 1))
    records = domain.public_records(catalogue, subject, [penalty], today)
    records[0]["provenance"] = {"department": "amr", "record_id": "P-1", "revision": 1,
                                "event_id": "ev-77", "received_at": "2026-10-01T08:00:00Z"}
    profile = {"subject": domain.public_subject(subject), "records": records,
               "lists": [{"list": "court.dishonest_debtor", "name": "失信被执行人名单",
                          "kind": "black", "since": "2026-10-05", "until": "2029-10-05"}],
               "grade": {"grade": "C"},
               "commitments": [{"commitment_id": "CM-1", "kind": "repair",
                                "signed_on": "2026-11-01", "text": "本单位承诺……",
                                "signer": {"name": "张三", "role": "法定代表人"},
                                "status": "kept"}]}
    found = sections(content(catalogue, profile))
    [entry] = found["penalties"]["entries"]  # type: ignore[misc]
    assert entry["department"] == catalogue.departments["amr"].name
    assert entry["document_no"] == "珠市监罚〔2026〕1号"
    assert entry["disputed"] is True
    assert "ev-77" in entry["provenance"]
    [flag] = found["objections"]["entries"]  # type: ignore[misc]
    assert flag["disputed"] is True and flag["document_no"] == "珠市监罚〔2026〕1号"
    [listed] = found["lists"]["entries"]  # type: ignore[misc]
    assert "黑名单" in listed["name"] and catalogue.departments["court"].name in (
        listed["department"])
    [commitment] = found["commitments"]["entries"]  # type: ignore[misc]
    assert commitment["signer"] == "张三 法定代表人" and commitment["text"] == "本单位承诺……"
    assert found["positive"]["empty"] == "未查询到相关记录"


def test_an_individual_is_printed_masked_as_on_the_site(catalogue: Catalogue) -> None:
    number = resident_id()
    subject = SubjectRef(type="individual", id=number, name="李四")
    c = content(catalogue, {"subject": domain.public_subject(subject), "records": [],
                            "lists": []})
    printed = c["subject"]["id"]  # type: ignore[index]
    assert printed == domain.public_subject(subject)["id"]
    assert printed != number and printed[:6] == number[:6] and printed[-1] == number[-1]
    assert set(printed[6:-1]) == {"*"}


def test_a_code_has_at_least_80_random_bits_in_groups_of_a_readable_alphabet() -> None:
    code = report.new_code()
    groups = code.split("-")
    assert [len(g) for g in groups] == [report.CODE_GROUP] * (report.CODE_CHARS
                                                              // report.CODE_GROUP)
    assert all(c in report.ALPHABET for c in "".join(groups))
    assert not set("ILOU") & set(report.ALPHABET)
    assert report.CODE_CHARS * math.log2(len(report.ALPHABET)) >= 80
    assert len({report.new_code() for _ in range(1000)}) == 1000


def test_a_code_is_made_of_all_its_random_bits() -> None:
    assert report.new_code(lambda n: b"\x00" * n) == "00000-00000-00000-00000"
    assert report.new_code(lambda n: b"\xff" * n) == "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ"
    one_bit = report.new_code(lambda n: b"\x00" * (n - 1) + b"\x10")
    assert one_bit == "00000-00000-00000-00001"


def test_a_typed_code_is_read_leniently_and_anything_else_is_no_code() -> None:
    code = report.new_code()
    assert report.normalize_code(code) == code
    assert report.normalize_code(code.lower().replace("-", " ")) == code
    assert report.normalize_code("0000O-1111I-LLLL0-00000") == "00000-11111-11110-00000"
    for bad in ("", "ABC", code + "0", code[:-1] + "U", "x" * 100, code[:-1] + "!"):
        assert report.normalize_code(bad) is None


async def test_a_full_renderer_refuses_at_once_without_starting_a_process() -> None:
    renderer = report_render.Renderer(workers=1, queue_max=1, timeout_s=1)
    renderer.in_flight = renderer.slots
    with pytest.raises(report_render.Saturated):
        await renderer.render({})
    assert renderer._pool is None and renderer.in_flight == renderer.slots


def test_the_html_carries_the_code_the_qr_code_and_every_section() -> None:
    from shared.catalogue import load_catalogue

    code = report.new_code()
    c = report.content(load_catalogue(), {"subject": {"type": "enterprise", "id": "X",
                                                      "name": "珠海<甲>"}, "records": []},
                       report_id="r-1", code=code, issued_at=ISSUED, data_as_of=ISSUED,
                       purpose="审查", verify_url=f"http://site/reports/verify?code={code}",
                       objection_url="http://objections/new")
    html = report_render.html_of(c)
    assert code in html and 'lang="zh-CN"' in html and "data:image/svg+xml" in html
    assert "珠海&lt;甲&gt;" in html  # escaped
    assert html.count("未查询到相关记录") == len(report.SECTIONS)
    assert all(s.title in html for s in report.SECTIONS)

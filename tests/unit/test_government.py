"""Government integrity (services/publisher/government.py): district attribution, defaults
read from a body's archive, and the period's rules."""

from __future__ import annotations

from datetime import date

import pytest

from services.publisher import government
from shared.contract import SubjectRef
from shared.http import Problem
from tests.unit.factories import ENTERPRISE, archived, snapshot, uscc

BODY = SubjectRef(type="government", id=uscc("11440402007000001"), name="珠海市香洲区某局")
OLD_DOUMEN = uscc("11440421007000001")  # registered under 斗门县 (retired 2001)


@pytest.mark.parametrize(("district", "code", "on", "expected"), [
    ("440404", BODY.id, date(2026, 1, 1), "440404"),          # the record's district first
    (None, BODY.id, date(2026, 1, 1), "440402"),              # else the code's 3-8
    (None, OLD_DOUMEN, date(2026, 1, 1), "440403"),           # a retired one: its successor
    (None, OLD_DOUMEN, date(1999, 1, 1), "440421"),           # in force then
    (None, uscc("11440000007000001"), date(2026, 1, 1), "other"),  # a provincial body
    ("999999", BODY.id, date(2026, 1, 1), "440402"),          # an unknown district: the code
])
def test_district_attribution(catalogue, district, code, on, expected):
    assert government.attribute_district(catalogue, district, code, on) == expected


def test_defaults_of_a_body(catalogue):
    breach = {"commitment": {"kind": "government_service"},
              "breach": {"on": "2026-09-01", "document_no": "x", "summary": "y"}}
    records = [
        archived("finance.unpaid_government_debt", record_id="D-1", district="440404"),
        archived("supervision.contract_breach", record_id="D-2", status="withdrawn"),
        archived("supervision.service_commitment", record_id="S-1", attributes=breach),
        archived("supervision.service_commitment", record_id="S-2",
                 attributes={"commitment": {"kind": "government_service"}}),
    ]
    rows = government.default_rows(catalogue, snapshot(BODY, records))
    assert [(r[1], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("D-1", "unpaid_debt", "440404", date(2026, 6, 1), False),
        ("D-2", "contract_breach", "440402", date(2026, 6, 1), True),
        ("S-1", "service_commitment", "440402", date(2026, 9, 1), False),
    ]
    assert government.default_rows(catalogue, snapshot(ENTERPRISE, records)) == []


@pytest.mark.parametrize(("start", "end", "field", "code"), [
    ("2026-13-01", "2026-12-31", "from", "date_invalid"),
    ("2026/01/01", "2026-12-31", "from", "date_format"),
    (None, "2026-12-31", "from", "required"),
    ("2026-12-31", "2026-01-01", "from", "after_to"),
    ("2010-01-01", "2026-12-31", "to", "span_too_long"),
])
def test_bad_periods_name_their_field(start, end, field, code):
    with pytest.raises(Problem) as exc:
        government.period(start, end)
    assert exc.value.status == 422
    assert {(e["field"], e["code"]) for e in exc.value.errors or []} == {(field, code)}


def test_the_longest_period_is_allowed():
    start = date(2021, 1, 1)
    end = date.fromordinal(start.toordinal() + government.MAX_SPAN_DAYS - 1)
    assert government.period(start.isoformat(), end.isoformat()) == (start, end)


def test_every_district_and_kind_is_answered_with_zeros(catalogue):
    out = government.answer(catalogue, date(2026, 1, 1), date(2026, 12, 31), [
        {"district": "440402", "default_kind": "unpaid_debt", "opened": 2, "resolved": 1,
         "open_at_end": 1}])
    codes = [d["district"] for d in out["districts"]]
    assert "440421" not in codes and {"440400", "440402", "440403", "440404"} <= set(codes)
    xiangzhou = next(d for d in out["districts"] if d["district"] == "440402")
    assert xiangzhou["by_kind"]["unpaid_debt"] == {"opened": 2, "resolved": 1, "open_at_end": 1}
    assert xiangzhou["total"] == {"opened": 2, "resolved": 1, "open_at_end": 1}
    assert set(out["kinds"]) == {"unpaid_debt", "contract_breach", "dishonest_debtor",
                                 "service_commitment"}

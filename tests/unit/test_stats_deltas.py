"""The early warning's deltas as the stats service sends them: one per district, rule and
day of a batch, carrying the signed sum of its cases, with an id that is a function of them."""

from __future__ import annotations

import random
from datetime import date

import pytest
from pydantic import ValidationError

from services.stats import domain
from shared.contract import StatsDelta

RULE = "negative.high_incidence"
ON = domain.on_of(date(2026, 9, 30))
EARLIER = domain.on_of(date(2026, 9, 18))


def _case(record: str, district: str = "440402", on: object = ON, sign: int = 1,
          rule: str = RULE) -> StatsDelta:
    return StatsDelta(fact_id=domain.delta_id("amr", record, 1, rule, sign),
                      district=district, measure=rule, on=on, delta=sign)


def test_a_batch_sends_one_signed_sum_per_district_rule_and_day() -> None:
    cases = [_case("A"), _case("B"), _case("C", "440403"), _case("D", on=EARLIER),
             _case("E", on=EARLIER, sign=-1), _case("F", on=EARLIER, sign=-1),
             _case("G", rule="wage_arrears.high_incidence")]
    sums = domain.batch_deltas(cases)
    assert {(d.district, d.measure, d.on, d.delta) for d in sums} == {
        ("440402", RULE, ON, 2), ("440403", RULE, ON, 1), ("440402", RULE, EARLIER, -1),
        ("440402", "wage_arrears.high_incidence", ON, 1)}
    # Every case is in one sum: the windows see what SQL counts.
    assert sum(d.delta for d in sums) == sum(c.delta for c in cases)


def test_cases_that_cancel_out_send_nothing() -> None:
    assert domain.batch_deltas([_case("A"), _case("B", sign=-1)]) == []
    assert domain.batch_deltas([]) == []


def test_the_id_is_a_function_of_the_cases_summed() -> None:
    cases = [_case(r) for r in "ABCDE"]
    [first] = domain.batch_deltas(cases)
    shuffled = cases[:]
    random.Random(7).shuffle(shuffled)
    [again] = domain.batch_deltas(shuffled)
    assert again.fact_id == first.fact_id  # the same cases applied again: the same id
    [fewer] = domain.batch_deltas(cases[:4])
    assert fewer.fact_id != first.fact_id and fewer.delta == 4
    # Not the id of any case it sums.
    assert first.fact_id not in {c.fact_id for c in cases}


def test_a_delta_moves_a_window() -> None:
    with pytest.raises(ValidationError, match="moves no window"):
        StatsDelta(fact_id="x", district="440402", measure=RULE, on=ON, delta=0)
    assert StatsDelta(fact_id="x", district="440402", measure=RULE, on=ON, delta=-7).delta == -7

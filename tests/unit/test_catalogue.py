"""shared/catalogue.py and shared/catalogue.yaml: the real catalogue loads, and a broken one
is refused with a message that names the offending path."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from shared.catalogue import DEFAULT_CATALOGUE_PATH, Catalogue, load_catalogue

BLACK_LIST_AGENCIES = {"finance-procurement", "housing-bidding", "land", "ndrc-projects"}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    with open(DEFAULT_CATALOGUE_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture
def broken(raw: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of the real catalogue's data, to be broken by one test."""
    return copy.deepcopy(raw)


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as exc:
        Catalogue.model_validate(data)
    return str(exc.value)


# --- the real catalogue ----------------------------------------------------------------


def test_real_catalogue_loads(catalogue):
    assert catalogue.version
    assert "court.dishonest_debtor" in catalogue.items
    assert "91350100M0001TGQXM" in catalogue.legacy_uscc


def test_load_catalogue_accepts_a_path(tmp_path, raw):
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert load_catalogue(path).items.keys() == load_catalogue().items.keys()


def test_real_catalogue_validates_from_its_raw_data(raw):
    assert Catalogue.model_validate(copy.deepcopy(raw)).lists


def test_every_negative_item_has_a_severity(catalogue):
    for name, item in catalogue.items.items():
        if item.polarity == "negative":
            assert item.severity is not None, name


def test_court_item_refuses_minors(catalogue):
    """DOMAIN.md line 77 (法释〔2017〕7号): minors are not listed."""
    assert catalogue.items["court.dishonest_debtor"].minimum_age == 18


def test_court_list_lasts_two_years(catalogue):
    """DOMAIN.md line 76: listed for 2 years."""
    assert catalogue.lists["court.dishonest_debtor"].validity_years == 2


def test_every_list_states_its_basis_and_exit(catalogue):
    """DOMAIN.md lines 73-75 (国办发〔2020〕49号): entry criteria must state exit conditions."""
    for name, lst in catalogue.lists.items():
        assert lst.basis.strip(), name
        assert lst.exit.strip(), name


def test_retired_doumen_county_is_only_in_force_1983_to_2001(catalogue):
    """DOMAIN.md line 35: 440421 斗门县 (1983-2001, retired)."""
    county = catalogue.districts["440421"]
    assert county.in_force_on(date(1995, 1, 1))
    assert county.in_force_on(date(2001, 3, 31))
    assert not county.in_force_on(date(2001, 4, 1))
    assert not county.in_force_on(date(1983, 6, 30))


def test_doumen_and_jinwan_districts_exist_since_2001(catalogue):
    """DOMAIN.md lines 34-35: 440403 and 440404 since 2001."""
    for code in ("440403", "440404"):
        assert not catalogue.districts[code].in_force_on(date(2000, 12, 31))
        assert catalogue.districts[code].in_force_on(date(2026, 1, 1))


# --- cross-reference checks ---------------------------------------------------------------


def test_item_with_unknown_department_is_refused(broken):
    broken["items"]["court.dishonest_debtor"]["department"] = "police"
    message = refusal(broken)
    assert "items.court.dishonest_debtor.department" in message
    assert "police" in message


def test_item_named_outside_its_department_is_refused(broken):
    broken["items"]["court.dishonest_debtor"]["department"] = "tax"
    assert "items.court.dishonest_debtor: must start with 'tax.'" in refusal(broken)


def test_list_naming_an_unknown_item_is_refused(broken):
    broken["lists"]["tax.major_violation"]["items"].append("tax.no_such_item")
    message = refusal(broken)
    assert "lists.tax.major_violation.items" in message
    assert "tax.no_such_item" in message


def test_measure_naming_an_unknown_agency_is_refused(broken):
    broken["measures"]["land.restrict"]["agency"] = "no-such-agency"
    message = refusal(broken)
    assert "measures.land.restrict.agency" in message
    assert "no-such-agency" in message


def test_measure_naming_an_unknown_list_is_refused(broken):
    broken["measures"]["land.restrict"]["lists"].append("court.no_such_list")
    message = refusal(broken)
    assert "measures.land.restrict.lists" in message
    assert "court.no_such_list" in message


def test_penalty_measure_on_a_red_list_is_refused(broken):
    broken["measures"]["land.restrict"]["lists"].append("tax.a_grade")
    message = refusal(broken)
    assert "measures.land.restrict" in message
    assert "penalty" in message
    assert "tax.a_grade" in message


def test_reward_measure_on_a_black_list_is_refused(broken):
    broken["measures"]["projects.fast_track"]["lists"].append("court.dishonest_debtor")
    message = refusal(broken)
    assert "measures.projects.fast_track" in message
    assert "court.dishonest_debtor" in message


def test_negative_item_without_severity_is_refused(broken):
    del broken["items"]["amr.admin_penalty"]["severity"]
    message = refusal(broken)
    assert "items" in message
    assert "amr.admin_penalty" in message
    assert "severity" in message


def test_disclosure_rule_missing_a_severity_used_by_an_item_is_refused(broken):
    del broken["disclosure_rules"][1]["periods"]["serious"]
    message = refusal(broken)
    assert "disclosure_rules.ndrc-order-36" in message
    assert "serious" in message


def test_catalogue_without_disclosure_rules_is_refused(broken):
    broken["disclosure_rules"] = []
    assert "disclosure_rules" in refusal(broken)


def test_every_problem_is_reported_at_once(broken):
    broken["measures"]["land.restrict"]["agency"] = "no-such-agency"
    broken["lists"]["tax.major_violation"]["items"].append("tax.no_such_item")
    message = refusal(broken)
    assert "measures.land.restrict.agency" in message
    assert "lists.tax.major_violation.items" in message


@pytest.mark.parametrize(("kind", "code", "expected"), [
    ("departments", "tax.audit", "departments.tax.audit"),   # a dot: groups of `tax.`
    ("agencies", "Land", "agencies.Land"),
    ("agencies", "ops-audit", "agencies.ops-audit"),         # the operators' groups `ops.`
    ("departments", "xinyong-x", "departments.xinyong-x"),   # the services' prefix
    ("agencies", "tax", "agencies.tax"),                     # a department's code
])
def test_a_party_code_that_could_reach_another_partys_groups_is_refused(
        broken, kind, code, expected):
    template = next(iter(broken[kind].values()))
    broken[kind][code] = dict(template)
    assert expected in refusal(broken)


def test_unknown_field_is_refused(broken):
    broken["items"]["amr.admin_penalty"]["severty"] = "general"
    assert "severty" in refusal(broken)


# --- disclosure rule versions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("decided_on", "rule"),
    [(date(2019, 7, 1), "ndrc-2019-527"), (date(2025, 5, 1), "ndrc-2019-527"),
     (date(2026, 3, 31), "ndrc-2019-527"), (date(2026, 4, 1), "ndrc-order-36"),
     (date(2027, 1, 1), "ndrc-order-36")],
)
def test_disclosure_rule_on_decision_date(catalogue, decided_on, rule):
    """DOMAIN.md lines 44-52: Order 36 from 2026-04-01; 发改办财金〔2019〕527号 before."""
    assert catalogue.disclosure_rule_on(decided_on).id == rule


def test_disclosure_rule_before_any_rule_falls_back_to_the_earliest(catalogue):
    assert catalogue.disclosure_rule_on(date(2010, 1, 1)).id == "ndrc-2019-527"


def test_disclosure_periods_match_the_rules(catalogue):
    """DOMAIN.md lines 46-52: serious 1-3 years under Order 36, 6 months-3 years before;
    general 3 months-1 year under both."""
    old = catalogue.disclosure_rule_on(date(2025, 1, 1)).periods
    new = catalogue.disclosure_rule_on(date(2026, 5, 1)).periods
    assert (new["serious"].min_months, new["serious"].max_months) == (12, 36)
    assert (old["serious"].min_months, old["serious"].max_months) == (6, 36)
    for periods in (old, new):
        assert (periods["general"].min_months, periods["general"].max_months) == (3, 12)
        assert periods["minor"].max_months == 3


# --- lists and measures -------------------------------------------------------------------


@pytest.mark.parametrize(("item", "lists"), [
    ("court.dishonest_debtor", ["court.dishonest_debtor"]),
    ("tax.major_violation", ["tax.major_violation"]),
    ("tax.a_grade_taxpayer", ["tax.a_grade"]),
    ("amr.admin_penalty", []),
    ("amr.legal_representative", []),
])
def test_lists_fed_by_item(catalogue, item, lists):
    assert catalogue.lists_fed_by(item) == lists


def agencies_of(catalogue, list_name: str) -> set[str]:
    return {m.agency for _, m in catalogue.measures_for(list_name)}


def test_every_black_list_restricts_the_four_core_agencies(catalogue):
    for name, lst in catalogue.lists.items():
        if lst.kind == "black" and name != GOVERNMENT_LIST:
            assert agencies_of(catalogue, name) >= BLACK_LIST_AGENCIES, name
            assert {m.kind for _, m in catalogue.measures_for(name)} == {"penalty"}, name


GOVERNMENT_LIST = "supervision.defaulting_bodies"


def test_the_defaulting_bodies_list_only_notifies_the_supervising_body(catalogue):
    """政务诚信: a notice to the supervising body (责任追究), no market-access measure."""
    assert agencies_of(catalogue, GOVERNMENT_LIST) == {"supervising-body"}
    for item in catalogue.lists[GOVERNMENT_LIST].items:
        assert catalogue.items[item].subject_types == ("government",), item
        assert catalogue.items[item].default_kind, item
    assert catalogue.lists[GOVERNMENT_LIST].basis and catalogue.lists[GOVERNMENT_LIST].exit


def test_a_commitment_item_without_its_section_is_refused(broken):
    del broken["items"]["industry.enterprise_commitment"]["commitment"]
    assert "polarity commitment" in refusal(broken)


def test_a_commitment_kind_claimed_twice_or_repair_is_refused(broken):
    broken["items"]["civil.social_org_commitment"]["commitment"]["kind"] = "enterprise"
    assert "commitment.kind" in refusal(broken)
    broken["items"]["civil.social_org_commitment"]["commitment"]["kind"] = "repair"
    assert "repair" in refusal(broken)


def test_the_platform_department_needs_its_one_commitment_item(broken):
    broken["commitments"]["platform_department"] = "tax"
    assert "commitments.platform_department" in refusal(broken)


@pytest.mark.parametrize("list_name", ["court.dishonest_debtor", "tax.major_violation"])
def test_court_and_tax_lists_also_restrict_hiring(catalogue, list_name):
    assert agencies_of(catalogue, list_name) == BLACK_LIST_AGENCIES | {"hrss-hiring"}


def test_wage_arrears_list_does_not_restrict_hiring(catalogue):
    assert agencies_of(catalogue, "hrss.wage_arrears") == BLACK_LIST_AGENCIES


def test_hiring_restriction_extends_to_the_legal_representative(catalogue):
    measures = dict(catalogue.measures_for("court.dishonest_debtor"))
    assert measures["hiring.restrict"].extends_to == ("legal_representative",)
    assert measures["procurement.exclude"].extends_to == ()


@pytest.mark.parametrize("list_name", ["tax.a_grade", "customs.advanced_certified"])
def test_red_lists_grant_projects_and_procurement_rewards(catalogue, list_name):
    measures = catalogue.measures_for(list_name)
    assert {m.agency for _, m in measures} == {"ndrc-projects", "finance-procurement"}
    assert {m.kind for _, m in measures} == {"reward"}


def test_measures_for_unknown_list_is_empty(catalogue):
    assert catalogue.measures_for("no.such_list") == []

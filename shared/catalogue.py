"""The credit information catalogue (公共信用信息目录), loaded from YAML and cross-checked.

The catalogue is data: departments, agencies, catalogue items, list types and joint
measures. `load_catalogue` refuses a catalogue whose parts do not refer to each other
correctly, so a bad edit stops a service at start-up instead of misrouting records.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contract import SubjectType

DEFAULT_CATALOGUE_PATH = Path(__file__).with_name("catalogue.yaml")

Severity = Literal["minor", "general", "serious"]
Polarity = Literal["negative", "positive", "neutral"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Department(_Frozen):
    name: str


class Agency(_Frozen):
    name: str


class DisclosurePeriod(_Frozen):
    min_months: int = Field(ge=0)
    max_months: int = Field(ge=0)


class DisclosureRule(_Frozen):
    id: str
    basis: str
    effective_from: date
    periods: dict[Severity, DisclosurePeriod]


class CatalogueItem(_Frozen):
    name: str
    department: str
    subject_types: tuple[SubjectType, ...]
    polarity: Polarity
    severity: Severity | None = None
    disclosure: Literal["public", "internal"]
    minimum_age: int | None = None
    key_person_role: str | None = None
    # An item with a removal procedure of its own (a court's deletion on performance, tax
    # and wage-arrears early removal) is not repaired under NDRC Order 36: a repair request
    # is told which procedure applies instead.
    own_removal: str | None = None

    @model_validator(mode="after")
    def _negative_needs_severity(self) -> CatalogueItem:
        if self.polarity == "negative" and self.severity is None:
            raise ValueError("a negative item needs a severity")
        return self


class ListType(_Frozen):
    """A red or black list (红黑名单) and its entry rule."""

    name: str
    kind: Literal["red", "black"]
    items: tuple[str, ...]
    notice_period_days: int = Field(ge=0)
    validity_years: int = Field(ge=1)
    basis: str
    exit: str
    # Who tells the subject before it is listed (国办发〔2020〕49号): the department in its
    # own decision, or Xinyong, whose notice period then runs from the notification.
    notified_by: Literal["department", "xinyong"] = "department"
    # 重大税收违法失信主体 are published in the month after the decision is served
    # (国家税务总局令第54号): the record's `attributes.served_on`.
    publish_month_after_service: bool = False


class CommitmentText(_Frozen):
    effective_from: date
    text: str


class RepairSteps(_Frozen):
    """Working days of each step of a repair request."""

    accept: int = Field(ge=0)
    check: int = Field(ge=0)
    decide: int = Field(ge=1)
    pass_on: int = Field(ge=0)


class RepairRules(_Frozen):
    basis: str
    steps: RepairSteps
    commitment_texts: dict[str, CommitmentText]


class Measure(_Frozen):
    """A joint reward or penalty measure (联合奖惩措施) one agency applies to listed subjects."""

    name: str
    agency: str
    kind: Literal["penalty", "reward"]
    lists: tuple[str, ...]
    extends_to: tuple[str, ...] = ()


class District(_Frozen):
    name: str
    valid_from: date | None = None
    valid_until: date | None = None

    def in_force_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )


class Zone(_Frozen):
    name: str


class Catalogue(_Frozen):
    version: str
    departments: dict[str, Department]
    agencies: dict[str, Agency]
    disclosure_rules: tuple[DisclosureRule, ...]
    positive_disclosure_months: int
    items: dict[str, CatalogueItem]
    lists: dict[str, ListType]
    measures: dict[str, Measure]
    districts: dict[str, District]
    zones: dict[str, Zone]
    repair: RepairRules
    legacy_uscc: frozenset[str] = frozenset()

    @model_validator(mode="after")
    def _references_resolve(self) -> Catalogue:
        problems = list(_reference_problems(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def disclosure_rule_on(self, decided_on: date) -> DisclosureRule:
        """The rule version in force on a decision date (the earliest one before any)."""
        rules = sorted(self.disclosure_rules, key=lambda r: r.effective_from)
        applicable = [r for r in rules if r.effective_from <= decided_on]
        return applicable[-1] if applicable else rules[0]

    def lists_fed_by(self, item: str) -> list[str]:
        return [name for name, lst in self.lists.items() if item in lst.items]

    def measures_for(self, list_name: str) -> list[tuple[str, Measure]]:
        return [(name, m) for name, m in self.measures.items() if list_name in m.lists]


def _reference_problems(cat: Catalogue) -> list[str]:
    problems = []
    for name, item in cat.items.items():
        if name.split(".", 1)[0] != item.department:
            problems.append(f"items.{name}: must start with '{item.department}.'")
        if item.department not in cat.departments:
            problems.append(f"items.{name}.department: unknown department '{item.department}'")
        if item.severity is not None:
            for rule in cat.disclosure_rules:
                if item.severity not in rule.periods:
                    problems.append(f"disclosure_rules.{rule.id}: no period for '{item.severity}'")
    for name, lst in cat.lists.items():
        for item_name in lst.items:
            if item_name not in cat.items:
                problems.append(f"lists.{name}.items: unknown item '{item_name}'")
    for name, measure in cat.measures.items():
        if measure.agency not in cat.agencies:
            problems.append(f"measures.{name}.agency: unknown agency '{measure.agency}'")
        for list_name in measure.lists:
            if list_name not in cat.lists:
                problems.append(f"measures.{name}.lists: unknown list '{list_name}'")
            elif (cat.lists[list_name].kind == "black") != (measure.kind == "penalty"):
                problems.append(f"measures.{name}: a {measure.kind} cannot apply to a "
                                f"{cat.lists[list_name].kind} list '{list_name}'")
    if not cat.disclosure_rules:
        problems.append("disclosure_rules: at least one rule is needed")
    return problems


def load_catalogue(path: Path | str = DEFAULT_CATALOGUE_PATH) -> Catalogue:
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    return Catalogue.model_validate(raw)

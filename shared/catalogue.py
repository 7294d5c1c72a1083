"""The credit information catalogue (公共信用信息目录), loaded from YAML and cross-checked.

The catalogue is data: departments, agencies, catalogue items, list types and joint
measures. `load_catalogue` refuses a catalogue whose parts do not refer to each other
correctly, so a bad edit stops a service at start-up instead of misrouting records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contract import SubjectType

DEFAULT_CATALOGUE_PATH = Path(__file__).with_name("catalogue.yaml")

Severity = Literal["minor", "general", "serious"]
# `commitment`: a public credit commitment (守信公开承诺), kept or breached; a breached one is
# negative information of its item's `breach_severity` (shared/commitments.py).
Polarity = Literal["negative", "positive", "neutral", "commitment"]


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


class PenaltyClass(_Frozen):
    name: str
    display_months: int = Field(ge=1)


class PenaltyField(_Frozen):
    name: str
    min_display_months: int = Field(ge=1)


class MarketRegulationRegime(_Frozen):
    """Market regulation's disclosure of administrative penalties (市场监督管理行政处罚信息公示
    规定): how long a penalty shows depends on its class, which the department sends in the
    record's attributes (the amount that makes a fine "small" is the province's, so no amount
    is written here); penalties in some fields show for at least a year."""

    kind: Literal["market_regulation"]
    basis: str
    class_attribute: str
    classes: dict[str, PenaltyClass]
    field_attribute: str
    fields: dict[str, PenaltyField] = Field(default_factory=dict)


class WhileListedRegime(_Frozen):
    """A record that shows while its subject is on a list (the court's dishonest debtors,
    法释〔2017〕7号): for the list's validity from the decision, plus any extension the
    department sends in the record's attributes."""

    kind: Literal["while_listed"]
    basis: str
    list: str
    extension_attribute: str
    extension_min_years: int = Field(ge=1)
    extension_max_years: int = Field(ge=1)
    removal: str


class FixedRegime(_Frozen):
    """A fixed display period set by the item's own regulation (tax: Order 54)."""

    kind: Literal["fixed"]
    basis: str
    display_months: int = Field(ge=1)
    removal: str


Regime = Annotated[MarketRegulationRegime | WhileListedRegime | FixedRegime,
                   Field(discriminator="kind")]


class CommitmentText(_Frozen):
    effective_from: date
    text: str


# The kind a commitment signed with a credit repair request shows as (NDRC Order 36); no
# catalogue item may claim it.
REPAIR_KIND = "repair"


class CommitmentItem(_Frozen):
    """What makes an item a public credit commitment (守信公开承诺): its kind, the seed's basis
    for it, the standard texts by version, and how serious breaking it is."""

    kind: str = Field(pattern=r"^[a-z_]+$")
    basis: str
    breach_severity: Severity
    texts: dict[str, CommitmentText] = Field(min_length=1)


class CatalogueItem(_Frozen):
    name: str
    department: str
    subject_types: tuple[SubjectType, ...]
    polarity: Polarity
    severity: Severity | None = None
    disclosure: Literal["public", "internal"]
    # A disclosure regime of its own (`disclosure_regimes`), else the NDRC rule versions.
    regime: str | None = None
    minimum_age: int | None = None
    key_person_role: str | None = None
    # 双公示: administrative licensing and penalty decisions are published within 7 working
    # days of the decision (DOMAIN.md); the department scorecards measure it.
    double_publicity: bool = False
    # An item with a removal procedure of its own (a court's deletion on performance, tax
    # and wage-arrears early removal) is not repaired under NDRC Order 36: a repair request
    # is told which procedure applies instead.
    own_removal: str | None = None
    # Of a commitment item (polarity `commitment`): kind, texts, breach severity.
    commitment: CommitmentItem | None = None
    # Of a government body's default (政务诚信): the kind it is counted under per district.
    default_kind: str | None = None

    @model_validator(mode="after")
    def _negative_needs_severity(self) -> CatalogueItem:
        if self.polarity == "negative" and self.severity is None:
            raise ValueError("a negative item needs a severity")
        if (self.polarity == "commitment") != (self.commitment is not None):
            raise ValueError("an item of polarity commitment, and only one, has `commitment`")
        if self.polarity == "commitment" and self.severity is not None:
            raise ValueError("a commitment's severity is its `commitment.breach_severity`")
        if self.commitment is not None and self.commitment.kind == REPAIR_KIND:
            raise ValueError(f"kind '{REPAIR_KIND}' is the repair commitments' own")
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


class CommitmentRules(_Frozen):
    """Public credit commitments as a whole: the platform's department (the city credit
    office at 市发改局) under which a subject's self-signed commitment is recorded, the source
    of the breach severity, and the longest term."""

    platform_department: str
    breach_basis: str
    max_term_months: int = Field(ge=1, le=240)


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
    # Working days (shared/clock.py) the agency has to report `applied` or `not_applicable`
    # on a notice of this measure, revocations included (CONTRACT.md, "Agencies over HTTP").
    feedback_within: int = Field(ge=1, le=250)


class EarlyWarning(_Frozen):
    """A rule of the early warning on high-incidence districts (高发地区信用风险预警, the seed
    work plan): `threshold` cases or more in a district within a rolling window of
    `window_days`, moving by `step_days`. Cases are the negative records of `items` (every
    negative item when empty) decided in the district; a withdrawn record stops counting."""

    name: str
    items: tuple[str, ...] = ()
    window_days: int = Field(ge=1, le=366)
    step_days: int = Field(ge=1, le=366)
    threshold: int = Field(ge=1)

    @model_validator(mode="after")
    def _step_divides_window(self) -> EarlyWarning:
        if self.step_days > self.window_days or self.window_days % self.step_days:
            raise ValueError("step_days must divide window_days")
        return self


class District(_Frozen):
    name: str
    valid_from: date | None = None
    valid_until: date | None = None
    # A retired division's successor (斗门县 -> 斗门区): codes registered under the old one
    # count in the new one (services/publisher/government.py).
    succeeded_by: str | None = None

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
    # Why positive records show as long as they do (no regulation sets it).
    positive_disclosure_basis: str
    disclosure_regimes: dict[str, Regime] = Field(default_factory=dict)
    items: dict[str, CatalogueItem]
    lists: dict[str, ListType]
    measures: dict[str, Measure]
    districts: dict[str, District]
    zones: dict[str, Zone]
    repair: RepairRules
    commitments: CommitmentRules
    legacy_uscc: frozenset[str] = frozenset()
    early_warnings: dict[str, EarlyWarning] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references_resolve(self) -> Catalogue:
        problems = list(_reference_problems(self))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def disclosure_rule_on(self, decided_on: date) -> DisclosureRule:
        """The rule version in force on a decision date (the earliest one before any)."""
        rules = self._rules_in_order
        applicable = [r for r in rules if r.effective_from <= decided_on]
        return applicable[-1] if applicable else rules[0]

    def commitment_items(self) -> dict[str, CatalogueItem]:
        return {n: i for n, i in self.items.items() if i.commitment is not None}

    def platform_commitment_item(self) -> str:
        """The item a subject's self-signed commitment is recorded as: the platform
        department's commitment item (checked to exist, and to be the only one)."""
        return next(n for n, i in self.commitment_items().items()
                    if i.department == self.commitments.platform_department)

    def regime_of(self, item_name: str) -> Regime | None:
        regime = self.items[item_name].regime
        return self.disclosure_regimes[regime] if regime is not None else None

    def lists_fed_by(self, item: str) -> list[str]:
        return list(self._lists_by_item.get(item, ()))

    def measures_for(self, list_name: str) -> list[tuple[str, Measure]]:
        return list(self._measures_by_list.get(list_name, ()))

    def shows_while_listed(self, item_name: str) -> bool:
        """Whether the public sees a record of the item only while a published list entry
        rests on it: the court's (its regime, 法释〔2017〕7号), and every item of a list the
        subject is told of before publication (国办发〔2020〕49号: a notice period; Order 54's
        month after service). There the record is the listing: shown at once, it would
        publish the listing before the subject could object."""
        return item_name in self._shown_while_listed

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Catalogue:
        """A copy (what-if, tests) whose indexes are made from its own lists and measures,
        never the original's."""
        copy = super().model_copy(update=update, deep=deep)
        for name in _INDEXES:
            copy.__dict__.pop(name, None)
        return copy

    # Asked for every record of every snapshot: indexes made once (the catalogue is frozen;
    # a cached_property lives in the instance's __dict__, read at plain attribute speed).
    @cached_property
    def _rules_in_order(self) -> list[DisclosureRule]:
        return sorted(self.disclosure_rules, key=lambda r: r.effective_from)

    @cached_property
    def _lists_by_item(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for name, lst in self.lists.items():
            for item in lst.items:
                found.setdefault(item, []).append(name)
        return found

    @cached_property
    def _shown_while_listed(self) -> frozenset[str]:
        noticed = (item for lst in self.lists.values()
                   if lst.notified_by == "xinyong" or lst.notice_period_days > 0
                   or lst.publish_month_after_service for item in lst.items)
        by_regime = (name for name in self.items
                     if isinstance(self.regime_of(name), WhileListedRegime))
        return frozenset((*noticed, *by_regime))

    @cached_property
    def _measures_by_list(self) -> dict[str, list[tuple[str, Measure]]]:
        found: dict[str, list[tuple[str, Measure]]] = {}
        for name, m in self.measures.items():
            for list_name in m.lists:
                found.setdefault(list_name, []).append((name, m))
        return found

    @cached_property
    def _warnings_by_item(self) -> dict[str, list[str]]:
        return {item: [name for name, rule in self.early_warnings.items()
                       if not rule.items or item in rule.items]
                for item, entry in self.items.items() if entry.polarity == "negative"}

    def warnings_counting(self, item: str) -> list[str]:
        """The early-warning rules a negative record of `item` counts for (asked for every
        accepted record the stats service reads)."""
        return list(self._warnings_by_item.get(item, ()))


# A party's code names its topics, its Kafka user and the prefix of its consumer groups
# (`<code>.`, shared/access.py): no dot inside, no code another party's prefix covers.
_PARTY_CODE = re.compile(r"[a-z][a-z0-9-]{0,39}")
_RESERVED_CODES = ("ops", "xinyong")


def _party_code_problems(cat: Catalogue) -> list[str]:
    problems = []
    for kind, codes in (("departments", cat.departments), ("agencies", cat.agencies)):
        for code in codes:
            if not _PARTY_CODE.fullmatch(code):
                problems.append(f"{kind}.{code}: a code is lower-case letters, digits and '-'"
                                " (it names topics, a Kafka user and group prefixes)")
            if code.startswith(_RESERVED_CODES):
                problems.append(f"{kind}.{code}: codes starting with 'ops' or 'xinyong' are "
                                "the operators' and the services'")
    for code in sorted(set(cat.departments) & set(cat.agencies)):
        problems.append(f"agencies.{code}: also a department's code (their consumer groups "
                        "would be one another's)")
    return problems


def _reference_problems(cat: Catalogue) -> list[str]:
    problems = _party_code_problems(cat)
    for name, item in cat.items.items():
        if name.split(".", 1)[0] != item.department:
            problems.append(f"items.{name}: must start with '{item.department}.'")
        if item.department not in cat.departments:
            problems.append(f"items.{name}.department: unknown department '{item.department}'")
        if item.severity is not None:
            for rule in cat.disclosure_rules:
                if item.severity not in rule.periods:
                    problems.append(f"disclosure_rules.{rule.id}: no period for '{item.severity}'")
        if item.regime is not None and item.regime not in cat.disclosure_regimes:
            problems.append(f"items.{name}.regime: unknown regime '{item.regime}'")
    for name, regime in cat.disclosure_regimes.items():
        if isinstance(regime, WhileListedRegime):
            if regime.list not in cat.lists:
                problems.append(f"disclosure_regimes.{name}.list: unknown list '{regime.list}'")
            if regime.extension_min_years > regime.extension_max_years:
                problems.append(f"disclosure_regimes.{name}: extension_min_years is above "
                                "extension_max_years")
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
    if len({(w.window_days, w.step_days) for w in cat.early_warnings.values()}) > 1:
        # One windowed table holds every rule's counts (services/stats/windows.py).
        problems.append("early_warnings: every rule has the same window_days and step_days")
    for name, warning in cat.early_warnings.items():
        for item_name in warning.items:
            if item_name not in cat.items:
                problems.append(f"early_warnings.{name}.items: unknown item '{item_name}'")
            elif cat.items[item_name].polarity != "negative":
                problems.append(f"early_warnings.{name}.items: '{item_name}' is not negative")
    problems += _commitment_problems(cat)
    for code, district in cat.districts.items():
        if district.succeeded_by is not None and district.succeeded_by not in cat.districts:
            problems.append(f"districts.{code}.succeeded_by: unknown district "
                            f"'{district.succeeded_by}'")
    if not cat.disclosure_rules:
        problems.append("disclosure_rules: at least one rule is needed")
    return problems


def _commitment_problems(cat: Catalogue) -> list[str]:
    problems = []
    kinds: dict[str, str] = {}
    for name, item in cat.commitment_items().items():
        assert item.commitment is not None
        if item.commitment.kind in kinds:
            problems.append(f"items.{name}.commitment.kind: '{item.commitment.kind}' is "
                            f"also {kinds[item.commitment.kind]}'s")
        kinds[item.commitment.kind] = name
        for rule in cat.disclosure_rules:
            if item.commitment.breach_severity not in rule.periods:
                problems.append(f"disclosure_rules.{rule.id}: no period for "
                                f"'{item.commitment.breach_severity}'")
        if item.regime is not None:
            problems.append(f"items.{name}.regime: a commitment follows the NDRC rules")
    platform = cat.commitments.platform_department
    if platform not in cat.departments:
        problems.append(f"commitments.platform_department: unknown department '{platform}'")
    own = [n for n, i in cat.commitment_items().items() if i.department == platform]
    if len(own) != 1:
        problems.append(f"commitments.platform_department: '{platform}' needs exactly one "
                        f"commitment item, has {len(own)}")
    return problems


def load_catalogue(path: Path | str = DEFAULT_CATALOGUE_PATH) -> Catalogue:
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    return Catalogue.model_validate(raw)


_INDEXES = tuple(name for name, value in vars(Catalogue).items()
                 if isinstance(value, cached_property))

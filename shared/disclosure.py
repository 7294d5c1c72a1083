"""The disclosure and retention rules of credit information (信用信息的公示与保存), in one place:
how long a record shows on the public site and from when its subject may ask for repair
(the rule version in force on its decision date, or its item's own regime), and when a
person's negative information is erased. Used by ingest (what a submission must carry),
the registry (each record's window, kept with it), the publisher (what shows, how long a
listing lasts) and the objection service (when its copies are erased). Pure functions.

Rule versions (the catalogue's `disclosure_rules` and `disclosure_regimes`):

- Administrative penalties: 发改办财金〔2019〕527号 (from 2019-07-01), NDRC Order 36 from
  2026-04-01. Order 58 (2023) is not encoded: its text is not at hand, so records decided
  before 2026-04-01 keep 527's periods (docs/decisions.md, "Disclosure rules").
- Market regulation (市场监督管理行政处罚信息公示规定): by the penalty's class, sent by the
  department (`attributes.penalty_class`); special equipment, work safety and fire safety at
  least a year (`attributes.penalty_field`).
- Court dishonest debtors (法释〔2017〕7号): the record shows while the debtor is listed: two
  years from the decision, plus the extension the court sends (1 to 3 years), so the NDRC
  "serious" maximum never cuts a listing short.
- Major tax violations (国家税务总局令第54号): three years.
- Positive records: the catalogue's `positive_disclosure_months`, for the reason it gives.
- Public credit commitments (shared/commitments.py): a kept one shows until its term ends; a
  breached one is negative information of its item's breach severity, under the NDRC rule
  in force on the breach date, counted from it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared import commitments
from shared.catalogue import (
    Catalogue,
    FixedRegime,
    MarketRegulationRegime,
    WhileListedRegime,
)
from shared.contract import ArchivedRecord

# 征信业管理条例 (2013) art. 16: a person's negative information is kept five years from the day
# the act or event ended, then deleted.
RETENTION_YEARS = 5
POSITIVE_RULE = "positive-disclosure"


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 January + 1 = 28 or 29
    February)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def add_years(day: date, years: int) -> date:
    return add_months(day, 12 * years)


@dataclass(frozen=True)
class Window:
    """A record's disclosure: the rule version it follows, the earliest day its subject may
    ask for repair (None: not through repair), the last day it shows (None: never public)."""

    rule: str | None
    repair_from: date | None
    public_until: date | None


def window(catalogue: Catalogue, item_name: str, decided_on: date,
           attributes: dict[str, Any] | None = None) -> Window:
    """The disclosure window of a record of `item_name` decided on `decided_on`."""
    item = catalogue.items[item_name]
    attributes = attributes or {}
    if item.disclosure != "public":
        return Window(None, None, None)
    polarity, severity = commitments.standing(item, attributes)
    if polarity == "commitment":
        return Window(commitments.COMMITMENT_RULE, None, commitments.term_until(attributes))
    if item.commitment is not None and severity is not None:
        breached = commitments.decided_for_disclosure(item, decided_on, attributes)
        rule = catalogue.disclosure_rule_on(breached)
        period = rule.periods[severity]
        return Window(rule.id, add_months(breached, period.min_months),
                      add_months(breached, period.max_months))
    if item.polarity != "negative" or item.severity is None:
        return Window(POSITIVE_RULE, None,
                      add_months(decided_on, catalogue.positive_disclosure_months))
    rule = catalogue.disclosure_rule_on(decided_on)
    period = rule.periods[item.severity]
    ndrc = Window(rule.id, add_months(decided_on, period.min_months),
                  add_months(decided_on, period.max_months))
    regime = catalogue.regime_of(item_name)
    match regime:
        case None:
            return ndrc
        case MarketRegulationRegime():
            return _market_regulation(item.regime or "", regime, ndrc, decided_on, attributes)
        case WhileListedRegime():
            years = catalogue.lists[regime.list].validity_years + extension_years(
                regime, attributes)
            return Window(item.regime, None, add_years(decided_on, years))
        case FixedRegime():
            return Window(item.regime, None, add_months(decided_on, regime.display_months))
    raise AssertionError(f"unknown regime {regime!r}")


def _market_regulation(name: str, regime: MarketRegulationRegime, ndrc: Window,
                       decided_on: date, attributes: dict[str, Any]) -> Window:
    penalty = regime.classes.get(str(attributes.get(regime.class_attribute)))
    if penalty is None:
        # Archived before ingest required the class: the NDRC rule, as it was then.
        return ndrc
    months = penalty.display_months
    rule = f"{name}/{attributes[regime.class_attribute]}"
    field = regime.fields.get(str(attributes.get(regime.field_attribute)))
    if field is not None:
        months = max(months, field.min_display_months)
        rule += f"/{attributes[regime.field_attribute]}"
    public_until = add_months(decided_on, months)
    # Repair follows the NDRC rule in force (it governs repair of every administrative
    # penalty); a record that stops showing before its minimum needs none.
    repair_from = min(ndrc.repair_from, public_until) if ndrc.repair_from else None
    return Window(rule, repair_from, public_until)


def extension_years(regime: WhileListedRegime, attributes: dict[str, Any]) -> int:
    value = attributes.get(regime.extension_attribute)
    return value if type(value) is int else 0


def held_until_listed(catalogue: Catalogue, record: ArchivedRecord,
                      listed: Collection[tuple[str, str]]) -> bool:
    """A record the public sees only while a published entry rests on it
    (`Catalogue.shows_while_listed`), and none does (`listed`: the basis records of the
    subject's published entries): not yet (the notice period, Order 54's month after
    service) or no longer. It is then neither shown nor graded."""
    return (catalogue.shows_while_listed(record.catalogue_item)
            and (record.department, record.record_id) not in listed)


def is_displayed(record: ArchivedRecord, today: date) -> bool:
    """Whether a record is within its disclosure period and in force (not withdrawn or
    repaired). Whether it may be public at all (its item, a minor) is the publisher's."""
    return (record.status == "active" and record.public_until is not None
            and today <= record.public_until)


# --- retention ---------------------------------------------------------------------------


def purge_on(catalogue: Catalogue, subject_type: str, item_name: str,
             act_ended_on: date, attributes: dict[str, Any] | None = None) -> date | None:
    """The day a record is erased: a person's negative information five years after the act
    ended (征信业管理条例 art. 16), a breached commitment's from its breach; None for
    everything else, which is kept."""
    item = catalogue.items.get(item_name)
    if subject_type != "individual" or item is None:
        return None
    if item.commitment is not None:
        breached = commitments.breached_on(attributes or {})
        return add_years(max(breached, act_ended_on), RETENTION_YEARS) if breached else None
    if item.polarity != "negative":
        return None
    return add_years(act_ended_on, RETENTION_YEARS)


# --- what a submission must carry ---------------------------------------------------------

Problem = tuple[str, str, str]  # field, code, message


def attribute_problems(catalogue: Catalogue, item_name: str,
                       attributes: dict[str, Any]) -> list[Problem]:
    """What a record's attributes lack or get wrong for its item's regime: a market
    regulation penalty's class (and field), a listing's extension."""
    regime = catalogue.regime_of(item_name)
    problems: list[Problem] = []
    if isinstance(regime, MarketRegulationRegime):
        field = f"attributes.{regime.class_attribute}"
        value = attributes.get(regime.class_attribute)
        if value is None:
            problems.append((field, "required",
                             f"{item_name} needs the penalty's class: one of "
                             f"{', '.join(regime.classes)} ({regime.basis})"))
        elif value not in regime.classes:
            problems.append((field, "unknown_class",
                             f"{str(value)[:40]!r} is not one of {', '.join(regime.classes)}"))
        penalty_field = attributes.get(regime.field_attribute)
        if penalty_field is not None and penalty_field not in regime.fields:
            problems.append((f"attributes.{regime.field_attribute}", "unknown_class",
                             f"{str(penalty_field)[:40]!r} is not one of "
                             f"{', '.join(regime.fields)}"))
    extending = [r for r in catalogue.disclosure_regimes.values()
                 if isinstance(r, WhileListedRegime)]
    for other in extending:
        if other.extension_attribute not in attributes:
            continue
        field = f"attributes.{other.extension_attribute}"
        value = attributes[other.extension_attribute]
        if regime is not other:
            problems.append((field, "not_extendable",
                             f"{item_name} has no extension ({other.basis} extends "
                             f"{other.list} only)"))
        elif type(value) is not int or not (
                other.extension_min_years <= value <= other.extension_max_years):
            problems.append((field, "out_of_range",
                             f"an extension is {other.extension_min_years} to "
                             f"{other.extension_max_years} whole years ({other.basis})"))
    return problems


def act_ended_problems(decided_on: date | None, act_ended_on: date | None,
                       today: date) -> list[Problem]:
    if act_ended_on is None:
        return []
    problems: list[Problem] = []
    if decided_on is not None and act_ended_on < decided_on:
        problems.append(("act_ended_on", "before_decided_on",
                         f"{act_ended_on} is before the decision ({decided_on})"))
    if act_ended_on > today:
        problems.append(("act_ended_on", "future_date", f"{act_ended_on} is after {today}"))
    return problems

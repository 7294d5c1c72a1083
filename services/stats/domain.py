"""Statistics rules: what a period and a month are, what a record counts for in the early
warning, percentiles, and when a window's count raises or clears a warning. Pure functions.

The city counts dishonesty cases by district (失信案例按地区划分的统计调查制度) and warns of
districts where they are frequent (高发地区信用风险预警): the seed work plan, 9.(8). The
departments are assessed on their reporting (政府部门征信考核, 2.(4)): 双公示 decisions are
published within 7 working days (DOMAIN.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from shared import clock
from shared.catalogue import Catalogue, EarlyWarning
from shared.contract import AcceptedRecord, StatsDelta
from shared.messages import caused_id
from shared.periods import FieldProblem, field_problem, query_day

SOURCE = "xinyong/stats"
MAX_SPAN_YEARS = 5
# 双公示: licensing and penalty decisions are published within 7 working days (DOMAIN.md).
DOUBLE_PUBLICITY_WORKING_DAYS = 7


# How long stats-windows keeps a window (faust's `expires`): the window (28 days) and the
# lateness accepted (a case reported up to 9 weeks after its decision). A delta older than
# this is skipped and counted (a window re-created after expiry would restart at 0 and
# overwrite its snapshot); the official figures, in SQL, count it all the same.
EXPIRES = timedelta(days=91)
# stats-windows commits acked offsets on this interval (faust's default): a kill -9 counts
# again at most what was acked in the last interval, harmless because the official figures
# are exact in SQL.
COMMIT_INTERVAL = 2.8  # seconds


class Invalid(ValueError):
    """Input that names no period: the field errors, for a 422."""

    def __init__(self, errors: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors




def period(from_text: str | None, to_text: str | None) -> tuple[date, date]:
    """[from, to], both days included (China Standard Time); at most 5 years."""
    errors: list[FieldProblem] = []
    start, end = query_day("from", from_text, errors), query_day("to", to_text, errors)
    if start is not None and end is not None:
        if start > end:
            errors.append(field_problem("from", "after_to", "`from` is after `to`"))
        elif end >= _add_years(start, MAX_SPAN_YEARS):
            errors.append(field_problem("to", "span_too_long",
                                   f"a period of at most {MAX_SPAN_YEARS} years"))
    if errors or start is None or end is None:
        raise Invalid(errors)
    return start, end


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class Month:
    first: date
    last: date
    partial: bool  # in progress: its figures still move

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), clock.ZHUHAI)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), clock.ZHUHAI)


def month(text: str | None, today: date) -> Month:
    """A calendar month in China Standard Time, `YYYY-MM`; not in the future."""
    if not text or not re.fullmatch(r"\d{4}-\d{2}", text):
        raise Invalid([field_problem("month", "month_format", "a month, YYYY-MM")])
    year, number = int(text[:4]), int(text[5:])
    if not 1 <= number <= 12 or year < 1:
        raise Invalid([field_problem("month", "month_invalid", f"{text} is not a month")])
    first = date(year, number, 1)
    if first > today:
        raise Invalid([field_problem("month", "future", f"{text} has not begun")])
    following = date(year + number // 12, number % 12 + 1, 1)
    last = following - timedelta(days=1)
    return Month(first, last, partial=today <= last)


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by nearest rank (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- early warning -------------------------------------------------------------------------


@dataclass(frozen=True)
class Counted:
    """What a record counts for under one rule now: where and when."""

    district: str
    on: datetime
    revision: int


def on_of(decided_on: date) -> datetime:
    """When a case happened, for the windows: its decision day at midnight CST."""
    return datetime.combine(decided_on, time(), clock.ZHUHAI)


def counts_for(catalogue: Catalogue, accepted: AcceptedRecord) -> dict[str, Counted]:
    """The rules an accepted revision counts for: an upsert of a negative item decided in a
    district. A withdrawal counts for nothing."""
    sub = accepted.submission
    if sub.action != "upsert" or not sub.catalogue_item or not sub.district \
            or sub.decided_on is None:
        return {}
    return {rule: Counted(sub.district, on_of(sub.decided_on), sub.revision)
            for rule in catalogue.warnings_counting(sub.catalogue_item)}


def delta_id(department: str, record_id: str, revision: int, rule: str, sign: int) -> str:
    return caused_id(SOURCE, "delta", department, record_id, revision, rule, sign)


def warning_deltas(department: str, record_id: str, revision: int,
                   before: Mapping[str, Counted], after: Mapping[str, Counted]
                   ) -> list[StatsDelta]:
    """What the windows must undo (-1: counted before, not now or elsewhere) and add (+1)
    when a record's revision moves it from `before` to `after`."""
    out: list[StatsDelta] = []
    for rule in sorted(set(before) | set(after)):
        old, new = before.get(rule), after.get(rule)
        if old is not None and (new is None or (old.district, old.on) != (new.district,
                                                                            new.on)):
            out.append(StatsDelta(fact_id=delta_id(department, record_id, revision, rule, -1),
                                  district=old.district, measure=rule, on=old.on, delta=-1))
        if new is not None and (old is None or (old.district, old.on) != (new.district,
                                                                            new.on)):
            out.append(StatsDelta(fact_id=delta_id(department, record_id, revision, rule, 1),
                                  district=new.district, measure=rule, on=new.on, delta=1))
    return out


def batch_deltas(cases: Sequence[StatsDelta]) -> list[StatsDelta]:
    """What goes to stats-windows for a batch's case deltas: one delta per (district, rule,
    day) carrying their signed sum, none where they cancel out. faust pays per event
    (deserialize, table update, a snapshot of every window, changelog), so its work follows
    batches, not cases. The id is a function of the cases summed: the same cases give the
    same id. Exact as the cases are: each case is in one sum, and the sum is written in the
    transaction that stores the case (store.save_deltas), or neither is."""
    groups: dict[tuple[str, str, datetime], list[StatsDelta]] = {}
    for d in cases:
        groups.setdefault((d.district, d.measure, d.on), []).append(d)
    out: list[StatsDelta] = []
    for (district, measure, on), group in sorted(groups.items()):
        total = sum(d.delta for d in group)
        if total:
            out.append(StatsDelta(
                fact_id=caused_id(SOURCE, "deltas", *sorted(d.fact_id for d in group)),
                district=district, measure=measure, on=on, delta=total))
    return out


WarningStatus = Literal["raised", "cleared"]


def crossing(before: int, after: int, threshold: int) -> WarningStatus | None:
    """A window's count reaching its rule's threshold raises a warning; falling below it
    again clears it."""
    if before < threshold <= after:
        return "raised"
    if after < threshold <= before:
        return "cleared"
    return None


def window_shape(catalogue: Catalogue) -> tuple[timedelta, timedelta] | None:
    """The (size, step) every early-warning rule shares (one faust table holds them all:
    the catalogue's check refuses rules of different shapes)."""
    shapes = {(r.window_days, r.step_days) for r in catalogue.early_warnings.values()}
    if not shapes:
        return None
    [(size, step)] = shapes
    return timedelta(days=size), timedelta(days=step)


def rule_of(catalogue: Catalogue, measure: str) -> EarlyWarning | None:
    return catalogue.early_warnings.get(measure)

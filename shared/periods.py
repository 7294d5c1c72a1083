"""Reading the dates of a period from query parameters (`from`, `to`), with errors that name
the field and the rule: the statistics and the government pages ask the same way. Pure."""

from __future__ import annotations

import re
from datetime import date

FieldProblem = dict[str, str]


def field_problem(field: str, code: str, message: str) -> FieldProblem:
    return {"field": field, "code": code, "message": message}


def query_day(field: str, text: str | None, errors: list[FieldProblem]) -> date | None:
    """A `YYYY-MM-DD` day, or None with the reason added to `errors`."""
    if not text:
        errors.append(field_problem(field, "required", "a date, YYYY-MM-DD"))
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        errors.append(field_problem(field, "date_format", "a date, YYYY-MM-DD"))
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(field_problem(field, "date_invalid",
                                    f"{text} is not a day of the calendar"))
        return None

"""Dates are Zhuhai's: a decision "today" means today in China Standard Time."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

ZHUHAI = ZoneInfo("Asia/Shanghai")


def now() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return datetime.now(ZHUHAI).date()

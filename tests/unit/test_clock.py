"""The one clock: China Standard Time dates, and a test clock that only tests may use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared import clock
from shared.service import use_clock
from shared.settings import Settings


def test_today_is_the_date_in_zhuhai() -> None:
    clock.configure(None)
    assert clock.today() == datetime.now(UTC).astimezone(clock.ZHUHAI).date()


def test_a_test_clock_moves_every_reader_forward(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    clock.configure(path)
    try:
        assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)  # no file yet
        clock.move_test_clock(path, timedelta(days=3))
        clock.move_test_clock(path, timedelta(hours=12))
        assert abs(clock.now() - (datetime.now(UTC) + timedelta(days=3, hours=12))
                   ) < timedelta(seconds=5)
    finally:
        clock.configure(None)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_production_start_refuses_a_test_clock(tmp_path: Path) -> None:
    settings = Settings(environment="production", test_clock_file=tmp_path / "clock")
    with pytest.raises(SystemExit, match="refuses a test clock"):
        use_clock(settings, "registry")
    use_clock(Settings(environment="test", test_clock_file=tmp_path / "clock"), "registry")
    clock.configure(None)

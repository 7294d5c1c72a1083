"""The benchmark's pure parts: latency summaries, the query plan, the command line."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench import queries, report, rss
from deploy.cli import app


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    random.Random(1).shuffle(values)
    assert report.latency_summary(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0,
                                              "max": 100.0}
    assert report.latency_summary([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "max": 7.0}


def test_nothing_measured_is_null_not_nan(tmp_path: Path) -> None:
    summary = report.latency_summary([])
    assert summary == {"p50": None, "p95": None, "p99": None, "max": None}
    report.write_json(tmp_path / "f.json", {"x": summary})
    assert json.loads((tmp_path / "f.json").read_text())["x"]["p99"] is None


def targets() -> queries.Targets:
    orgs = [("enterprise", f"91440400MA4U{n:05d}X", f"珠海市测试{n}科技有限公司")
            for n in range(200)]
    people = [("individual", f"44040219800101{n:04d}", "陈伟") for n in range(50)]
    return queries.Targets(orgs, people)


def test_query_plan_is_open_loop_poisson_with_the_mix() -> None:
    plan = queries.plan(targets(), rate=500, seconds=20, rng=random.Random(3))
    assert 0.9 * 500 * 20 < len(plan) < 1.1 * 500 * 20
    assert all(a.at < b.at for a, b in itertools.pairwise(plan))
    kinds = Counter(r.kind for r in plan)
    assert kinds["profile"] / len(plan) == pytest.approx(0.70, abs=0.02)
    classes = Counter(r.cls for r in plan if r.kind == "search")
    searches = sum(classes.values())
    for cls, share in queries.SEARCH_CLASSES.items():
        assert classes[cls] / searches == pytest.approx(share, abs=0.03), cls
    broad = {r.path for r in plan if r.cls == "broad"}
    assert broad <= {queries._search_path(q) for q in queries.BROAD}
    assert plan == queries.plan(targets(), rate=500, seconds=20, rng=random.Random(3))


def test_targets_hold_only_when_both_p99_do_and_nothing_failed() -> None:
    def summary(profile: float, search: float, statuses: dict[str, int]) -> dict[str, Any]:
        return {"profile_ms": {"p99": profile}, "search_ms": {"p99": search},
                "statuses": statuses}
    assert queries.within_targets(summary(20, 50, {"200": 10, "404": 1}))
    assert not queries.within_targets(summary(21, 10, {"200": 10}))
    assert not queries.within_targets(summary(5, 51, {"200": 10}))
    assert not queries.within_targets(summary(5, 5, {"200": 10, "429": 1}))


def test_bench_without_a_command_is_bench_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import pipeline

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(pipeline, "run", lambda **kw: calls.append(kw))
    result = CliRunner().invoke(app, ["bench", "--records", "123"])
    assert result.exit_code == 0, result.output
    assert calls == [{"records": 123, "json_path": None, "base": None}]
    result = CliRunner().invoke(app, ["bench", "pipeline", "--rate", "50", "--seconds", "3"])
    assert result.exit_code == 0, result.output
    assert calls[1]["rate"] == 50 and calls[1]["seconds"] == 3


def test_memory_by_quarter_is_each_quarters_highest_sample() -> None:
    mib = 1024  # KiB
    timeline = [(float(t), {"ingest": kib * mib, "registry": 100 * mib})
                for t, kib in enumerate([10, 30, 20, 40, 40, 50, 45, 60, 55])]
    assert rss.quarter_peaks(timeline) == {
        "ingest": [30.0, 40.0, 50.0, 60.0], "registry": [100.0] * 4}
    # A process that leaves mid-run keeps the quarters it was seen in.
    timeline[-1][1].pop("registry")
    timeline[-2][1].pop("registry")
    assert rss.quarter_peaks(timeline)["registry"] == [100.0, 100.0, 100.0, 0.0]
    assert rss.quarter_peaks(timeline[:3]) == {}
    assert report.fmt_rss_quarters({"ingest": [30.0, 40.0, 50.0, 1234.4]}) \
        == "ingest 30 / 40 / 50 / 1,234 MiB"

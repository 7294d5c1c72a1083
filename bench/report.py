"""What every benchmark run prints and writes: the run's identity (commit, date, cores, SASL),
latency summaries, a table for people and the same figures as JSON for machines."""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import subprocess
from collections.abc import Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from shared.kafka import client_options
from shared.settings import REPO_ROOT, Settings

T = TypeVar("T")

LATENCY_KEYS = ("p50", "p95", "p99", "max")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run the bench's own clients on uvloop, like the services: a slow load generator
    would measure itself."""
    import uvloop

    return uvloop.run(coro)


@contextlib.contextmanager
def collector_held() -> Iterator[None]:
    """While a latency is measured, the bench's own full garbage collections wait.

    Latency is counted from each request's scheduled time, so a pause of the load generator
    counts as the service's. A full collection walks every object the bench holds (its plan,
    the answers so far, the clients): 60-160 ms in `bench queries` at 500 requests/s, the
    largest of its tails (docs/performance.md). What the bench built before is frozen out of
    the collector's reach; young collections still run, so the cycles the clients make as
    they go are still freed; the full collection comes after the run."""
    gc.collect()
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(young, older, 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(young, older, oldest)
        gc.unfreeze()


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of unsorted values; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | None]:
    """{p50, p95, p99, max} in milliseconds, None where there was nothing to measure (JSON
    has no NaN)."""
    if not values_ms:
        return dict.fromkeys(LATENCY_KEYS)
    ordered = sorted(values_ms)
    return {"p50": round(percentile(ordered, 50), 2), "p95": round(percentile(ordered, 95), 2),
            "p99": round(percentile(ordered, 99), 2), "max": round(ordered[-1], 2)}


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, text=True, capture_output=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def run_info(settings: Settings, command: str) -> dict[str, Any]:
    options = client_options(settings)
    protocol = str(options.get("security_protocol", "PLAINTEXT"))
    return {
        "commit": git_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "sasl": protocol.startswith("SASL"),
        "command": command,
    }


def fmt_ms(summary: dict[str, float | None]) -> str:
    def one(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}" if v >= 10 else f"{v:,.1f}"
    return " / ".join(f"{one(summary[k])}" for k in LATENCY_KEYS) + " ms"


def fmt_rss(rss: dict[str, float]) -> str:
    return ", ".join(f"{name} {mib:,.0f}" for name, mib in rss.items()) + " MiB"


def fmt_rss_quarters(quarters: dict[str, list[float]]) -> str:
    """The highest memory of each process in each quarter of the run (bench/rss.py)."""
    return ", ".join(f"{name} {' / '.join(f'{q:,.0f}' for q in peaks)}"
                     for name, peaks in quarters.items()) + " MiB"


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    print(f"\n{title}")
    print("-" * len(title))
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def write_json(path: Path | None, document: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2, allow_nan=False) + "\n",
                    encoding="utf-8")
    print(f"\nfigures written to {path}")

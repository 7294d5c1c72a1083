"""stats-windows (faust) on the real broker: warnings raised within seconds of crossing and
cleared below; a poison delta dead-lettered and the next counted; a restart, a second worker
(rebalance) and a kill -9 lose no window; its rate against twice the benchmark's."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from datetime import time as daytime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench import pipeline
from deploy.stack import ServiceProcess
from services.stats import domain
from shared import clock
from shared.catalogue import load_catalogue
from shared.contract import StatsDelta
from shared.messages import OutboundEvent
from shared.settings import Settings
from shared.topics import STATS_DELTAS
from tests.integration.conftest import STACK, TopicWatcher
from tests.integration.helpers import enterprise, record
from tests.integration.kit import poll_json, send
from tests.polling import until

pytestmark = pytest.mark.integration

RULE = "wage_arrears.high_incidence"  # threshold 10 in the catalogue


def _delta(district: str, sign: int = 1, on: datetime | None = None,
           rule: str = RULE) -> OutboundEvent:
    on = on or datetime.combine(clock.today(), daytime(), clock.ZHUHAI)
    d = StatsDelta(fact_id=str(uuid.uuid4()), district=district, measure=rule, on=on,
                   delta=sign)
    return OutboundEvent.of(STATS_DELTAS, domain.SOURCE, district, d, event_id=d.fact_id)


async def _send(producer: AIOKafkaProducer, settings: Settings,
                events: list[OutboundEvent]) -> None:
    for e in events:
        await producer.send(settings.topic(e.topic), e.value, key=(e.key or "").encode())
    await producer.flush()


def _district() -> str:
    return f"T{uuid.uuid4().hex[:6]}"  # a district of this test alone


async def _counts(db: Any, district: str) -> dict[datetime, int]:
    rows = await db("stats").fetch(
        "SELECT window_from, count FROM windows WHERE district = $1 AND measure = $2",
        district, RULE)
    return {r["window_from"]: r["count"] for r in rows}


async def _settled(db: Any, district: str, expected: int, timeout: float = 60,
                   recounted: int = 0) -> int:
    """Until every window holding today's deltas counts at least `expected`, and at most
    `recounted` more (deltas counted again after a worker stopped before committing them:
    harmless by design, the official figures are SQL's). Returns the count."""
    counts: dict[datetime, int] = {}

    async def settled() -> bool:
        counts.clear()
        counts.update(await _counts(db, district))
        return bool(counts) and len(set(counts.values())) == 1 and min(
            counts.values()) >= expected

    await until(settled, lambda: f"windows of {district}: {counts}", timeout=timeout)
    [count] = set(counts.values())
    assert count - expected <= recounted, f"windows of {district}: {counts}"
    return count


def _warned(district: str) -> Any:
    return lambda r: any(w["district"] == district and w["measure"] == RULE
                         for w in r.json()["warnings"])


async def test_a_warning_is_raised_on_crossing_and_cleared_below(
        settings: Settings, services: dict[str, ServiceProcess], producer_as: Any,
        db: Any) -> None:
    stats = await producer_as("stats")
    district = _district()
    url = services["stats"].url() + "/api/v1/stats/warnings"
    await _send(stats, settings, [_delta(district) for _ in range(9)])
    await _settled(db, district, 9)
    async with httpx.AsyncClient() as client:
        assert not _warned(district)(await client.get(url))
    crossed = time.monotonic()
    await _send(stats, settings, [_delta(district)])
    answer = await poll_json(url, _warned(district), timeout=10)
    assert time.monotonic() - crossed < 10
    [warning] = [w for w in answer.json()["warnings"] if w["district"] == district]
    assert warning["count"] == 10 and warning["threshold"] == 10
    assert warning["window"]["from"] <= clock.now().isoformat() < warning["window"]["to"]
    await _send(stats, settings, [_delta(district, -1)])
    await poll_json(url, lambda r: not _warned(district)(r), timeout=10)


async def test_a_poison_delta_is_dead_lettered_and_the_next_counted(
        settings: Settings, services: dict[str, ServiceProcess], producer_as: Any,
        watcher: TopicWatcher, db: Any) -> None:
    stats = await producer_as("stats")
    district = _district()
    poison = b'{"specversion": "1.0", "id": "x", "source": "xinyong/stats", "data": 5}'
    await stats.send_and_wait(settings.topic(STATS_DELTAS.name), poison,
                              key=district.encode())
    unknown_rule = _delta(district, rule="no.such.rule")
    await _send(stats, settings, [unknown_rule, _delta(district)])
    letters = await watcher.wait_for(
        "credit.deadletter.stats-windows",
        lambda e: e["data"]["key"] == district, count=2)
    assert "no early-warning rule" in letters[1]["data"]["reason"]
    await _settled(db, district, 1)


async def test_a_restart_and_a_kill_lose_no_window(
        settings: Settings, services: dict[str, ServiceProcess], producer_as: Any,
        db: Any) -> None:
    stats = await producer_as("stats")
    district = _district()
    windows = services["stats-windows"]
    await _send(stats, settings, [_delta(district) for _ in range(5)])
    await _settled(db, district, 5)

    # A restart: the table comes back from its changelog.
    windows.stop()
    windows.start(STACK.env)
    windows.wait_ready(120)
    await _send(stats, settings, [_delta(district) for _ in range(3)])
    count = await _settled(db, district, 8, recounted=3)

    # kill -9 mid-stream: what was counted but not committed is counted again after the
    # restart; the drift is at most the deltas in flight then. What came before the burst
    # is committed first (one commit interval), so that in flight means the burst.
    await asyncio.sleep(domain.COMMIT_INTERVAL + 1)
    burst = 50
    sending = asyncio.create_task(  # noqa: RUF006 - awaited below
        _send(stats, settings, [_delta(district) for _ in range(burst)]))
    await asyncio.sleep(0.2)
    windows.kill()
    await sending
    windows.start(STACK.env)
    windows.wait_ready(120)
    expected = count + burst
    async def caught_up() -> set[int] | None:
        counts = set((await _counts(db, district)).values())
        return counts if counts and min(counts) >= expected else None

    counts = await until(caught_up, f"every window of {district} at {expected}", timeout=120,
                         interval=0.3)
    assert max(counts) - expected <= burst


async def test_a_second_worker_takes_over_without_losing_a_count(
        settings: Settings, services: dict[str, ServiceProcess], producer_as: Any,
        db: Any) -> None:
    stats = await producer_as("stats")
    district = _district()
    windows = services["stats-windows"]
    await _send(stats, settings, [_delta(district) for _ in range(8)])
    count = await _settled(db, district, 8)
    # A second worker joins (a rebalance moves partitions and their windows), then the
    # first leaves: every window goes on from where it was (faust-streaming #193).
    second = ServiceProcess("stats-windows-2", settings, windows.run_dir,
                            command=windows.command, runs_as="stats-windows")
    env = {**STACK.env, "XINYONG_STATS_WINDOWS_METRICS_PORT": str(
        settings.metrics_port("stats-windows") + 10)}
    second.start(env)
    try:
        await asyncio.sleep(15)  # its join and the rebalance
        await _send(stats, settings, [_delta(district) for _ in range(2)])
        count = await _settled(db, district, count + 2, timeout=120, recounted=2)
        windows.stop()
        await _send(stats, settings, [_delta(district) for _ in range(2)])
        await _settled(db, district, count + 2, timeout=120, recounted=2)
    finally:
        windows.start(STACK.env)
        second.stop()
        windows.wait_ready(120)


# The pipeline benchmark's end-to-end rate (README, "Benchmark": `bench pipeline --records
# 20000`, SASL on, 2 cores) and its mix's share of negative records, each one delta of the
# rule that counts every negative record (summed per batch since: domain.batch_deltas):
# stats-windows must keep up with twice that.
BENCH_RECORDS_PER_SECOND = 601
LAG_BOUND_SECONDS = 5  # at most this many seconds of deltas waiting, at any sample


def _bench_delta_rate() -> float:
    catalogue = load_catalogue()
    weights = [(catalogue.items[item].polarity, w) for _, item, w in pipeline.MIX]
    negative = sum(w for polarity, w in weights if polarity == "negative")
    return BENCH_RECORDS_PER_SECOND * negative / sum(w for _, w in weights)


async def _counted(windows: ServiceProcess) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(windows.metrics_url())).text
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "xinyong_stats_deltas_total")


async def test_it_keeps_up_with_twice_the_benchmarks_negative_record_rate(
        settings: Settings, services: dict[str, ServiceProcess], producer_as: Any,
        db: Any) -> None:
    """Twice the bench's negative records, as the stats service sends them: each batch's
    cases summed per district (services/stats/domain.py::batch_deltas); a batch here is what
    a 0.1 s tick brings. The lag is in deltas, bounded by 5 s of them."""
    stats = await producer_as("stats")
    windows = services["stats-windows"]
    rate = 2 * _bench_delta_rate()  # cases a second
    seconds, tick = 15, 0.1
    districts = [_district() for _ in range(12)]  # spread over the partitions
    start = await _counted(windows)
    cases, sent, lags = 0, 0, []

    async def sample() -> None:
        while True:
            lags.append(sent - (await _counted(windows) - start))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    began = time.monotonic()
    try:
        # Open loop: each tick sends what the schedule says is due, whatever the answers.
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(rate * elapsed) - cases
            per_district: dict[str, int] = {}
            for i in range(due):
                district = districts[(cases + i) % len(districts)]
                per_district[district] = per_district.get(district, 0) + 1
            for district, n in per_district.items():
                e = _delta(district, n, rule="negative.high_incidence")
                await stats.send(settings.topic(e.topic), e.value, key=(e.key or "").encode())
            cases += due
            sent += len(per_district)
            await asyncio.sleep(tick)
        await stats.flush()
        sending = time.monotonic() - began

        async def all_counted() -> bool:
            return await _counted(windows) - start >= sent

        await until(all_counted, lambda: f"{sent} sent, lag {lags[-5:]}")
        drained = time.monotonic() - began - sending
    finally:
        sampler.cancel()
    delta_rate = sent / sending
    print(f"stats-windows at {rate:.0f} cases/s (twice the bench's negative records) for "
          f"{sending:.1f} s: {cases} cases in {sent} deltas, max lag {max(lags):.0f} deltas "
          f"({max(lags) / delta_rate:.2f} s of them), drained {drained:.1f} s after the last "
          "send")
    assert cases >= rate * (seconds - 1)
    assert max(lags) <= delta_rate * LAG_BOUND_SECONDS, lags


_WINDOWS_AGAINST_SQL = (
    'SELECT w.measure, w.window_from, w.count, (SELECT coalesce(sum(d.delta), 0)'
    ' FROM deltas d WHERE d.measure = w.measure AND d.district = w.district'
    '  AND d."on" >= w.window_from AND d."on" < w.window_to) AS sql'
    " FROM windows w WHERE w.district = '440402' AND w.measure = ANY($1)"
    " AND w.window_from <= $2 AND $2 < w.window_to")


async def _drift(stats: Any, rules: list[str], on: datetime) -> dict[tuple[str, datetime], int]:
    """How far each window holding `on` counts from what SQL counts of its deltas."""
    rows = await stats.fetch(_WINDOWS_AGAINST_SQL, rules, on)
    return {(r["measure"], r["window_from"]): r["count"] - r["sql"] for r in rows}


async def _settled_drift(stats: Any, rules: list[str], on: datetime
                         ) -> dict[tuple[str, datetime], int]:
    """The drift once it holds still for two seconds (deltas of earlier tests landed)."""
    seen = [await _drift(stats, rules, on)]

    async def still() -> bool:
        await asyncio.sleep(2)
        seen.append(await _drift(stats, rules, on))
        return seen[-1] == seen[-2]

    await until(still, lambda: f"the windows' drift settles: {seen[-3:]}", timeout=60,
                interval=0)
    return seen[-1]


async def test_records_from_a_department_count_exactly_in_the_windows(
        settings: Settings, services: dict[str, ServiceProcess], producer: AIOKafkaProducer,
        db: Any) -> None:
    """End to end, with the stats service's sums: negative records and a withdrawal through
    ingest; each case is stored once in stats' deltas, and every window holding their day
    counts exactly what SQL counts from those case rows (no drift: the sums lose and double
    nothing). The district's windows are shared with the other tests' records, and a
    stats-windows killed by one of them may have counted a delta of theirs twice (harmless
    by design: the official figures are SQL's); what these records add must match exactly."""
    item, dept = "amr.admin_penalty", "amr"
    rules = load_catalogue().warnings_counting(item)
    assert rules
    day = clock.today() - timedelta(days=37)  # a day the other tests leave alone
    on = domain.on_of(day)
    shape = domain.window_shape(load_catalogue())
    assert shape is not None
    windows_per_day = len(rules) * (shape[0] // shape[1])
    stats = db("stats")
    before = await _settled_drift(stats, rules, on)

    firm = enterprise()
    sent = [record(firm, item, decided_on=day) for _ in range(12)]
    for data in sent:
        await send(producer, settings, dept, data)
    withdrawn = sent[0]["record_id"]
    await send(producer, settings, dept, record(firm, item, record_id=withdrawn, revision=2,
                                                action="withdraw"))
    cases = {domain.delta_id(dept, data["record_id"], 1, rule, 1): 1
             for data in sent for rule in rules}
    cases |= {domain.delta_id(dept, withdrawn, 2, rule, -1): -1 for rule in rules}
    stored: list[Any] = []

    async def every_case() -> bool:
        stored[:] = await stats.fetch(
            "SELECT fact_id, delta FROM deltas WHERE fact_id = ANY($1)", list(cases))
        return len(stored) == len(cases)

    await until(every_case, lambda: f"{len(stored)} of {len(cases)} case deltas", timeout=90,
                interval=0.3)
    assert {r["fact_id"]: r["delta"] for r in stored} == cases

    rows: list[Any] = []

    async def as_sql_counts() -> bool:
        rows[:] = await stats.fetch(_WINDOWS_AGAINST_SQL, rules, on)
        return len(rows) == windows_per_day and all(
            r["count"] - r["sql"] == before.get((r["measure"], r["window_from"]), 0)
            for r in rows)

    await until(as_sql_counts, lambda: ([dict(r) for r in rows], before), interval=0.3)
    assert all(r["sql"] >= len(sent) - 1 for r in rows)  # ours at least, the withdrawal out

"""`bench queries`: the public site's profile and name-search API over a generated city
(`bench generate`), as the public uses it.

Open loop: requests arrive as a Poisson process at the given rate (70 % profiles, 30 %
searches) whatever the answers, over a pool of 200 connections; each latency is counted
from the request's scheduled start, so time spent waiting for a connection or behind a slow
answer counts (no coordinated omission). The search mix holds full codes, full resident ids,
2-3 character fragments, rare names and broad fragments (珠海, 有限公司) that match most of the
city. Then a ramp of rising rates finds the highest at which the targets hold (profile p99
<= 20 ms, search p99 <= 50 ms).

The public rate limit is raised for the run (XINYONG_PUBLIC_RATE_LIMIT, printed); the
limiter stays in the path. Only the publisher runs: nothing else serves these requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

from bench import report
from bench.rss import RssSampler
from bench.stacks import find_city, named_stack, patiently, port_base, steadily
from deploy.stack import infra_up, provision

TARGETS_MS = {"profile": 20.0, "search": 50.0}
PROFILE_SHARE = 0.70
SEARCH_CLASSES = {"code": 0.25, "resident_id": 0.10, "fragment": 0.30, "rare": 0.20,
                  "broad": 0.15}
BROAD = ("珠海", "有限公司", "珠海市", "科技有限公司")
RAMP = (25, 50, 100, 200, 300, 400, 500, 750, 1000, 1500, 2000)
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Request:
    at: float  # seconds after the start of the run
    kind: str  # "profile" or "search"
    cls: str   # "profile", or the search class
    path: str


@dataclass(frozen=True)
class Result:
    request: Request
    latency_ms: float
    status: str


@dataclass(frozen=True)
class Targets:
    organizations: list[tuple[str, str, str]]  # (type, id, name)
    individuals: list[tuple[str, str, str]]


async def sample_targets(dsn: str, seed: int, count: int = 20_000) -> Targets:
    """Discoverable subjects, a seeded sample (the same for the same city and seed)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT type, id, name FROM subjects WHERE discoverable"
            " ORDER BY md5(subject_key || $1) LIMIT $2", str(seed), count)
    finally:
        await conn.close()
    subjects = [(r["type"], r["id"], r["name"] or "") for r in rows]
    return Targets([s for s in subjects if s[0] != "individual"],
                   [s for s in subjects if s[0] == "individual"])


def _search_path(q: str) -> str:
    return f"/api/v1/subjects?q={quote(q)}"


def plan(targets: Targets, rate: float, seconds: float, rng: random.Random) -> list[Request]:
    """Poisson arrivals at `rate` for `seconds`, each a profile or a search of one class."""
    everyone = targets.organizations + targets.individuals
    if not everyone:
        raise RuntimeError("the city has no discoverable subject to ask about")
    people = targets.individuals or everyone
    orgs = targets.organizations or everyone
    # Rare names: an organization's full name, or a person's that no one else in the sample
    # bears (陈伟 is no rare name).
    bearers = Counter(p[2] for p in people)
    rare_people = [p for p in people if bearers[p[2]] == 1] or people
    classes = list(SEARCH_CLASSES)
    weights = list(SEARCH_CLASSES.values())
    out: list[Request] = []
    t = rng.expovariate(rate)
    while t < seconds:
        if rng.random() < PROFILE_SHARE:
            pick = rng.choice(everyone)
            out.append(Request(t, "profile", "profile", f"/api/v1/subjects/{pick[0]}/{pick[1]}"))
        else:
            cls = rng.choices(classes, weights)[0]
            if cls == "code":
                q = rng.choice(orgs)[1]
            elif cls == "resident_id":
                q = rng.choice(people)[1]
            elif cls == "fragment":
                name = rng.choice(everyone)[2]
                size = rng.choice((2, 3))
                start = rng.randrange(max(1, len(name) - size + 1))
                q = name[start:start + size] or name
            elif cls == "rare":
                q = rng.choice(orgs if rng.random() < 0.7 else rare_people)[2]
            else:
                q = rng.choice(BROAD)
            out.append(Request(t, "search", cls, _search_path(q)))
        t += rng.expovariate(rate)
    return out


async def load(session: Any, base_url: str, requests: Sequence[Request]) -> list[Result]:
    """Send each request at its time (open loop); wait for the answers."""
    import aiohttp

    results: list[Result] = []
    start = time.monotonic() + 0.2

    async def one(r: Request) -> None:
        due = start + r.at
        try:
            async with session.get(base_url + r.path) as response:
                await response.read()
                status = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = type(exc).__name__
        results.append(Result(r, (time.monotonic() - due) * 1000, status))

    tasks = []
    with report.collector_held():
        for r in requests:
            delay = start + r.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(r)))
        # Answers still missing this long after the last was due are counted as unanswered,
        # at the time waited so far (a lower bound).
        _, pending = (await asyncio.wait(tasks, timeout=TIMEOUT_S + 5) if tasks
                      else (set(), set()))
    now = time.monotonic()
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    answered = {id(res.request) for res in results}
    results += [Result(r, (now - start - r.at) * 1000, "unanswered")
                for r in requests if id(r) not in answered]
    return results


async def quiet(session: Any, base_url: str, probe: str, seconds: float = 180) -> float:
    """Wait until the publisher has worked off what an earlier phase left queued (answers
    to requests given up on are still being computed): five probes in a row answered within
    the profile target. Returns the seconds waited."""
    import aiohttp

    began = time.monotonic()
    calm = 0
    while calm < 5 and time.monotonic() - began < seconds:
        sent = time.monotonic()
        try:
            async with session.get(base_url + probe) as r:
                await r.read()
        except (aiohttp.ClientError, TimeoutError):  # a probe that fails is not calm
            calm = 0
            await asyncio.sleep(0.5)
            continue
        calm = calm + 1 if (time.monotonic() - sent) * 1000 <= TARGETS_MS["profile"] else 0
        await asyncio.sleep(0.05)
    return round(time.monotonic() - began, 1)


def summarize(results: Sequence[Result], since: float = 0.0) -> dict[str, Any]:
    kept = [r for r in results if r.request.at >= since]
    by_kind = {k: [r.latency_ms for r in kept if r.request.kind == k]
               for k in ("profile", "search")}
    return {
        "requests": len(kept),
        "statuses": dict(Counter(r.status for r in kept)),
        "profile_ms": report.latency_summary(by_kind["profile"]),
        "search_ms": report.latency_summary(by_kind["search"]),
        "overall_ms": report.latency_summary([r.latency_ms for r in kept]),
        "search_ms_by_class": {
            cls: {**report.latency_summary(
                [r.latency_ms for r in kept if r.request.cls == cls]),
                "requests": sum(1 for r in kept if r.request.cls == cls)}
            for cls in SEARCH_CLASSES},
    }


def within_targets(summary: dict[str, Any]) -> bool:
    p99 = {k: summary[f"{k}_ms"]["p99"] for k in TARGETS_MS}
    ok_statuses = all(s in ("200", "404") for s in summary["statuses"])
    return ok_statuses and all(p99[k] is not None and p99[k] <= TARGETS_MS[k]
                               for k in TARGETS_MS)


@dataclass(frozen=True)
class CpuReading:
    """A process's CPU time and the time its threads waited, runnable, for a CPU (the
    scheduler's run queue: /proc/<pid>/task/*/schedstat), with the machine's busy time."""

    at: float
    cpu_s: float
    runqueue_s: float
    machine_busy_s: float
    machine_s: float

    @staticmethod
    def of(pid: int | None) -> CpuReading | None:
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            waited = 0
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    waited += int((task / "schedstat").read_text().split()[1])
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        idle = ticks[3] + ticks[4]  # idle and iowait
        return CpuReading(time.monotonic(), (int(fields[11]) + int(fields[12])) / tick,
                          waited / 1e9, (sum(ticks) - idle) / tick, sum(ticks) / tick)


def cpu_figures(before: CpuReading | None, after: CpuReading | None,
                requests: int) -> dict[str, float | None]:
    """What the publisher spent per request answered, and how starved of CPU it was: the
    share of the run its threads waited, runnable, for a core (0: never; 1: one thread
    waiting all along), and how busy the machine's cores were (0 to 1). Seconds of latency
    with a high wait share are the machine's, not the service's."""
    if before is None or after is None or requests <= 0:
        return {"publisher_cpu_ms_per_request": None, "publisher_runqueue_wait_share": None,
                "machine_busy_share": None}
    wall = max(after.at - before.at, 1e-9)
    return {
        "publisher_cpu_ms_per_request": round(1000 * (after.cpu_s - before.cpu_s) / requests,
                                              3),
        "publisher_runqueue_wait_share": round((after.runqueue_s - before.runqueue_s) / wall,
                                               2),
        "machine_busy_share": round((after.machine_busy_s - before.machine_busy_s)
                                    / max(after.machine_s - before.machine_s, 1e-9), 2),
    }


async def _measure(base_url: str, dsn: str, seed: int, rate: float, seconds: float,
                   connections: int, ramp: Sequence[float], step_seconds: float,
                   sampler: RssSampler, pid: Callable[[], int | None]) -> dict[str, Any]:
    sampler.start()
    try:
        return await _load_and_ramp(base_url, dsn, seed, rate, seconds, connections, ramp,
                                    step_seconds, pid)
    finally:
        await sampler.stop()


async def _load_and_ramp(base_url: str, dsn: str, seed: int, rate: float, seconds: float,
                         connections: int, ramp: Sequence[float],
                         step_seconds: float, pid: Callable[[], int | None]
                         ) -> dict[str, Any]:
    import aiohttp

    rng = random.Random(seed)
    targets = await patiently(lambda: sample_targets(dsn, seed))
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Open the pool's connections first: the run measures answers, not handshakes.
        async def touch() -> None:
            async with session.get(base_url + "/readyz") as r:
                await r.read()
        await asyncio.gather(*(touch() for _ in range(connections)))

        warmup = min(5.0, seconds / 6)
        before = CpuReading.of(pid())
        answers = await load(session, base_url, plan(targets, rate, seconds, rng))
        cpu = cpu_figures(before, CpuReading.of(pid()),
                          sum(1 for a in answers if a.status != "unanswered"))
        main = summarize(answers, since=warmup)
        probe = next(r.path for r in plan(targets, 10, 10, random.Random(0))
                     if r.kind == "profile")
        steps = []
        best: float | None = None
        for step_rate in ramp:
            waited = await quiet(session, base_url, probe)
            duration = max(step_seconds, min(30.0, 300 / step_rate))
            step = summarize(await load(session, base_url,
                                        plan(targets, step_rate, duration, rng)),
                             since=min(1.0, duration / 6))
            ok = within_targets(step)
            steps.append({"rate": step_rate, "seconds": round(duration, 1),
                          "waited_for_quiet_seconds": waited,
                          "requests": step["requests"],
                          "profile_p99_ms": step["profile_ms"]["p99"],
                          "search_p99_ms": step["search_ms"]["p99"], "within_targets": ok})
            if not ok:
                break
            best = step_rate
    return {
        "organizations_sampled": len(targets.organizations),
        "individuals_sampled": len(targets.individuals),
        "rate": rate, "seconds": seconds, "warmup_seconds": round(warmup, 2),
        "connections": connections, **main,
        "achieved_rate": round(main["requests"] / max(seconds - warmup, 1e-9), 1), **cpu,
        "targets_p99_ms": TARGETS_MS, "within_targets": within_targets(main),
        "max_rate_within_targets": best, "ramp": steps,
    }


def run(subjects: int | None = None, seed: int | None = None, rate: float = 500,
        seconds: float = 60, connections: int = 200, rate_limit: str = "1000000/minute",
        ramp_max: float = RAMP[-1], step_seconds: float = 10,
        json_path: Path | None = None, base: int | None = None) -> dict[str, Any]:
    city = find_city(subjects, seed)
    if city is None:
        raise SystemExit("no generated city kept" + (f" of {subjects} subjects" if subjects else "")
                         + (f" with seed {seed}" if seed is not None else "")
                         + ": run `xinyong bench generate` first")
    stack = named_stack("zh", port_base(base), run=city.name,
                        XINYONG_PUBLIC_RATE_LIMIT=rate_limit)
    command = (f"bench queries --subjects {city.subjects} --seed {city.seed} --rate {rate:g}"
               f" --seconds {seconds:g} --connections {connections}")
    document: dict[str, Any] = {"run": report.run_info(stack.settings, command)}
    print(f"city {city.name}: {city.subjects:,} subjects (generated "
          f"{city.manifest.get('generated_at')}); public rate limit raised to {rate_limit} "
          "(XINYONG_PUBLIC_RATE_LIMIT), the limiter stays in the path")
    publisher = stack.processes["publisher"]
    def start() -> None:
        infra_up(stack.settings)
        # The city's databases may have outlived its broker's data (users, ACLs, topics):
        # made again if so, as `up` does; its positions are checked against the new log.
        asyncio.run(provision(stack.settings))
        publisher.start(stack.env)
        publisher.wait_ready()

    try:
        steadily(start, "starting the publisher")
        sampler = RssSampler(stack.settings, lambda: {"publisher": publisher.pid()},
                             own=["publisher"])
        part = report.run_async(_measure(
            publisher.url(), stack.settings.dsn("publisher"), city.seed, rate, seconds,
            connections, [r for r in RAMP if r <= ramp_max], step_seconds, sampler,
            publisher.pid))
        part["rss_mib"] = sampler.peaks()
    finally:
        publisher.stop()
    part = {"subjects": city.subjects, "city": city.name, "rate_limit": rate_limit, **part}
    document["queries"] = part
    print_part(part)
    report.write_json(json_path, document)
    return document


def print_part(p: dict[str, Any]) -> None:
    rows = [
        ("load", f"{p['rate']:g} requests/s for {p['seconds']:g} s, open loop (Poisson), "
                 f"{p['connections']} connections; first {p['warmup_seconds']:g} s left out"),
        ("answered", f"{p['requests']:,} requests, statuses {p['statuses']}"),
        ("profile p50/p95/p99/max", report.fmt_ms(p["profile_ms"])),
        ("search p50/p95/p99/max", report.fmt_ms(p["search_ms"])),
        *[(f"  search by {cls}", report.fmt_ms(s) + f" ({s['requests']:,})")
          for cls, s in p["search_ms_by_class"].items()],
        ("overall p50/p95/p99/max", report.fmt_ms(p["overall_ms"])),
        ("publisher CPU", f"{p['publisher_cpu_ms_per_request']} ms a request; its threads "
                          f"waited for a core {p['publisher_runqueue_wait_share']} of the "
                          f"run, the machine's cores were {p['machine_busy_share']} busy"),
        ("targets (p99)", f"profile <= {TARGETS_MS['profile']:g} ms, search <= "
                          f"{TARGETS_MS['search']:g} ms: "
                          + ("held" if p["within_targets"] else "not held")),
        ("ramp", "; ".join(f"{s['rate']:g}/s: profile p99 {s['profile_p99_ms']} ms, search p99 "
                           f"{s['search_p99_ms']} ms" for s in p["ramp"])),
        ("highest rate within targets", "none of the rates tried"
         if p["max_rate_within_targets"] is None else f"{p['max_rate_within_targets']:g}/s"),
        ("peak memory", report.fmt_rss(p["rss_mib"])),
    ]
    report.print_table(f"bench queries ({p['subjects']:,} subjects)", rows)

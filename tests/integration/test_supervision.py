"""Supervision of the local stack: `./xinyong up` after a `kill -9` of every service, five
times in a row (a killed child not yet reaped, a pid file naming another live process);
the supervisor starting again a service that crashed, with no command, counting it, leaving
a stopped one stopped, and giving up on one that keeps crashing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from deploy import frontdoor, stack, supervisor
from deploy.pids import alive
from shared.settings import REPO_ROOT, Settings
from shared.topics import SERVICES
from tests.integration.conftest import ENV
from tests.polling import until_sync

pytestmark = pytest.mark.integration


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`./xinyong ...` as an operator runs it, against this session's stack."""
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=REPO_ROOT,
                          env={**os.environ, **ENV}, capture_output=True, text=True,
                          timeout=timeout)


def _ready(proc: stack.ServiceProcess) -> bool:
    answer = proc.readiness()
    return bool(answer and answer["status"] == 200)


def _leave_the_session_as_it_was(settings: Settings,
                                 services: dict[str, stack.ServiceProcess]) -> None:
    """What `up` added (the supervisor, the sweeper, the front door) stops; the services
    stay, ready."""
    for proc in (stack.supervisor(settings), stack.credential_sweeper(settings)):
        proc.stop()
    door = frontdoor.FrontDoor(settings)
    if door.config.exists():
        door.stop()
    for proc in services.values():
        proc.start(ENV)
        proc.wait_ready(120)


def test_up_after_kill_nine_succeeds_five_times_in_a_row(
        settings: Settings, services: dict[str, stack.ServiceProcess]) -> None:
    try:
        for round_ in range(5):
            # `up` alone brings them back here (its supervisor would race it).
            stack.supervisor(settings).stop()
            before = {name: proc.pid() for name, proc in services.items()}
            assert all(before.values()), before
            for pid in before.values():
                # Not reaped here: the first round's services are this process's children,
                # so they linger as zombies that `kill -0` would take for alive.
                os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
            if round_ == 1:
                # A pid file naming a live process that is not the service (pid reuse).
                services["ingest"].pid_file.write_text(str(os.getpid()))
            done = _cli("up", "--no-demo")
            assert done.returncode == 0, f"round {round_ + 1}:\n{done.stdout}\n{done.stderr}"
            for name, proc in services.items():
                pid = proc.pid()
                assert pid and pid != before[name], (round_, name, pid)
                assert _ready(proc), (round_, name)
                assert f"{name:<12} running (pid {pid})" in done.stdout
        urls = frontdoor.urls(settings)
        for url in urls.values():
            assert url in done.stdout
        # The public door answers, in front of the publisher.
        assert httpx.get(urls["public"] + "/api/v1/subjects?q=珠海", timeout=10
                         ).status_code == 200
    finally:
        _leave_the_session_as_it_was(settings, services)


def test_the_supervisor_restarts_a_crashed_service_and_not_a_stopped_one(
        settings: Settings, services: dict[str, stack.ServiceProcess]) -> None:
    watcher = stack.supervisor(settings, "--first-delay", "0.5", "--burst", "3",
                               "--window", "120", "--tick", "0.2")
    crashy = stack.ServiceProcess("crashy", settings, services["ingest"].run_dir,
                                  command=("-c", "import sys, time; time.sleep(0.3); "
                                                 "sys.exit(3)"))
    registry = services["registry"]
    supervisor.restarts_file(registry).unlink(missing_ok=True)
    try:
        watcher.start(ENV)
        until_sync(lambda: watcher.pid() is not None, "the supervisor running")

        # A crash: back and ready without a command, counted, logged.
        crashed = registry.pid()
        registry.kill()
        until_sync(lambda: registry.pid() not in (None, crashed), "registry started again", 30)
        registry.wait_ready(120)
        record = supervisor.read_record(registry)
        assert record.restarts == 1
        assert "registry restarted" in watcher.tail(50)
        assert "---- supervisor: restart 1" in registry.tail(400)
        status = json.loads(_cli("status", "--json").stdout)
        [first] = [p for p in status["services"]["registry"]["processes"]
                   if p["instance"] == 1]
        assert first["restarts"] == 1 and first["ready"] and first["pid"] == registry.pid()

        # A stop is not fought.
        registry.stop()
        time.sleep(3)
        assert registry.pid() is None and not registry.want_file.exists()

        # A crash loop: given up after --burst restarts, and said so.
        crashy.start(ENV)
        until_sync(crashy.given_up_file.exists, "the supervisor gave up on a crash loop", 60)
        assert supervisor.read_record(crashy).restarts == 3
        assert "keeps exiting" in watcher.tail(50) and crashy.pid() is None
        time.sleep(2)
        assert supervisor.read_record(crashy).restarts == 3, "a given-up process stays down"
    finally:
        watcher.stop()
        crashy.stop()
        for path in (crashy.log_file, supervisor.restarts_file(crashy),
                     crashy.given_up_file):
            path.unlink(missing_ok=True)
        registry.start(ENV)
        registry.wait_ready(120)


def test_status_shows_every_part(settings: Settings,
                                 services: dict[str, stack.ServiceProcess]) -> None:
    done = _cli("status", "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert set(report["services"]) == set(SERVICES)
    for name, part in report["services"].items():
        [first] = [p for p in part["processes"] if p["instance"] == 1]
        assert first["pid"] == services[name].pid() and first["ready"], (name, first)
        assert first["partitions"] > 0
        assert isinstance(part["lag_total"], int) and part["lag_total"] >= 0
        assert part["outbox"]["backlog"] >= 0
        assert isinstance(part["dead_letters"], int) and isinstance(part["set_aside"], int)
    # The faust worker: its process, readiness and its group's lag.
    windows = report["stream_apps"]["stats-windows"]
    [worker] = windows["processes"]
    assert worker["pid"] == services["stats-windows"].pid() and worker["ready"], worker
    assert worker["partitions"] > 0
    assert isinstance(windows["lag_total"], int) and windows["lag_total"] >= 0, windows
    cluster = report["kafka"]["cluster"]
    assert sum(b["leads"] for b in cluster["brokers"].values()) == cluster["partitions"] > 0
    assert not cluster["offline"]
    text = _cli("status").stdout
    for name in (*SERVICES, "stats-windows"):
        assert f"{name:<12} running (pid {services[name].pid()})" in text
    assert "lag " in text and "outbox " in text and "dead letters " in text
    assert "leads " in text


def _idle(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A process that waits, as an abandoned service does."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                            env={**os.environ, **env}, start_new_session=True)


def test_a_run_whose_owner_died_is_stopped_by_the_next_one(tmp_path: Any) -> None:
    """A test or benchmark run killed before its teardown leaves its services retrying for
    ever; the next run stops them, and removes its folder once it is old. A run whose owner
    lives, the stack of `up` (no owner file) and a process that only reuses a pid file's
    number are left alone."""
    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    runs = {name: tmp_path / "run" / name for name in ("tgone", "tlive", "stack")}
    for folder in runs.values():
        folder.mkdir(parents=True)
    (runs["tgone"] / stack.OWNER_FILE).write_text(json.dumps(
        {"pid": dead_owner.pid, "started_at": 1}))
    stack.claim_run(runs["tlive"])  # this process: alive
    left = {name: _idle({"XINYONG_TOPIC_NAMESPACE": f"{name}."}) for name in runs}
    stranger = _idle({"XINYONG_TOPIC_NAMESPACE": "another."})
    for name, proc in left.items():
        (runs[name] / "ingest.pid").write_text(str(proc.pid))
        (runs[name] / "ingest.want").write_text("{}")
    (runs["tgone"] / "registry.pid").write_text(str(stranger.pid))
    try:
        assert stack.reap_abandoned_runs(tmp_path) == ["tgone"]
        # (`alive` reaps a child of this process: gone, not a zombie)
        assert not alive(left["tgone"].pid)
        assert not (runs["tgone"] / "ingest.want").exists()  # no supervisor restarts it
        assert all(alive(p.pid) for p in (left["tlive"], left["stack"], stranger))
        assert stack.reap_abandoned_runs(tmp_path) == []  # nothing left to stop
        assert runs["tgone"].exists()  # its logs, kept a while for a look
        long_ago = time.time() - stack.FINISHED_RUN_LOGS_KEPT.total_seconds() - 60
        for folder in runs.values():
            for f in folder.iterdir():
                os.utime(f, (long_ago, long_ago))
        doors = {name: tmp_path / "frontdoor" / name for name in ("tgone", "tlive")}
        for door in doors.values():
            door.mkdir(parents=True)
            (door / "access.log").write_text("")
        stack.reap_abandoned_runs(tmp_path)
        assert not runs["tgone"].exists()  # finished long ago: removed
        assert not doors["tgone"].exists() and doors["tlive"].exists()  # its front door too
        assert runs["tlive"].exists() and runs["stack"].exists()  # an owner alive; `up`'s
    finally:
        for proc in [*left.values(), stranger]:
            proc.kill()
            proc.wait()

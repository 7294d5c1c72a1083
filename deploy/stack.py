"""The local stack: infrastructure scripts, databases, topics and service processes.

Used by the command line (deploy/cli.py), the tests and the benchmark, so that all three
start things the same way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from shared import credentials, inbox
from shared.catalogue import load_catalogue
from shared.contract import PartyKind
from shared.db import drop_database, ensure_database
from shared.envelope import submission_json
from shared.kafka import create_topics, delete_topics, make_producer
from shared.messages import OutboundEvent
from shared.positions import Resolution
from shared.settings import REPO_ROOT, Settings
from shared.topics import INBOUND, SERVICES, all_topics

DEPLOY = REPO_ROOT / "deploy"


def run_script(name: str, action: str, settings: Settings) -> None:
    env = {**os.environ, "XINYONG_HOME": str(settings.home)}
    subprocess.run(["bash", str(DEPLOY / name), action], check=True, env=env)


def infra_up(settings: Settings) -> None:
    run_script("postgres.sh", "start", settings)
    run_script("kafka.sh", "start", settings)


def infra_down(settings: Settings) -> None:
    run_script("kafka.sh", "stop", settings)
    run_script("postgres.sh", "stop", settings)


async def provision(settings: Settings) -> list[str]:
    """Databases and roles for every service, and every topic; returns the topics created."""
    for service in SERVICES:
        await ensure_database(settings, service)
    return await create_topics(settings, all_topics(load_catalogue(settings.catalogue_path)))


async def wipe(settings: Settings) -> None:
    """Drop the services' databases and delete their topics: a clean slate."""
    for service in SERVICES:
        await drop_database(settings, service)
    topics = all_topics(load_catalogue(settings.catalogue_path))
    await delete_topics(settings, [t.name for t in topics])


@dataclass(frozen=True)
class PositionReport:
    """A service's consumed positions as its database tells them (`./xinyong status`)."""

    service: str
    held: list[inbox.OpenHold]
    replays: list[dict[str, Any]]  # replayed or resolved in the last day
    error: str | None = None  # the database could not say


async def position_report(settings: Settings, service: str) -> PositionReport:
    try:
        conn = await asyncpg.connect(settings.dsn(service), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return PositionReport(service, [], [], f"database unavailable ({exc})")
    try:
        return PositionReport(service, await inbox.open_holds(conn),
                              await inbox.recent_replays(conn))
    except asyncpg.UndefinedTableError:
        return PositionReport(service, [], [], "database not migrated yet (service never ran)")
    finally:
        await conn.close()


async def resolve_positions(settings: Settings, service: str, topic: str,
                            partition: int | None, resolution: Resolution) -> list[int]:
    """Record an operator's resolution of paused partitions; the service carries it out."""
    conn = await asyncpg.connect(settings.dsn(service), timeout=5)
    try:
        async with conn.transaction():
            return await inbox.resolve_holds(conn, topic, partition, resolution)
    finally:
        await conn.close()


@dataclass(frozen=True)
class ServiceProcess:
    """One service running in the background, with its pid file and log under the home."""

    name: str
    settings: Settings
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def start(self, env: dict[str, str] | None = None) -> int:
        if (pid := self.pid()) is not None:
            return pid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"], cwd=REPO_ROOT,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **(env or {})})
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: the crash the services must survive."""
        self.stop(signal.SIGKILL, timeout=5)

    def url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port(self.name)}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise RuntimeError(f"{self.name} exited; see {self.log_file}:\n{self.tail()}")
            try:
                r = httpx.get(self.url() + "/readyz", timeout=1)
                answer = r.json()
            except (httpx.HTTPError, ValueError):
                answer = None
            # The pid tells our process from another one already on the port.
            if isinstance(answer, dict) and answer.get("pid") == self.pid():
                if r.status_code == 200:
                    return
                paused = (answer.get("positions") or {}).get("paused")
                if paused:  # waiting will not help: an operator has to resolve these
                    raise PositionsPaused(self.name, paused)
            time.sleep(0.25)
        raise TimeoutError(f"{self.name} not ready in {timeout}s; see {self.log_file}:\n"
                           f"{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class PositionsPaused(RuntimeError):
    """A service runs but holds partitions whose stored position disagrees with the log."""

    def __init__(self, service: str, paused: list[dict[str, Any]]) -> None:
        self.service = service
        self.paused = paused
        super().__init__(f"{service}: {len(paused)} partition(s) paused:\n" + "\n".join(
            f"  {p['topic']}[{p['partition']}]: {p['why']}" for p in paused))


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def services(settings: Settings, names: Iterable[str] = SERVICES) -> list[ServiceProcess]:
    # A test run (its own topic namespace) keeps its pid files and logs apart from the stack's.
    run_dir = settings.home / "run" / (settings.topic_namespace.strip(".") or "stack")
    return [ServiceProcess(n, settings, run_dir) for n in names]


async def _publish(settings: Settings, event: OutboundEvent) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(event.topic), event.value,
                                     key=event.key.encode() if event.key else None)
    finally:
        await producer.stop()


async def issue_credential(settings: Settings, party_kind: PartyKind, party: str) -> str:
    token, change = credentials.new_token(party_kind, party)
    await _publish(settings, credentials.event_of(change))
    return token


async def revoke_credential(settings: Settings, token_id: str) -> None:
    await _publish(settings, credentials.event_of(credentials.revocation(token_id)))


async def produce_submissions(settings: Settings,
                              items: Iterable[tuple[str, dict[str, Any]]],
                              producer: AIOKafkaProducer | None = None) -> int:
    """Send (department, data) pairs as a department would, keyed by subject."""
    own = producer is None
    producer = producer or make_producer(settings)
    if own:
        await producer.start()
    try:
        futures = []
        for dept, data in items:
            key = f"{data['subject']['type']}:{data['subject']['id']}".encode()
            futures.append(await producer.send(settings.topic(INBOUND.of(dept).name),
                                               submission_json(dept, data), key=key))
        for f in futures:
            await f
        return len(futures)
    finally:
        if own:
            await producer.stop()


class IsolatedStack:
    """The four services on their own topic namespace, databases and ports, beside whatever
    else runs on the broker: what the test suite and the benchmark use."""

    def __init__(self, label: str, port_base: int, **extra_env: str) -> None:
        run = f"{label}{uuid.uuid4().hex[:8]}"
        self.env = {
            "XINYONG_TOPIC_NAMESPACE": f"{run}.",
            "XINYONG_DB_PREFIX": f"xinyong_{run}_",
            "XINYONG_PUBLISHER_HTTP_PORT": str(port_base),
            "XINYONG_INGEST_HTTP_PORT": str(port_base + 1),
            "XINYONG_REGISTRY_HTTP_PORT": str(port_base + 2),
            "XINYONG_OBJECTION_HTTP_PORT": str(port_base + 3),
            # The broker's minimum: a killed worker's partitions move on quickly.
            "XINYONG_KAFKA_SESSION_TIMEOUT_MS": "6000",
            **extra_env,
        }
        self.settings = Settings(**{k.removeprefix("XINYONG_").lower(): v  # type: ignore[arg-type]
                                    for k, v in self.env.items()})
        self.processes = {p.name: p for p in services(self.settings)}

    def start(self) -> None:
        infra_up(self.settings)
        asyncio.run(provision(self.settings))
        for p in self.processes.values():
            p.start(self.env)
        for p in self.processes.values():
            p.wait_ready()

    def stop(self) -> None:
        for p in self.processes.values():
            p.stop()
        asyncio.run(wipe(self.settings))

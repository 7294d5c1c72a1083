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
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from confluent_kafka import KafkaException

from deploy import credentials, secrets
from deploy.credentials import admin
from deploy.kafka_admin import KafkaAdmin
from shared import clock, inbox
from shared.access import Principal, username
from shared.catalogue import load_catalogue
from shared.db import drop_database, ensure_database
from shared.envelope import submission_json
from shared.kafka import make_producer
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
    ensure_kafka_admin(settings)


def ensure_kafka_admin(settings: Settings) -> None:
    """Make sure the bootstrap administrator can log in. A broker whose storage was
    formatted before its listeners were authenticated has no SCRAM users: they are added
    over the inter-broker listener, as the broker's own (PLAIN, static JAAS) super user, so
    that an old local broker is upgraded with no manual step."""
    try:
        admin(settings).topic_names()
        return
    except KafkaException:
        pass
    port = int(os.environ.get("XINYONG_KAFKA_BROKER_PORT")
               or int(settings.kafka_bootstrap.rsplit(":", 1)[1]) + 2)
    broker = KafkaAdmin(settings, "broker", secrets.secret(settings, "kafka-broker.password"),
                        overrides={"bootstrap.servers": f"127.0.0.1:{port}",
                                   "sasl.mechanism": "PLAIN",
                                   "security.protocol": "SASL_PLAINTEXT"})
    broker.upsert_user("broker", secrets.secret(settings, "kafka-broker.password"))
    broker.upsert_user(settings.kafka_admin_username, secrets.admin_password(settings))
    admin(settings).topic_names()


def infra_down(settings: Settings) -> None:
    run_script("kafka.sh", "stop", settings)
    run_script("postgres.sh", "stop", settings)


async def provision(settings: Settings) -> list[str]:
    """Databases and roles for every service, every topic, and each service's Kafka user
    with exactly its ACLs; returns the topics created."""
    for service in SERVICES:
        await ensure_database(settings, service)
    secrets.subject_key_secret(settings)  # made once, before any service reads it
    return await asyncio.to_thread(_provision_kafka, settings)


def _provision_kafka(settings: Settings) -> list[str]:
    kafka = admin(settings)
    created = kafka.create_topics(all_topics(load_catalogue(settings.catalogue_path)))
    for service in SERVICES:
        kafka.create_principal(service_principal(settings, service),
                               secrets.service_password(settings, service))
    return created


def service_principal(settings: Settings, service: str) -> Principal:
    return Principal("service", service, username("service", service, settings.topic_namespace))


async def wipe(settings: Settings) -> None:
    """Drop the services' databases and delete their topics: a clean slate. A test or
    benchmark namespace also loses its Kafka users, their ACLs and its secrets."""
    for service in SERVICES:
        await drop_database(settings, service)
    await asyncio.to_thread(_wipe_kafka, settings)


def _wipe_kafka(settings: Settings) -> None:
    kafka = admin(settings)
    kafka.delete_topics([t.name for t in all_topics(load_catalogue(settings.catalogue_path))])
    if settings.topic_namespace:
        for user in kafka.users():
            if user.startswith(settings.topic_namespace):
                kafka.remove_principal(user)
        secrets.forget_namespace(settings)


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
    # What `python` runs; a service by default (`-m services.<name>`).
    command: tuple[str, ...] = ()

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The process's pid while it lives: not a zombie (a killed child not yet reaped),
        and not another program that got the number since (its command line tells)."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        wanted = [c.encode() for c in self.command or ("-m", f"services.{self.name}")]
        return pid if cmdline[1:1 + len(wanted)] == wanted else None

    def start(self, env: dict[str, str] | None = None) -> int:
        if (pid := self.pid()) is not None:
            return pid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        principal = {} if self.command else {  # the service's own Kafka user (provision)
            "XINYONG_KAFKA_SASL_USERNAME": service_principal(self.settings, self.name).username,
            "XINYONG_KAFKA_SASL_PASSWORD": secrets.service_password(self.settings, self.name),
            # Maps a subject's own token back to its archive (/api/v1/me).
            "XINYONG_SUBJECT_KEY_SECRET": secrets.subject_key_secret(self.settings)}
        command = self.command or ("-m", f"services.{self.name}")
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, *command], cwd=REPO_ROOT,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **(env or {}), **principal})
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

    def metrics_url(self) -> str:
        """Its Prometheus metrics, on their own port (never the public one)."""
        return (f"http://{self.settings.metrics_host}:{self.settings.metrics_port(self.name)}"
                "/metrics")

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
    except (ProcessLookupError, PermissionError):  # gone, or another user's: not ours
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _run_dir(settings: Settings) -> Path:
    # A test run (its own topic namespace) keeps its pid files and logs apart from the stack's.
    return settings.home / "run" / (settings.topic_namespace.strip(".") or "stack")


def services(settings: Settings, names: Iterable[str] = SERVICES) -> list[ServiceProcess]:
    return [ServiceProcess(n, settings, _run_dir(settings)) for n in names]


async def send_submissions(producer: AIOKafkaProducer, settings: Settings,
                           items: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Send (department, data) pairs on the departments' inbound topics, keyed by subject,
    with a producer allowed to write them."""
    futures = []
    for dept, data in items:
        key = f"{data['subject']['type']}:{data['subject']['id']}".encode()
        futures.append(await producer.send(settings.topic(INBOUND.of(dept).name),
                                           submission_json(dept, data), key=key))
    for f in futures:
        await f
    return len(futures)


async def produce_as_departments(settings: Settings,
                                 items: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Send (department, data) pairs as the departments themselves: each department's
    records with a credential of its own, issued for this and revoked after."""
    by_department: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for dept, data in items:
        by_department.setdefault(dept, []).append((dept, data))
    sent = 0
    for dept, batch in by_department.items():
        issued = await credentials.issue(settings, "department", dept,
                                         lifetime=timedelta(hours=1))
        producer = make_producer(settings, username=issued.kafka_user or "",
                                 password=issued.kafka_password or "")
        await producer.start()
        try:
            sent += await send_submissions(producer, settings, batch)
        finally:
            await producer.stop()
            await credentials.revoke(settings, issued.credential_id)
    return sent


class IsolatedStack:
    """The four services on their own topic namespace, databases and ports, beside whatever
    else runs on the broker: what the test suite and the benchmark use."""

    def __init__(self, label: str, port_base: int, run: str | None = None,
                 principal: str | None = None, **extra_env: str) -> None:
        """`run` fixes the namespace and database prefix (a kept benchmark city is found
        again by it; default: `label` and a random suffix). `principal`: the kind of this
        namespace's own Kafka user that `settings` and `env` carry once started (the
        benchmark's client), none by default."""
        run = run or f"{label}{uuid.uuid4().hex[:8]}"
        self.principal_kind = principal
        self.env = {
            "XINYONG_TOPIC_NAMESPACE": f"{run}.",
            "XINYONG_DB_PREFIX": f"xinyong_{run}_",
            "XINYONG_PUBLISHER_HTTP_PORT": str(port_base),
            "XINYONG_INGEST_HTTP_PORT": str(port_base + 1),
            "XINYONG_REGISTRY_HTTP_PORT": str(port_base + 2),
            "XINYONG_OBJECTION_HTTP_PORT": str(port_base + 3),
            "XINYONG_PUBLISHER_METRICS_PORT": str(port_base + 50),
            "XINYONG_INGEST_METRICS_PORT": str(port_base + 51),
            "XINYONG_REGISTRY_METRICS_PORT": str(port_base + 52),
            "XINYONG_OBJECTION_METRICS_PORT": str(port_base + 53),
            # The broker's minimum: a killed worker's partitions move on quickly.
            "XINYONG_KAFKA_SESSION_TIMEOUT_MS": "6000",
            # A clock the run may move forward (shared/clock.py; `move_clock`).
            "XINYONG_ENVIRONMENT": "test",
            "XINYONG_TEST_CLOCK_FILE": str(Settings().home / "run" / run / "clock"),
            # What the file sender hands over, apart from other runs'.
            "XINYONG_NOTIFICATION_SPOOL_DIR": str(Settings().home / "run" / run / "notifications"),
            **extra_env,
        }
        self.settings = Settings(**{k.removeprefix("XINYONG_").lower(): v  # type: ignore[arg-type]
                                    for k, v in self.env.items()})
        self.processes = {p.name: p for p in services(self.settings)}
        # The namespace's own clients (set by `start`): see `_principal`.
        self.tester: dict[str, str] = {}
        self.observer: dict[str, str] = {}

    def start(self) -> None:
        infra_up(self.settings)
        asyncio.run(provision(self.settings))
        self.tester = self._principal("tester")
        self.observer = self._principal("observer")
        if self.principal_kind:
            self.act_as(self.principal_kind)
        for p in self.processes.values():
            p.start(self.env)
        for p in self.processes.values():
            p.wait_ready()

    def _principal(self, kind: str, password: str | None = None) -> dict[str, str]:
        """A Kafka user of this namespace (the suite's or the bench's own clients): the
        `username`/`password` arguments of shared.kafka.make_producer and client_options."""
        name = username(kind, "", self.settings.topic_namespace)
        password = password or secrets.new_password()
        admin(self.settings).create_principal(
            Principal(kind, "", name), password)  # type: ignore[arg-type]
        return {"username": name, "password": password}

    def move_clock(self, by: timedelta) -> None:
        """Move every service's clock (and this process's) forward."""
        assert self.settings.test_clock_file is not None
        self.settings.test_clock_file.parent.mkdir(parents=True, exist_ok=True)
        clock.move_test_clock(self.settings.test_clock_file, by)

    def act_as(self, kind: str) -> None:
        """Carry a Kafka user of this namespace in `settings` (and `env`, for processes
        other than the services, which run as themselves)."""
        login = self._principal(kind)
        self.settings = self.settings.model_copy(update={
            "kafka_sasl_username": login["username"], "kafka_sasl_password": login["password"]})
        self.env.update({"XINYONG_KAFKA_SASL_USERNAME": login["username"],
                         "XINYONG_KAFKA_SASL_PASSWORD": login["password"]})

    def restore_principals(self) -> None:
        """Make the namespace's own users again, with the same passwords (a broker whose data
        was replaced knows none of them)."""
        self._principal("tester", self.tester["password"])
        self._principal("observer", self.observer["password"])

    def service_credentials(self, service: str) -> dict[str, str]:
        """The service's own Kafka user: for tests that play a service (a forged event on
        an internal topic can only come from its one writer)."""
        return {"username": service_principal(self.settings, service).username,
                "password": secrets.service_password(self.settings, service)}

    def stop(self) -> None:
        for p in self.processes.values():
            p.stop()
        asyncio.run(wipe(self.settings))


def credential_sweeper(settings: Settings) -> ServiceProcess:
    """The expiry job of credentials (deploy/credentials.py::sweep), every minute."""
    return ServiceProcess("sweeper", settings, _run_dir(settings),
                          command=("-m", "deploy.cli", "credentials", "sweep", "--every", "60"))

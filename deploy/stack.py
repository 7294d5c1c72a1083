"""The local stack: infrastructure scripts, databases, topics and service processes.

Used by the command line (deploy/cli.py), the tests and the benchmark, so that all three
start things the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from deploy import credentials, secrets
from deploy.brokers import LocalKafka
from deploy.credentials import admin
from deploy.kafka_admin import KafkaAdmin
from deploy.pids import alive, end, has_environment, running, still_running, this_process
from shared import clock, inbox
from shared.access import Principal, username
from shared.catalogue import load_catalogue
from shared.db import drop_database, ensure_database
from shared.envelope import submission_json
from shared.kafka import make_producer
from shared.positions import Resolution
from shared.settings import REPO_ROOT, Settings
from shared.topics import INBOUND, SERVICES, STATS_DELTAS, STREAM_APPS, Topic, all_topics

DEPLOY = REPO_ROOT / "deploy"


def run_script(name: str, action: str, settings: Settings,
               env: Mapping[str, str] | None = None) -> None:
    """A script of deploy/ with this process's environment, `env` over it (a stack's own
    Kafka folder and ports, say)."""
    subprocess.run(["bash", str(DEPLOY / name), action], check=True,
                   env={**os.environ, **(env or {}), "XINYONG_HOME": str(settings.home)})


def infra_up(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    run_script("postgres.sh", "start", settings, env)
    run_script("kafka.sh", "start", settings, env)
    ensure_kafka_admin(settings)


def ensure_kafka_admin(settings: Settings) -> None:
    """Make sure the bootstrap administrator can log in. A broker whose storage was
    formatted before its listeners were authenticated has no SCRAM users, and one formatted
    by another checkout holds another password: the user is set over the inter-broker
    listener, as the broker's own (PLAIN, static JAAS) super user, so that an old local
    broker is upgraded with no manual step."""
    if admin(settings).login() == "accepted":
        return
    broker = broker_admin(settings)
    broker.upsert_user("broker", secrets.secret(settings, "kafka-broker.password"))
    broker.upsert_user(settings.kafka_admin_username, secrets.admin_password(settings))
    admin(settings).topic_names()


def broker_admin(settings: Settings) -> KafkaAdmin:
    """The broker's own super user, over the inter-broker listener."""
    first = settings.kafka_bootstrap.split(",")[0]
    port = int(os.environ.get("XINYONG_KAFKA_BROKER_PORT") or int(first.rsplit(":", 1)[1]) + 2)
    return KafkaAdmin(settings, "broker", secrets.secret(settings, "kafka-broker.password"),
                      overrides={"bootstrap.servers": f"127.0.0.1:{port}",
                                 "sasl.mechanism": "PLAIN",
                                 "security.protocol": "SASL_PLAINTEXT"})


def infra_down(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    run_script("kafka.sh", "stop", settings, env)
    run_script("postgres.sh", "stop", settings, env)


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
    for service in (*SERVICES, *STREAM_APPS):
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


# Instance N of a service (N >= 2, `service start --instance N`, `up --replicas N`) listens
# on its service's HTTP and metrics ports plus this times N-1.
INSTANCE_PORT_STEP = 30


@dataclass(frozen=True)
class ServiceProcess:
    """One process running in the background, with its pid file and log under the home.

    Starting it also records that it is wanted (`<label>.want`): the supervisor
    (deploy/supervisor.py) starts again a wanted process that exited; stopping it removes
    that first, so a stop is never fought. A SIGKILL (`kill`) leaves it wanted: a crash."""

    name: str
    settings: Settings
    run_dir: Path
    # What `python` runs; a service by default (`-m services.<name>`).
    command: tuple[str, ...] = ()
    instance: int = 1
    # The Kafka principal it runs as (its own user, made by provision): the service's by
    # default; none for a command that brings its own (the credential sweeper).
    runs_as: str | None = None

    @property
    def label(self) -> str:
        return self.name if self.instance == 1 else f"{self.name}-{self.instance}"

    @property
    def principal(self) -> str | None:
        return self.runs_as or (None if self.command else self.name)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.label}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.label}.log"

    @property
    def want_file(self) -> Path:
        return self.run_dir / f"{self.label}.want"

    @property
    def given_up_file(self) -> Path:
        """Written by the supervisor when the process keeps crashing; a start removes it."""
        return self.run_dir / f"{self.label}.given-up"

    @property
    def is_service(self) -> bool:
        return not self.command

    @property
    def http_port(self) -> int:
        return self.settings.http_port(self.name) + INSTANCE_PORT_STEP * (self.instance - 1)

    @property
    def metrics_port(self) -> int:
        return self.settings.metrics_port(self.name) + INSTANCE_PORT_STEP * (self.instance - 1)

    def _argv(self) -> tuple[str, ...]:
        return self.command or ("-m", f"services.{self.name}")

    def pid(self) -> int | None:
        """The process's pid while it lives: not a zombie (a killed child not yet reaped),
        and not another program that got the number since (its command line tells)."""
        wanted = [c.encode() for c in self._argv()]
        return running(self.pid_file, lambda cmdline: cmdline[1:1 + len(wanted)] == wanted)

    def instance_env(self) -> dict[str, str]:
        """The ports of instance N (>= 2) of a service."""
        if not self.is_service or self.instance == 1:
            return {}
        prefix = f"XINYONG_{self.name.upper()}"
        return {f"{prefix}_HTTP_PORT": str(self.http_port),
                f"{prefix}_METRICS_PORT": str(self.metrics_port)}

    def start(self, env: Mapping[str, str] | None = None) -> int:
        with supervision(self.run_dir):
            self._want()
            if (pid := self.pid()) is not None:
                return pid
            return self._spawn(env)

    def _want(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.want_file.write_text(json.dumps({"name": self.name, "instance": self.instance,
                                              "command": list(self.command),
                                              "runs_as": self.runs_as}))
        self.given_up_file.unlink(missing_ok=True)

    def _spawn(self, env: Mapping[str, str] | None = None) -> int:
        """Start the process (the caller holds the supervision lock and knows it is not
        running)."""
        principal = {} if self.principal is None else {  # its own Kafka user (provision)
            "XINYONG_KAFKA_SASL_USERNAME": service_principal(self.settings,
                                                             self.principal).username,
            "XINYONG_KAFKA_SASL_PASSWORD": secrets.service_password(self.settings,
                                                                    self.principal)}
        if self.is_service:  # the key of the erasure ledger's hashes (shared/purge.py)
            principal["XINYONG_SUBJECT_KEY_SECRET"] = secrets.subject_key_secret(self.settings)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, *self._argv()], cwd=REPO_ROOT,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **(env or {}), **self.instance_env(), **principal})
        self.pid_file.write_text(str(proc.pid))
        # Until the child has exec'd, /proc shows the parent's command line and `pid()`
        # would take the new process for gone.
        deadline = time.monotonic() + 10
        while self.pid() is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop it and no longer want it (the supervisor leaves it stopped)."""
        with supervision(self.run_dir):
            self.want_file.unlink(missing_ok=True)
            self._end(sig, timeout)
            self.pid_file.unlink(missing_ok=True)

    def _end(self, sig: int, timeout: float) -> None:
        pid = self.pid()
        if pid is not None:
            end([pid], sig, timeout)

    def kill(self) -> None:
        """SIGKILL: the crash the services must survive. It stays wanted, as after a real
        crash: a supervisor, or the next `up`, starts it again."""
        self._end(signal.SIGKILL, timeout=5)

    def url(self) -> str:
        return f"http://{self.settings.http_host}:{self.http_port}"

    def readiness(self, timeout: float = 1) -> dict[str, Any] | None:
        """What /readyz answers, with its status (`status`), if this process answers it."""
        try:
            r = httpx.get(self.url() + "/readyz", timeout=timeout)
            answer = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        # The pid tells our process from another one already on the port.
        if not isinstance(answer, dict) or answer.get("pid") != self.pid():
            return None
        return {**answer, "status": r.status_code}

    def metrics_url(self) -> str:
        """Its Prometheus metrics, on their own port (never the public one)."""
        return f"http://{self.settings.metrics_host}:{self.metrics_port}/metrics"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise RuntimeError(f"{self.label} exited; see {self.log_file}:\n{self.tail()}")
            answer = self.readiness()
            if answer is not None:
                if answer["status"] == 200:
                    return
                paused = (answer.get("positions") or {}).get("paused")
                if paused:  # waiting will not help: an operator has to resolve these
                    raise PositionsPaused(self.label, paused)
            time.sleep(0.25)
        raise TimeoutError(f"{self.label} not ready in {timeout}s; see {self.log_file}:\n"
                           f"{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def supervision(run_dir: Path) -> Iterator[None]:
    """The lock a start, a stop and the supervisor's restart take: a stop is never undone
    by a restart that had already decided to happen."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".supervision.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class PositionsPaused(RuntimeError):
    """A service runs but holds partitions whose stored position disagrees with the log."""

    def __init__(self, service: str, paused: list[dict[str, Any]]) -> None:
        self.service = service
        self.paused = paused
        super().__init__(f"{service}: {len(paused)} partition(s) paused:\n" + "\n".join(
            f"  {p['topic']}[{p['partition']}]: {p['why']}" for p in paused))


def run_dir(settings: Settings) -> Path:
    # A test run (its own topic namespace) keeps its pid files and logs apart from the stack's.
    return settings.home / "run" / (settings.topic_namespace.strip(".") or "stack")


@dataclass(frozen=True)
class StreamAppRun:
    """A process that is not a service of the common layout (a faust worker): the module it
    runs, and the topics its consumer group reads (its lag: `./xinyong status`). One process
    each: `--replicas` scales the services only."""

    command: tuple[str, ...]
    sources: tuple[Topic[Any], ...]


STREAM_APP_RUNS = {"stats-windows": StreamAppRun(("-m", "services.stats.windows"),
                                                 (STATS_DELTAS,))}
PROCESSES = (*SERVICES, *STREAM_APPS)


def process(settings: Settings, name: str, instance: int = 1) -> ServiceProcess:
    """Instance N of a service, or a stream app (stats-windows) with its own command and
    principal."""
    return ServiceProcess(name, settings, run_dir(settings),
                          command=STREAM_APP_RUNS[name].command if name in STREAM_APP_RUNS else (),
                          instance=instance, runs_as=name if name in STREAM_APP_RUNS else None)


def services(settings: Settings, names: Iterable[str] = PROCESSES,
             replicas: int = 1) -> list[ServiceProcess]:
    """Instances 1..replicas of each service named (a stream app: its one process)."""
    return [process(settings, n, i) for n in names
            for i in range(1, (1 if n in STREAM_APP_RUNS else replicas) + 1)]


def instances(settings: Settings, names: Iterable[str] = PROCESSES) -> list[ServiceProcess]:
    """Every instance of each service that is wanted or has a pid file (instance 1 always):
    what `status` shows and `down` stops."""
    folder = run_dir(settings)
    found = []
    for name in names:
        numbers = {1}
        for path in [*folder.glob(f"{name}-*.pid"), *folder.glob(f"{name}-*.want")]:
            suffix = path.stem.removeprefix(f"{name}-")
            if suffix.isdigit():
                numbers.add(int(suffix))
        found += [process(settings, name, i) for i in sorted(numbers)]
    return found


def wanted(settings: Settings) -> list[ServiceProcess]:
    """The processes of the stack that should run (their `.want` files)."""
    folder = run_dir(settings)
    out = []
    for path in sorted(folder.glob("*.want")):
        try:
            spec = json.loads(path.read_text())
            out.append(ServiceProcess(spec["name"], settings, folder,
                                      tuple(spec.get("command") or ()),
                                      int(spec.get("instance", 1)), spec.get("runs_as")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


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
                 principal: str | None = None, replicas: int = 1,
                 kafka: LocalKafka | None = None, test_clock: bool = True,
                 **extra_env: str) -> None:
        """`run` fixes the namespace and database prefix (a kept benchmark city is found
        again by it; default: `label` and a random suffix). `principal`: the kind of this
        namespace's own Kafka user that `settings` and `env` carry once started (the
        benchmark's client), none by default. `replicas`: processes of each service in its
        consumer group. `kafka`: a Kafka cluster of its own (its folder, ports and nodes),
        started by `start`; the machine's by default. `test_clock`: a clock the run may move
        forward (`move_clock`), else the real one.

        Ports from `port_base`: HTTP +0..+3, the front door's +4..+7 (not started here),
        metrics +50..+53; instance N of a service adds INSTANCE_PORT_STEP*(N-1)."""
        run = run or f"{label}{uuid.uuid4().hex[:8]}"
        self.principal_kind = principal
        self.kafka = kafka
        cluster_env = {} if kafka is None else {
            "XINYONG_KAFKA_DIR": str(kafka.folder), "XINYONG_KAFKA_PORT": str(kafka.port),
            "XINYONG_KAFKA_BROKERS": str(kafka.brokers), **kafka.settings_env()}
        self.env = {
            "XINYONG_TOPIC_NAMESPACE": f"{run}.",
            "XINYONG_DB_PREFIX": f"xinyong_{run}_",
            "XINYONG_PUBLISHER_HTTP_PORT": str(port_base),
            "XINYONG_INGEST_HTTP_PORT": str(port_base + 1),
            "XINYONG_REGISTRY_HTTP_PORT": str(port_base + 2),
            "XINYONG_OBJECTION_HTTP_PORT": str(port_base + 3),
            "XINYONG_STATS_HTTP_PORT": str(port_base + 8),  # +9: the tests' Prometheus
            "XINYONG_PUBLISHER_METRICS_PORT": str(port_base + 50),
            "XINYONG_INGEST_METRICS_PORT": str(port_base + 51),
            "XINYONG_REGISTRY_METRICS_PORT": str(port_base + 52),
            "XINYONG_OBJECTION_METRICS_PORT": str(port_base + 53),
            "XINYONG_STATS_METRICS_PORT": str(port_base + 54),
            "XINYONG_STATS_WINDOWS_METRICS_PORT": str(port_base + 55),
            "XINYONG_STATS_WINDOWS_HTTP_PORT": str(port_base + 55),
            "XINYONG_FRONTDOOR_PUBLIC_PORT": str(port_base + 4),
            "XINYONG_FRONTDOOR_INGEST_PORT": str(port_base + 5),
            "XINYONG_FRONTDOOR_OPERATOR_PORT": str(port_base + 6),
            "XINYONG_FRONTDOOR_OBJECTION_PORT": str(port_base + 7),
            # The broker's minimum: a killed worker's partitions move on quickly.
            "XINYONG_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "XINYONG_ENVIRONMENT": "test",
            # A clock the run may move forward (shared/clock.py; `move_clock`).
            **({"XINYONG_TEST_CLOCK_FILE": str(Settings().home / "run" / run / "clock")}
               if test_clock else {}),
            **cluster_env,
            # What the file sender hands over, apart from other runs'.
            "XINYONG_NOTIFICATION_SPOOL_DIR": str(Settings().home / "run" / run / "notifications"),
            **extra_env,
        }
        self.settings = Settings(**{k.removeprefix("XINYONG_").lower(): v  # type: ignore[arg-type]
                                    for k, v in self.env.items()
                                    if k.removeprefix("XINYONG_").lower() in Settings.model_fields})
        self.processes = {p.name: p for p in services(self.settings)}
        # Instances 2.. of each service, in the same consumer groups.
        self.replicas = [p for p in services(self.settings, replicas=replicas)
                         if p.instance > 1]
        # The namespace's own clients (set by `start`): see `_principal`.
        self.tester: dict[str, str] = {}
        self.observer: dict[str, str] = {}

    @property
    def every_process(self) -> list[ServiceProcess]:
        return [*self.processes.values(), *self.replicas]

    def start(self) -> None:
        for run in reap_abandoned_runs(self.settings.home):
            print(f"stopped what run {run} left running (its owner is gone)", file=sys.stderr)
        claim_run(run_dir(self.settings))
        infra_up(self.settings, self.env)
        asyncio.run(provision(self.settings))
        self.tester = self._principal("tester")
        self.observer = self._principal("observer")
        if self.principal_kind:
            self.act_as(self.principal_kind)
        for p in self.every_process:
            p.start(self.env)
        for p in self.every_process:
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
        for p in self.every_process:
            p.stop()
        asyncio.run(wipe(self.settings))


# --- runs whose owner is gone ----------------------------------------------------------------

# In a test or benchmark run's folder: the process that started the run (pid and start time).
OWNER_FILE = "owner.json"
# How long the folder of a finished test or benchmark run (its services' logs) is kept for a
# look after the run; the next run to start removes it after that.
FINISHED_RUN_LOGS_KEPT = timedelta(days=3)


def claim_run(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OWNER_FILE).write_text(json.dumps(this_process()))


def reap_abandoned_runs(home: Path) -> list[str]:
    """Stop what test and benchmark runs left running when their owner died without
    stopping them (killed, or a crash before its teardown): idle consumers that retry for
    ever and take a share of the cores from every later run and benchmark. A run whose
    owner still lives is left alone; the stack of `./xinyong up` has no owner file. The
    folder of a finished run is removed once `FINISHED_RUN_LOGS_KEPT` has passed since it was
    last written. Returns the runs reaped."""
    reaped = []
    for folder in sorted((home / "run").glob(f"*/{OWNER_FILE}")):
        folder = folder.parent
        try:
            owner = json.loads((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(owner, dict) or still_running(owner):
            continue
        if _end_run(folder):
            reaped.append(folder.name)
        elif time.time() - _last_written(folder) > FINISHED_RUN_LOGS_KEPT.total_seconds():
            # Its logs, pid files and clock: nothing a later run reads (a kept city's data
            # is in its databases and topics, its manifest under <home>/bench). Its front
            # door's folder too (configuration and access log), unless its nginx lives.
            shutil.rmtree(folder, ignore_errors=True)
            door = home / "frontdoor" / folder.name
            if not _pid_alive(door / "nginx.pid"):
                shutil.rmtree(door, ignore_errors=True)
    return reaped


def _pid_alive(pid_file: Path) -> bool:
    try:
        return alive(int(pid_file.read_text()))
    except (OSError, ValueError):
        return False


def _last_written(folder: Path) -> float:
    return max((f.stat().st_mtime for f in folder.iterdir() if f.is_file()),
               default=folder.stat().st_mtime)


def _end_run(folder: Path) -> bool:
    """SIGTERM, then SIGKILL, every live process of the run (its pid files; only processes
    started with the run's namespace), after its supervisor is told to want none."""
    for want in folder.glob("*.want"):
        want.unlink(missing_ok=True)
    namespace = f"{folder.name}."
    pids = []
    for pid_file in folder.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if alive(pid) and has_environment(pid, "XINYONG_TOPIC_NAMESPACE", namespace):
                pids.append(pid)
    end(pids, signal.SIGTERM, timeout=10)
    return bool(pids)


def credential_sweeper(settings: Settings) -> ServiceProcess:
    """The expiry job of credentials (deploy/credentials.py::sweep), every minute."""
    return ServiceProcess("sweeper", settings, run_dir(settings),
                          command=("-m", "deploy.cli", "credentials", "sweep", "--every", "60"))


def supervisor(settings: Settings, *options: str) -> ServiceProcess:
    """The stack's supervisor (deploy/supervisor.py): starts again a process that exits."""
    return ServiceProcess("supervisor", settings, run_dir(settings),
                          command=("-m", "deploy.supervisor", *options))

"""Backups of the services' databases and their restore (`./xinyong backup`, `./xinyong
restore <service> <dump>`; docs/runbook.md, "Restoring a database").

A backup is `pg_dump -Fc` of each service's database. A restored database holds the
positions it had consumed when it was dumped (`consumed_positions`, written in the same
transaction as the effects), so the service, started again, replays from Kafka what came
after, and every event it emits again carries the id it had the first time
(`shared/messages.py::caused_id`): consumers drop them as already seen.

That only works while Kafka still holds everything after the dump. Before it touches
anything, `restore` checks each position in the dump against the log as it is now, with the
very rule the service applies at start (`shared/positions.py::decide`): a position below
the log's start (retention deleted what the dump had not applied yet), or past its end, is
refused with the partitions, offsets and retention it found, instead of a restore that
would pause those partitions or replay with a gap.

The restore goes into a new database, renamed into place only once it is complete: a
failed restore leaves the current one as it was.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from deploy.brokers import operator_admin, operator_login
from services.ingest import contracts as ingest
from services.objection import contracts as objection
from services.publisher import contracts as publisher
from services.registry import contracts as registry
from services.stats import contracts as stats
from shared.catalogue import load_catalogue
from shared.kafka import observe_logs
from shared.positions import LogState, StoredPosition, Verdict, decide, explain
from shared.settings import Settings
from shared.topics import CREDENTIALS, all_topics

CONSUMED = {"ingest": ingest.consumed_topics, "registry": registry.consumed_topics,
            "publisher": publisher.consumed_topics, "objection": objection.consumed_topics,
            "stats": stats.consumed_topics}

Part = tuple[str, int]


class RestoreRefused(RuntimeError):
    """The dump cannot be restored as asked; the message says why and what to do."""


def pg_tool(name: str) -> str:
    """pg_dump or pg_restore: the newest PostgreSQL's (a newer client reads and writes
    older servers), else the one on the PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p.parts[-3])])
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} not found: install PostgreSQL's client "
                                "(deploy/postgres.sh does)")
    return path


def _pg_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": settings.pg_admin_password, "PGCONNECT_TIMEOUT": "10"}


def _connection(settings: Settings, database: str) -> list[str]:
    return ["-h", settings.pg_host, "-p", str(settings.pg_port), "-U",
            settings.pg_admin_user, "-d", database]


# --- backup --------------------------------------------------------------------------------


def backup(settings: Settings, services: Sequence[str], folder: Path | None = None) -> list[Path]:
    """`pg_dump -Fc` of each service's database into `folder` (default:
    `<home>/backups/<UTC time>/`), one `<service>.dump` each; returns the files."""
    folder = folder or settings.home / "backups" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # the databases hold personal data
    written = []
    for service in services:
        target = folder / f"{service}.dump"
        subprocess.run([pg_tool("pg_dump"), "-Fc", "--no-owner", "-f", str(target),
                        *_connection(settings, settings.db_name(service))],
                       check=True, env=_pg_env(settings), capture_output=True, text=True)
        written.append(target)
    return written


# --- what a dump holds -----------------------------------------------------------------------


def dump_created_at(dump: Path) -> datetime | None:
    """When pg_dump made the archive (its table of contents says)."""
    out = subprocess.run([pg_tool("pg_restore"), "-l", str(dump)], check=True,
                         capture_output=True, text=True).stdout
    match = re.search(r"Archive created at (.+)", out)
    if not match:
        return None
    text = match.group(1).strip()
    for fmt in ("%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S %z"):
        try:
            return datetime.strptime(text, fmt).replace(
                tzinfo=None if "%z" in fmt else UTC)
        except ValueError:
            continue
    return None


def dump_positions(dump: Path) -> dict[Part, StoredPosition]:
    """The consumed positions the dump holds (its `consumed_positions` rows)."""
    out = subprocess.run([pg_tool("pg_restore"), "--data-only", "--table=consumed_positions",
                          "-f", "-", str(dump)], check=True, capture_output=True,
                         text=True).stdout
    return parse_copy_positions(out)


def parse_copy_positions(sql: str) -> dict[Part, StoredPosition]:
    """The rows of `COPY ... consumed_positions (...) FROM stdin;` in pg_restore's output."""
    positions: dict[Part, StoredPosition] = {}
    lines = iter(sql.splitlines())
    for line in lines:
        match = re.match(r"COPY \S*consumed_positions \(([^)]*)\) FROM stdin;", line)
        if not match:
            continue
        columns = [c.strip().strip('"') for c in match.group(1).split(",")]
        for row in lines:
            if row == "\\.":
                break
            values = dict(zip(columns, row.split("\t"), strict=True))

            def value(name: str, row: dict[str, str] = values) -> str | None:
                v = row.get(name)
                return None if v in (None, "\\N") else v

            positions[(str(value("topic")), int(str(value("partition"))))] = StoredPosition(
                int(str(value("next_offset"))), value("cluster_id"), value("topic_id"))
    return positions


# --- the check -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionCheck:
    topic: str
    partition: int
    stored: StoredPosition | None
    log: LogState
    verdict: Verdict

    def line(self) -> str:
        where = f"{self.topic}[{self.partition}]"
        if self.verdict.found is None:
            at = self.stored.next_offset if self.stored else self.log.log_start
            return f"{where}: resumes at {at} of {self.log.log_start}..{self.log.log_end}"
        return f"{where}: {explain(self.verdict.found, self.stored, self.log)}"


def check(stored: Mapping[Part, StoredPosition], logs: Mapping[Part, LogState]
          ) -> list[PartitionCheck]:
    """Each partition the service consumes, as the restored database would find it: the
    verdict the service itself would reach at start (pure: the caller reads the broker)."""
    return [PartitionCheck(topic, partition, stored.get((topic, partition)), log,
                           decide(stored.get((topic, partition)), log))
            for (topic, partition), log in sorted(logs.items())]


def refusal(checks: Iterable[PartitionCheck], dump: Path, created: datetime | None,
            retention_hours: Mapping[str, float]) -> str | None:
    """Why the dump cannot be restored (None: it can): the partitions it could not resume
    without a gap, and the retention that decided it."""
    lost = [c for c in checks if c.verdict.paused]
    if not lost:
        return None
    age = ""
    if created is not None:
        hours = (datetime.now(UTC) - created).total_seconds() / 3600
        age = f" It was made {hours:.1f} h ago ({created:%Y-%m-%d %H:%M} UTC)."
    kept = sorted({f"{t} {h:g} h" if h >= 0 else f"{t} for ever"
                   for t, h in retention_hours.items() if any(c.topic == t for c in lost)})
    return (f"Restore of {dump.name} refused: {len(lost)} partition(s) could not resume from "
            f"the dump's positions without losing messages.{age} Retention of the topics: "
            f"{', '.join(kept) or 'unknown'}; what the dump had not applied yet is no longer "
            "in Kafka:\n" + "\n".join(f"  {c.line()}" for c in lost)
            + "\nRestore a more recent backup (a backup is only good for as long as the "
              "topics keep messages: docs/runbook.md, \"Restoring a database\"), or rebuild "
              "the database from nothing and resolve the partitions "
              "(`./xinyong positions resolve`).")


def consumed_partitions(settings: Settings, service: str) -> dict[str, list[Part]]:
    """(topic, partition) the service consumes, by consumer group (its stream worker's and
    its credentials worker's), topics as in the contract."""
    catalogue = load_catalogue(settings.catalogue_path)
    counts = {t.name: t.partitions for t in all_topics(catalogue)}
    group = settings.group_id(service)
    return {group: [(t, p) for t in CONSUMED[service](catalogue) for p in range(counts[t])],
            group + "-credentials": [(CREDENTIALS.name, p)
                                     for p in range(CREDENTIALS.partitions)]}


async def observe(settings: Settings, service: str) -> dict[Part, LogState]:
    """What the broker says now of every partition the service consumes."""
    admin = operator_admin(settings)
    logs: dict[Part, LogState] = {}
    for group, parts in consumed_partitions(settings, service).items():
        seen = await observe_logs(admin, group, [(settings.topic(t), p) for t, p in parts],
                                  operator_login(settings))
        logs.update({(t.removeprefix(settings.topic_namespace), p): state
                     for (t, p), state in seen.items()})
    return logs


def retention_hours(settings: Settings, topics: Iterable[str]) -> dict[str, float]:
    """Each topic's retention.ms in hours (-1: kept for ever)."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    admin = operator_admin(settings)
    names = sorted(set(topics))
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, settings.topic(t))
                                      for t in names])
    out = {}
    for resource, future in futures.items():
        entries: dict[str, Any] = future.result(timeout=30)
        ms = float(entries["retention.ms"].value)
        out[resource.name.removeprefix(settings.topic_namespace)] = ms / 3_600_000 \
            if ms >= 0 else -1
    return out


# --- restore ---------------------------------------------------------------------------------


def _quoted(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"unsafe database name {name!r}")
    return f'"{name}"'


async def _sessions(settings: Settings, database: str) -> list[str]:
    admin = await asyncpg.connect(settings.admin_dsn(), timeout=10)
    try:
        rows = await admin.fetch(
            "SELECT pid, usename, coalesce(client_addr::text, 'local') AS addr,"
            " application_name FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()", database)
    finally:
        await admin.close()
    return [f"pid {r['pid']} ({r['usename']} from {r['addr']}"
            + (f", {r['application_name']}" if r["application_name"] else "") + ")"
            for r in rows]


async def _admin(settings: Settings, *statements: str) -> None:
    admin = await asyncpg.connect(settings.admin_dsn(), timeout=10)
    try:
        for sql in statements:
            await admin.execute(sql)
    finally:
        await admin.close()


@dataclass(frozen=True)
class Restored:
    service: str
    dump: Path
    created: datetime | None
    checks: list[PartitionCheck]

    @property
    def replays(self) -> int:
        """Messages the service will apply again from Kafka."""
        return sum(max(0, c.log.log_end - (c.verdict.start or 0)) for c in self.checks)


def restore(settings: Settings, service: str, dump: Path, force: bool = False) -> Restored:
    """Put the dump back as the service's database (the service must be stopped); raises
    RestoreRefused, changing nothing, when Kafka no longer holds what the restored database
    would have to replay, or when something still uses the database (`force` ends those
    sessions instead)."""
    if service not in CONSUMED:
        raise RestoreRefused(f"unknown service {service}")
    if not dump.is_file():
        raise RestoreRefused(f"no dump at {dump}")
    created = dump_created_at(dump)
    stored = dump_positions(dump)
    logs = asyncio.run(observe(settings, service))
    checks = check(stored, logs)
    reason = refusal(checks, dump, created, retention_hours(settings, {t for t, _ in logs}))
    if reason:
        raise RestoreRefused(reason)

    name = settings.db_name(service)
    staging = f"{name}__restoring"
    sessions = asyncio.run(_sessions(settings, name))
    if sessions and not force:
        raise RestoreRefused(
            f"{len(sessions)} session(s) still use {name}: " + "; ".join(sessions)
            + f". Stop the service everywhere first (`./xinyong service stop {service}`), "
              "or pass --force to end them.")
    asyncio.run(_admin(
        settings, f"DROP DATABASE IF EXISTS {_quoted(staging)} WITH (FORCE)",
        # As shared/db.py::ensure_database: the service's role owns it; UTF-8 collation.
        f"CREATE DATABASE {_quoted(staging)} OWNER {_quoted(name)} ENCODING 'UTF8' "
        "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0"))
    done = subprocess.run([pg_tool("pg_restore"), "--no-owner", f"--role={name}",
                           "--exit-on-error", "--single-transaction",
                           *_connection(settings, staging), str(dump)],
                          env=_pg_env(settings), capture_output=True, text=True)
    if done.returncode != 0:
        asyncio.run(_admin(settings, f"DROP DATABASE IF EXISTS {_quoted(staging)} WITH (FORCE)"))
        raise RestoreRefused(f"pg_restore failed; {name} is unchanged:\n{done.stderr[-2000:]}")
    asyncio.run(_swap(settings, name, staging, force))
    return Restored(service, dump, created, checks)


async def _swap(settings: Settings, name: str, staging: str, force: bool) -> None:
    """The restored database takes the service's database's name; the old one is dropped
    once it no longer has it (a rename needs no session on the database: those left are
    ended first when forced)."""
    replaced = f"{name}__replaced"
    admin = await asyncpg.connect(settings.admin_dsn(), timeout=10)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_quoted(replaced)} WITH (FORCE)")
        for attempt in range(5):
            if force:
                await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                    " WHERE datname = $1 AND pid <> pg_backend_pid()", name)
            try:
                await admin.execute(f"ALTER DATABASE {_quoted(name)} RENAME TO "
                                    f"{_quoted(replaced)}")
                break
            except asyncpg.ObjectInUseError:
                if not force or attempt == 4:
                    raise RestoreRefused(f"{name} is in use again; nothing was replaced "
                                         f"(the restored copy is {staging})") from None
                await asyncio.sleep(0.2)
            except asyncpg.InvalidCatalogNameError:
                break  # no database to replace (dropped, or never made)
        await admin.execute(f"ALTER DATABASE {_quoted(staging)} RENAME TO {_quoted(name)}")
        await admin.execute(f"DROP DATABASE IF EXISTS {_quoted(replaced)} WITH (FORCE)")
    finally:
        await admin.close()

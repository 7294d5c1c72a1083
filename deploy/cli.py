"""`xinyong`: start, stop and inspect the local stack, load demo data, run the benchmark."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer

from deploy import backup as backups
from deploy import credentials, demo, frontdoor, stack
from deploy import status as status_report
from deploy.brokers import LocalKafka, adopt
from deploy.kafka_admin import KafkaAdmin
from deploy.observe import Prometheus
from shared import clock, outbox
from shared.catalogue import Catalogue, load_catalogue
from shared.contract import SUBJECT_TYPES, PartyKind, subject_key
from shared.identifiers import check_resident_id, check_uscc, normalize_identifier
from shared.positions import Resolution, resolve_command
from shared.settings import REPO_ROOT, Settings, get_settings
from shared.topics import SERVICES, all_topics

app = typer.Typer(help="Xinyong (信用): the Zhuhai public joint credit information system.",
                  no_args_is_help=True)
infra = typer.Typer(help="Kafka and PostgreSQL only.", no_args_is_help=True)
creds = typer.Typer(help="Credentials of departments, agencies, subjects and operators.",
                    no_args_is_help=True)
app.add_typer(creds, name="credentials")
service = typer.Typer(help="One service at a time.", no_args_is_help=True)
positions = typer.Typer(help="Consumed positions, checked against the Kafka log.",
                        no_args_is_help=True)
app.add_typer(infra, name="infra")
app.add_typer(service, name="service")
app.add_typer(positions, name="positions")
outbox_cli = typer.Typer(help="Events the broker refused, set aside from a service's outbox.",
                         no_args_is_help=True)
app.add_typer(outbox_cli, name="outbox")

ServiceName = Annotated[str, typer.Argument(help=f"one of {', '.join(stack.PROCESSES)}")]
Instance = Annotated[int, typer.Option(
    "--instance", min=1, help="which process of the service (N >= 2: its HTTP and metrics "
    f"ports + {stack.INSTANCE_PORT_STEP}*(N-1))")]
T = TypeVar("T")


@app.callback()
def _local_cluster() -> None:
    """Every command talks to the local Kafka cluster as it is: with several nodes
    (`up --brokers 3`), all of them are the bootstrap list and the replication factor is
    theirs (deploy/brokers.py), unless the environment names another cluster."""
    _adopt_cluster()


def _adopt_cluster() -> LocalKafka:
    env = dict(os.environ)
    cluster = adopt(get_settings(), env)
    os.environ.update({k: v for k, v in env.items() if os.environ.get(k) != v})
    get_settings.cache_clear()
    return cluster


def _replicas_now(settings: Settings) -> int:
    """How many processes of each service the stack wants now (at least 1)."""
    return max([p.instance for p in stack.wanted(settings) if p.is_service] or [1])


@app.command()
def up(demo_data: Annotated[bool, typer.Option("--demo/--no-demo")] = True,
       observe: Annotated[bool, typer.Option(
           "--observe", help="also Prometheus, scraping the services with the alert rules "
           "loaded (port: XINYONG_PROMETHEUS_PORT, default 9090)")] = False,
       brokers: Annotated[int | None, typer.Option(
           "--brokers", min=1, max=9, help="Kafka nodes on this machine: 3 gives one "
           "controller quorum, replication factor 3, min.insync.replicas 2 (default: as "
           "last started, else 1)")] = None,
       replicas: Annotated[int | None, typer.Option(
           "--replicas", min=1, max=4, help="processes of each service, in one consumer "
           "group each (default: as now, else 1)")] = None) -> None:
    """Start Kafka, PostgreSQL, the services, their supervisor and the front door
    (idempotent), with demo data."""
    if brokers is not None:
        os.environ["XINYONG_KAFKA_BROKERS"] = str(brokers)
    stack.infra_up(get_settings())
    cluster = _adopt_cluster()
    settings = get_settings()
    created = asyncio.run(stack.provision(settings))
    typer.echo(f"kafka: {cluster.brokers} node(s) at {settings.kafka_bootstrap}, replication "
               f"factor {settings.kafka_replication_factor}, min.insync.replicas "
               f"{settings.kafka_min_insync_replicas}")
    typer.echo(f"topics: {len(created)} created" if created else "topics: all present")
    _warn_replication(settings)
    replicas = replicas or _replicas_now(settings)
    env = frontdoor.service_env(settings)
    for proc in stack.instances(settings):
        if proc.instance > replicas:
            running = proc.pid() is not None
            proc.stop()  # and no longer wanted: the supervisor leaves it
            if running:
                typer.echo(f"{proc.label:<12} stopped (--replicas {replicas})")
    procs = stack.services(settings, replicas=replicas)
    for proc in procs:
        proc.start(env)
    for proc in procs:
        try:
            proc.wait_ready()
        except stack.PositionsPaused as exc:
            # It runs and serves; the partitions named wait for an operator's decision.
            typer.echo(f"{proc.label:<12} running (pid {proc.pid()}) at {proc.url()}, but\n"
                       f"{exc}", err=True)
            continue
        typer.echo(f"{proc.label:<12} running (pid {proc.pid()}) at {proc.url()}")
    sweeper = stack.credential_sweeper(settings)
    sweeper.start(env)
    typer.echo(f"{sweeper.name:<12} running (pid {sweeper.pid()}): expired credentials "
               "lose their Kafka users")
    watcher = stack.supervisor(settings)
    watcher.start(env)
    typer.echo(f"{watcher.name:<12} running (pid {watcher.pid()}): restarts a process that "
               f"exits (log: {watcher.log_file})")
    door = frontdoor.FrontDoor(settings)
    try:
        door.start({s: replicas for s in SERVICES})
    except subprocess.CalledProcessError:
        # No nginx (not installable here, a port taken): the services' own ports still work.
        typer.echo("front door NOT started (deploy/frontdoor.sh said why above); the "
                   "services answer on their own ports", err=True)
    marker = settings.home / "demo.loaded"
    if demo_data and not marker.exists():
        sent = asyncio.run(stack.produce_as_departments(settings, demo.demo_records()))
        marker.write_text(date.today().isoformat())
        typer.echo(f"demo data: {sent} records sent by the departments on their inbound topics")
    urls = frontdoor.urls(settings)
    typer.echo(f"\n信用珠海 public site and API:  {urls['public']}/  "
               f"(API: {urls['public']}/api/v1/subjects?q=珠海, OpenAPI: {urls['public']}/docs)\n"
               f"objections and repairs:      {urls['objection']}/objections/new  "
               f"(API: {urls['objection']}/docs)\n"
               f"statistics:                  {urls['public']}/api/v1/stats/districts?"
               f"from=2026-01-01&to=2026-12-31\n"
               f"ingest gateway:              {urls['ingest']}/docs\n"
               f"operators' API:              {urls['operator']}/docs")
    if observe:
        prometheus = Prometheus(settings)
        prometheus.start(replicas=replicas)
        typer.echo(f"Prometheus:                  {prometheus.url}/alerts  (targets: "
                   f"{prometheus.url}/targets; Grafana: README, \"Operating Xinyong\")")


def _warn_replication(settings: Settings) -> None:
    """A topic made before the replication factor was raised keeps fewer copies: say so."""
    names = [t.name for t in all_topics(load_catalogue(settings.catalogue_path))]
    from deploy.credentials import admin

    kafka: KafkaAdmin = admin(settings)
    short = {n: r for n, r in kafka.replicas(names).items()
             if r < settings.kafka_replication_factor}
    if short:
        typer.echo(f"warning: {len(short)} topic(s) have fewer replicas than "
                   f"{settings.kafka_replication_factor} (made before it was raised), e.g. "
                   + ", ".join(f"{n} ({r})" for n, r in sorted(short.items())[:3])
                   + ": reassign their partitions (docs/runbook.md, \"Adding a broker\")",
                   err=True)


@app.command()
def down() -> None:
    """Stop the supervisor, the services, the front door, Kafka and PostgreSQL."""
    settings = get_settings()
    for proc in [stack.supervisor(settings), *stack.instances(settings),
                 stack.credential_sweeper(settings)]:
        proc.stop()
        typer.echo(f"{proc.label:<12} stopped")
    door = frontdoor.FrontDoor(settings)
    if door.config.exists():
        door.stop()
    if (settings.home / "prometheus" / "prometheus.yml").exists():
        Prometheus(settings).stop()
    stack.infra_down(settings)


@app.command()
def reset(yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Stop the services, drop their databases and delete their topics (local data only)."""
    if not yes:
        typer.confirm("Drop every Xinyong database and topic on this machine?", abort=True)
    settings = get_settings()
    for proc in [stack.supervisor(settings), *stack.instances(settings)]:
        proc.stop()
    asyncio.run(stack.wipe(settings))
    (settings.home / "demo.loaded").unlink(missing_ok=True)
    typer.echo("databases dropped, topics deleted; `xinyong up` starts afresh")


@app.command()
def status(as_json: Annotated[bool, typer.Option(
        "--json", help="the same as one JSON document")] = False) -> None:
    """Per service: its processes (pid, ready, partitions, restarts), consumer lag, outbox
    backlog and its oldest event, dead letters, events set aside, paused partitions; the
    Kafka nodes and the partitions each leads; the front door."""
    report = status_report.gather(get_settings())
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))
        return
    typer.echo("\n".join(status_report.lines(report)))


def _positions_line(report: stack.PositionReport) -> str:
    """A service's position state: ok, or each mismatch with what resolves it."""
    if report.error:
        return f"{'':<10} positions: unknown: {report.error}"
    lines = [f"{'':<10} positions: " + (f"{len(report.held)} partition(s) PAUSED"
                                         if report.held else "ok")]
    for h in report.held:
        lines.append(f"{'':<12}{h.topic}[{h.partition}] {h.reason}: {h.detail}")
        lines.append(f"{'':<14}" + (
            f"resolution {h.resolution} recorded; {report.service} carries it out at its "
            "next check" if h.resolution else
            "resolve: " + resolve_command(report.service, h.topic, h.partition)))
    if report.replays:
        lines.append(f"{'':<12}replayed in the last 24 h: " + ", ".join(
            f"{r['topic']}[{r['partition']}] {r['resolution'] or r['reason']} from "
            f"{r['resumed_from']}" for r in report.replays[-5:])
            + (f" (+{len(report.replays) - 5} more: ./xinyong positions show)"
               if len(report.replays) > 5 else ""))
    return "\n".join(lines)


@positions.command("show")
def positions_show(name: Annotated[str | None, typer.Argument(
        help=f"one of {', '.join(SERVICES)} (default: all)")] = None) -> None:
    """Paused partitions and the replays of the last day, per service."""
    settings = get_settings()
    for svc in [name] if name else SERVICES:
        report = asyncio.run(stack.position_report(settings, svc))
        typer.echo(svc)
        typer.echo(_positions_line(report))
        for r in report.replays:
            typer.echo(f"{'':<12}{r['resumed_at']:%Y-%m-%d %H:%M:%S} {r['topic']}"
                       f"[{r['partition']}] {r['reason']}"
                       + (f" resolved {r['resolution']}" if r["resolution"] else "")
                       + f", from offset {r['resumed_from']}: {r['detail']}")


@positions.command("resolve")
def positions_resolve(
        name: ServiceName,
        topic: Annotated[str, typer.Argument(help="the topic, e.g. credit.inbound.tax")],
        partition: Annotated[int | None, typer.Option(
            help="one partition (default: every paused partition of the topic)")] = None,
        from_start: Annotated[bool, typer.Option(
            "--from-start", help="replay what the log still has")] = False,
        from_end: Annotated[bool, typer.Option(
            "--from-end", help="skip what the log has now; consume what comes next")] = False,
        from_stored: Annotated[bool, typer.Option(
            "--from-stored", help="resume at the database's position, kept within the log")
        ] = False) -> None:
    """Resolve partitions paused by a position mismatch (`./xinyong status` names them).
    The service carries the choice out at its next check, or when it starts."""
    flags: tuple[tuple[Resolution, bool], ...] = (
        ("from-start", from_start), ("from-end", from_end), ("from-stored", from_stored))
    chosen = [r for r, flag in flags if flag]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --from-start, --from-end, --from-stored")
    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name}")
    settings = get_settings()
    resolved = asyncio.run(stack.resolve_positions(settings, name, topic, partition,
                                                   chosen[0]))
    if not resolved:
        typer.echo(f"{name}: no paused partition of {topic}"
                   + (f" numbered {partition}" if partition is not None else ""), err=True)
        raise typer.Exit(1)
    typer.echo(f"{name}: {topic} partition(s) {', '.join(map(str, resolved))} resolved "
               f"{chosen[0]}; {name} resumes them within {settings.position_check_seconds:g} s "
               "(or when it starts)")


@app.command("load-demo")
def load_demo(subjects: int = 300, seed: int = 2026) -> None:
    """Send demo records (a few hundred subjects of all four types) to the inbound topics."""
    settings = get_settings()
    sent = asyncio.run(stack.produce_as_departments(
        settings, demo.demo_records(seed=seed, subjects=subjects)))
    typer.echo(f"{sent} records sent")


@infra.command("up")
def infra_up() -> None:
    """Start Kafka and PostgreSQL, create databases and topics."""
    settings = get_settings()
    stack.infra_up(settings)
    created = asyncio.run(stack.provision(settings))
    typer.echo(f"{len(created)} topics created")


@app.command()
def provision() -> None:
    """Create the services' databases and roles and every topic, on servers that are already
    running (what docker-compose runs once before the services)."""
    created = asyncio.run(stack.provision(get_settings()))
    typer.echo(f"databases ready; {len(created)} topics created")


@creds.command("issue")
def credentials_issue(
        department: Annotated[str | None, typer.Option(help="a department code")] = None,
        agency: Annotated[str | None, typer.Option(help="an agency code")] = None,
        subject: Annotated[str | None, typer.Option(
            help="<type>:<identifier>, for a subject's own access")] = None,
        operator: Annotated[bool, typer.Option(
            "--operator", help="an SRE: the operators' API and a Kafka administrator")] = False,
        expires_in: Annotated[str | None, typer.Option(
            help="lifetime, e.g. 90d, 12h, 30m (default: docs/decisions.md)")] = None,
        format: Annotated[str, typer.Option(help="text or env")] = "text") -> None:
    """Issue a credential: an HTTP bearer token and, for departments, agencies and operators,
    a Kafka user of its own with its party's ACLs. The secrets are printed once and kept
    nowhere."""
    settings = get_settings()
    kind, party = _party(settings, department, agency, subject, operator)
    if format not in ("text", "env"):
        raise typer.BadParameter("text or env", param_hint="--format")
    lifetime = _duration(expires_in) if expires_in else None
    issued = asyncio.run(credentials.issue(settings, kind, party, lifetime))
    if format == "env":
        typer.echo("\n".join(issued.env_lines()))
        return
    typer.echo(f"credential {issued.credential_id} for {kind} {party}, "
               f"expires {issued.expires_at:%Y-%m-%d %H:%M} UTC")
    typer.echo(f"HTTP:  Authorization: Bearer {issued.token}")
    if issued.kafka_user:
        typer.echo(f"Kafka: SASL/SCRAM-SHA-512 user {issued.kafka_user} password "
                   f"{issued.kafka_password}")


def _party(settings: Settings, department: str | None, agency: str | None,
           subject: str | None, operator: bool) -> tuple[PartyKind, str]:
    given = [(k, v) for k, v in (("department", department), ("agency", agency),
                                 ("subject", subject)) if v is not None]
    if operator:
        given.append(("operator", "operator"))
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --department, --agency, --subject and "
                                 "--operator")
    kind, party = given[0]
    catalogue = load_catalogue(settings.catalogue_path)
    if kind == "department" and party not in catalogue.departments:
        raise typer.BadParameter(f"unknown department {party}", param_hint="--department")
    if kind == "agency" and party not in catalogue.agencies:
        raise typer.BadParameter(f"unknown agency {party}", param_hint="--agency")
    if kind == "subject":
        party = _subject_key(party, catalogue)
    return kind, party  # type: ignore[return-value]


def _subject_key(value: str, catalogue: Catalogue) -> str:
    subject_type, _, raw_id = value.partition(":")
    identifier = normalize_identifier(raw_id)
    if subject_type not in SUBJECT_TYPES or identifier is None:
        raise typer.BadParameter("<type>:<identifier>, type one of "
                                 + ", ".join(SUBJECT_TYPES), param_hint="--subject")
    problems = (check_resident_id(identifier, clock.today()) if subject_type == "individual"
                else check_uscc(identifier, subject_type, catalogue.legacy_uscc))
    if problems:
        raise typer.BadParameter("; ".join(p.message for p in problems), param_hint="--subject")
    return subject_key(subject_type, identifier)


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d{1,5})([dhm])", text.strip())
    if not match:
        raise typer.BadParameter("a number followed by d, h or m (e.g. 90d)",
                                 param_hint="--expires-in")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


@creds.command("revoke")
def credentials_revoke(credential_id: Annotated[str, typer.Argument(
        help="CREDENTIAL_ID (the part of the token between xyt_ and the dot)")]) -> None:
    """Revoke a credential: its Kafka user and ACLs (confirmed by the broker), then its
    token."""
    try:
        asyncio.run(credentials.revoke(get_settings(), credential_id))
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"revoked {credential_id}")


@creds.command("list")
def credentials_list() -> None:
    """The live credentials (issued, not revoked, not expired)."""
    now = clock.now()
    for c in asyncio.run(credentials.read_all(get_settings())).values():
        if c.live(now) and c.issued is not None:
            i = c.issued
            expires = f"{i.expires_at:%Y-%m-%d}" if i.expires_at else "never"
            typer.echo(f"{c.token_id}  {i.party_kind or '':<10} {(i.party or '')[:24]:<24} "
                       f"kafka={i.kafka_user or '-':<36} issued={i.at:%Y-%m-%d} "
                       f"expires={expires}")


@creds.command("sweep")
def credentials_sweep(every: Annotated[int, typer.Option(
        help="seconds between sweeps; 0: once")] = 0) -> None:
    """Revoke expired credentials (Kafka user, ACLs, token) and remove Kafka users left by
    an interrupted revocation. `xinyong up` runs it every minute in the background."""
    settings = get_settings()
    while True:
        try:
            swept = asyncio.run(credentials.sweep(settings))
            if swept:
                typer.echo(f"expired: {', '.join(swept)}")
        except Exception as exc:  # a sweep that failed is tried again at the next round
            if not every:
                raise
            typer.echo(f"sweep failed: {exc}", err=True)
        if not every:
            return
        time.sleep(every)


@infra.command("down")
def infra_down() -> None:
    stack.infra_down(get_settings())


def _instance(name: str, instance: int) -> stack.ServiceProcess:
    if name not in stack.PROCESSES:
        raise typer.BadParameter(f"{name} is not one of {', '.join(stack.PROCESSES)}")
    if instance > 1 and name in stack.STREAM_APP_RUNS:
        raise typer.BadParameter(f"{name} runs as one process")
    return stack.process(get_settings(), name, instance)


@service.command("start")
def service_start(name: ServiceName, instance: Instance = 1) -> None:
    """Start one process of a service (another instance joins the same consumer group);
    the supervisor keeps it running, the front door sends it requests."""
    settings = get_settings()
    proc = _instance(name, instance)
    proc.start(frontdoor.service_env(settings))
    proc.wait_ready()
    door = frontdoor.FrontDoor(settings)
    if door.config.exists() and door.running():
        door.start({s: _replicas_now(settings) for s in SERVICES})
    typer.echo(f"{proc.label} running (pid {proc.pid()}) at {proc.url()}")


@service.command("stop")
def service_stop(name: ServiceName, instance: Annotated[int | None, typer.Option(
        "--instance", min=1, help="one process (default: every process of the service)")]
        = None) -> None:
    """Stop a service (or one of its processes); the supervisor leaves it stopped."""
    procs = ([_instance(name, instance)] if instance is not None
             else stack.instances(get_settings(), [_service_name(name)]))
    for proc in procs:
        proc.stop()
        typer.echo(f"{proc.label} stopped")


@service.command("logs")
def service_logs(name: ServiceName, lines: int = 40, instance: Instance = 1) -> None:
    typer.echo(_instance(name, instance).tail(lines))


def _service_name(name: str) -> str:
    if name not in SERVICES:
        raise typer.BadParameter(f"{name} is not one of {', '.join(SERVICES)}")
    return name


async def _with_service_db(name: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    conn = await asyncpg.connect(get_settings().dsn(_service_name(name)))
    try:
        return await work(conn)
    finally:
        await conn.close()


@outbox_cli.command("list")
def outbox_list(name: ServiceName) -> None:
    """Show the events the broker refused (oldest first): what, how large, why."""
    rows = asyncio.run(_with_service_db(name, outbox.set_aside))
    if not rows:
        typer.echo(f"{name}: nothing set aside")
        return
    for r in rows:
        typer.echo(f"#{r['id']}  {r['set_aside_at']:%Y-%m-%d %H:%M:%S}  {r['topic']}  "
                   f"key={r['key']}  {r['size']} bytes  event {r['event_id']}\n"
                   f"    {r['error']}")
    typer.echo(f"{len(rows)} set aside; `xinyong outbox replay {name} [--id N]` sends them "
               "again once the cause is fixed")


@outbox_cli.command("replay")
def outbox_replay(name: ServiceName, set_aside_id: Annotated[int | None, typer.Option(
        "--id", help="only this one (the # that `outbox list` shows)")] = None) -> None:
    """Move set-aside events back to the outbox, after what is already in it (same event
    ids: a consumer that has one already drops it)."""
    moved = asyncio.run(_with_service_db(name, lambda c: outbox.replay(c, set_aside_id)))
    if set_aside_id is not None and not moved:
        typer.echo(f"{name}: no event #{set_aside_id} is set aside", err=True)
        raise typer.Exit(1)
    typer.echo(f"{name}: {moved} moved back to the outbox")


@app.command("backup")
def backup_command(
        names: Annotated[list[str] | None, typer.Argument(
            help=f"services (default: all of {', '.join(SERVICES)})")] = None,
        to: Annotated[Path | None, typer.Option(
            help="folder (default: .local/backups/<UTC time>/)")] = None) -> None:
    """`pg_dump -Fc` of each service's database. A backup can be restored for as long as
    the topics keep what came after it (log.retention.hours, 7 days by default)."""
    settings = get_settings()
    chosen = [_service_name(n) for n in names] if names else list(SERVICES)
    for path in backups.backup(settings, chosen, to):
        typer.echo(f"{path}  {path.stat().st_size:,} bytes")
    typer.echo("restore one with `./xinyong restore <service> <dump>` while the topics still "
               "hold everything after it (docs/runbook.md, \"Restoring a database\")")


@app.command("restore")
def restore_command(
        name: ServiceName,
        dump: Annotated[Path, typer.Argument(help="a file `./xinyong backup` wrote")],
        force: Annotated[bool, typer.Option(
            "--force", help="end other sessions on the database (psql, a forgotten "
            "client) instead of refusing")] = False) -> None:
    """Put a service's database back from a dump: its local processes are stopped, the dump
    restored (checked first against Kafka: refused if the topics no longer hold what it
    would replay), the processes started again; the service replays the rest from Kafka."""
    settings = get_settings()
    _service_name(name)
    running = [p for p in stack.instances(settings, [name]) if p.pid() is not None]
    try:
        created = backups.dump_created_at(dump) if dump.is_file() else None
        checks = backups.check(backups.dump_positions(dump), asyncio.run(
            backups.observe(settings, name))) if dump.is_file() else []
        reason = backups.refusal(checks, dump, created, backups.retention_hours(
            settings, {c.topic for c in checks})) if checks else None
        if reason:
            raise backups.RestoreRefused(reason)
        for proc in running:
            proc.stop()
            typer.echo(f"{proc.label} stopped")
        restored = backups.restore(settings, name, dump, force=force)
    except backups.RestoreRefused as exc:
        typer.echo(str(exc), err=True)
        for proc in running:
            proc.start(frontdoor.service_env(settings))
        raise typer.Exit(1) from exc
    typer.echo(f"{settings.db_name(name)} restored from {dump}"
               + (f" (made {restored.created:%Y-%m-%d %H:%M} UTC)" if restored.created else "")
               + f"; {name} replays {restored.replays:,} message(s) from Kafka")
    for proc in running:
        proc.start(frontdoor.service_env(settings))
    for proc in running:
        proc.wait_ready(120)
        typer.echo(f"{proc.label} running (pid {proc.pid()})")


@app.command("drill")
def drill_command(
        service_name: Annotated[str, typer.Option("--service", help="whose database")]
        = "registry",
        records: Annotated[int, typer.Option(help="records sent after the backup")] = 200,
        force: Annotated[bool, typer.Option(
            "--force", help="end other sessions on the database")] = False) -> None:
    """The restore drill on the running stack: back up a service's database, send more
    records, restore the backup, and check that after its replay the service holds the
    same state as without the restore and emitted no new event id."""
    from deploy import drill

    settings = get_settings()
    report = drill.run(settings, _service_name(service_name), records,
                       env=frontdoor.service_env(settings), force=force)
    typer.echo("\n".join(report.lines()))
    if not report.passed:
        raise typer.Exit(1)


@app.command()
def test(pytest_args: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Lint (ruff), type checks (mypy) and the tests: unit, then integration against the
    real broker and database, which this starts (Kafka and PostgreSQL from deploy/)."""
    checks = [
        ["ruff", "check", "."],
        ["mypy", "shared", "services", "deploy", "bench"],
        # The whole suite names its slowest tests: CI keeps it well under half an hour.
        ["pytest", "-p", "no:cacheprovider", *(pytest_args or ["tests", "--durations=25"])],
    ]
    for command in checks:
        typer.echo("$ " + " ".join(command), err=True)
        done = subprocess.run([sys.executable, "-m", *command], cwd=REPO_ROOT)
        if done.returncode != 0:
            raise typer.Exit(done.returncode)


bench_app = typer.Typer(
    help="Benchmarks, each on its own copy of the services (own topics, databases and ports): "
         "a table, and with --json PATH the same figures as JSON. README, section Benchmark.")
app.add_typer(bench_app, name="bench")
JsonPath = Annotated[Path | None, typer.Option(
    "--json", help="also write the figures as JSON to this file")]
PortBase = Annotated[int | None, typer.Option(
    help="first of the bench services' HTTP ports (default: $XINYONG_BENCH_PORT_BASE or 19000)")]


def stop_on_sigterm() -> None:
    """`timeout`, a supervisor or CI end a bench with SIGTERM. Python's default would end the
    process on the spot and leave the services it started running; as SystemExit it unwinds
    through each bench's `finally`, which stops them."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


@bench_app.callback(invoke_without_command=True)
def bench(ctx: typer.Context, records: Annotated[int, typer.Option(
              help="without a command: `bench pipeline --records N`")] = 20_000,
          json_path: JsonPath = None, port_base: PortBase = None) -> None:
    """Benchmarks; without a command, `bench pipeline`."""
    stop_on_sigterm()
    if ctx.invoked_subcommand is None:
        from bench import pipeline

        pipeline.run(records=records, json_path=json_path, base=port_base)


@bench_app.command("pipeline")
def bench_pipeline(
        records: Annotated[int, typer.Option(help="records sent at once (closed run)")] = 20_000,
        rate: Annotated[float | None, typer.Option(
            help="records/s sent on schedule instead (open loop, paced run)")] = None,
        seconds: Annotated[float, typer.Option(help="length of a paced run")] = 60,
        replicas: Annotated[int, typer.Option(
            min=1, max=4, help="also with this many processes of each service, figures side "
            "by side")] = 1,
        json_path: JsonPath = None, port_base: PortBase = None) -> None:
    """Records through ingest, registry and publisher until every feedback and notice is
    received, beside a bare aiokafka pass-through; or, with --rate, latency at a paced load."""
    from bench import pipeline

    pipeline.run(records=records, rate=rate, seconds=seconds, json_path=json_path,
                 base=port_base, replicas=replicas)


@bench_app.command("failover")
def bench_failover(
        rate: Annotated[float, typer.Option(help="messages/s, open loop")] = 200,
        seconds: Annotated[float, typer.Option(help="length of the run")] = 60,
        kill_after: Annotated[float, typer.Option(
            help="seconds until the leader of partition 0 is killed")] = 15,
        down: Annotated[float, typer.Option(help="seconds it stays down")] = 20,
        json_path: JsonPath = None, port_base: PortBase = None) -> None:
    """How long a producer (acks=all) stalls when a partition's leader dies, on three Kafka
    nodes of the benchmark's own."""
    from bench import failover

    failover.run(rate, seconds, kill_after, down, json_path, port_base)


@bench_app.command("generate")
def bench_generate(
        subjects: Annotated[int, typer.Option(help="subjects of the city")] = 1_000_000,
        seed: int = 1,
        reuse: Annotated[bool, typer.Option(
            help="take a kept city of this size and seed as it is")] = False,
        as_of: Annotated[str | None, typer.Option(
            help="last day of the five years of records (YYYY-MM-DD; default today)")] = None,
        json_path: JsonPath = None, port_base: PortBase = None) -> None:
    """A synthetic Zhuhai sent through the departments' topics, kept for `bench queries`."""
    from bench import generate

    generate.run(subjects, seed, reuse, date.fromisoformat(as_of) if as_of else None,
                 json_path, port_base)


@bench_app.command("queries")
def bench_queries(
        subjects: Annotated[int | None, typer.Option(
            help="which kept city (default: the latest generated)")] = None,
        seed: int | None = None,
        rate: Annotated[float, typer.Option(help="requests/s, open loop")] = 500,
        seconds: float = 60,
        connections: int = 200,
        rate_limit: Annotated[str, typer.Option(
            help="the public rate limit for the run (XINYONG_PUBLIC_RATE_LIMIT)")]
        = "1000000/minute",
        ramp_max: Annotated[float, typer.Option(
            help="highest rate the ramp tries")] = 2000,
        step_seconds: Annotated[float, typer.Option(help="length of a ramp step")] = 10,
        json_path: JsonPath = None, port_base: PortBase = None) -> None:
    """Public profiles and name searches over a generated city, and the highest rate at
    which their latency targets hold."""
    from bench import queries

    queries.run(subjects, seed, rate, seconds, connections, rate_limit, ramp_max,
                step_seconds, json_path, port_base)


@bench_app.command("reports")
def bench_reports(
        reports: Annotated[int, typer.Option(help="reports taken (after a warm-up of 4)")] = 200,
        clients: Annotated[int, typer.Option(help="clients taking reports at once")] = 2,
        subjects: Annotated[int, typer.Option(help="subjects with 0-40 records each")] = 60,
        seed: int = 1, json_path: JsonPath = None, port_base: PortBase = None) -> None:
    """Credit reports from the POST to the PDF served (p50/p95/p99), with the stack
    running."""
    from bench import reports as reports_bench

    reports_bench.run(reports, clients, subjects, seed, json_path, port_base)


@bench_app.command("replay")
def bench_replay(
        records: Annotated[int, typer.Option(help="accepted records to replay")] = 1_000_000,
        seed: int = 1, json_path: JsonPath = None, port_base: PortBase = None) -> None:
    """A registry with an empty database rebuilds every archive from
    credit.records.accepted."""
    from bench import replay

    replay.run(records, seed, None, json_path, port_base)


@bench_app.command("clean")
def bench_clean(subjects: Annotated[int | None, typer.Option(
                    help="only the cities of this size")] = None,
                seed: Annotated[int | None, typer.Option(
                    help="only the cities of this seed")] = None) -> None:
    """Drop the cities `bench generate` kept (databases, topics, manifests)."""
    from bench import generate

    dropped = generate.clean(subjects, seed)
    typer.echo("dropped: " + (", ".join(dropped) if dropped else "nothing kept"))


if __name__ == "__main__":
    app()

"""`xinyong`: start, stop and inspect the local stack, load demo data, run the benchmark."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date
from typing import Annotated

import typer

from deploy import demo, stack
from shared.catalogue import load_catalogue
from shared.positions import Resolution, resolve_command
from shared.settings import REPO_ROOT, get_settings
from shared.topics import SERVICES

app = typer.Typer(help="Xinyong (信用): the Zhuhai public joint credit information system.",
                  no_args_is_help=True)
infra = typer.Typer(help="Kafka and PostgreSQL only.", no_args_is_help=True)
creds = typer.Typer(help="Bearer tokens of departments and agencies.", no_args_is_help=True)
app.add_typer(creds, name="credentials")
service = typer.Typer(help="One service at a time.", no_args_is_help=True)
positions = typer.Typer(help="Consumed positions, checked against the Kafka log.",
                        no_args_is_help=True)
app.add_typer(infra, name="infra")
app.add_typer(service, name="service")
app.add_typer(positions, name="positions")

ServiceName = Annotated[str, typer.Argument(help=f"one of {', '.join(SERVICES)}")]


@app.command()
def up(demo_data: Annotated[bool, typer.Option("--demo/--no-demo")] = True) -> None:
    """Start Kafka, PostgreSQL and the four services (idempotent), with demo data."""
    settings = get_settings()
    stack.infra_up(settings)
    created = asyncio.run(stack.provision(settings))
    typer.echo(f"topics: {len(created)} created" if created else "topics: all present")
    for proc in stack.services(settings):
        proc.start()
    for proc in stack.services(settings):
        try:
            proc.wait_ready()
        except stack.PositionsPaused as exc:
            # It runs and serves; the partitions named wait for an operator's decision.
            typer.echo(f"{proc.name:<10} running (pid {proc.pid()}) at {proc.url()}, but\n"
                       f"{exc}", err=True)
            continue
        typer.echo(f"{proc.name:<10} running (pid {proc.pid()}) at {proc.url()}")
    marker = settings.home / "demo.loaded"
    if demo_data and not marker.exists():
        sent = asyncio.run(stack.produce_submissions(settings, demo.demo_records()))
        marker.write_text(date.today().isoformat())
        typer.echo(f"demo data: {sent} records sent to the departments' inbound topics")
    publisher = stack.services(settings, ["publisher"])[0].url()
    objection = stack.services(settings, ["objection"])[0].url()
    typer.echo(f"\n信用珠海 public site: {publisher}/\npublic API:           "
               f"{publisher}/api/v1/subjects?q=珠海  (OpenAPI: {publisher}/docs)\n"
               f"objections:           {objection}/objections/new")


@app.command()
def down() -> None:
    """Stop the services, Kafka and PostgreSQL."""
    settings = get_settings()
    for proc in stack.services(settings):
        proc.stop()
        typer.echo(f"{proc.name:<10} stopped")
    stack.infra_down(settings)


@app.command()
def reset(yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Stop the services, drop their databases and delete their topics (local data only)."""
    if not yes:
        typer.confirm("Drop every Xinyong database and topic on this machine?", abort=True)
    settings = get_settings()
    for proc in stack.services(settings):
        proc.stop()
    asyncio.run(stack.wipe(settings))
    (settings.home / "demo.loaded").unlink(missing_ok=True)
    typer.echo("databases dropped, topics deleted; `xinyong up` starts afresh")


@app.command()
def status() -> None:
    """Show what is running."""
    settings = get_settings()
    for script in ("postgres.sh", "kafka.sh"):
        try:
            stack.run_script(script, "status", settings)
        except Exception:
            pass
    for proc in stack.services(settings):
        pid = proc.pid()
        typer.echo(f"{proc.name:<10} " + (f"running (pid {pid}) at {proc.url()}" if pid
                                          else "stopped"))
        typer.echo(_positions_line(asyncio.run(stack.position_report(settings, proc.name))))


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
    sent = asyncio.run(stack.produce_submissions(
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
        agency: Annotated[str | None, typer.Option(help="an agency code")] = None) -> None:
    """Issue a bearer token for a department (ingest, objection decisions) or an agency
    (notice feedback). The token is printed once and kept nowhere."""
    settings = get_settings()
    catalogue = load_catalogue(settings.catalogue_path)
    if (department is None) == (agency is None):
        raise typer.BadParameter("give exactly one of --department and --agency")
    if department is not None and department not in catalogue.departments:
        raise typer.BadParameter(f"unknown department {department}")
    if agency is not None and agency not in catalogue.agencies:
        raise typer.BadParameter(f"unknown agency {agency}")
    token = asyncio.run(stack.issue_credential(
        settings, "department" if department else "agency", department or agency or ""))
    typer.echo(token)


@creds.command("revoke")
def credentials_revoke(token_id: Annotated[str, typer.Argument(
        help="the part of the token between xyt_ and the dot")]) -> None:
    asyncio.run(stack.revoke_credential(get_settings(), token_id))
    typer.echo(f"revoked {token_id}")


@infra.command("down")
def infra_down() -> None:
    stack.infra_down(get_settings())


@service.command("start")
def service_start(name: ServiceName) -> None:
    proc = stack.services(get_settings(), [name])[0]
    proc.start()
    proc.wait_ready()
    typer.echo(f"{name} running (pid {proc.pid()})")


@service.command("stop")
def service_stop(name: ServiceName) -> None:
    stack.services(get_settings(), [name])[0].stop()


@service.command("logs")
def service_logs(name: ServiceName, lines: int = 40) -> None:
    typer.echo(stack.services(get_settings(), [name])[0].tail(lines))


@app.command()
def test(pytest_args: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Lint (ruff), type checks (mypy) and the tests: unit, then integration against the
    real broker and database, which this starts (Kafka and PostgreSQL from deploy/)."""
    checks = [
        ["ruff", "check", "."],
        ["mypy", "shared", "services", "deploy", "bench"],
        ["pytest", "-p", "no:cacheprovider", *(pytest_args or ["tests"])],
    ]
    for command in checks:
        typer.echo("$ " + " ".join(command), err=True)
        done = subprocess.run([sys.executable, "-m", *command], cwd=REPO_ROOT)
        if done.returncode != 0:
            raise typer.Exit(done.returncode)


@app.command()
def bench(records: int = 20_000) -> None:
    """Push records through ingest, registry and publisher; print throughput and latency."""
    from bench import pipeline

    asyncio.run(pipeline.main(records))


if __name__ == "__main__":
    app()

"""`xinyong`: start, stop and inspect the local stack, load demo data, run the benchmark."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, TypeVar

import asyncpg
import typer

from deploy import demo, stack
from shared import outbox
from shared.catalogue import load_catalogue
from shared.settings import REPO_ROOT, get_settings
from shared.topics import SERVICES

app = typer.Typer(help="Xinyong (信用): the Zhuhai public joint credit information system.",
                  no_args_is_help=True)
infra = typer.Typer(help="Kafka and PostgreSQL only.", no_args_is_help=True)
creds = typer.Typer(help="Bearer tokens of departments and agencies.", no_args_is_help=True)
app.add_typer(creds, name="credentials")
service = typer.Typer(help="One service at a time.", no_args_is_help=True)
app.add_typer(infra, name="infra")
app.add_typer(service, name="service")
outbox_cli = typer.Typer(help="Events the broker refused, set aside from a service's outbox.",
                         no_args_is_help=True)
app.add_typer(outbox_cli, name="outbox")

ServiceName = Annotated[str, typer.Argument(help=f"one of {', '.join(SERVICES)}")]
T = TypeVar("T")


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
        proc.wait_ready()
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

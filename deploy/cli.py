"""`xinyong`: start, stop and inspect the local stack, load demo data, run the benchmark."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from deploy import demo, stack
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


bench_app = typer.Typer(
    help="Benchmarks, each on its own copy of the services (own topics, databases and ports): "
         "a table, and with --json PATH the same figures as JSON. README, section Benchmark.")
app.add_typer(bench_app, name="bench")
JsonPath = Annotated[Path | None, typer.Option(
    "--json", help="also write the figures as JSON to this file")]
PortBase = Annotated[int | None, typer.Option(
    help="first of the bench services' HTTP ports (default: $XINYONG_BENCH_PORT_BASE or 19000)")]


@bench_app.callback(invoke_without_command=True)
def bench(ctx: typer.Context, records: Annotated[int, typer.Option(
              help="without a command: `bench pipeline --records N`")] = 20_000,
          json_path: JsonPath = None, port_base: PortBase = None) -> None:
    """Benchmarks; without a command, `bench pipeline`."""
    if ctx.invoked_subcommand is None:
        from bench import pipeline

        pipeline.run(records=records, json_path=json_path, base=port_base)


@bench_app.command("pipeline")
def bench_pipeline(
        records: Annotated[int, typer.Option(help="records sent at once (closed run)")] = 20_000,
        rate: Annotated[float | None, typer.Option(
            help="records/s sent on schedule instead (open loop, paced run)")] = None,
        seconds: Annotated[float, typer.Option(help="length of a paced run")] = 60,
        json_path: JsonPath = None, port_base: PortBase = None) -> None:
    """Records through ingest, registry and publisher until every feedback and notice is
    received, beside a bare aiokafka pass-through; or, with --rate, latency at a paced load."""
    from bench import pipeline

    pipeline.run(records=records, rate=rate, seconds=seconds, json_path=json_path,
                 base=port_base)


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

"""`./xinyong status [--json]`: the stack as an operator needs it at a glance.

Per service: each process (pid, ready, partitions held, restarts by the supervisor), and
from its database and the broker: consumer lag per topic (log end minus the stored
position, the measure the alerts use), outbox backlog and the age of its oldest event, dead
letters, events set aside, paused partitions. Then the Kafka nodes with the partitions each
leads, and the front door's addresses. Everything is read, nothing changed; a part that
cannot be read says why instead of failing the rest.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg

from deploy import backup, frontdoor, stack, supervisor
from deploy.brokers import LocalKafka, leadership, operator_admin, operator_login
from shared.kafka import observe_logs
from shared.positions import resolve_command
from shared.settings import Settings
from shared.topics import SERVICES


def _process(proc: stack.ServiceProcess) -> dict[str, Any]:
    pid = proc.pid()
    record = supervisor.read_record(proc)
    out: dict[str, Any] = {
        "instance": proc.instance, "pid": pid, "url": proc.url() if proc.is_service else None,
        "wanted": proc.want_file.exists(), "restarts": record.restarts,
        "given_up": proc.given_up_file.read_text().strip()
        if proc.given_up_file.exists() else None}
    if proc.is_service or proc.name in stack.STREAM_APP_RUNS:  # those answer /readyz
        answer = proc.readiness(timeout=2) if pid else None
        out["ready"] = bool(answer and answer["status"] == 200)
        out["partitions"] = answer.get("assigned_partitions") if answer else None
    return out


async def _database(settings: Settings, service: str) -> dict[str, Any]:
    try:
        conn = await asyncpg.connect(settings.dsn(service), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return {"error": f"database unavailable ({exc})"}
    try:
        outbox = await conn.fetchrow(
            "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age"
            " FROM outbox")
        positions = await conn.fetch("SELECT topic, partition, next_offset"
                                     " FROM consumed_positions")
        from shared import inbox

        held = await inbox.open_holds(conn)
        replays = await inbox.recent_replays(conn)
        return {
            "outbox": {"backlog": outbox["n"],
                       "oldest_seconds": round(float(outbox["age"]), 1)
                       if outbox["age"] is not None else None},
            "dead_letters": await conn.fetchval("SELECT count(*) FROM dead_letters"),
            "set_aside": await conn.fetchval("SELECT count(*) FROM outbox_set_aside"),
            "paused": [{"topic": h.topic, "partition": h.partition, "reason": h.reason,
                        "detail": h.detail, "resolution": h.resolution,
                        "resolve": resolve_command(service, h.topic, h.partition)}
                       for h in held],
            "replays_24h": len(replays),
            "_positions": {(r["topic"], r["partition"]): r["next_offset"] for r in positions},
        }
    except asyncpg.UndefinedTableError:
        return {"error": "database not migrated yet (service never ran)"}
    finally:
        await conn.close()


async def _service(settings: Settings, service: str) -> dict[str, Any]:
    out: dict[str, Any] = {"processes": [_process(p) for p in stack.instances(settings,
                                                                              [service])]}
    out.update(await _database(settings, service))
    stored = out.pop("_positions", None)
    if stored is not None:
        try:
            logs = await asyncio.wait_for(backup.observe(settings, service), 30)
            lag: dict[str, int] = {}
            for (topic, partition), log in logs.items():
                at = stored.get((topic, partition), log.log_start)
                lag[topic] = lag.get(topic, 0) + max(0, log.log_end - at)
            out["lag"] = {t: n for t, n in sorted(lag.items()) if n}
            out["lag_total"] = sum(lag.values())
        except Exception as exc:  # the broker down: the rest still shows
            out["lag_error"] = f"Kafka did not answer ({type(exc).__name__}: {exc})"
    return out


async def _stream_app(settings: Settings, name: str) -> dict[str, Any]:
    """A faust worker (stats-windows) keeps no database: its lag is its group's committed
    offsets on the broker (committed every few seconds, so a busy worker shows some)."""
    out: dict[str, Any] = {"processes": [_process(p) for p in stack.instances(settings, [name])]}
    parts = [(settings.topic(t.name), p) for t in stack.STREAM_APP_RUNS[name].sources
             for p in range(t.partitions)]
    try:
        admin = operator_admin(settings)
        logs = await asyncio.wait_for(observe_logs(admin, settings.group_id(name), parts,
                                                   operator_login(settings)), 30)
        out["lag_total"] = sum(max(0, log.log_end - (log.committed if log.committed is not None
                                                     else log.log_start))
                               for log in logs.values())
    except Exception as exc:  # the broker down: the rest still shows
        out["lag_error"] = f"Kafka did not answer ({type(exc).__name__}: {exc})"
    return out


def _kafka(settings: Settings) -> dict[str, Any]:
    cluster = LocalKafka.of(settings)
    nodes = [{"id": n.id, "address": n.address, "pid": n.pid()} for n in cluster.nodes]
    out: dict[str, Any] = {"bootstrap": settings.kafka_bootstrap, "local_nodes": nodes,
                           "replication_factor": settings.kafka_replication_factor,
                           "min_insync_replicas": settings.kafka_min_insync_replicas}
    try:
        admin = operator_admin(settings, **{"socket.timeout.ms": "5000"})
        out["cluster"] = leadership(admin, settings.topic_namespace, timeout=10).as_json()
    except Exception as exc:
        out["cluster_error"] = f"{type(exc).__name__}: {exc}"
    return out


def gather(settings: Settings) -> dict[str, Any]:
    async def services() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (list(await asyncio.gather(*(_service(settings, s) for s in SERVICES))),
                list(await asyncio.gather(*(_stream_app(settings, a)
                                            for a in stack.STREAM_APP_RUNS))))

    door = frontdoor.FrontDoor(settings)
    of_services, of_apps = asyncio.run(services())
    return {
        "services": dict(zip(SERVICES, of_services, strict=True)),
        "stream_apps": dict(zip(stack.STREAM_APP_RUNS, of_apps, strict=True)),
        "kafka": _kafka(settings),
        "supervisor": _process(stack.supervisor(settings)),
        "sweeper": _process(stack.credential_sweeper(settings)),
        "frontdoor": {"running": door.config.exists() and door.running(),
                      "urls": frontdoor.urls(settings)},
        "home": str(settings.home), "namespace": settings.topic_namespace,
        "pid": os.getpid(),
    }


def lines(report: dict[str, Any]) -> list[str]:
    out = []
    for name, s in report["services"].items():
        for p in s["processes"]:
            label = name if p["instance"] == 1 else f"{name}#{p['instance']}"
            if p["pid"]:
                state = (f"running (pid {p['pid']}) at {p['url']}, "
                         + ("ready" if p["ready"] else "NOT READY")
                         + f", {p['partitions'] if p['partitions'] is not None else '?'} "
                           "partitions")
            else:
                state = "stopped" + (" (wanted: the supervisor starts it)"
                                     if p["wanted"] and not p["given_up"] else "")
            if p["restarts"]:
                state += f", {p['restarts']} restart(s) by the supervisor"
            if p["given_up"]:
                state += f", GIVEN UP ({p['given_up']})"
            out.append(f"{label:<12} {state}")
        if "error" in s:
            out.append(f"{'':<12} {s['error']}")
            continue
        out.append(f"{'':<12} positions: " + (
            f"{len(s['paused'])} partition(s) PAUSED" if s["paused"] else "ok")
            + (f"; {s['replays_24h']} replay(s) in the last 24 h (./xinyong positions show)"
               if s["replays_24h"] else ""))
        for h in s["paused"]:
            out.append(f"{'':<14}{h['topic']}[{h['partition']}] {h['reason']}: {h['detail']}")
            out.append(f"{'':<16}" + (f"resolution {h['resolution']} recorded; carried out "
                                      "at the next check" if h["resolution"]
                                      else f"resolve: {h['resolve']}"))
        lag = (f"lag {s['lag_total']:,}" + (" (" + ", ".join(f"{t} {n:,}" for t, n in
                                                             s["lag"].items()) + ")"
                                            if s["lag"] else "")
               if "lag_total" in s else f"lag unknown: {s.get('lag_error')}")
        box = s["outbox"]
        oldest = f", oldest {box['oldest_seconds']:g} s" if box["oldest_seconds"] is not None \
            else ""
        out.append(f"{'':<12} {lag}; outbox {box['backlog']:,}{oldest}; dead letters "
                   f"{s['dead_letters']:,}; set aside {s['set_aside']:,}")
    for name, app in report["stream_apps"].items():
        for p in app["processes"]:
            out.append(f"{name:<12} " + (
                f"running (pid {p['pid']}), " + ("ready" if p["ready"] else "NOT READY")
                + f", {p['partitions'] if p['partitions'] is not None else '?'} partitions"
                if p["pid"] else "stopped"
                + (" (wanted: the supervisor starts it)" if p["wanted"] else "")))
        out.append(f"{'':<12} " + (f"lag {app['lag_total']:,} (its group's committed offsets)"
                                   if "lag_total" in app
                                   else f"lag unknown: {app.get('lag_error')}"))
    kafka = report["kafka"]
    out.append(f"kafka        bootstrap {kafka['bootstrap']}, replication factor "
               f"{kafka['replication_factor']}, min.insync.replicas "
               f"{kafka['min_insync_replicas']}")
    cluster = kafka.get("cluster")
    for node in kafka["local_nodes"]:
        leads = (cluster or {}).get("brokers", {}).get(str(node["id"]), {}).get("leads")
        out.append(f"{'':<12} node {node['id']} {node['address']}: "
                   + (f"running (pid {node['pid']})" if node["pid"] else "stopped")
                   + (f", leads {leads} partition(s)" if leads is not None else ""))
    if cluster:
        local = {str(n["id"]) for n in kafka["local_nodes"]}
        for broker, b in cluster["brokers"].items():
            if broker not in local:
                out.append(f"{'':<12} broker {broker} {b['address']}: leads {b['leads']}")
        out.append(f"{'':<12} {cluster['partitions']} partitions, controller "
                   f"{cluster['controller']}; under-replicated "
                   f"{len(cluster['under_replicated'])}, offline {len(cluster['offline'])}"
                   + (": " + ", ".join(cluster["offline"][:5]) if cluster["offline"] else ""))
    else:
        out.append(f"{'':<12} cluster metadata unavailable: {kafka.get('cluster_error')}")
    for name in ("supervisor", "sweeper"):
        p = report[name]
        out.append(f"{name:<12} " + (f"running (pid {p['pid']})" if p["pid"] else "stopped"))
    door = report["frontdoor"]
    out.append(f"{'frontdoor':<12} " + ("running: " if door["running"] else "stopped: ")
               + ", ".join(f"{g} {u}" for g, u in door["urls"].items()))
    return out

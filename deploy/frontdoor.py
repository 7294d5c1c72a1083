"""One front door per group (CONTRACT.md, "Where"): the public site and API, the objection
forms and API, the departments' ingest gateway, and the operators' API each have one base
URL, whichever services (and however many processes of each) stand behind it.

The routing is data (`DOORS`), written out three ways:
- locally, an nginx configuration (`nginx_config`) that deploy/frontdoor.sh runs with
  Debian's nginx, one port per door (`frontdoor_*_port` settings) in front of every
  process of each service (`./xinyong up --replicas N` puts N behind each upstream);
- for docker-compose.yml, the same for the official nginx image (`deploy/frontdoor/
  compose.conf`, written by `python -m deploy.frontdoor`, checked by a test);
- for Kubernetes, one Ingress per door (deploy/manifests.py).

What the door enforces: a request body cap per door (the services check theirs again),
timeouts towards the client and the services, and the forwarding header. nginx sets
`X-Forwarded-For` to the address it saw, replacing whatever the client sent, and connects
to the services from `SOURCE_ADDRESS`: the services believe the header only from a trusted
proxy (`trusted_proxies`), which `./xinyong up` sets to that address alone, so a client on
the machine that talks to a service's own port cannot pass for someone else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.ingest.api import MAX_BODY as INGEST_MAX_BODY
from shared.settings import REPO_ROOT, Settings
from shared.topics import SERVICES

FRONTDOOR = REPO_ROOT / "deploy" / "frontdoor"
COMPOSE_CONF = FRONTDOOR / "compose.conf"
# The local nginx connects to the services from this loopback address, and only it is
# trusted to say who the client is (`trusted_proxies`).
SOURCE_ADDRESS = "127.0.0.2"


@dataclass(frozen=True)
class Route:
    """Paths of a door served by another service than its main one. `path` is a prefix,
    or, starting with `~`, a regular expression (nginx's and the Ingress's
    ImplementationSpecific form)."""

    path: str
    service: str


@dataclass(frozen=True)
class Door:
    group: str  # CONTRACT.md's group
    title: str
    port_setting: str
    service: str  # everything not routed elsewhere
    body_max: Callable[[Settings], int]
    read_timeout_s: int
    routes: tuple[Route, ...] = field(default_factory=tuple)
    host: str = ""  # the production host name (deploy/k8s Ingress)

    def port(self, settings: Settings) -> int:
        return int(getattr(settings, self.port_setting))

    def services(self) -> list[str]:
        """The main service and every routed one that exists (a route to a service not
        built yet is left out until it is)."""
        return [self.service, *(r.service for r in self.live_routes())]

    def live_routes(self) -> list[Route]:
        return [r for r in self.routes if r.service in SERVICES]


DOORS: tuple[Door, ...] = (
    Door("public", "public site and API (信用珠海网), agencies, subjects, statistics",
         "frontdoor_public_port", "publisher", lambda s: 64 * 1024, 30,
         # City statistics are the statistics service's (issue 10), when it exists.
         (Route("/api/v1/stats/", "stats"),), host="xinyong.zhuhai.gov.cn"),
    Door("objection", "objection and repair forms and API", "frontdoor_objection_port",
         "objection", lambda s: s.objection_body_max_bytes, 30,
         host="yiyi.xinyong.zhuhai.gov.cn"),
    Door("ingest", "departments' ingest gateway", "frontdoor_ingest_port", "ingest",
         lambda s: INGEST_MAX_BODY, 120, host="ingest.xinyong.zhuhai.gov.cn"),
    Door("operator", "operators' API", "frontdoor_operator_port", "registry",
         lambda s: 1024 * 1024, 60,
         (Route("~ ^/api/v1/records/[^/]+/[^/]+/submissions$", "ingest"),
          Route("/api/v1/scorecards", "stats"), Route("/api/v1/what-if", "publisher"),
          # A subject's full past view (as_of), for operators (issue 8).
          Route("/api/v1/operators/subjects/", "publisher")),
         host="ops.xinyong.zhuhai.gov.cn"),
)

# Problem JSON (RFC 9457, as shared/http.py) for what the door itself answers.
_PROBLEMS = {
    413: ("too_large", "The request body is larger than this service takes"),
    502: ("unavailable", "The service behind this address is not answering"),
    503: ("unavailable", "The service behind this address is not answering"),
    504: ("timeout", "The service behind this address did not answer in time"),
}


def url(settings: Settings, door: Door) -> str:
    return f"http://{settings.http_host}:{door.port(settings)}"


def urls(settings: Settings) -> dict[str, str]:
    return {d.group: url(settings, d) for d in DOORS}


def service_env(settings: Settings) -> dict[str, str]:
    """What the services behind the local door are started with, unless the environment
    says otherwise: believe X-Forwarded-For from the door alone, and link the objection
    forms at the door's address."""
    env = {}
    if "XINYONG_TRUSTED_PROXIES" not in os.environ:
        env["XINYONG_TRUSTED_PROXIES"] = SOURCE_ADDRESS
    if "XINYONG_OBJECTION_PUBLIC_URL" not in os.environ:
        [objection] = [d for d in DOORS if d.group == "objection"]
        env["XINYONG_OBJECTION_PUBLIC_URL"] = url(settings, objection)
    return env


def _size(n: int) -> str:
    return f"{n // 1024}k" if n % (1024 * 1024) else f"{n // (1024 * 1024)}m"


def nginx_config(settings: Settings, upstreams: Mapping[str, Sequence[str]], folder: str,
                 listen: str, source: str | None, logs: tuple[str, str]) -> str:
    """The whole nginx.conf. `upstreams`: each service's processes (host:port); `folder`:
    where nginx keeps its pid and temporary files; `listen`: the address the doors listen
    on; `source`: the address nginx connects to the services from (None: any); `logs`:
    the access and error logs."""
    lines = [
        "# Written by deploy/frontdoor.py from its DOORS: edit them there, not here.",
        "worker_processes 1;",
        f"pid {folder}/nginx.pid;",
        f"error_log {logs[1]} warn;",
        "events { worker_connections 1024; }",
        "http {",
        "    # Neither path, query nor client address: a person's profile has their identity",
        "    # number in its path, a search its words, a report's URL what fetches the report,",
        "    # and this file would keep them past every erasure (the services log no request;",
        "    # the query log the subject sees masks addresses). The door is the port.",
        "    log_format xinyong '$time_iso8601 $server_port $request_method $status'",
        "                       ' $body_bytes_sent $request_time $upstream_response_time';",
        f"    access_log {logs[0]} xinyong;",
        "    server_tokens off;",
        *(f"    {kind}_temp_path {folder}/tmp/{kind};"
          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
        "    # Towards the client: a slow or idle client does not hold a connection long.",
        "    client_header_timeout 10s;",
        "    client_body_timeout 30s;",
        "    send_timeout 30s;",
        "    keepalive_timeout 30s;",
        "    # Towards the services: keep-alive connections, a refused connection tries the",
        "    # next process (a request already sent is never sent twice unless idempotent).",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header Host $http_host;",
        "    # The address nginx saw, replacing what the client wrote: the services believe it",
        "    # only from a trusted proxy (the `trusted_proxies` setting).",
        "    proxy_set_header X-Forwarded-For $remote_addr;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_connect_timeout 3s;",
        "    proxy_next_upstream error timeout http_502 http_503;",
        "    proxy_next_upstream_tries 2;",
        *([f"    proxy_bind {source};"] if source else []),
    ]
    for service, servers in sorted(upstreams.items()):
        lines += [f"    upstream xinyong_{service} {{",
                  *(f"        server {s} max_fails=1 fail_timeout=5s;" for s in servers),
                  "        keepalive 16;", "    }"]
    for door in DOORS:
        lines += [
            f"    # {door.group}: {door.title}",
            "    server {",
            f"        listen {listen}:{door.port(settings)};",
            f"        client_max_body_size {_size(door.body_max(settings))};",
            f"        proxy_read_timeout {door.read_timeout_s}s;",
            f"        proxy_send_timeout {door.read_timeout_s}s;",
            "        # The services' probes and metrics are not the public's business.",
            "        location = /readyz { return 404; }",
            "        location = /healthz { return 404; }",
            "        location /metrics { return 404; }",
            *(f"        error_page {status} = @problem_{status};" for status in _PROBLEMS),
        ]
        for status, (code, title) in _PROBLEMS.items():
            body = (f'{{"type":"about:blank","title":"{title}","status":{status},'
                    f'"code":"{code}"}}')
            lines += [f"        location @problem_{status} {{",
                      "            default_type application/problem+json;",
                      f"            return {status} '{body}';", "        }"]
        for route in door.live_routes():
            where = route.path if route.path.startswith("~") else f"^~ {route.path}"
            lines += [f"        location {where} {{",
                      f"            proxy_pass http://xinyong_{route.service};", "        }"]
        lines += ["        location / {", f"            proxy_pass http://xinyong_{door.service};",
                  "        }", "    }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def services_behind() -> list[str]:
    return sorted({s for d in DOORS for s in d.services()})


def local_config(settings: Settings, folder: Path, replicas: dict[str, int]) -> str:
    """The local stack's: the doors on `http_host`, each service's instances 1..N on
    their ports (deploy/stack.py::INSTANCE_PORT_STEP)."""
    from deploy.stack import INSTANCE_PORT_STEP

    upstreams = {s: [f"{settings.http_host}:{settings.http_port(s) + INSTANCE_PORT_STEP * i}"
                     for i in range(max(1, replicas.get(s, 1)))] for s in services_behind()}
    return nginx_config(settings, upstreams, str(folder), settings.http_host, SOURCE_ADDRESS,
                        (f"{folder}/access.log", f"{folder}/error.log"))


def compose_config(settings: Settings | None = None) -> str:
    """docker-compose.yml's: every interface, the services by their names."""
    settings = settings or Settings()
    upstreams = {s: [f"{s}:{settings.http_port(s)}"] for s in services_behind()}
    return nginx_config(settings, upstreams, "/tmp", "0.0.0.0", None,
                        ("/dev/stdout", "/dev/stderr"))


class FrontDoor:
    """The local nginx: its folder (`<home>/frontdoor`), configuration and script."""

    def __init__(self, settings: Settings, directory: Path | None = None) -> None:
        self.settings = settings
        self.directory = directory or settings.home / "frontdoor" / (
            settings.topic_namespace.strip(".") or "stack")

    @property
    def config(self) -> Path:
        return self.directory / "nginx.conf"

    def write(self, replicas: dict[str, int]) -> None:
        (self.directory / "tmp").mkdir(parents=True, exist_ok=True)
        self.config.write_text(local_config(self.settings, self.directory, replicas))

    def start(self, replicas: dict[str, int]) -> None:
        """Write the configuration, then start nginx (or reload it); returns when every
        door listens."""
        self.write(replicas)
        self._script("start")

    def stop(self) -> None:
        self._script("stop")

    def running(self) -> bool:
        return self._script("status", check=False) == 0

    def _script(self, action: str, check: bool = True) -> int:
        ports = " ".join(str(d.port(self.settings)) for d in DOORS)
        done = subprocess.run(["bash", str(REPO_ROOT / "deploy" / "frontdoor.sh"), action],
                              check=check, capture_output=action == "status",
                              env={**os.environ, "XINYONG_FRONTDOOR_DIR": str(self.directory),
                                   "XINYONG_FRONTDOOR_PORTS": ports})
        return done.returncode


def write_compose(path: Path = COMPOSE_CONF) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(compose_config(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_compose(Path(sys.argv[1]) if len(sys.argv) > 1 else COMPOSE_CONF))

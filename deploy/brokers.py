"""The local Kafka cluster deploy/kafka.sh runs: how many nodes, where each one is (ports,
folder, pid), the clients' bootstrap list, and which node leads which partition.

One node by default; `./xinyong up --brokers 3` (or `XINYONG_KAFKA_BROKERS=3`) starts
three, and the folder remembers it, so that later commands find the same cluster. The
layout mirrors kafka.sh: node i listens on `XINYONG_KAFKA_PORT + 10*(i-1)` (and the three
ports after it), lives in `<kafka dir>/nodes-<N>/<i>/`; a single node keeps the folder
itself.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from deploy.pids import alive, running
from shared.kafka import admin_config, client_options
from shared.settings import Settings

NODE_STEP = 10
DEFAULT_PORT = 9092


@dataclass(frozen=True)
class Node:
    id: int
    port: int
    folder: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.folder / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "kafka.log"

    @property
    def server_properties(self) -> Path:
        return self.folder / "config" / "server.properties"

    def pid(self) -> int | None:
        """The node's JVM while it lives: not a zombie, and its command line names this
        node's configuration (a stale pid file is not taken for another process)."""
        config = str(self.server_properties).encode()
        return running(self.pid_file, lambda cmdline: config in cmdline)

    def kill(self) -> int:
        """SIGKILL: the crash a cluster of three must survive. Returns the pid killed."""
        pid = self.pid()
        if pid is None:
            raise RuntimeError(f"Kafka node {self.id} is not running")
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)
        return pid


@dataclass(frozen=True)
class LocalKafka:
    """The cluster of one Kafka folder, as kafka.sh sees it with the same environment."""

    folder: Path
    port: int
    brokers: int

    @classmethod
    def of(cls, settings: Settings, env: Mapping[str, str] | None = None,
           inherit: bool = True) -> LocalKafka:
        """From the environment kafka.sh reads (`env` over this process's, or `env` alone
        without `inherit`): the folder (`XINYONG_KAFKA_DIR`), node 1's port
        (`XINYONG_KAFKA_PORT`) and the node count (`XINYONG_KAFKA_BROKERS`, else what the
        folder last ran, else 1)."""
        e = {**(os.environ if inherit else {}), **(env or {})}
        folder = Path(e.get("XINYONG_KAFKA_DIR") or settings.home / "kafka")
        port = int(e.get("XINYONG_KAFKA_PORT") or DEFAULT_PORT)
        brokers = e.get("XINYONG_KAFKA_BROKERS") or _recorded(folder)
        return cls(folder, port, int(brokers))

    @property
    def nodes(self) -> list[Node]:
        if self.brokers == 1:
            return [Node(1, self.port, self.folder)]
        return [Node(i, self.port + NODE_STEP * (i - 1), self.folder / f"nodes-{self.brokers}"
                     / str(i)) for i in range(1, self.brokers + 1)]

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self) -> str:
        """Every node's address: a client that starts while one node is down still finds
        the cluster."""
        return ",".join(n.address for n in self.nodes)

    @property
    def replication_factor(self) -> int:
        return min(self.brokers, 3)

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.replication_factor >= 3 else 1

    @property
    def data_folders(self) -> list[Path]:
        return [n.folder / "data" for n in self.nodes]

    def settings_env(self) -> dict[str, str]:
        """What the stack's processes need to use this cluster: every node to bootstrap
        from, and the replication it allows."""
        return {"XINYONG_KAFKA_BOOTSTRAP": self.bootstrap,
                "XINYONG_KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
                "XINYONG_KAFKA_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas)}


def _recorded(folder: Path) -> str:
    try:
        text = (folder / "brokers").read_text().strip()
    except FileNotFoundError:
        return "1"
    return text if text.isdigit() and text != "0" else "1"


def adopt(settings: Settings, env: dict[str, str]) -> LocalKafka:
    """Point `env` (a copy of os.environ for the command line) at the local cluster when it has
    several nodes and the settings name its first node or nothing else: the bootstrap list
    and the replication factor, unless they are set there already. A cluster elsewhere
    (`XINYONG_KAFKA_BOOTSTRAP` naming another host) is left alone."""
    cluster = LocalKafka.of(settings, env, inherit=False)
    if cluster.brokers > 1 and env.get("XINYONG_KAFKA_BOOTSTRAP", cluster.nodes[0].address) \
            in (cluster.nodes[0].address, cluster.bootstrap):
        for key, value in cluster.settings_env().items():
            if key == "XINYONG_KAFKA_BOOTSTRAP" or key not in env:
                env[key] = value
    return cluster


# --- who leads what ------------------------------------------------------------------------


@dataclass(frozen=True)
class Leadership:
    """The cluster as its metadata says: each broker's partitions led, and the partitions
    with fewer in-sync replicas than replicas (a broker down or behind)."""

    brokers: dict[int, str]  # id -> host:port
    leading: dict[int, int]  # id -> partitions led
    partitions: int
    under_replicated: list[str]  # topic[partition]
    offline: list[str]  # no leader at all
    controller: int | None

    def as_json(self) -> dict[str, Any]:
        return {"brokers": {str(b): {"address": a, "leads": self.leading.get(b, 0)}
                            for b, a in sorted(self.brokers.items())},
                "partitions": self.partitions, "under_replicated": self.under_replicated,
                "offline": self.offline, "controller": self.controller}


def quiet() -> logging.Logger:
    """A logger for a command line's librdkafka clients: a node that is down is what the
    command reports, not a stream of connection errors on the terminal."""
    logger = logging.getLogger("xinyong.librdkafka")
    logger.setLevel(logging.CRITICAL)
    return logger


def operator_admin(settings: Settings, **overrides: str) -> AdminClient:
    """A command line's administrator client (the operator's Kafka user), `quiet`; librdkafka
    settings in `overrides` (e.g. a shorter `socket.timeout.ms`) replace the project's."""
    from deploy.secrets import admin_password

    return AdminClient({**admin_config(settings, settings.kafka_admin_username,
                                       admin_password(settings)), **overrides,
                        "logger": quiet()})


def operator_login(settings: Settings) -> dict[str, Any]:
    """The operator's Kafka user as aiokafka options (`observe_logs` reads the groups'
    committed offsets with them)."""
    from deploy.secrets import admin_password

    return client_options(settings, settings.kafka_admin_username, admin_password(settings))


def leadership(admin: AdminClient, prefix: str = "", timeout: float = 10) -> Leadership:
    """Of the topics whose name starts with `prefix` (a namespace; internal topics such as
    __consumer_offsets are left out)."""
    metadata = admin.list_topics(timeout=timeout)
    leading: Counter[int] = Counter()
    under, offline, total = [], [], 0
    for name, topic in sorted(metadata.topics.items()):
        if name.startswith("__") or not name.startswith(prefix):
            continue
        for number, p in sorted(topic.partitions.items()):
            total += 1
            where = f"{name}[{number}]"
            if p.leader < 0:
                offline.append(where)
            else:
                leading[p.leader] += 1
            if len(p.isrs) < len(p.replicas):
                under.append(where)
    return Leadership({b.id: f"{b.host}:{b.port}" for b in metadata.brokers.values()},
                      dict(leading), total, under, offline,
                      metadata.controller_id if metadata.controller_id >= 0 else None)


def leader_of(admin: AdminClient, topic: str, partition: int, timeout: float = 10) -> int:
    """The broker id leading one partition (names as on the broker); -1 while none does."""
    metadata = admin.list_topics(topic, timeout=timeout)
    return int(metadata.topics[topic].partitions[partition].leader)


def in_sync(admin: AdminClient, topic: str, timeout: float = 10) -> dict[int, list[int]]:
    """Each partition's in-sync replicas."""
    metadata = admin.list_topics(topic, timeout=timeout)
    return {n: list(p.isrs) for n, p in metadata.topics[topic].partitions.items()}

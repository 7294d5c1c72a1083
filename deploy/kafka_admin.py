"""The broker's administration, as the operators' command line does it: topics, SCRAM users
and their ACLs, through confluent-kafka's AdminClient (aiokafka's admin client has no SCRAM
user or ACL calls).

Every call waits for the broker's answer: a user "created" or "removed" here is one the broker
has confirmed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from services.ingest import contracts as ingest
from services.objection import contracts as objection
from services.publisher import contracts as publisher
from services.registry import contracts as registry
from services.stats import contracts as stats
from shared.access import Declared, Grant, Principal, grants_for
from shared.kafka import admin_config
from shared.settings import Settings
from shared.topics import Topic

log = logging.getLogger(__name__)

# What each service reads and writes, declared once in its contracts.py.
SERVICE_TOPICS: dict[str, tuple[Sequence[Declared], Sequence[Declared]]] = {
    "ingest": (ingest.CONSUMES, ingest.PRODUCES),
    "registry": (registry.CONSUMES, registry.PRODUCES),
    "publisher": (publisher.CONSUMES, publisher.PRODUCES),
    "objection": (objection.CONSUMES, objection.PRODUCES),
    "stats": (stats.CONSUMES, stats.PRODUCES),
    # The faust worker of the early warning: a principal of its own (its group and
    # changelog are named by its app id, `xinyong-stats-windows`).
    "stats-windows": (stats.WINDOWS_CONSUMES, stats.WINDOWS_PRODUCES),
}

_RESOURCE = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
             "cluster": ResourceType.BROKER}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_OPERATION = {"read": AclOperation.READ, "write": AclOperation.WRITE,
              "describe": AclOperation.DESCRIBE, "describe_configs": AclOperation.DESCRIBE_CONFIGS,
              "alter": AclOperation.ALTER, "create": AclOperation.CREATE,
              "delete": AclOperation.DELETE}
_SCRAM = {"SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512,
          "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256}
_ITERATIONS = 8192

Login = Literal["accepted", "refused", "unanswered"]


def _wait(futures: dict[Any, Future[Any]], ignore: Iterable[int] = ()) -> None:
    for future in futures.values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() not in set(ignore):
                raise


class KafkaAdmin:
    def __init__(self, settings: Settings, username: str, password: str,
                 overrides: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.refused = False  # the broker turned this client's password down
        self.client = AdminClient({**admin_config(settings, username, password),
                                   **(overrides or {}), "error_cb": self._on_error})

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._AUTHENTICATION:
            self.refused = True

    def login(self, timeout: float = 15) -> Login:
        """Whether this client's user can log in. A refused password is told at the broker's
        first refusal (a fraction of a second): a metadata request alone would wait out its
        whole timeout while the client tries the login again and again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.list_topics(timeout=min(0.5, max(deadline - time.monotonic(), 0.01)))
                return "accepted"
            except KafkaException:
                self.client.poll(0)  # serves the error callback
                if self.refused:
                    return "refused"
                if time.monotonic() >= deadline:
                    return "unanswered"

    # --- topics ------------------------------------------------------------------------

    def topic_names(self, timeout: float = 15) -> set[str]:
        return set(self.client.list_topics(timeout=timeout).topics)

    def create_topics(self, topics: Sequence[Topic[Any]]) -> list[str]:
        """Create the topics that do not exist yet, with the settings' replication factor and
        min.insync.replicas, and bring the configuration of those that do in line (e.g. a
        topic made compacted after it was created); returns those created."""
        existing = self.topic_names()
        wanted = [t for t in topics if self.settings.topic(t.name) not in existing]
        if wanted:
            _wait(self.client.create_topics([
                NewTopic(self.settings.topic(t.name), t.partitions,
                         self.settings.kafka_replication_factor, config=self.topic_config(t))
                for t in wanted]),
                ignore=[KafkaError.TOPIC_ALREADY_EXISTS])
        configured = [t for t in topics if t not in wanted]
        if configured:
            _wait(self.client.incremental_alter_configs([
                ConfigResource(ResourceType.TOPIC, self.settings.topic(t.name),
                               incremental_configs=[
                                   ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                                   for k, v in self.topic_config(t).items()])
                for t in configured]))
        return [t.name for t in wanted]

    def topic_config(self, topic: Topic[Any]) -> dict[str, str]:
        """A topic's own configuration and the durability every topic gets: a write is
        acknowledged once `kafka_min_insync_replicas` copies hold it, and a replica that
        was out of sync never becomes leader (it would lose acknowledged records)."""
        return {"min.insync.replicas": str(self.settings.kafka_min_insync_replicas),
                "unclean.leader.election.enable": "false", **dict(topic.config)}

    def replicas(self, names: Iterable[str], timeout: float = 15) -> dict[str, int]:
        """The fewest replicas of any partition of each topic that exists (names as in the
        contract): a topic created before the replication factor was raised keeps its own."""
        wanted = {self.settings.topic(n): n for n in names}
        metadata = self.client.list_topics(timeout=timeout)
        return {wanted[name]: min((len(p.replicas) for p in t.partitions.values()), default=0)
                for name, t in metadata.topics.items() if name in wanted}

    def delete_topics(self, names: Iterable[str]) -> None:
        names = [self.settings.topic(n) for n in names]
        if names:
            _wait(self.client.delete_topics(names),
                  ignore=[KafkaError.UNKNOWN_TOPIC_OR_PART])

    # --- users -------------------------------------------------------------------------

    def upsert_user(self, name: str, password: str) -> None:
        mechanism = _SCRAM[self.settings.kafka_sasl_mechanism]
        _wait(self.client.alter_user_scram_credentials([UserScramCredentialUpsertion(
            name, ScramCredentialInfo(mechanism, _ITERATIONS), password.encode())]))

    def delete_user(self, name: str) -> None:
        mechanism = _SCRAM[self.settings.kafka_sasl_mechanism]
        _wait(self.client.alter_user_scram_credentials(
            [UserScramCredentialDeletion(name, mechanism)]),
            ignore=[KafkaError.RESOURCE_NOT_FOUND])

    def users(self) -> set[str]:
        try:
            return set(self.client.describe_user_scram_credentials().result(timeout=30))
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.RESOURCE_NOT_FOUND:
                return set()
            raise

    # --- ACLs --------------------------------------------------------------------------

    def grant(self, username: str, grants: Sequence[Grant]) -> None:
        if grants:
            _wait(self.client.create_acls([_binding(username, g) for g in grants]))

    def revoke_all(self, username: str) -> int:
        """Remove every ACL of the principal; returns how many there were."""
        result = self.client.delete_acls([AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{username}", None,
            AclOperation.ANY, AclPermissionType.ANY)])
        return sum(len(f.result(timeout=30)) for f in result.values())

    def grants_of(self, username: str) -> list[AclBinding]:
        return list(self.client.describe_acls(AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{username}", None,
            AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30))

    # --- principals --------------------------------------------------------------------

    def create_principal(self, principal: Principal, password: str) -> None:
        """The user and exactly its grants (stale grants of an earlier version removed)."""
        grants = grants_for(principal, self.settings.topic_namespace, SERVICE_TOPICS)
        self.upsert_user(principal.username, password)
        wanted = {_binding(principal.username, g) for g in grants}
        stale = [b for b in self.grants_of(principal.username) if b not in wanted]
        if stale:
            _wait(self.client.delete_acls([_filter(b) for b in stale]))
        self.grant(principal.username, grants)
        # The controller has committed both; wait until the broker serves them too, so that
        # a client given these credentials now is let in at once.
        self._until(lambda: principal.username in self.users()
                    and wanted <= set(self.grants_of(principal.username)),
                    f"the broker does not yet know {principal.username}")

    def remove_principal(self, username: str) -> None:
        """ACLs first (an open connection loses access at its next request), then the user;
        returns once the broker no longer lists the user."""
        self.revoke_all(username)
        self.delete_user(username)
        self._until(lambda: username not in self.users() and not self.grants_of(username),
                    f"the broker still lists {username}")

    @staticmethod
    def _until(done: Callable[[], bool], failure: str, timeout: float = 90) -> None:
        # A broker on a loaded machine, or one that has just replayed its metadata, can take
        # a minute before it serves what its controller committed.
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(failure)
            time.sleep(0.05)


def _binding(username: str, g: Grant) -> AclBinding:
    name = "kafka-cluster" if g.resource == "cluster" else g.name
    return AclBinding(_RESOURCE[g.resource], name, _PATTERN[g.pattern], f"User:{username}",
                      "*", _OPERATION[g.operation], AclPermissionType.ALLOW)


def _filter(b: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                            b.operation, b.permission_type)

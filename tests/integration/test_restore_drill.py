"""The restore drill on the session's stack (deploy/drill.py, `./xinyong drill`): dump the
registry's database, push more records, restore the dump, restart; the registry resumes
from the restored positions, replays the rest from Kafka, ends with the state it had
without the restore and emits no event id it had not emitted before. Then a dump older than
what the topic still holds is refused by `./xinyong restore`, up front, naming the
partitions, and nothing changes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from deploy import drill, stack
from deploy.secrets import admin_password
from shared.kafka import admin_config, make_producer
from shared.settings import REPO_ROOT, Settings
from tests.integration.conftest import ENV, STACK

pytestmark = pytest.mark.integration

ACCEPTED = "credit.records.accepted"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=REPO_ROOT,
                          env={**os.environ, **ENV}, capture_output=True, text=True,
                          timeout=600)


def _as_the_departments(settings: Settings) -> Any:
    """How the drill's records reach the inbound topics: as the suite's tester (it may
    write every department's topic), with a producer of the drill's own loop."""
    async def send(items: list[tuple[str, dict[str, Any]]]) -> int:
        producer = make_producer(settings, **STACK.tester)
        await producer.start()
        try:
            return await stack.send_submissions(producer, settings, items)
        finally:
            await producer.stop()

    return send


async def test_restore_drill_then_a_dump_older_than_the_log_is_refused(
        settings: Settings, services: dict[str, stack.ServiceProcess], db: Any) -> None:
    # The session's own pools hold connections to the registry's database: --force ends
    # them, as an operator would end a forgotten psql.
    report = await asyncio.to_thread(drill.run, settings, "registry", 150, ENV, True,
                                     _as_the_departments(settings))
    assert report.passed, "\n".join(report.lines())
    assert report.replayed >= report.records  # the records sent after the dump, at least
    assert report.after["records"][0] > 0 and report.after["record_history"][0] > 0
    assert report.ids_before > 0 and not report.new_ids

    # Retention, played by deleting the records of the topic the registry reads: its log
    # now starts past the positions in the dump. Everyone reading it has applied them all.
    for service in ("registry", "objection"):
        await drill.until(lambda s=service: drill.caught_up(settings, s), f"{service} caught up")
    admin = AdminClient(admin_config(settings, settings.kafka_admin_username,
                                     admin_password(settings)))
    topic = settings.topic(ACCEPTED)
    partitions = admin.list_topics(topic, timeout=15).topics[topic].partitions
    deleted = admin.delete_records([TopicPartition(topic, p, -1) for p in partitions])
    for future in deleted.values():
        future.result(timeout=30)
    before = await db("registry").fetchval("SELECT count(*) FROM records")

    refused = await asyncio.to_thread(_cli, "restore", "registry", str(report.dump))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refused" in refused.stderr and f"{ACCEPTED}[" in refused.stderr
    assert "log starts at" in refused.stderr and "retention" in refused.stderr.lower()
    # Nothing was stopped or replaced.
    assert services["registry"].pid() is not None
    assert await db("registry").fetchval("SELECT count(*) FROM records") == before

    # A backup taken now restores through the command line: the registry is stopped, put
    # back, started again, and holds what it held.
    taken = await asyncio.to_thread(_cli, "backup", "registry")
    assert taken.returncode == 0, taken.stderr
    dump = taken.stdout.split()[0]
    assert dump.endswith("registry.dump")
    old_pid = services["registry"].pid()
    restored = await asyncio.to_thread(_cli, "restore", "registry", dump, "--force")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored from" in restored.stdout and "registry running" in restored.stdout
    assert services["registry"].pid() not in (None, old_pid)
    assert await db("registry").fetchval("SELECT count(*) FROM records") == before

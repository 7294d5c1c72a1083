"""Nothing given up for speed: every service's pool writes with synchronous_commit and
fsync on (group commit through commit_delay would be allowed; turning either off is not),
and no role or database of the services overrides them; the consumer groups' offsets,
committed less often than batches, still follow the stored positions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from shared.db import create_pool
from shared.kafka import admin_config, client_options, observe_logs
from shared.settings import Settings
from shared.topics import SERVICES
from tests.integration.conftest import STACK
from tests.integration.helpers import enterprise, record
from tests.integration.kit import send
from tests.polling import until

pytestmark = pytest.mark.integration


async def test_every_services_pool_commits_synchronously_with_fsync(
        settings: Settings, services: dict[str, Any]) -> None:
    for service in SERVICES:
        pool = await create_pool(settings, service)  # the factory the services use
        try:
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW synchronous_commit") == "on", service
                assert await conn.fetchval("SHOW fsync") == "on", service
                assert await conn.fetchval("SHOW full_page_writes") == "on", service
                overrides = await conn.fetch(
                    "SELECT unnest(setconfig) AS setting FROM pg_db_role_setting s"
                    " LEFT JOIN pg_roles r ON r.oid = s.setrole"
                    " LEFT JOIN pg_database d ON d.oid = s.setdatabase"
                    " WHERE r.rolname = current_user OR d.datname = current_database()")
                assert not [o for o in overrides
                            if o["setting"].split("=")[0] in ("synchronous_commit", "fsync")]
                # No table of the service's is unlogged (its writes would skip the WAL).
                assert await conn.fetchval(
                    "SELECT count(*) FROM pg_class WHERE relpersistence = 'u'") == 0, service
        finally:
            await pool.close()


async def test_the_groups_offsets_catch_up_with_the_stored_positions(
        settings: Settings, services: dict[str, Any], producer: Any, db: Any) -> None:
    """Stream workers commit their group's offsets at most once a second, not after every
    batch (`offset_commit_seconds`): the database's positions are what a worker resumes
    from. The offsets still follow, also once nothing more arrives: the last batch's are
    committed while the worker waits."""
    # Two records, one after the other: the second's batch comes within the second after
    # the first's, so its offsets are held, and only a commit while idle sends them.
    for n in range(2):
        data = record(enterprise(f"珠海市位点跟随测试{n}有限公司"),
                      record_id=f"offsets-{uuid.uuid4().hex[:8]}")
        await send(producer, settings, "court", data)
        await until(lambda d=data: db("registry").fetchval(
            "SELECT 1 FROM records WHERE department = 'court' AND record_id = $1",
            d["record_id"]), "the registry archived the record")
    # As the registry itself: only a group's members may read its offsets.
    admin = AdminClient(admin_config(settings, **STACK.service_credentials("registry")))

    last: dict[str, Any] = {}

    async def caught_up() -> bool:
        # The records' topic only: the registry reads credentials in a group of its own.
        stored = {(settings.topic(r["topic"]), r["partition"]): r["next_offset"]
                  for r in await db("registry").fetch(
                      "SELECT topic, partition, next_offset FROM consumed_positions"
                      " WHERE topic = 'credit.records.accepted'")}
        logs = await observe_logs(admin, settings.group_id("registry"), sorted(stored),
                                  client_options(settings, **STACK.service_credentials("registry")))
        # A partition never consumed has its start (0) stored and no group offset; each
        # commit names the log it was counted on (shared/positions.py, commit_metadata).
        behind = {part: (at, logs[part].committed, logs[part].committed_on)
                  for part, at in stored.items()
                  if (logs[part].committed or 0) != at or (at > 0 and logs[part].committed_on
                                                           != (logs[part].cluster_id,
                                                               logs[part].topic_id))}
        last.update(behind=behind)
        return not behind and any(at > 0 for at in stored.values())

    try:
        await until(caught_up, "the registry's group offsets equal its stored positions",
                    timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; (stored, committed, its log) where they differ: "
                             f"{last['behind']}") from None

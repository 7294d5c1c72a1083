"""Nothing given up for speed: every service's pool writes with synchronous_commit and
fsync on (group commit through commit_delay would be allowed; turning either off is not),
and no role or database of the services overrides them."""

from __future__ import annotations

from typing import Any

import pytest

from shared.db import create_pool
from shared.settings import Settings
from shared.topics import SERVICES

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

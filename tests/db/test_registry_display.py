"""The registry's display columns on a real database (rolled back): `public_until` and
`display_ended` are written by the records upsert itself (store.save_records), in step with
the record's body, for a new record and for a later revision that ends its display."""

from __future__ import annotations

import json

import pytest

from services.registry import handlers
from shared import clock
from shared.catalogue import Catalogue
from tests.db.builders import FIRM_A, accepted_message
from tests.db.conftest import OpenTransaction

pytestmark = pytest.mark.db


async def test_display_columns_follow_each_revision(tx: OpenTransaction,
                                                    catalogue: Catalogue) -> None:
    conn = await tx("registry")
    changes, dead = handlers.parse_changes([accepted_message("D-1", FIRM_A)])
    assert dead == []
    await handlers.apply_changes(conn, catalogue, changes)
    row = await conn.fetchrow(
        "SELECT public_until, display_ended, body::text FROM records WHERE record_id = 'D-1'")
    body = json.loads(row["body"])
    assert body["public_until"] is not None and body["status"] == "active"
    assert row["public_until"].isoformat() == body["public_until"]
    assert row["display_ended"] is (clock.today() > row["public_until"])

    withdrawn, dead = handlers.parse_changes(
        [accepted_message("D-1", FIRM_A, revision=2, action="withdraw")])
    assert dead == []
    await handlers.apply_changes(conn, catalogue, withdrawn)
    row = await conn.fetchrow(
        "SELECT public_until, display_ended, revision, body::text FROM records"
        " WHERE record_id = 'D-1'")
    assert row["revision"] == 2 and json.loads(row["body"])["status"] == "withdrawn"
    assert row["display_ended"] is True  # a withdrawn record is no longer displayed
    assert await conn.fetchval(
        "SELECT count(*) FROM record_history WHERE record_id = 'D-1'") == 2

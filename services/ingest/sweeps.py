"""What ingest erases of a person's negative information (shared/purge.py): the record's
latest revision and every audit line about it; for a subject with nothing else left, every
audit line about the subject (rejected submissions included)."""

from __future__ import annotations

import asyncpg

from shared import purge
from shared.purge import Erasure, Target


async def _erase_revisions(conn: asyncpg.Connection, e: Erasure) -> None:
    await conn.execute(
        "DELETE FROM records WHERE (department, record_id) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))", *e.record_columns())


async def _erase_audit(conn: asyncpg.Connection, e: Erasure) -> None:
    await conn.execute(
        "DELETE FROM submissions WHERE (department, record_id) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[])) OR ($3 AND subject_key = $4)",
        *e.record_columns(), e.whole, e.subject_key)


async def _holds_more(conn: asyncpg.Connection, e: Erasure) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM records WHERE subject_key = $1"
        "  AND (department, record_id) NOT IN (SELECT * FROM unnest($2::text[], $3::text[])))",
        e.subject_key, *e.record_columns()))


PLAN = purge.Plan(
    service="ingest",
    targets=(
        Target("records", "delete the record's latest revision", _erase_revisions),
        Target("submissions", "delete the record's audit lines; a whole subject: every line "
               "about it", _erase_audit),
    ),
    holds_more=_holds_more,
)

"""Credit reports on a real PostgreSQL (rolled back): the table's use (report_store), the purge
that erases a person's reports with the rest, and the retention sweep."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.publisher import report, report_api, report_store
from services.publisher import sweeps as publisher_sweeps
from services.publisher.handlers import apply_snapshots
from shared import clock, purge
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from tests.db.conftest import OpenTransaction
from tests.db.test_purge import DECIDED, ERASE_ON, KEY, erase, person
from tests.unit.factories import ENTERPRISE, archived, snapshot

pytestmark = pytest.mark.db

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def issued(subject_key: str, records: list[str], at: datetime = NOW) -> report_store.Issued:
    pdf = b"%PDF-1.7 " + uuid.uuid4().bytes
    return report_store.Issued(
        report_id=str(uuid.uuid4()), code=report.new_code(), subject_key=subject_key,
        subject={"type": "enterprise", "id": subject_key.partition(":")[2], "name": "测试"},
        purpose="贷款审查", own=False, issued_at=at, data_as_of=at, records=records,
        sha256=hashlib.sha256(pdf).hexdigest(), pdf=pdf)


async def count(conn: asyncpg.Connection, subject_key: str) -> int:
    n: int = await conn.fetchval(
        "SELECT count(*) FROM credit_reports WHERE subject_key = $1", subject_key)
    return n


async def test_a_report_is_found_by_its_code_and_id_with_the_hash_of_its_bytes(
        tx: OpenTransaction) -> None:
    conn = await tx("publisher")
    r = issued("enterprise:91440400MA4W8KXA0X", ["amr/P-1"])
    await report_store.insert(conn, r)
    row = await report_store.by_code(conn, r.code)
    assert row is not None
    assert (row["report_id"], row["sha256"], row["issued_at"]) == (r.report_id, r.sha256, NOW)
    stored = await report_store.pdf(conn, uuid.UUID(r.report_id))
    assert stored is not None and hashlib.sha256(bytes(stored)).hexdigest() == r.sha256
    assert await report_store.by_code(conn, report.new_code()) is None
    assert await report_store.pdf(conn, uuid.uuid4()) is None


async def test_an_erasure_takes_the_reports_that_show_an_erased_record(
        tx: OpenTransaction) -> None:
    conn = await tx("publisher")
    key = "individual:440402198001010011"
    showing, other = issued(key, ["hrss/W-1", "hrss/W-2"]), issued(key, ["hrss/W-3"])
    clean = issued(key, [])
    for r in (showing, other, clean):
        await report_store.insert(conn, r)
    assert await report_store.erase(conn, key, ["hrss/W-2"], whole=False) == 1
    assert await report_store.by_code(conn, showing.code) is None
    assert await count(conn, key) == 2
    assert await report_store.erase(conn, key, [], whole=True) == 2
    assert await count(conn, key) == 0


async def test_the_purge_erases_a_persons_reports_with_the_rest(
        tx: OpenTransaction, catalogue: Catalogue,
        context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("publisher")
    pid, key = person()
    subject = {"type": "individual", "id": pid, "name": "王某"}
    record = archived("court.dishonest_debtor", department="court", record_id="C-9",
                      decided_on=DECIDED, public_until=ERASE_ON, purge_on=ERASE_ON,
                      attributes={"extension_years": 3})
    await apply_snapshots(conn, catalogue, [snapshot(ENTERPRISE.model_validate(subject),
                                                     [record])], erasure_key=KEY)
    r = issued(key, ["court/C-9"])
    await report_store.insert(conn, r)
    ctx = context_of("publisher")
    plan = publisher_sweeps.plan(catalogue)
    assert "credit_reports" in [t for t, _ in purge.describe(plan)]
    await conn.execute("DELETE FROM outbox")
    outcomes = [await erase(ctx, conn, plan, key) for _ in range(3)]
    assert "done" in outcomes
    assert await count(conn, key) == 0
    assert await conn.fetchval("SELECT count(*) FROM credit_reports WHERE pdf = $1", r.pdf) == 0


async def test_reports_past_their_retention_are_deleted(
        tx: OpenTransaction, context_of: Callable[[str], ServiceContext]) -> None:
    conn = await tx("publisher")
    ctx = context_of("publisher")
    days = ctx.settings.report_retention_days
    key = "enterprise:91440400MA4W8KXA0X"
    old = issued(key, [], clock.now() - timedelta(days=days + 1))
    young = issued(key, [], clock.now() - timedelta(days=days - 1))
    for r in (old, young):
        await report_store.insert(conn, r)
    before = clock.now() - timedelta(days=days)
    assert await report_store.expire(conn, before, 100) == 1
    assert await report_store.by_code(conn, old.code) is None
    assert await report_store.by_code(conn, young.code) is not None
    assert report_api.RETENTION == report_api.retention_sweep().name

"""Government integrity in the publisher's database: a body's defaults put it on the
defaulting bodies' list (a notice to its supervisor only), and the district figures equal
a direct count of the defaults, opened, resolved and open at the end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta

import asyncpg
import pytest

from services.publisher import government, store
from services.publisher.handlers import apply_snapshots
from shared import clock
from shared.catalogue import Catalogue
from shared.contract import ArchivedRecord, Grade, SubjectChanged, SubjectRef
from tests.unit.factories import uscc

pytestmark = pytest.mark.db

OpenTransaction = Callable[[str], Awaitable[asyncpg.Connection]]


def body(n: int, division: str = "440402") -> SubjectRef:
    return SubjectRef(type="government", id=uscc(f"11{division}00700{n:04d}"),
                      name=f"珠海市测试局{n}")


def default(record_id: str, item: str, decided_on: date, status: str = "active",
            district: str | None = None) -> ArchivedRecord:
    return ArchivedRecord(department=item.split(".")[0], record_id=record_id, revision=1,
                          catalogue_item=item, decided_on=decided_on, status=status,
                          district=district, public_until=decided_on + timedelta(days=1000),
                          repair_from=decided_on + timedelta(days=365))


def snap(subject: SubjectRef, records: list[ArchivedRecord], version: int = 1
         ) -> SubjectChanged:
    return SubjectChanged(subject=subject, version=version, records=records,
                          grade=Grade(grade="D", explanation=[]))


async def test_a_body_is_listed_through_its_defaults_and_counted(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    today = clock.today()
    early, late = today - timedelta(days=200), today - timedelta(days=20)
    a, b = body(1), body(2, "440404")
    debt = default("FIN-1", "finance.unpaid_government_debt", early)
    await apply_snapshots(conn, catalogue, [
        snap(a, [debt, default("SUP-1", "supervision.contract_breach", late,
                               district="440403")]),
        snap(b, [default("COURT-1", "court.government_dishonest_debtor", late)])])
    found = await store.profile(conn, a.key)
    assert found is not None
    assert [m.list for m in found[1]] == ["supervision.defaulting_bodies"]
    notices = await conn.fetch("SELECT topic FROM outbox WHERE topic LIKE 'credit.notices.%'")
    assert {r["topic"] for r in notices} == {"credit.notices.supervising-body"}

    # The debt paid: the finance bureau withdraws its record.
    await apply_snapshots(conn, catalogue, [snap(a, [
        debt.model_copy(update={"status": "withdrawn", "revision": 2}),
        default("SUP-1", "supervision.contract_breach", late, district="440403")], 2)])
    start, end = today - timedelta(days=100), today
    counted = {(r["district"], r["default_kind"]): (r["opened"], r["resolved"],
                                                    r["open_at_end"])
               for r in await government.district_counts(conn, start, end)}
    assert counted == {("440402", "unpaid_debt"): (0, 1, 0),
                       ("440403", "contract_breach"): (1, 0, 1),
                       ("440404", "dishonest_debtor"): (1, 0, 1)}
    # Before the withdrawal's day the debt was open at the end; before it opened, nothing.
    before = {(r["district"], r["default_kind"]): r["open_at_end"] for r in
              await government.district_counts(conn, early, today - timedelta(days=1))}
    assert before[("440402", "unpaid_debt")] == 1
    assert await government.district_counts(conn, early - timedelta(days=9),
                                            early - timedelta(days=1)) == []


async def test_a_resolution_keeps_its_first_day(tx: OpenTransaction,
                                                catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    decided = clock.today() - timedelta(days=30)
    withdrawn = default("FIN-2", "finance.unpaid_government_debt", decided, "withdrawn")
    await government.save_defaults(conn, government.default_rows(
        catalogue, snap(body(3), [withdrawn])), date(2026, 1, 2))
    await government.save_defaults(conn, government.default_rows(
        catalogue, snap(body(3), [withdrawn])), date(2026, 3, 4))
    assert await conn.fetchval("SELECT resolved_on FROM government_defaults"
                               " WHERE record_id = 'FIN-2'") == date(2026, 1, 2)
    reopened = withdrawn.model_copy(update={"status": "active"})
    await government.save_defaults(conn, government.default_rows(
        catalogue, snap(body(3), [reopened])), date(2026, 3, 5))
    assert await conn.fetchval("SELECT resolved_on FROM government_defaults"
                               " WHERE record_id = 'FIN-2'") is None

"""Who name and code search can find, on the publisher's real database (rolled back): a
person only until their last public record's period ends, with no new snapshot needed; a
minor never; rows stored before `discoverable_until` existed get it from the migration."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.publisher import domain, store
from services.publisher.handlers import apply_snapshots
from shared.catalogue import Catalogue
from shared.contract import SubjectRef
from tests.db.conftest import OpenTransaction
from tests.unit.factories import ENTERPRISE, archived, resident_id, snapshot

pytestmark = pytest.mark.db

MIGRATION = (Path(__file__).parents[2] / "services" / "publisher" / "migrations"
             / "002_discoverable_until.sql")
PERSON = SubjectRef(type="individual", id=resident_id(birth=date(1971, 3, 9)), name="李四光明")
MINOR = SubjectRef(type="individual", id=resident_id(birth=date(2015, 3, 9)), name="王小明明")
LAST_DAY = date(2027, 8, 1)


async def found(conn: asyncpg.Connection, q: str, today: date) -> list[str]:
    """What both search paths find (every match ranked; the fixed order): the same."""
    norm = domain.normalize_name(q)
    rows = await store.search_ranked(conn, norm, domain.query_grams(norm), q.upper(), None,
                                     today, 21, 0)
    in_order = await store.search_in_order(conn, norm, q.upper(), None, today, 21, 0)
    assert sorted(r["subject_key"] for r in in_order) == sorted(r["subject_key"] for r in rows)
    return [r["subject_key"] for r in rows]


async def test_a_person_is_found_until_their_last_record_ends_and_not_a_day_after(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    records = [archived("hrss.wage_arrears", record_id="a", decided_on=date(2025, 8, 1),
                        public_until=LAST_DAY - timedelta(days=100)),
               archived("hrss.wage_arrears", record_id="b", decided_on=date(2025, 9, 1),
                        public_until=LAST_DAY)]
    await apply_snapshots(conn, catalogue, [snapshot(PERSON, records)])
    for q in (PERSON.name or "", PERSON.id, "李四"):
        assert await found(conn, q, LAST_DAY) == [PERSON.key], q
        assert await found(conn, q, LAST_DAY + timedelta(days=1)) == [], q


async def test_someone_who_was_a_minor_on_the_decision_date_is_never_found(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    record = archived("hrss.wage_arrears", decided_on=date(2026, 6, 1),
                      public_until=date(2029, 6, 1))
    await apply_snapshots(conn, catalogue, [snapshot(MINOR, [record])])
    assert await conn.fetchval("SELECT count(*) FROM subjects WHERE subject_key = $1",
                               MINOR.key) == 1
    for q in (MINOR.name or "", MINOR.id):
        assert await found(conn, q, date(2026, 7, 1)) == [], q
    assert await conn.fetchval("SELECT count(*) FROM list_entries WHERE subject_key = $1",
                               MINOR.key) == 0


async def test_organizations_are_found_with_no_end(tx: OpenTransaction,
                                                   catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    await apply_snapshots(conn, catalogue, [snapshot(ENTERPRISE, [])])
    assert await found(conn, ENTERPRISE.id, date(2999, 1, 1)) == [ENTERPRISE.key]


async def test_the_migration_dates_rows_stored_before_it(tx: OpenTransaction) -> None:
    """Rows from before 002 have `discoverable` only: organizations get no end, a person the
    latest end of an active record's period, someone with nothing public stays hidden."""
    conn = await tx("publisher")
    withdrawn = archived("hrss.wage_arrears", record_id="w", status="withdrawn",
                         public_until=date(2030, 1, 1))
    rows = [(snapshot(ENTERPRISE, []), True),
            (snapshot(PERSON, [archived("hrss.wage_arrears", public_until=LAST_DAY),
                               withdrawn]), True),
            (snapshot(MINOR, [withdrawn]), False)]
    await conn.executemany(
        "INSERT INTO subjects (subject_key, type, id, name, version, snapshot, discoverable)"
        " VALUES ($1, $2, $3, $4, 1, $5::text::json, $6)",
        [(s.subject.key, s.subject.type, s.subject.id, s.subject.name,
          s.model_dump_json(), d) for s, d in rows])
    await conn.execute(_backfill())
    dated = dict(await conn.fetch("SELECT subject_key, discoverable_until FROM subjects"
                                  " WHERE subject_key = ANY($1::text[])",
                                  [s.subject.key for s, _ in rows]))
    assert dated == {ENTERPRISE.key: date(9999, 12, 31), PERSON.key: LAST_DAY,
                     MINOR.key: None}


def _backfill() -> str:
    """The migration's UPDATE statements (its ALTER already ran when the database was made)."""
    sql = "\n".join(line for line in MIGRATION.read_text(encoding="utf-8").splitlines()
                    if not line.lstrip().startswith("--"))
    statements = [s for s in sql.split(";") if s.lstrip().startswith("UPDATE")]
    assert len(statements) == 2
    return ";".join(statements)

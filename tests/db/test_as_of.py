"""The as-of profile on the publisher's real database (rolled back): snapshot versions and
entry states are stored with the time each took effect, in the snapshot's transaction, and
the past is read from them (issue 8 item 2): before and after a correction and a repair, the
public view and the full one, the clock moved between."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.publisher import domain, store
from services.publisher import sweeps as publisher_sweeps
from services.publisher.handlers import apply_snapshots
from shared import clock, grading
from shared.catalogue import Catalogue
from shared.contract import Provenance, SubjectChanged
from shared.purge import Erasure
from tests.db.conftest import OpenTransaction
from tests.unit.factories import ENTERPRISE, archived, snapshot

pytestmark = pytest.mark.db


@pytest.fixture
def moved(tmp_path: Path) -> Iterator[Path]:
    """A test clock of this test's own (the services' clock in the db tier is the real one)."""
    path = tmp_path / "clock"
    path.write_text("0")
    clock.configure(path)
    try:
        yield path
    finally:
        clock.configure(None)


def revision(n: int, **changes: Any) -> Any:
    return archived(revision=n, document_no=f"（2026）粤04执{n}号", provenance=Provenance(
        department="court", record_id="R-1", revision=n, event_id=f"ev-{n}",
        received_at=clock.now()), **changes)


async def views(conn: asyncpg.Connection, catalogue: Catalogue, day: date
                ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the public view, the full view) at the end of `day`; None before history."""
    _, at = domain.as_of_moment(day.isoformat(), clock.now())
    past = await store.profile_at(conn, ENTERPRISE.key, at)
    if past.past is None:
        return None, None
    assert past.current is not None and past.history_from is not None
    then = SubjectChanged.model_validate_json(past.past)
    public = domain.public_profile(catalogue, then, past.past_entries, day,
                                   SubjectChanged.model_validate_json(past.current),
                                   past.current_entries, clock.today())
    return public, domain.own_profile(catalogue, then, past.past_entries, day)


def documents(view: dict[str, Any] | None) -> list[tuple[str, str | None]]:
    assert view is not None
    return [(r["document_no"], r["provenance"]["event_id"]) for r in view["records"]]


async def test_the_past_is_read_from_stored_versions_and_entry_states(
        tx: OpenTransaction, catalogue: Catalogue, moved: Path) -> None:
    conn = await tx("publisher")
    first_day = clock.today()
    await apply_snapshots(conn, catalogue, [snapshot(ENTERPRISE, [revision(1)], version=1)])
    # Two days on, the department corrects the record.
    clock.move_test_clock(moved, timedelta(days=2))
    await apply_snapshots(conn, catalogue, [snapshot(ENTERPRISE, [revision(2)], version=2)])
    corrected_day = clock.today()

    # The day before history began: the same answer as an unknown subject.
    assert await views(conn, catalogue, first_day - timedelta(days=1)) == (None, None)
    public, own = await views(conn, catalogue, first_day)
    assert documents(public) == [("（2026）粤04执1号", "ev-1")]
    assert public is not None and [m["list"] for m in public["lists"]] == [
        "court.dishonest_debtor"]
    assert public["lists"][0]["basis"][0]["provenance"]["event_id"] == "ev-1"
    assert public["grade"]["grade"] == "D"
    public, _ = await views(conn, catalogue, corrected_day)
    assert documents(public) == [("（2026）粤04执2号", "ev-2")]
    history = await conn.fetch(
        "SELECT version, effective_at FROM subject_versions WHERE subject_key = $1"
        " ORDER BY version", ENTERPRISE.key)
    assert [r["version"] for r in history] == [1, 2]
    assert history[1]["effective_at"] - history[0]["effective_at"] >= timedelta(days=2)

    # Two days more, the record is repaired: it is not shown again for any day, publicly.
    clock.move_test_clock(moved, timedelta(days=2))
    await apply_snapshots(conn, catalogue, [snapshot(
        ENTERPRISE, [revision(2, status="repaired")], version=3)])
    for day in (first_day, corrected_day, clock.today()):
        public, own = await views(conn, catalogue, day)
        assert public is not None
        assert (public["records"], public["lists"], public["grade"]["grade"]) == ([], [], "B")
    # The full view still has the past as it was: the record, and the entry active then
    # and exited since.
    _, own = await views(conn, catalogue, first_day)
    assert own is not None and documents(own) == [("（2026）粤04执1号", "ev-1")]
    assert [(m["list"], m["status"]) for m in own["lists"]] == [
        ("court.dishonest_debtor", "active")]
    _, own = await views(conn, catalogue, clock.today())
    assert own is not None and [m["status"] for m in own["lists"]] == ["exited"]
    assert [r["status"] for r in own["records"]] == ["repaired"]


async def test_a_replayed_version_adds_no_history(tx: OpenTransaction,
                                                  catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    snap = snapshot(ENTERPRISE, [archived()], version=4)
    await apply_snapshots(conn, catalogue, [snap])
    await apply_snapshots(conn, catalogue, [snap, snap.model_copy(update={"version": 3})])
    assert await conn.fetchval(
        "SELECT count(*) FROM subject_versions WHERE subject_key = $1", ENTERPRISE.key) == 1
    assert await conn.fetchval(
        "SELECT count(*) FROM entry_history WHERE subject_key = $1", ENTERPRISE.key) == 1
    at: datetime = await conn.fetchval(
        "SELECT effective_at FROM subject_versions WHERE subject_key = $1", ENTERPRISE.key)
    assert abs(at - clock.now()) < timedelta(minutes=5)


async def test_an_erased_record_leaves_every_past_snapshot_and_its_grade(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    kept, erased = archived("tax.a_grade_taxpayer", record_id="T-1"), archived(record_id="C-1")
    await apply_snapshots(conn, catalogue, [
        snapshot(ENTERPRISE, [erased, kept], version=1).model_copy(update={
            "grade": grading.grade(catalogue, ENTERPRISE, [erased, kept], clock.today())})])
    await apply_snapshots(conn, catalogue, [snapshot(ENTERPRISE, [erased], version=2)])
    [target] = [t for t in publisher_sweeps.plan(catalogue).targets
                if t.table == "subject_versions"]
    await target.erase(conn, Erasure(ENTERPRISE.key, (("court", "C-1"),), clock.today()))
    rows = await conn.fetch("SELECT snapshot::text AS s FROM subject_versions"
                            " WHERE subject_key = $1 ORDER BY version", ENTERPRISE.key)
    versions = [SubjectChanged.model_validate_json(r["s"]) for r in rows]
    assert [[r.record_id for r in v.records] for v in versions] == [["T-1"], []]
    assert all("C-1" not in r["s"] for r in rows)
    assert [v.grade.grade for v in versions] == ["A", "B"]
    await target.erase(conn, Erasure(ENTERPRISE.key, (), clock.today(), whole=True))
    assert await conn.fetchval(
        "SELECT count(*) FROM subject_versions WHERE subject_key = $1", ENTERPRISE.key) == 0

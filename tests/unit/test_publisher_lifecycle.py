"""services/publisher/domain.py, the lifecycle: an entry ends when its basis stops showing,
an extension (延长, 法释〔2017〕7号) moves the term and supersedes the notices, only a new
decision lists again after a term, the changes feed names subjects for a window, and what
shows while listed shows only then."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.publisher.domain import (
    Activate,
    Cursor,
    Enter,
    Entry,
    Exit,
    History,
    Rebase,
    add_years,
    cursor_expired,
    encode_cursor,
    entry_id_for,
    entry_until,
    feed_names_subject,
    lapsed_lists,
    materialize,
    plan_for_subject,
    public_records,
    qualifying_basis,
    read_cursor,
    related_until,
)
from shared.contract import BasisRecord, RelatedSubject
from tests.unit.factories import ENTERPRISE, PERSON, PERSON_ID, archived, snapshot

TODAY = date(2026, 11, 28)
NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
COURT = "court.dishonest_debtor"
WAGES = "hrss.wage_arrears"
LEGAL_REP = RelatedSubject(type="individual", id=PERSON_ID, name="张伟",
                           role="legal_representative")


def court(**overrides: object):
    base: dict[str, object] = {"decided_on": date(2026, 6, 1), "public_until": date(2028, 6, 1)}
    base.update(overrides)
    return archived(**base)


def basis(*records) -> tuple[BasisRecord, ...]:
    return tuple(BasisRecord(department=r.department, record_id=r.record_id,
                             revision=r.revision) for r in records)


def active_entry(*records, since: date = date(2026, 6, 2), until: date | None = None) -> Entry:
    return Entry("entry-1", COURT, ENTERPRISE.key, "active", basis(*records), since=since,
                 until=until or date(2028, 6, 1))


def snap(*records, related=(LEGAL_REP,)):
    return {ENTERPRISE.key: snapshot(records=list(records), related=list(related))}


def published(catalogue, record, since: date = date(2026, 6, 2)):
    """An entry as the publisher made it, with the notices it sent."""
    pending = Entry("entry-1", COURT, ENTERPRISE.key, "pending", basis(record))
    fx = materialize(catalogue, [Activate(pending)], snap(record), {},
                     datetime.combine(since, datetime.min.time(), UTC), since)
    [active] = fx.changed_entries
    return active, {active.entry_id: [(agency, n) for agency, n, _ in fx.notices]}


# --- an entry's term ----------------------------------------------------------------------


def test_a_court_entry_ends_with_its_decisions_term(catalogue):
    """Listed two years from the decision (the record's end of display), not from the day
    the publisher saw it."""
    record = court()
    entry = Entry("e", COURT, ENTERPRISE.key, "pending", basis(record))
    assert entry_until(catalogue, entry, date(2026, 6, 20),
                       snapshot(records=[record])) == date(2028, 6, 1)


def test_an_entry_is_capped_at_its_basis_end_of_display(catalogue):
    """Wage arrears: listed 3 years, but its record (Order 36, serious) shows 3 years from
    the decision, which came earlier."""
    record = archived(WAGES, decided_on=date(2026, 5, 1), public_until=date(2029, 5, 1))
    entry = Entry("e", WAGES, ENTERPRISE.key, "pending", basis(record))
    assert entry_until(catalogue, entry, date(2026, 5, 20),
                       snapshot(records=[record])) == date(2029, 5, 1)


def test_the_entry_lasts_while_any_of_its_basis_shows(catalogue):
    early = archived(WAGES, record_id="a", public_until=date(2027, 1, 1))
    late = archived(WAGES, record_id="b", public_until=date(2028, 1, 1))
    entry = Entry("e", WAGES, ENTERPRISE.key, "pending", basis(early, late))
    assert entry_until(catalogue, entry, date(2026, 6, 1),
                       snapshot(records=[early, late])) == date(2028, 1, 1)


# --- expiry at rest -----------------------------------------------------------------------


def test_a_record_past_its_display_no_longer_lists_and_the_entry_exits_expired(catalogue):
    record = court(public_until=TODAY - timedelta(days=1))
    snap_ = snapshot(records=[record])
    assert qualifying_basis(catalogue, snap_, TODAY) == {}
    assert qualifying_basis(catalogue, snap_) == {COURT: basis(record)}  # reads without a day
    assert lapsed_lists(catalogue, snap_, TODAY) == {COURT}
    entry = active_entry(record)
    actions = plan_for_subject(ENTERPRISE.key, {COURT: entry},
                               qualifying_basis(catalogue, snap_, TODAY),
                               lapsed=lapsed_lists(catalogue, snap_, TODAY))
    assert actions == [Exit(entry, "expired")]


def test_a_withdrawn_basis_still_exits_as_withdrawn(catalogue):
    record = court(status="withdrawn")
    snap_ = snapshot(records=[record])
    entry = active_entry(court())
    actions = plan_for_subject(ENTERPRISE.key, {COURT: entry},
                               qualifying_basis(catalogue, snap_, TODAY),
                               lapsed=lapsed_lists(catalogue, snap_, TODAY))
    assert actions == [Exit(entry, "basis_withdrawn")]


def test_an_expired_exit_revokes_and_serves_its_decisions(catalogue):
    record = court()
    entry, issued = published(catalogue, record)
    fx = materialize(catalogue, [Exit(entry, "expired")], snap(record), issued, NOW, TODAY)
    assert [c.op for c in fx.list_changes] == ["DEL"]
    assert {n.kind for _, n, _ in fx.notices} == {"revocation"}
    assert len(fx.notices) == 5
    assert fx.served == [(COURT, ENTERPRISE.key, "court", "R-1", date(2026, 6, 1))]


def test_after_its_term_only_a_new_decision_lists_again(catalogue):
    served = {COURT: {("court", "R-1", date(2026, 6, 1))}}
    # The same decision, revised (a typo fixed, or an extension sent too late): not again.
    later_revision = court(revision=3, public_until=date(2029, 6, 1),
                           attributes={"extension_years": 1})
    assert qualifying_basis(catalogue, snapshot(records=[later_revision]), TODAY,
                            served) == {}
    # A new decision (a new decided_on) is a new listing.
    new_decision = court(revision=4, decided_on=date(2026, 11, 1),
                         public_until=date(2028, 11, 1))
    assert qualifying_basis(catalogue, snapshot(records=[new_decision]), TODAY,
                            served) == {COURT: basis(new_decision)}


# --- extensions (延长) ----------------------------------------------------------------------


def test_an_extension_moves_the_term_publishes_a_mod_and_supersedes_every_notice(catalogue):
    record = court()
    entry, issued = published(catalogue, record)
    extension = court(revision=2, attributes={"extension_years": 2},
                      public_until=date(2030, 6, 1))
    fx = materialize(catalogue, [Rebase(entry, basis(extension))], snap(extension), issued,
                     NOW, TODAY)
    [moved] = fx.changed_entries
    assert (moved.since, moved.until) == (entry.since, date(2030, 6, 1))
    [change] = fx.list_changes
    assert (change.op, change.until) == ("MOD", date(2030, 6, 1))
    earlier = {n.notice_id: (agency, n) for agency, n in issued[entry.entry_id]}
    assert len(fx.notices) == len(earlier) == 5
    for agency, notice, for_entry in fx.notices:
        assert for_entry == entry.entry_id
        assert notice.kind == "penalty" and notice.supersedes in earlier
        assert earlier[notice.supersedes][0] == agency
        assert notice.notice_id not in earlier
        assert notice.effective_until == date(2030, 6, 1)
        assert notice.effective_from == earlier[notice.supersedes][1].effective_from
        assert notice.basis == list(basis(extension))
    # The same extension applied again (a replay) gives the same ids.
    again = materialize(catalogue, [Rebase(entry, basis(extension))], snap(extension), issued,
                        NOW + timedelta(days=1), TODAY)
    assert [n.notice_id for _, n, _ in again.notices] == [n.notice_id for _, n, _ in fx.notices]


def test_a_term_changed_back_is_announced_under_ids_never_sent_before(catalogue):
    """Extended by 2 years, corrected to 1, then back to 2: each notice is new to the
    agencies, who drop an id they already have."""
    entry, issued = published(catalogue, court())
    sent = {n.notice_id for _, n in issued[entry.entry_id]}
    for years in (2, 1, 2):
        record = court(revision=2 + years, attributes={"extension_years": years},
                       public_until=date(2028 + years, 6, 1))
        fx = materialize(catalogue, [Rebase(entry, basis(record))], snap(record), issued,
                         NOW, TODAY)
        [entry] = fx.changed_entries
        ids = {n.notice_id for _, n, _ in fx.notices}
        assert len(ids) == 5 and not ids & sent, years
        assert {n.supersedes for _, n, _ in fx.notices} == {
            n.notice_id for _, n in issued[entry.entry_id]}
        sent |= ids
        issued = {entry.entry_id: [(a, n) for a, n, _ in fx.notices]}


def test_the_exit_after_an_extension_revokes_the_superseding_notices(catalogue):
    record = court()
    entry, issued = published(catalogue, record)
    extension = court(revision=2, attributes={"extension_years": 1},
                      public_until=date(2029, 6, 1))
    fx = materialize(catalogue, [Rebase(entry, basis(extension))], snap(extension), issued,
                     NOW, TODAY)
    current = {entry.entry_id: [(a, n) for a, n, _ in fx.notices]}
    [moved] = fx.changed_entries
    out = materialize(catalogue, [Exit(moved, "basis_withdrawn")], snap(extension), current,
                      NOW, TODAY)
    assert {n.revokes for _, n, _ in out.notices} == {n.notice_id for _, n, _ in fx.notices}
    assert all(n.supersedes is None for _, n, _ in out.notices)


def test_notices_naming_a_person_beside_the_subject_know_when_to_forget_them(catalogue):
    record = court(act_ended_on=date(2026, 9, 1))
    entry = Entry("entry-1", COURT, ENTERPRISE.key, "pending", basis(record))
    fx = materialize(catalogue, [Enter(COURT, ENTERPRISE.key, basis(record))], snap(record),
                     {}, NOW, TODAY)
    hiring = [n for _, n, _ in fx.notices if n.related_subjects]
    assert [n.measure for n in hiring] == ["hiring.restrict"]
    assert fx.related_until == {hiring[0].notice_id: date(2031, 9, 1)}
    assert related_until(snapshot(records=[record]), entry) == date(2031, 9, 1)


# --- what shows while listed --------------------------------------------------------------


def test_a_court_record_shows_only_while_an_entry_rests_on_it(catalogue):
    record = court()
    assert public_records(catalogue, ENTERPRISE, [record], TODAY, listed=set()) == []
    assert len(public_records(catalogue, ENTERPRISE, [record], TODAY,
                              listed={("court", "R-1")})) == 1


@pytest.mark.parametrize("item", [WAGES, "tax.major_violation"])
def test_a_record_of_a_list_told_before_publication_shows_only_once_published(catalogue, item):
    """The subject is told before the list is published (国办发〔2020〕49号); its record is
    the listing, so it waits for the entry too."""
    record = archived(item, record_id="X-1")
    assert catalogue.shows_while_listed(item)
    assert public_records(catalogue, PERSON, [record], TODAY, listed=set()) == []
    assert len(public_records(catalogue, PERSON, [record], TODAY,
                              listed={(record.department, "X-1")})) == 1


def test_items_of_lists_published_at_once_or_of_no_list_show_by_their_own_period(catalogue):
    assert not catalogue.shows_while_listed("amr.admin_penalty")
    assert not catalogue.shows_while_listed("tax.a_grade_taxpayer")
    assert not catalogue.shows_while_listed("supervision.contract_breach")
    penalty = archived("amr.admin_penalty", record_id="P-1")
    assert len(public_records(catalogue, ENTERPRISE, [penalty], TODAY, listed=set())) == 1


# --- the changes feed ---------------------------------------------------------------------


@pytest.mark.parametrize(("status", "ended", "named"), [
    ("active", None, True),
    ("exited", TODAY, True),
    ("exited", TODAY - timedelta(days=14), True),
    ("exited", TODAY - timedelta(days=15), False),
    ("cancelled", None, False),
    (None, None, False),  # the entry was erased
])
def test_the_feed_names_a_subject_while_listed_and_a_window_after(status, ended, named):
    assert feed_names_subject(status, ended, TODAY, 14) is named


def test_a_cursor_carries_when_it_was_given():
    cursor = read_cursor(encode_cursor(42, NOW))
    assert cursor == Cursor(42, NOW)
    assert not cursor_expired(cursor, NOW + timedelta(days=14), 14)
    assert cursor_expired(cursor, NOW + timedelta(days=14, seconds=1), 14)
    # Cursors of the first version (no time) are still taken.
    assert read_cursor(encode_cursor(42)) == Cursor(42, None)
    assert not cursor_expired(read_cursor(encode_cursor(42)), NOW, 14)


def test_add_years_is_the_shared_one():
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)


def test_an_active_entry_rebased_onto_a_pending_one_changes_nothing_public(catalogue):
    pending = replace(active_entry(court()), status="pending", since=None, until=None)
    fx = materialize(catalogue, [Rebase(pending, basis(court(revision=2)))],
                     snap(court(revision=2)), {}, NOW, TODAY)
    assert fx.list_changes == [] and fx.notices == []


# --- entry ids ----------------------------------------------------------------------------


def test_an_entry_id_cannot_be_computed_from_the_subject_without_the_key(catalogue):
    """The public changes feed keeps an entry's id after it stops naming the subject: made
    with the deployment's key, the id is not a function of an identity number anyone can
    compute; the same key gives the same id again (a replay)."""
    record = court()
    history = History(id_key=b"deployment key")
    fx = materialize(catalogue, [Enter(COURT, ENTERPRISE.key, basis(record))], snap(record),
                     {}, NOW, TODAY, history)
    [entry] = fx.new_entries
    assert entry.entry_id == entry_id_for(COURT, ENTERPRISE.key, 0, b"deployment key")
    assert entry.entry_id != entry_id_for(COURT, ENTERPRISE.key, 0)
    assert entry.entry_id != entry_id_for(COURT, ENTERPRISE.key, 0, b"another key")
    again = materialize(catalogue, [Enter(COURT, ENTERPRISE.key, basis(record))],
                        snap(record), {}, NOW, TODAY, history)
    assert [e.entry_id for e in again.new_entries] == [entry.entry_id]

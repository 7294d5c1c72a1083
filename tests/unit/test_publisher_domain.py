"""services/publisher/domain.py: list entries (红黑名单), the notice period (公示期), joint
reward and penalty notices (联合奖惩) and what the public sees (信用珠海网)."""

from __future__ import annotations

import base64
import typing
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
import zhconv

from services.publisher import domain
from services.publisher.domain import (
    MAX_SEQ,
    Activate,
    Enter,
    Entry,
    Exit,
    History,
    Rebase,
    add_years,
    basis_key,
    control_characters,
    decode_cursor,
    discoverable_until,
    encode_cursor,
    is_discoverable,
    materialize,
    name_grams,
    normalize_name,
    plan_for_subject,
    plan_timers,
    public_records,
    public_subject,
    qualifying_basis,
    query_grams,
)
from shared.contract import BasisRecord, NoticeFeedback, RelatedSubject, SubjectRef
from tests.unit.factories import (
    ENTERPRISE,
    PERSON,
    PERSON_ID,
    archived,
    resident_id,
    snapshot,
)

TODAY = date(2026, 11, 28)
NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
COURT = "court.dishonest_debtor"
TAX = "tax.major_violation"
COURT_BASIS = (BasisRecord(department="court", record_id="R-1", revision=1),)
TAX_BASIS = (BasisRecord(department="tax", record_id="T-1", revision=1),)
LEGAL_REP = RelatedSubject(type="individual", id=PERSON_ID, name="张伟",
                           role="legal_representative")
PENALTY_AGENCIES = {"finance-procurement", "housing-bidding", "land", "ndrc-projects",
                    "hrss-hiring"}


def to_simplified(s: str) -> str:
    return zhconv.convert(s, "zh-hans")


def subjects(*records, related=(LEGAL_REP,)):
    return {ENTERPRISE.key: snapshot(records=list(records), related=list(related))}


def entry(list_name: str = COURT, status: str = "active", basis=COURT_BASIS,
          entry_id: str = "entry-1") -> Entry:
    since = TODAY - timedelta(days=30) if status in ("active", "exited") else None
    return Entry(entry_id=entry_id, list=list_name, subject_key=ENTERPRISE.key,
                 status=status, basis=basis, since=since,
                 until=add_years(since, 2) if since else None)


# --- qualifying_basis ---------------------------------------------------------------------


def test_court_record_qualifies_for_the_court_list(catalogue):
    snap = snapshot(records=[archived()])
    assert qualifying_basis(catalogue, snap) == {COURT: COURT_BASIS}


@pytest.mark.parametrize("status", ["withdrawn", "repaired"])
def test_withdrawn_or_repaired_records_do_not_qualify(catalogue, status):
    assert qualifying_basis(catalogue, snapshot(records=[archived(status=status)])) == {}


def test_disputed_record_still_qualifies(catalogue):
    snap = snapshot(records=[archived(disputed=True)])
    assert qualifying_basis(catalogue, snap) == {COURT: COURT_BASIS}


def test_items_that_feed_no_list_do_not_qualify(catalogue):
    snap = snapshot(records=[archived("amr.admin_penalty"),
                             archived("amr.legal_representative", public_until=None)])
    assert qualifying_basis(catalogue, snap) == {}


MINOR = SubjectRef(type="individual", id=resident_id(birth=date(2010, 1, 1)), name="小明")


@pytest.mark.parametrize("item", ["tax.major_violation", "hrss.wage_arrears",
                                  "court.dishonest_debtor"])
def test_a_record_about_a_minor_never_qualifies_for_a_list(catalogue, item):
    """Nobody under 18 on the decision date is listed, whatever the item (法释〔2017〕7号
    for the court's list; 未成年人保护法 第四条 for all)."""
    young = archived(item, decided_on=date(2027, 12, 31))
    assert qualifying_basis(catalogue, snapshot(MINOR, [young])) == {}
    grown = archived(item, decided_on=date(2028, 1, 1))
    assert list(qualifying_basis(catalogue, snapshot(MINOR, [grown]))) == [item]


def test_an_adults_record_about_the_same_person_still_qualifies(catalogue):
    records = [archived("hrss.wage_arrears", record_id="young", decided_on=date(2026, 6, 1)),
               archived("hrss.wage_arrears", record_id="adult", decided_on=date(2028, 6, 1))]
    basis = qualifying_basis(catalogue, snapshot(MINOR, records))
    assert [b.record_id for b in basis["hrss.wage_arrears"]] == ["adult"]


def test_basis_lists_every_record_sorted(catalogue):
    snap = snapshot(records=[archived(record_id="R-9", revision=3), archived(record_id="R-2"),
                             archived("tax.major_violation", record_id="T-1")])
    basis = qualifying_basis(catalogue, snap)
    assert [b.record_id for b in basis[COURT]] == ["R-2", "R-9"]
    assert basis[COURT][1].revision == 3
    assert basis[TAX] == TAX_BASIS


# --- plan_for_subject / plan_timers -------------------------------------------------------


def test_plan_enters_a_list_the_subject_newly_qualifies_for():
    actions = plan_for_subject(ENTERPRISE.key, {}, {COURT: COURT_BASIS})
    assert actions == [Enter(COURT, ENTERPRISE.key, COURT_BASIS)]


def test_plan_does_nothing_when_the_basis_is_unchanged():
    assert plan_for_subject(ENTERPRISE.key, {COURT: entry()}, {COURT: COURT_BASIS}) == []


def test_plan_rebases_an_entry_whose_basis_changed():
    new_basis = (BasisRecord(department="court", record_id="R-1", revision=2),)
    actions = plan_for_subject(ENTERPRISE.key, {COURT: entry()}, {COURT: new_basis})
    assert actions == [Rebase(entry(), new_basis)]


def test_plan_exits_an_entry_that_no_longer_qualifies():
    actions = plan_for_subject(ENTERPRISE.key, {COURT: entry()}, {})
    assert actions == [Exit(entry(), "basis_withdrawn")]


def test_expired_entry_is_not_reentered_by_the_next_snapshot(catalogue):
    """DOMAIN.md line 76 (法释〔2017〕7号): listed for 2 years, extendable by 1-3 years (by the
    court, not by an unrelated change of the archive). The court record stays active and
    public for 36 months, so after the timer's Exit(expired) the same basis is still there;
    the next snapshot (here: an unrelated amr record) finds no open entry."""
    court_record = archived(decided_on=date(2026, 6, 1), public_until=date(2029, 6, 1))
    expired = entry()
    assert plan_timers([], [expired]) == [Exit(expired, "expired")]
    later = snapshot(records=[court_record, archived("amr.admin_penalty", record_id="A-1")],
                     version=2)
    served = {COURT: {basis_key(b) for b in expired.basis}}
    actions = plan_for_subject(ENTERPRISE.key, {}, qualifying_basis(catalogue, later), served)
    assert not [a for a in actions if isinstance(a, Enter) and a.list == COURT]
    # A new revision of the court record (an extension, 延长) is a new decision: listed again.
    extended = snapshot(records=[court_record.model_copy(update={"revision": 2})], version=3)
    again = plan_for_subject(ENTERPRISE.key, {}, qualifying_basis(catalogue, extended), served)
    assert [a.list for a in again if isinstance(a, Enter)] == [COURT]


def test_plan_timers_activates_due_and_exits_expired():
    due, expired = entry(TAX, "pending", TAX_BASIS, "e-tax"), entry(entry_id="e-court")
    assert plan_timers([due], [expired]) == [Activate(due), Exit(expired, "expired")]
    assert plan_timers([], []) == []


# --- materialize: entering ----------------------------------------------------------------


def enter_court(catalogue, now=NOW):
    return materialize(catalogue, [Enter(COURT, ENTERPRISE.key, COURT_BASIS)],
                       subjects(archived()), {}, now, TODAY)


def test_court_entry_is_active_at_once(catalogue):
    """The court list has no notice period (notice_period_days: 0)."""
    fx = enter_court(catalogue)
    [new] = fx.new_entries
    assert new.status == "active"
    assert new.since == TODAY
    assert new.until == date(2028, 11, 28)  # DOMAIN.md line 76: listed for 2 years
    assert new.basis == COURT_BASIS


def test_court_entry_adds_to_the_list(catalogue):
    fx = enter_court(catalogue)
    [change] = fx.list_changes
    assert change.op == "ADD"
    assert change.list == COURT
    assert change.entry_id == fx.new_entries[0].entry_id
    assert change.subject == ENTERPRISE
    assert (change.since, change.until) == (TODAY, date(2028, 11, 28))


def test_court_entry_sends_one_penalty_notice_per_measure(catalogue):
    fx = enter_court(catalogue)
    assert len(fx.notices) == 5
    assert {agency for agency, _, _ in fx.notices} == PENALTY_AGENCIES
    assert {n.measure for _, n, _ in fx.notices} == {
        name for name, _ in catalogue.measures_for(COURT)}
    entry_id = fx.new_entries[0].entry_id
    for _, notice, for_entry in fx.notices:
        assert for_entry == entry_id
        assert notice.kind == "penalty"
        assert notice.list == COURT
        assert notice.subject == ENTERPRISE
        assert notice.basis == list(COURT_BASIS)
        assert (notice.effective_from, notice.effective_until) == (TODAY, date(2028, 11, 28))
        assert notice.issued_at == NOW
        assert notice.revokes is None
    assert len({n.notice_id for _, n, _ in fx.notices}) == 5


def test_only_the_hiring_notice_names_the_legal_representative(catalogue):
    fx = enter_court(catalogue)
    by_measure = {n.measure: n for _, n, _ in fx.notices}
    assert by_measure["hiring.restrict"].related_subjects == [LEGAL_REP]
    for name, notice in by_measure.items():
        if name != "hiring.restrict":
            assert notice.related_subjects == [], name


def test_a_minor_key_person_is_not_named_on_any_notice(catalogue):
    """Defence in depth: the registry does not link a key person under 18 on the decision
    date; one who is under 18 on the notice's date was one then too."""
    kid = RelatedSubject(type="individual", id=resident_id(birth=date(2010, 1, 1)), name="小明",
                         role="legal_representative")
    fx = materialize(catalogue, [Enter(COURT, ENTERPRISE.key, COURT_BASIS)],
                     subjects(archived(), related=(kid,)), {}, NOW, TODAY)
    assert len(fx.notices) == 5
    assert all(n.related_subjects == [] for _, n, _ in fx.notices)


def test_notice_ids_are_stable(catalogue):
    """CONTRACT.md line 106: the same notice redelivered keeps its id, even when the entry
    is made again on another day (a replay after a restore)."""
    first = enter_court(catalogue)
    replayed = enter_court(catalogue, NOW + timedelta(days=1))
    assert [n.notice_id for _, n, _ in first.notices] == [
        n.notice_id for _, n, _ in replayed.notices]
    assert [e.entry_id for e in first.new_entries] == [e.entry_id for e in replayed.new_entries]
    assert first.list_change_ids == replayed.list_change_ids


def test_a_later_entry_of_the_same_subject_has_ids_of_its_own(catalogue):
    first = enter_court(catalogue)
    second = materialize(catalogue, [Enter(COURT, ENTERPRISE.key, COURT_BASIS)],
                         subjects(archived()), {}, NOW, TODAY,
                         History(entries={(COURT, ENTERPRISE.key): 1}))
    assert first.new_entries[0].entry_id != second.new_entries[0].entry_id
    assert not ({n.notice_id for _, n, _ in first.notices}
                & {n.notice_id for _, n, _ in second.notices})
    assert not set(first.list_change_ids) & set(second.list_change_ids)


def extended(years: int, revision: int = 2):
    """The court's revision of R-1 that extends its listing (延长, 法释〔2017〕7号)."""
    return archived(revision=revision, attributes={"extension_years": years},
                    public_until=date(2028 + years, 6, 1))


def basis_of(*records):
    return tuple(BasisRecord(department=r.department, record_id=r.record_id,
                             revision=r.revision) for r in records)


def test_each_change_of_an_entry_has_its_own_event_id(catalogue):
    """ADD, then MOD to a term extended by a year, then MOD to one extended by two: each
    change has its own id; the same history gives the same ids again."""
    active = entry()

    def changes(history):
        return [materialize(catalogue, [Rebase(active, basis_of(r))], subjects(r), {},
                            NOW, TODAY, History(changes={active.entry_id: n})).list_change_ids
                for n, r in history]

    ids = changes([(1, extended(1)), (2, extended(2, 3))])
    assert len({i for batch in ids for i in batch}) == 2
    assert ids == changes([(1, extended(1)), (2, extended(2, 3))])


def test_tax_entry_waits_for_the_subject_to_be_told(catalogue):
    """Xinyong tells the subject (国办发〔2020〕49号): no publication date until then."""
    fx = materialize(catalogue, [Enter(TAX, ENTERPRISE.key, TAX_BASIS)],
                     subjects(archived(TAX, record_id="T-1")), {}, NOW, TODAY)
    [new] = fx.new_entries
    assert new.status == "pending"
    assert new.publish_at is None
    assert fx.to_notify == [new]
    assert new.since is None
    assert fx.list_changes == []
    assert fx.notices == []


def test_activate_publishes_a_pending_entry(catalogue):
    pending = entry(TAX, "pending", TAX_BASIS, "e-tax")
    shown = archived(TAX, record_id="T-1", public_until=date(2030, 1, 1))
    fx = materialize(catalogue, [Activate(pending)], subjects(shown), {}, NOW, TODAY)
    [active] = fx.changed_entries
    assert active.entry_id == "e-tax"
    assert (active.status, active.since, active.until) == ("active", TODAY, date(2029, 11, 28))
    assert [c.op for c in fx.list_changes] == ["ADD"]
    assert {agency for agency, _, _ in fx.notices} == PENALTY_AGENCIES
    assert fx.new_entries == []


def test_red_list_entry_sends_rewards(catalogue):
    basis = (BasisRecord(department="tax", record_id="A-1", revision=1),)
    fx = materialize(catalogue, [Enter("tax.a_grade", ENTERPRISE.key, basis)],
                     subjects(archived("tax.a_grade_taxpayer", record_id="A-1")), {}, NOW, TODAY)
    assert {(a, n.kind) for a, n, _ in fx.notices} == {
        ("ndrc-projects", "reward"), ("finance-procurement", "reward")}


# --- materialize: rebasing and exiting ----------------------------------------------------


def test_a_corrected_revision_updates_the_entry_and_publishes_nothing(catalogue):
    """A typo fix (same decision, same term) changes the basis only: no MOD, no notice."""
    fixed = archived(revision=2, document_no="（2026）粤04执124号")
    fx = materialize(catalogue, [Rebase(entry(), basis_of(fixed))], subjects(fixed),
                     issued_for(catalogue, entry()), NOW, TODAY)
    [changed] = fx.changed_entries
    assert changed.basis == basis_of(fixed)
    assert changed.until == entry().until
    assert fx.list_changes == []
    assert fx.notices == []


def test_an_entry_resting_on_other_records_supersedes_its_notices(catalogue):
    """One of two decisions withdrawn, the term unchanged: the agencies' notices name a
    basis that is no longer the entry's, so each is replaced (CONTRACT.md: "a basis
    changed"), and the feed says so."""
    first, second = archived(), archived(record_id="R-2")
    both = replace(entry(), basis=basis_of(first, second))
    issued = issued_for(catalogue, both)
    fx = materialize(catalogue, [Rebase(both, basis_of(first))], subjects(first), issued,
                     NOW, TODAY)
    [changed] = fx.changed_entries
    assert (changed.basis, changed.until) == (basis_of(first), both.until)
    [change] = fx.list_changes
    assert (change.op, change.basis) == ("MOD", list(basis_of(first)))
    earlier = {n.notice_id for _, n in issued[both.entry_id]}
    assert len(fx.notices) == 5
    for _, notice, _ in fx.notices:
        assert notice.supersedes in earlier and notice.notice_id not in earlier
        assert (notice.basis, notice.effective_until) == (list(basis_of(first)), both.until)


def test_rebase_of_a_pending_entry_is_not_published(catalogue):
    pending = entry(TAX, "pending", TAX_BASIS)
    fx = materialize(catalogue, [Rebase(pending, ())], subjects(), {}, NOW, TODAY)
    assert fx.changed_entries[0].basis == ()
    assert fx.list_changes == []


def issued_for(catalogue, active: Entry):
    """The notices an entry's publication sent, as the store would hand them back."""
    fx = materialize(catalogue, [Activate(replace(active, status="pending"))],
                     subjects(archived()), {}, NOW - timedelta(days=30), TODAY)
    return {active.entry_id: [(agency, n) for agency, n, _ in fx.notices]}


def exit_active(catalogue):
    active = entry()
    issued = issued_for(catalogue, active)
    fx = materialize(catalogue, [Exit(active, "basis_withdrawn")], subjects(archived()),
                     issued, NOW, TODAY)
    return active, issued, fx


def test_exit_of_an_active_entry_deletes_it_from_the_list(catalogue):
    active, _, fx = exit_active(catalogue)
    [exited] = fx.changed_entries
    assert (exited.status, exited.until, exited.exit_reason) == ("exited", TODAY,
                                                                 "basis_withdrawn")
    [change] = fx.list_changes
    assert (change.op, change.entry_id) == ("DEL", active.entry_id)


def test_exit_revokes_every_issued_notice(catalogue):
    """CONTRACT.md line 119: a revocation has its own notice_id and names what it revokes."""
    _, issued, fx = exit_active(catalogue)
    originals = {n.notice_id: (agency, n) for agency, n in issued["entry-1"]}
    assert len(fx.notices) == len(originals) == 5
    for agency, revocation, _ in fx.notices:
        assert revocation.kind == "revocation"
        assert revocation.revokes in originals
        original_agency, original = originals[revocation.revokes]
        assert agency == original_agency
        assert revocation.measure == original.measure
        assert revocation.notice_id != original.notice_id
        assert revocation.effective_from == TODAY
        assert revocation.effective_until is None
        assert revocation.issued_at == NOW
    assert {r.revokes for _, r, _ in fx.notices} == set(originals)


def test_revocation_ids_are_distinct_and_stable(catalogue):
    _, _, first = exit_active(catalogue)
    _, _, again = exit_active(catalogue)
    ids = [n.notice_id for _, n, _ in first.notices]
    assert len(set(ids)) == len(ids)
    assert ids == [n.notice_id for _, n, _ in again.notices]


def test_exit_of_a_pending_entry_is_cancelled_silently(catalogue):
    pending = entry(TAX, "pending", TAX_BASIS)
    fx = materialize(catalogue, [Exit(pending, "basis_withdrawn")], subjects(), {}, NOW, TODAY)
    [cancelled] = fx.changed_entries
    assert (cancelled.status, cancelled.exit_reason) == ("cancelled", "basis_withdrawn")
    assert fx.list_changes == []
    assert fx.notices == []


@pytest.mark.parametrize(("day", "years", "expected"), [
    (date(2024, 2, 29), 1, date(2025, 2, 28)),
    (date(2024, 2, 29), 4, date(2028, 2, 29)),
    (date(2026, 11, 28), 2, date(2028, 11, 28)),
])
def test_add_years(day, years, expected):
    assert add_years(day, years) == expected


# --- what the public sees -----------------------------------------------------------------


def test_public_records_show_public_records_in_force(catalogue):
    [shown] = public_records(catalogue, ENTERPRISE, [archived(document_no="（2026）粤04执1号")],
                             TODAY)
    assert shown == {
        "department": "court", "record_id": "R-1", "catalogue_item": COURT,
        "item_name": "失信被执行人", "polarity": "negative",
        "document_no": "（2026）粤04执1号", "decided_on": "2026-06-01", "disputed": False,
        "disputed_since": None, "public_until": "2029-06-01",
        # Archived before provenance was kept: the revision without its event.
        "provenance": {"department": "court", "record_id": "R-1", "revision": 1,
                       "event_id": None, "received_at": None}}


def test_public_records_hide_internal_items(catalogue):
    """CONTRACT.md line 126: only what the catalogue marks public."""
    internal = archived("staffing.report_overdue", public_until=date(2030, 1, 1))
    assert public_records(catalogue, ENTERPRISE, [internal], TODAY) == []


@pytest.mark.parametrize("status", ["withdrawn", "repaired"])
def test_public_records_hide_records_no_longer_in_force(catalogue, status):
    assert public_records(catalogue, ENTERPRISE, [archived(status=status)], TODAY) == []


def test_public_records_hide_records_past_their_period(catalogue):
    """CONTRACT.md line 127: only within its disclosure period."""
    assert public_records(catalogue, ENTERPRISE, [archived(public_until=TODAY - timedelta(days=1))],
                          TODAY) == []
    assert len(public_records(catalogue, ENTERPRISE, [archived(public_until=TODAY)], TODAY)) == 1


def test_public_records_pass_the_dispute_flag_through(catalogue):
    """CONTRACT.md line 164: the record is flagged disputed in the public profile."""
    [shown] = public_records(catalogue, ENTERPRISE, [archived(disputed=True)], TODAY)
    assert shown["disputed"] is True


def test_public_records_newest_first(catalogue):
    records = [archived(record_id="old", decided_on=date(2025, 1, 1)),
               archived(record_id="new", decided_on=date(2026, 1, 1))]
    shown = public_records(catalogue, ENTERPRISE, records, TODAY)
    assert [r["record_id"] for r in shown] == ["new", "old"]


def test_public_subject_masks_individuals():
    """CONTRACT.md, public query site: the first 6 characters and the check character."""
    shown = public_subject(PERSON)
    assert shown == {"type": "individual", "id": PERSON_ID[:6] + "*" * 11 + PERSON_ID[-1],
                     "name": PERSON.name}


def test_public_subject_shows_organizations_in_full():
    assert public_subject(ENTERPRISE)["id"] == ENTERPRISE.id


def test_organizations_are_always_discoverable(catalogue):
    assert is_discoverable(catalogue, snapshot(ENTERPRISE, []), TODAY)
    assert discoverable_until(catalogue, snapshot(ENTERPRISE, [])) == date.max


def test_individual_is_discoverable_only_while_something_is_public(catalogue):
    assert is_discoverable(catalogue, snapshot(PERSON, [archived()]), TODAY)
    assert not is_discoverable(catalogue, snapshot(PERSON, []), TODAY)
    assert not is_discoverable(catalogue, snapshot(PERSON, [archived(status="withdrawn")]),
                               TODAY)
    expired = archived(public_until=TODAY - timedelta(days=1))
    assert not is_discoverable(catalogue, snapshot(PERSON, [expired]), TODAY)


def test_a_person_is_found_until_the_end_of_their_last_public_record(catalogue):
    """Stored with the snapshot: search stops finding them that day, with no new snapshot."""
    records = [archived(record_id="a", public_until=date(2027, 1, 1)),
               archived(record_id="b", public_until=date(2028, 1, 1)),
               archived("staffing.report_overdue", record_id="internal",
                        public_until=date(2035, 1, 1)),
               archived(record_id="gone", status="withdrawn", public_until=date(2033, 1, 1))]
    until = discoverable_until(catalogue, snapshot(PERSON, records))
    assert until == date(2028, 1, 1)
    assert is_discoverable(catalogue, snapshot(PERSON, records), until)
    assert not is_discoverable(catalogue, snapshot(PERSON, records), until + timedelta(days=1))
    assert discoverable_until(catalogue, snapshot(PERSON, records[2:])) is None


def test_public_records_never_show_a_record_about_a_minor(catalogue):
    young = archived("hrss.wage_arrears", record_id="young", decided_on=date(2026, 6, 1))
    adult = archived("hrss.wage_arrears", record_id="adult", decided_on=date(2028, 6, 1),
                     public_until=date(2031, 6, 1))
    assert public_records(catalogue, MINOR, [young], TODAY) == []
    shown = public_records(catalogue, MINOR, [young, adult], date(2028, 7, 1))
    assert [r["record_id"] for r in shown] == ["adult"]


def test_a_person_with_only_records_from_their_minority_cannot_be_found(catalogue):
    young = archived("hrss.wage_arrears", decided_on=date(2026, 6, 1))
    assert discoverable_until(catalogue, snapshot(MINOR, [young])) is None
    assert not is_discoverable(catalogue, snapshot(MINOR, [young]), TODAY)


def test_the_minor_rule_does_not_hide_organizations(catalogue):
    """An enterprise's code has no birth date: the rule is about individuals only."""
    assert len(public_records(catalogue, ENTERPRISE, [archived()], TODAY)) == 1


# --- what the public sends ----------------------------------------------------------------


@pytest.mark.parametrize("seq", [0, 1, 42, MAX_SEQ])
def test_cursor_round_trips(seq):
    assert decode_cursor(encode_cursor(seq)) == seq


def test_no_cursor_starts_at_the_beginning():
    assert decode_cursor(None) == 0
    assert decode_cursor("") == 0


def raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("text", [
    "v1:99999999999999999999", f"v1:{MAX_SEQ + 1}", "v1:-1", "v1:+5", "v1: 5", "v1:1_000",
    "v1:", "v1:٣", "v2:5", "5", "v1:5:6"])
def test_a_cursor_outside_bigint_or_not_plain_digits_is_refused(text):
    with pytest.raises(ValueError):
        decode_cursor(raw_cursor(text))


@pytest.mark.parametrize("cursor", ["not-a-cursor", "\x00", "%00", "é", "A" * 65,
                                    raw_cursor("v1:" + "9" * 5000)])
def test_anything_that_is_not_a_cursor_is_refused(cursor):
    with pytest.raises(ValueError):
        decode_cursor(cursor)


def test_control_characters_are_named():
    assert control_characters("a\x00b\x1bc") == ["U+0000", "U+001B"]
    assert control_characters("珠海 格力") == []
    assert control_characters("line\nbreak", allowed="\n") == []


# --- name search --------------------------------------------------------------------------


def test_normalize_name_folds_traditional_to_simplified():
    """DOMAIN.md lines 103-104: searching matches either script."""
    assert normalize_name("珠海格力電器有限公司", to_simplified) == "珠海格力电器有限公司"
    assert normalize_name("橫琴萬山", to_simplified) == normalize_name("横琴万山", to_simplified)


def test_normalize_name_removes_spaces_and_brackets():
    assert normalize_name("珠海 格力（集團）　有限公司", to_simplified) == "珠海格力集团有限公司"
    assert normalize_name("Gree (Zhuhai) Co.", to_simplified) == "greezhuhaico"


@pytest.mark.parametrize("name", ["珠海【格力】电器", "珠海[格力]电器", "珠海〔格力〕电器"])
def test_normalize_name_removes_square_brackets(name):
    """A fragment across the bracket (珠海格力) must still find the name."""
    normalized = normalize_name(name, to_simplified)
    assert normalized == "珠海格力电器"
    assert set(query_grams("珠海格力")) <= set(name_grams(normalized))


def test_normalize_name_lower_cases():
    assert normalize_name("ABC", to_simplified) == "abc"


def test_name_grams_are_characters_and_bigrams():
    assert name_grams("格力电器") == sorted(
        {"格", "力", "电", "器", "格力", "力电", "电器"})
    assert name_grams("") == []


def test_query_grams():
    assert query_grams("格力") == ["格力"]
    assert query_grams("格力电") == ["力电", "格力"]
    assert query_grams("格") == ["格"]
    assert query_grams("") == []


def test_every_fragment_of_a_name_finds_it():
    """DOMAIN.md lines 107-111: any fragment's grams are among the name's grams."""
    name = normalize_name("珠海格力電器股份有限公司", to_simplified)
    grams = set(name_grams(name))
    for start in range(len(name)):
        for end in range(start + 1, len(name) + 1):
            assert set(query_grams(name[start:end])) <= grams, name[start:end]
    assert not set(query_grams("美的")) <= grams


def test_normalize_name_folds_full_width_letters():
    assert normalize_name("ＡＢＣ贸易１号", to_simplified) == "abc贸易1号"


def test_a_notice_awaits_feedback_until_it_is_applied_or_not_applicable() -> None:
    """The gauge's triggers (migration 096) name the one status that does not close a
    notice, besides none: the contract's others close it."""
    statuses = set(typing.get_args(NoticeFeedback.model_fields["status"].annotation))
    assert statuses - set(domain.FEEDBACK_CLOSING) == {"received"}

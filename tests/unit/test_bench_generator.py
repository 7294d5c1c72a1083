"""The synthetic Zhuhai of `bench generate`: valid identifiers (checked by python-stdnum, an
implementation independent of ours), deterministic by seed, the city's proportions, and
records ingest accepts."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from functools import cache

import pytest
from stdnum.cn import ric, uscc

from bench.generator import CATEGORIES, YEARS, City, Submission, add_years
from services.ingest import domain
from shared.catalogue import load_catalogue
from shared.envelope import submission_json

AS_OF = date(2026, 11, 27)
SUBJECTS = 6000


@cache
def city(seed: int = 11, subjects: int = SUBJECTS) -> tuple[City, tuple[Submission, ...]]:
    c = City(seed, AS_OF)
    return c, tuple(c.stream(subjects=subjects, block=1000))


def subjects_of(subs: tuple[Submission, ...]) -> dict[str, dict[str, str]]:
    return {s.key: s.data["subject"] for s in subs}


def test_every_identifier_passes_python_stdnum() -> None:
    _, subs = city()
    checked = 0
    for s in subs:
        subject = s.data["subject"]
        if subject["type"] == "individual":
            assert ric.is_valid(subject["id"]), subject
        else:
            assert uscc.is_valid(subject["id"]), subject
        person = s.data.get("attributes", {}).get("legal_representative")
        if person is not None:
            assert ric.is_valid(person["id"]), person
            checked += 1
    assert checked > 1000  # legal representatives were checked too


def test_identifiers_are_unique_and_name_one_subject_each() -> None:
    _, subs = city()
    subjects = subjects_of(subs)
    assert len(subjects) == SUBJECTS
    names_by_id: dict[str, set[str]] = {}
    for s in subs:
        names_by_id.setdefault(s.data["subject"]["id"], set()).add(s.data["subject"]["name"])
        person = s.data.get("attributes", {}).get("legal_representative")
        if person is not None:
            names_by_id.setdefault(person["id"], set()).add(person["name"])
    assert all(len(names) == 1 for names in names_by_id.values())
    record_ids = Counter((s.department, s.data["record_id"]) for s in subs
                         if s.data["action"] == "upsert")
    assert max(record_ids.values()) == 1


def test_codes_carry_their_category_and_a_zhuhai_division() -> None:
    _, subs = city()
    for subject in subjects_of(subs).values():
        if subject["type"] == "individual":
            assert subject["id"][:6] in {"440400", "440402", "440403", "440404", "440421"}
        else:
            expected = {"enterprise": ("91", "92", "93"), "institution": ("12",),
                        "social_org": ("51", "52", "53")}[subject["type"]]
            assert subject["id"][:2] in expected
            assert subject["id"][2:8] in {"440400", "440402", "440403", "440404"}


def test_same_seed_same_city_other_seed_other_city() -> None:
    first = list(City(5, AS_OF).stream(subjects=500))
    again = list(City(5, AS_OF).stream(subjects=500))
    other = list(City(6, AS_OF).stream(subjects=500))
    assert [(s.department, s.data, s.event_id) for s in first] == \
        [(s.department, s.data, s.event_id) for s in again]
    assert {s.key for s in first}.isdisjoint({s.key for s in other})


def test_a_stream_cut_by_submissions_is_the_start_of_the_whole_stream() -> None:
    whole = list(City(5, AS_OF).stream(subjects=300, block=100))
    cut = list(City(5, AS_OF).stream(submissions=400, block=100))
    assert len(cut) == 400
    assert [s.event_id for s in cut] == [s.event_id for s in whole[:400]]


def test_proportions_of_subject_types_are_the_citys() -> None:
    _, subs = city()
    types = Counter(subject["type"] for subject in subjects_of(subs).values())
    expected: Counter[str] = Counter()
    for subject_type, _, share in CATEGORIES:
        expected[subject_type] += share
    for subject_type, share in expected.items():
        assert types[subject_type] / SUBJECTS == pytest.approx(share, abs=0.02 + share / 4), \
            subject_type
    assert types["individual"] > 0 and types["institution"] > 0 and types["social_org"] > 0


def test_about_three_records_a_subject_over_every_catalogue_item_and_five_years() -> None:
    c, subs = city()
    upserts = [s for s in subs if s.data["action"] == "upsert"]
    assert 2.5 <= len(upserts) / SUBJECTS <= 3.5
    generated = {name for name, item in c.catalogue.items.items()
                 if item.commitment is None and item.subject_types != ("government",)}
    assert {s.data["catalogue_item"] for s in upserts} == generated
    days = [date.fromisoformat(s.data["decided_on"]) for s in upserts]
    # Not on the window's first day: a person's negative record decided then is erased on
    # AS_OF (5 years after the act), and ingest refuses it.
    assert min(days) > add_years(AS_OF, -YEARS) and max(days) < AS_OF
    assert all(d.weekday() < 5 for d in days)
    years = Counter(d.year for d in days)
    assert years[AS_OF.year - 1] > years[AS_OF.year - YEARS]  # the archive grows


def test_a_realistic_share_is_listed() -> None:
    c, _ = city()
    listed = c.tally.listed
    share = {name: count / SUBJECTS for name, count in listed.items()}
    # The city has no government bodies (bench/generator.py), so no defaulting bodies.
    assert set(share) == set(c.catalogue.lists) - {"supervision.defaulting_bodies"}
    assert 0.02 <= share["court.dishonest_debtor"] <= 0.10
    assert 0.02 <= share["tax.a_grade"] <= 0.10
    assert all(share[n] < 0.02 for n in ("tax.major_violation", "hrss.wage_arrears",
                                         "customs.advanced_certified"))


def test_individuals_have_namesakes_and_organizations_do_not() -> None:
    _, subs = city()
    subjects = subjects_of(subs).values()
    people = [s["name"] for s in subjects if s["type"] == "individual"]
    organizations = [s["name"] for s in subjects if s["type"] != "individual"]
    assert len(set(people)) < 0.95 * len(people)
    assert len(set(organizations)) == len(organizations)
    assert any(n.endswith("有限公司") for n in organizations)
    assert any(n.endswith("商会") for n in organizations)
    assert any("协会" in n for n in organizations)


@pytest.mark.parametrize("as_of", [date(2026, 12, 1), date(2027, 3, 1)])
def test_nothing_is_decided_on_the_day_a_five_year_old_act_is_erased(as_of: date) -> None:
    """Five years before the city's day, a weekday here: a person's negative record decided
    then is erased that day (征信业管理条例 art. 16) and ingest refuses it, so a city
    generated for that day would lose it (and, where it was a subject's only record, the
    subject)."""
    subs = City(5, as_of).stream(subjects=SUBJECTS, block=1000)
    days = [date.fromisoformat(s.data["decided_on"]) for s in subs
            if s.data["action"] == "upsert"]
    assert min(days) > add_years(as_of, -YEARS)


def test_ingest_accepts_every_generated_submission() -> None:
    catalogue = load_catalogue()
    _, subs = city()
    for s in subs:
        parsed = domain.parse_message(submission_json(s.department, s.data, s.event_id))
        assert parsed.submission is not None and not parsed.errors, (s, parsed.errors)
        errors = (domain.check_envelope(parsed.event, s.department, parsed.submission)  # type: ignore[arg-type]
                  + domain.check_submission(catalogue, s.department, parsed.submission, AS_OF))
        assert not errors, (s.data, errors)


def test_dishonest_debtors_are_adults_on_the_decision_date() -> None:
    _, subs = city()
    births = {s.key: date(int(s.data["subject"]["id"][6:10]), int(s.data["subject"]["id"][10:12]),
                          int(s.data["subject"]["id"][12:14]))
              for s in subs if s.data["subject"]["type"] == "individual"}
    debts = [s for s in subs if s.data.get("catalogue_item") == "court.dishonest_debtor"
             and s.key in births]
    assert debts
    for s in debts:
        assert date.fromisoformat(s.data["decided_on"]) > add_years(births[s.key], 18)


def test_a_withdrawal_follows_its_record_in_the_stream() -> None:
    _, subs = city()
    position = {}
    for n, s in enumerate(subs):
        rid = (s.department, s.data["record_id"])
        if s.data["action"] == "upsert":
            position[rid] = n
        else:
            assert position[rid] < n
            assert s.sent_on > date.fromisoformat(subs[position[rid]].data["decided_on"]) \
                - timedelta(days=1)

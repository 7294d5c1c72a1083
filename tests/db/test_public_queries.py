"""The public site's queries on the publisher's real database (rolled back): name search by
both paths (every match ranked, for rare fragments; a fixed order read a page at a time, for
broad ones), the exact code, paging by one more row, folding of traditional characters, the
profile in one statement, list pages without a count, and the gram statistics the choice
between the paths reads."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest

from services.publisher import domain, store
from services.publisher.handlers import apply_snapshots
from shared.catalogue import Catalogue
from shared.contract import SubjectRef
from shared.identifiers import normalize_identifier
from tests.db.conftest import OpenTransaction
from tests.unit.factories import archived, resident_id, snapshot, uscc

pytestmark = pytest.mark.db

TODAY = date(2026, 7, 1)
PAGE = 20


def firm(n: int, name: str, kind: str = "enterprise") -> SubjectRef:
    prefix = {"enterprise": "91440400MA", "social_org": "51440400MJ",
              "institution": "1244040045"}[kind]
    return SubjectRef(type=kind, id=uscc(f"{prefix}{n:07d}")[:18], name=name)


async def stored(conn: asyncpg.Connection, catalogue: Catalogue,
                 subjects: list[SubjectRef]) -> None:
    await apply_snapshots(conn, catalogue, [snapshot(s, []) for s in subjects])


async def ranked(conn: asyncpg.Connection, q: str, page: int = 1,
                 subject_type: str | None = None) -> list[asyncpg.Record]:
    norm = domain.normalize_name(q)
    return await store.search_ranked(conn, norm, domain.query_grams(norm),
                                     normalize_identifier(q), subject_type, TODAY, PAGE + 1,
                                     (page - 1) * PAGE)


async def in_order(conn: asyncpg.Connection, q: str, page: int = 1,
                   subject_type: str | None = None) -> list[asyncpg.Record]:
    return await store.search_in_order(conn, domain.normalize_name(q),
                                       normalize_identifier(q), subject_type, TODAY,
                                       PAGE + 1, (page - 1) * PAGE)


def names(rows: list[asyncpg.Record]) -> list[str]:
    return [r["name"] for r in rows]


async def test_a_rare_fragment_is_ranked_by_where_it_starts_then_by_length(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    subjects = [firm(1, "珠海格力电器股份有限公司"), firm(2, "珠海格力集团有限公司"),
                firm(3, "格力电器"), firm(4, "格力"), firm(5, "珠海华发实业股份有限公司")]
    await stored(conn, catalogue, subjects)
    assert names(await ranked(conn, "格力")) == [
        "格力", "格力电器", "珠海格力集团有限公司", "珠海格力电器股份有限公司"]
    # The same subjects by the ordered path: the equal name first, the others in the fixed
    # order (MD5 of the subject key).
    others = sorted(subjects[:3], key=lambda s: domain.search_order_key(s.key))
    assert names(await in_order(conn, "格力")) == ["格力", *[s.name for s in others]]


async def test_the_subject_whose_code_is_the_query_comes_first_on_both_paths(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    target = firm(7, "珠海某某有限公司")
    await stored(conn, catalogue, [target, firm(8, "珠海某某某有限公司")])
    for search in (ranked, in_order):
        rows = await search(conn, target.id)
        assert [r["id"] for r in rows] == [target.id], search.__name__
        # Full-width digits and a lower-case letter are the same code.
        wide = target.id.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"}).lower()
        assert [r["id"] for r in await search(conn, wide)] == [target.id]


async def test_a_broad_fragment_pages_through_every_match_once_in_the_fixed_order(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    matching = [firm(100 + i, f"珠海{chr(0x4E00 + i)}{chr(0x4E80 + i)}贸易有限公司")
                for i in range(55)]
    await stored(conn, catalogue, [*matching, firm(99, "珠海市某协会", "social_org")])
    expected = [s.key for s in sorted(matching, key=lambda s: domain.search_order_key(s.key))]
    pages = [await in_order(conn, "有限公司", page) for page in (1, 2, 3)]
    # One row more than a page: 21 on the first two pages (another page follows), then 15.
    assert [len(p) for p in pages] == [PAGE + 1, PAGE + 1, 15]
    seen = [r["subject_key"] for p in pages for r in p[:PAGE]]
    assert seen == expected
    # The ranked path finds the same subjects (in its own order).
    ranked_pages = [await ranked(conn, "有限公司", page) for page in (1, 2, 3)]
    assert sorted(r["subject_key"] for p in ranked_pages for r in p[:PAGE]) == sorted(expected)
    assert names(ranked_pages[0])[:1] == [min((s.name or "" for s in matching), key=len)]


async def test_traditional_and_simplified_find_each_other_on_both_paths(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    traditional = firm(20, "珠海華發實業股份有限公司")
    simplified = firm(21, "珠海华发商都有限公司")
    await stored(conn, catalogue, [traditional, simplified])
    for search in (ranked, in_order):
        for q in ("华发", "華發", "華发"):
            assert sorted(names(await search(conn, q))) == sorted(
                [traditional.name, simplified.name]), (search.__name__, q)
        assert names(await search(conn, "實業")) == [traditional.name]


async def test_the_type_filter_holds_on_both_paths(tx: OpenTransaction,
                                                   catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    await stored(conn, catalogue, [firm(30, "珠海市律师协会", "social_org"),
                                   firm(31, "珠海律师事务有限公司")])
    for search in (ranked, in_order):
        assert names(await search(conn, "律师", subject_type="social_org")) == ["珠海市律师协会"]
        assert names(await search(conn, "律师", subject_type="institution")) == []


async def test_a_person_is_found_by_name_only_while_something_about_them_is_public(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    shown = SubjectRef(type="individual", id=resident_id(sequence=311), name="欧阳明")
    hidden = SubjectRef(type="individual", id=resident_id(sequence=312), name="欧阳明")
    await apply_snapshots(conn, catalogue, [
        snapshot(shown, [archived("hrss.wage_arrears", public_until=date(2027, 1, 1))]),
        snapshot(hidden, [archived("hrss.wage_arrears", public_until=date(2026, 1, 1))])])
    for search in (ranked, in_order):
        rows = await search(conn, "欧阳明")
        assert [r["id"] for r in rows] == [shown.id], search.__name__
        # A person's snapshot comes with the hit, for the full rule; an organization's not.
        assert rows[0]["person_snapshot"] is not None


async def test_a_hit_carries_its_active_lists(tx: OpenTransaction,
                                              catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    debtor = firm(40, "珠海失信测试有限公司")
    await apply_snapshots(conn, catalogue, [snapshot(debtor, [archived()])])
    for search in (ranked, in_order):
        rows = await search(conn, "失信测试")
        assert [(r["name"], list(r["lists"])) for r in rows] == [
            (debtor.name, ["court.dishonest_debtor"])]
        assert rows[0]["person_snapshot"] is None


async def test_a_profile_is_its_snapshot_and_active_lists_in_one_statement(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    debtor = firm(50, "珠海档案测试有限公司")
    await apply_snapshots(conn, catalogue, [snapshot(debtor, [archived()])])
    found = await store.profile(conn, debtor.key)
    assert found is not None
    text, lists = found
    assert '"珠海档案测试有限公司"' in text
    assert [(m.list, m.until is not None) for m in lists] == [("court.dishonest_debtor", True)]
    # With the records it rests on: a profile shows a listed record as long as the listing.
    assert lists[0].basis == {(r.department, r.record_id) for r in [archived()]}
    assert await store.profile(conn, "enterprise:nobody") is None


async def test_a_list_page_reads_one_row_more_and_the_size_separately(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    listed = [firm(200 + i, f"珠海名单{i:02d}有限公司") for i in range(25)]
    await apply_snapshots(conn, catalogue, [snapshot(s, [archived()]) for s in listed])
    name = "court.dishonest_debtor"
    first = await store.list_members(conn, name, PAGE + 1, 0)
    second = await store.list_members(conn, name, PAGE + 1, PAGE)
    assert (len(first), len(second)) == (PAGE + 1, 5)
    ids = [r["id"] for r in first[:PAGE]] + [r["id"] for r in second]
    assert sorted(ids) == sorted(s.id for s in listed)
    assert [r["since"] for r in first] == sorted((r["since"] for r in first), reverse=True)
    assert await store.list_size(conn, name) == 25


async def test_gram_statistics_give_each_common_gram_its_share_of_names(
        tx: OpenTransaction, catalogue: Catalogue) -> None:
    conn = await tx("publisher")
    assert await store.gram_statistics(conn) == domain.GramStatistics()  # never analyzed
    firms = [firm(300 + i, f"珠海{chr(0x4E00 + i)}{chr(0x4F00 + i)}有限公司") for i in range(90)]
    people = [SubjectRef(type="individual", id=resident_id(sequence=400 + i), name="黄志强")
              for i in range(10)]
    await stored(conn, catalogue, firms)
    await apply_snapshots(conn, catalogue, [
        snapshot(p, [archived("hrss.wage_arrears", record_id=f"w{i}")])
        for i, p in enumerate(people)])
    await conn.execute("ANALYZE subjects")  # rolled back with the test
    stats = await store.gram_statistics(conn)
    assert stats.subjects == pytest.approx(100, abs=1)
    assert stats.gram_shares["有限"] == pytest.approx(0.9, abs=0.01)
    assert stats.gram_shares["志强"] == pytest.approx(0.1, abs=0.01)
    assert stats.type_shares["individual"] == pytest.approx(0.1, abs=0.01)
    assert domain.estimated_matches(stats, domain.query_grams("有限公司"), None) \
        == pytest.approx(90, abs=2)
    assert domain.estimated_matches(stats, domain.query_grams("有限公司"), "individual") \
        == pytest.approx(9, abs=1)

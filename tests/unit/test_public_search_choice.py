"""How the public search chooses its path (services/publisher/domain.py): the bigram index
ranking every match for a query few names match, the fixed order read a page at a time for
one most names match; and the fixed order itself."""

from __future__ import annotations

import hashlib
import itertools

from services.publisher import domain
from services.publisher.domain import GramStatistics, estimated_matches, search_in_fixed_order

# A city of a million: 珠海 and 有限公司 in most names, 科技 in a fifth, 格力 in a handful.
CITY = GramStatistics(
    subjects=1_000_000,
    gram_shares={"珠海": 0.85, "有限": 0.80, "限公": 0.80, "公司": 0.81, "科技": 0.2,
                 "王": 0.01, "格力": 0.00002, "海格": 0.00001},
    type_shares={"enterprise": 0.89, "individual": 0.10, "institution": 0.004})
FIRST_PAGE = 21


def grams(q: str) -> list[str]:
    return domain.query_grams(domain.normalize_name(q))


def test_the_estimate_is_the_rarest_gram_times_the_subjects() -> None:
    assert estimated_matches(CITY, grams("有限公司"), None) == 800_000
    assert estimated_matches(CITY, grams("珠海格力"), None) == 10  # 海格 is the rarest
    assert estimated_matches(CITY, grams("有限公司"), "institution") == 3_200


def test_a_gram_the_statistics_do_not_list_is_rarer_than_all_they_list() -> None:
    assert estimated_matches(CITY, grams("魑魅"), None) == 0
    assert estimated_matches(CITY, grams("珠海魑魅"), None) == 0


def test_broad_fragments_walk_the_fixed_order_and_rare_ones_take_the_index() -> None:
    for broad in ("珠海", "有限公司", "科技"):
        assert search_in_fixed_order(CITY, grams(broad), None, FIRST_PAGE), broad
    for rare in ("格力", "珠海格力", "魑魅"):
        assert not search_in_fixed_order(CITY, grams(rare), None, FIRST_PAGE), rare


def test_deep_pages_and_narrow_types_tip_a_middling_fragment_to_the_index() -> None:
    # 王 (10,000 names): the first page costs about 2,100 entries in order, 10,000 by index.
    assert search_in_fixed_order(CITY, grams("王"), None, FIRST_PAGE)
    assert not search_in_fixed_order(CITY, grams("王"), None, 500 * 20 + 1)
    # The same broad fragment among institutions only: 3,200 matches, a page in order visits
    # about 6,500 entries.
    assert search_in_fixed_order(CITY, grams("有限公司"), "enterprise", FIRST_PAGE)
    assert not search_in_fixed_order(CITY, grams("有限公司"), "institution", 500 * 20 + 1)


def test_without_statistics_every_query_takes_the_index() -> None:
    for q in ("珠海", "有限公司", "格力"):
        assert not search_in_fixed_order(GramStatistics(), grams(q), None, FIRST_PAGE)
    assert not search_in_fixed_order(CITY, [], None, FIRST_PAGE)


def test_the_fixed_order_is_the_md5_of_the_subject_key() -> None:
    key = "enterprise:91440400MA4W8KXX0X"
    assert domain.search_order_key(key) == hashlib.md5(key.encode()).hexdigest()[:8] + key
    keys = [f"enterprise:{n:018d}" for n in range(1000)]
    ordered = sorted(keys, key=domain.search_order_key)
    # Scattered: the keys' own order says nothing about the fixed order.
    assert ordered != keys
    assert sum(a < b for a, b in itertools.pairwise(ordered)) < 600

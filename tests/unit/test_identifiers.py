"""shared/identifiers.py: GB 32100-2015 unified social credit codes and GB 11643-1999
resident identity numbers (DOMAIN.md, "Identifiers", lines 6-32)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from deploy.demo import DISTRICTS, make_resident_id, make_uscc
from shared.identifiers import (
    USCC_ALPHABET,
    USCC_WEIGHTS,
    age_on,
    check_resident_id,
    check_uscc,
    is_minor_on,
    mask_resident_id,
    org_code_check_character,
    parse_birth_date,
    uscc_check_character,
)
from tests.unit.factories import (
    ID_CHECK,
    KNOWN_IDS,
    KNOWN_USCC,
    LEGACY_USCC,
    other_check_char,
    resident_id,
    uscc,
    uscc_check,
)

TODAY = date(2026, 11, 28)


def codes(errors: list) -> list[str]:
    return [e.code for e in errors]


# --- GB 32100 unified social credit code ------------------------------------------------


def test_uscc_alphabet_has_31_symbols_without_i_o_s_v_z():
    """DOMAIN.md line 12: 0-9 and A-Z without I, O, S, V, Z, i.e. 31 symbols."""
    assert len(USCC_ALPHABET) == 31
    assert not set("IOSVZ") & set(USCC_ALPHABET)


def test_uscc_weights_are_powers_of_three_mod_31():
    """DOMAIN.md line 14: weights 1,3,9,27,19,26,16,17,20,29,25,13,8,24,10,30,28."""
    assert USCC_WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def test_known_valid_uscc_passes():
    """DOMAIN.md line 16: known valid 91110000600037341L."""
    assert check_uscc(KNOWN_USCC) == []
    assert uscc_check_character(KNOWN_USCC[:17]) == "L"


@pytest.mark.parametrize("wrong", ["0", "1", "K", "Y"])
def test_uscc_wrong_check_character_is_checksum_error(wrong):
    assert codes(check_uscc(KNOWN_USCC[:17] + wrong)) == ["checksum"]


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_uscc_letters_outside_the_alphabet_are_alphabet_errors(letter):
    """DOMAIN.md line 12: I, O, S, V, Z are not GB 32100 symbols."""
    code = KNOWN_USCC[:10] + letter + KNOWN_USCC[11:]
    errors = check_uscc(code)
    assert codes(errors) == ["alphabet"]
    assert letter in errors[0].message


def test_uscc_lower_case_is_outside_the_alphabet():
    assert codes(check_uscc(KNOWN_USCC.lower())) == ["alphabet"]


@pytest.mark.parametrize("code", ["", KNOWN_USCC[:17], KNOWN_USCC + "0", "91110000"])
def test_uscc_wrong_length_is_length_error(code):
    assert codes(check_uscc(code)) == ["length"]


@pytest.mark.parametrize(
    ("category", "subject_type"),
    [("91", "enterprise"), ("92", "enterprise"), ("93", "enterprise"),
     ("12", "institution"), ("51", "social_org"), ("52", "social_org"), ("53", "social_org")],
)
def test_uscc_category_maps_to_subject_type(category, subject_type):
    """DOMAIN.md lines 17-21: enterprise 91/92/93, institution 12, social_org 51/52/53."""
    code = uscc(category + "440400" + "MA4W8KXX0")
    assert check_uscc(code, subject_type) == []


@pytest.mark.parametrize("subject_type", ["institution", "social_org", "individual"])
def test_uscc_enterprise_code_given_as_another_type_is_category_error(subject_type):
    errors = check_uscc(KNOWN_USCC, subject_type)
    assert codes(errors) == ["category"]
    assert "91" in errors[0].message


@pytest.mark.parametrize("category", ["11", "13", "21", "94", "59"])
def test_uscc_unmapped_category_is_category_error_for_any_subject_type(category):
    code = uscc(category + KNOWN_USCC[2:17])
    assert codes(check_uscc(code, "enterprise")) == ["category"]
    assert check_uscc(code) == []  # without a subject type only the checksum counts


def test_uscc_category_and_checksum_errors_are_both_reported():
    wrong = other_check_char(KNOWN_USCC, USCC_ALPHABET)
    assert sorted(codes(check_uscc(wrong, "institution"))) == ["category", "checksum"]


def test_legacy_code_fails_the_checksum_when_not_allowed():
    """DOMAIN.md line 22: 91350100M0001TGQXM fails the checksum."""
    assert codes(check_uscc(LEGACY_USCC)) == ["checksum"]


def test_legacy_allow_list_skips_only_the_checksum():
    """DOMAIN.md lines 22-23: a documented allow-list, never a silent bypass."""
    allowed = frozenset({LEGACY_USCC})
    assert check_uscc(LEGACY_USCC, "enterprise", allowed) == []
    assert check_uscc(LEGACY_USCC, legacy_allowed=allowed) == []


def test_legacy_allow_list_still_reports_category_errors():
    allowed = frozenset({LEGACY_USCC})
    assert codes(check_uscc(LEGACY_USCC, "institution", allowed)) == ["category"]


def test_legacy_allow_list_does_not_cover_other_codes():
    allowed = frozenset({LEGACY_USCC})
    wrong = other_check_char(KNOWN_USCC, USCC_ALPHABET)
    assert codes(check_uscc(wrong, "enterprise", allowed)) == ["checksum"]


@pytest.mark.parametrize("first", ["A", "N", "Y"])
def test_uscc_may_start_with_a_letter(first):
    """DOMAIN.md line 24: codes may start with a letter (A, N, Y)."""
    code = uscc(first + "1440400MA4W8KXX0")
    assert check_uscc(code) == []
    assert codes(check_uscc(other_check_char(code, USCC_ALPHABET))) == ["checksum"]


def test_uscc_letters_in_the_division_part_are_accepted():
    """DOMAIN.md line 24: do not assume the first 8 are digits."""
    code = uscc("9144A400MA4W8KXX0")
    assert check_uscc(code) == []


def test_uscc_check_character_matches_reference_on_random_bodies():
    rng = random.Random(32100)
    for _ in range(300):
        first17 = "".join(rng.choice(USCC_ALPHABET) for _ in range(17))
        assert uscc_check_character(first17) == uscc_check(first17)


# --- GB 11714 organization code ----------------------------------------------------------


def test_org_code_check_character_of_known_code():
    """DOMAIN.md line 25: weights 3,7,9,10,5,8,4,2 mod 11; 60003734 has check 1 (the org
    code inside 91110000600037341L)."""
    assert org_code_check_character("60003734") == "1"
    assert KNOWN_USCC[8:17] == "600037341"


def test_org_code_check_maps_ten_to_x_and_eleven_to_zero():
    """DOMAIN.md line 26: 10 -> X, 11 -> 0."""
    # total 0 -> 11 - 0 = 11 -> "0"; total 6*2 = 12 = 1 mod 11 -> 10 -> "X".
    assert org_code_check_character("00000000") == "0"
    assert org_code_check_character("00000006") == "X"


def test_org_code_letters_count_from_ten():
    # A=10 at the weight-2 position: 20 % 11 = 9 -> 11 - 9 = 2.
    assert org_code_check_character("0000000A") == "2"


def test_org_code_check_rejects_punctuation():
    assert org_code_check_character("6000373-") is None


# --- GB 11643 resident identity number ---------------------------------------------------


@pytest.mark.parametrize("id_number", KNOWN_IDS)
def test_known_valid_resident_ids_pass(id_number):
    """DOMAIN.md lines 30-31: 360426199101010071, 53010219200508011X."""
    assert check_resident_id(id_number, TODAY) == []


@pytest.mark.parametrize("id_number", KNOWN_IDS)
def test_resident_id_wrong_check_character_is_checksum_error(id_number):
    assert codes(check_resident_id(other_check_char(id_number, ID_CHECK), TODAY)) == ["checksum"]


@pytest.mark.parametrize("id_number", ["36042619910101007", "3604261991010100711", ""])
def test_resident_id_wrong_length_is_length_error(id_number):
    assert codes(check_resident_id(id_number, TODAY)) == ["length"]


@pytest.mark.parametrize("id_number", ["36042619910101007A", "36042619910101007x",
                                       "3604261991010A0071"])
def test_resident_id_non_digits_are_format_errors(id_number):
    assert codes(check_resident_id(id_number, TODAY)) == ["format"]


@pytest.mark.parametrize("birth", ["19990230", "19990229", "19991301", "19990100", "00000101"])
def test_resident_id_birth_date_must_be_a_real_date(birth):
    """DOMAIN.md line 31: the birth date must be a real date."""
    first17 = f"440402{birth}123"
    id_number = first17 + "0"
    assert codes(check_resident_id(id_number, TODAY)) == ["birth_date"]
    assert parse_birth_date(id_number) is None


def test_resident_id_birth_date_in_the_future_is_rejected():
    """DOMAIN.md lines 31-32: the birth date must not be in the future."""
    tomorrow = resident_id(birth=TODAY + timedelta(days=1))
    assert codes(check_resident_id(tomorrow, TODAY)) == ["birth_date"]


def test_resident_id_born_today_is_accepted():
    assert check_resident_id(resident_id(birth=TODAY), TODAY) == []


def test_resident_id_29_february_of_a_leap_year_is_real():
    assert check_resident_id(resident_id(birth=date(2000, 2, 29)), TODAY) == []


def test_resident_id_with_retired_division_still_validates():
    """DOMAIN.md line 35: 440421 is retired but old ID numbers still carry it."""
    assert check_resident_id(resident_id("440421", date(1990, 3, 3)), TODAY) == []


def test_age_on_counts_completed_years():
    birth = date(2008, 6, 15)
    assert age_on(birth, date(2026, 6, 14)) == 17
    assert age_on(birth, date(2026, 6, 15)) == 18
    assert age_on(birth, date(2026, 6, 16)) == 18


def test_age_on_29_february_birthday():
    birth = date(2008, 2, 29)
    assert age_on(birth, date(2026, 2, 28)) == 17
    assert age_on(birth, date(2026, 3, 1)) == 18


def test_mask_resident_id_keeps_the_first_6_and_the_check_character():
    """CONTRACT.md, public query site: `440402***********X` is right."""
    assert mask_resident_id("360426199101010071") == "360426***********1"
    assert mask_resident_id("53010219200508011X") == "530102***********X"
    assert mask_resident_id("44040219800101123X") == "440402***********X"


def test_masked_number_hides_the_birth_date_and_the_sequence():
    """Keeping the last 4 left only the birth date hidden: a name plus some thousand tried
    dates gave the number back. Nothing of positions 7-17 may survive."""
    id_number = resident_id(birth=date(1985, 5, 17), sequence=123)
    masked = mask_resident_id(id_number)
    assert len(masked) == 18
    assert masked[6:17] == "*" * 11
    assert "19850517" not in masked and "123" not in masked[6:]


def test_numbers_differing_only_in_birth_date_and_sequence_mask_alike():
    a = resident_id(birth=date(1960, 1, 1), sequence=1)
    b = resident_id(birth=date(1999, 12, 31), sequence=998)
    if a[-1] == b[-1]:
        assert mask_resident_id(a) == mask_resident_id(b)
    assert mask_resident_id(a)[:17] == mask_resident_id(b)[:17]


def test_mask_resident_id_hides_short_values_entirely():
    assert mask_resident_id("1234567") == "*******"
    assert mask_resident_id("") == ""
    assert mask_resident_id("12345678") == "123456*8"


# --- minors -------------------------------------------------------------------------------


def test_is_minor_on_the_day_before_the_18th_birthday_and_not_on_it():
    """民法典 第十七条: an adult from 18; counted on the record's decision date."""
    id_number = resident_id(birth=date(2008, 6, 15))
    assert is_minor_on(id_number, date(2026, 6, 14))
    assert not is_minor_on(id_number, date(2026, 6, 15))
    assert not is_minor_on(id_number, date(2030, 1, 1))
    assert is_minor_on(id_number, date(2008, 6, 15))


def test_is_minor_on_a_29_february_birthday():
    id_number = resident_id(birth=date(2008, 2, 29))
    assert is_minor_on(id_number, date(2026, 2, 28))
    assert not is_minor_on(id_number, date(2026, 3, 1))


def test_adult_born_long_ago_is_not_a_minor():
    assert not is_minor_on(KNOWN_IDS[1], date(2026, 11, 28))  # born 1920-05-08


@pytest.mark.parametrize("unreadable", [
    "", "None", "4404021985051712", "440402198502301234", "440402ABCD0517123X",
    "４４０４０２１９８５０５１７１２３X"])
def test_a_number_whose_birth_date_cannot_be_read_counts_as_a_minor(unreadable):
    """Fail closed: what cannot be shown to be an adult's is not published or linked."""
    assert is_minor_on(unreadable, date(2026, 11, 28))


# --- demo generators, property style ------------------------------------------------------


@pytest.mark.parametrize(("category", "subject_type"),
                         [("91", "enterprise"), ("12", "institution"), ("51", "social_org")])
def test_generated_usccs_validate_and_a_flipped_last_character_fails(category, subject_type):
    rng = random.Random(2026)
    for _ in range(200):
        code = make_uscc(category, rng.choice(DISTRICTS), rng)
        assert check_uscc(code, subject_type) == [], code
        assert code[17] == uscc_check(code[:17])
        assert org_code_check_character(code[8:16]) == code[16], code
        for wrong in (ch for ch in USCC_ALPHABET if ch != code[17]):
            assert codes(check_uscc(code[:17] + wrong)) == ["checksum"], code[:17] + wrong


def test_generated_resident_ids_validate_and_a_flipped_last_character_fails():
    rng = random.Random(11643)
    for _ in range(300):
        birth = date(1930, 1, 1) + timedelta(days=rng.randrange(365 * 95))
        id_number = make_resident_id(rng.choice(DISTRICTS), birth, rng.randrange(1000))
        assert check_resident_id(id_number, TODAY) == [], id_number
        assert parse_birth_date(id_number) == birth
        for wrong in (ch for ch in ID_CHECK if ch != id_number[17]):
            assert codes(check_resident_id(id_number[:17] + wrong, TODAY)) == ["checksum"]


def test_normalize_identifier_folds_full_width_and_case_and_refuses_the_rest() -> None:
    from shared.identifiers import normalize_identifier

    assert normalize_identifier("９１１１００００６０００３７３４１ｌ") == "91110000600037341L"
    assert normalize_identifier(" 36042619910101007x ") == "36042619910101007X"
    assert normalize_identifier("3604261991010100²1") == "360426199101010021"
    for bad in ("", "   ", "9111\x000000", "91110000-600037341L", "珠海", "9111 0000"):
        assert normalize_identifier(bad) is None, bad

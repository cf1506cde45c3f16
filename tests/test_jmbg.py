"""JMBG: the mod-11 check digit, the birth date, the region, sex and age; the JMBG typed for a passport."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from biometrics.documents import (
    DocumentError,
    DocumentKind,
    parse_jmbg,
    parse_typed_jmbg,
)
from biometrics.documents.jmbg import jmbg_check_digit, region_name

POLLING_DAY = dt.date(2026, 10, 4)


def with_check_digit(first12: str) -> str:
    digit = jmbg_check_digit(first12)
    assert digit is not None, first12
    return first12 + str(digit)


def test_a_valid_jmbg_gives_birth_date_region_and_sex() -> None:
    # Weighted sum of 010199017000 is 96; 96 mod 11 = 8; 11 - 8 = 3.
    jmbg = parse_jmbg("0101990170003")
    assert jmbg.birth_date == dt.date(1990, 1, 1)
    assert jmbg.region == 17
    assert jmbg.region_name == "Bosnia and Herzegovina"
    assert jmbg.born_in_bih is True
    assert jmbg.serial == 0
    assert jmbg.sex == "M"


def test_serial_500_and_above_is_female() -> None:
    assert parse_jmbg("0101990175005").sex == "F"
    assert parse_jmbg(with_check_digit("010199017499")).sex == "M"



def test_year_0xx_is_in_the_2000s() -> None:
    assert parse_jmbg("1505005150009").birth_date == dt.date(2005, 5, 15)


def test_check_value_11_gives_check_digit_0() -> None:
    # 010199017007: weighted sum 110, 110 mod 11 = 0, m = 11 -> K = 0.
    assert jmbg_check_digit("010199017007") == 0
    assert parse_jmbg("0101990170070").serial == 7


def test_check_value_10_means_no_valid_jmbg() -> None:
    # 010199017002: weighted sum 100, 100 mod 11 = 1, m = 10.
    assert jmbg_check_digit("010199017002") is None
    with pytest.raises(DocumentError, match="check value 10"):
        parse_jmbg("0101990170020")


def test_a_wrong_check_digit_names_the_value_and_the_expected_digit() -> None:
    with pytest.raises(DocumentError) as caught:
        parse_jmbg("0101990170004")
    error = caught.value
    assert error.field == "JMBG"
    assert error.value == "0101990170004"
    assert str(error) == (
        "JMBG '0101990170004' has check digit 4, the first 12 digits give 3 -- read the document again, or type the JMBG"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("010199017000", "is not 13 digits"),
        ("01019901700033", "is not 13 digits"),
        ("010199017000A", "is not 13 digits"),
        ("０101990170003", "is not 13 digits"),  # a full-width digit is not a digit here
        (with_check_digit("310299017000"), "no such birth date"),
        (with_check_digit("290200117000"), "no such birth date"),  # 2001 is not a leap year
        (with_check_digit("010150017000"), "year digits 500"),
    ],
)
def test_malformed_jmbgs_are_refused(text: str, problem: str) -> None:
    with pytest.raises(DocumentError, match=problem):
        parse_jmbg(text)


def test_29_february_of_a_leap_year_is_a_birth_date() -> None:
    assert parse_jmbg("2902000170004").birth_date == dt.date(2000, 2, 29)


def test_a_birth_after_the_polling_day_is_refused() -> None:
    # 5 January 2026 is fine, 5 December 2026 is not yet; without a day given, both parse.
    assert parse_jmbg(with_check_digit("050102617000"), POLLING_DAY).birth_date == dt.date(2026, 1, 5)
    future = with_check_digit("051202617000")
    assert parse_jmbg(future).birth_date == dt.date(2026, 12, 5)
    with pytest.raises(DocumentError, match="birth date in the future"):
        parse_jmbg(future, POLLING_DAY)


@pytest.mark.parametrize("region", [20, 51, 59, 60, 69])
def test_regions_never_issued_are_refused(region: int) -> None:
    serial = next(s for s in range(10) if jmbg_check_digit(f"0101990{region:02d}00{s}") is not None)
    with pytest.raises(DocumentError, match=f"region {region}"):
        parse_jmbg(with_check_digit(f"0101990{region:02d}00{serial}"))


@pytest.mark.parametrize(
    ("region", "name"),
    [
        (0, "naturalised citizen without a republic citizenship"),
        (1, "foreigner (in BiH)"),
        (8, "foreigner (in Kosovo)"),
        (10, "Bosnia and Herzegovina"),
        (19, "Bosnia and Herzegovina"),
        (21, "Montenegro"),
        (33, "Croatia"),
        (45, "Macedonia"),
        (50, "Slovenia"),
        (71, "central Serbia"),
        (80, "Vojvodina"),
        (91, "Kosovo"),
        (65, "not in use"),
    ],
)
def test_region_names(region: int, name: str) -> None:
    assert region_name(region) == name


@pytest.mark.parametrize(
    ("day", "age"),
    [(dt.date(2026, 10, 4), 36), (dt.date(2027, 1, 1), 37), (dt.date(2026, 12, 31), 36), (dt.date(2008, 1, 1), 18)],
)
def test_age_on_a_day_counts_from_the_birthday_itself(day: dt.date, age: int) -> None:
    assert parse_jmbg("0101990170003").age_on(day) == age


def test_a_29_february_birth_turns_a_year_older_on_1_march_in_common_years() -> None:
    jmbg = parse_jmbg("2902000170004")
    assert jmbg.age_on(dt.date(2018, 2, 28)) == 17
    assert jmbg.age_on(dt.date(2018, 3, 1)) == 18


@pytest.mark.parametrize("typed", ["0101990170003", " 0101990170003 ", "010199 017 000 3", "01-01-990-17-000-3", "0101 990-170003"])
def test_a_typed_jmbg_may_have_spaces_and_dashes(typed: str) -> None:
    identity = parse_typed_jmbg(typed, POLLING_DAY)
    assert identity.kind is DocumentKind.TYPED_JMBG
    assert identity.jmbg is not None and identity.jmbg.digits == "0101990170003"
    assert identity.birth_date == dt.date(1990, 1, 1)
    assert identity.sex == "M"
    assert identity.document_number is None
    assert identity.lookup_keys() == [("jmbg", "0101990170003")]


@pytest.mark.parametrize("typed", ["0101990170003.", "0101990l70003", "0101990_170003", "0101990/170003", "O101990170003"])
def test_a_typed_jmbg_with_anything_but_spaces_and_dashes_is_refused(typed: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_typed_jmbg(typed)
    assert caught.value.field == "typed JMBG"
    assert "type the 13 digits of the JMBG again" in str(caught.value)


@st.composite
def valid_jmbg(draw: st.DrawFn) -> tuple[str, dt.date, int, int]:
    birth = draw(st.dates(dt.date(1900, 1, 1), dt.date(2026, 10, 4)))
    region = draw(st.sampled_from([r for r in range(100) if r != 20 and not 51 <= r <= 69]))
    serial = draw(st.integers(0, 999))
    first12 = f"{birth.day:02d}{birth.month:02d}{birth.year % 1000:03d}{region:02d}{serial:03d}"
    # The check digit is computed here from the published formula, not with the module's helper.
    m = 11 - sum(w * int(d) for w, d in zip((7, 6, 5, 4, 3, 2) * 2, first12, strict=True)) % 11
    draw(st.just(None).filter(lambda _: m != 10))
    return first12 + str(0 if m == 11 else m), birth, region, serial


@given(valid_jmbg())
def test_every_valid_jmbg_parses_to_its_parts(case: tuple[str, dt.date, int, int]) -> None:
    text, birth, region, serial = case
    jmbg = parse_jmbg(text, POLLING_DAY)
    assert (jmbg.birth_date, jmbg.region, jmbg.serial) == (birth, region, serial)
    assert jmbg.sex == ("M" if serial < 500 else "F")


@given(valid_jmbg(), st.integers(0, 12), st.integers(1, 9))
def test_any_single_digit_change_is_refused(case: tuple[str, dt.date, int, int], position: int, shift: int) -> None:
    text = case[0]
    changed = text[:position] + str((int(text[position]) + shift) % 10) + text[position + 1 :]
    with pytest.raises(DocumentError):
        parse_jmbg(changed)

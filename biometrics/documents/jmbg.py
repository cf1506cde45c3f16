"""JMBG (jedinstveni matični broj građana), the 13-digit citizen number: DD MM YYY RR BBB K.

- DD MM YYY: date of birth; YYY 9xx -> 19xx, 0xx -> 20xx (1xx..8xx would be 1100..1899 or 2100+:
  no living voter, so rejected).
- RR: political region of birth (or of first registration for those born before 1976), as published
  for the SFRY register (checked against the Wikipedia "Unique Master Citizen Number" table):
  00, 09 naturalised citizens without a republic citizenship; 01-08 foreigners (01 BiH, 02 Montenegro,
  03 Croatia, 04 Macedonia, 05 Slovenia, 06 Serbia, 07 Vojvodina, 08 Kosovo); 10-19 Bosnia and
  Herzegovina; 21-29 Montenegro (20 not in use); 30-39 Croatia; 40-49 Macedonia (41-49 listed, 40 kept
  as Macedonia); 50 Slovenia (51-59 not in use); 60-69 not in use; 70-79 central Serbia; 80-89
  Vojvodina; 90-99 Kosovo. A code "not in use" is refused: no number was ever issued with it.
- BBB: serial, 000-499 male, 500-999 female.
- K: check digit m = 11 - ((7(a1+a7) + 6(a2+a8) + 5(a3+a9) + 4(a4+a10) + 3(a5+a11) + 2(a6+a12)) mod 11);
  m = 11 -> 0; m = 10 -> no valid JMBG has these twelve digits.

Pure: the date a birth may not be after is passed in (`today`), never read from a clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from biometrics.documents.errors import READ_AGAIN, DocumentError

JMBG_LENGTH = 13
_WEIGHTS = (7, 6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

# Characters an operator may type between the digit groups of a JMBG read off a passport (Art. 12(6)).
# Anything else (letters, dots, a 12- or 14-digit number) is refused rather than cleaned up.
_TYPING_SEPARATORS = " -"

_TYPED_REMEDY = "type the 13 digits of the JMBG again (spaces and dashes between groups are allowed)"


@dataclass(frozen=True)
class Jmbg:
    """A JMBG that passed the check digit, date and region checks."""

    digits: str
    birth_date: dt.date
    region: int
    serial: int

    @property
    def sex(self) -> str:
        """"M" (serial 000-499) or "F" (500-999)."""
        return "M" if self.serial < 500 else "F"

    @property
    def region_name(self) -> str:
        return region_name(self.region)

    @property
    def born_in_bih(self) -> bool:
        """Region 10-19: born (or first registered) in Bosnia and Herzegovina."""
        return 10 <= self.region <= 19

    def age_on(self, day: dt.date) -> int:
        """Age in whole years on `day` (a birthday counts from the day itself; 29 February births turn
        a year older on 1 March in common years)."""
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years

    def __str__(self) -> str:
        return self.digits


def parse_jmbg(text: str, today: dt.date | None = None, *, field: str = "JMBG", remedy: str = READ_AGAIN) -> Jmbg:
    """Validate exactly 13 digits as a JMBG. With `today`, a birth after it is refused too."""
    if len(text) != JMBG_LENGTH or not text.isascii() or not text.isdigit():
        raise DocumentError(field, text, remedy, problem=f"is not {JMBG_LENGTH} digits")
    expected = jmbg_check_digit(text[:12])
    if expected is None:
        raise DocumentError(
            field, text, remedy, problem="cannot be a JMBG: its first 12 digits give check value 10, which no JMBG has"
        )
    if int(text[12]) != expected:
        raise DocumentError(field, text, remedy, problem=f"has check digit {text[12]}, the first 12 digits give {expected}")
    birth = _birth_date(text, field, remedy)
    if today is not None and birth > today:
        raise DocumentError(field, text, remedy, problem=f"gives a birth date in the future ({birth.isoformat()})")
    region = int(text[7:9])
    if _region_not_in_use(region):
        raise DocumentError(field, text, remedy, problem=f"has region {region:02d}, which was never issued")
    return Jmbg(digits=text, birth_date=birth, region=region, serial=int(text[9:12]))


def parse_typed_jmbg_digits(text: str, today: dt.date | None = None) -> Jmbg:
    """A JMBG typed by the operator: surrounding whitespace, and spaces or dashes between digits, are
    allowed; nothing else is changed."""
    digits = text.strip()
    for separator in _TYPING_SEPARATORS:
        digits = digits.replace(separator, "")
    return parse_jmbg(digits, today, field="typed JMBG", remedy=_TYPED_REMEDY)


def jmbg_check_digit(first12: str) -> int | None:
    """The check digit K for the first 12 digits, or None when m = 10 (no valid JMBG)."""
    total = sum(weight * int(digit) for weight, digit in zip(_WEIGHTS, first12, strict=True))
    m = 11 - total % 11
    if m == 11:
        return 0
    if m == 10:
        return None
    return m


def region_name(region: int) -> str:
    """The political region of a JMBG region code (see the module docstring)."""
    if region in (0, 9):
        return "naturalised citizen without a republic citizenship"
    if 1 <= region <= 8:
        return "foreigner (" + _FOREIGNERS_IN[region - 1] + ")"
    for low, high, name in _REGIONS:
        if low <= region <= high:
            return name
    return "not in use"


def _birth_date(text: str, field: str, remedy: str) -> dt.date:
    day, month, yyy = int(text[0:2]), int(text[2:4]), int(text[4:7])
    if yyy >= 900:
        year = 1000 + yyy
    elif yyy < 100:
        year = 2000 + yyy
    else:
        raise DocumentError(field, text, remedy, problem=f"has year digits {text[4:7]} (only 9xx = 19xx and 0xx = 20xx)")
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise DocumentError(
            field, text, remedy, problem=f"has no such birth date (day {day:02d}, month {month:02d}, year {year})"
        ) from None


def _region_not_in_use(region: int) -> bool:
    return region == 20 or 51 <= region <= 69


_FOREIGNERS_IN = ("in BiH", "in Montenegro", "in Croatia", "in Macedonia", "in Slovenia", "in Serbia", "in Vojvodina",
                  "in Kosovo")
_REGIONS = (
    (10, 19, "Bosnia and Herzegovina"),
    (21, 29, "Montenegro"),
    (30, 39, "Croatia"),
    (40, 49, "Macedonia"),
    (50, 50, "Slovenia"),
    (70, 79, "central Serbia"),
    (80, 89, "Vojvodina"),
    (90, 99, "Kosovo"),
)

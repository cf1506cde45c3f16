"""Seeded synthetic voters' documents with their ground truth, for tests, the fuzz run and the day.

    rng = random.Random(7)
    person = synthetic_person(rng)
    id_card(person).text        # a valid BiH TD1 MRZ with the JMBG in the optional data of line 1
    passport(person).text       # a valid BiH TD3 MRZ; person.jmbg is what the operator types
    barcode(person).text        # a BBKV1 or BBD1 record (assumed formats, biometrics.documents.barcode)
    corrupted(rng, id_card(person))  # a wrong check digit, a truncated line or swapped lines

Each SyntheticDocument carries `expected` (the identity parse_document must return) or
`expected_error_field` (the field the DocumentError must name). The MRZ is composed here
independently of the parser's layout code; only the 7-3-1 check digit function is shared, and the
tests pin that one to ICAO's own specimens.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, replace

from biometrics.documents import (
    DocumentIdentity,
    DocumentKind,
    Jmbg,
    check_digit,
    parse_jmbg,
)
from biometrics.documents.jmbg import jmbg_check_digit

_SURNAMES = ("HADZIC", "KOVACEVIC", "PETROVIC", "BEGIC", "JURIC", "DELIC", "MARKOVIC", "OMERBASIC", "SARIC", "VUKOVIC")
_GIVEN_MALE = ("AMIR", "DRAGAN", "IVAN", "EMIR", "NIKOLA", "MIRZA", "JOSIP")
_GIVEN_FEMALE = ("AMRA", "JELENA", "ANA", "LEJLA", "MARIJA", "SELMA", "IVANA")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# Check digits a corruption may change: (line index, column, field the parser's error names). The TD1
# document number digit is left out: a long number moves it into the optional data.
_TD1_CHECK_DIGITS = ((1, 6, "date of birth"), (1, 14, "date of expiry"), (1, 29, "composite (whole MRZ)"))
_TD3_CHECK_DIGITS = ((1, 9, "document number"), (1, 19, "date of birth"), (1, 27, "date of expiry"),
                     (1, 43, "composite (whole MRZ)"))


@dataclass(frozen=True)
class SyntheticPerson:
    jmbg: Jmbg
    surname: str
    given_names: str
    document_number: str
    expiry: dt.date


@dataclass(frozen=True)
class SyntheticDocument:
    text: str
    expected: DocumentIdentity | None
    expected_error_field: str | None = None
    label: str = "valid"


def synthetic_jmbg(rng: random.Random, birth: dt.date | None = None, region: int | None = None,
                   sex: str | None = None) -> Jmbg:
    """A valid JMBG (born 1930-2008, a BiH region by default); serials whose check value is 10 are skipped."""
    birth = birth or dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(0, 79 * 365))
    region = rng.randrange(10, 20) if region is None else region
    sex = sex or rng.choice("MF")
    while True:
        serial = rng.randrange(0, 500) + (500 if sex == "F" else 0)
        first12 = f"{birth.day:02d}{birth.month:02d}{birth.year % 1000:03d}{region:02d}{serial:03d}"
        digit = jmbg_check_digit(first12)
        if digit is not None:
            return parse_jmbg(first12 + str(digit))


def synthetic_person(rng: random.Random, number_length: int = 9) -> SyntheticPerson:
    jmbg = synthetic_jmbg(rng)
    given = rng.choice(_GIVEN_MALE if jmbg.sex == "M" else _GIVEN_FEMALE)
    number = "".join(rng.choice(_ALNUM) for _ in range(number_length))
    expiry = dt.date(2027, 1, 1) + dt.timedelta(days=rng.randrange(0, 3650))
    return SyntheticPerson(jmbg, rng.choice(_SURNAMES), given, number, expiry)


def id_card(person: SyntheticPerson, state: str = "BIH") -> SyntheticDocument:
    """TD1: line 1 "ID" + state + number (+ overflow for long numbers) + JMBG in the optional data."""
    number = person.document_number
    if len(number) <= 9:
        number_part = number.ljust(9, "<") + str(check_digit(number.ljust(9, "<")))
        optional = person.jmbg.digits.ljust(15, "<")
    else:
        number_part = number[:9] + "<"
        optional = (number[9:] + str(check_digit(number)) + "<").ljust(15, "<")
    line1 = ("ID" + state + number_part + optional)[:30]
    birth = _yymmdd(person.jmbg.birth_date)
    expiry = _yymmdd(person.expiry)
    head = birth + str(check_digit(birth)) + person.jmbg.sex + expiry + str(check_digit(expiry)) + state
    optional2 = "<" * 11
    composite = check_digit(line1[5:30] + head[0:7] + head[8:15] + optional2)
    line2 = head + optional2 + str(composite)
    line3 = (person.surname + "<<" + person.given_names.replace(" ", "<")).ljust(30, "<")[:30]
    jmbg = person.jmbg if len(number) <= 9 else None
    expected = DocumentIdentity(
        kind=DocumentKind.ID_CARD, document_number=number, jmbg=jmbg, surname=person.surname,
        given_names=person.given_names, birth_date=person.jmbg.birth_date, sex=person.jmbg.sex, expiry=person.expiry,
        issuing_state=state, nationality=state, source_format="TD1",
    )
    return SyntheticDocument(f"{line1}\r{line2}\r{line3}\r\n", expected, label="id_card")


def passport(person: SyntheticPerson, state: str = "BIH", personal_number: bool = True) -> SyntheticDocument:
    """TD3, with the JMBG in the personal number field when `personal_number` (else all filler)."""
    number = person.document_number[:9].ljust(9, "<")
    line1 = ("P<" + state + person.surname + "<<" + person.given_names.replace(" ", "<")).ljust(44, "<")[:44]
    birth, expiry = _yymmdd(person.jmbg.birth_date), _yymmdd(person.expiry)
    personal = person.jmbg.digits.ljust(14, "<") if personal_number else "<" * 14
    personal_digit = str(check_digit(personal)) if personal_number else "<"
    body = (number + str(check_digit(number)) + state + birth + str(check_digit(birth)) + person.jmbg.sex + expiry
            + str(check_digit(expiry)) + personal + personal_digit)
    composite = check_digit(body[0:10] + body[13:20] + body[21:43])
    line2 = body + str(composite)
    expected = DocumentIdentity(
        kind=DocumentKind.PASSPORT, document_number=number.rstrip("<"), jmbg=person.jmbg if personal_number else None,
        surname=person.surname, given_names=person.given_names, birth_date=person.jmbg.birth_date,
        sex=person.jmbg.sex, expiry=person.expiry, issuing_state=state, nationality=state, source_format="TD3",
    )
    return SyntheticDocument(line1 + "\n" + line2 + "\n", expected, label="passport")


def barcode(person: SyntheticPerson, fmt: str = "BBKV1", kind: str = "ID") -> SyntheticDocument:
    """A barcode record in one of the assumed formats (see biometrics.documents.barcode)."""
    values = {"KIND": kind, "DOC": person.document_number, "JMBG": person.jmbg.digits, "SURNAME": person.surname,
              "GIVEN": person.given_names, "BIRTH": person.jmbg.birth_date.isoformat(), "SEX": person.jmbg.sex,
              "EXPIRY": person.expiry.isoformat(), "STATE": "BIH"}
    if fmt == "BBKV1":
        text = "BBKV1;" + ";".join(f"{key}={value}" for key, value in values.items())
    else:
        text = "BBD1|" + "|".join(values.values())
    expected = DocumentIdentity(
        kind=DocumentKind.ID_CARD if kind == "ID" else DocumentKind.DRIVING_LICENCE,
        document_number=person.document_number, jmbg=person.jmbg, surname=person.surname,
        given_names=person.given_names, birth_date=person.jmbg.birth_date, sex=person.jmbg.sex, expiry=person.expiry,
        issuing_state="BIH", nationality=None, source_format=fmt,
    )
    return SyntheticDocument(text + "\r\n", expected, label=f"barcode_{fmt}")


def corrupted(rng: random.Random, document: SyntheticDocument) -> SyntheticDocument:
    """The document with one fault a reader or a worn card produces, and the field the error names."""
    lines = document.text.replace("\r\n", "\n").replace("\r", "\n").strip("\n").split("\n")
    fault = rng.choice(("check_digit", "truncated", "swapped"))
    if fault == "check_digit":
        # (row, column of a check digit, the field it checks)
        digits = _TD1_CHECK_DIGITS if len(lines) == 3 else _TD3_CHECK_DIGITS
        row, column, field = rng.choice(digits)
        line = lines[row]
        wrong = str((int(line[column]) + rng.randrange(1, 10)) % 10)
        lines[row] = line[:column] + wrong + line[column + 1 :]
    elif fault == "truncated":
        row = rng.randrange(len(lines))
        lines[row] = lines[row][: rng.randrange(5, len(lines[row]) - 1)]
        field = "MRZ"
    else:
        lines[0], lines[1] = lines[1], lines[0]
        field = "MRZ line 1"
    return replace(document, text="\r".join(lines) + "\r\n", expected=None, expected_error_field=field,
                   label=f"{document.label}_{fault}")


def _yymmdd(day: dt.date) -> str:
    return day.strftime("%y%m%d")

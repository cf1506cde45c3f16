"""ICAO Doc 9303 machine-readable zones: TD1 (ID cards, 3 lines of 30) and TD3 (passports, 2 of 44).

Every check digit is verified (weights 7-3-1, digits 0-9, letters A-Z = 10-35, filler "<" = 0):
document number, date of birth, date of expiry, TD3 personal number (optional data), composite.
A wrong digit is a DocumentError naming the field, what the MRZ says and what the characters give;
no character is ever corrected (an OCR "0"/"O" fix would pick a voter the document does not name).
Note what a 7-3-1 digit cannot see: substituting characters whose values differ by a multiple of 10
("0", "A", "K", "U", or "<" and "0") leaves it unchanged; fields it does not cover (names, sex,
nationality) are only checked for their character set.

Reader quirks accepted: CR, LF or CRLF between lines, or none (a 90-character TD1 or 88-character
TD3 run), blank lines and whitespace around lines, lowercase letters, the framing stripped by
scan_text. Anything else (a short line, a space inside a line, a TD2 2 x 36 zone) is refused.

TD1 long document numbers (9303-5, 4.2.4): when the number has more than 9 characters, positions
6-14 hold its first 9, position 15 (its check digit) is "<", and the rest of the number followed by
its check digit starts the optional data at position 16, then a filler.

JMBG: BiH ID cards are believed to carry it in the optional data of TD1 line 1 (positions 16-28),
BiH passports in the TD3 personal number field. When that field holds exactly 13 digits on a BIH
document it must be a valid JMBG (else DocumentError); on another state's document a 13-digit value
that is not a JMBG is left alone (jmbg = None).

Dates: YYMMDD. Expiry is 20YY (no document in circulation expired before 2000). Birth is 19YY or
20YY: with a JMBG, the JMBG's full date (and the two must agree); otherwise 20YY unless that is after
the reference year (`today`, else the expiry year minus 10, the longest BiH validity) then 19YY.
"""

from __future__ import annotations

import datetime as dt
import re

from biometrics.documents.errors import READ_AGAIN, DocumentError
from biometrics.documents.identity import (
    DocumentIdentity,
    DocumentKind,
    DocumentWarning,
)
from biometrics.documents.jmbg import Jmbg, parse_jmbg
from biometrics.documents.scan_text import split_lines

TD1_LINES, TD1_WIDTH = 3, 30
TD3_LINES, TD3_WIDTH = 2, 44
_MRZ_CHARACTERS = re.compile(r"[A-Z0-9<]*")
_WEIGHTS = (7, 3, 1)
# Longest validity of a BiH ID card or passport (10 years): with no `today`, the document was issued
# no earlier than its expiry minus this, and its holder was born before that.
_LONGEST_VALIDITY_YEARS = 10


def parse_mrz(text: str, today: dt.date | None = None) -> DocumentIdentity:
    """A TD1 or TD3 MRZ (reader framing already stripped) -> the identity it carries."""
    lines = mrz_lines(text)
    if len(lines) == TD1_LINES:
        return _parse_td1(lines, today)
    return _parse_td3(lines, today)


def check_digit(value: str) -> int:
    """ICAO 9303 check digit of `value` (characters A-Z, 0-9, "<")."""
    return sum(_character_value(char) * _WEIGHTS[i % 3] for i, char in enumerate(value)) % 10


def mrz_lines(text: str) -> list[str]:
    """The lines of a TD1 or TD3 MRZ, upper-cased, whatever the reader separated them with."""
    lines = [line.upper() for line in split_lines(text)]
    if len(lines) == 1 and len(lines[0]) == TD1_LINES * TD1_WIDTH:
        lines = [lines[0][i : i + TD1_WIDTH] for i in range(0, TD1_LINES * TD1_WIDTH, TD1_WIDTH)]
    elif len(lines) == 1 and len(lines[0]) == TD3_LINES * TD3_WIDTH:
        lines = [lines[0][i : i + TD3_WIDTH] for i in range(0, TD3_LINES * TD3_WIDTH, TD3_WIDTH)]
    shape = (len(lines), {len(line) for line in lines})
    if shape not in ((TD1_LINES, {TD1_WIDTH}), (TD3_LINES, {TD3_WIDTH})):
        lengths = " + ".join(str(len(line)) for line in lines) or "0"
        raise DocumentError(
            "MRZ",
            text.strip(),
            READ_AGAIN,
            problem=f"has lines of {lengths} characters (an ID card has 3 of 30, a passport 2 of 44): "
            "a line is missing, cut short or too long",
        )
    for number, line in enumerate(lines, start=1):
        if not _MRZ_CHARACTERS.fullmatch(line):
            bad = next(i for i, char in enumerate(line) if not _MRZ_CHARACTERS.fullmatch(char))
            raise DocumentError(
                f"MRZ line {number}", line, READ_AGAIN,
                problem=f"has {line[bad]!r} at position {bad + 1} (an MRZ holds only A-Z, 0-9 and '<')",
            )
    return lines


def _parse_td1(lines: list[str], today: dt.date | None) -> DocumentIdentity:
    line1, line2, line3 = lines
    if line1[0] not in "IAC":
        raise DocumentError(
            "MRZ line 1", line1, READ_AGAIN,
            problem=f"starts with {line1[0]!r}, not an ID card's document code (I, A or C): the lines may be out of order",
        )
    issuing_state = _state(line1[2:5], "issuing state")
    number, optional = _td1_document_number(line1)
    birth_field, expiry_field = line2[0:6], line2[8:14]
    _verify("date of birth", birth_field, line2[6])
    _verify("date of expiry", expiry_field, line2[14])
    _verify("composite (whole MRZ)", line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29], line2[29])
    jmbg = _carried_jmbg(optional, issuing_state, "JMBG in the MRZ optional data", today)
    surname, given_names = _names(line3, "name (MRZ line 3)")
    return _identity(
        DocumentKind.ID_CARD, "TD1", number, jmbg, surname, given_names, birth_field, line2[7], expiry_field,
        issuing_state, _state(line2[15:18], "nationality"), today,
    )


def _parse_td3(lines: list[str], today: dt.date | None) -> DocumentIdentity:
    line1, line2 = lines
    if line1[0] != "P":
        raise DocumentError(
            "MRZ line 1", line1, READ_AGAIN,
            problem=f"starts with {line1[0]!r}, not a passport's document code (P): the lines may be out of order, "
            "or it is a visa",
        )
    if re.search(r"[0-9]", line1[5:44]):
        raise DocumentError(
            "MRZ line 1", line1, READ_AGAIN,
            problem="has digits in the name field: the lines may be out of order",
        )
    issuing_state = _state(line1[2:5], "issuing state")
    number = _number(line2[0:9])
    _verify("document number", line2[0:9], line2[9])
    birth_field, expiry_field = line2[13:19], line2[21:27]
    _verify("date of birth", birth_field, line2[19])
    _verify("date of expiry", expiry_field, line2[27])
    personal = line2[28:42]
    if not (personal == "<" * 14 and line2[42] in "<0"):
        _verify("personal number (optional data)", personal, line2[42])
    _verify("composite (whole MRZ)", line2[0:10] + line2[13:20] + line2[21:43], line2[43])
    jmbg = _carried_jmbg(personal, issuing_state, "JMBG in the MRZ personal number", today)
    surname, given_names = _names(line1[5:44], "name (MRZ line 1)")
    return _identity(
        DocumentKind.PASSPORT, "TD3", number, jmbg, surname, given_names, birth_field, line2[20], expiry_field,
        issuing_state, _state(line2[10:13], "nationality"), today,
    )


def _td1_document_number(line1: str) -> tuple[str, str]:
    """The document number (check digit verified) and the rest of the line-1 optional data."""
    field, digit, optional = line1[5:14], line1[14], line1[15:30]
    if digit != "<" or "<" in field:
        _verify("document number", field, digit)
        return _number(field), optional
    # Long number: the rest of it and its check digit open the optional data, ended by a filler.
    end = optional.find("<")
    overflow = optional if end < 0 else optional[:end]
    if len(overflow) < 2:
        raise DocumentError(
            "document number", field + overflow, READ_AGAIN,
            problem="has a filler '<' for its check digit but no continuation in the optional data",
        )
    number = field + overflow[:-1]
    _verify("document number", number, overflow[-1])
    return number, optional[len(overflow) :]


def _verify(name: str, value: str, digit: str) -> None:
    expected = check_digit(value)
    if not digit.isdigit():
        raise DocumentError(
            name, value, READ_AGAIN, problem=f"has {digit!r} for its check digit, not a digit (expected {expected})"
        )
    if int(digit) != expected:
        raise DocumentError(
            name, value, READ_AGAIN, problem=f"has check digit {digit} in the MRZ, but its characters give {expected}"
        )


def _number(field: str) -> str:
    number = field.rstrip("<")
    if not number or "<" in number:
        raise DocumentError("document number", field, READ_AGAIN, problem="is empty or has a filler '<' inside it")
    return number


def _state(field: str, name: str) -> str:
    if not re.fullmatch(r"[A-Z]+<*", field):
        raise DocumentError(name, field, READ_AGAIN, problem="is not a three-letter ICAO state code")
    return field.rstrip("<")


def _names(field: str, name: str) -> tuple[str, str]:
    """ICAO name field: primary identifier, "<<", secondary identifier; "<" between name parts."""
    text = field.rstrip("<")
    if not text or text.startswith("<") or re.search(r"[0-9]", text):
        raise DocumentError(name, field, READ_AGAIN, problem="is not an MRZ name (letters, '<' between parts)")
    surname, _, given = text.partition("<<")
    return " ".join(surname.split("<")), " ".join(part for part in given.split("<") if part)


def _carried_jmbg(optional: str, issuing_state: str, name: str, today: dt.date | None) -> Jmbg | None:
    candidate = optional.strip("<")
    if len(candidate) != 13 or not candidate.isdigit():
        return None
    if issuing_state != "BIH":
        try:
            return parse_jmbg(candidate, today, field=name)
        except DocumentError:
            return None
    return parse_jmbg(candidate, today, field=name)


def _identity(
    kind: DocumentKind, source: str, number: str, jmbg: Jmbg | None, surname: str, given_names: str,
    birth_field: str, sex_field: str, expiry_field: str, issuing_state: str, nationality: str, today: dt.date | None,
) -> DocumentIdentity:
    expiry = _date(expiry_field, 2000, "date of expiry")
    _date(birth_field, 2000, "date of birth")  # digits and a calendar date (29 February: both centuries agree)
    if jmbg is not None:
        if jmbg.birth_date.strftime("%y%m%d") != birth_field:
            raise DocumentError(
                "date of birth", birth_field, READ_AGAIN,
                problem=f"differs from the JMBG's ({jmbg.digits} gives {jmbg.birth_date.isoformat()})",
            )
        birth = jmbg.birth_date
    else:
        reference = today.year if today is not None else expiry.year - _LONGEST_VALIDITY_YEARS
        century = 2000 if 2000 + int(birth_field[:2]) <= reference else 1900
        birth = _date(birth_field, century, "date of birth")
    if sex_field not in "MF<X":
        raise DocumentError("sex", sex_field, READ_AGAIN, problem="is not M, F or '<'")
    sex = sex_field if sex_field in "MF" else None
    warnings: list[DocumentWarning] = []
    if today is not None and expiry < today:
        warnings.append(DocumentWarning.EXPIRED)
    if jmbg is not None and sex is not None and sex != jmbg.sex:
        warnings.append(DocumentWarning.SEX_DIFFERS_FROM_JMBG)
    return DocumentIdentity(
        kind=kind, document_number=number, jmbg=jmbg, surname=surname, given_names=given_names, birth_date=birth,
        sex=sex, expiry=expiry, issuing_state=issuing_state, nationality=nationality, source_format=source,
        warnings=tuple(warnings),
    )


def _date(field: str, century: int, name: str) -> dt.date:
    if not field.isdigit():
        raise DocumentError(name, field, READ_AGAIN, problem="is not a YYMMDD date")
    try:
        return dt.date(century + int(field[0:2]), int(field[2:4]), int(field[4:6]))
    except ValueError:
        raise DocumentError(name, field, READ_AGAIN, problem="is not a calendar date (YYMMDD)") from None


def _character_value(char: str) -> int:
    if char == "<":
        return 0
    if "0" <= char <= "9":
        return ord(char) - ord("0")
    if "A" <= char <= "Z":
        return ord(char) - ord("A") + 10
    raise DocumentError("MRZ character", char, READ_AGAIN, problem="is not A-Z, 0-9 or '<'")

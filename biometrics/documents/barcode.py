"""Barcode records the document reader may send for the back of a BiH ID card or driving licence.

What is known and what is assumed (searched December 2026: public pages, issue trackers, code):
- Art. 12(3) of the CEC instruction says the operator reads "the bar code" of the ID card or driving
  licence; BiH cards carry a PDF417 symbol on the back. No public specification or reliable
  decoding of its content was found (IDDEEA publishes none; no open-source parser exists). Its content
  must be taken from IDDEEA before the pilot. Until then ballotbox accepts only the formats below, each
  strictly: a record that does not match its format exactly is refused, never half-read.
- MRZ in the barcode (assumption A1): a reader (or the barcode) that yields the card's MRZ text
  is handled by parse_document as an MRZ, with every check digit.
- BBKV1 (assumption A2, defined here, version 1): one line of key=value fields separated by ";",
  opening with the format tag, for a reader or IDDEEA converter configured to emit it:
      BBKV1;KIND=ID;DOC=1E181TKT6;JMBG=0101990170003;SURNAME=Hadžić;GIVEN=Amra;BIRTH=1990-01-01;SEX=F;EXPIRY=2031-05-20;STATE=BIH
  Required: KIND (ID = ID card, DL = driving licence), DOC, JMBG, SURNAME, GIVEN. Optional: BIRTH,
  SEX (M/F), EXPIRY (YYYY-MM-DD), STATE (three letters). Unknown, repeated or empty keys are refused.
- BBD1 (assumption A3, version 1): the same content as ten "|"-separated fields in a fixed order,
  optional ones left empty:
      BBD1|KIND|DOC|JMBG|SURNAME|GIVEN|BIRTH|SEX|EXPIRY|STATE
A record that carries BIRTH or SEX must agree with its JMBG (a different date is a misread or another
person's card: refused; a different sex is reported as a warning, like the MRZ). Names are Unicode
(NFC), letters with spaces, hyphens and apostrophes between them. A new record layout gets a new tag
(BBKV2, ...): version tags not listed here are refused by name.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from biometrics.documents.errors import DocumentError
from biometrics.documents.identity import (
    DocumentIdentity,
    DocumentKind,
    DocumentWarning,
)
from biometrics.documents.jmbg import parse_jmbg

KEY_VALUE_TAG = "BBKV1"
DELIMITED_TAG = "BBD1"
_KINDS = {"ID": DocumentKind.ID_CARD, "DL": DocumentKind.DRIVING_LICENCE}
_FIELDS = ("KIND", "DOC", "JMBG", "SURNAME", "GIVEN", "BIRTH", "SEX", "EXPIRY", "STATE")
_REQUIRED = frozenset(("KIND", "DOC", "JMBG", "SURNAME", "GIVEN"))
_DOCUMENT_NUMBER = re.compile(r"[A-Z0-9]{5,20}")
# A name part is letters (any script, as printed on the card); parts joined by one space, hyphen or apostrophe.
_NAME = re.compile(r"[^\W\d_]+(?:[ \-'][^\W\d_]+)*")
_BARCODE_TAG = re.compile(r"^(BBKV|BBD)(\d+)\b")
_REMEDY = "read the barcode again, or type the JMBG"


def is_barcode_record(text: str) -> bool:
    """True when `text` opens with a barcode format tag (of any version)."""
    return _BARCODE_TAG.match(text) is not None


def parse_barcode(text: str, today: dt.date | None = None) -> DocumentIdentity:
    """A BBKV1 or BBD1 record (reader framing already stripped) -> the identity it carries."""
    if "\r" in text or "\n" in text:
        raise DocumentError("barcode record", text, _REMEDY, problem="spans more than one line")
    if text.startswith(KEY_VALUE_TAG + ";"):
        return _record(_key_values(text[len(KEY_VALUE_TAG) + 1 :]), text, KEY_VALUE_TAG, today)
    if text.startswith(DELIMITED_TAG + "|"):
        values = text[len(DELIMITED_TAG) + 1 :].split("|")
        if len(values) != len(_FIELDS):
            raise DocumentError(
                "barcode record", text, _REMEDY, problem=f"has {len(values)} fields after {DELIMITED_TAG}, not {len(_FIELDS)}"
            )
        return _record({k: v for k, v in zip(_FIELDS, values, strict=True) if v}, text, DELIMITED_TAG, today)
    tag = _BARCODE_TAG.match(text)
    shown = tag.group(0) if tag else text[:8]
    raise DocumentError(
        "barcode format", shown, "set the reader to send a supported format, or type the JMBG",
        problem=f"is not one ballotbox reads ({KEY_VALUE_TAG}, {DELIMITED_TAG}, or the MRZ text)",
    )


def _key_values(body: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in body.split(";"):
        key, sep, value = item.partition("=")
        if not sep or key not in _FIELDS:
            raise DocumentError("barcode field", item, _REMEDY, problem=f"is not KEY=value with a key of {', '.join(_FIELDS)}")
        if key in fields:
            raise DocumentError("barcode field", key, _REMEDY, problem="appears twice")
        if not value:
            raise DocumentError("barcode field", key, _REMEDY, problem="is empty")
        fields[key] = value
    return fields


def _record(fields: dict[str, str], text: str, source: str, today: dt.date | None) -> DocumentIdentity:
    missing = [key for key in _FIELDS if key in _REQUIRED and key not in fields]
    if missing:
        raise DocumentError("barcode record", text, _REMEDY, problem=f"lacks {', '.join(missing)}")
    kind = _KINDS.get(fields["KIND"])
    if kind is None:
        raise DocumentError("barcode KIND", fields["KIND"], _REMEDY, problem="is not ID or DL")
    number = fields["DOC"]
    if not _DOCUMENT_NUMBER.fullmatch(number):
        raise DocumentError("barcode DOC", number, _REMEDY, problem="is not a document number (5-20 of A-Z, 0-9)")
    jmbg = parse_jmbg(fields["JMBG"], today, field="barcode JMBG", remedy=_REMEDY)
    surname, given = _name(fields["SURNAME"], "barcode SURNAME"), _name(fields["GIVEN"], "barcode GIVEN")
    birth = _iso_date(fields.get("BIRTH"), "barcode BIRTH")
    if birth is not None and birth != jmbg.birth_date:
        raise DocumentError(
            "barcode BIRTH", fields["BIRTH"], _REMEDY, problem=f"differs from the JMBG's ({jmbg.birth_date.isoformat()})"
        )
    sex = fields.get("SEX")
    if sex is not None and sex not in ("M", "F"):
        raise DocumentError("barcode SEX", sex, _REMEDY, problem="is not M or F")
    expiry = _iso_date(fields.get("EXPIRY"), "barcode EXPIRY")
    state = fields.get("STATE")
    if state is not None and not re.fullmatch(r"[A-Z]{3}", state):
        raise DocumentError("barcode STATE", state, _REMEDY, problem="is not a three-letter state code")
    warnings: list[DocumentWarning] = []
    if today is not None and expiry is not None and expiry < today:
        warnings.append(DocumentWarning.EXPIRED)
    if sex is not None and sex != jmbg.sex:
        warnings.append(DocumentWarning.SEX_DIFFERS_FROM_JMBG)
    return DocumentIdentity(
        kind=kind, document_number=number, jmbg=jmbg, surname=surname, given_names=given, birth_date=jmbg.birth_date,
        sex=sex if sex is not None else jmbg.sex, expiry=expiry, issuing_state=state, nationality=None,
        source_format=source, warnings=tuple(warnings),
    )


def _name(value: str, field: str) -> str:
    name = unicodedata.normalize("NFC", value)
    if not _NAME.fullmatch(name):
        raise DocumentError(field, value, _REMEDY, problem="is not a name (letters, one space, hyphen or apostrophe between parts)")
    return name


def _iso_date(value: str | None, field: str) -> dt.date | None:
    if value is None:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise DocumentError(field, value, _REMEDY, problem="is not a YYYY-MM-DD date")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise DocumentError(field, value, _REMEDY, problem="is not a calendar date") from None

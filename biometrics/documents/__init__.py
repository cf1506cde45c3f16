"""Identity documents read at the authentication desk (CEC instruction, Art. 12): the MRZ of an ID
card (TD1) or passport (TD3), the barcode record of an ID card or driving licence, and the JMBG the
operator types for a passport (Art. 12(6)). Pure: no clock (pass `today`), disk or device.

    parse_document(text, today)  a document reader's scan -> DocumentIdentity (format decided here)
    parse_typed_jmbg(text, today) the operator's typed JMBG -> DocumentIdentity (kind TYPED_JMBG)
    parse_jmbg(text, today)      13 digits -> Jmbg (check digit, date, region; sex and age from it)

Every problem is a DocumentError(field, value, remedy) with a message for the operator; nothing is
guessed or corrected. An expired document is accepted with DocumentWarning.EXPIRED in `warnings`
(the committee decides, Art. 12(1) and Election Law art. 5.12), not refused. Formats and the
assumptions behind the barcode records: biometrics.documents.mrz and biometrics.documents.barcode.
"""

from __future__ import annotations

import datetime as dt

from biometrics.documents.barcode import is_barcode_record, parse_barcode
from biometrics.documents.errors import READ_AGAIN, DocumentError
from biometrics.documents.identity import (
    DocumentIdentity,
    DocumentKind,
    DocumentWarning,
)
from biometrics.documents.jmbg import Jmbg, parse_jmbg, parse_typed_jmbg_digits
from biometrics.documents.mrz import check_digit, parse_mrz
from biometrics.documents.scan_text import strip_reader_framing

__all__ = [
    "DocumentError", "DocumentIdentity", "DocumentKind", "DocumentWarning", "Jmbg", "check_digit",
    "parse_document", "parse_jmbg", "parse_typed_jmbg",
]


def parse_document(text: str, today: dt.date | None = None) -> DocumentIdentity:
    """One scan from the document reader -> the identity on the document.

    A scan opening with a barcode format tag (BBKV1, BBD1) is a barcode record; anything else must be
    a TD1 or TD3 MRZ. `today` (the polling day) marks expired documents and refuses births after it.
    """
    if not isinstance(text, str):
        raise DocumentError("scan", repr(text), READ_AGAIN, problem="is not text")
    content = strip_reader_framing(text)
    if not content:
        raise DocumentError("scan", text, READ_AGAIN, problem="is empty")
    if is_barcode_record(content):
        return parse_barcode(content, today)
    return parse_mrz(content, today)


def parse_typed_jmbg(text: str, today: dt.date | None = None) -> DocumentIdentity:
    """The JMBG the operator types from a passport (Art. 12(6)); spaces and dashes between digits allowed."""
    jmbg = parse_typed_jmbg_digits(text, today)
    return DocumentIdentity(
        kind=DocumentKind.TYPED_JMBG, document_number=None, jmbg=jmbg, surname=None, given_names=None,
        birth_date=jmbg.birth_date, sex=jmbg.sex, expiry=None, issuing_state=None, nationality=None,
        source_format="typed",
    )

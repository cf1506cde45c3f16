"""What a read document tells the authentication desk: who the voter claims to be."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from biometrics.documents.jmbg import Jmbg


class DocumentKind(enum.Enum):
    ID_CARD = "id_card"
    PASSPORT = "passport"
    DRIVING_LICENCE = "driving_licence"
    # A passport holder's JMBG typed by the operator instead of a barcode read (Art. 12(6)).
    TYPED_JMBG = "typed_jmbg"


class DocumentWarning(enum.Enum):
    """Facts the committee decides on; the parser reports them and does not refuse the document."""

    # Art. 12(1) asks for a *valid* document, but whether a voter with an expired card may vote is the
    # committee's decision under the Election Law (art. 5.12), not the device's: the desk shows it.
    EXPIRED = "expired"
    # The sex in the MRZ differs from the JMBG's (serial 000-499 / 500-999). The JMBG decides the
    # report's statistics; the committee sees both.
    SEX_DIFFERS_FROM_JMBG = "sex_differs_from_jmbg"


@dataclass(frozen=True)
class DocumentIdentity:
    """One document as read. Fields a format does not carry are None; names are as printed in the
    MRZ (upper case, transliterated) or in the barcode (may carry diacritics)."""

    kind: DocumentKind
    document_number: str | None
    jmbg: Jmbg | None
    surname: str | None
    given_names: str | None
    birth_date: dt.date | None
    sex: str | None  # "M", "F", or None (unspecified "<" in the MRZ, or not carried)
    expiry: dt.date | None
    issuing_state: str | None  # ICAO 9303 three-letter code, e.g. "BIH"
    nationality: str | None
    source_format: str  # "TD1", "TD3", "BBKV1", "BBD1", "typed"
    warnings: tuple[DocumentWarning, ...] = ()

    @property
    def expired(self) -> bool:
        return DocumentWarning.EXPIRED in self.warnings

    def lookup_keys(self) -> list[tuple[str, str]]:
        """How to find the voter in the register extract, best first: ("jmbg", digits) when the
        document carries a JMBG, then ("document_number", number)."""
        keys: list[tuple[str, str]] = []
        if self.jmbg is not None:
            keys.append(("jmbg", self.jmbg.digits))
        if self.document_number:
            keys.append(("document_number", self.document_number))
        return keys

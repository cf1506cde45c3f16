"""What a document reader's scan looks like before any format is parsed: the reader's own framing
taken off (STX/ETX/EOT/NUL, an AIM symbology identifier such as "]L2" for PDF417, whitespace around)."""

from __future__ import annotations

import re

from biometrics.documents.errors import DocumentError

# Longest scan accepted: a TD1 MRZ with separators is ~95 characters and the barcode records a few
# hundred; anything far longer is a reader stuck in a loop or keyboard noise, refused before parsing.
MAX_SCAN_CHARS = 2048

# Control characters readers put around a scan (configurable prefix/suffix on most 2D readers).
_FRAMING = "\x00\x02\x03\x04"
# AIM ISO/IEC 15424 symbology identifier: "]" + code character + modifier, sent first when enabled.
_AIM_IDENTIFIER = re.compile(r"^\][A-Za-z][0-9A-Za-z]")


def strip_reader_framing(text: str) -> str:
    """The scan without the reader's framing and surrounding whitespace; the content is untouched."""
    if len(text) > MAX_SCAN_CHARS:
        raise DocumentError(
            "scan", text, "read the document again", problem=f"is {len(text)} characters long (at most {MAX_SCAN_CHARS})"
        )
    stripped = text.strip().strip(_FRAMING).strip()
    stripped = _AIM_IDENTIFIER.sub("", stripped, count=1)
    return stripped.strip().strip(_FRAMING).strip()


def split_lines(text: str) -> list[str]:
    """Lines of a scan whatever the reader ends them with (CR, LF, CRLF), each stripped, blanks dropped."""
    lines = (line.strip() for line in re.split(r"\r\n|\r|\n", text))
    return [line for line in lines if line]

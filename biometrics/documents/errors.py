"""The one error every document parser raises: it names the field, the value read and what to do."""

from __future__ import annotations

# What the operator can always do when a document cannot be read (Art. 12(6) of the CEC instruction:
# the JMBG may be typed in), said once so every message ends the same way.
READ_AGAIN = "read the document again, or type the JMBG"


class DocumentError(ValueError):
    """A document, barcode or typed JMBG that cannot be accepted as read.

    `field` is the field of the document (e.g. "document number check digit", "JMBG", "MRZ line 2"),
    `value` what was read there (shown to the operator with repr-like quoting), `remedy` what to do,
    `problem` what is wrong with the value. Never a guess: the parsers do not correct characters.
    """

    def __init__(self, field: str, value: str, remedy: str = READ_AGAIN, *, problem: str = "is not valid") -> None:
        shown = value if len(value) <= 60 else value[:57] + "..."
        super().__init__(f"{field} {shown!r} {problem} -- {remedy}")
        self.field = field
        self.value = value
        self.remedy = remedy
        self.problem = problem

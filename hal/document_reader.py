"""The document reader at the authentication desk: a 2D barcode / MRZ reader that sends each scan as
text (CEC instruction Art. 12(3)). The text is parsed by biometrics.documents, not here."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hal.errors import DeviceStatus, HalError


class DocumentReaderError(HalError):
    """The reader sent something that is not one scan's text, or the link to it failed."""

    code = "document_reader_error"


class DocumentReaderDisconnected(DocumentReaderError):
    """The reader's port went away (cable pulled, USB reset)."""

    code = "document_reader_disconnected"


@runtime_checkable
class DocumentReader(Protocol):
    def read(self, timeout_s: float) -> str | None:
        """One scan's text (reader framing and line endings as sent), or None if nothing was scanned
        within `timeout_s`. Raises DocumentReaderError, DocumentReaderDisconnected."""
        ...

    def self_test(self) -> DeviceStatus: ...

    def close(self) -> None: ...

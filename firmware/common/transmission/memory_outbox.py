"""An outbox in memory, with the Outbox protocol: for tests, the bench and training runs. The box's real
outbox is a table of the scanner store, written in the transaction of the event each document reports."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from firmware.common.transmission.documents import SignedDocument
from firmware.common.transmission.outbox import OutboxEntry


class MemoryOutbox:
    def __init__(self, documents: Iterable[tuple[SignedDocument, datetime]] = ()) -> None:
        self._entries: dict[str, OutboxEntry] = {}
        self._lock = threading.Lock()
        for document, created_at in documents:
            self.put(document, created_at)

    def put(self, document: SignedDocument, created_at: datetime) -> None:
        """Add a document (a second put of the same document is a no-op, as in the store)."""
        with self._lock:
            self._entries.setdefault(document.hash, OutboxEntry(document, created_at, None, 0, None, False))

    def entries(self) -> list[OutboxEntry]:
        with self._lock:
            return list(self._entries.values())

    def unsent(self) -> list[OutboxEntry]:
        return [e for e in self.entries() if not e.acknowledged and not e.given_up]

    def acknowledge(self, doc_hash: str, receipt: Mapping[str, Any], at: datetime) -> None:
        with self._lock:
            entry = self._entry(doc_hash)
            self._entries[doc_hash] = replace(entry, receipt=dict(receipt), attempts=entry.attempts + 1,
                                              last_error=None)

    def note_failure(self, doc_hash: str, error: str, at: datetime, *, give_up: bool = False) -> None:
        with self._lock:
            entry = self._entry(doc_hash)
            self._entries[doc_hash] = replace(entry, attempts=entry.attempts + 1, last_error=error,
                                              given_up=entry.given_up or give_up, last_attempt_at=at)

    def _entry(self, doc_hash: str) -> OutboxEntry:
        try:
            return self._entries[doc_hash]
        except KeyError:
            raise KeyError(f"no document {doc_hash} in the outbox") from None

"""The outbox: signed documents waiting to be sent, written in the same store transaction as the event
they report (the scanner store implements it), and the receipts the CEC's receiver gave for them.

The uploader works against this protocol only, so it sends from the live box and from a state
directory after a restart (``ballotbox outbox send``) alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from firmware.common.transmission.documents import SignedDocument


@dataclass(frozen=True)
class OutboxEntry:
    document: SignedDocument
    created_at: datetime  # station time of the event the document reports
    receipt: Mapping[str, Any] | None  # the receiver's receipt once acknowledged, else None
    attempts: int  # sends tried so far
    last_error: str | None  # why the last attempt failed, in words for the committee
    given_up: bool  # a refusal that retrying cannot cure (a 4xx): needs a person
    last_attempt_at: datetime | None = None  # the `at` of the last note_failure (the committee's status shows it)

    @property
    def acknowledged(self) -> bool:
        return self.receipt is not None


class Outbox(Protocol):
    def entries(self) -> list[OutboxEntry]:
        """Every document ever put in the outbox, in the order they were written."""
        ...

    def unsent(self) -> list[OutboxEntry]:
        """Entries not yet acknowledged and not given up, in the order they were written."""
        ...

    def acknowledge(self, doc_hash: str, receipt: Mapping[str, Any], at: datetime) -> None:
        """Store the receiver's receipt (durably, before returning)."""
        ...

    def note_failure(self, doc_hash: str, error: str, at: datetime, *, give_up: bool = False) -> None:
        """Count a failed attempt and keep its reason (durably)."""
        ...

"""The scanner's outbox as the uploader service sees it: over the scanner service's control socket.

The scanner store is opened exclusively by the scanner service (firmware/scanner/store.py: no other
process reads the file while the polls may be open), so the uploader - its own process and systemd unit,
the one that talks to the network - never opens it. It asks the running scanner service instead:

    {"action": "outbox-unsent"}                          -> {"ok", "entries": [ENTRY...], "summary": LINES}
    {"action": "outbox-acknowledge", "hash", "receipt", "at"}
    {"action": "outbox-failure", "hash", "error", "at", "give_up"}

ENTRY is a document (kind, station, device_id, key_id, body and signature in base64) with its outbox
fields. The scanner answers these only to a caller running as its own user (SO_PEERCRED), and stores an
acknowledgement only when the receipt verifies with the receiver key of its election package: a member
of the box's group who can reach the socket cannot forge one.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware.common.control import ControlError, request
from firmware.common.transmission.documents import SignedDocument
from firmware.common.transmission.outbox import OutboxEntry


class RemoteOutbox:
    """The Outbox protocol over the scanner service's control socket; ControlError when it does not answer."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.summary: list[str] = []  # the committee's status lines, as of the last unsent()

    def entries(self) -> list[OutboxEntry]:
        return self.unsent()  # the uploader only ever needs the unsent ones

    def unsent(self) -> list[OutboxEntry]:
        answer = self._ask({"action": "outbox-unsent"})
        self.summary = [str(line) for line in answer.get("summary", [])]
        return [entry_from_json(e) for e in answer["entries"]]

    def acknowledge(self, doc_hash: str, receipt: Mapping[str, Any], at: datetime) -> None:
        self._ask({"action": "outbox-acknowledge", "hash": doc_hash, "receipt": dict(receipt), "at": at.isoformat()})

    def note_failure(self, doc_hash: str, error: str, at: datetime, *, give_up: bool = False) -> None:
        self._ask({"action": "outbox-failure", "hash": doc_hash, "error": error, "at": at.isoformat(),
                   "give_up": give_up})

    def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = request(self.socket_path, body)
        if not answer["ok"]:
            raise ControlError(f"the scanner service refused {body['action']}: {answer.get('message')}")
        return answer


def entry_to_json(entry: OutboxEntry) -> dict[str, Any]:
    d = entry.document
    return {"kind": d.kind, "station": d.station, "device_id": d.device_id, "key_id": d.key_id,
            "body": base64.b64encode(d.body).decode("ascii"), "signature": d.signature_b64,
            "created_at": entry.created_at.isoformat(), "attempts": entry.attempts, "last_error": entry.last_error}


def entry_from_json(e: Mapping[str, Any]) -> OutboxEntry:
    try:
        document = SignedDocument(str(e["kind"]), str(e["station"]), str(e["device_id"]), str(e["key_id"]),
                                  base64.b64decode(e["body"], validate=True), base64.b64decode(e["signature"],
                                                                                              validate=True))
        return OutboxEntry(document, datetime.fromisoformat(e["created_at"]), None, int(e["attempts"]),
                           e.get("last_error"), False)
    except (KeyError, TypeError, ValueError) as exc:
        raise ControlError(f"the scanner service's outbox entry is malformed ({type(exc).__name__}: {exc})") from None

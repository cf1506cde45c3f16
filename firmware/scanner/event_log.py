"""The scanner service's signed event log (firmware.common.eventlog) beside its store.

The store keeps its `device_event` table (the service reads it back: turnout hours done, power cuts for
the report); every event it commits is also written, under its catalogue id, to
`DEVICE_DIR/scanner-events.jsonl`, the log that is exported and verified. The store commits first: a
power cut between the two leaves the event in the table only, and the next start writes it to the log
with its own time (`catch_up`), so the log misses nothing the store holds.

    log = open_scanner_log(device_dir, identity, clock.now, store)   # at every start
    ...                                                              # the service logs as before
    log.close()                                                      # at the end of the day
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware.common.eventlog import EventLog, Signer, log_file_name
from firmware.common.events import EVENTS, SCANNER_KINDS, Service
from firmware.scanner.store import ScannerStore


def open_scanner_log(device_dir: Path, signer: Signer, now: Callable[[], datetime], store: ScannerStore) -> EventLog:
    """Open (or resume) the scanner's log, write what the store holds and the log lacks, and mirror every
    event the store commits from now on."""
    log = EventLog.open(Path(device_dir) / log_file_name(Service.SCANNER), Service.SCANNER, signer, now)
    catch_up(log, store)
    store.on_event = lambda kind, at, detail: write_event(log, kind, at, detail)
    return log


def event_id_of(kind: str) -> str:
    """The catalogue id of a store event kind (a kind that is itself a catalogue id stands for itself)."""
    if kind in EVENTS:
        return kind
    return SCANNER_KINDS.get(kind, "log.uncatalogued")


def write_event(log: EventLog, kind: str, at: datetime, detail: Mapping[str, Any]) -> None:
    """One store event into the log under its catalogue id; a kind or field the catalogue does not have
    becomes `log.uncatalogued` (never an exception in the middle of a ballot)."""
    event_id = event_id_of(kind)
    if event_id == "log.uncatalogued":
        log.append(event_id, {"kind": kind}, at)  # its detail is not checked against any declaration: dropped
        return
    log.append_or_note(event_id, dict(detail), at)


def catch_up(log: EventLog, store: ScannerStore) -> int:
    """Write to the log the store's events it does not hold (same id, time and detail); their number."""
    held = Counter(_key(r) for r in _records(log.path))
    missing = 0
    for event in store.events():
        event_id = event_id_of(event.kind)
        detail = {"kind": event.kind} if event_id == "log.uncatalogued" else event.detail
        key = (event_id, event.at.isoformat(), _canonical(detail))
        if held[key] > 0:
            held[key] -= 1
            continue
        write_event(log, event.kind, event.at, event.detail)
        missing += 1
    return missing


def _records(path: Path) -> list[dict]:
    out = []
    for raw in path.read_bytes().split(b"\n"):
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and "event" in record:
            out.append(record)
    return out


def _key(record: dict) -> tuple[str, str, str]:
    return (str(record.get("event")), str(record.get("at")), _canonical(record.get("detail") or {}))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

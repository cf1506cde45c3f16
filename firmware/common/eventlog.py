"""A service's event log: JSON lines, hash-chained, the chain's head signed with the device key.

    log = EventLog.open(device_dir / "scanner-events.jsonl", Service.SCANNER, identity, clock.now)
    log.append("polls.opened", {"state": "open"})
    log.close()                                   # log.closed, then its signed head
    check = verify_log(path, public_key)          # check.intact, check.problems (naming the lines)

One line is one event, RFC 8785 canonical JSON:
`{"at", "category", "detail", "event", "hash", "prev", "seq", "service", "v"}`. `event` is an id of the
catalogue (firmware.common.events) and `category` its VVSG 15.1 category; `detail` holds only the fields
the catalogue declares for it. `seq` counts this log's lines from 0. `prev` is the `hash` of the line
before (64 zeros for the first); `hash` is SHA-256 over the canonical JSON of the line without `hash`.
The first line is `log.opened` with a random `log_id`, so no two logs - of two services, or two boxes -
share a chain or a sequence (ARCHITECTURE "the secrecy wall": one log per service, nothing joins them).

Signed heads: a `log.head_signed` line carries the hash and seq of the line before it and an Ed25519
signature by the device key over `HEAD_CONTEXT | service | log_id | seq | hash`. The writer signs after
every polls, tamper and data event, every SIGN_EVERY lines, after the first event of a half hour without
a signature (SIGN_EVERY_S), at every start on an existing log and at close. So an
intact log never has more than SIGN_EVERY lines after its last signed head, and a verifier holding the
device's public key finds a rewritten chain (the signature fails) or removed signatures (too long an
unsigned run).

Durability: each line is one write() to a file opened O_APPEND, then fsync (and the directory is fsynced
when the file is made). A power cut (SIGKILL) can leave at most the last line torn - cut short, or zeros
where the filesystem had already extended the file. The next start terminates the fragment with a newline
and writes `log.resumed` naming it (line number, bytes, SHA-256), then chains on from the last whole
line. `verify_log` reports a fragment declared so, or one at the very end, as torn (a power cut), not as
tampering.

`verify_log` names what was done to a log: a line altered (its hash or the next line's `prev` does not
match), removed (a gap in `seq` where the chain breaks), inserted (a line off the chain, a copy of
another, or not a log line at all) or reordered (the chain's order is not the file's order).
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import itertools
import json
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.common.durable import fsync_path
from firmware.common.events import (
    FORBIDDEN_FIELDS,
    Category,
    EventType,
    Service,
    event_type,
)

FORMAT = "ballotbox-eventlog/1"
VERSION = 1
GENESIS = "0" * 64  # the `prev` of a log's first line
HEAD_CONTEXT = b"ballotbox-eventlog-head/1"  # domain separation: a head signature is never a document's
# Sign at least every 16 lines: a day logs some 20-60 events, so a power cut leaves at most a few
# minutes of events unsigned, and a verifier flags a longer unsigned run as removed signatures.
SIGN_EVERY = 16
# ... and at the first event after half an hour without a signature: a quiet afternoon's few events
# are not left unsigned until the close.
SIGN_EVERY_S = 1800.0
SIGN_AFTER_CATEGORIES = frozenset({Category.POLLS, Category.TAMPER, Category.DATA})
FIELDS = ("at", "category", "detail", "event", "hash", "prev", "seq", "service", "v")
_HEX = frozenset("0123456789abcdef")


class EventLogError(RuntimeError):
    """The log cannot take this event, or cannot be written; the message says why and what to do."""


class EventRefused(EventLogError):
    """The event is not what the catalogue declares (unknown id, another service's, undeclared field)."""


class Signer(Protocol):
    """What signs the chain's heads: firmware.common.identity.DeviceIdentity."""

    @property
    def device_id(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def log_file_name(service: Service | str) -> str:
    """The log's file name in the device's storage: one file per service."""
    return f"{Service(service).value}-events.jsonl"


class EventLog:
    """The append-only, hash-chained, signed log of one service. One writer per file (the service)."""

    def __init__(self, path: Path, service: Service, signer: Signer, now: Callable[[], datetime],
                 fd: int, seq: int, prev: str, log_id: str) -> None:
        self.path, self.service, self._signer, self._now = path, service, signer, now
        self._fd, self._seq, self._prev, self.log_id = fd, seq, prev, log_id
        self._since_signed = 0
        self._signed_at: datetime | None = None
        self.closed = False

    @classmethod
    def open(cls, path: Path, service: Service | str, signer: Signer, now: Callable[[], datetime]) -> EventLog:
        """Open the log at `path` for appending: a new one starts with `log.opened`; an existing one goes
        on from its last whole line with `log.resumed` (naming a torn last line) and a signed head."""
        path = Path(path)
        service = Service(service)
        if not path.parent.is_dir():
            raise EventLogError(f"{path}: the directory {path.parent} does not exist; create the device's "
                                "storage (provision the box) first")
        existing = path.read_bytes() if path.exists() else b""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EventLogError(f"{path}: cannot open the event log ({exc.strerror}); check the data partition "
                                "is mounted read-write") from None
        last, torn = _last_whole_line(existing)
        if last is None:
            log = cls(path, service, signer, now, fd, 0, GENESIS, secrets.token_hex(16))
            with contextlib.suppress(OSError):  # a directory that cannot be fsync'd never stops a log call
                fsync_path(path.parent)
            if torn is not None and not torn[2]:
                log._write(b"\n")
            log.append("log.opened", {"service": service.value, "device_id": signer.device_id,
                                      "key_fingerprint": signer.fingerprint, "log_id": log.log_id,
                                      "format": FORMAT})
        else:
            log_id = _log_id(existing)
            if last.get("service") != service.value:
                os.close(fd)
                raise EventLogError(f"{path}: this is the {last.get('service')!r} service's log, not "
                                    f"{service.value!r}'s; each service writes its own file")
            log = cls(path, service, signer, now, fd, int(last["seq"]) + 1, str(last["hash"]), log_id)
            if torn is not None and not torn[2]:
                log._write(b"\n")  # the fragment becomes a line of its own, kept as evidence
        if last is not None or torn is not None:
            detail: dict[str, Any] = {"torn_line": None, "torn_bytes": 0, "torn_sha256": None}
            if torn is not None:
                number, fragment, _ = torn
                detail = {"torn_line": number, "torn_bytes": len(fragment),
                          "torn_sha256": hashlib.sha256(fragment).hexdigest()}
            log.append("log.resumed", detail)
            log.sign_head()
        return log

    # -- writing ---------------------------------------------------------------------------------
    def append(self, event_id: str, detail: Mapping[str, Any] | None = None, at: datetime | None = None) -> dict:
        """Write one event (fsynced before this returns) and, when due, the signed head after it."""
        record = self._record(event_id, dict(detail or {}), at)
        if event_id == "log.head_signed":
            raise EventLogError("log.head_signed is written by sign_head(), never appended by a service")
        self._put(record)
        kind = event_type(event_id)
        when = datetime.fromisoformat(record["at"])
        if self._signed_at is None:
            self._signed_at = when  # the half hour runs from the log's first line
        stale = abs((when - self._signed_at).total_seconds()) >= SIGN_EVERY_S
        if kind.category in SIGN_AFTER_CATEGORIES or self._since_signed >= SIGN_EVERY or stale:
            self.sign_head(at)
        return record

    def append_or_note(self, event_id: str, detail: Mapping[str, Any] | None = None,
                       at: datetime | None = None) -> dict:
        """append(), but an event the catalogue refuses is written as `log.uncatalogued` (its kind and why,
        its detail dropped) instead of stopping the service: a service's log call must never stop a
        ballot. tests/test_eventlog.py checks that every kind the services write is catalogued."""
        try:
            return self.append(event_id, detail, at)
        except EventRefused as exc:
            return self.append("log.uncatalogued", {"kind": str(event_id)[:64], "reason": str(exc)[:300]}, at)

    def sign_head(self, at: datetime | None = None) -> dict:
        """Sign the chain's head (the last line written) with the device key, as a line of the chain."""
        head_seq, head = self._seq - 1, self._prev
        signature = self._signer.sign(head_message(self.service.value, self.log_id, head_seq, head))
        record = self._record("log.head_signed", {
            "head": head, "head_seq": head_seq, "signature": base64.b64encode(signature).decode("ascii"),
            "key_fingerprint": self._signer.fingerprint}, at)
        self._put(record)
        self._since_signed = 0
        self._signed_at = datetime.fromisoformat(record["at"])
        return record

    def close(self, at: datetime | None = None) -> None:
        """The end of the day: `log.closed` and its signed head; the file is released."""
        if self.closed:
            return
        record = self._record("log.closed", {}, at)
        self._put(record)
        self.sign_head(at)
        os.close(self._fd)
        self.closed = True

    def release(self) -> None:
        """Let go of the file without closing the log (a service stopping before the day's end)."""
        if not self.closed:
            os.close(self._fd)
            self.closed = True

    # -- internals -------------------------------------------------------------------------------
    def _record(self, event_id: str, detail: dict[str, Any], at: datetime | None) -> dict:
        if self.closed:
            raise EventLogError(f"{self.path}: the log is closed; {event_id!r} cannot be written after close")
        try:
            kind = event_type(event_id)
        except KeyError as exc:
            raise EventRefused(str(exc.args[0])) from None
        _check_detail(kind, self.service, detail)
        when = at or self._now()
        if not isinstance(when, datetime):
            raise EventLogError(f"{event_id}: at={when!r} is not a datetime; pass the clock's time")
        record = {"v": VERSION, "service": self.service.value, "seq": self._seq, "at": when.isoformat(),
                  "event": event_id, "category": kind.category.value, "detail": detail, "prev": self._prev}
        try:
            record["hash"] = line_hash(record)
        except (TypeError, ValueError, rfc8785.CanonicalizationError) as exc:
            raise EventRefused(f"{event_id}: the detail is not JSON data ({exc}); pass text, integers, "
                                "booleans, None and lists of them") from None
        return record

    def _put(self, record: dict) -> None:
        self._write(rfc8785.dumps(record) + b"\n")
        self._seq += 1
        self._prev = record["hash"]
        self._since_signed += 1

    def _write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:
            raise EventLogError(f"{self.path}: the event could not be written ({exc.strerror}); free space on the "
                                "data partition and call the operator") from None


def head_message(service: str, log_id: str, seq: int, head: str) -> bytes:
    """The bytes a head signature covers."""
    return b"\n".join([HEAD_CONTEXT, service.encode(), log_id.encode(), str(seq).encode(), head.encode()])


def line_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a line's canonical JSON without its own `hash`."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def _check_detail(kind: EventType, service: Service, detail: dict[str, Any]) -> None:
    if service not in kind.services:
        raise EventRefused(f"{kind.id}: the catalogue gives this event to {sorted(s.value for s in kind.services)}, "
                            f"not to the {service.value} log; log it in its own service")
    extra = sorted(set(detail) - kind.fields)
    if extra:
        forbidden = sorted(set(extra) & FORBIDDEN_FIELDS)
        why = (f"{forbidden} would put a vote or a voter in the log (VVSG 2.0 10.2.4-B)" if forbidden
               else f"the catalogue declares only {sorted(kind.fields)}")
        raise EventRefused(f"{kind.id}: detail fields {extra} refused: {why}; drop them or declare the field "
                            "in firmware/common/events.py")
    for key, value in detail.items():
        _check_value(kind.id, key, value)


def _check_value(event_id: str, key: str, value: Any) -> None:
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(event_id, key, item)
    elif not (value is None or isinstance(value, (str, int, bool))) and not (
            isinstance(value, float) and math.isfinite(value)):
        raise EventRefused(f"{event_id}: detail {key}={value!r}: only text, numbers, booleans, None and lists of "
                           "them go into a log line")


def _last_whole_line(data: bytes) -> tuple[dict | None, tuple[int, bytes, bool] | None]:
    """The last line that is a log record, and the torn last line if there is one: (its number, its
    bytes without a newline, whether it has its newline already)."""
    if not data:
        return None, None
    lines = data.split(b"\n")
    torn: tuple[int, bytes, bool] | None = None
    if lines[-1] == b"":
        lines.pop()
        if lines and _parse(lines[-1]) is None:  # whole but not a record: zeros a cut left behind
            torn = (len(lines), lines[-1], True)
    else:
        torn = (len(lines), lines[-1], False)
    for raw in reversed(lines[: torn[0] - 1] if torn else lines):
        record = _parse(raw)
        if record is not None:
            return record, torn
    return None, torn


def _log_id(data: bytes) -> str:
    for raw in data.split(b"\n"):
        record = _parse(raw)
        if record is not None and record["event"] == "log.opened":
            return str(record["detail"].get("log_id", ""))
    return ""


def _parse(raw: bytes) -> dict | None:
    """A line as a record with every field of the right type, or None."""
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or set(record) != set(FIELDS):
        return None
    ok = (record["v"] == VERSION and isinstance(record["seq"], int) and not isinstance(record["seq"], bool)
          and record["seq"] >= 0 and all(isinstance(record[k], str) for k in ("service", "at", "event", "category"))
          and isinstance(record["detail"], dict) and _is_hash(record["prev"]) and _is_hash(record["hash"]))
    return record if ok else None


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


# ================================================================================================
# Verification
# ================================================================================================
@dataclass
class LogCheck:
    """What verify_log found. `problems` are tampering (exit 1); `torn` and `notes` are not."""

    path: Path
    service: str | None = None
    lines: int = 0
    problems: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signed_heads: int = 0
    closed: bool = False
    events: dict[str, int] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.problems


@dataclass
class _Entry:
    line: int
    raw: bytes
    record: dict
    self_ok: bool

    @property
    def seq(self) -> int:
        return int(self.record["seq"])

    @property
    def hash(self) -> str:
        return str(self.record["hash"])

    @property
    def prev(self) -> str:
        return str(self.record["prev"])

    def name(self) -> str:
        return f"line {self.line} (seq {self.seq}, {self.record['event']})"


def verify_log(path: Path, key: Ed25519PublicKey | None = None) -> LogCheck:
    """Check a log file: the chain, each line's hash, the catalogue, and with `key` every signed head.
    Raises FileNotFoundError / IsADirectoryError / PermissionError for a path that cannot be read."""
    path = Path(path)
    data = path.read_bytes()
    check = LogCheck(path)
    raw_lines = data.split(b"\n")
    terminated = raw_lines[-1] == b""
    if terminated:
        raw_lines.pop()
    check.lines = len(raw_lines)
    entries: list[_Entry] = []
    unparsed: list[tuple[int, bytes]] = []
    for number, raw in enumerate(raw_lines, 1):
        record = _parse(raw)
        if record is None:
            unparsed.append((number, raw))
        else:
            entries.append(_Entry(number, raw, record, line_hash(record) == record["hash"]))
    if not entries:
        check.problems.append(f"{path}: no log line at all" if not data else f"{path}: not an event log "
                              f"({FORMAT}): no line is a log record")
        return check
    _torn_lines(check, unparsed, entries, terminated)
    chain = _chain(check, entries)
    _catalogue(check, chain)
    _signatures(check, chain, key)
    for e in chain:
        check.events[e.record["event"]] = check.events.get(e.record["event"], 0) + 1
    return check


def _torn_lines(check: LogCheck, unparsed: list[tuple[int, bytes]], entries: list[_Entry], terminated: bool) -> None:
    """An unparsable line is torn (a power cut) if the next `log.resumed` declares it, or if it is the
    last line of the file; anything else that is not a log line was put there."""
    for number, raw in unparsed:
        later = [e for e in entries if e.line > number and e.record["event"] == "log.resumed"]
        declared = later[0] if later else None
        if (declared is not None and declared.record["detail"].get("torn_line") == number
                and declared.record["detail"].get("torn_sha256") == hashlib.sha256(raw).hexdigest()):
            check.torn.append(f"line {number}: torn by a power cut ({len(raw)} bytes), declared by "
                              f"line {declared.line}; the chain resumed there")
            continue
        if number == check.lines and not any(e.line > number for e in entries):
            check.torn.append(f"line {number}: torn by a power cut ({len(raw)} bytes, "
                              f"{'no newline' if not terminated else 'not a whole line'}): the last line, "
                              "never completed")
            continue
        check.problems.append(f"line {number}: not a log line ({len(raw)} bytes): inserted or altered")


def _chain(check: LogCheck, entries: list[_Entry]) -> list[_Entry]:
    """The log's chain rebuilt from the links, with every break named; returns it in chain order."""
    first: dict[str, _Entry] = {}
    nodes: list[_Entry] = []
    for e in entries:
        if e.hash in first:
            check.problems.append(f"{e.name()}: inserted: a copy of line {first[e.hash].line}")
            continue
        first[e.hash] = e
        nodes.append(e)
    for e in nodes:
        if not e.self_ok:
            check.problems.append(f"{e.name()}: altered: its content does not match its hash")
    children: dict[str, list[_Entry]] = {}
    for e in nodes:
        children.setdefault(e.prev, []).append(e)
    depth = _depths(nodes, children)
    roots = sorted((e for e in nodes if e.prev == GENESIS or e.prev not in first), key=lambda e: (e.seq, e.line))
    if not roots:
        check.problems.append("the chain has no beginning: every line chains to another (lines were altered)")
        return []
    chain: list[_Entry] = []
    on_chain: set[int] = set()
    segments: list[list[_Entry]] = []
    for root in roots:
        if id(root) in on_chain:
            continue
        segment = [root]
        on_chain.add(id(root))
        while True:
            kids = [k for k in children.get(segment[-1].hash, []) if id(k) not in on_chain]
            if not kids:
                break
            best = max(kids, key=lambda k: (depth[id(k)], -k.line))
            segment.append(best)
            on_chain.add(id(best))
        segments.append(segment)
    # the chain is the segments in order of seq; a second segment starts where the links broke
    segments.sort(key=lambda s: (s[0].seq, s[0].line))
    if segments[0][0].prev != GENESIS or segments[0][0].seq != 0:
        head = segments[0][0]
        check.problems.append(f"removed: seq 0..{head.seq - 1}, the lines before {head.name()}" if head.seq > 0
                              else f"{head.name()}: altered: the first line does not start the chain")
    for before, after in itertools.pairwise(segments):
        last, nxt = before[-1], after[0]
        if nxt.seq > last.seq + 1:
            gone = f"seq {last.seq + 1}" if nxt.seq == last.seq + 2 else f"seq {last.seq + 1}..{nxt.seq - 1}"
            check.problems.append(f"removed: {gone}, between {last.name()} and {nxt.name()}")
        elif last.self_ok:
            check.problems.append(f"{last.name()}: altered: {nxt.name()} chained another line after seq "
                                  f"{last.seq} (the line was rewritten with a new hash)")
    for segment in segments:
        chain += segment
    for prev, e in itertools.pairwise(chain):
        if e.prev == prev.hash and e.seq != prev.seq + 1:
            check.problems.append(f"{e.name()}: altered: seq {e.seq} follows seq {prev.seq}")
    for e in nodes:
        if id(e) not in on_chain:
            check.problems.append(f"{e.name()}: inserted: it is not on the log's chain")
    position = {id(e): i for i, e in enumerate(chain)}
    for e in _out_of_order(chain):
        i = position[id(e)]
        where = f"after line {chain[i - 1].line} (seq {chain[i - 1].seq})" if i else "first"
        check.problems.append(f"{e.name()}: reordered: by the chain it belongs {where}")
    return chain


def _depths(nodes: list[_Entry], children: dict[str, list[_Entry]]) -> dict[int, int]:
    """Length of the longest chain below each line (iteratively: a long log must not hit the stack)."""
    depth: dict[int, int] = {}
    for start in nodes:
        stack = [(start, False)]
        while stack:
            node, done = stack.pop()
            if id(node) in depth:
                continue
            kids = children.get(node.hash, [])
            if done:
                depth[id(node)] = 1 + max((depth[id(k)] for k in kids), default=0)
            else:
                stack.append((node, True))
                stack.extend((k, False) for k in kids if id(k) not in depth)
    return depth


def _out_of_order(chain: list[_Entry]) -> list[_Entry]:
    """The lines off the longest run of increasing file positions along the chain: the moved ones
    (patience sorting, O(n log n))."""
    lines = [e.line for e in chain]
    if lines == sorted(lines):
        return []
    tails: list[int] = []  # tails[k]: index in chain of the smallest last line of a run of length k+1
    tail_lines: list[int] = []
    back = [-1] * len(lines)
    for i, line in enumerate(lines):
        k = bisect.bisect_left(tail_lines, line)
        back[i] = tails[k - 1] if k else -1
        if k == len(tails):
            tails.append(i)
            tail_lines.append(line)
        else:
            tails[k], tail_lines[k] = i, line
    keep: set[int] = set()
    i = tails[-1]
    while i >= 0:
        keep.add(i)
        i = back[i]
    return sorted((chain[i] for i in range(len(chain)) if i not in keep), key=lambda e: e.line)


def _catalogue(check: LogCheck, chain: list[_Entry]) -> None:
    if not chain:
        return
    opened = [e for e in chain if e.record["event"] == "log.opened"]
    service = opened[0].record["detail"].get("service") if opened else chain[0].record["service"]
    check.service = service
    for e in chain:
        r = e.record
        try:
            kind = event_type(r["event"])
        except KeyError:
            check.problems.append(f"{e.name()}: event {r['event']!r} is not in the catalogue")
            continue
        if r["category"] != kind.category.value:
            check.problems.append(f"{e.name()}: category {r['category']!r}, the catalogue says {kind.category.value!r}")
        if r["service"] != service:
            check.problems.append(f"{e.name()}: a line of the {r['service']!r} log in the {service!r} log")
        extra = sorted(set(r["detail"]) - kind.fields)
        if extra:
            check.problems.append(f"{e.name()}: detail fields {extra} that the catalogue does not declare")


def _signatures(check: LogCheck, chain: list[_Entry], key: Ed25519PublicKey | None) -> None:
    heads = [i for i, e in enumerate(chain) if e.record["event"] == "log.head_signed"]
    check.closed = len(chain) >= 2 and chain[-1].record["event"] == "log.head_signed" and \
        chain[-2].record["event"] == "log.closed"
    opened = [e for e in chain if e.record["event"] == "log.opened"]
    log_id = str(opened[0].record["detail"].get("log_id", "")) if opened else ""
    if key is None:
        check.notes.append(f"{len(heads)} signed heads not checked: give the device's public key (--key) to "
                           "check them")
        return
    last_good = -1
    for i in heads:
        e = chain[i]
        d = e.record["detail"]
        before = chain[i - 1] if i > 0 else None
        if before is None or d.get("head") != before.hash or d.get("head_seq") != before.seq:
            check.problems.append(f"{e.name()}: the signed head does not name the line before it "
                                  "(lines were inserted, removed or rewritten before it)")
            continue
        try:
            signature = base64.b64decode(str(d.get("signature", "")), validate=True)
            key.verify(signature, head_message(str(check.service), log_id, before.seq, before.hash))
        except (InvalidSignature, ValueError):
            since = chain[last_good + 1].line if last_good + 1 < len(chain) else e.line
            check.problems.append(f"{e.name()}: the signature over the head does not verify with this key: lines "
                                  f"{since}..{before.line} were rewritten, or another key signed them")
            continue
        check.signed_heads += 1
        last_good = i
    unsigned = len(chain) - 1 - last_good
    if unsigned > SIGN_EVERY + 2:  # + log.resumed and the signed head that follows every start
        first = chain[last_good + 1]
        check.problems.append(f"lines {first.line}..{chain[-1].line}: {unsigned} lines without a valid signed head "
                              f"after them; the box signs at least every {SIGN_EVERY} (signatures were removed, "
                              "or the lines rewritten)")
    elif unsigned:
        check.notes.append(f"the last {unsigned} line(s) are not yet covered by a signed head (a log still being "
                           "written, or cut off by a power cut)")

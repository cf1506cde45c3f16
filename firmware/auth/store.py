"""The auth service's store: only what the law asks the desk to keep, in an order no byte reveals.

What is kept (Art. 12-14, 34):
- which register voters have been authenticated (a second vote is an impersonation attempt), keyed by
  a keyed hash of the JMBG (HMAC-SHA256 under `register.pseudonym_key`, 16 bytes);
- aggregate counters: successes, failures, re-identified, refused, attempts histogram, impersonation
  attempts, sex and age group of those authenticated, problems, and the time per authentication as a
  histogram (bins of DURATION_EDGES_S), never a list of times;
- the two legal records that do carry a person and a time: the re-identification register (name and
  time of voting, Art. 12(5)) and the impersonation records (Art. 12(7), for the ZARBO).

Secrecy, as the scanner's store (firmware/scanner/store.py) and for the same reasons:
1. No rowid order: every table is WITHOUT ROWID. The voter table is allocated *before* the polls open
   with one row per register voter (state 'N'); authenticating flips the one-character state in place
   (a same-size update), so the table's bytes depend on the register and the final set only. The
   allocation is followed by a VACUUM (layout by key). Counters are pre-allocated fixed-size blobs.
2. secure_delete=ON; nothing is deleted during the day anyway.
3. The rollback journal runs in PERSIST mode with locking_mode=EXCLUSIVE, and after every write
   transaction it is overwritten with zeros (its pre-image pages are the state before the last voter).
4. synchronous=FULL: an authentication is on disk before the panel says so.
5. A visit is one transaction (`record_visit`): whatever the desk counted for a voter (a document
   problem, failed touches, the verdict, a legal record) is written together when the visit reaches its
   verdict, so a power cut leaves a visit either wholly on disk or not at all, never half of it.
   The one place that depends on order is the `last_visit` slot: the number of visits decided so far
   and the verdict and keyed hash of the latest, overwritten in place by each visit and zeroed at the
   close. After a power cut it tells the committee whether the voter at the desk was decided before the
   cut (`firmware.auth.service.AuthService.resume_polls`); after the close it holds nothing.
The legal records are inserted under random 16-byte keys; they carry their time by law, so their
order is public anyway. The store shares no id, sequence or clock with the scanner: its keys are
random or keyed hashes, its only times are those of the legal records and of the polls.

The event log (`auth-events.jsonl`) holds polls-level events only (opened, closed, register wiped):
nothing per voter, so turnout by minute cannot be read from it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware.common import failpoints
from firmware.common.eventlog import EventLog
from firmware.common.events import AUTH_KINDS
from firmware.common.sqlite_secrecy import pad, scrub_journal, unpad

FORMAT_VERSION = "2"  # 2: visits are one transaction, the last_visit slot
PSEUDONYM_BYTES = 16
RECORD_SIZE = 256  # a legal record's blob: 2-byte length + canonical JSON + zero padding
VALUE_SIZE = 64  # a polls value (ISO time), padded
LAST_VISIT_SIZE = 128  # the last_visit slot: {"visit": n, "verdict": ..., "voter": pseudonym hex}, padded
PAGE_SIZE = 4096
JOURNAL_KEEP_PAGES = 16  # a larger journal (the vacuum at set-up) is zeroed, then truncated
LOG_FILE = "auth-events.jsonl"
DB_FILE = "auth.sqlite"

# Time from document read to the desk's decision. Bins in seconds: fine where most voters are (10-40 s),
# coarse in the tail; a histogram says how long the desk took without saying when anyone came.
DURATION_EDGES_S = (5, 10, 15, 20, 25, 30, 40, 50, 60, 90, 120, 180, 300)
AGE_GROUPS = ((18, 29), (30, 44), (45, 64), (65, 200))  # the CEC's statistical groups
MAX_ATTEMPTS_COUNTED = 3

NOT_YET, AUTHENTICATED, REIDENTIFIED = "N", "A", "R"
VERDICTS = ("authenticated", "reidentified", "refused", "impersonation")
LEGAL_KINDS = ("reidentified", "impersonation")
PROBLEMS = ("document", "sensor", "application", "network")

COUNTERS: tuple[str, ...] = (
    "visits", "authenticated", "reidentified", "refused", "not_in_register", "no_template", "failures", "impersonation",
    *(f"attempts.{n}" for n in range(1, MAX_ATTEMPTS_COUNTED + 1)),
    "sex.M", "sex.F", *(f"age.{lo}" for lo, _ in AGE_GROUPS),
    *(f"duration.{i}" for i in range(len(DURATION_EDGES_S) + 1)),
    *(f"problem.{p}" for p in PROBLEMS),
)
_COUNTER = struct.Struct(">Q")
_VOTER_KEYS = frozenset({"jmbg", "name", "voter", "register_number", "document_number", "template"})


class AuthStoreError(RuntimeError):
    """The auth store cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class LastVisit:
    """The slot written with every visit: how many visits were decided, and the latest's verdict and the
    keyed hash of the voter it was about (None for a person not on the register)."""

    number: int
    verdict: str
    pseudonym: bytes | None


@dataclass
class Visit:
    """What one visit at the desk adds to the store, gathered while the voter is served and written in
    one transaction at the verdict (`AuthStore.record_visit`)."""

    counts: dict[str, int] = field(default_factory=dict)
    jmbg: str | None = None  # the register voter the visit was about
    authenticated: str | None = None  # AUTHENTICATED or REIDENTIFIED: the voter's state flips to it
    legal: list[LegalRecord] = field(default_factory=list)

    def count(self, name: str, by: int = 1) -> None:
        if name not in COUNTERS or name == "visits":
            raise AuthStoreError(f"counter {name!r} is not one of the auth store's counters")
        self.counts[name] = self.counts.get(name, 0) + by

    def authenticate(self, jmbg: str, *, sex: str, age: int, attempts: int, seconds: float,
                     reidentified: LegalRecord | None = None) -> None:
        """The voter authenticated by finger, or re-identified by the committee (with its legal record)."""
        self.jmbg = jmbg
        self.authenticated = REIDENTIFIED if reidentified is not None else AUTHENTICATED
        self.count("reidentified" if reidentified is not None else "authenticated")
        for name in (f"sex.{sex}", f"age.{_age_group(age)}", f"duration.{_duration_bin(seconds)}"):
            self.count(name)
        if reidentified is None:
            self.count(f"attempts.{min(max(attempts, 1), MAX_ATTEMPTS_COUNTED)}")
        else:
            self.legal.append(reidentified)

    def impersonation(self, record: LegalRecord) -> None:
        self.count("impersonation")
        self.legal.append(record)


@dataclass(frozen=True)
class LegalRecord:
    kind: str  # "reidentified" | "impersonation"
    at: datetime
    detail: dict[str, Any]  # name (and register number) of the person; for impersonation, what happened


class AuthStore:
    """The desk's store in `data_dir`; create() allocates it for a register before the polls open."""

    def __init__(self, data_dir: Path, key: bytes | None) -> None:
        """`key`: the pseudonym key (firmware.auth.register.pseudonym_key); None once the register's key is
        destroyed (after the wipe): the store is then read only for the report."""
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILE
        self.log_path = self.data_dir / LOG_FILE
        self._key = key
        exists = self.path.exists()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("locking_mode=EXCLUSIVE", f"page_size={PAGE_SIZE}", "journal_mode=PERSIST",
                       "synchronous=FULL", "secure_delete=ON", "temp_store=MEMORY"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the exclusive lock now
        self._scrub_journal()
        self.created = exists
        # The signed, chained log (firmware.common.eventlog.EventLog) once the device key is at hand;
        # until then (and in tests that give none) the plain JSON lines of LOG_FILE.
        self.event_log: EventLog | None = None

    @classmethod
    def create(cls, data_dir: Path, key: bytes, jmbgs: Iterable[str]) -> AuthStore:
        """Allocate the store for the register's voters (before opening; refuses an existing store)."""
        if (Path(data_dir) / DB_FILE).exists():
            raise AuthStoreError(f"{Path(data_dir) / DB_FILE}: an auth store exists already; it is made once per election")
        store = cls(data_dir, key)
        db = store._db
        with store._write():
            db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
            db.execute("CREATE TABLE voter (pseudonym BLOB PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID")
            db.execute("CREATE TABLE counter (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
            db.execute("CREATE TABLE legal_record (id BLOB PRIMARY KEY, kind TEXT NOT NULL, body BLOB NOT NULL)"
                       " WITHOUT ROWID")
            db.executemany("INSERT INTO meta VALUES (?, ?)",
                           [(n, pad(b"", VALUE_SIZE)) for n in ("format", "opened_at", "closed_at")])
            db.execute("INSERT INTO meta VALUES ('last_visit', ?)", (pad(b"", LAST_VISIT_SIZE),))
            db.execute("UPDATE meta SET value = ? WHERE name = 'format'", (pad(FORMAT_VERSION.encode(), VALUE_SIZE),))
            pseudonyms = sorted({store.pseudonym(j) for j in jmbgs})
            db.executemany("INSERT INTO voter VALUES (?, ?)", [(p, NOT_YET) for p in pseudonyms])
            db.executemany("INSERT INTO counter VALUES (?, ?)", [(n, _COUNTER.pack(0)) for n in COUNTERS])
        db.execute("VACUUM")
        store._scrub_journal()
        return store

    # -- the desk's writes -------------------------------------------------------------------------
    def pseudonym(self, jmbg: str) -> bytes:
        if self._key is None:
            raise AuthStoreError(f"{self.path}: the pseudonym key was destroyed with the register (the wipe "
                                 "after the close); no voter can be looked up any more")
        return hmac.new(self._key, jmbg.encode("ascii"), hashlib.sha256).digest()[:PSEUDONYM_BYTES]

    def state_of(self, jmbg: str) -> str | None:
        row = self._db.execute("SELECT state FROM voter WHERE pseudonym = ?", (self.pseudonym(jmbg),)).fetchone()
        return None if row is None else str(row[0])

    def record_visit(self, visit: Visit, verdict: str | None) -> int:
        """One visit, in one transaction: its counters, the voter's state, its legal records and, with a
        verdict (one of VERDICTS), the visits counter and the last_visit slot. Returns the visits decided
        so far. A visit cut short without a verdict (the polls closed on it) keeps its counters only."""
        if verdict is not None and verdict not in VERDICTS:
            raise AuthStoreError(f"verdict {verdict!r}: one of {VERDICTS}")
        with self._write():
            if visit.authenticated is not None:
                if visit.jmbg is None:
                    raise AuthStoreError("an authenticated visit names its register voter")
                cur = self._db.execute("UPDATE voter SET state = ? WHERE pseudonym = ? AND state = ?",
                                       (visit.authenticated, self.pseudonym(visit.jmbg), NOT_YET))
                if cur.rowcount != 1:
                    raise AuthStoreError("this voter is not in the register or is authenticated already")
            for name, by in visit.counts.items():
                self._add(name, by)
            for record in visit.legal:
                self._insert_legal(record)
            if verdict is None:
                return self.counters()["visits"]
            number = self._add("visits", 1)
            slot = {"visit": number, "verdict": verdict,
                    "voter": self.pseudonym(visit.jmbg).hex() if visit.jmbg is not None else None}
            self._db.execute("UPDATE meta SET value = ? WHERE name = 'last_visit'",
                             (pad(json.dumps(slot, sort_keys=True).encode(), LAST_VISIT_SIZE),))
        return number

    def last_visit(self) -> LastVisit | None:
        """The slot of the latest decided visit (None before the first, after the close, or in a store of
        format 1, which had no slot)."""
        row = self._db.execute("SELECT value FROM meta WHERE name = 'last_visit'").fetchone()
        text = unpad(row[0]) if row is not None else b""
        if not text:
            return None
        data = json.loads(text)
        return LastVisit(int(data["visit"]), str(data["verdict"]),
                         bytes.fromhex(data["voter"]) if data.get("voter") else None)

    def record_authenticated(self, jmbg: str, *, sex: str, age: int, attempts: int, seconds: float,
                             reidentified: LegalRecord | None = None) -> None:
        """One voter authenticated (by finger, or re-identified by the committee), as a visit of its own."""
        visit = Visit()
        visit.authenticate(jmbg, sex=sex, age=age, attempts=attempts, seconds=seconds, reidentified=reidentified)
        self.record_visit(visit, "reidentified" if reidentified is not None else "authenticated")

    def count(self, name: str, by: int = 1) -> None:
        """A counter on its own (no visit decided)."""
        visit = Visit()
        visit.count(name, by)
        self.record_visit(visit, None)

    def record_impersonation(self, record: LegalRecord, jmbg: str | None = None) -> None:
        visit = Visit(jmbg=jmbg)
        visit.impersonation(record)
        self.record_visit(visit, "impersonation")

    def set_polls(self, name: str, at: datetime) -> None:
        if name not in ("opened_at", "closed_at"):
            raise AuthStoreError(f"polls value {name!r}: only opened_at and closed_at are kept")
        with self._write():
            self._db.execute("UPDATE meta SET value = ? WHERE name = ?", (pad(at.isoformat().encode(), VALUE_SIZE), name))
            if name == "closed_at":  # the only order-dependent bytes go with the day
                self._db.execute("UPDATE meta SET value = ? WHERE name = 'last_visit'", (pad(b"", LAST_VISIT_SIZE),))
        self.log_event(f"polls.{name[:-3]}", {"at": at.isoformat()})

    def log_event(self, kind: str, detail: dict[str, Any]) -> None:
        """Append a polls-level event; anything naming a voter is refused (nothing per voter is logged)."""
        if _VOTER_KEYS & set(detail):
            raise AuthStoreError(f"event {kind!r}: the auth log holds no voter data ({sorted(_VOTER_KEYS & set(detail))})")
        if self.event_log is not None:
            payload = dict(detail)
            at = payload.pop("at", None)
            self.event_log.append_or_note(AUTH_KINDS.get(kind, kind), payload,
                                          datetime.fromisoformat(at) if isinstance(at, str) else None)
            return
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": kind, **detail}, sort_keys=True, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- reading -----------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        rows = self._db.execute("SELECT name, value FROM counter").fetchall()
        values = {str(n): _COUNTER.unpack(v)[0] for n, v in rows}
        return {n: values.get(n, 0) for n in COUNTERS}

    def format(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
        return unpad(row[0]).decode() if row else "?"

    def polls(self, name: str) -> datetime | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        text = unpad(row[0]).decode() if row else ""
        return datetime.fromisoformat(text) if text else None

    def legal_records(self, kind: str) -> list[LegalRecord]:
        """The records of `kind`, in order of time (the law asks for the time; it is printed)."""
        rows = self._db.execute("SELECT body FROM legal_record WHERE kind = ?", (kind,)).fetchall()
        records = []
        for (body,) in rows:
            data = json.loads(unpad(body))
            records.append(LegalRecord(kind, datetime.fromisoformat(data.pop("at")), data))
        return sorted(records, key=lambda r: (r.at, json.dumps(r.detail, sort_keys=True)))

    def voters_authenticated(self) -> int:
        (n,) = self._db.execute("SELECT count(*) FROM voter WHERE state != ?", (NOT_YET,)).fetchone()
        return int(n)

    def close(self) -> None:
        self._db.close()

    # -- internals ---------------------------------------------------------------------------------
    def _add(self, name: str, by: int) -> int:
        if name not in COUNTERS:
            raise AuthStoreError(f"counter {name!r} is not one of the auth store's counters")
        row = self._db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
        if row is None:  # a store of format 1 has no visits counter
            raise AuthStoreError(f"counter {name!r} is missing: this auth store was made by an older version "
                                 f"(format {self.format()}); finish its day with that version")
        value = _COUNTER.unpack(row[0])[0] + by
        self._db.execute("UPDATE counter SET value = ? WHERE name = ?", (_COUNTER.pack(value), name))
        return value

    def _insert_legal(self, record: LegalRecord) -> None:
        if record.kind not in LEGAL_KINDS:
            raise AuthStoreError(f"legal record kind {record.kind!r}: one of {LEGAL_KINDS}")
        # The law asks for the time of voting (Art. 12(5)); the minute is that time as the committee writes
        # it. Seconds and microseconds would only help line the record up with other clocks.
        at = record.at.replace(second=0, microsecond=0)
        body = json.dumps({"at": at.isoformat(), **record.detail}, sort_keys=True, ensure_ascii=False).encode()
        self._db.execute("INSERT INTO legal_record VALUES (?, ?, ?)", (os.urandom(16), record.kind, pad(body, RECORD_SIZE)))

    def _write(self) -> _Transaction:
        return _Transaction(self)

    def _scrub_journal(self) -> None:
        scrub_journal(self.path, truncate_above=JOURNAL_KEEP_PAGES * PAGE_SIZE, error=AuthStoreError)


class _Transaction:
    def __init__(self, store: AuthStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type:
            self.store._db.execute("ROLLBACK")
        else:
            failpoints.hit("auth.commit.before")
            self.store._db.execute("COMMIT")
            failpoints.hit("auth.commit.after")
        self.store._scrub_journal()


def histogram_quantile(counts: Sequence[int], q: float, edges: Sequence[float] = DURATION_EDGES_S) -> float | None:
    """The q-quantile (0..1) of a duration histogram, interpolated linearly inside its bin (the open
    last bin reports its lower edge). None for an empty histogram."""
    total = sum(counts)
    if total == 0:
        return None
    target = q * total
    seen = 0.0
    lows = (0.0, *edges)
    for i, count in enumerate(counts):
        if count and seen + count >= target:
            if i >= len(edges):
                return float(lows[i])
            return float(lows[i] + (edges[i] - lows[i]) * (target - seen) / count)
        seen += count
    return float(lows[-1])


def _age_group(age: int) -> int:
    for lo, hi in AGE_GROUPS:
        if lo <= age <= hi:
            return lo
    return AGE_GROUPS[0][0]  # under 18 cannot be on the register; counted with the youngest if it ever is


def _duration_bin(seconds: float) -> int:
    for i, edge in enumerate(DURATION_EDGES_S):
        if seconds < edge:
            return i
    return len(DURATION_EDGES_S)



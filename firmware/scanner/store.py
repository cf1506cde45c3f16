"""The scanner service's store: cast-vote records whose order no byte on disk reveals.

VVSG 2.0 10.2.2-B: no stored data or metadata may reveal the order in which ballots were cast.
SQLite keeps traces of commit order in four places, and this store closes each of them:

1. **Row order.** No rowid, no AUTOINCREMENT (no `sqlite_sequence`), no append-only chain. Records
   live in `cvr_slot`, a WITHOUT ROWID table keyed by 16 random bytes. Slots are allocated before
   the polls open, all empty; a cast takes a *uniformly random* empty slot, never "the next one".
2. **Page allocation and layout.** Every cell of `cvr_slot` has the same size for ever: the state
   is a one-character text ('E' empty, 'P' pending, 'C' cast; not the integers 0/1/2, which SQLite
   stores in 0, 0 and 1 bytes) and the record a blob of fixed size (2-byte length + canonical JSON +
   zero padding), never in overflow pages (the page size is chosen so a whole slot fits one cell).
   A same-size UPDATE overwrites the cell in place,
   so no page splits, merges or moves after allocation, and the bytes of the table are a function of
   its final content only (tests/test_store_secrecy.py proves it: the same records written in another
   order give a byte-identical file). There is no index over a mutable column (its entries would move).
   Counters and polls values are fixed-size blobs for the same reason. Allocation is followed by a
   VACUUM, which rebuilds the file in key order: the layout then depends on the set of slot ids alone.
3. **Freed pages.** Nothing holding ballot data is ever deleted; `secure_delete=ON` zeroes whatever
   is freed anyway (VACUUM, the event log never shrinks).
4. **The journal.** WAL is never used (a WAL is an append-only chain of commits). The rollback
   journal runs in PERSIST mode: after a commit SQLite zeroes its header but leaves the pre-image
   pages, i.e. the state before the last ballot, which would reveal the last vote. After every write
   transaction (and at open, after SQLite has rolled back any hot journal) the whole journal file is
   overwritten with zeros in place and fsynced; that is safe because its header is already invalid.
   A journal that grew large (VACUUM) is zeroed and then truncated. Temporary files stay in memory
   (`temp_store=MEMORY`). The connection uses `locking_mode=EXCLUSIVE`, set before anything reads
   the file: otherwise the first read after a power cut rolls a hot journal back in the default
   journal mode and SQLite *deletes* the journal, leaving the ballot being written in freed,
   unerased filesystem blocks (tests/test_store_secrecy.py covers that power cut).

Running per-list / per-candidate totals are deliberately absent: the journal pre-image of a total
(or the order of its updates) would give the last vote away. firmware/scanner/tally.py computes results
from the records at report time. The counters on disk are ballots cast per style and ballots
returned per style; neither reveals a vote.

When the empty slots run low during the day a new batch is allocated (`begin_cast` does it by
itself below the low-water mark). Ballots cast after a batch would otherwise crowd into the new
slots, and a forensic rebuild of the B-tree might tell new slots from old; so a batch allocated while
ballots are stored also re-deals every stored record to a uniformly random slot of the enlarged table,
and the VACUUM that follows gives the file the layout it would have had if all slots had existed from
the start.

Ballot flow (ARCHITECTURE.md "Data flows: Ballot"): `begin_cast` writes the record into a random
empty slot as PENDING and commits with synchronous=FULL (the intent, on disk before the motor drops
the ballot); `confirm_cast` flips it to CAST and increments the style's counter in one transaction
once the exit sensor saw the drop; `abort_cast` empties the slot again. After a power cut `recover`
resolves the (at most one) open intent from the sensors: a ballot is never lost or counted twice.

Residual risks that cannot be fixed from user space (mitigate them in the OS image):
- SD cards and eMMC remap writes (wear levelling): an "in-place" overwrite of a journal or table page
  lands in a new flash block and the old block keeps the previous bytes until the controller erases
  it. Reading them needs a chip-off attack on the card. Mitigation: an encrypted data partition
  (dm-crypt/LUKS) whose key is not stored on the card in the clear.
- Filesystems that do not overwrite in place defeat the scrub: copy-on-write or log-structured ones
  (btrfs, ZFS, f2fs) and ext4 mounted with `data=journal` keep older copies of pages. Use ext4 with
  the default `data=ordered`.
- Swap, core dumps and the OS page cache may hold pages in RAM or on the swap file: disable swap
  (dphys-swapfile) and core dumps on the box.
- File metadata: the mtime of the database and journal is the time of the last write. The header's
  change counter (exclusive mode: one step per session and per rebuild) and the journal's length
  count events, they order no ballots.
- The in-place overwrite is SQLite's behaviour for a same-size update (checked with SQLite 3.40),
  not a documented guarantee: the byte-identity tests in tests/test_store_secrecy.py must pass on
  the SQLite shipped with the OS image before it is certified.
- While an intent is open (about a second) the pending record is, by nature, the current ballot.
- The device event log keeps times; it never holds votes (`log_event` refuses vote keys), but do not
  log an event per cast ballot: its time adds nothing useful and narrows down turnout-by-minute.

Not thread-safe: the scanner service owns the store and calls it from one thread; one process only.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from firmware.common import failpoints
from firmware.common.sqlite_secrecy import pad, scrub_journal, unpad
from firmware.common.transmission.documents import SignedDocument
from firmware.common.transmission.outbox import OutboxEntry

if TYPE_CHECKING:
    from config.election import Election

FORMAT_VERSION = "1"
SLOT_ID_BYTES = 16
DEFAULT_RECORD_SIZE = 512
MIN_RECORD_SIZE = 64
POLLS_VALUE_SIZE = 64  # state names and ISO times, padded: the cell never changes size
SLOT_MARGIN = 1.25  # capacity = registered voters x ballot styles x 1.25 (replacement ballots, late additions)
PAGE_SIZES = (4096, 8192, 16384, 32768, 65536)
LOCK_TIMEOUT_S = 1.0  # the store has one owner: a lock held longer than this is another process, not a race
JOURNAL_KEEP_PAGES = 16  # a ballot transaction journals 3 pages; a larger journal is zeroed, then truncated

EMPTY, PENDING, CAST = "E", "P", "C"
# Signed documents waiting to be sent (aggregates and polls events, never ballots: their order is public).
OUTBOX_TABLE = ("CREATE TABLE outbox(hash TEXT PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT NULL,"
                " station TEXT NOT NULL, device_id TEXT NOT NULL, key_id TEXT NOT NULL, body BLOB NOT NULL,"
                " signature BLOB NOT NULL, created_at TEXT NOT NULL, receipt TEXT, acked_at TEXT,"
                " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_attempt_at TEXT,"
                " given_up INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID")
OPEN, PAUSED = "open", "paused"  # polls states of firmware's state table that this store must know
POLLS_STATE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
EVENT_KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
STYLE_ID = re.compile(r"^[A-Z0-9]{1,4}$")

# Keys that make a payload a vote (VVSG 2.0 10.2.4-B: logs hold no votes).
VOTE_KEYS = frozenset({"contests", "contest", "list", "lists", "candidates", "candidate", "outcome", "cvr"})
CVR_KEYS = frozenset({"style", "contests"})
CVR_CONTEST_KEYS = frozenset({"outcome", "list", "candidates"})


class StoreError(RuntimeError):
    """The store cannot do what was asked. The message says what is wrong and what to do."""


class OpeningRefused(StoreError):
    """VVSG 1.1.3-B / CEC Art. 20(4): the polls may only open on an empty count."""


class DiskFull(StoreError):
    """SQLITE_FULL: the transaction was rolled back, nothing of it was recorded."""


class Resolution(StrEnum):
    NOTHING_OPEN = "nothing_open"  # no intent was open
    CONFIRMED = "confirmed"  # the ballot had dropped: counted now, once
    ABORTED = "aborted"  # the ballot had not dropped: its slot is empty again


@dataclass(frozen=True)
class CastToken:
    """An open intent. Held in memory by the service only; its repr hides the slot id so that it
    cannot end up in a log by accident."""

    slot: bytes

    def __repr__(self) -> str:
        return "CastToken(<slot hidden>)"


@dataclass(frozen=True)
class BallotCounts:
    cast: dict[str, int]  # per ballot style, in the order the styles were declared
    returned: dict[str, int]  # ballots given back to the voter, per style: never in `cast`
    pending: int  # open intents (0 or 1)

    @property
    def total_cast(self) -> int:
        return sum(self.cast.values())

    @property
    def total_returned(self) -> int:
        return sum(self.returned.values())


@dataclass(frozen=True)
class PollsRecord:
    state: str
    since: datetime | None  # when `state` was entered
    opened_at: datetime | None  # the last opening (into "open" from anything but "paused")
    closed_at: datetime | None  # the last close (out of "open"/"paused" into anything else)


@dataclass(frozen=True)
class DeviceEvent:
    seq: int
    at: datetime
    kind: str
    detail: dict[str, Any]


def record_size_for(election: Election) -> int:
    """Bytes a slot needs for the largest cast-vote record `election` can produce.

    Assumes omr's rules (omr/rules.py): a valid single-choice contest names at most `vote_for`
    candidates, a valid open-list contest one list and at most `max_preferences` of its candidates,
    an invalid or ambiguous contest none. Single-choice contests are sized for all their candidates
    anyway (cheap, and robust if an over-vote ever lists its marks). Never below DEFAULT_RECORD_SIZE.
    """
    from config.election import ContestKind
    from omr.types import Outcome

    longest_outcome = max((o.value for o in Outcome), key=len)
    largest = 0
    for style in election.ballot_styles:
        contests: dict[str, Any] = {}
        for contest in election.contests_of(style.id):
            if contest.kind == ContestKind.SINGLE_CHOICE:
                names = [c.id for c in contest.candidates]
                list_id = None
            else:
                names = max((sorted((c.id for c in pl.candidates), key=len, reverse=True)[: contest.max_preferences]
                             for pl in contest.lists), key=lambda ids: len(json.dumps(ids)))
                list_id = max((pl.id for pl in contest.lists), key=len)
            contests[contest.id] = {"outcome": longest_outcome, "list": list_id, "candidates": names}
        largest = max(largest, len(_canonical({"style": style.id, "contests": contests})))
    size = 2 + largest
    return max(DEFAULT_RECORD_SIZE, -(-size // 64) * 64)


def slots_for(election: Election) -> int:
    """Slots to allocate at setup: every registered voter casting every style, plus 25 %."""
    return int(election.station.registered_voters * len(election.ballot_styles) * SLOT_MARGIN + 0.999)


def page_size_for(record_size: int) -> int:
    """The smallest page size whose B-tree cells hold a whole slot (no overflow pages)."""
    payload = 6 + SLOT_ID_BYTES + 1 + record_size  # record header + id + state + record
    for page_size in PAGE_SIZES:
        if payload <= (page_size - 12) * 64 // 255 - 23:  # SQLite's maxLocal for index B-trees
            return page_size
    raise StoreError(f"a cast-vote record of {record_size} bytes does not fit one SQLite cell even with "
                     f"{PAGE_SIZES[-1]}-byte pages; the election's ballot styles carry too many contests: split "
                     "them or raise the limits in firmware/scanner/store.py")


class ScannerStore:
    """The scanner service's SQLite store. See the module docstring for the guarantees."""

    def __init__(self, path: str | Path, *, record_size: int | None = None,
                 rng: random.Random | None = None) -> None:
        """Open or create the store at `path`. `record_size` fixes the slot size of a new store (default
        DEFAULT_RECORD_SIZE); for an existing one it must match or be None. `rng` only for tests: slot ids
        and slot choice then come from it instead of the OS's CSPRNG."""
        self.path = Path(path)
        self._rng: random.Random = rng if rng is not None else random.SystemRandom()
        self._record_size = DEFAULT_RECORD_SIZE
        self._page_size = PAGE_SIZES[0]
        self._styles: list[str] = []
        self._empty: list[bytes] = []  # sorted ids of the EMPTY slots (the process is the store's only writer)
        self._pending: bytes | None = None
        self._capacity = 0
        # Called with (kind, at, detail) after each event is committed: the signed event log's mirror
        # (firmware.scanner.event_log); None = the table only.
        self.on_event: Callable[[str, datetime, dict[str, Any]], None] | None = None
        if not self.path.parent.is_dir():
            raise StoreError(f"{self.path}: directory {self.path.parent} does not exist; create it or fix the "
                             "store path in the device settings")
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if fresh:
            self._scrub_journal()  # a journal without its database: SQLite would delete it unerased
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=LOCK_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc}); check the data partition is mounted "
                             "read-write") from None
        try:
            self._configure(fresh, record_size)
            self._scrub_journal()
            self._load()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def for_election(cls, path: str | Path, election: Election, *, rng: random.Random | None = None) -> ScannerStore:
        """Open the store for `election`, setting it up (styles, counters, slots) the first time."""
        store = cls(path, record_size=record_size_for(election), rng=rng)
        try:
            digest = election.digest()
            if not store.is_set_up:
                store.setup([s.id for s in election.ballot_styles], slots_for(election), election_digest=digest)
            elif store._meta("election_digest") != digest:
                raise StoreError(f"{store.path}: this store was set up for another election definition "
                                 f"(digest {store._meta('election_digest')}, installed package {digest}); "
                                 "do not use it: install the package it was made for, or set up a fresh store "
                                 "before opening")
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        try:
            self._scrub_journal()
        finally:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup ------------------------------------------------------------------------------------
    @property
    def is_set_up(self) -> bool:
        return bool(self._styles)

    @property
    def record_size(self) -> int:
        return self._record_size

    @property
    def page_size(self) -> int:
        return self._page_size

    def setup(self, style_ids: Sequence[str], slots: int, *, election_digest: str = "") -> None:
        """Declare the ballot styles (their counters start at 0) and allocate the first `slots` empty
        slots. Once, before the polls open."""
        if self.is_set_up:
            raise StoreError(f"{self.path}: already set up for styles {self._styles}; a store is set up once: "
                             "use a fresh store file for a new election")
        styles = list(style_ids)
        bad = [s for s in styles if not isinstance(s, str) or not STYLE_ID.match(s)]
        if not styles or bad or len(set(styles)) != len(styles):
            raise StoreError(f"setup: ballot style ids must be 1-4 upper-case letters or digits, unique, at least "
                             f"one; got {styles!r}; pass the ids of the election's ballot_styles")
        if slots < 1:
            raise StoreError(f"setup: {slots} slots; allocate at least one (slots_for(election) gives the size)")
        with self._transaction(f"the setup ({slots} slots)"):
            self._db.execute("INSERT INTO meta(name, value) VALUES ('styles', ?)", (json.dumps(styles),))
            self._db.execute("INSERT INTO meta(name, value) VALUES ('election_digest', ?)", (election_digest,))
            for style in styles:
                for kind in ("cast", "returned"):
                    self._db.execute("INSERT INTO counter(name, value) VALUES (?, ?)", (f"{kind}/{style}", _int8(0)))
            self._insert_slots(slots)
        self._load()
        self._rebuild()

    def allocate_slots(self, n: int) -> None:
        """Add `n` empty slots with fresh random ids. Stored records, if any, are re-dealt to uniformly
        random slots of the enlarged table in the same transaction; then the file is rebuilt (VACUUM)."""
        if not self.is_set_up:
            raise StoreError(f"{self.path}: not set up; call setup(style_ids, slots) first")
        if n < 1:
            raise StoreError(f"allocate_slots: {n} slots; allocate at least one")
        if self._pending is not None:
            raise StoreError("allocate_slots: a ballot intent is open; confirm or abort it (or run recover()) first")
        with self._transaction(f"{n} new slots"):
            self._insert_slots(n)
            self._redeal()
        self._load()
        self._rebuild()

    def capacity(self) -> int:
        """All slots, whatever their state."""
        return self._capacity

    def free_slots(self) -> int:
        return len(self._empty)

    # -- ballots ----------------------------------------------------------------------------------
    def begin_cast(self, cvr: Mapping[str, Any]) -> CastToken:
        """Write the intent: `cvr` into a uniformly random empty slot, PENDING, committed with
        synchronous=FULL. Call before the motor drops the ballot; at most one intent is open."""
        record = _encode(cvr, self._record_size)
        style = cvr["style"]
        if style not in self._styles:
            raise StoreError(f"begin_cast: ballot style {style!r} was not declared at setup ({self._styles}); "
                             "return the ballot to the voter: it belongs to another election definition")
        if self._pending is not None:
            raise StoreError("begin_cast: a ballot intent is already open (at most one at a time); confirm or "
                             "abort it first, or run recover() after a restart")
        state = self.polls_state()
        if state != OPEN:
            raise StoreError(f"begin_cast: the polls are {state!r}, ballots are cast only while they are open; "
                             "return the ballot to the voter")
        if len(self._empty) < self._low_water():
            self._grow_for_ballot()
        slot = self._rng.choice(self._empty)
        with self._transaction("this ballot (the ballot must be returned to the voter)"):
            cur = self._db.execute("UPDATE cvr_slot SET state = ?, record = ? WHERE slot_id = ? AND state = ?",
                                   (PENDING, record, slot, EMPTY))
            if cur.rowcount != 1:
                raise StoreError("begin_cast: the chosen slot is no longer empty on disk; another process writes "
                                 "this store: stop it, restart the scanner service and run recover()")
        self._empty.remove(slot)
        self._pending = slot
        self._scrub_journal()
        return CastToken(slot)

    def confirm_cast(self, token: CastToken) -> None:
        """The exit sensor saw the drop: flip the intent to CAST and count it, in one transaction."""
        record = self._pending_record(token, "confirm_cast")
        style = _decode(record)["style"]
        with self._transaction("the confirmation of the dropped ballot (its intent stays open: run recover() "
                               "after fixing this, it will count the ballot once)"):
            self._db.execute("UPDATE cvr_slot SET state = ? WHERE slot_id = ? AND state = ?",
                             (CAST, token.slot, PENDING))
            self._bump(f"cast/{style}")
            self._db.execute("DELETE FROM meta WHERE name = 'intent_in_doubt'")
        self._pending = None
        self._scrub_journal()

    def abort_cast(self, token: CastToken) -> None:
        """The ballot did not drop: empty the slot again (zeroed record, as if never used)."""
        self._pending_record(token, "abort_cast")
        with self._transaction("the withdrawal of the intent (it stays open: run recover() after fixing this)"):
            self._db.execute("UPDATE cvr_slot SET state = ?, record = ? WHERE slot_id = ? AND state = ?",
                             (EMPTY, bytes(self._record_size), token.slot, PENDING))
            self._db.execute("DELETE FROM meta WHERE name = 'intent_in_doubt'")
        self._pending = None
        self._empty.append(token.slot)
        self._empty.sort()
        self._scrub_journal()

    def mark_intent_in_doubt(self) -> None:
        """A paper-path fault while the intent is open (a jam during the drop, an error after it began):
        from now on an empty path no longer proves the drop - the operator may take the sheet out - so a
        recovery after a power cut asks the operator instead of trusting the sensors."""
        if self._pending is None:
            return
        with self._transaction("the note that the open intent is in doubt"):
            self._db.execute("INSERT INTO meta(name, value) VALUES ('intent_in_doubt', '1')"
                             " ON CONFLICT(name) DO UPDATE SET value = '1'")
        self._scrub_journal()

    @property
    def intent_in_doubt(self) -> bool:
        return self._meta("intent_in_doubt") == "1"

    def pending(self) -> list[CastToken]:
        """Open intents as written on disk (0 or 1; more means the store was altered)."""
        rows = self._db.execute("SELECT slot_id FROM cvr_slot WHERE state = ?", (PENDING,)).fetchall()
        return [CastToken(row[0]) for row in rows]

    def recover(self, ballot_dropped: Callable[[], bool]) -> Resolution:
        """After a restart: resolve the open intent, if any. `ballot_dropped()` answers whether the ballot
        of that intent reached the box (True: count it; False: it did not) - from the sensors, or from the
        operator when the intent is in doubt (see mark_intent_in_doubt)."""
        open_intents = self.pending()
        if not open_intents:
            return Resolution.NOTHING_OPEN
        if len(open_intents) > 1:
            raise StoreError(f"recover: {len(open_intents)} open intents on disk, this store never writes more "
                             "than one: the store was altered. Do not open or close the polls with it; keep it as "
                             "evidence and call the operator and the commission")
        token = open_intents[0]
        if ballot_dropped():
            self.confirm_cast(token)
            return Resolution.CONFIRMED
        self.abort_cast(token)
        return Resolution.ABORTED

    def record_return(self, style: str) -> None:
        """A ballot given back to the voter (returned, not cast): counted apart, per style."""
        if style not in self._styles:
            raise StoreError(f"record_return: ballot style {style!r} was not declared at setup ({self._styles}); "
                             "pass the style of the returned ballot")
        with self._transaction("the returned ballot"):
            self._bump(f"returned/{style}")
        self._scrub_journal()

    def counts(self) -> BallotCounts:
        values = dict(self._db.execute("SELECT name, value FROM counter").fetchall())
        return BallotCounts(cast={s: _from_int8(values[f"cast/{s}"]) for s in self._styles},
                            returned={s: _from_int8(values[f"returned/{s}"]) for s in self._styles},
                            pending=0 if self._pending is None else 1)

    def cast_vote_records(self) -> list[dict[str, Any]]:
        """The CAST records in slot-id order: random, unrelated to the order of casting."""
        rows = self._db.execute("SELECT record FROM cvr_slot WHERE state = ?", (CAST,)).fetchall()
        return [_decode(row[0]) for row in rows]

    def check_integrity(self) -> None:
        """SQLite's integrity check, and every style's counter equal to its CAST records."""
        result = self._db.execute("PRAGMA integrity_check").fetchall()
        if result != [("ok",)]:
            raise StoreError(f"{self.path}: the database is damaged ({'; '.join(r[0] for r in result[:5])}); "
                             "keep it as evidence, do not publish results from it, call the operator")
        by_style: dict[str, int] = {s: 0 for s in self._styles}
        for cvr in self.cast_vote_records():
            by_style[cvr["style"]] = by_style.get(cvr["style"], 0) + 1
        counted = self.counts().cast
        if by_style != counted:
            raise StoreError(f"{self.path}: counters {counted} differ from the stored records {by_style}; the store "
                             "was altered: keep it as evidence, do not publish results from it, call the operator")
        if len(self.pending()) > 1:
            raise StoreError(f"{self.path}: more than one open intent; the store was altered: call the operator")

    # -- polls ------------------------------------------------------------------------------------
    def polls_state(self) -> str:
        return self.polls_record().state

    def polls_record(self) -> PollsRecord:
        values = {name: unpad(value).decode() for name, value in self._db.execute("SELECT name, value FROM polls")}
        return PollsRecord(state=values["state"], since=_time(values["since"]),
                           opened_at=_time(values["opened_at"]), closed_at=_time(values["closed_at"]))

    def set_polls_state(self, state: str, at: datetime | None, documents: Sequence[SignedDocument] = ()) -> None:
        """Persist the polls state (firmware's polls state table decides the transitions). Entering
        "open" from anything but "paused" is an opening and requires an empty count. `documents` (the
        signed opening or closing documents) go into the outbox in the same transaction: a polls state
        on disk always has its documents waiting to be sent, and a document never reports a state
        that did not happen."""
        if not isinstance(state, str) or not POLLS_STATE.match(state):
            raise StoreError(f"set_polls_state: {state!r} is not a state name (lower case, digits, '-', '_', "
                             "at most 32); pass a state of the polls state table")
        if at is not None and not isinstance(at, datetime):
            raise StoreError(f"set_polls_state: at={at!r} is not a datetime; pass the clock's time or None")
        current = self.polls_state()
        opening = state == OPEN and current not in (OPEN, PAUSED)
        closing = current in (OPEN, PAUSED) and state not in (OPEN, PAUSED)
        if opening:
            self.assert_can_open()
        when = at.isoformat() if at is not None else ""
        with self._transaction(f"the polls state {state!r}"):
            self._set_polls("state", state)
            self._set_polls("since", when)
            if opening:
                self._set_polls("opened_at", when)
            if closing:
                self._set_polls("closed_at", when)
            self._put_documents(documents, when)
        self._scrub_journal()

    def assert_can_open(self) -> None:
        """VVSG 1.1.3-B / CEC Art. 20(4): the zero report shows 0; the polls open on an empty count only."""
        counts = self.counts()
        if counts.total_cast:
            raise OpeningRefused(
                f"VVSG 1.1.3-B / CEC Art. 20(4): opening refused: {counts.total_cast} ballots already counted "
                f"in {self.path} ({counts.cast}); the count must be 0 at opening. Do not open: keep this store "
                "as evidence, record it in the ZARBO and call the operator and the commission")
        if self._pending is not None or self.pending():
            raise OpeningRefused("VVSG 1.1.3-B / CEC Art. 20(4): opening refused: a ballot intent is open; "
                                 "run recover() with the feeder's sensors first")
        if not self.is_set_up or self._capacity == 0:
            raise OpeningRefused(f"opening refused: {self.path} has no cast-vote-record slots; run setup "
                                 "(ScannerStore.for_election) before opening")

    # -- device event log -------------------------------------------------------------------------
    def log_event(self, kind: str, at: datetime, detail: Mapping[str, Any] | None = None,
                  documents: Sequence[SignedDocument] = ()) -> None:
        """Append a device event (polls opened, paper jam, ...). Events are not ballots: they may hold
        times, never votes; a payload with a vote key (VOTE_KEYS) is refused. `documents` (e.g. the
        signed turnout of that hour) go into the outbox in the same transaction."""
        if not isinstance(kind, str) or not EVENT_KIND.match(kind):
            raise StoreError(f"log_event: kind {kind!r} must be lower case letters, digits, '.', '_', '-' "
                             "(at most 64), e.g. 'polls.opened'")
        if not isinstance(at, datetime):
            raise StoreError(f"log_event: at={at!r} is not a datetime; pass the clock's time")
        payload = dict(detail or {})
        _refuse_votes(payload, "detail", kind)
        try:
            text = _canonical(payload).decode()
        except (TypeError, ValueError) as exc:
            raise StoreError(f"log_event {kind!r}: detail is not JSON data ({exc}); pass str, int, float, bool, "
                             "None, lists and dicts only") from None
        with self._transaction(f"the event {kind!r}"):
            self._db.execute("INSERT INTO device_event(at, kind, detail) VALUES (?, ?, ?)",
                             (at.isoformat(), kind, text))
            self._put_documents(documents, at.isoformat())
        self._scrub_journal()
        if self.on_event is not None:
            self.on_event(kind, at, payload)

    # -- outbox (firmware.common.transmission.outbox.Outbox) ---------------------------------------
    def entries(self) -> list[OutboxEntry]:
        rows = self._db.execute("SELECT kind, station, device_id, key_id, body, signature, created_at, receipt,"
                                " attempts, last_error, given_up, last_attempt_at FROM outbox ORDER BY seq").fetchall()
        return [OutboxEntry(SignedDocument(kind, station, device, key, bytes(body), bytes(sig)),
                            datetime.fromisoformat(created) if created else datetime.min,
                            json.loads(receipt) if receipt else None, attempts, error, bool(given_up),
                            datetime.fromisoformat(last) if last else None)
                for kind, station, device, key, body, sig, created, receipt, attempts, error, given_up, last in rows]

    def unsent(self) -> list[OutboxEntry]:
        return [e for e in self.entries() if e.receipt is None and not e.given_up]

    def acknowledge(self, doc_hash: str, receipt: Mapping[str, Any], at: datetime) -> None:
        try:
            text = _canonical(dict(receipt)).decode()
        except (TypeError, ValueError) as exc:
            raise StoreError(f"acknowledge {doc_hash[:12]}: the receipt is not JSON data ({exc})") from None
        with self._transaction(f"the receipt of document {doc_hash[:12]}"):
            cur = self._db.execute("UPDATE outbox SET receipt = ?, acked_at = ? WHERE hash = ?",
                                   (text, at.isoformat(), doc_hash))
            if cur.rowcount != 1:
                raise StoreError(f"acknowledge: no document {doc_hash} in the outbox of {self.path}; a receipt "
                                 "for a document this box never wrote: keep it and call the operator")
        self._scrub_journal()

    def note_failure(self, doc_hash: str, error: str, at: datetime, *, give_up: bool = False) -> None:
        with self._transaction(f"the failed attempt for document {doc_hash[:12]}"):
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, last_attempt_at = ?,"
                             " given_up = max(given_up, ?) WHERE hash = ?",
                             (str(error)[:500], at.isoformat(), int(give_up), doc_hash))
        self._scrub_journal()

    def _put_documents(self, documents: Sequence[SignedDocument], when: str) -> None:
        """Inside a transaction: add documents to the outbox (a document already there is kept once)."""
        for doc in documents:
            self._db.execute(
                "INSERT INTO outbox(hash, seq, kind, station, device_id, key_id, body, signature, created_at)"
                " VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM outbox), ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(hash) DO NOTHING",
                (doc.hash, doc.kind, doc.station, doc.device_id, doc.key_id, doc.body, doc.signature, when))

    def events(self) -> list[DeviceEvent]:
        rows = self._db.execute("SELECT seq, at, kind, detail FROM device_event ORDER BY seq").fetchall()
        return [DeviceEvent(seq, datetime.fromisoformat(at), kind, json.loads(detail))
                for seq, at, kind, detail in rows]

    # -- internals --------------------------------------------------------------------------------
    def _configure(self, fresh: bool, record_size: int | None) -> None:
        db = self._db
        try:
            # First, before anything reads the file: a hot journal left by a power cut is rolled back on
            # the first read, and in the default journal mode SQLite then *deletes* it, leaving the
            # pre-image pages (the ballot being written) in freed filesystem blocks that nobody zeroes.
            # In exclusive locking mode `journal_mode` is set without reading, so the rollback runs in
            # PERSIST mode and keeps the file for `_scrub_journal`. Exclusive also keeps every other
            # process out of the store while the service runs.
            db.execute("PRAGMA locking_mode = EXCLUSIVE")
            if fresh:
                size = DEFAULT_RECORD_SIZE if record_size is None else record_size
                if size < MIN_RECORD_SIZE:
                    raise StoreError(f"record_size {size} is below {MIN_RECORD_SIZE}; use record_size_for(election)")
                db.execute(f"PRAGMA page_size = {page_size_for(size)}")
                db.execute("PRAGMA auto_vacuum = NONE")
            mode = db.execute("PRAGMA journal_mode = PERSIST").fetchone()[0]
            db.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # takes the lock; rolls back a hot journal
            if mode != "persist":
                raise StoreError(f"{self.path}: cannot switch the journal to PERSIST (it is {mode!r}); another "
                                 "process holds the store open: stop it and restart the scanner service")
            db.execute("PRAGMA synchronous = FULL")  # every commit is on disk when it returns
            db.execute("PRAGMA secure_delete = ON")
            db.execute("PRAGMA temp_store = MEMORY")
            db.execute("PRAGMA foreign_keys = OFF")
            if fresh:
                self._create(size)
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise self._failure(exc, "opening the store") from None
        if {"meta", "cvr_slot", "counter", "polls", "device_event"} <= tables and "outbox" not in tables:
            with self._transaction("the outbox table"):  # a store made before the outbox existed
                db.execute(OUTBOX_TABLE)
            tables.add("outbox")
        if not {"meta", "cvr_slot", "counter", "polls", "device_event", "outbox"} <= tables:
            raise StoreError(f"{self.path}: not a ballotbox scanner store (tables {sorted(tables)}); point the "
                             "service at the scanner store file or at a new path to create one")
        if self._meta("format") != FORMAT_VERSION:
            raise StoreError(f"{self.path}: store format {self._meta('format')!r}, this firmware reads "
                             f"{FORMAT_VERSION!r}; use the firmware version that made the store")
        self._record_size = int(self._meta("record_size") or 0)
        self._page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        if record_size is not None and record_size != self._record_size:
            raise StoreError(f"{self.path}: slots hold {self._record_size}-byte records, {record_size} were asked "
                             "for: this store was made for another election definition; use a fresh store file")

    def _create(self, record_size: int) -> None:
        with self._transaction("the new store"):
            self._db.execute("CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
            self._db.execute(
                "CREATE TABLE cvr_slot(slot_id BLOB PRIMARY KEY CHECK (length(slot_id) = 16),"
                " state TEXT NOT NULL CHECK (state IN ('E', 'P', 'C')),"
                f" record BLOB NOT NULL CHECK (length(record) = {int(record_size)})) WITHOUT ROWID")
            self._db.execute("CREATE TABLE counter(name TEXT PRIMARY KEY,"
                             " value BLOB NOT NULL CHECK (length(value) = 8)) WITHOUT ROWID")
            self._db.execute("CREATE TABLE polls(name TEXT PRIMARY KEY,"
                             f" value BLOB NOT NULL CHECK (length(value) = {POLLS_VALUE_SIZE})) WITHOUT ROWID")
            self._db.execute("CREATE TABLE device_event(seq INTEGER PRIMARY KEY, at TEXT NOT NULL,"
                             " kind TEXT NOT NULL, detail TEXT NOT NULL)")
            self._db.execute(OUTBOX_TABLE)
            self._db.executemany("INSERT INTO meta(name, value) VALUES (?, ?)",
                                 [("format", FORMAT_VERSION), ("record_size", str(record_size))])
            self._db.executemany("INSERT INTO polls(name, value) VALUES (?, ?)",
                                 [(name, pad(value.encode(), POLLS_VALUE_SIZE)) for name, value in
                                  (("state", "setup"), ("since", ""), ("opened_at", ""), ("closed_at", ""))])

    def _load(self) -> None:
        styles = self._meta("styles")
        self._styles = list(json.loads(styles)) if styles else []
        self._empty = []
        pending: list[bytes] = []
        self._capacity = 0
        for slot, state in self._db.execute("SELECT slot_id, state FROM cvr_slot"):
            self._capacity += 1
            if state == EMPTY:
                self._empty.append(slot)
            elif state == PENDING:
                pending.append(slot)
        self._empty.sort()
        # More than one cannot come from this class; recover() reports it, begin_cast refuses meanwhile.
        self._pending = pending[0] if pending else None

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def _low_water(self) -> int:
        return max(8, self._capacity // 50)

    def _grow_by(self) -> int:
        return max(64, self._capacity // 4)

    def _grow_for_ballot(self) -> None:
        before = self._capacity
        try:
            self.allocate_slots(self._grow_by())
        except StoreError as exc:
            self._load()
            if self._capacity > before or self._empty:
                return  # the slots are there (only the rebuild failed, or some were still free): cast anyway
            cls = DiskFull if isinstance(exc, DiskFull) else StoreError
            raise cls(f"{exc} Nothing was recorded for this ballot: return it to the voter.") from None

    def _pending_record(self, token: CastToken, what: str) -> bytes:
        if not isinstance(token, CastToken):
            raise StoreError(f"{what}: expected the CastToken that begin_cast or pending() returned, got "
                             f"{type(token).__name__}")
        row = self._db.execute("SELECT state, record FROM cvr_slot WHERE slot_id = ?", (token.slot,)).fetchone()
        if row is None:
            raise StoreError(f"{what}: the token names no slot of this store; pass the token from begin_cast or "
                             "pending() of this store")
        state, record = row
        if state == CAST:
            raise StoreError(f"{what}: this ballot is already counted; do not count it again")
        if state == EMPTY:
            raise StoreError(f"{what}: this intent was already withdrawn (the ballot was not cast); nothing to do")
        return bytes(record)

    def _bump(self, name: str) -> None:
        row = self._db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: counter {name!r} is missing; the store was altered: call the operator")
        self._db.execute("UPDATE counter SET value = ? WHERE name = ?", (_int8(_from_int8(row[0]) + 1), name))

    def _set_polls(self, name: str, value: str) -> None:
        data = value.encode()
        if len(data) + 2 > POLLS_VALUE_SIZE:
            raise StoreError(f"polls {name} {value!r} is longer than {POLLS_VALUE_SIZE - 2} bytes; "
                             "pass a shorter value")
        self._db.execute("UPDATE polls SET value = ? WHERE name = ?", (pad(data, POLLS_VALUE_SIZE), name))

    def _insert_slots(self, n: int) -> None:
        """Inside a transaction: `n` EMPTY slots with fresh random ids."""
        seen = {row[0] for row in self._db.execute("SELECT slot_id FROM cvr_slot")}
        new_ids: list[bytes] = []
        while len(new_ids) < n:
            slot = bytes(self._rng.randbytes(SLOT_ID_BYTES))
            if slot not in seen:
                seen.add(slot)
                new_ids.append(slot)
        empty = bytes(self._record_size)
        self._db.executemany("INSERT INTO cvr_slot(slot_id, state, record) VALUES (?, ?, ?)",
                             ((slot, EMPTY, empty) for slot in new_ids))

    def _rebuild(self) -> None:
        """VACUUM: rewrite the file in key order, so that its layout depends on the set of slot ids only
        (not on when a batch came), then erase the journal, which now holds the whole previous file."""
        try:
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            failure = self._failure(exc, "the rebuild after allocating slots")
            raise type(failure)(f"{failure} The slots ARE allocated and stored ballots were re-dealt, so the "
                                "store stays usable and secret; retry allocate_slots when space is free.") from None
        finally:
            self._scrub_journal()

    def _redeal(self) -> None:
        """Inside the allocation transaction: move every CAST record to a uniformly random slot of the
        whole table (a uniformly random injection), so that no slot batch says when its ballots came."""
        rows = self._db.execute("SELECT slot_id, state, record FROM cvr_slot").fetchall()
        records = [bytes(record) for _, state, record in rows if state == CAST]
        if not records:
            return
        ids = [slot for slot, _, _ in rows]
        target = dict(zip(self._rng.sample(ids, len(records)), records, strict=True))
        empty = bytes(self._record_size)
        for slot, state, record in rows:
            new_state, new_record = (CAST, target[slot]) if slot in target else (EMPTY, empty)
            if (new_state, new_record) != (state, bytes(record)):
                self._db.execute("UPDATE cvr_slot SET state = ?, record = ? WHERE slot_id = ?",
                                 (new_state, new_record, slot))

    @contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; on any failure ROLLBACK, erase the journal and raise a StoreError
        that says nothing of `what` was recorded."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
            failpoints.hit("store.commit.before")
            self._db.execute("COMMIT")
            failpoints.hit("store.commit.after")
        except BaseException as exc:
            try:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            try:
                self._scrub_journal()
            except StoreError:
                pass
            if isinstance(exc, sqlite3.Error):
                raise self._failure(exc, what) from None
            raise

    def _failure(self, exc: sqlite3.Error, what: str) -> StoreError:
        code = getattr(exc, "sqlite_errorcode", None)
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "database is locked" in str(exc):
            return StoreError(f"{self.path}: another process holds the store; nothing was recorded for {what}. "
                              "Only the scanner service may open it: stop the other process and restart the service")
        if code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc):
            return DiskFull(f"{self.path}: the disk is full: nothing was recorded for {what}. Free space on the "
                            "data partition (the video segments are the usual culprit) and retry; call the operator")
        return StoreError(f"{self.path}: {what} could not be written ({exc}); nothing of it was recorded. Check the "
                          "storage and restart the scanner service; call the operator if it repeats")

    def _scrub_journal(self) -> None:
        scrub_journal(self.path, truncate_above=JOURNAL_KEEP_PAGES * self._page_size, error=StoreError)


# -- encoding ------------------------------------------------------------------------------------
def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _encode(cvr: Mapping[str, Any], size: int) -> bytes:
    """Check `cvr` has exactly the shape of `Interpretation.cast_vote_record()` (so no id, time or
    score can slip in) and pad its canonical JSON to `size` bytes."""
    if not isinstance(cvr, Mapping) or set(cvr) != CVR_KEYS:
        keys = sorted(cvr) if isinstance(cvr, Mapping) else type(cvr).__name__
        raise StoreError(f"begin_cast: a cast-vote record has exactly the keys {sorted(CVR_KEYS)}, got {keys}; "
                         "pass Interpretation.cast_vote_record() (no ids, times or scores)")
    if not isinstance(cvr["style"], str) or not isinstance(cvr["contests"], Mapping) or not cvr["contests"]:
        raise StoreError(f"begin_cast: 'style' must be a style id and 'contests' a non-empty mapping, got "
                         f"{cvr['style']!r} / {cvr['contests']!r}; pass Interpretation.cast_vote_record()")
    contests: dict[str, Any] = {}
    for cid, result in cvr["contests"].items():
        if not isinstance(cid, str) or not isinstance(result, Mapping) or set(result) != CVR_CONTEST_KEYS:
            raise StoreError(f"begin_cast: contest {cid!r} must be a mapping with exactly the keys "
                             f"{sorted(CVR_CONTEST_KEYS)}, got {result!r}; pass Interpretation.cast_vote_record()")
        outcome, list_id, candidates = result["outcome"], result["list"], result["candidates"]
        if (not isinstance(outcome, str) or not (list_id is None or isinstance(list_id, str))
                or not isinstance(candidates, (list, tuple)) or not all(isinstance(c, str) for c in candidates)):
            raise StoreError(f"begin_cast: contest {cid!r}: outcome must be a string, list a string or None, "
                             f"candidates a list of ids; got {dict(result)!r}")
        contests[cid] = {"outcome": outcome, "list": list_id, "candidates": sorted(candidates)}
    data = _canonical({"style": cvr["style"], "contests": contests})
    if len(data) + 2 > size:
        raise StoreError(f"begin_cast: the cast-vote record takes {len(data)} bytes, a slot holds {size - 2}; the "
                         "store was made for another election definition: return the ballot, set up a store with "
                         "ScannerStore.for_election before opening")
    return pad(data, size)


def _decode(blob: bytes) -> dict[str, Any]:
    try:
        value = json.loads(unpad(blob).decode())
    except (ValueError, struct.error) as exc:
        raise StoreError(f"a stored cast-vote record cannot be read ({exc}); the store is damaged: keep it as "
                         "evidence, do not publish results from it, call the operator") from None
    if not isinstance(value, dict):
        raise StoreError("a stored cast-vote record is not an object; the store is damaged: call the operator")
    return value


def _int8(value: int) -> bytes:
    return struct.pack(">q", value)


def _from_int8(blob: bytes) -> int:
    return int(struct.unpack(">q", blob)[0])


def _time(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _refuse_votes(value: Any, where: str, kind: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise StoreError(f"log_event {kind!r}: {where} has a non-text key {key!r}; use text keys")
            if key.lower() in VOTE_KEYS:
                raise StoreError(f"log_event {kind!r}: {where}.{key} looks like a vote; logs never hold votes "
                                 f"(VVSG 2.0 10.2.4-B): drop the keys {sorted(VOTE_KEYS)} from the payload")
            _refuse_votes(item, f"{where}.{key}", kind)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _refuse_votes(item, f"{where}[{i}]", kind)
    elif isinstance(value, (bytes, bytearray, memoryview, CastToken)):
        raise StoreError(f"log_event {kind!r}: {where} holds binary data or a cast token; logs never hold ballot "
                         "ids or content: drop it")
    elif isinstance(value, str) and ('"contests"' in value or '"candidates"' in value):
        raise StoreError(f"log_event {kind!r}: {where} embeds a cast-vote record; logs never hold votes "
                         "(VVSG 2.0 10.2.4-B): drop it")


def open_outbox(state_dir: Path) -> ScannerStore:
    """The outbox of a box's state directory (its store at DIR/device/scanner.sqlite), for
    `ballotbox outbox send` after a restart. The store is opened exclusively: the scanner service must
    not be running on it."""
    path = Path(state_dir) / "device" / "scanner.sqlite"
    if not path.is_file():
        raise StoreError(f"{path}: no scanner store in the state directory {state_dir}; give the --state-dir of "
                         "a box (the directory `ballotbox simulate --state-dir` or the device wrote)")
    return ScannerStore(path)

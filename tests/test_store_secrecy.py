"""VVSG 2.0 10.2.2-B: no byte on disk reveals the order in which ballots were cast.

The strongest form is tested directly: the same final records written into the same slots in
another order give byte-identical database and journal files. Whatever the bytes show, they show
it for every order alike.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.election import SAMPLE_ELECTION, Election, load_election
from firmware.scanner.store import CAST, EMPTY, ScannerStore

ROOT = Path(__file__).resolve().parents[1]


class ScriptedRandom(random.Random):
    """A seeded Random whose slot choices and slot ids can be dictated, to replay a day in another order."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.script: list[bytes] = []
        self.ids: list[bytes] = []
        self.taken: list[bytes] = []  # every slot chosen, in order

    def choice(self, seq: Any) -> Any:
        if self.script:
            wanted = self.script.pop(0)
            assert wanted in seq, "the scripted slot is not empty"
        else:
            wanted = super().choice(seq)
        self.taken.append(wanted)
        return wanted

    def randbytes(self, n: int) -> bytes:
        if self.ids:
            return self.ids.pop(0)
        return super().randbytes(n)


@pytest.fixture(scope="module")
def election() -> Election:
    return load_election(SAMPLE_ELECTION)


@pytest.fixture
def tmp_path(tmpfs_path: Path) -> Path:
    return tmpfs_path


def make_ballots(election: Election, n: int, seed: int) -> list[dict[str, Any]]:
    """Cast-vote records as omr makes them: mostly valid, some blank / over-voted / multiple lists."""
    rng = random.Random(seed)
    mayor, council = election.contest("nacelnik"), election.contest("vijece")
    out: list[dict[str, Any]] = []
    for i in range(n):
        if i % 2 == 0:
            roll = rng.random()
            result = ({"outcome": "blank", "list": None, "candidates": []} if roll < 0.1 else
                      {"outcome": "overvote", "list": None, "candidates": []} if roll < 0.2 else
                      {"outcome": "valid", "list": None, "candidates": [rng.choice(mayor.candidates).id]})
            out.append({"style": "N", "contests": {"nacelnik": result}})
        else:
            roll = rng.random()
            if roll < 0.1:
                result = {"outcome": "multiple_lists", "list": None, "candidates": []}
            else:
                pl = rng.choice(council.lists)
                prefs = rng.sample([c.id for c in pl.candidates], rng.randint(0, min(3, len(pl.candidates))))
                result = {"outcome": "valid", "list": pl.id, "candidates": sorted(prefs)}
            out.append({"style": "V", "contests": {"vijece": result}})
    return out


def files(path: Path) -> tuple[bytes, bytes]:
    journal = Path(f"{path}-journal")
    return path.read_bytes(), journal.read_bytes() if journal.exists() else b""


def copy_store(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    if Path(f"{src}-journal").exists():
        shutil.copyfile(f"{src}-journal", f"{dst}-journal")


def slot_contents(path: Path) -> dict[bytes, tuple[str, bytes]]:
    with sqlite3.connect(path) as db:
        return {slot: (state, bytes(record)) for slot, state, record in
                db.execute("SELECT slot_id, state, record FROM cvr_slot")}


def fresh_store(tmp_path: Path, slots: int, seed: int) -> Path:
    path = tmp_path / "scanner.db"
    with ScannerStore(path, rng=random.Random(seed)) as store:
        store.setup(["N", "V"], slots)
        store.log_event("store.created", at=_t(6, 0))
    return path


def _t(hour: int, minute: int) -> datetime:
    return datetime(2024, 10, 6, hour, minute, tzinfo=UTC)


def test_same_records_in_reverse_order_give_identical_files(tmp_path: Path, election: Election) -> None:
    day = fresh_store(tmp_path, slots=120, seed=11)
    replay = tmp_path / "replay.db"
    copy_store(day, replay)  # the pre-allocated store, before opening: holds no votes

    ballots = make_ballots(election, 60, seed=3)
    rng = ScriptedRandom(5)
    with ScannerStore(day, rng=rng) as store:
        store.set_polls_state("open", _t(7, 0))
        store.log_event("polls.opened", at=_t(7, 0))
        for i, cvr in enumerate(ballots):
            if i % 10 == 4:  # the voter's ballot jammed before the drop: intent withdrawn
                store.abort_cast(store.begin_cast(cvr))
            if i % 15 == 7:
                store.record_return(cvr["style"])
            store.confirm_cast(store.begin_cast(cvr))
        store.log_event("paper.jam", at=_t(12, 30), detail={"sensor": "exit"})
        store.set_polls_state("closed-final", _t(19, 0))
    final = slot_contents(day)
    cast_slots = [slot for slot, (state, _) in final.items() if state == CAST]
    assert len(cast_slots) == 60

    # Replay: same records into the same slots, in the reverse order, the aborts, returns and the
    # jam at other moments and into other slots.
    order = list(reversed(cast_slots))
    spare = [slot for slot, (state, _) in final.items() if state == EMPTY]
    rng2 = ScriptedRandom(99)
    with ScannerStore(replay, rng=rng2) as store:
        store.set_polls_state("open", _t(7, 0))
        store.log_event("polls.opened", at=_t(7, 0))
        store.log_event("paper.jam", at=_t(12, 30), detail={"sensor": "exit"})
        aborts = 6
        returns = [ballots[i]["style"] for i in range(60) if i % 15 == 7]
        for n, slot in enumerate(order):
            cvr = _decode_record(final[slot][1])
            if aborts and n % 3 == 0:
                rng2.script.append(spare[n])
                store.abort_cast(store.begin_cast(cvr))
                aborts -= 1
            if returns and n % 7 == 1:
                store.record_return(returns.pop())
            rng2.script.append(slot)
            store.confirm_cast(store.begin_cast(cvr))
        assert aborts == 0 and not returns
        store.set_polls_state("closed-final", _t(19, 0))

    day_db, day_journal = files(day)
    replay_db, replay_journal = files(replay)
    assert len(day_db) == len(replay_db)
    assert [i for i in range(len(day_db)) if day_db[i] != replay_db[i]] == []
    assert day_db == replay_db
    assert day_journal == replay_journal
    assert set(day_journal) <= {0}


def test_slots_added_during_the_day_leave_no_trace_of_when(tmp_path: Path, election: Election) -> None:
    """A batch allocated while ballots are stored re-deals them and rebuilds the file: the result equals a
    store that had all the slots from the start and got the same records in another order."""
    day = fresh_store(tmp_path, slots=24, seed=21)
    replay = tmp_path / "replay.db"
    copy_store(day, replay)
    first_ids = set(slot_contents(day))

    ballots = make_ballots(election, 40, seed=8)
    with ScannerStore(day, rng=ScriptedRandom(1)) as store:
        store.set_polls_state("open", _t(7, 0))
        for cvr in ballots:
            store.confirm_cast(store.begin_cast(cvr))
        assert store.capacity() == 24 + 64  # grown once, at the 17th ballot (below the low-water mark of 8)
        assert sorted(map(_canonical, store.cast_vote_records())) == sorted(map(_canonical, ballots))
    final = slot_contents(day)
    later_ids = sorted(set(final) - first_ids)

    rng2 = ScriptedRandom(2)
    with ScannerStore(replay, rng=rng2) as store:
        store.set_polls_state("open", _t(7, 0))
        rng2.ids = list(later_ids)
        store.allocate_slots(64)  # before any ballot, where the day grew at the 17th
        for slot in sorted(slot for slot, (state, _) in final.items() if state == CAST):
            rng2.script.append(slot)
            store.confirm_cast(store.begin_cast(_decode_record(final[slot][1])))
    assert files(day) == files(replay)


def test_journal_holds_no_ballot_bytes_after_any_commit(tmp_path: Path, election: Election) -> None:
    path = fresh_store(tmp_path, slots=50, seed=4)
    journal = Path(f"{path}-journal")

    def zero() -> bool:
        return not journal.exists() or set(journal.read_bytes()) <= {0}

    with ScannerStore(path) as store:
        assert zero()
        store.set_polls_state("open", _t(7, 0))
        assert zero()
        for cvr in make_ballots(election, 10, seed=1):
            token = store.begin_cast(cvr)
            assert zero()
            store.confirm_cast(token)
            assert zero() and journal.stat().st_size > 0  # PERSIST: the file stays, zeroed
        store.abort_cast(store.begin_cast(make_ballots(election, 1, seed=2)[0]))
        assert zero()
        store.record_return("V")
        store.log_event("paper.jam", at=_t(9, 0))
        assert zero()
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


def test_stale_journal_is_erased_when_the_store_opens(tmp_path: Path, election: Election,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A power cut between a commit and the erasure leaves a journal with an invalid header but the
    page before the last ballot in it, i.e. the last vote; opening erases it."""
    path = fresh_store(tmp_path, slots=20, seed=6)
    cvr = {"style": "V", "contests": {"vijece": {"outcome": "valid", "list": "l7", "candidates": ["l7c13", "l7c19"]}}}
    with ScannerStore(path) as store:
        store.set_polls_state("open", _t(7, 0))
        monkeypatch.setattr(ScannerStore, "_scrub_journal", lambda self: None)  # the power fails before it runs
        store.confirm_cast(store.begin_cast(cvr))
        store._db.close()  # the process dies here
    monkeypatch.undo()
    journal = Path(f"{path}-journal")
    assert journal.read_bytes()[:28] == bytes(28)  # SQLite invalidated the header ...
    assert b'"candidates":["l7c13","l7c19"]' in journal.read_bytes()  # ... but the last vote is still there
    with ScannerStore(path) as store:
        assert set(journal.read_bytes()) <= {0}
        assert store.counts().cast == {"N": 0, "V": 1}


def test_power_cut_inside_a_transaction_is_rolled_back_then_the_journal_erased(tmp_path: Path) -> None:
    path = fresh_store(tmp_path, slots=400, seed=7)
    before = slot_contents(path)
    # A process dies in the middle of a large write (pages spilled to the file, hot journal on disk).
    script = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode = PERSIST'); db.execute('PRAGMA cache_size = 2')\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "db.execute(\"UPDATE cvr_slot SET state = 'C'\")\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=30)
    journal = Path(f"{path}-journal")
    assert journal.read_bytes()[:8] == bytes.fromhex("d9d505f920a163d7")  # a hot journal
    with ScannerStore(path) as store:
        assert set(journal.read_bytes()) <= {0}
        assert store.free_slots() == 400
    assert slot_contents(path) == before


def test_each_slot_keeps_its_place_in_the_file_whatever_the_cast_order(tmp_path: Path, election: Election) -> None:
    path = fresh_store(tmp_path, slots=600, seed=9)
    empty_file = path.read_bytes()
    with sqlite3.connect(path) as db:
        ids = [row[0] for row in db.execute("SELECT slot_id FROM cvr_slot")]
    db.close()
    place = {slot: empty_file.find(slot) for slot in ids}
    assert all(empty_file.count(slot) == 1 for slot in ids)  # each row exists once (no copies in interior pages)

    rng = ScriptedRandom(13)
    with ScannerStore(path, rng=rng) as store:
        store.set_polls_state("open", _t(7, 0))
        for cvr in make_ballots(election, 300, seed=5):
            store.confirm_cast(store.begin_cast(cvr))
    cast_order = rng.taken
    assert len(set(cast_order)) == 300
    data = path.read_bytes()
    assert {slot: data.find(slot) for slot in ids} == place  # no cell moved, no page was split

    offsets = [place[slot] for slot in cast_order]
    assert _spearman(list(range(len(offsets))), offsets) == pytest.approx(0.0, abs=0.15)
    # cast_vote_records comes in slot-id order, not in cast order
    with ScannerStore(path) as store:
        listed = store.cast_vote_records()
    by_id = slot_contents(path)
    assert listed == [_decode_record(by_id[slot][1]) for slot in sorted(cast_order)]


def test_schema_keeps_no_order(tmp_path: Path) -> None:
    path = fresh_store(tmp_path, slots=10, seed=1)
    with sqlite3.connect(path) as db:
        tables = {row[1]: row for row in db.execute("PRAGMA table_list") if row[0] == "main"}
        indexes = db.execute("SELECT name FROM sqlite_schema WHERE type = 'index'").fetchall()
        freelist = db.execute("PRAGMA freelist_count").fetchone()[0]
        columns = [row[1] for row in db.execute("PRAGMA table_info(cvr_slot)")]
    db.close()
    assert "sqlite_sequence" not in tables
    assert sorted(name for name in tables if not name.startswith("sqlite_")) == [
        "counter", "cvr_slot", "device_event", "meta", "outbox", "polls"]
    # table_list: (schema, name, type, ncol, wr, strict); wr = WITHOUT ROWID
    assert {name: row[4] for name, row in tables.items() if not name.startswith("sqlite_")} == {
        "counter": 1, "cvr_slot": 1, "device_event": 0, "meta": 1, "outbox": 1, "polls": 1}
    assert columns == ["slot_id", "state", "record"]  # no time, no sequence
    assert indexes == []  # no index over a mutable column
    assert freelist == 0
    assert os.path.getsize(path) % 4096 == 0


def _decode_record(blob: bytes) -> dict[str, Any]:
    length = int.from_bytes(blob[:2], "big")
    return dict(json.loads(blob[2 : 2 + length]))


def _canonical(cvr: dict[str, Any]) -> str:
    return json.dumps(cvr, sort_keys=True)


def _spearman(xs: list[int], ys: list[int]) -> float:
    def ranks(values: list[int]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        for rank, index in enumerate(order):
            out[index] = float(rank)
        return out

    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    mean = (n - 1) / 2
    cov = sum((a - mean) * (b - mean) for a, b in zip(rx, ry, strict=True))
    var = sum((a - mean) ** 2 for a in rx)
    return cov / var

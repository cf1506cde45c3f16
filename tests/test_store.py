"""The scanner store: intents, confirmation, recovery, counters, polls state, event log, failures."""

from __future__ import annotations

import json
import random
import sqlite3
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.election import LARGE_ELECTION, SAMPLE_ELECTION, Election, load_election
from firmware.scanner.store import (
    BallotCounts,
    CastToken,
    DiskFull,
    OpeningRefused,
    PollsRecord,
    Resolution,
    ScannerStore,
    StoreError,
    record_size_for,
    slots_for,
)
from omr.types import ContestResult, Interpretation, Outcome, Verdict

MAYOR_M3 = {"style": "N", "contests": {"nacelnik": {"outcome": "valid", "list": None, "candidates": ["m3"]}}}
COUNCIL_L3 = {"style": "V", "contests": {"vijece": {"outcome": "valid", "list": "l3", "candidates": ["l3c2", "l3c7"]}}}
COUNCIL_BLANK = {"style": "V", "contests": {"vijece": {"outcome": "blank", "list": None, "candidates": []}}}


def t(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 10, 6, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def election() -> Election:
    return load_election(SAMPLE_ELECTION)


@pytest.fixture
def tmp_path(tmpfs_path: Path) -> Path:
    return tmpfs_path


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "scanner.db"


@pytest.fixture
def store(path: Path) -> Any:
    with ScannerStore(path, rng=random.Random(1)) as s:
        s.setup(["N", "V"], 40)
        s.set_polls_state("open", t(7))
        yield s


def zero_counts() -> BallotCounts:
    return BallotCounts(cast={"N": 0, "V": 0}, returned={"N": 0, "V": 0}, pending=0)


# -- setup -----------------------------------------------------------------------------------------
def test_a_new_store_is_empty_and_in_setup(path: Path) -> None:
    with ScannerStore(path) as s:
        assert s.polls_state() == "setup"
        assert s.polls_record() == PollsRecord("setup", None, None, None)
        assert not s.is_set_up and s.capacity() == 0
        s.setup(["N", "V"], 30)
        assert s.capacity() == 30 and s.free_slots() == 30
        assert s.counts() == zero_counts()
        assert s.cast_vote_records() == [] and s.pending() == [] and s.events() == []


def test_for_election_sizes_the_store_from_the_election(path: Path, election: Election) -> None:
    assert slots_for(election) == 3000  # 1200 voters x 2 styles x 1.25
    assert record_size_for(election) == 512
    with ScannerStore.for_election(path, election) as s:
        assert (s.capacity(), s.record_size, s.page_size) == (3000, 512, 4096)
    with ScannerStore.for_election(path, election) as s:  # reopened: no second setup
        assert s.capacity() == 3000
    with pytest.raises(StoreError, match="set up for another election definition"):
        ScannerStore.for_election(path, load_election(LARGE_ELECTION))


def test_setup_is_done_once(store: ScannerStore) -> None:
    with pytest.raises(StoreError, match="already set up for styles"):
        store.setup(["N"], 10)


def test_setup_rejects_bad_styles(path: Path) -> None:
    with ScannerStore(path) as s, pytest.raises(StoreError, match="ballot style ids must be"):
        s.setup(["N", "N"], 10)


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist; create it"):
        ScannerStore(tmp_path / "nowhere" / "scanner.db")


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE x(a)")
    db.close()
    with pytest.raises(StoreError, match="not a ballotbox scanner store"):
        ScannerStore(other)


# -- casting ---------------------------------------------------------------------------------------
def test_begin_then_confirm_counts_one_ballot(store: ScannerStore) -> None:
    token = store.begin_cast(COUNCIL_L3)
    assert store.pending() == [token]
    assert store.counts().cast == {"N": 0, "V": 0}  # an intent is not a vote yet
    assert store.counts().pending == 1
    assert store.cast_vote_records() == []
    store.confirm_cast(token)
    assert store.counts() == BallotCounts(cast={"N": 0, "V": 1}, returned={"N": 0, "V": 0}, pending=0)
    assert store.cast_vote_records() == [COUNCIL_L3]
    assert store.pending() == [] and store.free_slots() == 39


def test_the_token_does_not_show_the_slot(store: ScannerStore) -> None:
    token = store.begin_cast(MAYOR_M3)
    assert repr(token) == "CastToken(<slot hidden>)"
    assert token.slot.hex() not in repr(token) and token.slot.hex() not in str(token)


def test_abort_leaves_the_slot_as_it_was(store: ScannerStore, path: Path) -> None:
    before = _slots(store)
    token = store.begin_cast(MAYOR_M3)
    assert _slots(store) != before
    store.abort_cast(token)
    assert _slots(store) == before
    assert store.counts() == zero_counts() and store.free_slots() == 40 and store.cast_vote_records() == []


def test_only_one_intent_at_a_time(store: ScannerStore) -> None:
    store.begin_cast(MAYOR_M3)
    with pytest.raises(StoreError, match=r"already open \(at most one at a time\)"):
        store.begin_cast(COUNCIL_L3)
    assert len(store.pending()) == 1


def test_a_ballot_is_never_counted_twice(store: ScannerStore) -> None:
    token = store.begin_cast(MAYOR_M3)
    store.confirm_cast(token)
    with pytest.raises(StoreError, match="already counted; do not count it again"):
        store.confirm_cast(token)
    with pytest.raises(StoreError, match="already counted"):
        store.abort_cast(token)
    assert store.counts().cast == {"N": 1, "V": 0}


def test_a_withdrawn_intent_cannot_be_confirmed(store: ScannerStore) -> None:
    token = store.begin_cast(MAYOR_M3)
    store.abort_cast(token)
    with pytest.raises(StoreError, match="already withdrawn"):
        store.confirm_cast(token)
    assert store.counts().cast == {"N": 0, "V": 0}


def test_a_token_of_another_store_is_refused(store: ScannerStore) -> None:
    with pytest.raises(StoreError, match="names no slot of this store"):
        store.confirm_cast(CastToken(bytes(16)))


def test_ballots_are_cast_only_while_the_polls_are_open(store: ScannerStore) -> None:
    store.set_polls_state("paused", t(12))
    with pytest.raises(StoreError, match="the polls are 'paused'"):
        store.begin_cast(MAYOR_M3)
    store.set_polls_state("open", t(12, 5))
    store.confirm_cast(store.begin_cast(MAYOR_M3))
    assert store.counts().cast == {"N": 1, "V": 0}


def test_returned_ballots_are_counted_apart(store: ScannerStore) -> None:
    store.record_return("V")
    store.record_return("V")
    store.record_return("N")
    store.confirm_cast(store.begin_cast(COUNCIL_BLANK))
    counts = store.counts()
    assert counts.returned == {"N": 1, "V": 2} and counts.total_returned == 3
    assert counts.cast == {"N": 0, "V": 1} and counts.total_cast == 1
    assert store.cast_vote_records() == [COUNCIL_BLANK]
    with pytest.raises(StoreError, match="style 'X' was not declared"):
        store.record_return("X")


def test_records_from_interpretations_round_trip(store: ScannerStore) -> None:
    interpretation = Interpretation(verdict=Verdict.VALID, style="V", contests={
        "vijece": ContestResult("vijece", Outcome.VALID, list="l5", candidates=("l5c9", "l5c1"))})
    store.confirm_cast(store.begin_cast(interpretation.cast_vote_record()))
    assert store.cast_vote_records() == [
        {"style": "V", "contests": {"vijece": {"outcome": "valid", "list": "l5", "candidates": ["l5c1", "l5c9"]}}}]


def test_records_with_anything_but_the_vote_are_refused(store: ScannerStore) -> None:
    with pytest.raises(StoreError, match=r"exactly the keys \['contests', 'style'\], got \[.*'time'\]"):
        store.begin_cast({**MAYOR_M3, "time": "07:31"})
    with pytest.raises(StoreError, match="contest 'nacelnik' must be a mapping with exactly the keys"):
        store.begin_cast({"style": "N", "contests": {"nacelnik": {"outcome": "valid", "list": None,
                                                                    "candidates": ["m1"], "scores": [0.2]}}})
    with pytest.raises(StoreError, match="style 'Q' was not declared at setup"):
        store.begin_cast({"style": "Q", "contests": {"x": {"outcome": "blank", "list": None, "candidates": []}}})
    with pytest.raises(StoreError, match=r"takes \d+ bytes, a slot holds 510"):
        store.begin_cast({"style": "N", "contests": {"nacelnik": {"outcome": "valid", "list": None,
                                                                    "candidates": ["c" * 600]}}})
    assert store.pending() == [] and store.free_slots() == 40


def test_the_store_survives_a_restart(store: ScannerStore, path: Path) -> None:
    store.confirm_cast(store.begin_cast(MAYOR_M3))
    store.record_return("N")
    store.close()
    with ScannerStore(path) as again:
        assert again.counts() == BallotCounts(cast={"N": 1, "V": 0}, returned={"N": 1, "V": 0}, pending=0)
        assert again.cast_vote_records() == [MAYOR_M3]
        assert again.polls_record() == PollsRecord("open", t(7), t(7), None)
        assert again.free_slots() == 39
        again.check_integrity()


def test_slots_grow_before_they_run_out(path: Path) -> None:
    with ScannerStore(path, rng=random.Random(3)) as s:
        s.setup(["N", "V"], 10)
        s.set_polls_state("open", t(7))
        for _ in range(3):
            s.confirm_cast(s.begin_cast(MAYOR_M3))
        assert s.capacity() == 10  # 7 free: the next cast goes below the low-water mark of 8
        s.confirm_cast(s.begin_cast(COUNCIL_L3))
        assert s.capacity() == 74 and s.free_slots() == 70
        assert sorted(map(_key, s.cast_vote_records())) == sorted(map(_key, [MAYOR_M3] * 3 + [COUNCIL_L3]))
        assert s.counts().cast == {"N": 3, "V": 1}
        s.check_integrity()


def test_allocation_waits_for_the_open_intent(store: ScannerStore) -> None:
    store.begin_cast(MAYOR_M3)
    with pytest.raises(StoreError, match="a ballot intent is open"):
        store.allocate_slots(10)


# -- recovery after a power cut --------------------------------------------------------------------
def test_recovery_counts_a_ballot_that_dropped(store: ScannerStore, path: Path) -> None:
    store.begin_cast(COUNCIL_L3)
    store._db.close()  # the power fails after the drop, before the confirmation
    with ScannerStore(path) as again:
        assert len(again.pending()) == 1
        with pytest.raises(StoreError, match="already open"):
            again.begin_cast(MAYOR_M3)
        asked: list[str] = []

        def dropped() -> bool:
            asked.append("exit sensor")
            return True

        assert again.recover(dropped) is Resolution.CONFIRMED
        assert asked == ["exit sensor"]
        assert again.counts().cast == {"N": 0, "V": 1} and again.cast_vote_records() == [COUNCIL_L3]
        assert again.recover(lambda: pytest.fail("nothing is open")) is Resolution.NOTHING_OPEN
        assert again.counts().cast == {"N": 0, "V": 1}


def test_recovery_withdraws_a_ballot_still_in_the_feeder(store: ScannerStore, path: Path) -> None:
    store.begin_cast(COUNCIL_L3)
    store._db.close()
    with ScannerStore(path) as again:
        assert again.recover(lambda: False) is Resolution.ABORTED
        assert again.counts() == zero_counts() and again.cast_vote_records() == []
        assert again.free_slots() == 40


def test_recovery_refuses_a_store_with_two_open_intents(store: ScannerStore, path: Path) -> None:
    store.begin_cast(COUNCIL_L3)
    store.close()
    with sqlite3.connect(path) as db:  # altered behind the service's back
        db.execute("UPDATE cvr_slot SET state = 'P'"
                   " WHERE slot_id = (SELECT min(slot_id) FROM cvr_slot WHERE state = 'E')")
    db.close()
    with ScannerStore(path) as again:
        with pytest.raises(StoreError, match=r"2 open intents on disk.*the store was altered"):
            again.recover(lambda: True)
        assert again.counts().cast == {"N": 0, "V": 0}


def test_opening_refused_with_an_open_intent(path: Path) -> None:
    with ScannerStore(path) as s:
        s.setup(["N", "V"], 20)
        s.set_polls_state("open", t(7))
        s.begin_cast(MAYOR_M3)
        s._db.close()
    with ScannerStore(path) as again:
        again.set_polls_state("closed-final", t(19))
        with pytest.raises(OpeningRefused, match="a ballot intent is open; run recover"):
            again.assert_can_open()


# -- polls -----------------------------------------------------------------------------------------
def test_opening_refused_unless_the_count_is_zero(store: ScannerStore) -> None:
    store.confirm_cast(store.begin_cast(MAYOR_M3))
    store.confirm_cast(store.begin_cast(COUNCIL_L3))
    store.set_polls_state("paused", t(10))
    store.set_polls_state("open", t(10, 15))  # resuming is not opening
    store.set_polls_state("closed-final", t(19))
    with pytest.raises(OpeningRefused) as refused:
        store.set_polls_state("open", t(19, 5))
    assert str(refused.value).startswith(
        "VVSG 1.1.3-B / CEC Art. 20(4): opening refused: 2 ballots already counted in ")
    assert "Do not open" in str(refused.value)
    assert store.polls_state() == "closed-final"


def test_opening_allowed_on_an_empty_count_and_times_kept(path: Path) -> None:
    with ScannerStore(path) as s:
        s.setup(["N", "V"], 20)
        s.set_polls_state("closed-initial", t(6, 30))
        s.assert_can_open()
        s.set_polls_state("open", t(7))
        s.set_polls_state("paused", t(13))
        s.set_polls_state("open", t(13, 20))
        assert s.polls_record() == PollsRecord("open", t(13, 20), t(7), None)
        s.set_polls_state("closed-final", t(19))
        assert s.polls_record() == PollsRecord("closed-final", t(19), t(7), t(19))


def test_opening_refused_without_slots(path: Path) -> None:
    with ScannerStore(path) as s, pytest.raises(OpeningRefused, match="no cast-vote-record slots"):
        s.set_polls_state("open", t(7))


def test_polls_state_names_are_checked(store: ScannerStore) -> None:
    with pytest.raises(StoreError, match="'Open Now' is not a state name"):
        store.set_polls_state("Open Now", t(8))


# -- event log -------------------------------------------------------------------------------------
def test_events_are_kept_in_order_with_their_times(store: ScannerStore) -> None:
    store.log_event("polls.opened", t(7))
    store.log_event("feeder.jam", t(9, 41), {"sensor": "exit", "cleared": True})
    assert [(e.seq, e.at, e.kind, e.detail) for e in store.events()] == [
        (1, t(7), "polls.opened", {}), (2, t(9, 41), "feeder.jam", {"cleared": True, "sensor": "exit"})]


@pytest.mark.parametrize("detail", [
    {"contests": {"vijece": {}}},
    {"list": "l3"},
    {"ballot": {"candidates": ["l3c2"]}},
    {"items": [{"Outcome": "valid"}]},
    {"note": '{"contests":{"vijece":{"candidates":["l3c2"]}}}'},
    {"slot": b"\x01" * 16},
])
def test_logs_never_hold_votes(store: ScannerStore, detail: dict[str, Any]) -> None:
    with pytest.raises(StoreError, match="logs never hold"):
        store.log_event("ballot.cast", t(8), detail)
    assert store.events() == []


def test_event_payloads_must_be_data(store: ScannerStore) -> None:
    with pytest.raises(StoreError, match="detail is not JSON data"):
        store.log_event("feeder.jam", t(8), {"when": t(8)})
    with pytest.raises(StoreError, match="kind 'Paper Jam' must be lower case"):
        store.log_event("Paper Jam", t(8))


# -- failures --------------------------------------------------------------------------------------
def test_disk_full_while_logging_records_nothing(store: ScannerStore) -> None:
    _fill_disk(store)
    with pytest.raises(DiskFull, match=r"the disk is full: nothing was recorded for the event 'feeder\.jam'"):
        for i in range(200):  # the event table needs a new page at some point
            store.log_event("feeder.jam", t(8), {"note": "x" * 400, "i": i})
    kept = store.events()
    assert [e.detail["i"] for e in kept] == list(range(len(kept)))
    assert store.counts() == zero_counts()


def test_ballots_need_no_new_space_and_refuse_cleanly_when_slots_cannot_grow(path: Path) -> None:
    with ScannerStore(path, rng=random.Random(2)) as s:
        s.setup(["N", "V"], 10)
        s.set_polls_state("open", t(7))
        _fill_disk(s)
        for _ in range(10):  # growth fails below the low-water mark, but free slots remain: cast anyway
            s.confirm_cast(s.begin_cast(MAYOR_M3))
        assert s.counts().cast == {"N": 10, "V": 0} and s.capacity() == 10 and s.free_slots() == 0
        before = _slots(s)
        with pytest.raises(DiskFull) as full:
            s.begin_cast(COUNCIL_L3)
        assert "the disk is full: nothing was recorded" in str(full.value)
        assert str(full.value).endswith("Nothing was recorded for this ballot: return it to the voter.")
        assert _slots(s) == before and s.pending() == [] and s.counts().cast == {"N": 10, "V": 0}
        s.check_integrity()


def test_disk_full_during_confirmation_leaves_the_intent_for_recovery(store: ScannerStore,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    token = store.begin_cast(COUNCIL_L3)

    def full(name: str) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as m:
        m.setattr(store, "_bump", full)  # the slot is already flipped to CAST inside the transaction
        with pytest.raises(DiskFull, match="the disk is full: nothing was recorded for the confirmation"):
            store.confirm_cast(token)
    assert store.pending() == [token]  # not half-written: still an intent, not counted
    assert store.counts().cast == {"N": 0, "V": 0} and store.cast_vote_records() == []
    assert store.recover(lambda: True) is Resolution.CONFIRMED
    assert store.counts().cast == {"N": 0, "V": 1} and store.cast_vote_records() == [COUNCIL_L3]


def test_a_second_process_is_kept_out(store: ScannerStore, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("firmware.scanner.store.LOCK_TIMEOUT_S", 0.05)
    with pytest.raises(StoreError, match="another process holds the store"):
        ScannerStore(path)
    store.confirm_cast(store.begin_cast(MAYOR_M3))  # the owner carries on
    assert store.counts().cast == {"N": 1, "V": 0}


def test_integrity_check_catches_a_counter_that_disagrees(store: ScannerStore, path: Path) -> None:
    store.confirm_cast(store.begin_cast(MAYOR_M3))
    store.check_integrity()
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE counter SET value = ? WHERE name = 'cast/N'", (struct.pack(">q", 5),))
    db.close()
    with ScannerStore(path) as again, pytest.raises(StoreError, match=r"counters \{'N': 5, 'V': 0\} differ"):
        again.check_integrity()


def _key(cvr: dict[str, Any]) -> str:
    return json.dumps(cvr, sort_keys=True)


def _slots(store: ScannerStore) -> list[tuple[bytes, str, bytes]]:
    return store._db.execute("SELECT slot_id, state, record FROM cvr_slot").fetchall()


def _fill_disk(store: ScannerStore) -> None:
    """Simulate a full data partition: the database may not grow by a single page."""
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    assert store._db.execute(f"PRAGMA max_page_count = {pages}").fetchone()[0] == pages

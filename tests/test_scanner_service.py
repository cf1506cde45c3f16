"""The scanner service on the simulated station: polls, ballots, faults, power cuts, results.

Every test runs the firmware unchanged on the simulator's twins (fixed seeds) with a real store in
tmp_path, and checks the store's counters, the physical box and the paper path against each other.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.election import Election
from firmware.cec.ballots import render_ballot
from firmware.cec.pens import INKS, MarkStyle, Pen, draw_mark
from firmware.common.i18n import Messages
from firmware.common.identity import load_or_provision
from firmware.scanner.service import CycleResult, PollsError, ScannerService
from firmware.scanner.states import BallotState, PollsState
from firmware.scanner.store import BallotCounts, ScannerStore
from hal.panel import PanelVerdict, VoterChoice
from hal.switches import Indicator
from omr.types import Reason, Verdict
from simulator.devices import SimStation, build_sim_station
from simulator.voters import ContestIntent, Expected, Intent, Sheet, new_sheet

DEVICE_ID = "BB-TEST-0001"
STATION_SEED, STORE_SEED, VOTER_SEED = 11, 12, 13
DPI = 200.0  # build_sim_station's camera default


@pytest.fixture(scope="module")
def messages() -> Messages:
    return Messages.for_language("bs")


# -- intents ---------------------------------------------------------------------------------
def mayor(*candidates: str) -> ContestIntent:
    """The mayor's contest (single choice, vote for 1) with these candidates marked."""
    if not candidates:
        return ContestIntent("nacelnik", Intent.BLANK, frozenset(), Expected("blank"))
    if len(candidates) > 1:
        return ContestIntent("nacelnik", Intent.OVERVOTE, frozenset(candidates), Expected("overvote"))
    return ContestIntent("nacelnik", Intent.VALID, frozenset(candidates), Expected("valid", None, candidates))


def council(list_id: str | None, *preferences: str, list_box: bool = True) -> ContestIntent:
    """The council contest (open list): the list box of `list_id` (unless list_box=False) and preferences."""
    if list_id is None and not preferences:
        return ContestIntent("vijece", Intent.BLANK, frozenset(), Expected("blank"))
    boxes = frozenset(({list_id} if list_box and list_id else set()) | set(preferences))
    return ContestIntent("vijece", Intent.VALID, boxes, Expected("valid", list_id, tuple(preferences)))


def counts(cast_n: int = 0, cast_v: int = 0, returned_n: int = 0, returned_v: int = 0, pending: int = 0) -> BallotCounts:
    return BallotCounts(cast={"N": cast_n, "V": cast_v}, returned={"N": returned_n, "V": returned_v}, pending=pending)


# -- the station -----------------------------------------------------------------------------
@dataclass
class Station:
    """A simulated polling station: the world (sim), the firmware (svc) and its store."""

    election: Election
    messages: Messages
    sim: SimStation
    data_dir: Path
    store: ScannerStore
    svc: ScannerService
    voters: random.Random = field(default_factory=lambda: random.Random(VOTER_SEED))
    reports: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.data_dir / "scanner.sqlite"

    def sheet(self, style: str, *contests: ContestIntent) -> Sheet:
        return new_sheet(style, contests, self.voters)

    def insert(self, sheet: Sheet, choice: VoterChoice | None = None) -> CycleResult:
        """The voter puts `sheet` in the entry and, if asked, answers `choice` (default: cast if castable)."""
        if choice is not None:
            self.sim.panel.respond = lambda verdict, castable: choice
        self.sim.path.at_entry = sheet
        result = self.svc.process_ballot(wait_s=1.0)
        assert result is not None, "a sheet was at the entry sensor"
        return result

    def take_back(self, sheet: Sheet | None) -> None:
        """The voter takes the sheet sticking out of the slot; the firmware's idle loop then sees the
        entry sensor clear (simulator/day.py does the same)."""
        assert self.sim.path.returned is sheet
        self.sim.path.returned = None
        assert self.svc.process_ballot(wait_s=0.5) is None

    def power_cut(self) -> None:
        """The power goes: the service object is gone, the store's file keeps what was committed."""
        self.store.close()  # releases the exclusive lock a dead process would have released
        del self.svc
        self.store = ScannerStore.for_election(self.db, self.election, rng=random.Random(STORE_SEED + 1))
        self.svc = ScannerService(self.election, self.sim.devices, self.store, self.messages,
                                  load_or_provision(self.data_dir, DEVICE_ID), on_report=self._report)

    def _report(self, kind: str, report: Any) -> None:
        self.reports.append((kind, report))


@pytest.fixture
def configured(tmp_path: Path, election: Election, messages: Messages) -> Iterator[Station]:
    """Self-tested and configured: polls CLOSED_INITIAL, no zero report yet."""
    sim = build_sim_station(election, random.Random(STATION_SEED))
    store = ScannerStore.for_election(tmp_path / "scanner.sqlite", election, rng=random.Random(STORE_SEED))
    st = Station(election, messages, sim, tmp_path, store, svc=None)  # type: ignore[arg-type]
    st.svc = ScannerService(election, sim.devices, store, messages, load_or_provision(tmp_path, DEVICE_ID),
                            on_report=st._report)
    assert all(r.ok for r in st.svc.self_test())
    st.svc.configure()
    assert st.svc.polls.state == PollsState.CLOSED_INITIAL
    yield st
    st.store.close()


@pytest.fixture
def station(configured: Station) -> Station:
    """Zero report printed, polls open."""
    configured.svc.print_zero_report()
    configured.svc.open_polls()
    return configured


# -- polls -----------------------------------------------------------------------------------
def test_opening_is_refused_before_the_zero_report(configured: Station) -> None:
    with pytest.raises(PollsError, match=r"Art\. 20\(4\)"):
        configured.svc.open_polls()
    assert configured.svc.polls.state == PollsState.CLOSED_INITIAL
    assert configured.store.polls_state() == "closed_initial"
    assert configured.sim.printer.printed == []
    assert configured.svc.opened_at is None


def test_zero_report_is_printed_then_the_polls_open(configured: Station) -> None:
    st = configured
    st.svc.print_zero_report()
    assert len(st.sim.printer.printed) == 1
    assert st.sim.printer.printed[0].width <= st.sim.printer.width_px
    assert [kind for kind, _ in st.reports] == ["zero"]
    assert st.reports[0][1].is_zero
    assert st.svc.zero_report_printed is True
    assert st.svc.polls.state == PollsState.CLOSED_INITIAL

    st.svc.open_polls()
    assert st.svc.polls.state == PollsState.OPEN
    assert st.store.polls_state() == "open"
    assert st.svc.opened_at == st.sim.clock.now()
    assert st.sim.switches.indicators[Indicator.READY] is True
    assert st.sim.panel.messages[-1] == st.messages.t("panel.insert_ballot")
    assert st.store.counts() == counts()


def test_no_sheet_at_the_entry_is_no_cycle(station: Station) -> None:
    t0 = station.sim.clock.monotonic()
    assert station.svc.process_ballot(wait_s=2.0) is None
    assert station.sim.clock.monotonic() - t0 == pytest.approx(2.0)
    assert station.store.counts() == counts()


def test_tallies_are_refused_before_the_close(station: Station) -> None:
    station.insert(station.sheet("N", mayor("m3")))
    with pytest.raises(PollsError, match="only after the polls are closed"):
        station.svc.tallies()
    station.svc.pause()
    with pytest.raises(PollsError, match="only after the polls are closed"):
        station.svc.tallies()


def test_close_is_refused_while_a_fault_is_pending(station: Station) -> None:
    st = station
    st.sim.feeder.inject("jam_in")
    assert st.insert(st.sheet("N", mayor("m1"))).state == BallotState.JAMMED
    with pytest.raises(PollsError, match="'jammed'"):
        st.svc.close_polls()
    assert st.svc.polls.state == PollsState.OPEN
    assert st.store.polls_state() == "open"

    st.sim.feeder.clear_jam()
    st.svc.clear_fault(sheet_removed=True)
    st.svc.close_polls()
    assert st.svc.polls.state == PollsState.CLOSED_FINAL
    assert st.store.polls_state() == "closed_final"


# -- ballots ---------------------------------------------------------------------------------
def test_a_valid_mayor_ballot_is_cast(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor("m3"))
    result = st.insert(sheet)
    assert result.state == BallotState.WAITING
    assert (result.cast, result.returned, result.fault) == (True, False, None)
    assert result.interpretation is not None and result.interpretation.verdict == Verdict.VALID
    assert result.interpretation.cast_vote_record() == {
        "style": "N", "contests": {"nacelnik": {"outcome": "valid", "list": None, "candidates": ["m3"]}}}
    assert st.store.counts() == counts(cast_n=1)
    assert st.store.pending() == []
    assert st.sim.box.sheets == [sheet]
    assert (st.sim.path.at_entry, st.sim.path.held, st.sim.path.returned) == (None, None, None)
    assert [v for v, _, _ in st.sim.panel.shown] == [PanelVerdict.VALID]
    assert st.sim.panel.messages[-1] == st.messages.t("panel.insert_ballot")
    assert st.svc.usage.cycles == 1


def test_the_voter_takes_the_ballot_back(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor("m5"))
    result = st.insert(sheet, VoterChoice.RETURN)
    assert (result.state, result.cast, result.returned) == (BallotState.WAITING, False, True)
    assert st.store.counts() == counts(returned_n=1)
    assert st.store.cast_vote_records() == []
    assert st.sim.box.sheets == []
    assert st.sim.path.returned is sheet
    assert st.sim.path.held is None and st.sim.path.at_entry is None


def test_a_returned_sheet_left_in_the_slot_is_not_pulled_back_in(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor("m5"))
    assert st.insert(sheet, VoterChoice.RETURN).returned is True
    assert st.sim.feeder.sensors().entry is True  # it sticks out over the entry sensor
    for _ in range(3):
        assert st.svc.process_ballot(wait_s=1.0) is None
    assert st.sim.path.returned is sheet and st.sim.path.held is None
    assert st.store.counts() == counts(returned_n=1)
    assert st.svc.usage.faults == {}

    st.take_back(sheet)
    again = st.sheet("N", mayor("m5"))
    assert st.insert(again, VoterChoice.CAST).cast is True
    assert st.store.counts() == counts(cast_n=1, returned_n=1)
    assert st.sim.box.sheets == [again]


def test_no_answer_from_the_voter_returns_the_ballot(station: Station) -> None:
    result = station.insert(station.sheet("N", mayor("m2")), VoterChoice.NONE)
    assert (result.cast, result.returned) == (False, True)
    assert station.store.counts() == counts(returned_n=1)
    assert station.sim.box.sheets == []


def test_an_invalid_blank_ballot_is_cast_when_the_voter_chooses_cast(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor())
    result = st.insert(sheet, VoterChoice.CAST)
    assert result.interpretation is not None
    assert result.interpretation.verdict == Verdict.INVALID
    assert [v for v, _, castable in st.sim.panel.shown] == [PanelVerdict.INVALID]
    assert st.sim.panel.shown[0][2] is True  # nevažeći is castable: the voter decides
    assert (result.cast, result.returned) == (True, False)
    assert st.store.counts() == counts(cast_n=1)
    assert st.store.cast_vote_records() == [
        {"style": "N", "contests": {"nacelnik": {"outcome": "blank", "list": None, "candidates": []}}}]
    assert st.sim.box.sheets == [sheet]


def foreign_sheet(election: Election, station_code: str, style: str, box: str) -> Sheet:
    """A genuine, signed ballot of another polling station, marked in `box`."""
    other = election.model_copy(update={"station": election.station.model_copy(update={"code": station_code})})
    img, layout = render_ballot(other, style, DPI)
    image = np.array(img)
    rect = {b.candidate or b.list: b.rect.px(DPI) for b in layout.boxes}[box]
    draw_mark(image, rect, MarkStyle.X, Pen(INKS["black"], 0.6), DPI, random.Random(VOTER_SEED))
    return Sheet(990001, style, (mayor(box),), image=image, foreign=True)


def test_a_foreign_ballot_is_never_cast_and_pauses_the_polls(station: Station) -> None:
    st = station
    sheet = foreign_sheet(st.election, "089A013", "N", "m3")
    beeps = st.sim.switches.beeps
    result = st.insert(sheet, VoterChoice.CAST)  # even a voter who wants to cast it cannot
    assert result.interpretation is not None
    assert result.interpretation.verdict == Verdict.FOREIGN
    assert result.interpretation.reasons == (Reason.OTHER_STATION,)
    assert (result.state, result.cast, result.returned) == (BallotState.WAITING, False, True)
    assert st.sim.panel.shown[-1][0] == PanelVerdict.FOREIGN and st.sim.panel.shown[-1][2] is False
    assert st.store.counts().cast == {"N": 0, "V": 0}
    assert st.store.cast_vote_records() == []
    assert st.sim.box.sheets == []
    assert st.sim.path.returned is sheet
    assert st.svc.polls.state == PollsState.PAUSED
    assert st.store.polls_state() == "paused"
    assert st.sim.switches.indicators[Indicator.ATTENTION] is True
    assert st.sim.switches.beeps == beeps + 3
    assert [e.kind for e in st.store.events()][-2:] == ["foreign_ballot", "polls_pause"]

    st.sim.path.returned = None  # the president takes the sheet (Art. 21(10))
    # while paused the box takes nothing in
    genuine = st.sheet("N", mayor("m4"))
    st.sim.path.at_entry = genuine
    assert st.svc.process_ballot(wait_s=1.0) is None
    assert st.sim.path.at_entry is genuine
    st.sim.path.at_entry = None  # the voter waits for the committee

    st.svc.resume()
    assert st.svc.polls.state == PollsState.OPEN
    assert st.sim.switches.indicators[Indicator.ATTENTION] is False
    assert st.svc.process_ballot(wait_s=0.5) is None  # the slot is empty
    assert st.insert(genuine).cast is True
    assert st.store.counts().cast == {"N": 1, "V": 0}
    assert st.sim.box.sheets == [genuine]


def test_a_camera_failure_returns_the_ballot_uncounted(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor("m1"))
    st.sim.camera.fail_next = True
    result = st.insert(sheet, VoterChoice.CAST)
    assert (result.state, result.cast, result.returned) == (BallotState.WAITING, False, True)
    assert result.fault == "capture_failed"
    assert result.interpretation is not None and result.interpretation.verdict == Verdict.UNREADABLE
    assert st.sim.panel.shown == []  # no verdict to show, no question to the voter
    assert st.store.counts() == counts()  # style unknown: not in the per-style counters...
    assert st.svc.usage.unread_returned == 1  # ...but counted as an unread return
    assert st.sim.box.sheets == []
    assert st.sim.path.returned is sheet
    assert "capture_failed" in [e.kind for e in st.store.events()]

    # the camera works again: the same sheet reinserted is cast
    st.take_back(sheet)
    assert st.insert(sheet).cast is True
    assert st.store.counts() == counts(cast_n=1)


# -- faults ----------------------------------------------------------------------------------
def test_a_jam_during_take_in(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor("m2"))
    st.sim.feeder.inject("jam_in")
    result = st.insert(sheet)
    assert (result.state, result.fault, result.cast, result.returned) == (BallotState.JAMMED, "paper_jam", False, False)
    assert st.svc.usage.faults == {"paper_jam": 1}
    assert st.sim.switches.indicators[Indicator.ATTENTION] is True
    assert st.sim.panel.messages[-1] == st.messages.t("panel.paper_jam")
    with pytest.raises(PollsError, match="clear the fault first"):
        st.svc.process_ballot()

    assert st.sim.feeder.clear_jam() is sheet  # into the operator's hand, not back into the slot
    st.svc.clear_fault(sheet_removed=True)
    assert st.sim.path.returned is None and st.svc.process_ballot(wait_s=0.5) is None  # WAITING again
    assert st.sim.switches.indicators[Indicator.ATTENTION] is False
    assert st.store.counts() == counts()
    assert st.store.pending() == []
    assert st.sim.box.sheets == []

    assert st.insert(sheet).cast is True  # reinserted, it goes through once
    assert st.store.counts() == counts(cast_n=1)
    assert st.sim.box.sheets == [sheet]


def test_a_jam_during_the_drop_with_the_sheet_taken_out(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor("m6"))
    st.sim.feeder.inject("jam_drop")
    result = st.insert(sheet)
    assert (result.state, result.fault, result.cast) == (BallotState.JAMMED, "paper_jam", False)
    assert len(st.store.pending()) == 1  # the intent is on disk
    assert st.store.counts() == counts(pending=1)
    assert st.sim.path.held is sheet

    assert st.sim.feeder.clear_jam() is sheet  # the operator takes it out: it never reached the box
    st.svc.clear_fault(sheet_removed=True)
    assert st.store.pending() == []
    # a fault took it out, the voter did not take it back: not a returned ballot; it is fed again
    assert st.store.counts() == counts()
    assert st.store.cast_vote_records() == []
    assert st.sim.box.sheets == [] and st.sim.path.returned is None
    assert st.insert(sheet).cast is True
    assert st.store.counts() == counts(cast_n=1) and st.sim.box.sheets == [sheet]


def test_a_jam_during_the_drop_when_the_sheet_fell_into_the_box(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor("m6"))
    st.sim.feeder.inject("jam_drop")
    assert st.insert(sheet).state == BallotState.JAMMED
    assert len(st.store.pending()) == 1

    assert st.sim.path.held is sheet
    st.sim.box.sheets.append(sheet)  # the sheet really fell; the operator finds the path empty
    st.sim.path.held = None
    assert st.sim.feeder.clear_jam() is None
    st.svc.clear_fault(sheet_removed=False)
    assert st.store.pending() == []
    assert st.store.counts() == counts(cast_n=1)
    assert st.store.cast_vote_records() == [
        {"style": "N", "contests": {"nacelnik": {"outcome": "valid", "list": None, "candidates": ["m6"]}}}]
    assert st.sim.box.sheets == [sheet]
    st.svc.clear_fault(sheet_removed=False)  # a second clear has nothing to do: counted exactly once
    assert st.store.counts() == counts(cast_n=1)


def test_a_double_sheet_is_returned_and_nothing_is_counted(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor("m7"))
    st.sim.feeder.inject("double")
    result = st.insert(sheet)
    assert (result.state, result.fault, result.cast) == (BallotState.DOUBLE_SHEET, "double_sheet", False)
    assert result.interpretation is None  # two sheets are never imaged
    assert st.sim.path.returned is sheet and st.sim.path.held is None
    assert st.sim.panel.messages[-1] == st.messages.t("panel.double_sheet")

    st.svc.clear_fault(sheet_removed=True)
    assert st.store.counts() == counts()
    assert st.store.pending() == []
    assert st.sim.box.sheets == []
    assert st.svc.usage.faults == {"double_sheet": 1}

    st.take_back(sheet)
    assert st.insert(sheet).cast is True  # fed again, one by one
    assert st.store.counts() == counts(cast_n=1)


def test_a_full_box_aborts_the_intent_and_returns_the_sheet(station: Station) -> None:
    st = station
    st.sim.box.capacity = 1
    first = st.sheet("N", mayor("m1"))
    assert st.insert(first).cast is True
    assert st.sim.box.full

    second = st.sheet("N", mayor("m2"))
    result = st.insert(second)
    assert (result.state, result.fault, result.cast) == (BallotState.BOX_FULL, "box_full", False)
    assert st.store.pending() == []  # the intent was withdrawn
    assert st.store.counts().cast == {"N": 1, "V": 0}
    assert st.store.counts().pending == 0
    assert st.store.cast_vote_records() == [
        {"style": "N", "contests": {"nacelnik": {"outcome": "valid", "list": None, "candidates": ["m1"]}}}]
    assert st.sim.box.sheets == [first]
    assert st.sim.path.returned is second and st.sim.path.held is None
    assert st.sim.panel.messages[-1] == st.messages.t("panel.box_full")

    st.svc.clear_fault(sheet_removed=True)
    st.take_back(second)  # WAITING again
    assert st.store.counts().cast == {"N": 1, "V": 0}
    assert st.sim.box.sheets == [first]


def test_an_open_cover_stops_the_feeder(station: Station) -> None:
    st = station
    sheet = st.sheet("N", mayor("m8"))
    st.sim.feeder.inject("cover")
    result = st.insert(sheet)
    assert (result.state, result.fault, result.cast) == (BallotState.COVER_OPEN, "cover_open", False)
    assert st.sim.feeder.cover_open is True
    assert st.sim.path.at_entry is sheet  # never taken in
    assert st.sim.panel.messages[-1] == st.messages.t("panel.cover_open")
    assert st.store.counts() == counts()

    st.sim.feeder.cover_open = False  # the operator closes the cover, the sheet stays in the entry
    st.svc.clear_fault(sheet_removed=False)
    assert st.store.counts() == counts()
    assert st.svc.process_ballot(wait_s=1.0).cast is True  # type: ignore[union-attr]
    assert st.store.counts() == counts(cast_n=1)
    assert st.sim.box.sheets == [sheet]


# -- power cuts ------------------------------------------------------------------------------
class PowerCut(Exception):
    """The supply dies while the motor runs: the service never hears from the exit sensor."""


def _cut_power_during_drop(st: Station, sheet_falls: bool) -> None:
    def drop() -> None:
        if sheet_falls:
            assert st.sim.path.held is not None
            st.sim.box.sheets.append(st.sim.path.held)
            st.sim.path.held = None
        raise PowerCut

    st.sim.feeder.drop_into_box = drop  # type: ignore[method-assign]
    with pytest.raises(PowerCut):
        st.insert(st.sheet("N", mayor("m4")))
    del st.sim.feeder.drop_into_box  # the motor works again after the restart
    st.power_cut()
    assert len(st.store.pending()) == 1  # begin_cast was committed before the motor moved
    assert st.svc.polls.state == PollsState.OPEN


def test_power_cut_with_the_sheet_still_held_aborts_the_intent(station: Station) -> None:
    st = station
    _cut_power_during_drop(st, sheet_falls=False)
    assert st.sim.path.held is not None
    assert st.svc.recover_after_power_cut() is True
    assert st.store.pending() == []
    assert st.store.counts() == counts()
    assert st.store.cast_vote_records() == []
    assert st.sim.box.sheets == []
    assert st.svc.recover_after_power_cut() is False  # nothing left open


def test_power_cut_after_the_sheet_fell_confirms_it_once(station: Station) -> None:
    st = station
    _cut_power_during_drop(st, sheet_falls=True)
    assert st.sim.path.held is None and len(st.sim.box.sheets) == 1
    assert st.svc.recover_after_power_cut() is True
    assert st.store.pending() == []
    assert st.store.counts() == counts(cast_n=1)
    assert st.svc.recover_after_power_cut() is False
    assert st.store.counts() == counts(cast_n=1)

    # the restarted box goes on and its results hold the recovered ballot exactly once
    assert st.insert(st.sheet("N", mayor("m4"))).cast is True
    st.svc.close_polls()
    tallies = st.svc.tallies()
    assert tallies["nacelnik"].ballots == 2
    assert tallies["nacelnik"].candidate_votes == {f"m{i}": 2 if i == 4 else 0 for i in range(1, 9)}
    assert st.store.counts() == counts(cast_n=2)
    assert len(st.sim.box.sheets) == 2


# -- a slice of a day ------------------------------------------------------------------------
def test_a_day_slice_tallies_exactly_what_was_cast(station: Station, election: Election) -> None:
    st = station
    cast = [
        st.sheet("N", mayor("m3")),
        st.sheet("N", mayor("m5")),
        st.sheet("N", mayor("m1", "m2")),  # over-vote, cast knowingly
        st.sheet("V", council("l2")),  # list only
        st.sheet("V", council("l7", "l7c3", "l7c9")),  # list and two preferences
        st.sheet("V", council(None)),  # blank, cast knowingly
    ]
    for sheet in cast:
        result = st.insert(sheet, VoterChoice.CAST)
        assert (result.state, result.cast) == (BallotState.WAITING, True), sheet.contests
    assert st.store.counts() == counts(cast_n=3, cast_v=3)
    assert st.sim.box.sheets == cast

    st.sim.clock.sleep(3600)
    st.svc.close_polls()
    assert st.svc.polls.state == PollsState.CLOSED_FINAL
    assert st.svc.closed_at == st.sim.clock.now()
    assert [kind for kind, _ in st.reports] == ["zero", "results"]
    assert len(st.sim.printer.printed) == 2

    t = st.svc.tallies()
    assert list(t) == ["nacelnik", "vijece"]
    n, v = t["nacelnik"], t["vijece"]
    assert (n.ballots, n.valid, n.ambiguous) == (3, 2, 0)
    assert n.invalid_by_reason == {"blank": 0, "overvote": 1, "multiple_lists": 0}
    assert n.list_votes == {}
    assert n.candidate_votes == {"m1": 0, "m2": 0, "m3": 1, "m4": 0, "m5": 1, "m6": 0, "m7": 0, "m8": 0}

    assert (v.ballots, v.valid, v.ambiguous) == (3, 2, 0)
    assert v.invalid_by_reason == {"blank": 1, "overvote": 0, "multiple_lists": 0}
    contest = election.contest("vijece")
    assert v.list_votes == {pl.id: 1 if pl.id in ("l2", "l7") else 0 for pl in contest.lists}
    assert v.candidate_votes == {c.id: 1 if c.id in ("l7c3", "l7c9") else 0
                                 for pl in contest.lists for c in pl.candidates}
    assert sum(v.candidate_votes.values()) == 2


def test_a_failed_intent_write_never_drops_the_ballot(station: Station, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full while writing the intent: the ballot must not fall into the box unrecorded."""
    from firmware.scanner.store import DiskFull
    st = station
    sheet = st.sheet("N", mayor("m1"))

    def full(cvr: object) -> object:
        raise DiskFull("database or disk is full: nothing was recorded for this ballot")
    monkeypatch.setattr(st.store, "begin_cast", full)
    result = st.insert(sheet)
    assert (result.state, result.cast) == (BallotState.ERROR, False)
    assert st.sim.box.sheets == [] and st.sim.path.returned is sheet  # handed back, never dropped
    assert st.sim.switches.indicators[Indicator.BUSY] is False
    assert st.sim.switches.indicators[Indicator.ATTENTION] is True
    monkeypatch.undo()
    st.svc.clear_fault(sheet_removed=False)
    st.take_back(sheet)
    assert st.store.counts() == counts() and st.store.pending() == []
    assert st.insert(sheet).cast is True


def test_a_foreign_ballot_of_an_unknown_style_does_not_wedge_the_feeder(station: Station) -> None:
    import dataclasses

    from omr.types import Reason, Verdict
    st = station
    sheet = st.sheet("N", mayor("m1"))
    real = st.svc._do_interpret

    def foreign_k(b):  # a genuinely signed ballot of another election, style "K"
        event = real(b)
        b.interpretation = dataclasses.replace(b.interpretation, verdict=Verdict.FOREIGN, style="K",
                                               reasons=(Reason.OTHER_ELECTION,), contests={})
        return event
    st.svc._do_interpret = foreign_k  # type: ignore[method-assign]
    result = st.insert(sheet)
    assert (result.state, result.cast, result.returned) == (BallotState.WAITING, False, True)
    assert st.store.counts() == counts()  # not counted against this station's styles
    assert st.svc.usage.unread_returned == 1


def test_self_test_says_whether_the_mark_model_is_there(configured: Station) -> None:
    """The zero report shows the second opinion's state; its absence never blocks the day."""
    svc = configured.svc
    line = next(r for r in svc.self_test() if r.device == "mark_model")
    if svc.second_opinion is not None:
        assert line.ok and svc.second_opinion.runtime in line.detail
    svc.second_opinion = None
    line = next(r for r in svc.self_test() if r.device == "mark_model")
    from omr.second_opinion import MarkClassifier

    reason = MarkClassifier.unavailable_reason() or "?"
    assert line.ok and line.detail == configured.messages.t("selftest.mark_model.unavailable", reason=reason)
    svc.configure()  # not a reason to refuse the day


@pytest.mark.parametrize("taken_out", [True, False])
def test_power_cut_while_a_jammed_drop_is_cleared_asks_the_operator(station: Station, taken_out: bool) -> None:
    """The drop jams with the intent open; the operator opens the cover and takes the sheet out; the power
    fails before they tell the box. The path is empty, but that no longer proves the drop: the box asks."""
    st = station
    st.sim.feeder.inject("jam_drop")
    result = st.insert(st.sheet("N", mayor("m4")), VoterChoice.CAST)
    assert result.state == BallotState.JAMMED and len(st.store.pending()) == 1
    assert st.store.intent_in_doubt
    in_hand = st.sim.feeder.clear_jam()  # the sheet is in the operator's hand ...
    assert in_hand is not None
    if not taken_out:  # ... or, in the other story, it had fallen after all and the path is simply empty
        st.sim.box.sheets.append(in_hand)
    st.power_cut()
    with pytest.raises(PollsError, match="operator must say"):
        st.svc.recover_at_boot()  # without the operator the box does not guess
    questions: list[str] = []
    decisions = st.svc.recover_at_boot(ask_operator=lambda q: questions.append(q) or taken_out)
    assert len(questions) == 1 and "izvađen iz uvlakača" in questions[0]  # the station speaks bs
    codes = [code for code, _ in decisions]
    if taken_out:
        assert codes == ["operator_taken_out", "returned_intent", "polls_paused"]
        assert st.store.counts() == counts()
    else:
        assert codes == ["operator_in_box", "counted", "polls_paused"]
        assert st.store.counts() == counts(cast_n=1)
    assert st.store.pending() == [] and not st.store.intent_in_doubt
    assert st.svc.polls.state == PollsState.PAUSED  # open polls come back paused, never reopened by themselves


def test_boot_recovery_pushes_out_a_sheet_held_without_an_intent_and_logs_what_it_decided(station: Station) -> None:
    st = station
    st.sim.path.at_entry = st.sheet("N", mayor("m2"))
    st.sim.feeder.take_in()  # held at the imaging position when the power went; nothing was cast
    st.power_cut()
    decisions = st.svc.recover_at_boot()
    assert [code for code, _ in decisions] == ["returned_unread", "polls_paused"]
    assert decisions[0][1].endswith("vraćen glasaču, nije prebrojan")
    assert st.sim.path.held is None and st.sim.path.returned is not None
    assert st.store.counts() == counts()
    logged = [e for e in st.store.events() if e.kind == "power_cut_recovery"]
    assert [e.detail for e in logged] == [{"decisions": ["returned_unread", "polls_paused"]}]

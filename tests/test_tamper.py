"""Tamper (issue 12, item 6): the lid and seal switches watched while the polls are open - logged, alarmed
on the panel, voting suspended for the president, and printed on the results report."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ballotbox.cli import main
from config.election import Election
from firmware.common.i18n import Messages
from firmware.common.identity import load_or_provision
from firmware.scanner.reporting import tamper_lines
from firmware.scanner.service import TAMPER_POLL_S, ScannerService
from firmware.scanner.states import PollsState
from firmware.scanner.store import ScannerStore
from hal.clock import station_time
from hal.switches import Indicator, SealState
from simulator.devices import SimStation, build_sim_station


class Box:
    def __init__(self, tmp_path: Path, election: Election, language: str = "en") -> None:
        self.dir, self.election, self.language = tmp_path, election, language
        self.sim: SimStation = build_sim_station(election, random.Random(1))
        self.store = ScannerStore.for_election(tmp_path / "scanner.sqlite", election, rng=random.Random(2))
        self.svc = self._service()

    def _service(self) -> ScannerService:
        return ScannerService(self.election, self.sim.devices, self.store, Messages.for_language(self.language),
                              load_or_provision(self.dir, "BB-TEST-TAMPER"))

    def open(self) -> None:
        self.svc.self_test()
        self.svc.configure()
        self.svc.print_zero_report()
        self.sim.clock.advance_to(station_time(self.election.date, self.election.polls.opening))
        self.svc.open_polls()

    def lid(self, closed: bool) -> list[str]:
        self.sim.switches.state = SealState(self.sim.switches.state.seal_intact, lid_closed=closed)
        self.sim.clock.sleep(TAMPER_POLL_S)
        return self.svc.watch_tamper()

    def tamper_events(self) -> list[tuple[str, str, str]]:
        return [(e.at.strftime("%H:%M"), e.detail["switch"], e.detail["state"]) for e in self.store.events()
                if e.kind == "tamper"]


@pytest.fixture
def box(tmp_path: Path, election: Election) -> Box:
    b = Box(tmp_path, election)
    yield b
    b.store.close()


def test_the_lid_opened_during_voting_is_logged_alarmed_and_suspends_voting(box: Box) -> None:
    box.open()
    beeps = box.sim.switches.beeps
    assert box.lid(closed=False) == ["lid:open"]
    assert box.svc.polls.state == PollsState.PAUSED
    assert box.sim.switches.indicators[Indicator.ATTENTION] is True
    assert box.sim.switches.beeps == beeps + 5
    assert box.sim.panel.messages[-1] == ("The ballot box lid was opened – voting is suspended, call the committee "
                                          "president")
    assert box.lid(closed=False) == []  # still open: logged once
    assert box.lid(closed=True) == ["lid:closed"]
    assert box.svc.polls.state == PollsState.PAUSED  # closing the lid does not resume: the president does
    assert box.tamper_events() == [("07:00", "lid", "open"), ("07:00", "lid", "closed")]


def test_a_broken_seal_is_logged_once_and_printed(box: Box) -> None:
    box.open()
    box.sim.clock.sleep(3600)
    box.sim.switches.state = SealState(seal_intact=False, lid_closed=True)
    assert box.svc.watch_tamper() == ["seal:broken"]
    box.sim.clock.sleep(10)
    assert box.svc.watch_tamper() == []
    assert tamper_lines(box.svc) == ["Seal broken at 08:00"]


def test_the_switches_are_read_at_most_once_a_second(box: Box) -> None:
    box.open()
    box.svc.watch_tamper()
    box.sim.switches.state = SealState(seal_intact=True, lid_closed=False)
    assert box.svc.watch_tamper() == []  # the same instant: not read again
    box.sim.clock.sleep(TAMPER_POLL_S)
    assert box.svc.watch_tamper() == ["lid:open"]


def test_the_lid_is_not_watched_before_the_polls_open(box: Box) -> None:
    box.sim.switches.state = SealState(seal_intact=True, lid_closed=False)  # the technician installs the box
    assert box.svc.watch_tamper() == []
    assert box.tamper_events() == []


def test_after_a_power_cut_a_lid_still_open_is_not_logged_twice(box: Box) -> None:
    box.open()
    box.lid(closed=False)
    box.store.close()
    box.store = ScannerStore.for_election(box.dir / "scanner.sqlite", box.election, rng=random.Random(3))
    box.svc = box._service()
    assert box.lid(closed=False) == []
    assert box.lid(closed=True) == ["lid:closed"]
    assert [state for _, _, state in box.tamper_events()] == ["open", "closed"]


@pytest.mark.parametrize(("language", "line"), [
    ("en", "Lid opened at 07:00, closed at 07:03"),
    ("bs", "Poklopac otvoren u 07:00, zatvoren u 07:03"),
    ("hr", "Poklopac otvoren u 07:00, zatvoren u 07:03"),
    ("sr-Latn", "Poklopac otvoren u 07:00, zatvoren u 07:03"),
    ("sr-Cyrl", "Поклопац отворен у 07:00, затворен у 07:03"),
])
def test_the_lid_opening_is_told_in_the_stations_language(tmp_path: Path, election: Election, language: str,
                                                           line: str) -> None:
    b = Box(tmp_path, election, language)
    try:
        b.open()
        b.lid(closed=False)
        b.sim.clock.sleep(180)
        b.lid(closed=True)
        assert tamper_lines(b.svc) == [line]
    finally:
        b.store.close()


def test_the_results_report_prints_the_lid_opening_among_the_device_problems(box: Box) -> None:
    from firmware.scanner.reporting import results_report

    box.open()
    box.lid(closed=False)
    box.sim.clock.sleep(180)
    box.lid(closed=True)
    box.svc.resume()
    box.svc.close_polls()
    assert "Lid opened at 07:00, closed at 07:03" in results_report(box.svc).device_problems


def test_a_lid_left_open_is_printed_as_not_closed_again(box: Box) -> None:
    box.open()
    box.lid(closed=False)
    assert tamper_lines(box.svc) == ["Lid opened at 07:00, not closed again"]


def test_a_simulated_day_with_a_tamper_drill_alarms_resumes_and_prints_it(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "day"
    rc = main(["simulate", "--voters", "6", "--seed", "3", "--desk-voters", "0", "--no-faults", "--quiet",
               "--open-lid", "10:30", "--out", str(out)])
    assert rc == 0, capsys.readouterr().out
    report = json.loads((out / "reports" / "results-report.json").read_text(encoding="utf-8"))
    assert "Poklopac otvoren u 10:30, zatvoren u 10:33" in report["device_problems"]
    import sqlite3
    with sqlite3.connect(out / "state" / "device" / "scanner.sqlite") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM device_event ORDER BY seq")]
    assert kinds[kinds.index("tamper"):kinds.index("tamper") + 5] == [
        "tamper", "polls_pause", "tamper", "access_granted", "polls_resume"]
    # the signed scanner log holds them under catalogue ids, none of them "uncatalogued"
    lines = [json.loads(line) for line in (out / "state" / "device" / "scanner-events.jsonl").read_text().splitlines()]
    events = [line["event"] for line in lines]
    assert "log.uncatalogued" not in events
    assert events.count("tamper.switch_changed") == 2 and "user.pin_accepted" in events


def test_a_chattering_switch_is_logged_as_a_fault_not_guessed_open_or_closed(box: Box,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hal.errors import HalError

    box.open()

    def chattering() -> SealState:
        raise HalError("lid switch kept changing for 1 s", "check the switch's wiring")

    monkeypatch.setattr(box.sim.switches, "read", chattering)
    box.sim.clock.sleep(TAMPER_POLL_S)
    assert box.svc.watch_tamper() == []
    assert box.svc.polls.state == PollsState.OPEN
    faults = [e.detail for e in box.store.events() if e.kind == "tamper_switch_fault"]
    assert faults == [{"error": "lid switch kept changing for 1 s"}]

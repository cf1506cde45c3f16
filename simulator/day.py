"""A whole polling-station day in simulation: self-test, zero report, voters, faults, closing, results,
and the final check of the box's tallies against what is physically in the box.

Used by `ballotbox simulate` (training, rehearsal, CI). The firmware runs unchanged on the twins; the
simulated committee and operator do what the CEC instruction says they do.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from config.election import ContestKind, Election
from firmware.common.i18n import Messages
from firmware.common.identity import load_or_provision
from firmware.scanner.service import CycleResult, ScannerService
from firmware.scanner.states import BallotState
from firmware.scanner.store import ScannerStore
from hal.clock import station_time
from hal.panel import PanelVerdict, VoterChoice
from simulator.devices import SimStation, build_sim_station
from simulator.voters import BallotPlan, Sheet, Voter, make_population, new_sheet

SIM_DEVICE_ID = "BB-SIM-0001"
MAX_SHEETS_PER_BALLOT = 4  # the voter's ballot plus at most three replacements


@dataclass(frozen=True)
class FaultRates:
    """Per inserted sheet: how often the paper path misbehaves."""

    jam_in: float = 0.004
    jam_drop: float = 0.003
    double: float = 0.003
    cover: float = 0.001


@dataclass
class DayResult:
    agree: bool
    differences: list[str]
    box_tallies: dict[str, Any]
    truth_tallies: dict[str, Any]
    counts: dict[str, Any]
    stats: dict[str, Any]
    service: ScannerService = field(repr=False)
    station: SimStation = field(repr=False)


def run_day(election: Election, voters: int, seed: int, data_dir: Path, messages: Messages,
            faults: FaultRates = FaultRates(), on_report: Callable[[str, object], None] | None = None,
            progress: Callable[[int, int], None] | None = None) -> DayResult:
    rng = random.Random(seed)
    station = build_sim_station(election, rng)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = data_dir / "scanner.sqlite"
    for stale in list(data_dir.glob("scanner.sqlite*")):
        stale.unlink()  # a simulated day always starts from a freshly provisioned box
    store = ScannerStore.for_election(db, election)
    identity = load_or_provision(data_dir, SIM_DEVICE_ID)
    service = ScannerService(election, station.devices, store, messages, identity, on_report=on_report)
    day = _Day(election, station, service, rng, faults)

    clock = station.clock
    service.self_test()
    service.configure()
    clock.advance_to(station_time(election.date, election.polls.opening) - timedelta(minutes=30))
    service.print_zero_report()
    clock.advance_to(station_time(election.date, election.polls.opening))
    service.open_polls()

    population = make_population(election, voters, rng)
    opening = station_time(election.date, election.polls.opening)
    span = (station_time(election.date, election.polls.closing) - opening).total_seconds() - 600
    arrivals = sorted(rng.uniform(0, span) for _ in population)
    wall = time.perf_counter()
    for i, (voter, offset) in enumerate(zip(population, arrivals)):
        clock.advance_to(opening + timedelta(seconds=offset))
        day.vote(voter)
        if progress:
            progress(i + 1, len(population))
    wall_s = time.perf_counter() - wall

    clock.advance_to(station_time(election.date, election.polls.closing))
    service.close_polls()

    box = service.tallies()
    truth = truth_tallies(election, station.box.sheets)
    box_json = {cid: _tally_json(t) for cid, t in box.items()}
    differences = _compare(box_json, truth)
    cast_counts = store.counts()
    physical = Counter(s.style for s in station.box.sheets)
    for style in election.ballot_styles:
        stored = cast_counts.cast.get(style.id, 0)
        if stored != physical.get(style.id, 0):
            differences.append(f"style {style.id}: box counted {stored} ballots, {physical.get(style.id, 0)} are in the box")
    stats = dict(day.stats)
    stats["wall_seconds_voting"] = round(wall_s, 2)
    stats["cycle_ms_median"] = round(sorted(day.cycle_ms)[len(day.cycle_ms) // 2], 1) if day.cycle_ms else None
    stats["cycle_ms_p95"] = round(sorted(day.cycle_ms)[int(len(day.cycle_ms) * 0.95)], 1) if day.cycle_ms else None
    stats["sheets_in_box"] = len(station.box.sheets)
    store.close()  # the day is over: the store is released (and its journal scrubbed once more)
    return DayResult(not differences, differences, box_json, truth, cast_counts, stats, service, station)


class _Day:
    def __init__(self, election: Election, station: SimStation, service: ScannerService, rng: random.Random,
                 faults: FaultRates) -> None:
        self.e, self.st, self.svc, self.rng, self.faults = election, station, service, rng, faults
        self.stats: Counter[str] = Counter()
        self.cycle_ms: list[float] = []

    def vote(self, voter: Voter) -> None:
        self.stats["voters"] += 1
        for plan in voter.ballots:
            self._ballot(plan)

    def _ballot(self, plan: BallotPlan) -> None:
        if plan.spoiled_first is not None:
            # "I made a mistake": the voter feeds it, sees the verdict, takes it back, gets a new one (Art. 21(6-7))
            sheet = new_sheet(plan.style, plan.spoiled_first, self.rng)
            self._feed_until_decided(sheet, lambda v, c: VoterChoice.RETURN)
            self.stats["replacement_ballots"] += 1
            self.stats["returned_on_purpose"] += 1
        intents = plan.final
        for attempt in range(MAX_SHEETS_PER_BALLOT):
            sheet = new_sheet(plan.style, intents, self.rng)
            last = attempt == MAX_SHEETS_PER_BALLOT - 1
            seen: list[PanelVerdict] = []

            def respond(verdict: PanelVerdict, castable: bool) -> VoterChoice:
                seen.append(verdict)
                if verdict == PanelVerdict.VALID:
                    return VoterChoice.CAST
                if verdict == PanelVerdict.INVALID and (plan.casts_invalid or last):
                    return VoterChoice.CAST
                # accidental invalid, or an unclear mark: take it back and ask for a new ballot
                return VoterChoice.CAST if last and castable else VoterChoice.RETURN

            result = self._feed_until_decided(sheet, respond)
            if result.cast:
                self.stats["ballots_cast"] += 1
                return
            self.stats["replacement_ballots"] += 1
            verdict = seen[-1] if seen else None
            if verdict == PanelVerdict.INVALID:
                self.stats["returned_after_nevazeci"] += 1
                intents = plan.corrected or plan.final
            elif verdict == PanelVerdict.AMBIGUOUS:
                self.stats["returned_ambiguous"] += 1
            elif verdict in (PanelVerdict.FOREIGN, PanelVerdict.UNREADABLE):
                self.stats[f"returned_{verdict.value}"] += 1
        self.stats["ballots_given_up"] += 1  # handed to the committee as spoiled

    def _feed_until_decided(self, sheet: Sheet, respond: Callable[[PanelVerdict, bool], VoterChoice]) -> CycleResult:
        """Insert the sheet; if the paper path faults, the operator clears it and the voter reinserts."""
        for _ in range(6):
            self._maybe_fault()
            self.st.path.at_entry = sheet
            self.st.panel.respond = respond
            t0 = time.perf_counter()
            result = self.svc.process_ballot(wait_s=1.0)
            assert result is not None, "a sheet was at the entry sensor"
            if result.interpretation is not None and result.fault is None:
                self.cycle_ms.append((time.perf_counter() - t0) * 1000)
            self.st.clock.sleep(self.rng.uniform(4, 12))  # the voter reads the panel and decides
            if result.state == BallotState.WAITING:  # cast, or handed back
                self._take_back()
                return result
            # A fault: the operator opens the cover, takes out any sheet, closes it, clears the fault;
            # the voter gets the sheet back and feeds it again.
            self.stats[f"fault_{result.state.value}"] += 1
            self.st.clock.sleep(self.rng.uniform(60, 180))
            self.st.feeder.cover_open = False
            removed = self.st.feeder.clear_jam() is not None
            self.svc.clear_fault(sheet_removed=removed)
            self._take_back()
            if self.svc.polls.state.value == "paused":
                self.svc.resume()
        raise RuntimeError("a sheet could not be processed in 6 insertions: the simulated feeder is stuck")

    def _take_back(self) -> None:
        """The voter takes whatever sheet sticks out of the slot; the firmware's idle loop sees the entry
        sensor clear before the next sheet comes."""
        if self.st.path.returned is not None:
            self.st.path.returned = None
            assert self.svc.process_ballot(wait_s=0.5) is None

    def _maybe_fault(self) -> None:
        r = self.rng.random()
        f = self.faults
        for name, rate in (("jam_in", f.jam_in), ("jam_drop", f.jam_drop), ("double", f.double), ("cover", f.cover)):
            if r < rate:
                self.st.feeder.inject(name)
                self.stats[f"injected_{name}"] += 1
                return
            r -= rate


def truth_tallies(election: Election, sheets: list[Sheet]) -> dict[str, Any]:
    """Tallies of what is physically in the box, from the voters' intentions (not from any reading)."""
    out: dict[str, Any] = {}
    for contest in election.contests:
        t: dict[str, Any] = {"ballots": 0, "valid": 0, "invalid_by_reason": {}, "ambiguous": 0}
        if contest.kind == ContestKind.OPEN_LIST:
            t["list_votes"] = {pl.id: 0 for pl in contest.lists}
            t["candidate_votes"] = {c.id: 0 for pl in contest.lists for c in pl.candidates}
        else:
            t["list_votes"] = {}
            t["candidate_votes"] = {c.id: 0 for c in contest.candidates}
        out[contest.id] = t
    for sheet in sheets:
        for ci in sheet.contests:
            t = out[ci.contest]
            t["ballots"] += 1
            exp = ci.expected
            if exp.outcome == "valid":
                t["valid"] += 1
                if exp.list:
                    t["list_votes"][exp.list] += 1
                for c in exp.candidates:
                    t["candidate_votes"][c] += 1
            else:
                t["invalid_by_reason"][exp.outcome] = t["invalid_by_reason"].get(exp.outcome, 0) + 1
    return out


def _tally_json(t: Any) -> dict[str, Any]:
    return {"ballots": t.ballots, "valid": t.valid, "invalid_by_reason": {k: v for k, v in t.invalid_by_reason.items() if v},
            "ambiguous": t.ambiguous, "list_votes": dict(t.list_votes), "candidate_votes": dict(t.candidate_votes)}


def _compare(box: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    diffs = []
    for cid, want in truth.items():
        got = box.get(cid)
        if got is None:
            diffs.append(f"contest {cid}: missing from the box's tallies")
            continue
        for key in ("ballots", "valid", "ambiguous"):
            if got[key] != want[key]:
                diffs.append(f"contest {cid}: {key} box {got[key]} != truth {want[key]}")
        for key in ("invalid_by_reason", "list_votes", "candidate_votes"):
            for k in sorted(set(got[key]) | set(want[key])):
                if got[key].get(k, 0) != want[key].get(k, 0):
                    diffs.append(f"contest {cid}: {key}[{k}] box {got[key].get(k, 0)} != truth {want[key].get(k, 0)}")
    return diffs

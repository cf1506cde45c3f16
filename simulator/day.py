"""A whole polling-station day in simulation: self-test, zero report, voters, faults, closing, results,
and the final check of the box's tallies against what is physically in the box.

Used by `ballotbox simulate` (training, rehearsal, CI). The firmware runs unchanged on the twins; the
simulated committee and operator do what the CEC instruction says they do.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from config.election import ContestKind, Election
from firmware.common.i18n import Messages
from firmware.common.identity import load_or_provision
from firmware.common.roles import AccessControl, Role
from firmware.scanner.event_log import open_scanner_log
from firmware.scanner.service import CycleResult, ScannerService
from firmware.scanner.states import BallotState, PollsState
from firmware.scanner.store import ScannerStore
from hal.clock import station_time
from hal.panel import PanelVerdict, VoterChoice
from hal.switches import SealState
from simulator.credentials import credential_for, provision_test_pins
from simulator.day_video import DayVideo
from simulator.devices import AcceleratedClock, SimStation, build_sim_station
from simulator.voters import BallotPlan, Sheet, make_population, new_sheet
from simulator.world import JOURNAL, Journal, World, replay

SIM_DEVICE_ID = "BB-SIM-0001"
MAX_SHEETS_PER_BALLOT = 4  # the voter's ballot plus at most three replacements
LID_OPEN_S = 180.0  # a tamper drill (`simulate --open-lid HH:MM`): someone lifts the box's lid for 3 minutes


@dataclass(frozen=True)
class FaultRates:
    """Per inserted sheet: how often the paper path misbehaves."""

    jam_in: float = 0.004
    jam_drop: float = 0.003
    double: float = 0.003
    cover: float = 0.001

    def draw(self, rng: random.Random) -> str | None:
        """The fault this insertion suffers (the feeder's inject() name), or None."""
        r = rng.random()
        for name, rate in (("jam_in", self.jam_in), ("jam_drop", self.jam_drop), ("double", self.double),
                           ("cover", self.cover)):
            if r < rate:
                return name
            r -= rate
        return None


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
    recovery: list[tuple[str, str]] = field(default_factory=list)  # what the box decided at this boot
    documents: list[Any] = field(default_factory=list)  # the outbox's signed documents (SignedDocument)
    transmission: list[str] = field(default_factory=list)  # the committee's status lines, with --endpoint
    video: DayVideo | None = field(default=None, repr=False)  # the video service's day (simulator.day_video)


DEVICE_DIR, WORLD_DIR = "device", "world"  # the two parts of a state directory (the contract)


def run_day(election: Election, voters: int, seed: int, state_dir: Path, messages: Messages,
            faults: FaultRates = FaultRates(), on_report: Callable[[str, object], None] | None = None,
            progress: Callable[[int, int], None] | None = None, *, resume: bool = False,
            uploader_for: Callable[[ScannerStore, AcceleratedClock], Any] | None = None,
            open_lid: Sequence[str] = ()) -> DayResult:
    """Run (or, with `resume`, carry on after a power cut) the day kept in `state_dir`. `open_lid`: station
    times (HH:MM) at which someone opens the box's lid during voting (tamper drills).

    state_dir/device/ is the box's own storage (store, key, outbox), state_dir/world/ the simulator's
    physical world (simulator.world). The process may be killed at any instant; `resume` boots the
    firmware from the device part as after a power cut, and the world goes on where it was."""
    device_dir, world_dir = state_dir / DEVICE_DIR, state_dir / WORLD_DIR
    device_dir.mkdir(parents=True, exist_ok=True)
    world_dir.mkdir(parents=True, exist_ok=True)
    world = replay(world_dir / JOURNAL) if resume else World()
    journal = Journal(world_dir / JOURNAL)
    try:
        day = _Day(election, voters, seed, device_dir, world, journal, messages, faults, on_report, progress,
                   resume, uploader_for)
        day.lid_openings = sorted(station_time(election.date, t) for t in open_lid)
        return day.run()
    finally:
        journal.close()


class _Day:
    def __init__(self, election: Election, voters: int, seed: int, device_dir: Path, world: World, journal: Journal,
                 messages: Messages, faults: FaultRates, on_report: Callable[[str, object], None] | None,
                 progress: Callable[[int, int], None] | None, resume: bool,
                 uploader_for: Callable[[ScannerStore, AcceleratedClock], Any] | None = None) -> None:
        self.e, self.seed, self.world, self.journal, self.faults = election, seed, world, journal, faults
        self.progress, self.resume = progress, resume
        self.boot = world.boots
        st = self.st = build_sim_station(election, random.Random(f"{seed}:camera:{self.boot}"), journal=self._log)
        st.printer.on_print = lambda image: self._log({"e": "printed", "what": f"{image.width}x{image.height}"})
        self.population = make_population(election, voters, random.Random(f"{seed}:population"))
        arrivals = random.Random(f"{seed}:arrivals")
        span = (self._at(election.polls.closing) - self._at(election.polls.opening)).total_seconds() - 600
        self.arrivals = sorted(arrivals.uniform(0, span) for _ in self.population)
        self.sheets: dict[str, Sheet] = {}
        self.cycle_ms: list[float] = []
        self.decisions: list[tuple[str, str]] = []
        if resume:
            self._restore_world()
        self.store = ScannerStore.for_election(device_dir / "scanner.sqlite", election)
        identity = load_or_provision(device_dir, SIM_DEVICE_ID)
        # the signed event log beside the store (issue 12, item 5); resumed after a power cut
        self.event_log = open_scanner_log(device_dir, identity, st.clock.now, self.store)
        # the simulated committee and technician act with the TEST PINs (simulator.credentials)
        access = AccessControl(provision_test_pins(device_dir), st.clock, self.store.log_event)
        self.op, self.tech = credential_for(Role.OPERATOR), credential_for(Role.TECHNICIAN)
        self.president = credential_for(Role.PRESIDENT)
        self.svc = ScannerService(election, st.devices, self.store, messages, identity, on_report=on_report,
                                  access=access)
        self.svc.test_type = "simulation"  # a simulated day's results can never pass for a station's
        self.video = DayVideo(device_dir, st.clock, identity, election.station.code, seed, self.boot)
        # `simulate --endpoint`: the box's uploader sends the outbox live, on station time
        self.uploader = uploader_for(self.store, st.clock) if uploader_for is not None else None
        self.upload_log: list[str] = []
        self.lid_openings: list[datetime] = []  # tamper drills (run_day's open_lid)

    # -- the world's journal ---------------------------------------------------------------------
    def _log(self, event: dict[str, Any]) -> None:
        self.journal.write({"t": round(self.st.clock.monotonic(), 3), **event})

    def _stat(self, name: str) -> None:
        self._log({"e": "stat", "k": name})
        self.world.stats[name] += 1

    def _restore_world(self) -> None:
        """Put the physical world back as the journal left it: sheets where they were, the clock on
        (the power was off for a few minutes), no fault pending (a jam does not outlive a restart)."""
        self.st.clock.sleep(self.world.t + outage_s(self.seed, self.boot))
        restore_physical(self.st, self.world, self._sheet)

    def _sheet(self, key: str) -> Sheet:
        return sheet_for(self.population, self.seed, key, self.sheets)

    def _operator_took_the_sheet_out(self, question: str) -> bool:
        """The operator, asked after a power cut in the middle of clearing a fault: the sheet being cast is
        neither in the box nor in the path - it is in their hand."""
        w = self.world
        open_sheets = [k for keys in w.sheets.values() for k in keys if k not in w.attempts]
        return bool(open_sheets) and open_sheets[-1] not in w.box and open_sheets[-1] not in w.in_path

    def _at(self, hhmm: str) -> datetime:
        return station_time(self.e.date, hhmm)

    # -- the day ---------------------------------------------------------------------------------
    def run(self) -> DayResult:
        svc, clock, w = self.svc, self.st.clock, self.world
        if self.resume:
            self.decisions = svc.recover_at_boot(ask_operator=self._operator_took_the_sheet_out, credential=self.op)
            # what the bench checks after each power cut: ballots counted vs sheets physically in the box
            counted = dict(self.store.counts().cast)
            in_box = dict(Counter(s.style for s in self.st.box.sheets))
            self._log({"e": "boot", "decisions": [c for c, _ in self.decisions], "counted": counted,
                       "in_box": {style: in_box.get(style, 0) for style in counted}})
            w.boots += 1
        state = svc.polls.state
        if state in (PollsState.SETUP, PollsState.CLOSED_INITIAL):
            svc.self_test(credential=self.tech)
            svc.configure()
            clock.advance_to(self._at(self.e.polls.opening) - timedelta(minutes=30))
            svc.print_zero_report(credential=self.op)
            self._log({"e": "committee", "step": "zero_report"})
            clock.advance_to(self._at(self.e.polls.opening))
            svc.open_polls(credential=self.president)
            self._log({"e": "committee", "step": "opened"})
        elif state == PollsState.PAUSED:
            svc.self_test(credential=self.tech)  # the committee checks the box after the power cut, then resumes voting
            self._take_back_returned()
            svc.resume(credential=self.president)
            self._log({"e": "committee", "step": "resumed"})

        if svc.polls.state in (PollsState.OPEN, PollsState.PAUSED):  # the room is recorded while polls are open
            self.video.open(self._at(self.e.polls.closing))
        wall = time.perf_counter()
        if svc.polls.state == PollsState.OPEN:
            opening = self._at(self.e.polls.opening)
            for i in range(w.voters_done, len(self.population)):
                self._advance_to(opening + timedelta(seconds=self.arrivals[i]))
                self._vote(i)
                self._log({"e": "voter_end", "voter": i})
                w.voters_done = i + 1
                self._send()
                if self.progress:
                    self.progress(i + 1, len(self.population))
            self._advance_to(self._at(self.e.polls.closing))
            svc.video_manifest_sha256 = self.video.close()  # the final manifest hash goes on the results report
            svc.close_polls(credential=self.president)
            self._log({"e": "committee", "step": "closed"})
        elif svc.polls.state in (PollsState.CLOSED_FINAL, PollsState.TRANSMITTED) and "closed" not in w.committee:
            svc.video_manifest_sha256 = self.video.closed_hash()
            svc.reprint_results(credential=self.op)  # the box was cut off while printing the results: the committee asks again
            self._log({"e": "committee", "step": "closed"})
        wall_s = time.perf_counter() - wall
        if self.uploader is not None:
            result = self.uploader.run(give_up_after=3600.0)  # an hour of station time to get it all out
            self.upload_log.append(f"sent: {result.acknowledged} acknowledged, {result.refused} refused, "
                                   f"{result.waiting} waiting after {result.attempts} attempts")
            self.uploader.close()
        return self._result(wall_s)

    def _send(self) -> None:
        """The uploader's pass after an event: only when something waits (one POST per document)."""
        if self.uploader is not None and self.store.unsent():
            self.uploader.send_pending()

    def _advance_to(self, when: datetime) -> None:
        """Let station time pass; the box's idle loop reports turnout at each hour on the way (Art. 15)."""
        clock = self.st.clock
        stops = sorted([(self._at(hour), "turnout") for hour in self.e.polls.turnout_reports]
                       + [(at, "lid") for at in self.lid_openings])
        for due, what in stops:
            if clock.now() < due <= when:
                clock.advance_to(due)
                if what == "turnout":
                    self.svc.report_due_turnout()
                else:
                    self._lid_opened()
        clock.advance_to(when)
        # the time passed is journaled before the room camera records it: a power cut then never brings the
        # clock back to before frames already in the recording
        self._log({"e": "clock"})
        self.video.catch_up(when)

    def _lid_opened(self) -> None:
        """A tamper drill: the lid is lifted; the box's idle loop reads the switches, alarms and suspends
        voting; the lid is shut again, and the president, having looked, resumes with the PIN."""
        switches, svc = self.st.switches, self.svc
        switches.state = SealState(switches.state.seal_intact, lid_closed=False)
        self._log({"e": "lid", "state": "open"})
        self._stat("lid_opened")
        svc.watch_tamper()
        self.st.clock.sleep(LID_OPEN_S)
        switches.state = SealState(switches.state.seal_intact, lid_closed=True)
        self._log({"e": "lid", "state": "closed"})
        svc.watch_tamper()
        if svc.polls.state == PollsState.PAUSED:
            svc.resume(credential=self.president)

    def _result(self, wall_s: float) -> DayResult:
        svc, store, st = self.svc, self.store, self.st
        box = svc.tallies()
        truth = truth_tallies(self.e, st.box.sheets)
        box_json = {cid: tally_json(t) for cid, t in box.items()}
        differences = compare_tallies(box_json, truth)
        cast_counts = store.counts()
        physical = Counter(s.style for s in st.box.sheets)
        for style in self.e.ballot_styles:
            stored = cast_counts.cast.get(style.id, 0)
            if stored != physical.get(style.id, 0):
                differences.append(f"style {style.id}: box counted {stored} ballots, {physical.get(style.id, 0)} are "
                                   "in the box")
        differences += self._intentions_kept()
        stats = dict(self.world.stats)
        stats["wall_seconds_voting"] = round(wall_s, 2)
        ms = sorted(self.cycle_ms)
        stats["cycle_ms_median"] = round(ms[len(ms) // 2], 1) if ms else None
        stats["cycle_ms_p95"] = round(ms[int(len(ms) * 0.95)], 1) if ms else None
        stats["sheets_in_box"] = len(st.box.sheets)
        stats["power_cuts"] = self.world.boots
        entries = store.entries()
        documents = [entry.document for entry in entries]
        transmission = list(self.upload_log)
        if self.uploader is not None:
            from firmware.common.transmission.uploader import committee_status
            transmission += committee_status(entries, self.svc.msg)
        self.event_log.close()  # log.closed and its signed head: the log goes into the export as it is
        store.close()  # the day is over: the store is released (and its journal scrubbed once more)
        return DayResult(not differences, differences, box_json, truth, cast_counts, stats, svc, st, self.decisions,
                         documents, transmission, video=self.video)

    def _intentions_kept(self) -> list[str]:
        """Each voter's each ballot: cast (its last sheet in the box, once) or handed to the committee;
        nothing in the box that nobody cast; no sheet in the box twice."""
        diffs = []
        keys = [s.key for s in self.st.box.sheets]
        for key, n in Counter(keys).items():
            if n > 1:
                diffs.append(f"sheet {key} is in the box {n} times")
        by_ballot = Counter(tuple(k.split(".")[:2]) for k in keys)
        for i, voter in enumerate(self.population):
            for b in range(len(voter.ballots)):
                fell = by_ballot.get((f"v{i}", f"b{b}"), 0)
                outcome = self.world.ballots.get((i, b))
                if outcome is None:
                    diffs.append(f"voter {i} ballot {b}: never finished")
                elif outcome == "cast" and fell != 1:
                    diffs.append(f"voter {i} ballot {b}: cast, but {fell} of its sheets are in the box")
                elif outcome == "given_up" and fell:
                    diffs.append(f"voter {i} ballot {b}: handed to the committee, but {fell} sheet(s) fell into the box")
        return diffs

    # -- a voter ---------------------------------------------------------------------------------
    def _vote(self, i: int) -> None:
        voter = self.population[i]
        if i + 1 < len(self.population):  # the next voter is marking their ballots in the booth meanwhile
            self.st.camera.prefetch(self._sheet(key) for key in planned_sheets(i + 1, self.population[i + 1].ballots))
        if not any((i, b) in self.world.ballots for b in range(len(voter.ballots))) and not self._started(i):
            self._stat("voters")
        for b, plan in enumerate(voter.ballots):
            if (i, b) not in self.world.ballots:
                result = self._ballot(i, b, plan)
                self._log({"e": "ballot_end", "voter": i, "ballot": b, "result": result})
                self.world.ballots[(i, b)] = result

    def _started(self, i: int) -> bool:
        return any(v == i for v, _ in self.world.sheets)

    def _ballot(self, i: int, b: int, plan: BallotPlan) -> str:
        """One style's ballot of voter i, from its first sheet or from where a power cut left it."""
        if plan.spoiled_first is not None:
            # "I made a mistake": the voter feeds it, sees the verdict, takes it back, gets a new one (Art. 21(6-7))
            key = f"v{i}.b{b}.s0"
            if key not in self.world.attempts:
                self._attempt(i, b, key, lambda v, c: VoterChoice.RETURN)
                self._stat("replacement_ballots")
                self._stat("returned_on_purpose")
        variant = "f"
        for attempt in range(MAX_SHEETS_PER_BALLOT):
            key = f"v{i}.b{b}.{variant}{attempt}"
            last = attempt == MAX_SHEETS_PER_BALLOT - 1

            def respond(verdict: PanelVerdict, castable: bool, last: bool = last) -> VoterChoice:
                return voter_choice(plan, verdict, castable, last)

            end = self.world.attempts.get(key) or self._attempt(i, b, key, respond)
            if end["result"] == "cast":
                return "cast"
            verdict = end.get("verdict")
            if verdict == PanelVerdict.INVALID.value and plan.corrected is not None:
                variant = "c"
        return "given_up"  # handed to the committee as spoiled

    def _attempt(self, i: int, b: int, key: str, respond: Callable[[PanelVerdict, bool], VoterChoice]) -> dict:
        """The voter with sheet `key` until it is cast or back in their hand for good."""
        w = self.world
        sheet = self._sheet(key)
        if key in w.sheets.get((i, b), []):  # resuming: where did the power cut leave this sheet?
            if key in w.box:
                return self._end(key, "cast", w.choices.get(key, {}).get("verdict"))
            choice = w.choices.get(key)
            self._take_back_returned()
            if choice is not None and choice["choice"] == VoterChoice.RETURN.value:
                return self._end_returned(key, choice.get("verdict"))
        else:
            self._log({"e": "sheet", "voter": i, "ballot": b, "key": key})
            w.sheets.setdefault((i, b), []).append(key)
        seen: list[PanelVerdict] = []

        def decide(verdict: PanelVerdict, castable: bool) -> VoterChoice:
            seen.append(verdict)
            choice = respond(verdict, castable)
            choice = VoterChoice.RETURN if choice == VoterChoice.CAST and not castable else choice
            self._log({"e": "choice", "key": key, "choice": choice.value, "verdict": verdict.value})
            return choice

        result = self._feed_until_decided(sheet, decide)
        verdict = seen[-1].value if seen else None
        if result.cast:
            return self._end(key, "cast", verdict)
        return self._end_returned(key, verdict)

    def _end_returned(self, key: str, verdict: str | None) -> dict:
        if not key.split(".")[2].startswith("s"):
            self._stat("replacement_ballots")
            if verdict == PanelVerdict.INVALID.value:
                self._stat("returned_after_nevazeci")
            elif verdict == PanelVerdict.AMBIGUOUS.value:
                self._stat("returned_ambiguous")
            elif verdict in (PanelVerdict.FOREIGN.value, PanelVerdict.UNREADABLE.value):
                self._stat(f"returned_{verdict}")
        return self._end(key, "returned", verdict)

    def _end(self, key: str, result: str, verdict: str | None) -> dict:
        end = {"e": "attempt_end", "key": key, "result": result, "verdict": verdict}
        self._log(end)
        self.world.attempts[key] = end
        if result == "cast":
            self._stat("ballots_cast")
        return end

    def _feed_until_decided(self, sheet: Sheet, respond: Callable[[PanelVerdict, bool], VoterChoice]) -> CycleResult:
        """Insert the sheet; if the paper path faults, the operator clears it and the voter reinserts."""
        rng = random.Random(f"{self.seed}:voter:{sheet.key}:{self.boot}")
        for insertion in range(6):
            self._maybe_fault(random.Random(f"{self.seed}:fault:{sheet.key}:{self.boot}:{insertion}"))
            self.st.path.at_entry = sheet
            self.st.panel.respond = respond
            t0 = time.perf_counter()
            result = self.svc.process_ballot(wait_s=1.0)
            assert result is not None, "a sheet was at the entry sensor"
            if result.interpretation is not None and result.fault is None:
                self.cycle_ms.append((time.perf_counter() - t0) * 1000)
            self.st.clock.sleep(rng.uniform(4, 12))  # the voter reads the panel and decides
            if result.state == BallotState.WAITING:  # cast, or handed back
                self._take_back_returned()
                return result
            # A fault: the operator opens the cover, takes out any sheet, closes it, clears the fault;
            # the voter gets the sheet back and feeds it again.
            self._stat(f"fault_{result.state.value}")
            self.st.clock.sleep(rng.uniform(60, 180))
            self.st.feeder.cover_open = False
            removed = self.st.feeder.clear_jam() is not None
            self.svc.clear_fault(sheet_removed=removed, credential=self.op)
            self._take_back_returned()
            if self.svc.polls.state == PollsState.PAUSED:
                self.svc.resume(credential=self.president)
        raise RuntimeError("a sheet could not be processed in 6 insertions: the simulated feeder is stuck")

    def _take_back_returned(self) -> None:
        """The voter takes whatever sheet sticks out of the slot; the firmware's idle loop sees the entry
        sensor clear before the next sheet comes."""
        path = self.st.path
        if path.returned is not None or (path.at_entry is not None and path.held is None and self.resume):
            # (after a restart a sheet left in the slot, never pulled in, is taken back by hand too)
            path.move(returned=None, at_entry=None)
            assert self.svc.process_ballot(wait_s=0.5) is None

    def _maybe_fault(self, rng: random.Random) -> None:
        name = self.faults.draw(rng)
        if name is not None:
            self.st.feeder.inject(name)
            self._stat(f"injected_{name}")


def voter_choice(plan: BallotPlan, verdict: PanelVerdict, castable: bool, last: bool) -> VoterChoice:
    """What the voter answers at the panel for a sheet of `plan`; `last`: no more ballots will be asked for."""
    if verdict == PanelVerdict.VALID:
        return VoterChoice.CAST
    if verdict == PanelVerdict.INVALID and (plan.casts_invalid or last):
        return VoterChoice.CAST
    # accidental invalid, or an unclear mark: take it back and ask for a new ballot
    return VoterChoice.CAST if last and castable else VoterChoice.RETURN


def planned_sheets(voter: int, ballots: Sequence[BallotPlan]) -> list[str]:
    """The sheets voter `voter` will feed by their plan, in order (`_ballot`): the one spoiled on purpose,
    the first of the final intention, and the corrected one after an accidental invalid (the second
    sheet). A sheet returned as ambiguous and fed again is not foreseen."""
    keys = []
    for b, plan in enumerate(ballots):
        if plan.spoiled_first is not None:
            keys.append(f"v{voter}.b{b}.s0")
        keys.append(f"v{voter}.b{b}.f0")
        if plan.corrected is not None:
            keys.append(f"v{voter}.b{b}.c1")
    return keys


def sheet_for(population: Sequence[Any], seed: int, key: str, cache: dict[str, Sheet]) -> Sheet:
    """The sheet named `key` ("v{voter}.b{ballot}.{s|f|c}{attempt}"), the same in every process."""
    if key not in cache:
        voter, ballot, attempt = key.split(".")
        plan = population[int(voter[1:])].ballots[int(ballot[1:])]
        intents = {"s": plan.spoiled_first, "f": plan.final, "c": plan.corrected or plan.final}[attempt[0]]
        assert intents is not None, key
        cache[key] = new_sheet(plan.style, intents, random.Random(f"{seed}:sheet:{key}"), key=key)
    return cache[key]


def outage_s(seed: int, boot: int) -> float:
    """How long the power was off before boot `boot` (station seconds), the same in every process."""
    return random.Random(f"{seed}:outage:{boot}").uniform(30, 300)


def restore_physical(st: SimStation, world: World, sheet: Callable[[str], Sheet]) -> None:
    """Put the sheets back where the journal left them: in the box and in the paper path (no fault
    pending: a jam does not outlive a restart). The clock is the caller's."""
    st.box.sheets.extend(sheet(k) for k in world.box)
    path = st.path
    journal, path.journal = path.journal, None  # restoring is not a move
    path.move(at_entry=None if world.at_entry is None else sheet(world.at_entry),
              held=None if world.held is None else sheet(world.held),
              returned=None if world.returned is None else sheet(world.returned))
    path.journal = journal


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


def tally_json(t: Any) -> dict[str, Any]:
    return {"ballots": t.ballots, "valid": t.valid, "invalid_by_reason": {k: v for k, v in t.invalid_by_reason.items() if v},
            "ambiguous": t.ambiguous, "list_votes": dict(t.list_votes), "candidate_votes": dict(t.candidate_votes)}


def compare_tallies(box: dict[str, Any], truth: dict[str, Any]) -> list[str]:
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

"""The polling station around a box that runs as a service (`ballotbox service run scanner` with the
simulator's settings): the physical world of simulator.world, on a paced clock, with voters who walk up
to the slot on their own thread.

The service drives the firmware exactly as on a Pi - its own loop, the committee's actions through the
control socket - and this room only does what people and paper do: a voter waits until the panel says
"insert the ballot", puts the sheet in the slot, answers the panel, takes back a sheet pushed out; the
operator, when the box calls, opens the cover, takes out what is stuck and clears the fault with the
operator's (test) PIN over the same control socket a person would use. The committee itself (zero report,
open, close) is the caller's: the service never opens or closes by itself, and neither does the room.

Everything physical goes into `STATE/world/journal.jsonl` before it happens, as in `simulate`: a process
killed at any instant restarts with every sheet where it was (the box, the path, a voter's hand) and the
clock on, and the voters carry on from where the cut left them. `check_day` compares the box's counts and
tallies with what is physically in the box.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from config.election import Election
from firmware.common.control import ControlError, request
from firmware.common.i18n import Messages
from firmware.common.roles import Role
from hal.clock import station_time
from hal.panel import PanelVerdict, VoterChoice
from hal.switches import Indicator
from simulator.credentials import TEST_PINS
from simulator.day import (
    DEVICE_DIR,
    MAX_SHEETS_PER_BALLOT,
    WORLD_DIR,
    FaultRates,
    outage_s,
    restore_physical,
    sheet_for,
    truth_tallies,
    voter_choice,
)
from simulator.devices import PacedClock, SimStation, build_sim_station
from simulator.voters import Sheet, make_population
from simulator.world import (
    JOURNAL,
    Journal,
    World,
    WorldError,
    read_day_file,
    replay,
    write_day_file,
)

DEFAULT_SPEED = 600.0  # station seconds per wall second: a 12-hour day in 75 s
POLL_S = 0.001  # wall seconds between two looks of a person at the box
START_BEFORE_OPENING = timedelta(minutes=30)  # the station clock starts when the committee arrives


class ServiceRoom:
    """The room of one state directory. `devices` is what the service drives; `start(socket)` lets the
    voters in once the service listens; `stop()` ends their thread."""

    def __init__(self, state_dir: Path, election: Election, *, voters: int, seed: int, speed: float = DEFAULT_SPEED,
                 faults: FaultRates | None = None) -> None:
        world_dir = Path(state_dir) / WORLD_DIR
        world_dir.mkdir(parents=True, exist_ok=True)
        self.e, self.seed, self.faults = election, seed, faults or FaultRates()
        self.voters = voters
        journal_path = world_dir / JOURNAL
        self.resumed = journal_path.exists() and journal_path.stat().st_size > 0
        self.world: World = replay(journal_path)
        self.journal = Journal(journal_path)
        self.boot = self.world.boots
        elapsed = self.world.t + outage_s(seed, self.boot) if self.resumed else 0.0
        self.clock = PacedClock(station_time(election.date, election.polls.opening) - START_BEFORE_OPENING, speed,
                                elapsed)
        self.st: SimStation = build_sim_station(election, random.Random(f"{seed}:camera:{self.boot}"),
                                                journal=self._log, clock=self.clock)
        self.st.printer.on_print = lambda image: self._log({"e": "printed", "what": f"{image.width}x{image.height}"})
        self.population = make_population(election, voters, random.Random(f"{seed}:population"))
        arrivals = random.Random(f"{seed}:arrivals")
        opening = station_time(election.date, election.polls.opening)
        span = (station_time(election.date, election.polls.closing) - opening).total_seconds() - 600
        self.arrivals = [opening + timedelta(seconds=s) for s in sorted(arrivals.uniform(0, span)
                                                                           for _ in self.population)]
        self.sheets: dict[str, Sheet] = {}
        # what the panel shows when the box takes a ballot: the voter reads it before inserting
        self._insert_text = Messages.for_language(election.station.language).t("panel.insert_ballot")
        if self.resumed:
            restore_physical(self.st, self.world, self._sheet)
            self._log({"e": "boot", "decisions": [], "counted": {}, "in_box": {}})
        self._socket: Path | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None  # what stopped the voters' thread, if anything did

    @property
    def devices(self) -> Any:
        return self.st.devices

    # -- the room's own life ---------------------------------------------------------------------
    def start(self, socket_path: Path) -> None:
        self._socket = socket_path
        self._thread = threading.Thread(target=self._run, name="sim-room", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.journal.close()

    def _run(self) -> None:
        try:
            if self.resumed:
                self._take_back()  # what the box pushed out at its recovery, or left in the slot
            for i in range(self.world.voters_done, len(self.population)):
                self._wait(lambda i=i: self.clock.now() >= self.arrivals[i])
                self._vote(i)
                self._log({"e": "voter_end", "voter": i})
                self.world.voters_done = i + 1
        except _Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - the room's failure is reported by the service, not a crash
            self.error = f"{type(exc).__name__}: {exc}"
            print(f"scanner: the simulated room stopped (no more voters): {self.error}", file=sys.stderr, flush=True)

    def _log(self, event: dict[str, Any]) -> None:
        self.journal.write({"t": round(self.clock.monotonic(), 3), **event})

    def _sheet(self, key: str) -> Sheet:
        return sheet_for(self.population, self.seed, key, self.sheets)

    def _wait(self, condition: Callable[[], bool]) -> None:
        while not condition():
            if self._stop.is_set():
                raise _Stopped
            time.sleep(POLL_S)

    # -- a voter ---------------------------------------------------------------------------------
    def _vote(self, i: int) -> None:
        for b, plan in enumerate(self.population[i].ballots):
            if (i, b) in self.world.ballots:
                continue
            result = self._ballot(i, b)
            self._log({"e": "ballot_end", "voter": i, "ballot": b, "result": result})
            self.world.ballots[(i, b)] = result

    def _ballot(self, i: int, b: int) -> str:
        """One style's ballot, from its first sheet or from where a power cut left it: a sheet handed out
        before the cut is in the box (cast) or back in the voter's hand (returned)."""
        w, plan = self.world, self.population[i].ballots[b]
        handed = w.sheets.get((i, b), [])
        if any(key in w.box for key in handed):
            return "cast"
        if plan.spoiled_first is not None and f"v{i}.b{b}.s0" not in handed:
            self._attempt(i, b, f"v{i}.b{b}.s0", lambda verdict, castable: VoterChoice.RETURN)
        variant = "f"
        for attempt in range(MAX_SHEETS_PER_BALLOT):
            key = f"v{i}.b{b}.{variant}{attempt}"
            last = attempt == MAX_SHEETS_PER_BALLOT - 1
            end = w.attempts.get(key) if key in handed else None
            if end is None and key in handed:
                end = {"result": "returned", "verdict": None}  # in flight at the cut: back in the voter's hand
            if end is None:
                end = self._attempt(i, b, key, lambda v, c, last=last: voter_choice(plan, v, c, last))
            if end["result"] == "cast":
                return "cast"
            if end.get("verdict") == PanelVerdict.INVALID.value and plan.corrected is not None:
                variant = "c"
        return "given_up"  # handed to the committee as spoiled

    def _attempt(self, i: int, b: int, key: str, respond: Callable[[PanelVerdict, bool], VoterChoice]) -> dict:
        """The voter feeds sheet `key` until it is in the box or back in their hand for good."""
        self._log({"e": "sheet", "voter": i, "ballot": b, "key": key})
        self.world.sheets.setdefault((i, b), []).append(key)
        sheet = self._sheet(key)
        seen: list[PanelVerdict] = []

        def decide(verdict: PanelVerdict, castable: bool) -> VoterChoice:
            seen.append(verdict)
            choice = respond(verdict, castable)
            self._log({"e": "choice", "key": key, "choice": choice.value, "verdict": verdict.value})
            return choice

        st = self.st
        for insertion in range(6):
            self._maybe_fault(random.Random(f"{self.seed}:fault:{key}:{self.boot}:{insertion}"))
            # the voter reads the panel: "insert the ballot" (polls open, nothing in the slot)
            self._wait(lambda: bool(st.panel.messages) and st.panel.messages[-1] == self._insert_text
                       and st.path.at_entry is None and st.path.returned is None)
            ended = st.switches.cycles_ended
            st.panel.respond = decide
            st.path.at_entry = sheet
            self._wait(lambda ended=ended: st.switches.cycles_ended > ended)
            if st.switches.indicators[Indicator.ATTENTION] and self._box_fault():
                self._clear_fault(key)
            if any(s is sheet for s in st.box.sheets):
                return self._end(key, "cast", seen)
            if st.path.returned is sheet:
                self._take_back()
                if seen:
                    return self._end(key, "returned", seen)
            # no verdict yet (a fault took the sheet out): the voter feeds it again
        raise RuntimeError(f"sheet {key} could not be processed in 6 insertions: the simulated feeder is stuck")

    def _end(self, key: str, result: str, seen: list[PanelVerdict]) -> dict:
        end = {"e": "attempt_end", "key": key, "result": result, "verdict": seen[-1].value if seen else None}
        self._log(end)
        self.world.attempts[key] = end
        return end

    def _take_back(self) -> None:
        """The voter takes whatever sheet sticks out of the slot, and the box's entry sensor sees it gone."""
        path = self.st.path
        if path.returned is None and path.at_entry is None:
            return
        path.move(returned=None, at_entry=None)
        seen = self.st.feeder.entry_seen_clear
        self._wait(lambda: self.st.feeder.entry_seen_clear > seen)

    # -- the operator ----------------------------------------------------------------------------
    def _box_fault(self) -> str | None:
        answer = self._ask({"action": "status", "role": Role.OPERATOR.value})
        return answer.get("status", {}).get("fault") if answer["ok"] else None

    def _clear_fault(self, key: str) -> None:
        """The operator opens the cover, takes out any sheet in the path (it goes back to the voter by
        hand), closes the cover and tells the box, with the operator's PIN."""
        rng = random.Random(f"{self.seed}:operator:{key}:{self.boot}")
        self.clock.sleep(rng.uniform(60, 180))
        self.st.feeder.cover_open = False
        removed = self.st.feeder.clear_jam() is not None
        answer = self._ask({"action": "clear-fault", "role": Role.OPERATOR.value, "sheet_removed": removed})
        if not answer["ok"]:
            raise RuntimeError(f"the box refused the operator's clear-fault: {answer['message']}")

    def _ask(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self._socket is not None
        try:
            return request(self._socket, {**body, "pin": TEST_PINS[Role(body["role"])]})
        except ControlError as exc:
            raise RuntimeError(str(exc)) from None

    def _maybe_fault(self, rng: random.Random) -> None:
        name = self.faults.draw(rng)
        if name is not None:
            self.st.feeder.inject(name)


class _Stopped(Exception):
    """The room was asked to stop while a person waited."""


# -- the day's parameters and its check --------------------------------------------------------------
def room_parameters(state_dir: Path, voters: int | None, seed: int | None, election: Path) -> dict[str, Any]:
    """The room's voters and seed: given for a new day (written to STATE/world/day.json), read back for one
    that exists (a different value given is refused, as `simulate --resume` does)."""
    world_dir = Path(state_dir) / WORLD_DIR
    if (world_dir / "day.json").exists():
        day = read_day_file(world_dir)
        for name, given in (("voters", voters), ("seed", seed)):
            if given is not None and given != day.get(name):
                raise WorldError(f"--{name} {given}: the day in {state_dir} was started with {day.get(name)}; "
                                 "leave it out")
        return day
    world_dir.mkdir(parents=True, exist_ok=True)
    day = {"voters": 20 if voters is None else voters, "seed": 7 if seed is None else seed,
           "election": str(election), "service": True}
    write_day_file(world_dir, day)
    return day


def check_day(state_dir: Path, election: Election) -> list[str]:
    """The box's counts and tallies (its store, after the close) against the sheets physically in the box
    (from the world's journal, recomputed from the voters' intentions): the differences, [] if they agree."""
    from firmware.scanner.store import ScannerStore
    from firmware.scanner.tally import tally
    from simulator.day import compare_tallies, tally_json

    day = read_day_file(Path(state_dir) / WORLD_DIR)
    population = make_population(election, day["voters"], random.Random(f"{day['seed']}:population"))
    world = replay(Path(state_dir) / WORLD_DIR / JOURNAL)
    cache: dict[str, Sheet] = {}
    in_box = [sheet_for(population, day["seed"], key, cache) for key in world.box]
    store = ScannerStore.for_election(Path(state_dir) / DEVICE_DIR / "scanner.sqlite", election)
    try:
        counts = store.counts()
        box = {cid: tally_json(t) for cid, t in tally(election, store.cast_vote_records()).items()}
    finally:
        store.close()
    diffs = compare_tallies(box, truth_tallies(election, in_box))
    physical = Counter(s.style for s in in_box)
    for style in election.ballot_styles:
        if counts.cast.get(style.id, 0) != physical.get(style.id, 0):
            diffs.append(f"style {style.id}: box counted {counts.cast.get(style.id, 0)}, "
                         f"{physical.get(style.id, 0)} in the box")
    keys = Counter(world.box)
    diffs += [f"sheet {k} is in the box {n} times" for k, n in keys.items() if n > 1]
    return diffs


def voters_done(state_dir: Path) -> int:
    return replay(Path(state_dir) / WORLD_DIR / JOURNAL).voters_done


"""Twins of every hal interface, for CI, training and rehearsing a day.

They implement the same Protocols as the real drivers (hal/*), never a parallel API. The paper path
has timing and injectable faults (jam, double sheet, box full, cover open); the physical ballot box
records what actually dropped, kept apart from the firmware's store; the clock is accelerated, so a
12-hour day runs in seconds.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from PIL import Image

from config.election import Election
from firmware.cec.ballots import render_ballot
from firmware.cec.pens import draw_mark
from hal.camera import BallotImage, CaptureError
from hal.clock import station_time
from hal.devices import AuthDeviceSet, DeviceSet
from hal.errors import DeviceStatus
from hal.feeder import BoxFull, CoverOpen, DoubleSheet, FeederSensors, PaperJam
from hal.panel import PanelVerdict, VoterChoice
from hal.printer import PaperOut
from hal.switches import Indicator, SealState
from simulator.capture import (
    MILD,
    Box,
    CaptureProfile,
    capture,
    colour_boxes,
    lens_blur,
    lens_blur_patched,
)
from simulator.voters import Sheet

# a style's printed ballot: as drawn, through the lens, its boxes (candidate or list -> x, y, w, h px), and
# where it is not grey through the lens
_Blank = tuple[np.ndarray, np.ndarray, dict[str, tuple[int, int, int, int]], list[Box]]


class AcceleratedClock:
    """Simulated station time: sleep() advances it instantly."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._elapsed = 0.0

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def sleep(self, seconds: float) -> None:
        self._elapsed += max(0.0, seconds)

    def advance_to(self, when: datetime) -> None:
        self._elapsed = max(self._elapsed, (when - self._start).total_seconds())

    @staticmethod
    def for_day(date: str, hhmm: str = "05:30") -> AcceleratedClock:
        return AcceleratedClock(station_time(date, hhmm))


class PacedClock:
    """Simulated station time that runs `speed` times faster than the wall clock, for a box run as a
    service (`service run scanner` with sim settings): the service and the simulated room run on their
    own threads and share it. `elapsed`: station seconds already gone at start (a resumed day)."""

    MIN_SLEEP_S = 0.002  # wall: a waiting loop does not spin a core

    def __init__(self, start: datetime, speed: float, elapsed: float = 0.0) -> None:
        self._start, self.speed, self._base = start, speed, elapsed
        self._wall0 = time.monotonic()

    def monotonic(self) -> float:
        return self._base + (time.monotonic() - self._wall0) * self.speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def sleep(self, seconds: float) -> None:
        time.sleep(max(self.MIN_SLEEP_S, seconds / self.speed))

    def advance_to(self, when: datetime) -> None:
        while self.now() < when:
            self.sleep((when - self.now()).total_seconds())


@dataclass
class PhysicalBallotBox:
    """What is really in the box under the scanner. The firmware never sees this object."""

    capacity: int = 3000
    sheets: list[Sheet] = field(default_factory=list)

    @property
    def full(self) -> bool:
        return len(self.sheets) >= self.capacity


class PaperPath:
    """The sheet's position in the feeder: at the entry, held at the imaging position, or pushed back
    out. Shared by feeder and camera.

    Every move is one step: with a `journal` (a day in a state directory, simulator.world) the new
    positions - and a sheet dropped into the box - are journaled in one write before they take effect,
    so a process killed at any instant leaves a world in which each sheet is in exactly one place."""

    def __init__(self, journal: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.journal = journal
        self._lock = threading.Lock()  # a voter's hand and the rollers may move sheets from two threads
        self._at_entry: Sheet | None = None
        self._held: Sheet | None = None
        self._returned: Sheet | None = None  # pushed back out, waiting for the voter to take it

    @property
    def at_entry(self) -> Sheet | None:
        return self._at_entry

    @at_entry.setter
    def at_entry(self, sheet: Sheet | None) -> None:
        self.move(at_entry=sheet)

    @property
    def held(self) -> Sheet | None:
        return self._held

    @held.setter
    def held(self, sheet: Sheet | None) -> None:
        self.move(held=sheet)

    @property
    def returned(self) -> Sheet | None:
        return self._returned

    @returned.setter
    def returned(self, sheet: Sheet | None) -> None:
        self.move(returned=sheet)

    _KEEP: Any = object()

    def move(self, *, at_entry: Any = _KEEP, held: Any = _KEEP, returned: Any = _KEEP,
             drop_into: PhysicalBallotBox | None = None) -> None:
        """Set the given positions at once; `drop_into`: the held sheet falls into that box."""
        keep = PaperPath._KEEP
        with self._lock:
            new = (self._at_entry if at_entry is keep else at_entry, self._held if held is keep else held,
                   self._returned if returned is keep else returned)
            dropped = self._held if drop_into is not None else None
            if self.journal is not None:
                self.journal({"e": "path", "at_entry": _key(new[0]), "held": _key(new[1]),
                              "returned": _key(new[2]), "dropped": _key(dropped)})
            self._at_entry, self._held, self._returned = new
            if drop_into is not None and dropped is not None:
                drop_into.sheets.append(dropped)


def _key(sheet: Sheet | None) -> str | None:
    return None if sheet is None else sheet.key


class SimFeeder:
    # seconds of simulated motor time per action: measured on the reference mechanism's datasheet class
    TAKE_IN_S, DROP_S, RETURN_S = 0.7, 0.5, 0.6

    def __init__(self, path: PaperPath, box: PhysicalBallotBox, clock: AcceleratedClock | PacedClock) -> None:
        self.path, self.box, self.clock = path, box, clock
        self.faults: deque[str] = deque()  # one-shot faults for the next actions: jam_in, jam_drop, double, cover
        self.cover_open = False
        self.entry_seen_clear = 0  # reads of the entry sensor that found the slot empty (a voter waits for one)

    def inject(self, fault: str) -> None:
        if fault not in ("jam_in", "jam_drop", "double", "cover"):
            raise ValueError(f"unknown feeder fault {fault!r}: use jam_in, jam_drop, double or cover")
        self.faults.append(fault)

    def _fault(self, name: str) -> bool:
        if self.faults and self.faults[0] == name:
            self.faults.popleft()
            return True
        return False

    def sensors(self) -> FeederSensors:
        # a returned sheet sticks out of the slot, over the entry sensor, until the voter takes it
        at_entry = self.path.at_entry is not None or self.path.returned is not None
        if not at_entry:
            self.entry_seen_clear += 1
        return FeederSensors(entry=at_entry, imaging=self.path.held is not None,
                             exit=False, double_sheet=False, box_full=self.box.full, cover_open=self.cover_open)

    def wait_for_ballot(self, timeout_s: float) -> bool:
        if self.sensors().entry:
            return True
        self.clock.sleep(timeout_s)
        return self.sensors().entry

    def take_in(self) -> None:
        if self.path.at_entry is None and self.path.returned is not None:
            # the firmware tried to pull in the sheet it just gave back: the voter's hand is on it
            raise PaperJam("the returned ballot was pulled back in", "wait for the voter to take the ballot")
        if self._fault("cover") or self.cover_open:
            self.cover_open = True
            raise CoverOpen("scanner cover is open", "close and lock the cover, then continue")
        if self.path.at_entry is None:
            raise PaperJam("no sheet at the entry sensor", "insert the ballot again")
        if self._fault("double"):
            self.clock.sleep(0.3)
            raise DoubleSheet("two sheets were fed together", "take the ballots back and insert them one by one")
        if self._fault("jam_in"):
            self.clock.sleep(self.TAKE_IN_S * 3)
            raise PaperJam("ballot did not reach the imaging position", "open the cover and clear the paper path")
        self.clock.sleep(self.TAKE_IN_S)
        self.path.move(held=self.path.at_entry, at_entry=None)

    def drop_into_box(self) -> None:
        if self.path.held is None:
            raise PaperJam("no ballot held at the imaging position", "call the operator")
        if self.box.full:
            raise BoxFull("the ballot box is full", "the committee seals this box and puts the scanner on a new one")
        if self._fault("jam_drop"):
            self.clock.sleep(self.DROP_S * 3)
            raise PaperJam("ballot did not pass the exit sensor", "open the cover and clear the paper path")
        self.clock.sleep(self.DROP_S)
        self.path.move(held=None, drop_into=self.box)

    def return_to_voter(self) -> None:
        sheet = self.path.held or self.path.at_entry
        if sheet is None:
            raise PaperJam("no ballot to return", "call the operator")
        self.clock.sleep(self.RETURN_S)
        self.path.move(held=None, at_entry=None, returned=sheet)

    def clear_jam(self) -> Sheet | None:
        """The operator opens the cover and takes out the sheet in the path, into their hand (it goes
        back to the voter by hand, not through the slot)."""
        sheet = self.path.held or self.path.at_entry
        self.path.move(held=None, at_entry=None)
        return sheet

    def self_test(self) -> DeviceStatus:
        ok = not self.cover_open and self.path.held is None
        return DeviceStatus("feeder", ok, "motor, 6 sensors: ok" if ok else "paper in path or cover open")

    def close(self) -> None:
        """Nothing to release: a twin holds no device or OS resource."""


class SimCamera:
    """Photographs the held sheet: the printed ballot, the voter's marks, capture variation."""

    def __init__(self, election: Election, path: PaperPath, rng: random.Random, dpi: float = 200.0,
                 profile: CaptureProfile = MILD) -> None:
        self.election, self.path, self.rng, self.dpi, self.profile = election, path, rng, dpi, profile
        self.white_level = 250.0  # "calibrated" like a real camera: white paper under the twin's light
        self.fail_next = False
        # the sheet in the feeder, drawn once (through the lens), and where it is not grey (None: anywhere)
        self._drawn: tuple[int, np.ndarray, list[Box] | None] | None = None
        self._blanks: dict[str, _Blank] = {}
        self._seed = rng.getrandbits(64)
        self._captures: dict[str, int] = {}  # sheet key -> captures so far (each capture varies)
        self._ahead: dict[str, Future[np.ndarray]] = {}  # first captures drawn ahead, on another core
        self._pool: ThreadPoolExecutor | None = None

    def prefetch(self, sheets: Iterable[Sheet]) -> None:
        """Draw the first capture of sheets about to be fed, in a background thread (the drawing and the
        capture distortion run in OpenCV and NumPy, outside the GIL): the day's second core does the
        twin's work while the first runs the firmware. The result is the same as drawing it on demand."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim-camera")
        for sheet in sheets:
            if sheet.key not in self._ahead and sheet.key not in self._captures and sheet.image is None:
                self._ahead[sheet.key] = self._pool.submit(self._draw_capture, sheet, 0)
        # sheets never fed (a voter who stopped early): forget the oldest beyond two voters' worth (a voter's
        # plan feeds up to three sheets per ballot: spoiled, first, corrected)
        while len(self._ahead) > 12:
            self._ahead.pop(next(iter(self._ahead)))

    def _held(self, sheet: Sheet) -> tuple[int, np.ndarray, list[Box] | None]:
        """The sheet as the lens sees it, flat: printed, marked, blurred (drawn once while it is held), and
        where it is not grey."""
        if self._drawn is None or self._drawn[0] != sheet.sheet_id:
            self._drawn = (sheet.sheet_id, *self._draw(sheet))
        return self._drawn

    def _blank(self, style_id: str) -> _Blank:
        """The printed ballot of a style, as drawn and through the lens, its boxes, and where it is not grey
        through the lens (its coloured print; once per style)."""
        if style_id not in self._blanks:
            img, layout = render_ballot(self.election, style_id, self.dpi)
            arr = np.array(img)
            blurred = lens_blur(arr, self.profile)
            self._blanks[style_id] = (arr, blurred,
                                      {b.candidate or b.list: tuple(b.rect.px(self.dpi)) for b in layout.boxes},
                                      colour_boxes(blurred))
        return self._blanks[style_id]

    def _draw(self, sheet: Sheet) -> tuple[np.ndarray, list[Box] | None]:
        """The sheet through the lens, and the boxes outside which it is grey (None: not known)."""
        if sheet.image is not None:
            return lens_blur(sheet.image, self.profile), None
        blank, blurred, rects, tinted = self._blank(sheet.style)
        if not sheet.marks:
            return blurred, tinted
        arr = blank.copy()
        ink = random.Random(sheet.ink_seed)
        windows = []
        for box, (style, pen) in sorted(sheet.marks.items()):
            x, y, w, h = rects[box]
            draw_mark(arr, (x, y, w, h), style, pen, self.dpi, ink)
            grow = max(w, h) + 16  # an oversized X reaches 0.7 of the box from its centre, plus the pen
            windows.append((x - grow, y - grow, w + 2 * grow, h + 2 * grow))
        img, written = lens_blur_patched(blank, blurred, arr, windows, self.profile)
        return img, None if written is None else tinted + written

    def _draw_capture(self, sheet: Sheet, n: int) -> np.ndarray:
        img, tinted = self._draw(sheet)
        return capture(img, self.dpi, random.Random(f"{self._seed}:{sheet.key}:{n}"), self.profile, blurred=True,
                       colour=tinted)

    def capture(self) -> BallotImage:
        if self.fail_next:
            self.fail_next = False
            raise CaptureError("camera returned no frame", "restart the scanner; if it repeats, call the operator")
        sheet = self.path.held
        if sheet is None:
            # An empty imaging position photographs the bare bed: the interpreter finds no ballot there.
            return BallotImage(np.full((600, 400, 3), 55, np.uint8), self.dpi)
        n = self._captures.get(sheet.key, 0)
        self._captures[sheet.key] = n + 1
        ahead = self._ahead.pop(sheet.key, None)
        if ahead is not None and n == 0:
            pixels = ahead.result()
        else:
            _, img, tinted = self._held(sheet)
            pixels = capture(img, self.dpi, random.Random(f"{self._seed}:{sheet.key}:{n}"), self.profile,
                             blurred=True, colour=tinted)
        return BallotImage(pixels, self.dpi, white_level=self.white_level)

    def self_test(self) -> DeviceStatus:
        return DeviceStatus("ballot_camera", True, f"{self.dpi:.0f} dpi, LED ok")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class SimPanel:
    """The voter panel; `respond` is the voter standing in front of it."""

    def __init__(self) -> None:
        self.shown: list[tuple[PanelVerdict, str, bool]] = []
        self.messages: list[str] = []
        self.respond = lambda verdict, castable: VoterChoice.CAST if castable else VoterChoice.RETURN

    def show_verdict(self, verdict: PanelVerdict, text: str, castable: bool) -> None:
        self.shown.append((verdict, text, castable))

    def ask_cast_or_return(self, timeout_s: float) -> VoterChoice:
        verdict, _, castable = self.shown[-1]
        choice = self.respond(verdict, castable)
        return VoterChoice.RETURN if choice == VoterChoice.CAST and not castable else choice

    def show_message(self, text: str) -> None:
        self.messages.append(text)
        del self.messages[:-50]

    def self_test(self) -> DeviceStatus:
        return DeviceStatus("panel", True, "display and buttons ok")

    def close(self) -> None:
        """Nothing to release: a twin holds no device or OS resource."""


class SimPrinter:
    def __init__(self, width_px: int = 576, on_print: Callable[[Image.Image], None] | None = None) -> None:
        self._width = width_px
        self.printed: list[Image.Image] = []
        self.paper_out = False
        self.on_print = on_print  # the paper that came out, for a day in a state directory

    @property
    def width_px(self) -> int:
        return self._width

    def print_image(self, image: Image.Image) -> None:
        if self.paper_out:
            raise PaperOut("printer is out of paper", "load a new 80 mm thermal roll and print again")
        if image.width > self._width:
            raise ValueError(f"image is {image.width} px wide, printer prints {self._width}")
        if self.on_print is not None:
            self.on_print(image)
        self.printed.append(image.copy())

    def self_test(self) -> DeviceStatus:
        return DeviceStatus("printer", not self.paper_out, "paper ok" if not self.paper_out else "out of paper")

    def close(self) -> None:
        """Nothing to release: a twin holds no device or OS resource."""


class SimSwitches:
    def __init__(self) -> None:
        self.state = SealState(seal_intact=True, lid_closed=True)
        self.indicators: dict[Indicator, bool] = {i: False for i in Indicator}
        self.beeps = 0
        self.cycles_ended = 0  # times the BUSY lamp went out: a sheet's cycle is over (a voter waits for it)

    def read(self) -> SealState:
        return self.state

    def set_indicator(self, indicator: Indicator, on: bool) -> None:
        self.indicators[indicator] = on
        if indicator == Indicator.BUSY and not on:
            self.cycles_ended += 1

    def beep(self, times: int = 1) -> None:
        self.beeps += times

    def self_test(self) -> DeviceStatus:
        return DeviceStatus("switches", self.state.seal_intact and self.state.lid_closed,
                            f"seal {'intact' if self.state.seal_intact else 'BROKEN'}, "
                            f"lid {'closed' if self.state.lid_closed else 'OPEN'}")

    def close(self) -> None:
        """Nothing to release: a twin holds no device or OS resource."""


@dataclass
class SimStation:
    """Everything physical at a simulated station: the device set the firmware drives, and the world."""

    devices: DeviceSet
    path: PaperPath
    box: PhysicalBallotBox
    clock: AcceleratedClock | PacedClock
    feeder: SimFeeder
    camera: SimCamera
    panel: SimPanel
    printer: SimPrinter
    switches: SimSwitches


def build_sim_station(election: Election, rng: random.Random, dpi: float = 200.0,
                      profile: CaptureProfile = MILD, printer_width: int = 576,
                      journal: Callable[[dict[str, Any]], None] | None = None,
                      clock: AcceleratedClock | PacedClock | None = None) -> SimStation:
    clock = clock or AcceleratedClock.for_day(election.date)
    path = PaperPath(journal)
    box = PhysicalBallotBox(capacity=max(3000, election.station.registered_voters * len(election.ballot_styles) * 2))
    feeder = SimFeeder(path, box, clock)
    camera = SimCamera(election, path, rng, dpi, profile)
    panel, printer, switches = SimPanel(), SimPrinter(printer_width), SimSwitches()
    devices = DeviceSet(camera=camera, feeder=feeder, panel=panel, printer=printer, switches=switches, clock=clock)
    return SimStation(devices, path, box, clock, feeder, camera, panel, printer, switches)


def build_sim_auth_devices() -> AuthDeviceSet:
    """The authentication desk's simulated devices, in process (the real drivers run against the pty twins
    in the tests): a document reader and a fingerprint sensor with its own template flash."""
    from simulator.document_reader_twin import SimulatedDocumentReader
    from simulator.fingerprint_twin import SimulatedFingerprintSensor

    return AuthDeviceSet(document_reader=SimulatedDocumentReader(), fingerprint=SimulatedFingerprintSensor())

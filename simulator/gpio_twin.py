"""A pin-level twin of the ballot box's GPIO side, so the real GPIO drivers run off a Pi.

What it is made of:

- `TwinClock`: simulated time (a hal.clock.Clock). It stands still until someone sleeps; a sleep
  advances it in small steps and runs the twins' physics on the way. Inject it into the drivers.
- `GpioTwin`: the 40-pin header. Its `module` is a stand-in for the `RPi.GPIO` module with the same
  API (setmode, setup, output, input, cleanup, ...); `installed()` puts it in `sys.modules` so a
  driver's `import RPi.GPIO` gets it. The outside world (sensors, switches, buttons) drives inputs.
- `PaperPathTwin`: the feed mechanism's physics. It watches the H-bridge pins, moves a simulated sheet
  along the path at roller speed and drives the paper sensors; faults can be injected.
- `SwitchBoardTwin` and `ButtonPanelTwin`: the seal loop, lid switch, lamps, buzzer and the voter's
  buttons, with optional contact bounce.

A training session or a test:

    twin = GpioTwin()
    paper = PaperPathTwin(twin, FeederPins())
    with twin.installed():
        feeder = GpioFeeder(FeederPins(), clock=twin.clock)
        paper.insert_ballot()
        feeder.take_in()          # runs in simulated time: 1.2 s of feeding takes milliseconds
        feeder.drop_into_box()
    assert paper.ballots_in_box == 1
"""

from __future__ import annotations

import functools
import heapq
import itertools
import os
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from config.device import FeederPins, PanelPins, SwitchPins
from hal.clock import SARAJEVO
from hal.switches import Indicator
from simulator.modules import installed_modules

# RPi.GPIO's constants, with the values of the real module (and of rpi-lgpio).
BOARD = 10
BCM = 11
OUT = 0
IN = 1
LOW = 0
HIGH = 1
PUD_OFF = 20
PUD_DOWN = 21
PUD_UP = 22
RISING = 31
FALLING = 32
BOTH = 33

_HEADER_GPIOS = 54  # BCM channels 0..53, as RPi.GPIO accepts


class TwinClock:
    """Simulated time for the twins and the drivers (implements hal.clock.Clock).

    Time advances only in sleep()/advance(), in steps of at most `step_us` microseconds; after each
    step every ticker (continuous physics such as the paper path) runs, then every event that fell
    due. Time is kept in whole microseconds, so a run is exactly reproducible and monotonic() reads
    round decimal values (1.2 s of sleeps reads 1.2, not 1.2000000000000002).
    """

    def __init__(self, start: datetime | None = None, step_us: int = 500) -> None:
        if step_us <= 0:
            raise ValueError(f"step_us must be a positive number of microseconds, got {step_us}")
        # A Sunday at 07:00, when the polls open, unless the caller chooses another start.
        self._start = start or datetime(2026, 10, 4, 7, 0, tzinfo=SARAJEVO)
        self._step_us = step_us
        self._t_us = 0
        self._tickers: list[Callable[[float, float], None]] = []
        self._events: list[tuple[int, int, Callable[[], None]]] = []
        self._sequence = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(microseconds=self._t_us)

    def monotonic(self) -> float:
        return self._t_us / 1_000_000

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (rounded to the microsecond), running physics and due
        events on the way."""
        target = self._t_us + _to_us(seconds)
        while True:
            self._run_due_events()
            if self._t_us >= target:
                return
            next_event = self._events[0][0] if self._events else target
            step_end = min(target, self._t_us + self._step_us, next_event)
            step_s = (step_end - self._t_us) / 1_000_000
            for ticker in list(self._tickers):
                ticker(self.monotonic(), step_s)
            self._t_us = step_end

    def call_at(self, when_s: float, action: Callable[[], None]) -> None:
        """Run `action` when simulated time reaches `when_s` (at once if that is now or past)."""
        when_us = _to_us(when_s)
        if when_us <= self._t_us:
            action()
            return
        heapq.heappush(self._events, (when_us, next(self._sequence), action))

    def call_later(self, delay_s: float, action: Callable[[], None]) -> None:
        self.call_at(self.monotonic() + delay_s, action)

    def add_ticker(self, ticker: Callable[[float, float], None]) -> None:
        """Register continuous physics: `ticker(now_s, step_s)` is called for every step of time,
        before the clock moves on by `step_s`."""
        self._tickers.append(ticker)

    def _run_due_events(self) -> None:
        while self._events and self._events[0][0] <= self._t_us:
            _, _, action = heapq.heappop(self._events)
            action()


def _to_us(seconds: float) -> int:
    return round(seconds * 1_000_000)


@dataclass(frozen=True)
class PinWrite:
    """One change of an output pin, as a logic analyser would record it."""

    time_s: float
    pin: int
    high: bool


@dataclass
class _Pin:
    direction: int | None = None  # IN, OUT, or None before setup / after cleanup
    pull: int = PUD_OFF
    output_high: bool = False
    driven: bool | None = None  # the level the outside world puts on the pin; None = not driven


class GpioTwin:
    """The Pi's GPIO header in simulation, and the `RPi.GPIO` module that drives it.

    Drivers see the pins through `module` (install it with `installed()`); the world outside the Pi
    (the twins of sensors, switches and buttons, or a test) uses `drive`, `set_input` and `level`.
    An undriven input reads its pull: high with PUD_UP, low otherwise.
    """

    def __init__(self, clock: TwinClock | None = None) -> None:
        self.clock = clock or TwinClock()
        self.writes: list[PinWrite] = []
        self.chip_opened: int | None = None
        self._pins: dict[int, _Pin] = {}
        self._mode: int | None = None
        self.warnings_enabled = True  # what the drivers set with setwarnings(); the twin never warns
        self._output_watchers: list[Callable[[int, bool], None]] = []
        self.module = self._build_module()

    # -- the world's side ----------------------------------------------------------------------

    def level(self, pin: int) -> bool:
        """The level on the pin's wire: an output's own level, else what drives it, else its pull."""
        state = self._pins.get(pin, _Pin())
        if state.direction == OUT:
            return state.output_high
        if state.driven is not None:
            return state.driven
        return state.pull == PUD_UP

    def is_output(self, pin: int) -> bool:
        return self._pins.get(pin, _Pin()).direction == OUT

    def drive(self, pin: int, high: bool | None) -> None:
        """Put a level on the pin from outside (a sensor's output, a switch); None lets it float."""
        self._check_channel(pin)
        self._pins.setdefault(pin, _Pin()).driven = high

    def set_input(
        self, pin: int, high: bool, delay_s: float = 0.0, bounce_toggles: int = 0, bounce_interval_s: float = 0.001
    ) -> None:
        """Drive `pin` to `high` after `delay_s` of simulated time. With `bounce_toggles` the contact
        chatters first, as a real switch does: the level flips that many times, `bounce_interval_s`
        apart, starting with the new level, before it settles at `high`."""
        start = self.clock.monotonic() + delay_s
        for index in range(bounce_toggles):
            level = high if index % 2 == 0 else not high
            self.clock.call_at(start + index * bounce_interval_s, functools.partial(self.drive, pin, level))
        self.clock.call_at(start + bounce_toggles * bounce_interval_s, lambda: self.drive(pin, high))

    def watch_outputs(self, watcher: Callable[[int, bool], None]) -> None:
        """Call `watcher(pin, high)` on every change of an output."""
        self._output_watchers.append(watcher)

    def writes_to(self, pin: int) -> list[PinWrite]:
        return [write for write in self.writes if write.pin == pin]

    def installed(self) -> AbstractContextManager[types.ModuleType]:
        """Context manager: this twin's module is `RPi.GPIO` (and a package `RPi`) in sys.modules."""
        return installed_rpi_gpio(self)

    # -- the RPi.GPIO module -------------------------------------------------------------------

    def _build_module(self) -> types.ModuleType:
        module = types.ModuleType("RPi.GPIO", "Simulated RPi.GPIO (ballotbox simulator.gpio_twin).")
        constants = dict(
            BOARD=BOARD, BCM=BCM, OUT=OUT, IN=IN, LOW=LOW, HIGH=HIGH,
            PUD_OFF=PUD_OFF, PUD_DOWN=PUD_DOWN, PUD_UP=PUD_UP, RISING=RISING, FALLING=FALLING, BOTH=BOTH,
        )  # fmt: skip
        module.__dict__.update(constants)
        functions: dict[str, object] = dict(
            setmode=self._setmode,
            getmode=self._getmode,
            setwarnings=self._setwarnings,
            setup=self._setup,
            output=self._output,
            input=self._input,
            cleanup=self._cleanup,
            gpio_function=self._gpio_function,
        )
        module.__dict__.update(functions)
        module.__dict__["VERSION"] = "0.7.1"  # the RPi.GPIO version whose API this follows
        module.__dict__["RPI_INFO"] = {"P1_REVISION": 3, "TYPE": "ballotbox GPIO twin", "PROCESSOR": "simulated"}
        module.__dict__["twin"] = self  # lets a test reach the twin from the module it installed
        return module

    def _getmode(self) -> int | None:
        return self._mode

    def _setmode(self, mode: int) -> None:
        if mode == BOARD:
            raise ValueError("the GPIO twin simulates BCM numbering only; ballotbox drivers use GPIO.BCM")
        if mode != BCM:
            raise ValueError("An invalid mode was passed to setmode()")
        if self._mode is None:
            # What rpi-lgpio does on its first setmode(): open the gpiochip named by RPI_LGPIO_CHIP,
            # else the one for the board (0 here: the twin is not a Pi 5).
            self.chip_opened = int(os.environ.get("RPI_LGPIO_CHIP", "0"))
        self._mode = mode

    def _setwarnings(self, flag: bool) -> None:
        self.warnings_enabled = bool(flag)

    def _setup(
        self, channels: int | Iterable[int], direction: int, pull_up_down: int = PUD_OFF, initial: int | None = None
    ) -> None:
        for pin in self._channels(channels):
            if direction not in (IN, OUT):
                raise ValueError("An invalid direction was passed to setup()")
            if pull_up_down not in (PUD_OFF, PUD_DOWN, PUD_UP):
                raise ValueError("Invalid value for pull_up_down - should be either PUD_OFF, PUD_UP or PUD_DOWN")
            state = self._pins.setdefault(pin, _Pin())
            state.direction = direction
            state.pull = pull_up_down if direction == IN else PUD_OFF
            if direction == OUT:
                self._set_output(pin, bool(initial) if initial is not None else False, force=True)

    def _output(self, channels: int | Iterable[int], values: int | bool | Iterable[int | bool]) -> None:
        pins = self._channels(channels)
        levels = [values] * len(pins) if isinstance(values, (int, bool)) else list(values)
        if len(levels) != len(pins):
            raise RuntimeError("Number of channels != number of values")
        for pin, level in zip(pins, levels, strict=True):
            if self._pins.get(pin, _Pin()).direction != OUT:
                raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
            self._set_output(pin, bool(level))

    def _input(self, channel: int) -> int:
        (pin,) = self._channels(channel)
        if self._pins.get(pin, _Pin()).direction is None:
            raise RuntimeError("You must setup() the GPIO channel first")
        return HIGH if self.level(pin) else LOW

    def _cleanup(self, channels: int | Iterable[int] | None = None) -> None:
        pins = (
            [pin for pin, state in self._pins.items() if state.direction is not None]
            if channels is None
            else self._channels(channels)
        )
        for pin in pins:
            state = self._pins.setdefault(pin, _Pin())
            if state.direction == OUT and state.output_high:
                self._set_output(pin, False)
            state.direction = None
            state.pull = PUD_OFF
        if channels is None:
            self._mode = None

    def _gpio_function(self, channel: int) -> int:
        (pin,) = self._channels(channel)
        return OUT if self.is_output(pin) else IN

    def _channels(self, channels: int | Iterable[int]) -> list[int]:
        if self._mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
        pins = [channels] if isinstance(channels, int) else list(channels)
        for pin in pins:
            self._check_channel(pin)
        return pins

    @staticmethod
    def _check_channel(pin: int) -> None:
        if not isinstance(pin, int) or not 0 <= pin < _HEADER_GPIOS:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")

    def _set_output(self, pin: int, high: bool, force: bool = False) -> None:
        """Set an output; record it (and tell the watchers) when the level changes, or always when
        `force` (a setup() that makes the pin an output)."""
        state = self._pins[pin]
        if state.output_high == high and not force:
            return
        state.output_high = high
        self.writes.append(PinWrite(self.clock.monotonic(), pin, high))
        for watcher in list(self._output_watchers):
            watcher(pin, high)


@contextmanager
def installed_rpi_gpio(twin: GpioTwin) -> Iterator[types.ModuleType]:
    """Install `twin.module` as `RPi.GPIO` (with a package `RPi`) in sys.modules for the duration of
    the block, then restore whatever was there (a real RPi.GPIO on a Pi, or nothing)."""
    package = types.ModuleType("RPi", "Simulated RPi package (ballotbox simulator.gpio_twin).")
    package.__path__ = []  # a package, so that `import RPi.GPIO` resolves through sys.modules
    package.__dict__["GPIO"] = twin.module
    with installed_modules({"RPi": package, "RPi.GPIO": twin.module}):
        yield twin.module


# -- the paper path ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperPathGeometry:
    """Where things are along the paper path, in mm from the mouth of the entry slot, and how fast
    the rollers move paper. The defaults describe the reference feeder."""

    entry_sensor_mm: float = 15.0  # in front of the first nip: sees a sheet before the rollers grip it
    first_nip_mm: float = 25.0  # first roller pair
    double_sheet_sensor_mm: float = 45.0
    imaging_sensor_mm: float = 330.0  # far end of the camera window
    exit_sensor_mm: float = 372.0  # inside the last nip: sees the sheet while the rollers still hold it
    last_nip_mm: float = 380.0  # last roller pair: past it the sheet falls into the box
    roller_speed_mm_s: float = 250.0
    insert_depth_mm: float = 30.0  # where the voter's push leaves the leading edge: just into the first nip

    def __post_init__(self) -> None:
        order = [
            ("entry_sensor_mm", self.entry_sensor_mm),
            ("first_nip_mm", self.first_nip_mm),
            ("double_sheet_sensor_mm", self.double_sheet_sensor_mm),
            ("imaging_sensor_mm", self.imaging_sensor_mm),
            ("exit_sensor_mm", self.exit_sensor_mm),
            ("last_nip_mm", self.last_nip_mm),
        ]
        for (name_a, a), (name_b, b) in itertools.pairwise(order):
            if not 0 < a < b:
                raise ValueError(
                    f"paper path geometry: {name_a} ({a} mm) must be positive and before {name_b} ({b} mm)"
                )
        if not self.first_nip_mm < self.insert_depth_mm < self.double_sheet_sensor_mm:
            raise ValueError(
                f"paper path geometry: insert_depth_mm ({self.insert_depth_mm}) must lie between the first nip "
                f"({self.first_nip_mm}) and the double-sheet sensor ({self.double_sheet_sensor_mm})"
            )
        if self.roller_speed_mm_s <= 0:
            raise ValueError(f"paper path geometry: roller_speed_mm_s must be positive, got {self.roller_speed_mm_s}")


@dataclass
class SimSheet:
    """A sheet in the simulated paper path. `lead_mm` is the edge furthest into the machine."""

    length_mm: float = 297.0
    sheets: int = 1  # 2 = two sheets fed together
    lead_mm: float = 0.0

    @property
    def tail_mm(self) -> float:
        return self.lead_mm - self.length_mm

    def covers(self, position_mm: float) -> bool:
        return self.tail_mm <= position_mm <= self.lead_mm


class MotorState(StrEnum):
    STOPPED = "stopped"
    FORWARD = "forward"
    REVERSE = "reverse"


class PaperPathTwin:
    """The feed mechanism's physics at pin level.

    It reads the H-bridge pins (motor_forward, motor_reverse, motor_enable from FeederPins): the
    rollers turn forward when enable and forward are high and reverse is low, and the other way
    round. A sheet moves while any part of it is between the first and last nips. Moving forward, it
    falls into the box once its tail passes the last nip; moving back, it stops when its far edge
    leaves the first nip, and then hangs in the slot until the voter takes it. The paper sensors
    are driven from the sheet's position, with the polarity FeederPins says.

    Faults: `inject_jam(at_mm)`, `insert_ballot(sheets=2)`, `set_box_full()`, `open_cover()`.
    A moment both direction inputs are high while enabled is recorded in `bridge_faults`.
    """

    def __init__(
        self,
        gpio: GpioTwin,
        pins: FeederPins,
        geometry: PaperPathGeometry | None = None,
        box_capacity: int | None = None,
    ) -> None:
        self.gpio = gpio
        self.pins = pins
        self.geometry = geometry or PaperPathGeometry()
        self.box_capacity = box_capacity
        self.sheet: SimSheet | None = None
        self.box: list[SimSheet] = []
        self.bridge_faults: list[float] = []
        self.cover_open = False
        self._box_full_forced = False
        self._jam_at_mm: float | None = None
        self._stuck = False
        gpio.clock.add_ticker(self._tick)
        gpio.watch_outputs(self._check_bridge)
        self._drive_sensors()

    # -- what a test or a trainer does ---------------------------------------------------------

    def insert_ballot(self, length_mm: float = 297.0, sheets: int = 1) -> SimSheet:
        """The voter pushes a ballot into the slot, up to the first nip (past the entry sensor)."""
        if self.sheet is not None:
            raise RuntimeError(
                f"a sheet is already in the paper path (leading edge at {self.sheet.lead_mm:.1f} mm); "
                "take it out before inserting another"
            )
        if length_mm <= self.geometry.insert_depth_mm:
            raise ValueError(f"a ballot must be longer than the insert depth ({self.geometry.insert_depth_mm} mm)")
        self.sheet = SimSheet(length_mm=length_mm, sheets=sheets, lead_mm=self.geometry.insert_depth_mm)
        self._drive_sensors()
        return self.sheet

    def reinsert_presented_ballot(self) -> SimSheet:
        """The voter pushes the returned ballot back in, up to the first nip."""
        sheet = self._presented_sheet("reinsert")
        sheet.lead_mm = self.geometry.insert_depth_mm
        self._drive_sensors()
        return sheet

    def take_presented_ballot(self) -> SimSheet:
        """The voter takes the returned ballot out of the slot."""
        sheet = self._presented_sheet("take")
        self.sheet = None
        self._drive_sensors()
        return sheet

    def inject_jam(self, at_mm: float) -> None:
        """The next sheet whose leading edge reaches `at_mm` going forward sticks there (crumpled in
        the rollers) and moves no more, either way, until clear_jam()."""
        self._jam_at_mm = at_mm

    def clear_jam(self) -> None:
        """The committee frees the crumpled sheet: it can move again (it stays where it is)."""
        self._jam_at_mm = None
        self._stuck = False

    def remove_sheet(self) -> SimSheet | None:
        """The committee opens the cover and takes out whatever sheet is in the path."""
        sheet, self.sheet = self.sheet, None
        self._jam_at_mm = None
        self._stuck = False
        self._drive_sensors()
        return sheet

    def set_box_full(self, full: bool = True) -> None:
        self._box_full_forced = full
        self._drive_sensors()

    def open_cover(self, delay_s: float = 0.0) -> None:
        self.gpio.clock.call_later(delay_s, lambda: self._set_cover(True))

    def close_cover(self, delay_s: float = 0.0) -> None:
        self.gpio.clock.call_later(delay_s, lambda: self._set_cover(False))

    # -- what can be observed ------------------------------------------------------------------

    @property
    def ballots_in_box(self) -> int:
        return len(self.box)

    @property
    def box_full(self) -> bool:
        return self._box_full_forced or (self.box_capacity is not None and len(self.box) >= self.box_capacity)

    @property
    def presented(self) -> bool:
        """A sheet hangs in the slot, out of the rollers, for the voter to take."""
        return self.sheet is not None and self.sheet.lead_mm <= self.geometry.first_nip_mm

    @property
    def motor(self) -> MotorState:
        enabled = self.gpio.level(self.pins.motor_enable)
        forward = self.gpio.level(self.pins.motor_forward)
        reverse = self.gpio.level(self.pins.motor_reverse)
        if not enabled or forward == reverse:
            return MotorState.STOPPED  # disabled, or braking with both inputs equal
        return MotorState.FORWARD if forward else MotorState.REVERSE

    # -- physics -------------------------------------------------------------------------------

    def _tick(self, now_s: float, step_s: float) -> None:
        sheet = self.sheet
        motor = self.motor
        if sheet is not None and motor is not MotorState.STOPPED and not self._stuck and self._gripped(sheet):
            travel = self.geometry.roller_speed_mm_s * step_s
            if motor is MotorState.FORWARD:
                lead = sheet.lead_mm + travel
                if self._jam_at_mm is not None and sheet.lead_mm <= self._jam_at_mm <= lead:
                    lead = self._jam_at_mm
                    self._stuck = True
                sheet.lead_mm = lead
                if sheet.tail_mm >= self.geometry.last_nip_mm:
                    self.box.append(sheet)
                    self.sheet = None
            else:
                # Past the first nip nothing pushes the sheet any more: it stops, hanging in the slot.
                sheet.lead_mm = max(sheet.lead_mm - travel, self.geometry.first_nip_mm)
        self._drive_sensors()

    def _gripped(self, sheet: SimSheet) -> bool:
        return sheet.lead_mm > self.geometry.first_nip_mm and sheet.tail_mm < self.geometry.last_nip_mm

    def _drive_sensors(self) -> None:
        g = self.geometry
        sheet = self.sheet

        def paper_at(position: float) -> bool:
            return sheet is not None and sheet.covers(position)

        active_low = self.pins.sensors_active_low
        for pin, active in (
            (self.pins.sensor_entry, paper_at(g.entry_sensor_mm)),
            (self.pins.sensor_imaging, paper_at(g.imaging_sensor_mm)),
            (self.pins.sensor_exit, paper_at(g.exit_sensor_mm)),
            (
                self.pins.sensor_double_sheet,
                sheet is not None and sheet.sheets > 1 and paper_at(g.double_sheet_sensor_mm),
            ),
            (self.pins.sensor_box_full, self.box_full),
        ):
            self.gpio.drive(pin, active != active_low)
        self.gpio.drive(self.pins.sensor_cover, self.cover_open)  # closed = low

    def _set_cover(self, open_: bool) -> None:
        self.cover_open = open_
        self._drive_sensors()

    def _check_bridge(self, pin: int, high: bool) -> None:
        p = self.pins
        if pin in (p.motor_forward, p.motor_reverse, p.motor_enable) and all(
            self.gpio.level(x) for x in (p.motor_forward, p.motor_reverse, p.motor_enable)
        ):
            self.bridge_faults.append(self.gpio.clock.monotonic())

    def _presented_sheet(self, verb: str) -> SimSheet:
        if self.sheet is None or not self.presented:
            where = (
                "the path is empty"
                if self.sheet is None
                else f"its leading edge is at {self.sheet.lead_mm:.1f} mm, inside the rollers"
            )
            raise RuntimeError(f"no ballot is presented in the slot to {verb}: {where}")
        return self.sheet


# -- switches, lamps, buzzer, buttons --------------------------------------------------------------


class SwitchBoardTwin:
    """The seal loop, lid switch, status lamps and buzzer (SwitchPins). Both switches close to ground:
    seal intact and lid closed read low. Starts with the seal intact and the lid closed."""

    def __init__(self, gpio: GpioTwin, pins: SwitchPins) -> None:
        self.gpio = gpio
        self.pins = pins
        self.beeps = 0
        gpio.drive(pins.seal, False)
        gpio.drive(pins.lid, False)
        gpio.watch_outputs(self._count_beeps)

    def set_seal_intact(
        self, intact: bool, delay_s: float = 0.0, bounce_toggles: int = 0, bounce_interval_s: float = 0.001
    ) -> None:
        self.gpio.set_input(self.pins.seal, not intact, delay_s, bounce_toggles, bounce_interval_s)

    def set_lid_closed(
        self, closed: bool, delay_s: float = 0.0, bounce_toggles: int = 0, bounce_interval_s: float = 0.001
    ) -> None:
        self.gpio.set_input(self.pins.lid, not closed, delay_s, bounce_toggles, bounce_interval_s)

    def lit_indicators(self) -> set[Indicator]:
        lamps = {
            Indicator.READY: self.pins.led_ready,
            Indicator.BUSY: self.pins.led_busy,
            Indicator.ATTENTION: self.pins.led_attention,
        }
        return {indicator for indicator, pin in lamps.items() if self.gpio.is_output(pin) and self.gpio.level(pin)}

    def _count_beeps(self, pin: int, high: bool) -> None:
        if pin == self.pins.buzzer and high:
            self.beeps += 1


class PanelButton(StrEnum):
    CAST = "cast"
    RETURN = "return"


class ButtonPanelTwin:
    """The voter panel's two buttons and three lamps (PanelPins). Buttons close to ground when
    pressed; they start released."""

    def __init__(self, gpio: GpioTwin, pins: PanelPins) -> None:
        self.gpio = gpio
        self.pins = pins
        gpio.drive(pins.button_cast, True)
        gpio.drive(pins.button_return, True)

    def press(
        self,
        button: PanelButton,
        delay_s: float = 0.0,
        hold_s: float | None = 0.2,
        bounce_toggles: int = 0,
        bounce_interval_s: float = 0.001,
    ) -> None:
        """Press `button` after `delay_s`, hold it `hold_s` (None: keep it held), with optional contact
        bounce on the press and on the release."""
        pin = self.pins.button_cast if button is PanelButton.CAST else self.pins.button_return
        self.gpio.set_input(pin, False, delay_s, bounce_toggles, bounce_interval_s)
        if hold_s is not None:
            release_at = delay_s + bounce_toggles * bounce_interval_s + hold_s
            self.gpio.set_input(pin, True, release_at, bounce_toggles, bounce_interval_s)

    def release(self, button: PanelButton) -> None:
        pin = self.pins.button_cast if button is PanelButton.CAST else self.pins.button_return
        self.gpio.drive(pin, True)

    def lit_lamps(self) -> set[str]:
        """Names of the lamps lit: "valid", "invalid", "ambiguous"."""
        lamps = {"valid": self.pins.led_valid, "invalid": self.pins.led_invalid, "ambiguous": self.pins.led_ambiguous}
        return {name for name, pin in lamps.items() if self.gpio.is_output(pin) and self.gpio.level(pin)}

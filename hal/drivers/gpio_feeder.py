"""The feed mechanism on GPIO: a DC motor on an H-bridge and IR paper sensors along the path.

The path, from the voter's slot into the box:

    slot | entry sensor | first nip .. double-sheet sensor .. camera window | imaging sensor
         | exit sensor | last nip | box

The entry sensor sits in front of the first roller nip, so a sheet the voter pushes in is seen before
the rollers can grip it. The imaging sensor sits at the far end of the camera window: a sheet whose
leading edge has reached it is fully in view. The exit sensor sits just inside the last nip, so it
sees the sheet while the rollers still hold it; past the last nip the sheet falls into the box.

Every motor action is a loop on the injected clock: run the motor, sample the sensors every
POLL_INTERVAL_S, debounce them, and stop on the sensor that confirms the action or on the action's
time budget. The motor is stopped in a `finally`, whatever happened.
"""

from __future__ import annotations

from enum import Enum

from config.device import FeederPins
from hal.clock import Clock
from hal.drivers.gpio import POLL_INTERVAL_S, Debounced, GpioPins, PinUnstable, is_active
from hal.errors import DeviceStatus
from hal.feeder import BoxFull, CoverOpen, DoubleSheet, FeederError, FeederSensors, PaperJam

# Braking time before the bridge is disabled. With both direction inputs low and enable high the
# bridge shorts the motor (L298N / TB6612 "brake"): the rollers stop within a millimetre instead of
# coasting on, so a ballot stopped at the imaging sensor stays inside the camera window.
BRAKE_S = 0.05

# After the ballot's tail has cleared the exit sensor, the last nip still holds its last few
# millimetres (the sensor sits inside the nip, see the module docstring). Running on for 0.15 s
# (~37 mm at ~250 mm/s) pushes the tail out so it falls into the box instead of hanging on the
# roller. Over-running forward is harmless: with no sheet the rollers turn on nothing.
DROP_RUN_OUT_S = 0.15

# When returning, the rollers must push the sheet until its far edge leaves the first nip; no sensor
# sees that moment (the sheet keeps covering the entry sensor while it hangs in the slot). We reverse
# for as long as the sheet was driven forward, plus this margin for the motor running slower in
# reverse under load and for roller slip. Over-running in reverse is harmless too: once the sheet is
# out of the nip it rests in the slot and the rollers turn under nothing.
PRESENT_MARGIN_S = 0.3


class _Direction(Enum):
    FORWARD = "forward"
    REVERSE = "reverse"


class GpioFeeder:
    """hal.feeder.Feeder on the Raspberry Pi header (RPi.GPIO API, BCM numbers from FeederPins)."""

    def __init__(self, pins: FeederPins, clock: Clock, chip: int | None = None) -> None:
        self._settings = pins
        self._clock = clock
        self._debounce_s = pins.debounce_ms / 1000
        self._io = GpioPins("feeder", clock, chip)
        # Outputs first, all low: the bridge must never see a floating input while we start up.
        self._io.setup_output("motor forward", pins.motor_forward)
        self._io.setup_output("motor reverse", pins.motor_reverse)
        self._io.setup_output("motor enable", pins.motor_enable)
        # Pull towards "no paper": with active-low (open-collector) sensors a pull-up, with active-high
        # ones a pull-down, so an unplugged sensor reads as an empty path. An unplugged imaging or exit
        # sensor then fails safe as a jam, never as a ballot that seems to be somewhere it is not.
        sensor_pull_up = pins.sensors_active_low
        self._paper_pins = {
            "entry": pins.sensor_entry,
            "imaging": pins.sensor_imaging,
            "exit": pins.sensor_exit,
            "double_sheet": pins.sensor_double_sheet,
            "box_full": pins.sensor_box_full,
        }
        for name, pin in self._paper_pins.items():
            self._io.setup_input(f"{name.replace('_', '-')} sensor", pin, pull_up=sensor_pull_up)
        # The cover switch closes to ground when the cover is shut; the pull-up makes a broken wire
        # read as "cover open", which stops the motor: the safe side.
        self._io.setup_input("cover switch", pins.sensor_cover, pull_up=True)
        self._all_pins = [*self._paper_pins.values(), pins.sensor_cover]
        self._filters: dict[int, Debounced] = {}
        # Seconds the sheet now in the path has been driven forward since it left the slot; None when
        # unknown (right after start-up, e.g. recovering from a power cut with a ballot inside).
        self._travel_s: float | None = None
        self._closed = False

    # -- the Feeder interface ------------------------------------------------------------------

    def sensors(self) -> FeederSensors:
        return self._to_sensors(self._io.read_settled(self._all_pins, self._debounce_s))

    def wait_for_ballot(self, timeout_s: float) -> bool:
        start = self._clock.monotonic()
        state = self._start_watch()
        while not state.entry:
            if self._clock.monotonic() - start >= timeout_s:
                return False
            state = self._poll()
        return True

    def take_in(self) -> None:
        state = self._start_watch()
        self._refuse_if_cover_open(state, "take in the ballot")
        if state.imaging:
            # Already held at the imaging position (take_in repeated while recovering): nothing to move.
            return
        if state.entry and not state.exit:
            # A sheet seen only at the entry sensor is one the voter has just pushed into the slot:
            # its forward travel is counted from here, so return_to_voter knows how far to reverse.
            self._travel_s = 0.0
        limit = self._settings.take_in_timeout_s
        fed_from_slot = state.entry
        start = self._clock.monotonic()
        try:
            self._run_motor(_Direction.FORWARD)
            while True:
                state = self._poll()
                elapsed = self._clock.monotonic() - start
                self._raise_if_cover_opened(state, "taking in a ballot")
                if state.double_sheet:
                    # Stop at once, with the sheets still near the slot: two sheets must never reach
                    # the camera (one would be counted, the other would hide beneath it). The state
                    # table returns them with return_to_voter().
                    raise DoubleSheet(
                        "two sheets were fed together (double-sheet sensor)",
                        "the ballots are returned to the voter; insert them one at a time",
                    )
                if state.imaging:
                    # Stopped after the debounce: the sheet overshoots the sensor by debounce x speed
                    # (~4 mm at 15 ms); the camera window is laid out with that margin.
                    return
                if elapsed >= limit:
                    if state.entry:
                        where = "still at the entry sensor"
                    elif fed_from_slot:
                        where = "between the entry and imaging sensors"
                    else:
                        where = "not seen by any sensor (none was at the entry slot when take-in began)"
                    raise PaperJam(
                        f"the ballot did not reach the imaging sensor within {limit:g} s; it is {where}",
                        "committee: return the ballot to the voter; if it does not come out, open the "
                        "feeder cover and clear the paper path",
                    )
        finally:
            ran = self._stop_motor_since(start)
            if self._travel_s is not None:
                self._travel_s += ran

    def drop_into_box(self) -> None:
        state = self._start_watch()
        if state.box_full:
            # Checked before moving: a ballot pushed into a full box would stick in the throat,
            # half counted. The ballot stays held at the imaging position.
            raise BoxFull(
                "the ballot box is full (box-full sensor)",
                "committee: seal this box and fit an empty one; the ballot waits at the imaging position",
            )
        self._refuse_if_cover_open(state, "drop the ballot into the box")
        if not (state.imaging or state.exit):
            raise FeederError(
                "there is no ballot at the imaging position to drop (imaging and exit sensors see no paper); "
                "nothing was moved",
                "check the paper path; if a ballot is inside, clear it with the cover open",
            )
        limit = self._settings.drop_timeout_s
        seen_at_exit = state.exit  # true already when recovering a drop cut short by a power cut
        start = self._clock.monotonic()
        try:
            self._run_motor(_Direction.FORWARD)
            while True:
                state = self._poll()
                elapsed = self._clock.monotonic() - start
                self._raise_if_cover_opened(state, "dropping a ballot into the box")
                # The box-full sensor is not watched while dropping: the falling ballot is what fills
                # the box and may cover the sensor for a moment. The next drop checks it first.
                if state.exit:
                    seen_at_exit = True
                elif seen_at_exit:
                    # The tail has passed the exit sensor: the ballot is in. Run on to release it.
                    self._run_on(DROP_RUN_OUT_S)
                    break
                if elapsed >= limit:
                    if seen_at_exit:
                        raise PaperJam(
                            f"the ballot reached the exit sensor but did not clear it within {limit:g} s: "
                            "it is stuck in the box throat, partly inside the box",
                            "committee: open the feeder cover and free the ballot into the box by hand; "
                            "it was cast (the intent is recorded)",
                        )
                    raise PaperJam(
                        f"the ballot did not reach the exit sensor within {limit:g} s: it is not in the box",
                        "committee: open the feeder cover, take the ballot out and let the voter insert it again",
                    )
        finally:
            self._stop_motor_since(start)
        self._travel_s = 0.0

    def return_to_voter(self) -> None:
        state = self._start_watch()
        self._refuse_if_cover_open(state, "return the ballot")
        travel = self._travel_s
        if travel == 0.0 and state.entry and not (state.imaging or state.exit):
            # Nothing was driven in since the sheet was last presented: it is still in the slot.
            return
        limit = self._settings.return_timeout_s
        # With no record of how far the sheet went in (after a power cut), reverse for the whole budget.
        run_for = (travel if travel is not None else limit) + PRESENT_MARGIN_S
        seen_at_entry = state.entry
        start = self._clock.monotonic()
        try:
            self._run_motor(_Direction.REVERSE)
            while True:
                state = self._poll()
                elapsed = self._clock.monotonic() - start
                self._raise_if_cover_opened(state, "returning a ballot")
                # The entry sensor seeing paper proves the sheet really moves back (a jammed sheet
                # would leave the rollers slipping under it). It is not the end of the return: the
                # sheet covers the entry sensor until the voter takes it, and must still be pushed on
                # until its far edge leaves the first nip.
                seen_at_entry = seen_at_entry or state.entry
                if seen_at_entry and elapsed >= run_for:
                    break
                if not seen_at_entry and elapsed >= limit:
                    raise PaperJam(
                        f"the ballot did not come back to the entry slot within {limit:g} s of reversing",
                        "committee: open the feeder cover, take the ballot out and hand it to the voter",
                    )
        finally:
            self._stop_motor_since(start)
        state = self._to_sensors(self._io.read_settled(self._all_pins, self._debounce_s))
        if state.imaging or state.exit:
            where = "imaging" if state.imaging else "exit"
            raise PaperJam(
                f"after reversing, paper is still at the {where} sensor",
                "committee: open the feeder cover, take the ballot out and hand it to the voter",
            )
        # The returned sheet now hangs in the slot over the entry sensor until the voter takes it, so
        # wait_for_ballot() answers True until then.
        self._travel_s = 0.0

    def self_test(self) -> DeviceStatus:
        # The motor is not run: a self-test must never move a ballot that may lie unseen between two
        # sensors. The sensors must all read "idle": a leftover sheet or an open cover is reported.
        try:
            state = self.sensors()
        except PinUnstable as exc:
            return DeviceStatus("feeder", False, exc.message)
        problems = [
            text
            for flag, text in (
                (state.cover_open, "feeder cover open"),
                (state.box_full, "box full"),
                (state.entry, "paper at the entry sensor"),
                (state.imaging, "paper at the imaging sensor"),
                (state.exit, "paper at the exit sensor"),
                (state.double_sheet, "double-sheet sensor active with no sheet fed"),
            )
            if flag
        ]
        if problems:
            return DeviceStatus("feeder", False, "; ".join(problems))
        return DeviceStatus("feeder", True, "paper path clear, cover closed, box not full")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._coast()
        finally:
            self._io.close()

    # -- motor ---------------------------------------------------------------------------------

    def _run_motor(self, direction: _Direction) -> None:
        pins = self._settings
        # Both direction inputs low before one goes high: both high at once brakes an L298N and
        # shoots through some other bridges.
        self._io.write(pins.motor_forward, False)
        self._io.write(pins.motor_reverse, False)
        self._io.write(pins.motor_forward if direction is _Direction.FORWARD else pins.motor_reverse, True)
        self._io.write(pins.motor_enable, True)

    def _stop_motor_since(self, start: float) -> float:
        """Brake and disable the motor; return for how long it ran since `start`."""
        ran = self._clock.monotonic() - start
        pins = self._settings
        try:
            self._io.write(pins.motor_forward, False)
            self._io.write(pins.motor_reverse, False)
            self._clock.sleep(BRAKE_S)
        finally:
            self._io.write(pins.motor_enable, False)
        return ran

    def _coast(self) -> None:
        pins = self._settings
        for pin in (pins.motor_forward, pins.motor_reverse, pins.motor_enable):
            self._io.write(pin, False)

    def _run_on(self, seconds: float) -> None:
        """Keep the motor as it is for `seconds`, stopping early if the cover opens (no error then:
        the sheet has already passed the sensor that confirms the action)."""
        end = self._clock.monotonic() + seconds
        while self._clock.monotonic() < end:
            if self._poll().cover_open:
                return

    # -- sensors -------------------------------------------------------------------------------

    def _start_watch(self) -> FeederSensors:
        """Settle every sensor (the path is standing still) and start debouncing from there."""
        levels = self._io.read_settled(self._all_pins, self._debounce_s)
        self._filters = self._io.debouncers(levels, self._debounce_s)
        return self._to_sensors(levels)

    def _poll(self) -> FeederSensors:
        """Wait one poll interval, sample every sensor and return the debounced state."""
        self._clock.sleep(POLL_INTERVAL_S)
        now = self._clock.monotonic()
        raw = self._io.read_many(self._all_pins)
        return self._to_sensors({pin: self._filters[pin].update(level, now) for pin, level in raw.items()})

    def _to_sensors(self, levels: dict[int, bool]) -> FeederSensors:
        active_low = self._settings.sensors_active_low
        paper = {name: is_active(levels[pin], active_low) for name, pin in self._paper_pins.items()}
        return FeederSensors(
            entry=paper["entry"],
            imaging=paper["imaging"],
            exit=paper["exit"],
            double_sheet=paper["double_sheet"],
            box_full=paper["box_full"],
            cover_open=levels[self._settings.sensor_cover],  # closed = low
        )

    def _refuse_if_cover_open(self, state: FeederSensors, action: str) -> None:
        if state.cover_open:
            raise CoverOpen(
                f"the feeder cover is open: cannot {action}",
                "committee: close the feeder cover; the ballot stays where it is",
            )

    def _raise_if_cover_opened(self, state: FeederSensors, action: str) -> None:
        if state.cover_open:
            raise CoverOpen(
                f"the feeder cover was opened while {action}; the motor is stopped",
                "committee: close the feeder cover, then check where the ballot is",
            )

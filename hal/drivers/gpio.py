"""A thin layer over the RPi.GPIO API for the GPIO drivers: BCM numbering, one owner per set of pins,
and debouncing done here, timed by the injected clock.

The RPi.GPIO module is imported lazily, when a driver opens its pins. On a Pi 4 it is the classic
RPi.GPIO; on a Pi 5 the same API comes from rpi-lgpio, because the header GPIOs of a Pi 5 sit on the
RP1 chip and are reachable only through a /dev/gpiochip device. The chip is never hard-coded here:
rpi-lgpio chooses it from the board revision (4 on a Pi 5, 0 on every other board) unless the
environment variable RPI_LGPIO_CHIP names one, which it reads when setmode() opens the chip. Newer
Raspberry Pi OS kernels number the header chip 0 on a Pi 5 too, which is what the `chip` override
(device settings `gpio_chip`) is for. Classic RPi.GPIO ignores the variable.

Debouncing is ours, not RPi.GPIO's `bouncetime`: RPi.GPIO suppresses edges for a time after the first
one, while rpi-lgpio reports an edge only after the level has been stable; the same setting would
behave differently on a Pi 4 and a Pi 5. Here a level counts once it has held for `debounce_ms` on
every board, and the polling runs on the injected clock, so the simulator can drive it in fake time.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterable, Mapping
from types import ModuleType

from hal.clock import Clock
from hal.errors import HalError, HardwareUnavailable

# Inputs are sampled every 2 ms while a driver waits on them. Paper moving at ~250 mm/s travels 0.5 mm
# between samples, far less than the few millimetres a sensor's window spans; a human press lasts
# 100 ms or more. Faster polling would only cost CPU on the Pi.
POLL_INTERVAL_S = 0.002

# How long a blocking read may wait for a chattering input to hold still before it is declared
# unstable. A mechanical contact bounces for a few milliseconds; one that has not settled after a
# second is a loose wire or interference, and the operator must hear about it.
SETTLE_LIMIT_S = 1.0

_LGPIO_CHIP_VARIABLE = "RPI_LGPIO_CHIP"


class PinUnstable(HalError):
    """An input kept changing and never held one level for the debounce time."""

    code = "pin_unstable"


def import_rpi_gpio(chip: int | None = None) -> ModuleType:
    """Import the RPi.GPIO module (classic RPi.GPIO, or rpi-lgpio on a Pi 5).

    `chip` overrides the gpiochip rpi-lgpio opens; it must be set before the first setmode() of the
    process, so every driver of one device set passes the same value (settings.gpio_chip).
    """
    if chip is not None:
        if chip < 0:
            raise ValueError(f"gpio_chip must be a /dev/gpiochip number (0 or more), got {chip}")
        os.environ[_LGPIO_CHIP_VARIABLE] = str(chip)
    try:
        return importlib.import_module("RPi.GPIO")
    except ImportError as exc:
        raise HardwareUnavailable(
            f"the RPi.GPIO module cannot be imported ({exc})",
            "on a Raspberry Pi 4 install python3-rpi.gpio; on a Pi 5 install python3-rpi-lgpio "
            "(the ballotbox 'pi5' extra); off a Pi run with device kind 'sim'",
        ) from exc
    except RuntimeError as exc:
        # Both RPi.GPIO and rpi-lgpio refuse to load when they cannot identify a Raspberry Pi.
        raise HardwareUnavailable(
            f"the RPi.GPIO module refused to load ({exc})",
            "run the Pi device set only on the Raspberry Pi of the ballot box; off a Pi use device kind 'sim'",
        ) from exc


def is_active(level_high: bool, active_low: bool) -> bool:
    """Whether an input at `level_high` means its condition is present, given its polarity."""
    return level_high != active_low


class Debounced:
    """The debounced view of one input, fed with samples: the stable level changes only after the raw
    level has held the new value for `debounce_s`."""

    def __init__(self, stable: bool, debounce_s: float, now: float) -> None:
        self.stable = stable
        self._debounce_s = debounce_s
        self._candidate = stable
        self._since = now

    def update(self, raw: bool, now: float) -> bool:
        if raw != self._candidate:
            self._candidate = raw
            self._since = now
        if self._candidate != self.stable and now - self._since >= self._debounce_s:
            self.stable = self._candidate
        return self.stable


class GpioPins:
    """The pins one driver owns, set up through RPi.GPIO with BCM numbering.

    Each driver opens its own GpioPins and, on close, cleans up only its own pins: the feeder,
    panel and switches drivers share the header but never reset each other's outputs.
    """

    def __init__(self, owner: str, clock: Clock, chip: int | None = None) -> None:
        self.owner = owner
        self._clock = clock
        self._gpio = import_rpi_gpio(chip)
        # Warnings off: after a power cut the pins are still configured by the previous run, and
        # RPi.GPIO would warn "channel already in use" on every start; we reconfigure them anyway.
        self._gpio.setwarnings(False)
        try:
            self._gpio.setmode(self._gpio.BCM)
        except ValueError as exc:
            raise HalError(
                f"{owner}: RPi.GPIO is already in BOARD numbering ({exc})",
                "every ballotbox driver uses BCM numbers; remove the code that calls GPIO.setmode(GPIO.BOARD)",
            ) from exc
        self._names: dict[int, str] = {}
        self._outputs: set[int] = set()

    def name_of(self, pin: int) -> str:
        return f"GPIO{pin} ({self.owner} {self._names.get(pin, '?')})"

    def setup_output(self, name: str, pin: int, initial: bool = False) -> None:
        self._claim(name, pin)
        try:
            self._gpio.setup(pin, self._gpio.OUT, initial=self._gpio.HIGH if initial else self._gpio.LOW)
        except (RuntimeError, ValueError) as exc:
            raise self._unavailable(pin, exc) from exc
        self._outputs.add(pin)

    def setup_input(self, name: str, pin: int, pull_up: bool) -> None:
        self._claim(name, pin)
        pull = self._gpio.PUD_UP if pull_up else self._gpio.PUD_DOWN
        try:
            self._gpio.setup(pin, self._gpio.IN, pull_up_down=pull)
        except (RuntimeError, ValueError) as exc:
            raise self._unavailable(pin, exc) from exc

    def write(self, pin: int, high: bool) -> None:
        self._gpio.output(pin, self._gpio.HIGH if high else self._gpio.LOW)

    def read(self, pin: int) -> bool:
        """The raw level of an input, not debounced: True = high."""
        return bool(self._gpio.input(pin))

    def read_many(self, pins: Iterable[int]) -> dict[int, bool]:
        return {pin: self.read(pin) for pin in pins}

    def read_settled(self, pins: Iterable[int], debounce_s: float, limit_s: float = SETTLE_LIMIT_S) -> dict[int, bool]:
        """Sample `pins` until every one has held its level for `debounce_s`; return those levels.

        Raises PinUnstable naming the pin that kept changing for `limit_s`.
        """
        pins = list(pins)
        start = self._clock.monotonic()
        levels = self.read_many(pins)
        since = dict.fromkeys(pins, start)
        while True:
            now = self._clock.monotonic()
            restless = [pin for pin in pins if now - since[pin] < debounce_s]
            if not restless:
                return levels
            if now - start > limit_s:
                pin = restless[0]
                raise PinUnstable(
                    f"{self.name_of(pin)} did not hold one level for {debounce_s * 1000:.0f} ms within {limit_s:g} s",
                    f"check the wiring and connector of the {self._names.get(pin, 'input')} "
                    "(loose contact or interference)",
                )
            self._clock.sleep(POLL_INTERVAL_S)
            now = self._clock.monotonic()
            for pin, raw in self.read_many(pins).items():
                if raw != levels[pin]:
                    levels[pin] = raw
                    since[pin] = now

    def debouncers(self, levels: Mapping[int, bool], debounce_s: float) -> dict[int, Debounced]:
        """Debounced trackers starting from already-settled `levels` (see read_settled)."""
        now = self._clock.monotonic()
        return {pin: Debounced(level, debounce_s, now) for pin, level in levels.items()}

    def close(self) -> None:
        """Drive our outputs low, then hand our pins back (RPi.GPIO leaves them as inputs)."""
        if not self._names:
            return
        for pin in self._outputs:
            # RuntimeError: already cleaned up by someone else; the pin is an input, nothing is driven.
            with contextlib.suppress(RuntimeError):
                self.write(pin, False)
        self._gpio.cleanup(sorted(self._names))
        self._names.clear()
        self._outputs.clear()

    def _claim(self, name: str, pin: int) -> None:
        if pin in self._names:
            raise ValueError(
                f"{self.owner}: GPIO{pin} is configured for both '{self._names[pin]}' and '{name}'; "
                "give each a pin of its own in the device settings"
            )
        self._names[pin] = name

    def _unavailable(self, pin: int, exc: Exception) -> HardwareUnavailable:
        return HardwareUnavailable(
            f"{self.name_of(pin)} cannot be set up: {exc}",
            "another program may hold the pin (stop it), or the device settings name a pin that is not on the header",
        )

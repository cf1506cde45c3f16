"""Seal and lid switches, status lamps and the buzzer on GPIO.

The seal is a wire loop through the box's seal, closing an input to ground while intact; the lid
switch closes to ground while the lid is shut. Both inputs are pulled up, so a cut loop or a broken
wire reads exactly like a broken seal or an open lid: tampering with the wiring cannot hide tampering
with the box.
"""

from __future__ import annotations

from config.device import SwitchPins
from hal.clock import Clock
from hal.drivers.gpio import GpioPins, PinUnstable
from hal.errors import DeviceStatus
from hal.switches import Indicator, SealState

# An active buzzer (it carries its own oscillator) sounds while its pin is high. 0.1 s on and 0.1 s
# off makes beeps a person counts reliably ("three beeps").
BEEP_ON_S = 0.1
BEEP_OFF_S = 0.1

# Lamp test during self_test: each lamp lit this long, long enough to be seen by the committee.
LAMP_TEST_S = 0.3


class GpioSwitches:
    """hal.switches.Switches on the Raspberry Pi header (RPi.GPIO API, BCM numbers from SwitchPins)."""

    def __init__(self, pins: SwitchPins, clock: Clock, chip: int | None = None) -> None:
        self._settings = pins
        self._clock = clock
        self._debounce_s = pins.debounce_ms / 1000
        self._io = GpioPins("switches", clock, chip)
        self._lamps = {
            Indicator.READY: pins.led_ready,
            Indicator.BUSY: pins.led_busy,
            Indicator.ATTENTION: pins.led_attention,
        }
        for indicator, pin in self._lamps.items():
            self._io.setup_output(f"{indicator.value} lamp", pin)
        self._io.setup_output("buzzer", pins.buzzer)
        self._io.setup_input("seal loop", pins.seal, pull_up=True)
        self._io.setup_input("lid switch", pins.lid, pull_up=True)
        self._closed = False

    def read(self) -> SealState:
        """Debounced: each switch must hold its level for debounce_ms. Raises PinUnstable if one keeps
        chattering (a loose contact, reported rather than guessed)."""
        pins = self._settings
        levels = self._io.read_settled([pins.seal, pins.lid], self._debounce_s)
        return SealState(seal_intact=not levels[pins.seal], lid_closed=not levels[pins.lid])

    def set_indicator(self, indicator: Indicator, on: bool) -> None:
        self._io.write(self._lamps[indicator], on)

    def beep(self, times: int = 1) -> None:
        for index in range(times):
            self._io.write(self._settings.buzzer, True)
            try:
                self._clock.sleep(BEEP_ON_S)
            finally:
                self._io.write(self._settings.buzzer, False)
            if index < times - 1:
                self._clock.sleep(BEEP_OFF_S)

    def self_test(self) -> DeviceStatus:
        """Lights each lamp in turn and beeps once for the committee to see and hear, then reads the
        switches. A broken seal or an open lid is reported in the detail; it is not a device fault."""
        for pin in self._lamps.values():
            self._io.write(pin, True)
            self._clock.sleep(LAMP_TEST_S)
            self._io.write(pin, False)
        self.beep(1)
        try:
            state = self.read()
        except PinUnstable as exc:
            return DeviceStatus("switches", False, exc.message)
        seal = "seal intact" if state.seal_intact else "SEAL BROKEN"
        lid = "lid closed" if state.lid_closed else "LID OPEN"
        return DeviceStatus("switches", True, f"{seal}, {lid}; lamps and buzzer pulsed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._io.close()  # lamps and buzzer off, pins released

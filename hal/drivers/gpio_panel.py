"""The "display + two buttons" voter panel on GPIO: three lamps beside printed verdict labels, and
the cast ("ubaci") and return ("vrati") buttons.

The lamps carry the verdict; the text is kept in `last_text` for the display process and the
tests. Status messages also go to the debug log; verdict texts never do: logs never hold anything
about a ballot (ARCHITECTURE.md, "Logs never hold votes").

Buttons close to ground when pressed and are pulled up, so an unplugged button reads as never
pressed: the voter can always fall back to asking the committee.
"""

from __future__ import annotations

import logging

from config.device import PanelPins
from hal.clock import Clock
from hal.drivers.gpio import POLL_INTERVAL_S, GpioPins, PinUnstable
from hal.errors import DeviceStatus
from hal.panel import PanelVerdict, VoterChoice

_log = logging.getLogger("hal.panel")

# Lamp test during self_test: each lamp lit this long, long enough to be seen by the committee.
LAMP_TEST_S = 0.3


class GpioButtonPanel:
    """hal.panel.VoterPanel for the display + two buttons variant (RPi.GPIO API, BCM numbers)."""

    def __init__(self, pins: PanelPins, clock: Clock, chip: int | None = None) -> None:
        self._settings = pins
        self._clock = clock
        self._debounce_s = pins.debounce_ms / 1000
        self._io = GpioPins("panel", clock, chip)
        self._lamps = {
            "valid": pins.led_valid,
            "invalid": pins.led_invalid,
            "ambiguous": pins.led_ambiguous,
        }
        for name, pin in self._lamps.items():
            self._io.setup_output(f"{name} lamp", pin)
        self._io.setup_input("cast button", pins.button_cast, pull_up=True)
        self._io.setup_input("return button", pins.button_return, pull_up=True)
        self._castable = False
        self.last_text = ""
        self._closed = False

    def show_verdict(self, verdict: PanelVerdict, text: str, castable: bool) -> None:
        lamp = {
            PanelVerdict.VALID: "valid",
            PanelVerdict.INVALID: "invalid",
            PanelVerdict.AMBIGUOUS: "ambiguous",
            PanelVerdict.FOREIGN: "ambiguous",
            PanelVerdict.UNREADABLE: "ambiguous",
        }[verdict]
        self._light(lamp)
        self._castable = castable
        self.last_text = text

    def ask_cast_or_return(self, timeout_s: float) -> VoterChoice:
        """Wait for a press of cast or return. A press counts on the debounced change from released to
        pressed, so a button already held when the question is asked (a voter still pressing from the
        previous ballot, or a stuck button) counts only after it is released and pressed again.
        While the verdict is not castable the cast button is ignored."""
        pins = self._settings
        buttons = [pins.button_cast, pins.button_return]
        start = self._clock.monotonic()
        levels = self._io.read_settled(buttons, self._debounce_s)
        filters = self._io.debouncers(levels, self._debounce_s)
        pressed = {pin: not level for pin, level in levels.items()}  # pressed = low
        while self._clock.monotonic() - start < timeout_s:
            self._clock.sleep(POLL_INTERVAL_S)
            now = self._clock.monotonic()
            for pin, raw in self._io.read_many(buttons).items():
                is_pressed = not filters[pin].update(raw, now)
                newly_pressed = is_pressed and not pressed[pin]
                pressed[pin] = is_pressed
                if not newly_pressed:
                    continue
                if pin == pins.button_return:
                    return VoterChoice.RETURN
                if self._castable:
                    return VoterChoice.CAST
        return VoterChoice.NONE

    def show_message(self, text: str) -> None:
        self._light(None)
        self._castable = False
        self.last_text = text
        _log.debug("panel message: %s", text)

    def self_test(self) -> DeviceStatus:
        """Lights each lamp in turn for the committee to see, and checks no button reads pressed."""
        for pin in self._lamps.values():
            self._io.write(pin, True)
            self._clock.sleep(LAMP_TEST_S)
            self._io.write(pin, False)
        pins = self._settings
        try:
            levels = self._io.read_settled([pins.button_cast, pins.button_return], self._debounce_s)
        except PinUnstable as exc:
            return DeviceStatus("panel", False, exc.message)
        stuck = [name for name, pin in (("cast", pins.button_cast), ("return", pins.button_return)) if not levels[pin]]
        if stuck:
            return DeviceStatus(
                "panel", False, f"{' and '.join(stuck)} button reads pressed with nobody pressing: stuck or shorted"
            )
        return DeviceStatus("panel", True, "lamps pulsed; cast and return buttons released")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._io.close()  # lamps off, pins released

    def _light(self, lamp: str | None) -> None:
        for name, pin in self._lamps.items():
            self._io.write(pin, name == lamp)

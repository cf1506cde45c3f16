"""The device set the firmware runs on, and the factory that builds the real one from settings."""

from __future__ import annotations

from dataclasses import dataclass

from config.device import DeviceSettings
from hal.camera import BallotCamera
from hal.clock import Clock, SystemClock
from hal.errors import DeviceStatus, HalError
from hal.feeder import Feeder
from hal.panel import VoterPanel
from hal.printer import Printer
from hal.switches import Switches


@dataclass
class DeviceSet:
    camera: BallotCamera
    feeder: Feeder
    panel: VoterPanel
    printer: Printer
    switches: Switches
    clock: Clock

    def self_test(self) -> list[DeviceStatus]:
        """Every device's self-test (Art. 11/20). A device that raises is reported as failed, with its
        message; names are the message-catalogue keys (device.<name>) the reports translate."""
        results = []
        for name, dev in (("ballot_camera", self.camera), ("feeder", self.feeder), ("panel", self.panel),
                          ("printer", self.printer), ("switches", self.switches)):
            try:
                results.append(dev.self_test())
            except HalError as exc:
                results.append(DeviceStatus(name, False, exc.message))
        return results

    def close(self) -> None:
        for dev in (self.camera, self.feeder, self.panel, self.printer, self.switches):
            dev.close()


def build_pi_devices(settings: DeviceSettings) -> DeviceSet:
    """The real devices on a Raspberry Pi. Each driver imports its hardware library only here."""
    from hal.drivers.escpos_printer import EscPosPrinter
    from hal.drivers.gpio_feeder import GpioFeeder
    from hal.drivers.gpio_panel import GpioButtonPanel
    from hal.drivers.gpio_switches import GpioSwitches
    from hal.drivers.picamera import PiBallotCamera

    clock = SystemClock()
    return DeviceSet(
        camera=PiBallotCamera(settings.camera),
        feeder=GpioFeeder(settings.feeder, clock=clock, chip=settings.gpio_chip),
        panel=GpioButtonPanel(settings.panel, clock=clock, chip=settings.gpio_chip),
        printer=EscPosPrinter(settings.printer),
        switches=GpioSwitches(settings.switches, clock=clock, chip=settings.gpio_chip),
        clock=clock,
    )

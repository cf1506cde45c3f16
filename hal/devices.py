"""The device set the firmware runs on, and the factory that builds the real one from settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from config.device import DeviceSettings
from hal.camera import BallotCamera
from hal.clock import Clock, SystemClock
from hal.document_reader import DocumentReader
from hal.errors import DeviceStatus, HalError
from hal.feeder import Feeder
from hal.fingerprint import FingerprintSensor
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
        return self_tests((("ballot_camera", self.camera), ("feeder", self.feeder), ("panel", self.panel),
                           ("printer", self.printer), ("switches", self.switches)))

    def close(self) -> None:
        for dev in (self.camera, self.feeder, self.panel, self.printer, self.switches):
            dev.close()


class _SelfTesting(Protocol):
    def self_test(self) -> DeviceStatus: ...


def self_tests(devices: Iterable[tuple[str, _SelfTesting]]) -> list[DeviceStatus]:
    """Each device's self-test in turn; a device that raises is reported as failed with its message, under
    its message-catalogue name (device.<name>), and the others are still checked."""
    results = []
    for name, dev in devices:
        try:
            results.append(dev.self_test())
        except HalError as exc:
            results.append(DeviceStatus(name, False, exc.message))
    return results


@dataclass
class AuthDeviceSet:
    """The authentication desk's devices (pilots 1 and 3). Apart from the scanner's DeviceSet: they belong
    to the auth service, on the other side of the secrecy wall."""

    document_reader: DocumentReader
    fingerprint: FingerprintSensor

    def self_test(self) -> list[DeviceStatus]:
        return self_tests((("document_reader", self.document_reader), ("fingerprint_sensor", self.fingerprint)))

    def close(self) -> None:
        """Closing the sensor empties its template flash (hal.fingerprint); both are closed even if one fails."""
        try:
            self.fingerprint.close()
        finally:
            self.document_reader.close()


_SUFFIXES = {"crlf": b"\r\n", "cr": b"\r", "lf": b"\n", "etx": b"\x03", "none": None}


def build_pi_auth_devices(settings: DeviceSettings) -> AuthDeviceSet:
    """The real authentication devices. A device that cannot be opened raises HalError naming its port."""
    from hal.drivers.document_reader_serial import (
        DocumentReaderSettings,
        SerialDocumentReader,
    )
    from hal.drivers.fingerprint_uart import UartFingerprintSensor

    r = settings.document_reader
    reader = SerialDocumentReader(DocumentReaderSettings(port=r.port, baudrate=r.baudrate, suffix=_SUFFIXES[r.suffix],
                                                         inter_char_timeout_s=r.inter_char_timeout_s))
    try:
        sensor = UartFingerprintSensor(settings.fingerprint)
    except HalError:
        reader.close()
        raise
    return AuthDeviceSet(document_reader=reader, fingerprint=sensor)


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

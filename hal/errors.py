"""Errors and status shared by every device interface."""

from __future__ import annotations

from dataclasses import dataclass


class HalError(RuntimeError):
    """A device failed. `remedy` tells the operator what to do, in plain words (English; the firmware
    maps `code` to the station's language for the panel and the printed log)."""

    code = "device_error"

    def __init__(self, message: str, remedy: str = "call the operator") -> None:
        super().__init__(f"{message} -- {remedy}")
        self.message = message
        self.remedy = remedy


class HardwareUnavailable(HalError):
    """The driver's hardware library or device node is missing (e.g. running a Pi driver off a Pi)."""

    code = "hardware_unavailable"


@dataclass(frozen=True)
class DeviceStatus:
    """Result of a device self-test, printed on the self-test and zero reports."""

    device: str
    ok: bool
    detail: str

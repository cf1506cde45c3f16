"""Seal and lid switches (tamper evidence), status LEDs and the buzzer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from hal.errors import DeviceStatus


class Indicator(StrEnum):
    READY = "ready"  # green: insert a ballot
    BUSY = "busy"  # amber: working
    ATTENTION = "attention"  # red: committee needed


@dataclass(frozen=True)
class SealState:
    seal_intact: bool
    lid_closed: bool


@runtime_checkable
class Switches(Protocol):
    def read(self) -> SealState: ...

    def set_indicator(self, indicator: Indicator, on: bool) -> None: ...

    def beep(self, times: int = 1) -> None: ...

    def self_test(self) -> DeviceStatus: ...

    def close(self) -> None: ...

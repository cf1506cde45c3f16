"""Feed mechanism: rollers pull a ballot in, hold it at the imaging position, then drop it into the
box or push it back to the voter. Paper sensors at entry, imaging position and exit; double-sheet,
box-full and cover sensors.

Motor actions are blocking and confirm themselves by the sensors; when the sensors do not confirm
within the action's time budget the action raises, and the firmware's ballot state table decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hal.errors import DeviceStatus, HalError


class FeederError(HalError):
    code = "feeder_error"


class PaperJam(FeederError):
    """Paper did not reach the sensor it should have within the time budget."""

    code = "paper_jam"


class DoubleSheet(FeederError):
    code = "double_sheet"


class BoxFull(FeederError):
    code = "box_full"


class CoverOpen(FeederError):
    code = "cover_open"


@dataclass(frozen=True)
class FeederSensors:
    """Debounced state of every paper-path sensor (True = paper present / condition active)."""

    entry: bool = False
    imaging: bool = False
    exit: bool = False
    double_sheet: bool = False
    box_full: bool = False
    cover_open: bool = False


@runtime_checkable
class Feeder(Protocol):
    def sensors(self) -> FeederSensors: ...

    def wait_for_ballot(self, timeout_s: float) -> bool:
        """Block until paper is at the entry sensor (True) or the timeout passes (False)."""
        ...

    def take_in(self) -> None:
        """Pull the ballot from entry to the imaging position and hold it there.
        Raises PaperJam, DoubleSheet, CoverOpen."""
        ...

    def drop_into_box(self) -> None:
        """Move the held ballot past the exit sensor into the box; returns once the exit sensor has
        seen it pass. Raises BoxFull (before moving), PaperJam (stuck in the exit path), CoverOpen."""
        ...

    def return_to_voter(self) -> None:
        """Push the held ballot back out of the entry slot. Raises PaperJam, CoverOpen."""
        ...

    def self_test(self) -> DeviceStatus: ...

    def close(self) -> None: ...

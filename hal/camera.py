"""Ballot camera: photographs the ballot held still under LED light at the imaging position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hal.errors import DeviceStatus, HalError


class CaptureError(HalError):
    code = "capture_failed"


@dataclass(frozen=True)
class BallotImage:
    """An RGB image (H x W x 3, uint8) and its calibrated resolution in dots per inch."""

    pixels: np.ndarray
    dpi: float
    white_level: float | None = None  # calibrated paper white (see config.device.CameraSettings)

    def __post_init__(self) -> None:
        if self.pixels.dtype != np.uint8 or self.pixels.ndim not in (2, 3):
            raise ValueError(f"BallotImage needs a uint8 H x W (x 3) array, got {self.pixels.dtype} {self.pixels.shape}")


@runtime_checkable
class BallotCamera(Protocol):
    def capture(self) -> BallotImage:
        """Take one still of the ballot at the imaging position. Raises CaptureError."""
        ...

    def self_test(self) -> DeviceStatus: ...

    def close(self) -> None: ...

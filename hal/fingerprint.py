"""Fingerprint sensor: captures one greyscale image of a finger for the auth service to extract and
match. The interface is the image, not the module's own matcher: templates enrolled elsewhere (IDDEEA,
the register extract) are compared in biometrics/, so the sensor only has to deliver pixels.

Two kinds of reader fit it:
- a UART module (R30x / AS608 / ZFM family, hal.drivers.fingerprint_uart): capture = poll GenImg until
  a finger is on, then UpImage in data packets; it also keeps templates in its own flash, which
  clear_templates() empties (the register's templates never belong there);
- a USB optical reader that delivers a whole frame: capture = wait for a frame with a finger on it;
  handshake() reports what it can (model, frame size, dpi) and template_count() is 0 when it has no
  template flash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from hal.errors import DeviceStatus, HalError


@dataclass(frozen=True)
class SensorInfo:
    """What the sensor said about itself at the handshake. `parameters` holds the module's system
    parameters by name (for the UART family: status_register, system_id, security_level, address,
    packet_bytes, baudrate), printed on the self-test report."""

    model: str
    image_width: int
    image_height: int
    dpi: float
    template_capacity: int  # 0 for a reader without a template flash
    parameters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FingerImage:
    """One capture: greyscale pixels (uint8, H x W, 0 = black ridge on a bright background as the
    sensor delivers it) and the sensor's resolution."""

    pixels: np.ndarray
    dpi: float

    def __post_init__(self) -> None:
        if self.pixels.dtype != np.uint8 or self.pixels.ndim != 2 or 0 in self.pixels.shape:
            raise ValueError(
                f"a finger image is a non-empty uint8 H x W array, got {self.pixels.dtype} {self.pixels.shape}"
            )
        if self.dpi <= 0:
            raise ValueError(f"a finger image needs a positive resolution, got {self.dpi} dpi")


class FingerprintError(HalError):
    code = "fingerprint_error"


class NoFinger(FingerprintError):
    """No finger on the sensor when one was needed."""

    code = "no_finger"


class CaptureTimeout(NoFinger):
    """capture() waited its whole timeout and no finger came."""

    code = "capture_timeout"


class SensorBusy(FingerprintError):
    """The sensor answered, but only after the bounded wait: it was still busy."""

    code = "sensor_busy"


class FrameError(FingerprintError):
    """An answer that cannot be trusted: short or garbled frame, bad checksum, wrong header or address."""

    code = "sensor_frame_error"


class SensorNotResponding(FingerprintError):
    """Nothing came back: the module is off, unplugged, on another baud rate or another address."""

    code = "sensor_not_responding"


class SensorError(FingerprintError):
    """The module refused a command; `confirmation` is its confirmation code, `meaning` what it means."""

    code = "sensor_error"

    def __init__(self, message: str, remedy: str, confirmation: int, meaning: str) -> None:
        super().__init__(message, remedy)
        self.confirmation = confirmation
        self.meaning = meaning


@runtime_checkable
class FingerprintSensor(Protocol):
    def handshake(self) -> SensorInfo:
        """Open the conversation (password check where the module has one) and read what the sensor
        is. Raises SensorNotResponding, SensorError (e.g. wrong password), FrameError."""
        ...

    def finger_present(self) -> bool:
        """Whether a finger is on the sensor now (one quick look, no waiting)."""
        ...

    def capture(self, timeout_s: float) -> FingerImage:
        """Wait up to `timeout_s` for a finger, capture it and deliver the whole image. Raises
        CaptureTimeout, SensorBusy, FrameError, SensorNotResponding, SensorError."""
        ...

    def template_count(self) -> int:
        """Templates stored in the sensor's own flash (0 for a reader without one)."""
        ...

    def clear_templates(self) -> None:
        """Empty the sensor's own template flash and check that it is empty."""
        ...

    def self_test(self) -> DeviceStatus: ...

    def close(self) -> None:
        """Release the sensor; a sensor with a template flash is left empty (issue 9, item 6)."""
        ...

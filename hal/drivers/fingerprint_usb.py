"""A USB optical fingerprint reader: the shape of its driver over a generic frame source.

A USB reader delivers whole frames (vendor SDK, a libfprint image device, a UVC camera behind a
prism); it has no template flash. Whatever library talks to the device sits behind `FrameSource`,
imported lazily by the code that builds the source, so this class holds no hardware import and the
same FingerprintSensor conformance suite runs on it with a fake source.

No production source ships yet: the pilots use the UART module (hal.drivers.fingerprint_uart).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from hal.errors import DeviceStatus
from hal.fingerprint import (
    CaptureTimeout,
    FingerImage,
    FingerprintError,
    FrameError,
    SensorInfo,
    SensorNotResponding,
)


@dataclass(frozen=True)
class ReaderDescription:
    model: str
    width: int
    height: int
    dpi: float


T = TypeVar("T")


class FrameSource(Protocol):
    """The device library's side of a USB reader."""

    def describe(self) -> ReaderDescription:
        """Model, frame size and resolution (raises OSError when the reader is gone)."""
        ...

    def finger_on(self) -> bool:
        """Whether the reader sees a finger now (raises OSError when the reader is gone)."""
        ...

    def wait_for_frame(self, timeout_s: float) -> np.ndarray | None:
        """A frame with a finger on it (uint8 H x W), or None when none came within timeout_s."""
        ...

    def close(self) -> None: ...


class UsbFingerprintReader:
    """hal.fingerprint.FingerprintSensor over a FrameSource."""

    def __init__(self, source: FrameSource, name: str = "USB fingerprint reader") -> None:
        self._source = source
        self._name = name
        self._description: ReaderDescription | None = None

    def handshake(self) -> SensorInfo:
        d = self._call(self._source.describe)
        self._description = d
        return SensorInfo(d.model, d.width, d.height, d.dpi, template_capacity=0)

    def finger_present(self) -> bool:
        return self._call(self._source.finger_on)

    def capture(self, timeout_s: float) -> FingerImage:
        if self._description is None:
            self.handshake()
        d = self._description
        assert d is not None
        frame = self._call(lambda: self._source.wait_for_frame(timeout_s))
        if frame is None:
            raise CaptureTimeout(
                f"no finger on the fingerprint sensor within {timeout_s:g} s",
                "ask the voter to place the finger flat on the sensor, then capture again",
            )
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.shape != (d.height, d.width):
            raise FrameError(
                f"the {self._name} delivered a {frame.dtype} {frame.shape} frame, expected uint8 ({d.height}, {d.width})",
                "unplug the reader and plug it in again; if it persists, replace the reader",
            )
        return FingerImage(frame, d.dpi)

    def template_count(self) -> int:
        return 0  # no template flash on the reader

    def clear_templates(self) -> None:
        return None  # nothing to empty

    def self_test(self) -> DeviceStatus:
        try:
            info = self.handshake()
        except FingerprintError as exc:
            return DeviceStatus("fingerprint_sensor", False, exc.message)
        return DeviceStatus(
            "fingerprint_sensor", True, f"{info.model} answering, {info.image_width} x {info.image_height} at {info.dpi:g} dpi"
        )

    def close(self) -> None:
        self._source.close()

    def _call(self, step: Callable[[], T]) -> T:
        try:
            return step()
        except OSError as exc:
            raise SensorNotResponding(
                f"lost the {self._name}: {exc}", "check that the reader is plugged in, then try again"
            ) from exc

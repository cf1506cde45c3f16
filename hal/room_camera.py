"""Room camera: records the polling station (CEC pilot 4). Its frames feed the video service's recorder.

Every frame is planar I420 (YUV 4:2:0: a full-size Y plane, then quarter-size U and V planes), the
format the H.264 encoders take without a conversion and the one picamera2 gives natively.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hal.errors import DeviceStatus, HalError


class CameraDisconnected(HalError):
    """The camera stopped answering (USB unplugged, CSI cable, driver reset). The recorder records a gap
    and tries to reopen it."""

    code = "room_camera_disconnected"


@dataclass
class RoomFrame:
    """One I420 frame. `sensor_ns` is the sensor's own timestamp (picamera2's SensorTimestamp, V4L2's
    buffer time, or the simulated clock), monotonic, in nanoseconds."""

    i420: np.ndarray  # (height * 3 // 2, width) uint8: Y rows, then U rows, then V rows
    width: int
    height: int
    sensor_ns: int

    def __post_init__(self) -> None:
        if self.i420.dtype != np.uint8 or self.i420.shape != (self.height * 3 // 2, self.width):
            raise ValueError(f"RoomFrame needs a uint8 I420 array of {self.height * 3 // 2} x {self.width}, got "
                             f"{self.i420.dtype} {self.i420.shape}")
        if not self.i420.flags.c_contiguous:  # the planes are views into it: writes must land in the frame
            self.i420 = np.ascontiguousarray(self.i420)

    @property
    def y(self) -> np.ndarray:
        return self.i420[: self.height]

    @property
    def u(self) -> np.ndarray:
        return i420_planes(self.i420, self.width, self.height)[1]

    @property
    def v(self) -> np.ndarray:
        return i420_planes(self.i420, self.width, self.height)[2]


def i420_planes(i420: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a contiguous (height * 3 / 2, width) I420 array. The chroma planes
    are cut from the flat array: where height / 2 is odd (e.g. 1440 x 270) a chroma plane does not start
    or end on a row of the array, so cutting it by rows would fail or mix the planes."""
    flat = i420.reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    return (flat[:luma].reshape(height, width), flat[luma: luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma: luma + 2 * chroma].reshape(height // 2, width // 2))


@runtime_checkable
class RoomCamera(Protocol):
    width: int
    height: int
    fps: float

    def read(self) -> RoomFrame:
        """The next frame, waiting at most about two frame periods. Raises CameraDisconnected."""
        ...

    def reopen(self) -> None:
        """Try to open the camera again after CameraDisconnected. Raises CameraDisconnected."""
        ...

    def self_test(self) -> DeviceStatus: ...

    def close(self) -> None: ...

"""A protocol twin of picamera2 for the room camera's driver (hal/drivers/room_camera.py: PiRoomCamera).

It stands where the `picamera2` module does, at the API the driver uses: `Picamera2(camera_num)`,
`create_video_configuration(main=..., controls=..., buffer_count=...)`, `configure`, `start`,
`capture_request(wait=...)` giving a request with `make_array("main")`, `get_metadata()` and `release()`,
then `stop` and `close`. The buffers are laid out as libcamera hands out YUV420 on a Pi: the Y plane's rows
padded to a stride aligned to 64 bytes, the U and V planes after it at half that stride, the whole buffer
seen by `make_array` as (height * 3 / 2) rows of the Y stride. The frames are the synthetic scene's
(simulator.scene), their SensorTimestamp in nanoseconds.

Faults as on a Pi: a camera number with no camera, or an unplugged ribbon, makes `Picamera2()` raise
IndexError (picamera2's "list index out of range"); an unplugged camera's `capture_request` raises
RuntimeError ("Camera frontend has timed out!") until it is plugged in again (`unplug(seconds)` on the
simulated clock).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from simulator.scene import SyntheticRoomCamera

STRIDE_ALIGN = 64  # bytes: the Pi ISP's row alignment for the Y plane


class Picamera2Twin:
    def __init__(self, scene: SyntheticRoomCamera, clock: Any, cameras: tuple[int, ...] = (0, 1)) -> None:
        self.scene, self.clock, self.cameras = scene, clock, cameras
        self.unplugged_until: float | None = None
        self.configs: list[dict[str, Any]] = []
        self.opened = self.closed = 0
        self.module = self._module()

    def unplug(self, seconds: float) -> None:
        """The ribbon cable is out for `seconds` of the simulated clock."""
        self.unplugged_until = self.clock.monotonic() + seconds

    def _unplugged(self) -> bool:
        return self.unplugged_until is not None and self.clock.monotonic() < self.unplugged_until

    def _module(self) -> types.ModuleType:
        twin = self
        module = types.ModuleType("picamera2")

        class _Request:
            def __init__(self, buffer: np.ndarray, sensor_ns: int) -> None:
                self._buffer, self._ns, self.released = buffer, sensor_ns, False

            def make_array(self, name: str) -> np.ndarray:
                assert name == "main" and not self.released, "make_array after release"
                return self._buffer

            def get_metadata(self) -> dict[str, Any]:
                return {"SensorTimestamp": self._ns, "FrameDuration": round(1e6 / twin.scene.fps)}

            def release(self) -> None:
                self.released = True

        class Picamera2:
            def __init__(self, camera_num: int = 0) -> None:
                if camera_num not in twin.cameras or twin._unplugged():
                    raise IndexError("list index out of range")
                self.camera_num, self.started, self.config = camera_num, False, None
                twin.opened += 1

            def create_video_configuration(self, main: dict[str, Any], controls: dict[str, Any] | None = None,
                                           buffer_count: int = 6) -> dict[str, Any]:
                return {"main": dict(main), "controls": dict(controls or {}), "buffer_count": buffer_count}

            def configure(self, config: dict[str, Any]) -> None:
                size, fmt = tuple(config["main"]["size"]), config["main"]["format"]
                if fmt != "YUV420" or size != (twin.scene.width, twin.scene.height):
                    raise RuntimeError(f"the twin's sensor mode is {twin.scene.width}x{twin.scene.height} YUV420, "
                                       f"not {size[0]}x{size[1]} {fmt}")
                self.config = config
                twin.configs.append(config)

            def start(self) -> None:
                assert self.config is not None, "configure() before start()"
                self.started = True

            def capture_request(self, wait: float | None = None) -> _Request:
                assert self.started, "start() before capture_request()"
                if twin._unplugged():
                    raise RuntimeError("Camera frontend has timed out!")
                frame = twin.scene.read()
                return _Request(_strided_yuv420(frame.y, frame.u, frame.v), frame.sensor_ns)

            def stop(self) -> None:
                self.started = False

            def close(self) -> None:
                twin.closed += 1

        module.Picamera2 = Picamera2  # type: ignore[attr-defined]
        return module


def _strided_yuv420(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The planes in one buffer as libcamera lays them out: Y rows at `stride`, U then V at stride / 2."""
    h, w = y.shape
    stride = -(-w // STRIDE_ALIGN) * STRIDE_ALIGN
    flat = np.full(stride * h * 3 // 2, 0xA5, np.uint8)  # padding bytes hold garbage, as a real buffer's may
    flat[: stride * h].reshape(h, stride)[:, :w] = y
    chroma = stride // 2 * (h // 2)
    flat[stride * h: stride * h + chroma].reshape(h // 2, stride // 2)[:, : w // 2] = u
    flat[stride * h + chroma:].reshape(h // 2, stride // 2)[:, : w // 2] = v
    return flat.reshape(h * 3 // 2, stride)


@contextmanager
def installed_picamera2(twin: Picamera2Twin) -> Iterator[types.ModuleType]:
    """`import picamera2` gives the twin's module for the duration of the block."""
    saved = sys.modules.get("picamera2")
    sys.modules["picamera2"] = twin.module
    try:
        yield twin.module
    finally:
        if saved is None:
            sys.modules.pop("picamera2", None)
        else:
            sys.modules["picamera2"] = saved

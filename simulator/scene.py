"""The synthetic polling station: a room camera twin (hal.room_camera.RoomCamera) for simulation.

People walk from the door to the committee's desk, into a booth, to the ballot box and out; inside each
booth a voter marks a ballot (bright paper, dark marks that change every second), and the box's slot
shows each ballot going in. Those are exactly what the privacy masks must hide: `default_masks()` are the
polygons over the two booths and the slot for this scene, in pixels of the given frame size.

Seeded: the same seed gives the same frames. Time is the frame count (sensor_ns = index / fps), and the
scene advances an AcceleratedClock with it, so a recording runs faster than real time. Faults can be
injected: a disconnect (read() raises CameraDisconnected until reopen() after the outage) and a stall
(frames stop coming for a while).
"""

from __future__ import annotations

import bisect
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from hal.errors import DeviceStatus
from hal.room_camera import CameraDisconnected, RoomFrame, i420_planes

# Geometry as fractions of the frame (x0, y0, x1, y1)
BOOTHS = ((0.62, 0.16, 0.74, 0.64), (0.78, 0.16, 0.90, 0.64))
BOX = (0.40, 0.56, 0.52, 0.86)
SLOT = (0.43, 0.56, 0.49, 0.59)
DESK = (0.10, 0.50, 0.30, 0.62)
NOISE_TILES = 6  # sensor noise: a few precomputed planes, cycled (drawing fresh noise costs ~5 ms a frame)
NOISE_LEVEL = 2  # +-2 luma levels, a lit room on a Camera Module 3


def default_masks(width: int, height: int) -> list[dict[str, Any]]:
    """Masks over the booths (with a margin of 2 % of the frame) and the slot (a margin of 3 %)."""
    def poly(box: tuple[float, float, float, float], margin: float) -> list[list[int]]:
        x0, y0, x1, y1 = box
        xs = (max(0, round((x0 - margin) * width)), min(width, round((x1 + margin) * width)))
        ys = (max(0, round((y0 - margin) * height)), min(height, round((y1 + margin) * height)))
        return [[xs[0], ys[0]], [xs[1], ys[0]], [xs[1], ys[1]], [xs[0], ys[1]]]

    return [{"name": "booth-1", "polygon": poly(BOOTHS[0], 0.02)},
            {"name": "booth-2", "polygon": poly(BOOTHS[1], 0.02)},
            {"name": "ballot-box-slot", "polygon": poly(SLOT, 0.03)}]


@dataclass
class _Walker:
    start_s: float
    path: list[tuple[float, float]]
    speed: float  # fraction of the frame width per second
    shade: int
    booth: int


class RealTimeScene:
    """The synthetic scene as a camera delivers it (the video service's source "synthetic"): read() waits
    for the next frame period on the monotonic clock and stamps the frame with it, as a sensor does."""

    def __init__(self, scene: SyntheticRoomCamera) -> None:
        self.scene = scene
        self.width, self.height, self.fps = scene.width, scene.height, scene.fps
        self._next = time.monotonic()

    def read(self) -> RoomFrame:
        self._next = max(self._next + 1 / self.fps, time.monotonic() - 1 / self.fps)  # late: never a burst
        time.sleep(max(0.0, self._next - time.monotonic()))
        frame = self.scene.read()
        frame.sensor_ns = time.monotonic_ns()
        return frame

    def reopen(self) -> None:
        self.scene.reopen()

    def self_test(self) -> DeviceStatus:
        return self.scene.self_test()

    def close(self) -> None:
        self.scene.close()


class SyntheticRoomCamera:
    def __init__(self, width: int, height: int, fps: float, *, seed: int = 1, clock: Any = None,
                 start_frame: int = 0) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.clock = clock
        self.index = start_frame
        self.rng = random.Random(f"{seed}:scene")
        self.disconnect_at: int | None = None  # frame index at which the camera drops off
        self.outage_s = 0.0
        self.stall_at: int | None = None  # frame index at which frames stop for stall_s
        self.stall_s = 0.0
        self.connected = True
        self._background = self._paint_background()
        nrng = np.random.default_rng(seed)
        self._noise = [nrng.integers(-NOISE_LEVEL, NOISE_LEVEL + 1, (height, width), dtype=np.int16)
                       for _ in range(NOISE_TILES)]
        self._walkers = self._plan_walkers()
        self._starts = [w.start_s for w in self._walkers]
        self._longest_s = max(self._duration(w) for w in self._walkers)

    # -- RoomCamera ------------------------------------------------------------------------------
    def read(self) -> RoomFrame:
        if not self.connected:
            raise CameraDisconnected("room camera: no frames (simulated disconnect)", "check the camera's cable")
        if self.disconnect_at is not None and self.index >= self.disconnect_at:
            self.disconnect_at, self.connected = None, False
            raise CameraDisconnected("room camera: no frames (simulated disconnect)", "check the camera's cable")
        if self.stall_at is not None and self.index >= self.stall_at:
            self.stall_at = None
            self.index += round(self.stall_s * self.fps)  # frames the sensor never delivered
        t = self.index / self.fps
        frame = RoomFrame(self._render(t), self.width, self.height, round(t * 1e9))
        self.index += 1
        if self.clock is not None:
            self.clock.sleep(1 / self.fps)
        return frame

    def reopen(self) -> None:
        if not self.connected:
            if self.clock is not None:
                self.clock.sleep(self.outage_s)
            self.index += round(self.outage_s * self.fps)
            self.connected = True

    def self_test(self) -> DeviceStatus:
        return DeviceStatus("room_camera", self.connected, f"synthetic scene {self.width}x{self.height} "
                            f"@ {self.fps:g} fps")

    def close(self) -> None:
        """Nothing to release: a twin holds no device or OS resource."""

    # -- the scene -------------------------------------------------------------------------------
    def _px(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = box
        return round(x0 * self.width), round(y0 * self.height), round(x1 * self.width), round(y1 * self.height)

    def _paint_background(self) -> np.ndarray:
        w, h = self.width, self.height
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = (180, 172, 160)  # walls
        img[int(h * 0.66):] = (110, 100, 92)  # floor
        for i in range(0, w, max(8, w // 24)):  # floor tiles: texture the encoder must carry
            cv2.line(img, (i, int(h * 0.66)), (i - w // 8, h), (90, 84, 78), 1)
        cv2.rectangle(img, self._px(DESK)[:2], self._px(DESK)[2:], (70, 50, 30), -1)
        for booth in BOOTHS:
            x0, y0, x1, y1 = self._px(booth)
            cv2.rectangle(img, (x0, y0), (x1, y1), (60, 60, 140), -1)
            cv2.rectangle(img, (x0 + 3, y0 + 3), (x1 - 3, y1 - 3), (200, 200, 210), -1)
        x0, y0, x1, y1 = self._px(BOX)
        cv2.rectangle(img, (x0, y0), (x1, y1), (40, 40, 40), -1)
        sx0, sy0, sx1, sy1 = self._px(SLOT)
        cv2.rectangle(img, (sx0, sy0), (sx1, sy1), (5, 5, 5), -1)
        cv2.rectangle(img, (int(w * 0.02), int(h * 0.2)), (int(w * 0.08), int(h * 0.66)), (90, 60, 40), -1)  # door
        return cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420)

    def _plan_walkers(self) -> list[_Walker]:
        walkers = []
        t = 0.0
        for i in range(400):  # a voter every ~45 s on average: ~80 an hour at the busiest
            t += self.rng.uniform(15, 75)
            booth = i % 2
            bx = (BOOTHS[booth][0] + BOOTHS[booth][2]) / 2
            path = [(0.05, 0.70), (0.20, 0.72), (bx, 0.60), (bx, 0.60), (0.46, 0.80), (0.05, 0.75)]
            walkers.append(_Walker(t, path, self.rng.uniform(0.05, 0.09), self.rng.randint(40, 200), booth))
        return walkers

    def _render(self, t: float) -> np.ndarray:
        i420 = self._background.copy()
        w, h = self.width, self.height
        y = i420[:h]
        span = 3600.0 * 14  # walkers repeat over the day
        tt = t % span
        first = bisect.bisect_left(self._starts, tt - self._longest_s)
        for walker in self._walkers[first: bisect.bisect_right(self._starts, tt)]:  # those in the room now
            pos = self._position(walker, tt)
            if pos is None:
                continue
            (px, py), in_booth = pos
            cx, cy = round(px * w), round(py * h)
            r = max(2, round(0.025 * w))
            cv2.ellipse(y, (cx, cy - 3 * r), (r, round(1.6 * r)), 0, 0, 360, walker.shade, -1)  # body
            cv2.circle(y, (cx, cy - 5 * r), max(1, round(0.6 * r)), min(235, walker.shade + 30), -1)  # head
            if in_booth:
                self._ballot_in_booth(i420, walker.booth, t)
        # a ballot going into the slot once a minute
        if int(t) % 60 < 2:
            sx0, sy0, sx1, sy1 = self._px(SLOT)
            y[sy0:sy1 + 1, sx0:sx1] = 235
        noise = self._noise[int(t * self.fps) % NOISE_TILES]
        np.add(y, noise, out=y, casting="unsafe")  # +-2 around mid-greys: no wrap on this scene's levels
        return i420

    @staticmethod
    def _duration(walker: _Walker) -> float:
        return sum(40.0 if a == b else math.hypot(b[0] - a[0], b[1] - a[1]) / walker.speed
                   for a, b in zip(walker.path, walker.path[1:]))

    def _position(self, walker: _Walker, t: float) -> tuple[tuple[float, float], bool] | None:
        dt = t - walker.start_s
        if dt < 0:
            return None
        for (x0, y0), (x1, y1) in zip(walker.path, walker.path[1:]):
            if (x0, y0) == (x1, y1):  # marking the ballot: 40 s in the booth
                if dt < 40:
                    return (x0, y0), True
                dt -= 40
                continue
            length = math.hypot(x1 - x0, y1 - y0)
            need = length / walker.speed
            if dt < need:
                f = dt / need
                return (x0 + f * (x1 - x0), y0 + f * (y1 - y0)), False
            dt -= need
        return None

    def _ballot_in_booth(self, i420: np.ndarray, booth: int, t: float) -> None:
        """The secret of the vote: a white ballot on the booth's shelf and the marks being made on it."""
        x0, y0, x1, y1 = self._px(BOOTHS[booth])
        y = i420[: self.height]
        bx0, by0 = x0 + (x1 - x0) // 5, y0 + (y1 - y0) // 3
        bx1, by1 = x1 - (x1 - x0) // 5, y1 - (y1 - y0) // 4
        y[by0:by1, bx0:bx1] = 235
        marks = random.Random(f"{booth}:{int(t)}")
        for _ in range(3):
            mx = marks.randint(bx0, max(bx0, bx1 - 4))
            my = marks.randint(by0, max(by0, by1 - 4))
            y[my:my + 4, mx:mx + 4] = 20
        u = i420_planes(i420, self.width, self.height)[1]
        u[by0 // 2: by1 // 2, bx0 // 2: bx1 // 2] = 200  # a coloured ballot (chroma carries it too)

"""A protocol twin of a USB (UVC) room camera for the OpenCV driver (hal/drivers/room_camera.py:
OpenCvRoomCamera), at the level OpenCV itself reads: a device path that delivers a live stream.

A UVC camera at 720p sends Motion-JPEG, one JPEG per frame, each stamped with its capture time. The twin
does the same through a named pipe (a FIFO) at `path`: a writer thread encodes the synthetic scene
(simulator.scene) with PyAV's MJPEG encoder into a Matroska stream, at the camera's own frame rate in real
time, each frame's pts its sensor time in milliseconds. OpenCV opens the path with its FFmpeg backend,
demuxes and decodes the JPEGs itself: nothing of cv2 is replaced.

Faults as a USB camera's: `unplug(after_frames, seconds)` ends the stream after that many frames (the
reader's next read() fails) and removes the node for `seconds` of real time, so opening it again fails
until it is plugged back, when the node is there again and a new stream starts (its timestamps go on
from the sensor's clock, as the kernel's do). `size` other than the settings' is a camera that ignores the
size it is asked for. `written` keeps every I420 frame as the sensor saw it, for the test to compare.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from simulator.scene import SyntheticRoomCamera

MJPEG_QSCALE = 2  # a webcam's JPEG quality is high: about what qscale 2 gives (1 best, 31 worst)


class UvcCameraTwin:
    def __init__(self, path: Path, scene: SyntheticRoomCamera) -> None:
        self.path, self.scene = path, scene
        self.written: list[tuple[int, np.ndarray]] = []  # (sensor_ns, I420) of every frame sent, in order
        self.sessions = 0  # streams opened by a reader (1 + reconnects)
        self._unplug: tuple[int, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uvc-twin", daemon=True)

    def start(self) -> UvcCameraTwin:
        self._plug()
        self._thread.start()
        return self

    def unplug(self, after_frames: int, seconds: float) -> None:
        """After `after_frames` more frames of the current stream: the cable is out for `seconds`."""
        self._unplug = (len(self.written) + after_frames, seconds)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)

    # -- the camera's side ------------------------------------------------------------------------
    def _plug(self) -> None:
        self.path.unlink(missing_ok=True)
        os.mkfifo(self.path)

    def _run(self) -> None:
        while not self._stop.is_set():
            fd = self._wait_for_reader()
            if fd is None:
                return
            self.sessions += 1
            with os.fdopen(fd, "wb", buffering=0) as pipe:
                unplugged = self._stream(pipe)
            if unplugged is not None:
                time.sleep(unplugged)  # the node is gone while the cable is out
                self._plug()

    def _wait_for_reader(self) -> int | None:
        """The write end of the FIFO once a reader has it open (OpenCV opening the camera)."""
        while not self._stop.is_set():
            try:
                return os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.ENOENT):
                    raise
                time.sleep(0.005)  # no reader yet
        return None

    def _stream(self, pipe: object) -> float | None:
        """Frames in real time until stopped (None) or unplugged (the seconds the cable stays out)."""
        os.set_blocking(pipe.fileno(), True)  # type: ignore[attr-defined]
        try:
            container = av.open(pipe, "w", format="matroska")
            stream = container.add_stream("mjpeg", rate=Fraction(self.scene.fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = self.scene.width, self.scene.height, "yuvj420p"
            stream.codec_context.qmin = stream.codec_context.qmax = MJPEG_QSCALE
            stream.time_base = Fraction(1, 1000)
            t0 = time.monotonic()
            sent = 0
            while not self._stop.is_set():
                if self._unplug is not None and len(self.written) >= self._unplug[0]:
                    seconds = self._unplug[1]
                    self._unplug = None
                    self.path.unlink(missing_ok=True)  # the node goes first, then the stream breaks off
                    return seconds
                frame = self.scene.read()
                vf = av.VideoFrame.from_ndarray(frame.i420, format="yuv420p").reformat(format="yuvj420p")
                vf.pts, vf.time_base = frame.sensor_ns // 1_000_000, Fraction(1, 1000)
                for packet in stream.encode(vf):
                    container.mux(packet)
                self.written.append((frame.sensor_ns, frame.i420.copy()))
                sent += 1
                time.sleep(max(0.0, t0 + sent / self.scene.fps - time.monotonic()))
            return None
        except (BrokenPipeError, av.error.FFmpegError, OSError):
            return None  # the reader closed the camera (OpenCV's release())

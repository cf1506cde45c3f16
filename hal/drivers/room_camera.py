"""Room camera drivers: a USB camera through OpenCV (V4L2) and a CSI camera through picamera2.

Both give I420 frames (hal.room_camera.RoomFrame) with the sensor's timestamp. Their libraries are
imported when the camera is opened, so nothing off a Pi needs picamera2.

On a Pi 4 the H.264 encoder can be the SoC's (V4L2 M2M, through picamera2's H264Encoder): then the
frames never come up to Python, and the mask is burnt in by picamera2's `pre_callback` on the same
buffer the encoder reads (PiHardwareH264 below), before the encoder sees it. A Pi 5 has no H.264 block:
frames come up through PiRoomCamera and are encoded by libx264 (video.encoder) on one core.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hal.errors import DeviceStatus, HardwareUnavailable
from hal.room_camera import CameraDisconnected, RoomFrame

READ_TIMEOUT_PERIODS = 3  # a frame later than 3 periods is a lost camera, not jitter


class OpenCvRoomCamera:
    """hal.room_camera.RoomCamera on a USB camera through OpenCV.

    `device` is the camera's V4L2 node (`/dev/video0`, or a /dev/v4l/by-id/ link, which survives the
    camera coming back on another number after an unplug), read with OpenCV's V4L2 backend in Motion-JPEG
    (what UVC cameras send at 720p); any other path or URL is a stream OpenCV's FFmpeg backend opens.
    Frames come as OpenCV decodes them (BGR) and are converted to I420 (BT.601 video range, the range the
    encoder declares). Their time is the capture's own (the V4L2 buffer's timestamp, the stream's pts);
    a backend that gives none is timed by the monotonic clock, never a mix of both."""

    def __init__(self, device: str, width: int, height: int, fps: float) -> None:
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self._cap: Any = None
        self._cv2: Any = None
        self._last: tuple[float, int, int] | None = None  # (stamp ms, frame ns, monotonic ns) of the last frame
        self._open()

    def _open(self) -> None:
        try:
            import cv2
        except ImportError as exc:
            raise HardwareUnavailable(f"OpenCV cannot be imported ({exc})", "pip install opencv-python-headless")
        self._cv2 = cv2
        read_ms = max(1000, round(READ_TIMEOUT_PERIODS * 1000 / self.fps))
        if is_v4l2_node(self.device):
            cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
                cap.set(cv2.CAP_PROP_FPS, self.fps)
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 2)
                cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms)  # V4L2's select() timeout: a hung camera
        else:
            cap = cv2.VideoCapture(self.device, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000,
                                                                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms])
        if not cap.isOpened():
            cap.release()
            raise CameraDisconnected(f"room camera {self.device}: cannot be opened", "check the USB cable")
        self._cap = cap
        self._last = None

    def read(self) -> RoomFrame:
        cv2 = self._cv2
        ok, bgr = self._cap.read() if self._cap is not None else (False, None)
        if not ok or bgr is None:
            raise CameraDisconnected(f"room camera {self.device}: no frame", "check the USB cable")
        h, w = bgr.shape[:2]
        if w % 2 or h % 2:  # no I420 of an odd size; the mask refuses a frame of any other size than its own
            bgr = bgr[: h - h % 2, : w - w % 2]
            h, w = bgr.shape[:2]
        return RoomFrame(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), w, h, self._stamp())

    def _stamp(self) -> int:
        """The frame's time in ns: the capture's timestamp while it moves forward; once it does not (a
        backend without timestamps gives 0 every time), the monotonic clock's time since the last frame."""
        stamp_ms = float(self._cap.get(self._cv2.CAP_PROP_POS_MSEC))
        mono = time.monotonic_ns()
        last = self._last
        if last is None or stamp_ms > last[0]:
            ns = round(stamp_ms * 1e6) if last is None else last[1] + round((stamp_ms - last[0]) * 1e6)
        else:
            ns = last[1] + max(1, mono - last[2])
        self._last = (max(stamp_ms, last[0]) if last else stamp_ms, ns, mono)
        return ns

    def reopen(self) -> None:
        self.close()
        self._open()

    def self_test(self) -> DeviceStatus:
        return _frame_check(self, self.device)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def is_v4l2_node(device: str) -> bool:
    """A V4L2 device node (what a USB camera is on Linux), as opposed to a file, pipe or URL."""
    path = Path(device)
    return device.startswith("/dev/") and (not path.exists() or path.is_char_device())


class PiRoomCamera:
    """hal.room_camera.RoomCamera on a CSI camera through picamera2 (YUV420 main stream; the Pi 5 path)."""

    def __init__(self, camera_num: int, width: int, height: int, fps: float) -> None:
        self.camera_num, self.width, self.height, self.fps = camera_num, width, height, fps
        self._cam: Any = None
        self._open()

    def _open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise HardwareUnavailable(f"picamera2 cannot be imported ({exc})",
                                      "install python3-picamera2 with apt (venv with --system-site-packages)")
        try:
            cam = Picamera2(self.camera_num)
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "YUV420"},
                controls={"FrameDurationLimits": (round(1e6 / self.fps),) * 2}, buffer_count=4)
            cam.configure(config)
            cam.start()
        except Exception as exc:  # noqa: BLE001 - picamera2 raises IndexError / RuntimeError: no camera
            raise CameraDisconnected(f"room camera {self.camera_num}: {type(exc).__name__}: {exc}",
                                     "check the camera ribbon cable") from None
        self._cam = cam

    def read(self) -> RoomFrame:
        try:
            request = self._cam.capture_request(wait=READ_TIMEOUT_PERIODS / self.fps)
        except Exception as exc:  # noqa: BLE001 - a timeout or a camera reset
            raise CameraDisconnected(f"room camera {self.camera_num}: no frame ({exc})", "check the cable") from None
        try:
            yuv = request.make_array("main")  # (height * 3 / 2, stride) uint8: the I420 planes
            ns = int(request.get_metadata()["SensorTimestamp"])
        finally:
            request.release()
        return RoomFrame(i420_from_strided(yuv, self.width, self.height), self.width, self.height, ns)

    def reopen(self) -> None:
        self.close()
        self._open()

    def self_test(self) -> DeviceStatus:
        return _frame_check(self, f"CSI {self.camera_num}")

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None


def _frame_check(camera: OpenCvRoomCamera | PiRoomCamera, where: str) -> DeviceStatus:
    """A room camera's self-test: one frame read of the configured size; no frame, or a frame of another
    size (the masks are drawn for the configured one), is a failed check naming why."""
    try:
        frame = camera.read()
    except CameraDisconnected as exc:
        return DeviceStatus("room_camera", False, exc.message)
    if (frame.width, frame.height) != (camera.width, camera.height):
        return DeviceStatus("room_camera", False, f"{where} gives {frame.width}x{frame.height} frames, the "
                            f"settings (and the masks) are {camera.width}x{camera.height}: set video.width and "
                            "video.height to a size the camera offers and redraw the masks")
    return DeviceStatus("room_camera", True, f"{where} {frame.width}x{frame.height}")


def yuv420_planes(buffer: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views (writable, no copy) of the Y, U and V planes in picamera2's YUV420 buffer, whose rows are
    padded to a stride (a multiple of 64 bytes on the Pi's ISP): Y at the stride, then U and V at half the
    stride each. The chroma planes are addressed in the flat buffer: taken as rows of the Y stride, a
    chroma plane of an odd number of rows (height / 2 odd) does not even end on a row."""
    stride = buffer.shape[1]
    flat = buffer.reshape(-1)  # a view of the contiguous buffer
    chroma = stride // 2 * (height // 2)
    y = flat[: stride * height].reshape(height, stride)[:, :width]
    u = flat[stride * height: stride * height + chroma].reshape(height // 2, stride // 2)[:, : width // 2]
    v = flat[stride * height + chroma: stride * height + 2 * chroma].reshape(height // 2, stride // 2)[:, : width // 2]
    return y, u, v


def i420_from_strided(buffer: np.ndarray, width: int, height: int) -> np.ndarray:
    """The (height * 3 / 2, width) I420 array from picamera2's strided YUV420 buffer (a copy). Cropping
    the buffer's columns would mix the padding of one chroma row into the next where width < stride."""
    y, u, v = yuv420_planes(buffer, width, height)
    return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(height * 3 // 2, width)


class PiHardwareH264:
    """The Pi 4 path: picamera2 -> mask (pre_callback, on the buffer the encoder reads) -> H264Encoder (the
    SoC's, V4L2 M2M) -> `on_packet(data, sensor_ns, keyframe)`. Frames never come up to Python:

        hw = PiHardwareH264(camera_num, width, height, fps, bitrate_kbps, intra_period=round(fps * segment_s))
        rec = Recorder(hw, profile, masks, directory, ...)       # hw stands as the recorder's camera
        rec.start()
        hw.start(rec.burn_planes, rec.accept_packet)             # frames flow in picamera2's threads
        ... hw.failure, hw.packets                               # the service loop watches them
        hw.stop(); rec.stop()

    `burn(y, u, v, sensor_ns)` burns the mask (and the station overlay) into the planes of the mapped
    buffer before the encoder sees it. A burn or an `on_packet` that raises is kept in `failure`, and
    from then on no packet is passed on: a frame whose mask failed never reaches the recording. The
    intra period puts a keyframe at each segment's start, where the recorder switches segments."""

    def __init__(self, camera_num: int, width: int, height: int, fps: float, bitrate_kbps: int,
                 intra_period: int) -> None:
        try:
            from picamera2 import Picamera2
            from picamera2.encoders import H264Encoder
        except ImportError as exc:
            raise HardwareUnavailable(f"picamera2 cannot be imported ({exc})", "install python3-picamera2 with apt")
        self.camera_num, self.width, self.height, self.fps = camera_num, width, height, fps
        try:
            cam = Picamera2(camera_num)
            cam.configure(cam.create_video_configuration(main={"size": (width, height), "format": "YUV420"},
                                                         controls={"FrameDurationLimits": (round(1e6 / fps),) * 2}))
        except Exception as exc:  # noqa: BLE001 - picamera2 raises IndexError / RuntimeError: no camera
            raise CameraDisconnected(f"room camera {camera_num}: {type(exc).__name__}: {exc}",
                                     "check the camera ribbon cable") from None
        self._cam: Any = cam
        self._encoder = H264Encoder(bitrate=bitrate_kbps * 1000, repeat=True, iperiod=intra_period)
        self._segment_s = intra_period / fps  # the intra period puts a keyframe at each segment's start
        self._output: Any = None
        self.failure: BaseException | None = None
        self.packets = 0  # passed on to on_packet
        self._recording = False

    def start(self, burn: Callable[[np.ndarray, np.ndarray, np.ndarray, int], None],
              on_packet: Callable[[bytes, int, bool], None]) -> None:
        from picamera2 import MappedArray
        from picamera2.outputs import Output

        driver, width, height = self, self.width, self.height

        def mask(request: Any) -> None:  # picamera2's camera thread, before the request goes to the encoder
            if driver.failure is not None:
                return
            try:
                sensor_ns = int(request.get_metadata()["SensorTimestamp"])
                with MappedArray(request, "main") as m:
                    burn(*yuv420_planes(m.array, width, height), sensor_ns)
            except Exception as exc:  # noqa: BLE001 - kept and acted on: nothing more is passed on
                driver.failure = exc

        class _Packets(Output):  # type: ignore[misc]
            def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                            packet: Any = None, audio: bool = False) -> None:
                if audio or frame is None or driver.failure is not None:
                    return  # after a failure, the encoder may still hold a frame whose mask failed
                try:
                    on_packet(bytes(frame), int(timestamp or 0) * 1000, bool(keyframe))  # picamera2 gives µs
                except Exception as exc:  # noqa: BLE001 - the encoder's thread must not die of it
                    driver.failure = exc
                    return
                driver.packets += 1

        self._cam.pre_callback = mask  # picamera2 runs it on every request before its encoders
        self._output = _Packets()
        self._cam.start_recording(self._encoder, self._output)
        self._recording = True

    def set_rate(self, fps: float, bitrate_kbps: int, between: Callable[[], None] = lambda: None) -> None:
        """The storage guard's lower rung (video/storage.py LADDER): the sensor to `fps` (FrameDurationLimits,
        live) and the SoC's encoder restarted at `bitrate_kbps`, its intra period kept at one segment.
        `between` runs while the encoder is stopped: no packet of the old rate comes after it."""
        from picamera2.encoders import H264Encoder

        if not self._recording:
            raise RuntimeError("set_rate: the recording is not running (start() first)")
        self._cam.stop_encoder()
        self._cam.set_controls({"FrameDurationLimits": (round(1e6 / fps),) * 2})
        between()
        self.fps = fps
        self._encoder = H264Encoder(bitrate=bitrate_kbps * 1000, repeat=True,
                                    iperiod=max(1, round(fps * self._segment_s)))
        self._cam.start_encoder(self._encoder, self._output)

    def stop(self) -> None:
        """Stop the camera and the encoder (their threads end): no packet comes after this."""
        if self._recording:
            self._recording = False
            self._cam.stop_recording()

    def close(self) -> None:
        self.stop()
        if self._cam is not None:
            try:
                self._cam.close()
            finally:
                self._cam = None

    def self_test(self) -> DeviceStatus:
        if self.failure is not None:
            return DeviceStatus("room_camera", False, f"CSI {self.camera_num}: {self.failure}")
        return DeviceStatus("room_camera", self._cam is not None,
                            f"CSI {self.camera_num} {self.width}x{self.height}, H.264 on the SoC")


SOC_H264_ENCODER = Path("/dev/video11")  # the Pi 4's bcm2835-codec H.264 encoder, which picamera2's opens


def soc_h264_encoder_present() -> bool:
    """The SoC's H.264 encoder is there (a Pi 4; a Pi 5 has none)."""
    return SOC_H264_ENCODER.exists()


def open_room_camera(video: Any) -> OpenCvRoomCamera | PiRoomCamera:
    """The room camera the device settings' `video` section names ("picamera2" or "opencv"; the
    "synthetic" scene is the simulator's, simulator.scene.SyntheticRoomCamera)."""
    if video.source == "opencv":
        return OpenCvRoomCamera(video.device, video.width, video.height, video.fps)
    if video.source == "picamera2":
        return PiRoomCamera(video.camera_num, video.width, video.height, video.fps)
    raise HardwareUnavailable(f"video.source {video.source!r} is not a camera of the box",
                              "set video.source to \"picamera2\" or \"opencv\" in the device settings")

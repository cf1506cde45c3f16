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

The Pi 4's hardware encoding path (hal/drivers/room_camera.py: PiHardwareH264), as picamera2 runs it:
`picamera2.encoders.H264Encoder(bitrate, repeat, iperiod, ...)`, `picamera2.outputs.Output` (the base
class custom outputs derive from), `start_recording(encoder, output)` = `start_encoder` + `start`, `stop_recording` =
`stop` + `stop_encoder`, `pre_callback` and `MappedArray(request, "main")`. Once started, the camera's
own thread takes each frame's request through `pre_callback(request)` (which may write into the buffer),
then hands it to the encoder, which reads the buffer at its stride, as the V4L2 M2M encoder does. The
encoder is libx264 through PyAV standing in for the SoC's: baseline-like (no B-frames, nothing held
back), an IDR frame exactly every `iperiod` frames with the SPS/PPS repeated before it (`repeat=True`),
one Annex B access unit per frame given to `output.outputframe(frame, keyframe, timestamp, packet, audio)`
with its keyframe flag and the sensor timestamp in microseconds since the encoder's first frame
(picamera2's `Encoder._timestamp`). `run_frames(n)` lets the camera deliver n more frames (the test's
clock: the scene's frames are on the simulated clock, delivered as fast as the encoder takes them) and
`wait_frames()` waits until they have gone through.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Self

import av
import numpy as np

from simulator.modules import installed_modules
from simulator.scene import SyntheticRoomCamera

STRIDE_ALIGN = 64  # bytes: the Pi ISP's row alignment for the Y plane
DEFAULT_IPERIOD = 60  # the Pi's V4L2 H.264 encoder's intra period when none is set


class Picamera2Twin:
    def __init__(self, scene: SyntheticRoomCamera, clock: Any, cameras: tuple[int, ...] = (0, 1)) -> None:
        self.scene, self.clock, self.cameras = scene, clock, cameras
        self.unplugged_until: float | None = None
        self.configs: list[dict[str, Any]] = []
        self.opened = self.closed = 0
        self.encoded: list[tuple[int, bool, int]] = []  # (bytes, keyframe, timestamp µs) of every access unit
        self.controls: list[dict[str, Any]] = []  # every set_controls, in order
        self.sensor_frames = 0  # frames the scene gave the recording camera (delivered or skipped)
        self._allowed = 0  # frames the camera may still deliver (run_frames)
        self._delivered = 0
        self._cond = threading.Condition()
        self.modules = self._module()
        self.module = self.modules["picamera2"]

    def run_frames(self, n: int) -> None:
        """Let the recording camera deliver `n` more frames."""
        with self._cond:
            self._allowed += n
            self._cond.notify_all()

    def wait_frames(self, timeout: float = 30.0) -> int:
        """Wait until every frame allowed has gone through pre_callback and the encoder; returns how many."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._delivered >= self._allowed, timeout):
                raise TimeoutError(f"the twin delivered {self._delivered} of {self._allowed} frames")
            return self._delivered

    def unplug(self, seconds: float) -> None:
        """The ribbon cable is out for `seconds` of the simulated clock."""
        self.unplugged_until = self.clock.monotonic() + seconds

    def _unplugged(self) -> bool:
        return self.unplugged_until is not None and self.clock.monotonic() < self.unplugged_until

    def _module(self) -> dict[str, types.ModuleType]:
        twin = self
        module = types.ModuleType("picamera2")
        encoders, outputs = types.ModuleType("picamera2.encoders"), types.ModuleType("picamera2.outputs")

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

        class MappedArray:
            """picamera2.MappedArray: the request's buffer, mapped for writing, as `.array`."""

            def __init__(self, request: _Request, stream: str, reshape: bool = True, write: bool = True) -> None:
                assert stream == "main" and reshape, "the twin maps the main stream, reshaped"
                self._request = request

            def __enter__(self) -> Self:
                assert not self._request.released, "MappedArray on a released request"
                self.array = self._request._buffer
                return self

            def __exit__(self, *exc: object) -> None:
                del self.array

        class Output:
            """picamera2.outputs.Output: what an encoder hands its frames to."""

            def __init__(self, pts: Any = None) -> None:
                self.recording, self.ptsoutput, self.needs_pacing = False, pts, False

            def start(self) -> None:
                self.recording = True

            def stop(self) -> None:
                self.recording = False

            def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                            packet: Any = None, audio: bool = False) -> None:
                """The base class drops the frame; subclasses write it."""

            def _add_stream(self, encoder_stream: Any, codec_name: str, **kwargs: Any) -> None:
                """Told the kind of stream (H264Encoder: "video", "h264"); the base class keeps nothing."""

        class H264Encoder:
            """picamera2.encoders.H264Encoder on the V4L2 M2M encoder; here libx264 (see the module's doc)."""

            def __init__(self, bitrate: int | None = None, repeat: bool = True, iperiod: int | None = None,
                         framerate: float | None = None, enable_sps_framerate: bool = False,
                         qp: int | None = None, profile: str | None = None) -> None:
                self.bitrate, self.repeat, self.iperiod, self.framerate = bitrate, repeat, iperiod, framerate
                self.qp, self.profile = qp, profile
                self.width = self.height = self.stride = 0
                self.format: str | None = None
                self._output: list[Output] = []
                self._running = False
                self.firsttimestamp: int | None = None
                self._cc: Any = None

            @property
            def output(self) -> Any:
                return self._output[0] if len(self._output) == 1 else self._output

            @output.setter
            def output(self, value: Any) -> None:
                outs = value if isinstance(value, list) else [value]
                if not all(isinstance(o, Output) for o in outs):
                    raise RuntimeError("Must pass Output")
                self._output = outs

            @property
            def running(self) -> bool:
                return self._running

            def start(self, quality: Any = None) -> None:
                if self._running:
                    raise RuntimeError("Encoder already running")
                if self.format != "YUV420":
                    raise RuntimeError(f"the twin's encoder takes YUV420, not {self.format}")
                cc = av.CodecContext.create("libx264", "w")
                cc.width, cc.height, cc.pix_fmt = self.width, self.height, "yuv420p"
                cc.time_base = Fraction(1, 1_000_000)
                cc.framerate = Fraction(self.framerate or 30).limit_denominator(1000)
                iperiod = self.iperiod or DEFAULT_IPERIOD
                params = f"keyint={iperiod}:min-keyint={iperiod}:scenecut=0:bframes=0"
                params += ":repeat-headers=1" if self.repeat else ""
                options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": params}
                if self.bitrate:
                    rate = self.bitrate // 1000
                    options.update({"b": f"{rate}k", "maxrate": f"{rate}k", "bufsize": f"{rate}k"})
                cc.options = options
                cc.thread_count = 1
                self._cc, self._running, self.firsttimestamp = cc, True, None
                for out in self._output:
                    out._add_stream("video", "h264")
                    out.start()

            def stop(self) -> None:
                if not self._running:
                    raise RuntimeError("Encoder already stopped")
                self._running = False
                self._cc = None  # streamed off: what the encoder held is dropped, as V4L2's STREAMOFF does
                for out in self._output:
                    out.stop()

            def encode(self, stream: str, request: _Request) -> None:
                if not self._running:
                    return
                ts = request._ns // 1000  # picamera2's Encoder._timestamp: µs since the first frame
                if self.firsttimestamp is None:
                    self.firsttimestamp = ts
                timestamp_us = ts - self.firsttimestamp
                vf = av.VideoFrame.from_ndarray(_unstrided(request._buffer, self.width, self.height),
                                                format="yuv420p")
                vf.pts, vf.time_base = timestamp_us, Fraction(1, 1_000_000)
                for p in self._cc.encode(vf):
                    data = bytes(p)
                    twin.encoded.append((len(data), bool(p.is_keyframe), int(p.pts)))
                    for out in self._output:
                        out.outputframe(data, bool(p.is_keyframe), int(p.pts), None, False)

        class Picamera2:
            def __init__(self, camera_num: int = 0) -> None:
                if camera_num not in twin.cameras or twin._unplugged():
                    raise IndexError("list index out of range")
                self.camera_num, self.started, self.config = camera_num, False, None
                self.pre_callback: Any = None
                self.post_callback: Any = None
                self.controls: dict[str, Any] = {}
                self._every = 1  # sensor frames per frame delivered (FrameDurationLimits over the scene's period)
                self._encoders: set[H264Encoder] = set()
                self._thread: threading.Thread | None = None
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

            def set_controls(self, controls: dict[str, Any]) -> None:
                """libcamera controls, applied from the next frame; the twin acts on FrameDurationLimits (a
                longer frame duration: the scene's frames in between are not delivered)."""
                self.controls.update(controls)
                twin.controls.append(dict(controls))
                if "FrameDurationLimits" in controls:
                    duration_us = controls["FrameDurationLimits"][0]
                    self._every = max(1, round(duration_us * twin.scene.fps / 1e6))

            def camera_configuration(self) -> dict[str, Any]:
                assert self.config is not None
                w, _ = self.config["main"]["size"]
                return {"main": {**self.config["main"], "stride": -(-w // STRIDE_ALIGN) * STRIDE_ALIGN}}

            def start(self) -> None:
                assert self.config is not None, "configure() before start()"
                self.started = True
                if self._encoders and self._thread is None:
                    self._thread = threading.Thread(target=self._camera_loop, name="picamera2-twin", daemon=True)
                    self._thread.start()

            def start_encoder(self, encoder: H264Encoder | None = None, output: Any = None, pts: Any = None,
                              quality: Any = None, name: str | None = None) -> None:
                if encoder is None:
                    raise RuntimeError("No encoder specified")
                if output is not None:
                    encoder.output = output  # (picamera2 also takes a file name: not used by the box)
                stream = self.camera_configuration()[name or "main"]
                encoder.width, encoder.height = stream["size"]
                encoder.format, encoder.stride = stream["format"], stream["stride"]
                if encoder.framerate is None:
                    encoder.framerate = min(30.0, twin.scene.fps / self._every)
                encoder.start(quality=quality)
                self._encoders.add(encoder)

            def stop_encoder(self, encoders: Any = None) -> None:
                for encoder in list(self._encoders) if encoders is None else [encoders]:
                    encoder.stop()
                    self._encoders.discard(encoder)

            def start_recording(self, encoder: H264Encoder, output: Any, pts: Any = None, config: Any = None,
                                quality: Any = None, name: str | None = None) -> None:
                if self.config is None and config is None:
                    raise RuntimeError("the twin needs configure() before start_recording()")
                if config is not None:
                    self.configure(config)
                self.start_encoder(encoder, output, pts=pts, quality=quality, name=name)
                self.start()

            def stop_recording(self) -> None:
                self.stop()
                self.stop_encoder()

            def _camera_loop(self) -> None:
                """picamera2's event loop for a recording camera: each frame's request through pre_callback,
                then to every running encoder, then released."""
                while True:
                    with twin._cond:
                        twin._cond.wait_for(lambda: not self.started or twin._delivered < twin._allowed)
                        if not self.started:
                            return
                    frame = twin.scene.read()
                    if twin.sensor_frames % self._every == 0:  # (a longer frame duration skips the rest)
                        request = _Request(_strided_yuv420(frame.y, frame.u, frame.v), frame.sensor_ns)
                        if self.pre_callback is not None:
                            self.pre_callback(request)
                        for encoder in list(self._encoders):
                            encoder.encode("main", request)
                        request.release()
                    twin.sensor_frames += 1
                    with twin._cond:
                        twin._delivered += 1
                        twin._cond.notify_all()

            def capture_request(self, wait: float | None = None) -> _Request:
                assert self.started, "start() before capture_request()"
                if twin._unplugged():
                    raise RuntimeError("Camera frontend has timed out!")
                frame = twin.scene.read()
                return _Request(_strided_yuv420(frame.y, frame.u, frame.v), frame.sensor_ns)

            def stop(self) -> None:
                with twin._cond:
                    self.started = False
                    twin._cond.notify_all()
                if self._thread is not None and self._thread is not threading.current_thread():
                    self._thread.join(timeout=10)
                self._thread = None

            def close(self) -> None:
                twin.closed += 1

        module.Picamera2, module.MappedArray = Picamera2, MappedArray  # type: ignore[attr-defined]
        encoders.H264Encoder = H264Encoder  # type: ignore[attr-defined]
        outputs.Output = Output  # type: ignore[attr-defined]
        module.encoders, module.outputs = encoders, outputs  # type: ignore[attr-defined]
        return {"picamera2": module, "picamera2.encoders": encoders, "picamera2.outputs": outputs}


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


def _unstrided(buffer: np.ndarray, width: int, height: int) -> np.ndarray:
    """I420 from a strided buffer, as the SoC's encoder reads it (the twin's own reading, not the driver's)."""
    stride = buffer.shape[1]
    flat = buffer.reshape(-1)
    chroma = stride // 2 * (height // 2)
    planes = [flat[: stride * height].reshape(height, stride)[:, :width]]
    for start in (stride * height, stride * height + chroma):
        planes.append(flat[start: start + chroma].reshape(height // 2, stride // 2)[:, : width // 2])
    return np.concatenate([p.reshape(-1) for p in planes]).reshape(height * 3 // 2, width)


@contextmanager
def installed_picamera2(twin: Picamera2Twin) -> Iterator[types.ModuleType]:
    """`import picamera2` (and its `encoders` and `outputs`) gives the twin's modules for the block."""
    with installed_modules(twin.modules):
        yield twin.module

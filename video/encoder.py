"""H.264 encoder stage: I420 frames in, H.264 packets (Annex B) out, through PyAV's libx264.

One encoder per segment: each segment starts with a keyframe and decodes on its own, and a new
segment may take a lower frame rate or bitrate (the storage guard's ladder) without touching the last.
On a Pi 4 the hardware encoder (picamera2's H264Encoder) produces the same packets
(hal.drivers.room_camera_picamera2); the segment writer takes either.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av

from hal.room_camera import RoomFrame

TIME_BASE = Fraction(1, 90_000)  # MPEG-TS clock: pts in 1/90000 s
# ultrafast + zerolatency: no B-frames and no look-ahead, so a packet leaves for each frame at once and a
# power cut loses no frames held inside the encoder; 2.1 ms/frame at 720p on one x86 core (README "Video")
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency"}


class EncoderError(RuntimeError):
    """The encoder failed or stalled: the recorder closes the segment, records a gap and starts a new one."""


@dataclass(frozen=True)
class EncodedPacket:
    data: bytes
    pts: int  # 1/90000 s since the manifest's epoch
    keyframe: bool


@dataclass(frozen=True)
class EncoderSettings:
    width: int
    height: int
    fps: float
    bitrate_kbps: int  # the VBV peak (a one-second buffer): what bounds bytes per hour
    crf: int = 28
    threads: int = 1  # one core of the Pi's four: the scanner's OMR keeps the others


class H264Encoder:
    def __init__(self, settings: EncoderSettings) -> None:
        self.settings = settings
        try:
            cc = av.CodecContext.create("libx264", "w")
        except (av.error.FFmpegError, ValueError) as exc:  # a PyAV build without libx264
            raise EncoderError(f"PyAV has no libx264 encoder ({exc}); install the PyAV wheel from PyPI") from None
        cc.width, cc.height, cc.pix_fmt = settings.width, settings.height, "yuv420p"
        cc.time_base = TIME_BASE
        cc.framerate = Fraction(settings.fps).limit_denominator(1000)
        cc.thread_count = settings.threads
        rate = settings.bitrate_kbps
        cc.options = {**X264_OPTIONS, "crf": str(settings.crf), "maxrate": f"{rate}k", "bufsize": f"{rate}k"}
        self._cc = cc
        self._first = True

    def encode(self, frame: RoomFrame, pts: int) -> list[EncodedPacket]:
        vf = av.VideoFrame.from_ndarray(frame.i420, format="yuv420p")
        vf.pts, vf.time_base = pts, TIME_BASE
        if self._first:
            vf.pict_type = av.video.frame.PictureType.I
            self._first = False
        try:
            return [self._packet(p) for p in self._cc.encode(vf)]
        except av.error.FFmpegError as exc:
            raise EncoderError(f"libx264: {exc}") from None

    def flush(self) -> list[EncodedPacket]:
        try:
            return [self._packet(p) for p in self._cc.encode(None)]
        except av.error.FFmpegError as exc:
            raise EncoderError(f"libx264 at flush: {exc}") from None

    @staticmethod
    def _packet(p: av.Packet) -> EncodedPacket:
        return EncodedPacket(bytes(p), int(p.pts), bool(p.is_keyframe))

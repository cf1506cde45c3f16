"""Segment writer stage: H.264 packets into MPEG-TS files, one file per segment, fsync'd at each switch.

MPEG-TS is a stream of 188-byte packets with no index: a file cut off by a power cut plays up to the
cut (a plain MP4 has its index at the end and does not). Timestamps are 1/90000 s since the manifest's
epoch, so a segment's start and end can be read back from the file alone (the cut one included).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from firmware.common.durable import fsync_path
from video.encoder import TIME_BASE, EncodedPacket

SEGMENT_PATTERN = "seg-{:06d}.ts"


@dataclass(frozen=True)
class ClosedSegment:
    number: int
    path: Path
    frames: int
    first_pts: int | None
    last_pts: int | None


def segment_name(number: int) -> str:
    return SEGMENT_PATTERN.format(number)


def segment_number(name: str) -> int | None:
    if name.startswith("seg-") and name.endswith(".ts") and name[4:-3].isdigit():
        return int(name[4:-3])
    return None


class SegmentWriter:
    """One open segment file at a time: `open(number)`, `write(packet)`..., `close() -> ClosedSegment`."""

    def __init__(self, directory: Path, width: int, height: int, fps: float) -> None:
        self.directory = directory
        self.width, self.height, self.fps = width, height, fps
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._number = 0
        self._frames = 0
        self._first: int | None = None
        self._last: int | None = None

    @property
    def is_open(self) -> bool:
        return self._container is not None

    @property
    def number(self) -> int:
        return self._number

    @property
    def frames(self) -> int:
        return self._frames

    def open(self, number: int) -> Path:
        path = self.directory / segment_name(number)
        if path.exists():
            raise FileExistsError(f"{path}: a segment of this number exists; footage is never overwritten")
        container = av.open(str(path), "w", format="mpegts")
        stream = container.add_stream("h264", rate=Fraction(self.fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = TIME_BASE
        self._container, self._stream = container, stream
        self._number, self._frames, self._first, self._last = number, 0, None, None
        return path

    def write(self, packet: EncodedPacket) -> None:
        assert self._container is not None and self._stream is not None, "open() a segment first"
        p = av.Packet(packet.data)
        p.pts = p.dts = packet.pts
        p.time_base = TIME_BASE
        p.is_keyframe = packet.keyframe
        p.stream = self._stream
        self._container.mux(p)
        self._frames += 1
        self._first = packet.pts if self._first is None else self._first
        self._last = packet.pts

    def close(self) -> ClosedSegment:
        """Close the file and fsync it and its directory: after this the segment survives a power cut."""
        assert self._container is not None
        path = self.directory / segment_name(self._number)
        self._container.close()
        self._container = self._stream = None
        fsync_path(path)
        fsync_path(self.directory)
        return ClosedSegment(self._number, path, self._frames, self._first, self._last)


def probe_segment(path: Path) -> ClosedSegment:
    """Decode what a segment file holds (a cut one plays up to the cut): frames and first/last pts.
    A file with no decodable frame gives frames = 0."""
    frames, first, last = 0, None, None
    number = segment_number(path.name) or 0
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                if frame.pts is None:
                    continue
                frames += 1
                first = frame.pts if first is None else first
                last = frame.pts
    except (av.error.FFmpegError, OSError, IndexError, StopIteration):
        pass  # the cut: what decoded before it counts
    return ClosedSegment(number, path, frames, first, last)

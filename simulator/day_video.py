"""The video service in a simulated day (`ballotbox simulate`): the synthetic room recorded on the
day's simulated clock, from the opening of the polls to their close.

To keep a 300-voter day fast, the day records the scene at a reduced size and frame count: 320 x 180,
one frame every 60 s of station time, segments of an hour (720 frames and 12 segments for a
12-hour day, about a second of CPU), with the device settings' masks scaled to that size. Everything
else is the box's own: mask, overlay, libx264, MPEG-TS segments, the chained signed manifest, the
storage guard, the recovery after a power cut (`simulate --resume` restarts the recorder, which adopts
the cut segment and records the time off as a gap). Full-size recording: `ballotbox video record-sim`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from config.device import DEFAULT_DEVICE, load_device_settings
from firmware.common.identity import DeviceIdentity
from firmware.video.service import RECORDING_DIR, VideoService
from simulator.scene import SyntheticRoomCamera
from video.manifest import MANIFEST, read_manifest
from video.recorder import RecordingProfile

DAY_WIDTH, DAY_HEIGHT = 320, 180  # a quarter of the configured 1280 x 720 in each direction
DAY_FPS = 1 / 60  # a frame every 60 s of station time
DAY_SEGMENT_S = 3600.0
DAY_BITRATE_KBPS = 200
VIDEO_DIR = "video"  # under the device's state directory: the service's store and log


class DayVideo:
    def __init__(self, device_dir: Path, clock: Any, identity: DeviceIdentity, station: str, seed: int,
                 boot: int) -> None:
        settings = load_device_settings(DEFAULT_DEVICE).video
        scale = DAY_WIDTH / settings.width
        masks = [{"name": m.name, "polygon": [[round(x * scale), round(y * scale)] for x, y in m.polygon]}
                 for m in settings.masks]
        self.clock = clock
        self.state_dir = device_dir / VIDEO_DIR
        self.camera = SyntheticRoomCamera(DAY_WIDTH, DAY_HEIGHT, DAY_FPS, seed=seed)
        self.camera.index = round(clock.monotonic() * DAY_FPS)  # the scene goes on where the day is
        profile = RecordingProfile(DAY_WIDTH, DAY_HEIGHT, DAY_FPS, segment_s=DAY_SEGMENT_S,
                                   bitrate_kbps=DAY_BITRATE_KBPS)
        self.service = VideoService(self.camera, profile, masks, self.state_dir, clock=clock, identity=identity,
                                    station=station)
        self.opened = False

    @property
    def directory(self) -> Path:
        return self.state_dir / RECORDING_DIR

    def open(self, day_end: datetime) -> None:
        """At the opening of the polls, or at a boot while they are open or paused."""
        if not self.opened:
            self.service.open(day_end)
            self.opened = True
            self.service.record_until(self.clock.now())  # the first frame now: the recording starts with the polls

    def catch_up(self, when: datetime) -> None:
        if self.opened:
            self.service.record_until(when)

    def close(self) -> str | None:
        """Before the close of the polls: the final manifest hash (None if the day never recorded)."""
        if self.opened:
            return self.service.close()
        return self.closed_hash()

    def closed_hash(self) -> str | None:
        """The hash of a manifest closed before a power cut (the results report is printed again)."""
        path = self.directory / MANIFEST
        if not path.exists() or not read_manifest(self.directory)[0].closed:
            return None
        return hashlib.sha256(path.read_bytes()).hexdigest()

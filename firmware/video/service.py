"""The video service of the box: the recorder over the polls day, with its own store and its own log.

    video = VideoService(camera, profile, masks, state_dir, clock=clock, identity=identity, station=code)
    video.open(day_end)                  # storage guard; after a power cut: adopt the cut segment, record the gap
    video.record_until(clock.now())      # the idle loop lets it catch up with the clock
    sha = video.close()                  # at the close of the polls: the final manifest hash
    video.export(usb / "video")          # segments + manifest.json + device-key.pub.pem, verified after the copy
    video.record(header)                 # the video record (Art. 40)

Store: state_dir/recording/ (segments and the signed manifest: the manifest is the record, chained and
replaced atomically; a second database would only repeat it). Log: state_dir/video-events.jsonl, the
service's own hash-chained, signed event log (firmware/common/eventlog.py; ids video.* of
firmware/common/events.py): storage checks, restarts, gaps, storage warnings, alarms, stops, the close. The scanner's and the auth
service's stores never see either; what crosses to the scanner is the final manifest hash alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware.common.eventlog import EventLog
from firmware.common.events import VIDEO_KINDS, Service
from firmware.common.identity import DeviceIdentity
from firmware.common.reports import ReportHeader, render_raster
from firmware.video.report import VideoRecord, build_video_record
from hal.room_camera import RoomCamera
from video.manifest import MANIFEST, PUBLIC_KEY, read_manifest
from video.recorder import Clock, Recorder, RecordingProfile, RecordingStopped
from video.verify import verify_recording

RECORDING_DIR, LOG_FILE = "recording", "video-events.jsonl"


class ExportError(RuntimeError):
    """The copy on the export medium does not verify: the message says what differs."""


class VideoService:
    def __init__(self, camera: RoomCamera, profile: RecordingProfile, masks: Sequence[Any], state_dir: Path, *,
                 clock: Clock, identity: DeviceIdentity, station: str,
                 free_bytes: Callable[[], int] | None = None, on_alarm: Callable[[str], None] | None = None) -> None:
        self.state_dir, self.clock = state_dir, clock
        state_dir.mkdir(parents=True, exist_ok=True)
        self.directory = state_dir / RECORDING_DIR
        # the video service's own signed log (firmware/common/eventlog.py): nothing in it joins the scanner's
        self._log = EventLog.open(state_dir / LOG_FILE, Service.VIDEO, identity, clock.now)
        self.recorder = Recorder(camera, profile, masks, self.directory, clock=clock, signer=identity,
                                 station=station, device_id=identity.device_id, free_bytes=free_bytes,
                                 log=self.log, on_alarm=on_alarm)
        self.stopped: RecordingStopped | None = None
        self.manifest_sha256: str | None = None

    def log(self, event: dict[str, Any]) -> None:
        """One recorder event ({"e": kind, ...}) into the signed log under its catalogue id (an unknown kind
        or field is noted as uncatalogued there, never an exception that would stop the recording)."""
        detail = {k: v for k, v in event.items() if k != "e"}
        self._log.append_or_note(VIDEO_KINDS.get(str(event.get("e")), "log.uncatalogued"), detail)

    def open(self, day_end: datetime | None = None) -> list[str]:
        return self.recorder.start(day_end)

    def record_until(self, when: datetime) -> None:
        """Record up to `when` (the idle loop's call); a recording that had to stop stays stopped, with its
        reason in the manifest and the log; the polls go on."""
        if self.stopped is not None or self.manifest_sha256 is not None:
            return
        try:
            self.recorder.record_until(when)
        except RecordingStopped as exc:
            self.stopped = exc

    def close(self) -> str:
        """At the close of the polls: the open segment closed, the manifest closed and signed."""
        if self.manifest_sha256 is None:
            self.manifest_sha256 = self.recorder.stop()
            self.log({"e": "closed", "manifest_sha256": self.manifest_sha256})
            self._log.close()
        return self.manifest_sha256

    def export(self, target: Path) -> Path:
        """Copy the recording to `target` (the USB stick at close): segments, manifest.json and the public
        key, each fsync'd; then the copy is verified from the medium. Raises ExportError."""
        target.mkdir(parents=True, exist_ok=True)
        manifest, _, _ = read_manifest(self.directory)
        names = [s["file"] for s in manifest.segments()] + [PUBLIC_KEY, MANIFEST]
        for name in names:
            dst = target / name
            if dst.exists() and dst.stat().st_size == (self.directory / name).stat().st_size and name != MANIFEST:
                continue  # an export carried on after a cut
            shutil.copyfile(self.directory / name, dst)
            fd = os.open(dst, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        result = verify_recording(target, self.recorder.signer.public_key_raw)
        if not result.intact:
            raise ExportError(f"{target}: the exported copy does not verify: "
                              + "; ".join(str(p) for p in result.problems[:5]))
        return target

    def print_record(self, printer: Any, election: Any, header: ReportHeader, remarks: tuple[str, ...] = ()) -> VideoRecord:
        """Print the video record on the box's thermal printer (hal.printer, ESC/POS raster) and return it."""
        record = self.record(header, remarks)
        printer.print_image(render_raster(record, election, printer.width_px))
        return record

    def record(self, header: ReportHeader, remarks: tuple[str, ...] = ()) -> VideoRecord:
        manifest, _, _ = read_manifest(self.directory)
        free = shutil.disk_usage(self.directory).free
        return build_video_record(header, manifest, self.manifest_sha256 or self.recorder.manifest_sha256,
                                  free_bytes=free, remarks=remarks)

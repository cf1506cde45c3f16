"""The video service's loop on the box: `ballotbox service run video [--settings F]` under systemd.

    code = run_video_service(camera, settings, clock=SystemClock(), identity=identity, station=station)

The room camera the settings name (opened by the caller: picamera2, OpenCV, or the simulator's scene)
feeds the recorder (video.recorder: masks, overlay, H.264, segments, the signed manifest, the storage
guard) through the video service (firmware/video/service.py: its store DATA/video/recording/, its log
DATA/video/video-events.jsonl). Started on a directory a power cut or a SIGKILL left behind, the recorder
adopts the cut segment and records the time off as a gap.

systemd (`Type=notify`, `WatchdogSec`): READY=1 once the first frame is recorded, WATCHDOG=1 (at most
once a second) only while frames arrive, so a camera or encoder that hangs is a restart by systemd; STATUS=
what it is doing. SIGTERM (or SIGINT) stops it cleanly: the open segment is closed, the manifest closed and
signed, exit 0. A recording that had to stop (the mask, the camera gone for good, the storage) closes the
same way with its reason in the manifest, and exits 1.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.identity import DeviceIdentity
from firmware.errors import EXIT_CHECK_FAILED, EXIT_OK
from firmware.trust.watchdog import Notifier, SystemdNotifier
from firmware.video.service import VideoService
from hal.drivers.room_camera import PiHardwareH264
from hal.room_camera import RoomCamera
from video.masks import MaskError
from video.recorder import Clock, RecordingProfile, RecordingStopped

FEED_EVERY_S = 1.0  # WATCHDOG=1 at most this often (the unit's WatchdogSec is 30 s)
HARDWARE_POLL_S = 0.1  # the Pi 4 path: how often the loop looks at the packets and the driver's failure


def video_state_dir(settings: Any, state_dir: Path | None = None) -> Path:
    """The video service's own directory: STATE/device/<video.directory> (the recording in it, and its log),
    beside the scanner's store on the box's storage, as `simulate` lays it out; STATE is the settings'
    data_dir unless given."""
    return Path(state_dir or settings.data_dir) / "device" / settings.video.directory


def run_video_service(camera: RoomCamera | PiHardwareH264, settings: Any, *, clock: Clock, identity: DeviceIdentity,
                      station: str,
                      notifier: Notifier | None = None, say: Callable[[str], None] = print,
                      stop: threading.Event | None = None, state_dir: Path | None = None) -> int:
    """Record until SIGTERM/SIGINT (or `stop` is set). `camera` is a room camera (frames come up to the
    recorder) or the Pi 4's PiHardwareH264 (packets of the SoC's encoder, masked in pre_callback). Raises
    video.masks.MaskError and video.storage.StorageRefused before anything is recorded."""
    notify = notifier or SystemdNotifier()
    stop = stop or threading.Event()
    profile = RecordingProfile.from_settings(settings.video)
    service = VideoService(camera, profile, settings.video.masks, video_state_dir(settings, state_dir), clock=clock,
                           identity=identity, station=station)
    recorder = service.recorder
    recorder.interrupt = stop  # a SIGTERM during a camera outage ends the reconnect tries at once
    previous = _on_stop_signals(stop)
    try:
        for warning in service.open():
            say(f"video: storage: {warning}")
        say(f"video: recording {profile.width}x{profile.height} @ {profile.fps:g} fps into {service.directory}"
            + (f" (restart {recorder.restarts})" if recorder.restarts else ""))
        notify.notify("STATUS=video: waiting for the first frame")
        if isinstance(camera, PiHardwareH264):
            stopped = _record_hardware(camera, recorder, notify, stop)
        else:
            stopped = _record(recorder, notify, stop)
    finally:
        sha = service.close()  # the open segment closed, the manifest closed and signed
        _restore(previous)
    m = recorder.manifest
    assert m is not None
    frames = sum(s["frames"] for s in m.segments())
    notify.notify("STOPPING=1")
    if stopped is not None:
        notify.notify(f"STATUS=video: recording stopped: {stopped}"[:200])
        say(f"video: recording stopped: {stopped}")
    say(f"video: {len(m.segments())} segments, {frames} frames, {len(m.gaps())} gaps; manifest sha256 {sha}; "
        f"check: ballotbox video verify {service.directory}")
    return EXIT_OK if stopped is None else EXIT_CHECK_FAILED


def _record(recorder: Any, notify: Notifier, stop: threading.Event) -> RecordingStopped | None:
    """Frames through the recorder until `stop`; the watchdog fed only while they arrive."""
    feed = _Feeder(notify, recorder)
    while not stop.is_set():
        try:
            recorder.step()  # one frame: waits for the camera (a disconnect: the recorder's reconnect tries)
        except RecordingStopped as exc:
            return exc
        feed(recorder.frames_taken)  # unchanged when the camera was lost and came back: no feeding
    return None


def _record_hardware(hw: PiHardwareH264, recorder: Any, notify: Notifier, stop: threading.Event) -> RecordingStopped | None:
    """The Pi 4 path: packets arrive in picamera2's threads; the loop watches them and the driver's failure."""
    feed = _Feeder(notify, recorder)
    hw.start(recorder.burn_planes, recorder.accept_packet)
    try:
        while True:
            feed(hw.packets)
            wanted = recorder.hardware_rate()  # the storage guard stepped down: the SoC's encoder follows
            if wanted is not None and hw.failure is None:
                fps, kbps, rung = wanted
                hw.set_rate(fps, kbps, between=lambda rung=rung: recorder.hardware_rate_applied(rung))
            failure = hw.failure
            if failure is not None:
                hw.stop()  # picamera2's threads end before the recorder is touched from this one
                if isinstance(failure, RecordingStopped):
                    return failure  # the recorder stopped itself (the storage guard) inside accept_packet
                cause = "mask_unusable" if isinstance(failure, MaskError) else "encoder_error"
                return recorder.halt(cause, f"{type(failure).__name__}: {failure}")
            if stop.wait(HARDWARE_POLL_S):
                break
    finally:
        hw.stop()
    return None


class _Feeder:
    """READY=1 at the first frame; STATUS= and WATCHDOG=1 at most every FEED_EVERY_S while the count moves."""

    def __init__(self, notify: Notifier, recorder: Any) -> None:
        self.notify, self.recorder = notify, recorder
        self.seen, self.ready, self.last = 0, False, 0.0

    def __call__(self, frames: int) -> None:
        if frames == self.seen:
            return
        self.seen = frames
        if not self.ready:
            self.notify.notify("READY=1")
            self.ready = True
        if time.monotonic() - self.last >= FEED_EVERY_S:
            self.last = time.monotonic()
            m = self.recorder.manifest
            self.notify.notify(f"STATUS=video: recording, segment {m.last_number() + 1}, {frames} frames this run")
            self.notify.notify("WATCHDOG=1")


def _on_stop_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGTERM and SIGINT set `stop` (the loop finishes the frame in hand, then closes); the previous
    handlers are returned to be put back. Off the main thread (a test's), signals are left alone."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)

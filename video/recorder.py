"""The recorder: the stages composed, with the health checks and the storage guard around them.

    camera (RoomCamera) -> PrivacyMask.apply -> StationOverlay.apply -> H264Encoder -> SegmentWriter
                                                                        -> Manifest (chained, signed)

    rec = Recorder(camera, profile, masks, directory, clock=clock, signer=identity, station="089A012")
    rec.start()                     # storage check, recovery of a cut recording, the manifest written
    rec.record_for(3600)            # or rec.step() per frame
    manifest_sha256 = rec.stop()

The mask is applied to every frame right after the camera gives it, before anything else sees it; a
mask that cannot be applied stops the recording with the reason in the manifest (never unmasked).
A restart after a power cut adopts the segment the cut left open (it plays up to the cut) and records
the time the box was off as a gap. Every gap carries its cause.

Station time never goes back in the manifest. A clock found behind what is already recorded (a box
with no RTC that restarted before NTP, a bad NTP step) is a `clock_backwards` event with both times, and
the recording's station time from then on is the clock's moved on by the difference, so every entry
starts where the one before ended.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from hal.room_camera import CameraDisconnected, RoomCamera, RoomFrame
from video.encoder import EncodedPacket, EncoderError, EncoderSettings, H264Encoder
from video.manifest import MANIFEST, PUBLIC_KEY, Manifest, read_manifest, write_signed
from video.masks import MaskError, PrivacyMask
from video.overlay import StationOverlay
from video.segments import SegmentWriter, probe_segment, segment_number
from video.storage import (
    LADDER,
    STOP_RESERVE_BYTES,
    StorageRefused,
    bytes_per_hour,
    disk_free,
    plan_day,
)

STALL_PERIODS = 5  # frames missing in a row before the watchdog records a gap (0.33 s at 15 fps)
STALL_MIN_S = 1.0  # ... and never for less than a second (a frame late by one period is jitter)
RECONNECT_TRIES = 12  # reopening a lost camera: 12 tries, 5 s apart, then the recording stops
RECONNECT_WAIT_S = 5.0
# A clock behind the recording by more than this is a clock that went back (no RTC, a bad NTP step): an
# event with both times. Less is the sensor's clock and the system's drifting apart over the day: the
# station time is held at the last recorded moment, so the manifest stays in time order either way.
CLOCK_BACK_TOLERANCE_S = 1.0


class Signer(Protocol):
    """What signs the manifest: firmware.common.identity.DeviceIdentity."""

    @property
    def public_key_raw(self) -> bytes: ...

    @property
    def fingerprint(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class RecordingProfile:
    width: int
    height: int
    fps: float
    segment_s: float = 10.0
    bitrate_kbps: int = 1200
    crf: int = 28
    overlay: bool = True
    hours: float = 14.0  # the day the storage guard checks for

    @classmethod
    def from_settings(cls, video: Any) -> RecordingProfile:
        return cls(video.width, video.height, video.fps, video.segment_s, video.bitrate_kbps, video.crf,
                   video.station_overlay, video.hours)


class RecordingStopped(RuntimeError):
    """The recording stopped for a reason (mask unusable, camera gone, storage full); it is in the manifest."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause, self.detail = cause, detail


class Recorder:
    def __init__(self, camera: RoomCamera, profile: RecordingProfile, masks: Sequence[Any], directory: Path, *,
                 clock: Clock, signer: Signer, station: str, device_id: str,
                 free_bytes: Callable[[], int] | None = None, log: Callable[[dict[str, Any]], None] | None = None,
                 on_alarm: Callable[[str], None] | None = None) -> None:
        self.camera, self.profile, self.directory = camera, profile, directory
        self.clock, self.signer, self.station, self.device_id = clock, signer, station, device_id
        if not masks:  # Art. 7(1): the secrecy of the vote is never compromised: no booth may go unmasked
            raise MaskError("video.masks is empty: draw the masks over every booth and the ballot box's slot at "
                            "installation (device settings, pixels of video.width x video.height); nothing is "
                            "recorded without them")
        self.mask = PrivacyMask.from_settings(masks, profile.width, profile.height)  # MaskError: refused
        self.overlay = StationOverlay(station, device_id, self.mask) if profile.overlay else None
        self.free_bytes = free_bytes or disk_free(directory if directory.exists() else directory.parent)
        self.log = log or (lambda event: None)
        self.on_alarm = on_alarm or (lambda words: None)
        self.writer = SegmentWriter(directory, profile.width, profile.height, profile.fps)
        self.manifest: Manifest | None = None
        self.manifest_sha256 = ""
        self.rung = 0
        self.alarmed = False
        self.day_end: datetime | None = None
        self.restarts = 0
        self._encoder: H264Encoder | None = None
        self._anchor: tuple[datetime, int] | None = None  # (station time, sensor_ns) of the anchor frame
        self._burn_anchor: tuple[datetime, int] | None = None  # the same for burn_planes (the Pi 4 path)
        self.clock_offset = timedelta(0)  # station time = clock + this, after the clock went back
        # set by the service's stop (SIGTERM): the reconnect tries end at once rather than after a minute
        self.interrupt: threading.Event | None = None
        # the Pi 4 path: the rung the SoC's encoder runs at; packets of another rung's rate are dropped until
        # the service loop has restarted it at this rung's (hardware_rate / hardware_rate_applied)
        self.hardware_rung = 0
        self._rate_gap_from: datetime | None = None
        self._last_sensor_ns: int | None = None
        self._last_time: datetime | None = None
        self._segment_start: datetime | None = None
        self._counter = 0
        self._stopped: RecordingStopped | None = None

    @property
    def frames_taken(self) -> int:
        """Frames the camera gave that went through the mask into the recording (this run)."""
        return self._counter

    # -- start ------------------------------------------------------------------------------------
    def start(self, day_end: datetime | None = None) -> list[str]:
        """Open the recording; returns the storage guard's warnings. Raises StorageRefused."""
        self.directory.mkdir(parents=True, exist_ok=True)
        now = self.clock.now()
        self.day_end = day_end or now + timedelta(hours=self.profile.hours)  # on the clock, as the caller's
        hours = max(0.0, (self.day_end - now).total_seconds() / 3600)
        plan = plan_day(self.free_bytes(), self.profile.bitrate_kbps, hours)
        self.log({"e": "storage_check", "decision": plan.verdict, "free": plan.free_bytes, "needed": plan.needed_bytes,
                  "message": plan.message})
        if plan.verdict == "refuse":
            raise StorageRefused(plan.message)
        self.rung = plan.rung
        warnings = [plan.message] if plan.verdict == "warn" else []
        if (self.directory / MANIFEST).exists():
            now = self._recover(now)
        else:
            self._new_manifest(now)
        m = self.manifest
        assert m is not None
        if warnings:
            m.add_event(now, "storage_warning", plan.message)
        m.add_event(now, "started", f"{self.profile.width}x{self.profile.height} @ {self.profile.fps:g} fps, "
                    f"rung {self.rung}")
        self._write_public_key()
        self._save()
        return warnings

    def _new_manifest(self, now: datetime) -> None:
        stray = sorted(p.name for p in self.directory.iterdir())
        if stray:
            raise StorageRefused(f"{self.directory}: holds {', '.join(stray[:5])} but no {MANIFEST}: not a "
                                 "recording of this box; give an empty directory (footage is never overwritten)")
        self.manifest = Manifest(self.device_id, self.station, now.isoformat(), self.profile.width,
                                 self.profile.height, self.profile.fps, self.profile.segment_s, self.mask.to_json(),
                                 self.mask.sha256())

    def _recover(self, now: datetime) -> datetime:
        """Adopt the cut segment, record the time off; returns the station time the recording goes on at."""
        m, _, _ = read_manifest(self.directory)
        if (m.width, m.height, m.masks_sha256) != (self.profile.width, self.profile.height, self.mask.sha256()):
            raise MaskError(f"{self.directory / MANIFEST}: recorded at {m.width} x {m.height} with masks "
                            f"{m.masks_sha256[:12]}..., the settings give {self.profile.width} x "
                            f"{self.profile.height} with masks {self.mask.sha256()[:12]}...: record into a new "
                            "directory")
        self.manifest = m
        listed = {e["file"] for e in m.segments()}
        cut_any = False
        for path in sorted(self.directory.glob("seg-*.ts")):
            number = segment_number(path.name)
            if path.name in listed or number is None or number <= m.last_number():
                continue
            seg = probe_segment(path)  # the segment the power cut left open: it plays up to the cut
            entry = m.add_segment(seg, cut=True)
            cut_any = True
            self.log({"e": "cut_segment_adopted", "segment": number, "frames": seg.frames, "end": entry["end"]})
        last = m.last_end() or m.epoch_time
        cause = "restart" if m.closed and not cut_any else "power_cut"
        why = "recorder restarted" if cause == "restart" else \
            "the box lost power or the recorder was killed; it restarted and went on"
        if now < last - timedelta(seconds=CLOCK_BACK_TOLERANCE_S):
            self._clock_went_back(now, last, "at the restart")
            m.add_gap(last, last, cause, f"{why}; how long it was off is not known: the clock went back")
            now = last
        elif now > last:
            m.add_gap(last, now, cause, why)
        else:
            now = last
        m.closed, m.stopped = False, None
        self.restarts = sum(1 for g in m.gaps() if g["cause"] in ("power_cut", "restart"))
        self.log({"e": "recovered", "cause": cause, "gap_from": last.isoformat(), "gap_to": now.isoformat()})
        return now

    # -- station time ---------------------------------------------------------------------------
    def _now(self) -> datetime:
        """The station time of now for the recording: the clock (moved on by `clock_offset`), never before
        the last recorded moment."""
        now = self.clock.now() + self.clock_offset
        floor = self._recorded_until()
        if floor is None or now >= floor:
            return now
        if now < floor - timedelta(seconds=CLOCK_BACK_TOLERANCE_S):
            self._clock_went_back(now - self.clock_offset, floor, "while recording")
        return floor

    def _recorded_until(self) -> datetime | None:
        """The end of what is recorded: the last entry's end, or the open segment's last frame's."""
        ends = [t for t in (self.manifest.last_end() if self.manifest is not None else None,
                            self._last_time + timedelta(seconds=1 / self.profile.fps)
                            if self._last_time is not None else None) if t is not None]
        return max(ends) if ends else None

    def _clock_went_back(self, clock: datetime, recorded_until: datetime, when: str) -> None:
        """The clock is behind what is recorded: from now on station time = clock + the difference."""
        assert self.manifest is not None
        self.clock_offset = recorded_until - clock
        offset_s = round(self.clock_offset.total_seconds(), 3)
        self.manifest.add_event(recorded_until, "clock_backwards",
                                f"{when} the clock said {clock.isoformat()}, {offset_s:g} s before the recording's "
                                f"last moment {recorded_until.isoformat()}; station times from here are the "
                                f"clock's + {offset_s:g} s", clock=clock.isoformat(), offset_s=offset_s)
        self.log({"e": "clock_backwards", "clock": clock.isoformat(), "recorded_until": recorded_until.isoformat(),
                  "offset_s": offset_s})
        self._save()

    # -- recording ------------------------------------------------------------------------------
    def record_for(self, seconds: float) -> None:
        assert self.manifest is not None, "start() first"
        end = self._now() + timedelta(seconds=seconds)
        while self._stopped is None and (self._last_time is None or self._last_time < end):
            self.step()
            if self._last_time is None and self._now() >= end:
                break
        if self._stopped is not None:
            raise self._stopped

    def record_until(self, when: datetime) -> None:
        """Record every frame due up to `when`, a time on the clock (the next frame is one period after the
        last)."""
        period = timedelta(seconds=1 / self.profile.fps)
        when = when + self.clock_offset
        while self._stopped is None:
            due = self._last_time + period if self._last_time is not None else self._now()
            if due > when:
                break
            self.step()
        if self._stopped is not None:
            raise self._stopped

    def step(self) -> None:
        """One frame through every stage. Raises RecordingStopped when the recording had to stop."""
        if self._stopped is not None:
            raise self._stopped
        try:
            frame = self.camera.read()
        except CameraDisconnected as exc:
            self._camera_lost(exc)
            return
        at = self._time_of(frame)
        try:
            self.mask.apply(frame)  # first, before any other stage sees the frame
        except MaskError as exc:
            self._stop("mask_unusable", str(exc), at)
            raise self._stopped from None  # type: ignore[misc]
        if self._watchdog(frame, at):
            return
        if self.overlay is not None:
            self.overlay.apply(frame, at)
        self._counter += 1
        if (self._counter - 1) % LADDER[self.rung][0]:
            return  # the storage guard's lower frame rate
        if self.writer.is_open and self._segment_start is not None and \
                (at - self._segment_start).total_seconds() >= self.profile.segment_s - 0.5 / self.profile.fps:
            self._switch(at)
            if self._stopped is not None:
                return
        if not self.writer.is_open:
            self._open_segment(at)
        assert self._encoder is not None and self.manifest is not None
        try:
            for packet in self._encoder.encode(frame, self.manifest.pts_of(at)):
                self.writer.write(packet)
        except EncoderError as exc:
            self._close_segment()
            self.manifest.add_gap(at, at + timedelta(seconds=1 / self.profile.fps), "encoder_error", str(exc))
            self._save()

    def burn_planes(self, y: Any, u: Any, v: Any, sensor_ns: int) -> None:
        """The Pi 4 path's first stage (picamera2's pre_callback, on the buffer the SoC's encoder reads):
        the mask, then the station overlay at the frame's station time. Raises MaskError."""
        self.mask.apply_planes(y, u, v)
        if self.overlay is not None:
            if self._burn_anchor is None:
                self._burn_anchor = (self.clock.now() + self.clock_offset, sensor_ns)  # the overlay's time only
            t0, ns0 = self._burn_anchor
            self.overlay.apply_luma(y, t0 + timedelta(microseconds=(sensor_ns - ns0) // 1000))

    def accept_packet(self, data: bytes, sensor_ns: int, keyframe: bool) -> None:
        """The Pi 4 path (hal.drivers.room_camera.PiHardwareH264): a packet of the SoC's H.264 encoder, whose
        frames were masked in picamera2's pre_callback. The segment switches at the first keyframe once
        segment_s has passed (the encoder's intra period is set to the segment length)."""
        if self._stopped is not None:
            raise self._stopped
        assert self.manifest is not None, "start() first"
        if self._anchor is None:
            self._anchor = (self._now(), sensor_ns)
        t0, ns0 = self._anchor
        at = t0 + timedelta(microseconds=(sensor_ns - ns0) // 1000)
        last_t = self._last_time
        self._last_time = at
        if last_t is not None and (at - last_t).total_seconds() >= max(STALL_MIN_S, STALL_PERIODS / self.profile.fps):
            self._close_segment()
            self.manifest.add_gap(last_t + timedelta(seconds=1 / self.profile.fps), at, "frame_stall",
                                  f"no packet for {(at - last_t).total_seconds():.1f} s")
            self._save()
        due = self._segment_start is not None and \
            (at - self._segment_start).total_seconds() >= self.profile.segment_s - 0.5 / self.profile.fps
        if self.writer.is_open and keyframe and due:
            self._close_segment()
            self._guard_storage(at)
            if self._stopped is not None:
                raise self._stopped
        if self.rung != self.hardware_rung:  # the storage guard stepped down: the encoder must follow first
            self._close_segment()
            if self._rate_gap_from is None:
                self._rate_gap_from = at
            return
        if not self.writer.is_open:
            if not keyframe:
                return  # a segment starts with a keyframe: what comes before the next one cannot decode alone
            if self._rate_gap_from is not None:
                div, share = LADDER[self.rung]
                self.manifest.add_gap(self._rate_gap_from, at, "rate_change",
                                      f"the encoder restarted at {self.profile.fps / div:g} fps, "
                                      f"{round(self.profile.bitrate_kbps * share)} kbit/s")
                self._rate_gap_from = None
            self.writer.fps = self.profile.fps / LADDER[self.rung][0]
            self.writer.open(max(self.manifest.last_number(), self.writer.number) + 1)
            self._segment_start = at
        self.writer.write(EncodedPacket(data, self.manifest.pts_of(at), keyframe))

    def hardware_rate(self) -> tuple[float, int, int] | None:
        """The Pi 4 path: (fps, bitrate_kbps, rung) the SoC's encoder must be restarted at, when the storage
        guard has stepped down since it was started (None: it runs at the right rate)."""
        if self.rung == self.hardware_rung:
            return None
        div, share = LADDER[self.rung]
        return self.profile.fps / div, round(self.profile.bitrate_kbps * share), self.rung

    def hardware_rate_applied(self, rung: int) -> None:
        """The encoder is stopped and about to start at `rung`'s rate: its packets are taken again (the first
        keyframe opens a segment; the time between is a `rate_change` gap). A new encoder counts its
        timestamps from its own first frame, as picamera2's do: the times are anchored again."""
        self.hardware_rung = rung
        self._anchor = None
        self._last_time = None

    def halt(self, cause: str, detail: str) -> RecordingStopped:
        """Stop the recording for a reason found outside the recorder (the Pi 4 path's driver: a mask that
        failed in pre_callback, the encoder): the segment closed, the reason in the manifest. stop() then
        closes and signs it."""
        if self._stopped is None:
            self._stop(cause, detail, self._now())
        assert self._stopped is not None
        return self._stopped

    def stop(self, cause: str | None = None, detail: str = "") -> str:
        """Close the open segment, close the manifest, sign it; returns its SHA-256."""
        assert self.manifest is not None
        if self._stopped is None:
            self._close_segment()
            now = self._now()
            self.manifest.add_event(now, "stopped", detail or (cause or "polls closed"))
            if cause is not None:
                self.manifest.stopped = {"at": now.isoformat(), "cause": cause, "detail": detail}
        self.manifest.closed = True
        self._save()
        self.camera.close()
        return self.manifest_sha256

    # -- the stages' glue -----------------------------------------------------------------------
    def _time_of(self, frame: RoomFrame) -> datetime:
        """Station time of a frame: the sensor's clock from an anchor taken at the first frame (and again
        after every reconnect), so frame times are as even as the sensor's."""
        if self._anchor is None:
            self._anchor = (self._now(), frame.sensor_ns)
        t0, ns0 = self._anchor
        return t0 + timedelta(microseconds=(frame.sensor_ns - ns0) // 1000)

    def _watchdog(self, frame: RoomFrame, at: datetime) -> bool:
        """Frames that stopped coming (encoders are known to stall after 10-20 hours; a sensor can hang):
        close the segment at the last good frame, record the gap, go on from this frame."""
        last_ns, last_t = self._last_sensor_ns, self._last_time
        self._last_sensor_ns, self._last_time = frame.sensor_ns, at
        if last_ns is None or last_t is None:
            return False
        missing_s = (frame.sensor_ns - last_ns) / 1e9
        if missing_s < max(STALL_MIN_S, STALL_PERIODS / self.profile.fps):
            return False
        assert self.manifest is not None
        self._close_segment()
        self.manifest.add_gap(last_t + timedelta(seconds=1 / self.profile.fps), at, "frame_stall",
                              f"no frame for {missing_s:.1f} s (watchdog: {STALL_PERIODS} frame periods)")
        self.log({"e": "frame_stall", "seconds": round(missing_s, 2)})
        self._save()
        return False

    def _wait_for_reconnect(self) -> bool:
        """RECONNECT_WAIT_S on the recorder's clock, in slices; True as soon as `interrupt` is set."""
        waited = 0.0
        while waited < RECONNECT_WAIT_S:
            if self.interrupt is not None and self.interrupt.is_set():
                return True
            step = min(0.25, RECONNECT_WAIT_S - waited)
            self.clock.sleep(step)
            waited += step
        return self.interrupt is not None and self.interrupt.is_set()

    def _camera_lost(self, exc: CameraDisconnected) -> None:
        assert self.manifest is not None
        period = timedelta(seconds=1 / self.profile.fps)
        lost_at = self._last_time + period if self._last_time is not None else self._now()  # the last frame's end
        self._close_segment()
        self.log({"e": "camera_disconnected", "detail": exc.message})
        for _ in range(RECONNECT_TRIES):
            try:
                self.camera.reopen()
                break
            except CameraDisconnected:
                if self._wait_for_reconnect():
                    # stopped while the camera was gone: the time off is the gap; the caller closes the recording
                    self.manifest.add_gap(lost_at, self._now(), "camera_disconnected", exc.message)
                    return
        else:
            self._stop("camera_disconnected", f"{exc.message}; not back after {RECONNECT_TRIES} tries", lost_at)
            return
        back = self._now()
        self.manifest.add_gap(lost_at, back, "camera_disconnected", exc.message)
        self.log({"e": "camera_reconnected"})
        self._anchor = None  # a reopened camera's sensor clock starts again
        self._last_sensor_ns = self._last_time = None
        self._save()

    def _open_segment(self, at: datetime) -> None:
        assert self.manifest is not None
        number = max(self.manifest.last_number(), self.writer.number) + 1
        div, share = LADDER[self.rung]
        fps = self.profile.fps / div
        self.writer.fps = fps
        self.writer.open(number)
        self._encoder = H264Encoder(EncoderSettings(self.profile.width, self.profile.height, fps,
                                                    round(self.profile.bitrate_kbps * share), self.profile.crf))
        self._segment_start = at

    def _switch(self, at: datetime) -> None:
        self._close_segment()
        self._guard_storage(at)

    def _close_segment(self) -> None:
        if not self.writer.is_open:
            return
        assert self.manifest is not None
        try:
            for packet in self._encoder.flush() if self._encoder is not None else ():
                self.writer.write(packet)
        except EncoderError:
            pass  # what the encoder still held is lost; the segment closes with what it has
        seg = self.writer.close()
        self._encoder = None
        self.manifest.add_segment(seg)
        self._save()

    def _guard_storage(self, at: datetime) -> None:
        assert self.manifest is not None and self.day_end is not None
        free = self.free_bytes()
        hours_left = max(0.0, (self.day_end + self.clock_offset - at).total_seconds() / 3600)
        if free < STOP_RESERVE_BYTES:
            self._stop("storage_full", f"free {free / 1e6:.0f} MB, below the reserve of "
                       f"{STOP_RESERVE_BYTES / 1e6:.0f} MB; footage is never deleted", at)
            return
        changed = False
        while self.rung < len(LADDER) - 1 and free - STOP_RESERVE_BYTES < \
                bytes_per_hour(self.profile.bitrate_kbps, self.rung) * hours_left:
            self.rung += 1
            div, share = LADDER[self.rung]
            words = (f"free {free / 1e9:.2f} GB for {hours_left:.1f} h left: now 1/{div} of the frame rate and "
                     f"{share:.0%} of the bitrate ({bytes_per_hour(self.profile.bitrate_kbps, self.rung) / 1e9:.2f}"
                     " GB/h)")
            self.manifest.add_event(at, "storage_degraded", words)
            changed = True
            self.log({"e": "storage_degraded", "rung": self.rung, "free": free})
        if not self.alarmed and free - STOP_RESERVE_BYTES < bytes_per_hour(self.profile.bitrate_kbps, self.rung) \
                * hours_left:
            self.alarmed = True
            words = (f"free {free / 1e9:.2f} GB will not hold the {hours_left:.1f} h left even at the lowest rate; "
                     "recording goes on until the reserve is reached, then stops")
            self.manifest.add_event(at, "storage_alarm", words)
            changed = True
            self.log({"e": "storage_alarm", "free": free})
            self.on_alarm(words)
        if changed:  # (the segment's own entry was saved when it closed)
            self._save()

    def _stop(self, cause: str, detail: str, at: datetime) -> None:
        assert self.manifest is not None
        self._close_segment()
        self.manifest.stopped = {"at": at.isoformat(), "cause": cause, "detail": detail}
        self.manifest.add_event(at, "stopped", f"{cause}: {detail}")
        self.manifest.closed = True
        self._save()
        self.log({"e": "stopped", "cause": cause, "detail": detail})
        self._stopped = RecordingStopped(cause, detail)

    def _save(self) -> None:
        assert self.manifest is not None
        self.manifest_sha256 = write_signed(self.directory, self.manifest, self.signer.sign,
                                            self.signer.public_key_raw, self.signer.fingerprint)

    def _write_public_key(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        pem = Ed25519PublicKey.from_public_bytes(self.signer.public_key_raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        path = self.directory / PUBLIC_KEY
        if not path.exists() or path.read_bytes() != pem:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pem)
            os.replace(tmp, path)

"""`ballotbox bench video`: the recorder at 1280 x 720, 15 fps on the synthetic scene (BENCHMARKS.md "Video").

Frames are rendered before the clock starts (the scene is the camera's work, not the recorder's) and
replayed; each frame then goes through the box's own Recorder: mask, overlay, libx264 on one thread,
MPEG-TS segments fsync'd at each switch, the manifest re-signed after each segment. CPU time is the
process's (all threads). The recording is decoded afterwards and every masked pixel of every frame checked.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.common.identity import DeviceIdentity
from hal.clock import SARAJEVO
from hal.errors import DeviceStatus
from hal.room_camera import RoomFrame
from simulator.devices import AcceleratedClock
from simulator.scene import SyntheticRoomCamera, default_masks
from video.recorder import Recorder, RecordingProfile
from video.storage import bytes_per_hour
from video.verify import BLANK_TOLERANCE, verify_recording

REPLAY_FRAMES = 90  # 6 s of distinct frames, cycled: 124 MB at 720p, not the 1.2 GB a minute would take


class _Replay:
    """Pre-rendered frames of the scene, replayed (copied: the mask burns into the frame in place)."""

    def __init__(self, frames: list[np.ndarray], width: int, height: int, fps: float, clock: AcceleratedClock) -> None:
        self.frames, self.width, self.height, self.fps, self.clock = frames, width, height, fps, clock
        self.index = 0
        self.unmasked_seen = 0

    def read(self) -> RoomFrame:
        pixels = self.frames[self.index % len(self.frames)].copy()
        frame = RoomFrame(pixels, self.width, self.height, round(self.index / self.fps * 1e9))
        self.index += 1
        self.clock.sleep(1 / self.fps)
        return frame

    def reopen(self) -> None:
        """A replayed recording never loses its camera: nothing to reopen."""

    def self_test(self) -> DeviceStatus:
        return DeviceStatus("room_camera", True, "replay")

    def close(self) -> None:
        """Nothing to release: the replay holds no device or OS resource."""


def run(work: Path, seconds: float, width: int, height: int, fps: float) -> dict[str, Any]:
    clock = AcceleratedClock(datetime(2024, 10, 6, 7, 0, tzinfo=SARAJEVO))
    scene = SyntheticRoomCamera(width, height, fps, seed=1, start_frame=round(600 * fps))  # people in the room
    frames = [scene.read().i420 for _ in range(REPLAY_FRAMES)]
    camera = _Replay(frames, width, height, fps, clock)
    masks = default_masks(width, height)
    profile = RecordingProfile(width, height, fps)
    identity = DeviceIdentity("BB-BENCH-0001", Ed25519PrivateKey.generate())
    recorder = Recorder(camera, profile, masks, work / "video", clock=clock, signer=identity, station="BENCH",
                        device_id=identity.device_id)
    recorder.start()
    n = round(seconds * fps)
    # the mask stage alone, on the same frames
    m0 = time.process_time()
    unmasked = 0
    for i in range(min(n, 300)):
        frame = RoomFrame(frames[i % REPLAY_FRAMES].copy(), width, height, 0)
        recorder.mask.apply(frame)
        unmasked += int(np.count_nonzero(frame.y[recorder.mask.luma_blank] != 16))
        unmasked += int(np.count_nonzero(frame.u[recorder.mask.chroma_blank] != 128))
    mask_ms = (time.process_time() - m0) / min(n, 300) * 1000  # (includes the copy and the count)
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        recorder.step()
    recorder.stop()
    cpu_ms = (time.process_time() - c0) / n * 1000
    wall_ms = (time.perf_counter() - w0) / n * 1000
    m = recorder.manifest
    assert m is not None
    total = sum(e["bytes"] for e in m.segments())
    check = verify_recording(work / "video", decode=True)
    stress = _stress(work / "video-noisy", frames, width, height, fps, masks)
    return {
        "width": width, "height": height, "fps": fps, "seconds": seconds, "frames": n,
        "segments": len(m.segments()), "encoder": "libx264 ultrafast zerolatency, 1 thread",
        "cpu_ms_per_frame_mask_encode": round(cpu_ms, 2), "wall_ms_per_frame": round(wall_ms, 2),
        "cpu_ms_per_frame_mask": round(mask_ms, 3), "bytes": total,
        "gb_per_hour": round(total / seconds * 3600 / 1e9, 4), "bitrate_kbps": profile.bitrate_kbps,
        "gb_per_hour_at_peak_rate": round(bytes_per_hour(profile.bitrate_kbps) / 1e9, 3),
        "masked_pixels_per_frame": recorder.mask.masked_pixels,
        "unmasked_before_encoding": unmasked,
        "frames_decoded": check.frames_decoded, "masked_pixels_checked": check.masked_pixels_checked,
        "worst_masked_deviation": check.worst_masked_deviation, "blank_tolerance": BLANK_TOLERANCE,
        "masked_pixels_blank": check.intact and unmasked == 0 and check.frames_decoded == n,
        "verify_problems": [str(p) for p in check.problems],
        "noisy_scene": stress,
    }


STRESS_SECONDS = 20
STRESS_NOISE = 12  # +-12 luma levels on every pixel of every frame: a dim room at high gain, the encoder's worst


def _stress(directory: Path, frames: list[np.ndarray], width: int, height: int, fps: float,
            masks: list[dict[str, Any]]) -> dict[str, Any]:
    """The same recorder on the scene drowned in fresh sensor noise: what the peak bitrate (VBV) caps."""
    rng = np.random.default_rng(2)
    for pixels in frames:  # in place: the first pass is over
        y = pixels[:height].astype(np.int16) + rng.integers(-STRESS_NOISE, STRESS_NOISE + 1, (height, width))
        pixels[:height] = np.clip(y, 16, 235).astype(np.uint8)
    clock = AcceleratedClock(datetime(2024, 10, 6, 7, 0, tzinfo=SARAJEVO))
    camera = _Replay(frames, width, height, fps, clock)
    identity = DeviceIdentity("BB-BENCH-0001", Ed25519PrivateKey.generate())
    recorder = Recorder(camera, RecordingProfile(width, height, fps), masks, directory, clock=clock, signer=identity,
                        station="BENCH", device_id=identity.device_id)
    recorder.start()
    n = round(STRESS_SECONDS * fps)
    c0 = time.process_time()
    for _ in range(n):
        recorder.step()
    recorder.stop()
    cpu_ms = (time.process_time() - c0) / n * 1000
    assert recorder.manifest is not None
    total = sum(e["bytes"] for e in recorder.manifest.segments())
    check = verify_recording(directory, decode=True)
    return {"seconds": STRESS_SECONDS, "noise_levels": STRESS_NOISE, "cpu_ms_per_frame": round(cpu_ms, 2),
            "bytes": total, "gb_per_hour": round(total / STRESS_SECONDS * 3600 / 1e9, 4),
            "worst_masked_deviation": check.worst_masked_deviation, "intact": check.intact}

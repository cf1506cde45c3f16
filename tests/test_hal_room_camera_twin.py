"""The Pi room camera's driver (hal/drivers/room_camera.py, PiRoomCamera) against the picamera2 twin
(simulator/picamera2_twin.py): libcamera's strided YUV420 buffers, sensor timestamps, a missing camera, an
unplugged ribbon during the day, and a recording through the real recorder that plays, verifies and keeps
every masked pixel blank."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.common.identity import DeviceIdentity
from hal.clock import SARAJEVO
from hal.drivers.room_camera import PiHardwareH264, PiRoomCamera
from hal.room_camera import CameraDisconnected
from simulator.devices import AcceleratedClock
from simulator.picamera2_twin import Picamera2Twin, installed_picamera2
from simulator.scene import SyntheticRoomCamera, default_masks
from video.manifest import read_manifest
from video.masks import MaskError, PrivacyMask
from video.recorder import Recorder, RecordingProfile
from video.verify import verify_recording

W, H, FPS = 200, 120, 5.0  # 200 is not a multiple of 64: the buffer's rows are padded (stride 256)
START = datetime(2024, 10, 6, 7, 0, tzinfo=SARAJEVO)
KEY = DeviceIdentity("BB-SIM-0001", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def _twin(clock: AcceleratedClock) -> tuple[Picamera2Twin, SyntheticRoomCamera]:
    scene = SyntheticRoomCamera(W, H, FPS, seed=3, clock=clock)
    return Picamera2Twin(SyntheticRoomCamera(W, H, FPS, seed=3, clock=clock), clock), scene


def test_frames_come_out_of_the_strided_buffer_exactly_as_the_sensor_saw_them() -> None:
    clock = AcceleratedClock(START)
    twin, same_scene = _twin(clock)
    with installed_picamera2(twin):
        cam = PiRoomCamera(1, W, H, FPS)
        frames = [cam.read() for _ in range(3)]
        cam.close()
    expected = [same_scene.read() for _ in range(3)]
    for got, want in zip(frames, expected, strict=True):
        assert np.array_equal(got.i420, want.i420)  # no padding byte (0xA5) in Y, U or V
        assert got.sensor_ns == want.sensor_ns
    config = twin.configs[0]
    assert config["main"] == {"size": (W, H), "format": "YUV420"}
    assert config["controls"]["FrameDurationLimits"] == (200_000, 200_000)
    assert (twin.opened, twin.closed) == (1, 1)


def test_a_camera_number_with_no_camera_is_a_disconnect_naming_the_ribbon_cable() -> None:
    twin, _ = _twin(AcceleratedClock(START))
    with installed_picamera2(twin), pytest.raises(CameraDisconnected, match="room camera 3: IndexError") as e:
        PiRoomCamera(3, W, H, FPS)
    assert "ribbon" in e.value.remedy


def test_a_recording_through_the_pi_driver_plays_verifies_and_survives_an_unplugged_ribbon(tmp_path: Path) -> None:
    clock = AcceleratedClock(START)
    twin, _ = _twin(clock)
    directory = tmp_path / "video"
    with installed_picamera2(twin):
        cam = PiRoomCamera(1, W, H, FPS)
        rec = Recorder(cam, RecordingProfile(W, H, FPS, segment_s=2.0, overlay=True), default_masks(W, H),
                       directory, clock=clock, signer=KEY, station="089A012", device_id="BB-SIM-0001",
                       free_bytes=lambda: 10**12)
        rec.start()
        rec.record_until(START + timedelta(seconds=3))
        twin.unplug(7.0)
        rec.record_until(START + timedelta(seconds=16))
        rec.stop()
        cam.close()
    m, _, _ = read_manifest(directory)
    gaps = m.gaps()
    assert [g["cause"] for g in gaps] == ["camera_disconnected"]
    lost = (datetime.fromisoformat(gaps[0]["end"]) - datetime.fromisoformat(gaps[0]["start"])).total_seconds()
    assert 7.0 <= lost <= 12.5  # unplugged for 7 s; the recorder tries the camera again every 5 s
    check = verify_recording(directory, decode=True)  # every segment decodes; every masked pixel is blank
    assert check.intact, [str(p) for p in check.problems]
    assert abs(sum(s["frames"] for s in m.segments()) - FPS * (16 - lost)) <= 2  # every frame outside the gap


# -- the Pi 4's hardware H.264 path (PiHardwareH264): pre_callback -> the SoC's encoder -> Recorder.accept_packet
HW_H = 114  # 114 / 2 = 57 chroma rows: the chroma planes do not fall on rows of the Y stride


def _hardware_recording(tmp_path: Path, burn: object = None) -> tuple[Picamera2Twin, PiHardwareH264]:
    clock = AcceleratedClock(START)
    twin = Picamera2Twin(SyntheticRoomCamera(W, HW_H, FPS, seed=3, clock=clock), clock)
    with installed_picamera2(twin):
        hw = PiHardwareH264(1, W, HW_H, FPS, bitrate_kbps=800, intra_period=round(FPS * 2.0))
        rec = Recorder(hw, RecordingProfile(W, HW_H, FPS, segment_s=2.0, overlay=True), default_masks(W, HW_H),
                       tmp_path / "video", clock=clock, signer=KEY, station="089A012", device_id="BB-SIM-0001",
                       free_bytes=lambda: 10**12)
        rec.start()
        hw.start(burn or rec.burn_planes, rec.accept_packet)  # type: ignore[arg-type]
        twin.run_frames(35)  # 7 s at 5 fps
        twin.wait_frames()
        hw.stop()
        rec.stop()
    return twin, hw


def test_the_hardware_encoder_path_records_segments_that_start_at_keyframes_with_every_mask_blank(
        tmp_path: Path) -> None:
    twin, hw = _hardware_recording(tmp_path)
    assert hw.failure is None and hw.packets == 35
    assert [k for _, k, _ in twin.encoded] == [i % 10 == 0 for i in range(35)]  # iperiod 10 = one segment
    directory = tmp_path / "video"
    m, _, _ = read_manifest(directory)
    assert [s["frames"] for s in m.segments()] == [10, 10, 10, 5] and not m.gaps()
    for seg in m.segments():
        with av.open(str(directory / seg["file"])) as container:
            keys = [p.is_keyframe for p in container.demux(video=0) if p.size]
        assert keys[0] and sum(keys) == 1, (seg["file"], keys)  # each segment opens on its keyframe
        start, end = datetime.fromisoformat(seg["start"]), datetime.fromisoformat(seg["end"])
        assert (end - start).total_seconds() == pytest.approx(seg["frames"] / FPS, abs=1e-3)
    check = verify_recording(directory, decode=True)  # plays; the masks burnt by pre_callback in every frame
    assert check.intact, [str(p) for p in check.problems]
    assert check.frames_decoded == 35 and check.worst_masked_deviation is not None
    assert check.worst_masked_deviation <= 2
    with av.open(str(directory / m.segments()[0]["file"])) as container:
        y = next(container.decode(video=0)).to_ndarray(format="yuv420p")[:HW_H]
    assert int(y[6:20, 6:60].max()) >= 200  # the station overlay, burnt in beside the mask


def test_a_mask_that_fails_on_the_hardware_path_lets_no_frame_reach_the_recording(tmp_path: Path) -> None:
    wrong = PrivacyMask.from_settings(default_masks(W + 64, HW_H), W + 64, HW_H)  # drawn for another size

    def burn(y: np.ndarray, u: np.ndarray, v: np.ndarray, sensor_ns: int) -> None:
        wrong.apply_planes(y, u, v)

    twin, hw = _hardware_recording(tmp_path, burn)
    assert isinstance(hw.failure, MaskError) and hw.packets == 0
    assert len(twin.encoded) == 35  # the SoC encoded them, and none left it for the recording
    assert not hw.self_test().ok and "not the 264 x 114 frame" in hw.self_test().detail
    m, _, _ = read_manifest(tmp_path / "video")
    assert sum(s["frames"] for s in m.segments()) == 0


def test_the_hardware_path_with_no_camera_is_a_disconnect() -> None:
    twin, _ = _twin(AcceleratedClock(START))
    with installed_picamera2(twin), pytest.raises(CameraDisconnected, match="room camera 3: IndexError"):
        PiHardwareH264(3, W, H, FPS, bitrate_kbps=800, intra_period=10)


def test_the_hardware_path_steps_down_the_storage_ladder_by_restarting_the_encoder(tmp_path: Path) -> None:
    from video.storage import STOP_RESERVE_BYTES

    clock = AcceleratedClock(START)
    twin = Picamera2Twin(SyntheticRoomCamera(W, HW_H, FPS, seed=3, clock=clock), clock)
    free = [10**12]
    with installed_picamera2(twin):
        hw = PiHardwareH264(1, W, HW_H, FPS, bitrate_kbps=800, intra_period=round(FPS * 2.0))
        rec = Recorder(hw, RecordingProfile(W, HW_H, FPS, segment_s=2.0, bitrate_kbps=800), default_masks(W, HW_H),
                       tmp_path / "video", clock=clock, signer=KEY, station="089A012", device_id="BB-SIM-0001",
                       free_bytes=lambda: free[0])
        rec.start(day_end=START + timedelta(hours=1))
        hw.start(rec.burn_planes, rec.accept_packet)
        twin.run_frames(10)
        twin.wait_frames()
        assert rec.hardware_rate() is None  # the day fits: the encoder runs at the full rate
        free[0] = STOP_RESERVE_BYTES + 200_000_000  # the hour left fits only at half the rate (rung 2)
        twin.run_frames(1)  # the next keyframe: the segment switches, the guard steps down, packets wait
        twin.wait_frames()
        assert rec.hardware_rate() == (2.5, 400, 2)
        fps, kbps, rung = rec.hardware_rate()  # type: ignore[misc]
        hw.set_rate(fps, kbps, between=lambda: rec.hardware_rate_applied(rung))  # what the service loop does
        assert rec.hardware_rate() is None
        twin.run_frames(20)  # 4 s of the sensor at 2.5 fps
        twin.wait_frames()
        hw.stop()
        rec.stop()
    assert hw.failure is None
    assert twin.controls == [{"FrameDurationLimits": (400000, 400000)}]
    m, _, _ = read_manifest(tmp_path / "video")
    assert [s["frames"] for s in m.segments()] == [10, 5, 5]  # iperiod 5 at 2.5 fps: still one per segment
    assert [g["cause"] for g in m.gaps()] == ["rate_change"]
    assert any(e["what"] == "storage_degraded" for e in m.events())
    check = verify_recording(tmp_path / "video", decode=True)
    assert check.intact, [str(p) for p in check.problems]
    assert check.worst_masked_deviation is not None and check.worst_masked_deviation <= 2

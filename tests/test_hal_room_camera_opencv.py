"""The USB room camera's driver (hal/drivers/room_camera.py, OpenCvRoomCamera) against the UVC twin
(simulator/uvc_twin.py): real OpenCV (its FFmpeg backend) reading a live Motion-JPEG stream that PyAV
writes into a named pipe in real time. Frames as the sensor saw them (within JPEG's loss), I420 of the
right size, timestamps from the stream, a camera of another size refused with the reason, and an unplug
mid-recording that is a `camera_disconnected` gap, reconnects and leaves every masked pixel blank."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.common.identity import DeviceIdentity
from hal.clock import SystemClock
from hal.drivers.room_camera import OpenCvRoomCamera, is_v4l2_node
from hal.room_camera import CameraDisconnected
from simulator.scene import SyntheticRoomCamera, default_masks
from simulator.uvc_twin import UvcCameraTwin
from video.manifest import read_manifest
from video.recorder import Recorder, RecordingProfile, RecordingStopped
from video.verify import verify_recording

W, H, FPS = 160, 96, 10.0
KEY = DeviceIdentity("BB-SIM-0001", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


@pytest.fixture
def camera_path(tmp_path: Path) -> Path:
    return tmp_path / "video-usb0"


def _twin(path: Path, width: int = W, height: int = H) -> UvcCameraTwin:
    return UvcCameraTwin(path, SyntheticRoomCamera(width, height, FPS, seed=5, start_frame=3000)).start()


@pytest.fixture
def twin(camera_path: Path) -> Iterator[UvcCameraTwin]:
    t = _twin(camera_path)
    yield t
    t.stop()


def _recorder(cam: OpenCvRoomCamera, directory: Path, clock: SystemClock) -> Recorder:
    return Recorder(cam, RecordingProfile(W, H, FPS, segment_s=1.0, overlay=True), default_masks(W, H), directory,
                    clock=clock, signer=KEY, station="089A012", device_id="BB-SIM-0001", free_bytes=lambda: 10**12)


def test_frames_arrive_as_the_camera_took_them_in_i420_with_the_stream_s_timestamps(twin: UvcCameraTwin,
                                                                                      camera_path: Path) -> None:
    cam = OpenCvRoomCamera(str(camera_path), W, H, FPS)
    try:
        frames = [cam.read() for _ in range(8)]
        status = cam.self_test()
    finally:
        cam.close()
    assert status.ok, status.detail
    for i, got in enumerate(frames):
        sent_ns, sent = twin.written[i]
        assert (got.width, got.height, got.i420.shape, got.i420.dtype) == (W, H, (H * 3 // 2, W), np.uint8)
        diff = np.abs(got.i420.astype(int) - sent.astype(int))
        y, chroma = diff[:H], diff[H:]
        # MJPEG at a webcam's quality, then OpenCV's BGR and back to I420: a level or two on average
        assert y.mean() < 2.0 and chroma.mean() < 2.0, (i, y.mean(), chroma.mean())
        assert np.percentile(y, 99) <= 8 and np.percentile(chroma, 99) <= 8
        # the time between frames is the stream's, to the millisecond of Matroska's time base
        assert abs((got.sensor_ns - frames[0].sensor_ns) - (sent_ns - twin.written[0][0])) <= 1_000_000
    assert frames[1].sensor_ns - frames[0].sensor_ns == pytest.approx(1e9 / FPS, abs=1e6)


def test_a_camera_giving_another_size_fails_its_self_test_and_stops_the_recording_with_the_reason(
        camera_path: Path, tmp_path: Path) -> None:
    twin = _twin(camera_path, 176, 144)  # the camera ignores the 160 x 96 it is asked for
    try:
        cam = OpenCvRoomCamera(str(camera_path), W, H, FPS)
        status = cam.self_test()
        assert not status.ok and "176x144" in status.detail and "160x96" in status.detail
        rec = _recorder(cam, tmp_path / "video", SystemClock())
        rec.start()
        with pytest.raises(RecordingStopped) as stopped:
            rec.record_for(1.0)
    finally:
        cam.close()
        twin.stop()
    assert stopped.value.cause == "mask_unusable" and "176 x 144" in stopped.value.detail
    m, _, _ = read_manifest(tmp_path / "video")
    assert m.closed and m.stopped is not None and m.stopped["cause"] == "mask_unusable"
    assert "recording stopped rather than record unmasked" in m.stopped["detail"]
    assert sum(s["frames"] for s in m.segments()) == 0  # not one frame of the wrong size recorded
    assert verify_recording(tmp_path / "video").intact


def test_a_missing_camera_is_a_disconnect_and_device_nodes_go_to_v4l2(tmp_path: Path) -> None:
    with pytest.raises(CameraDisconnected, match="cannot be opened") as e:
        OpenCvRoomCamera(str(tmp_path / "no-camera"), W, H, FPS)
    assert "USB" in e.value.remedy
    assert is_v4l2_node("/dev/video7") and is_v4l2_node("/dev/v4l/by-id/usb-cam-video-index0")
    assert not is_v4l2_node(str(tmp_path / "stream.mkv")) and not is_v4l2_node("rtsp://10.0.0.5/stream")


def test_an_unplugged_camera_is_a_gap_then_it_reconnects_and_every_masked_pixel_stays_blank(
        twin: UvcCameraTwin, camera_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("video.recorder.RECONNECT_WAIT_S", 0.25)  # the box waits 5 s between tries
    clock = SystemClock()
    directory = tmp_path / "video"
    cam = OpenCvRoomCamera(str(camera_path), W, H, FPS)
    rec = _recorder(cam, directory, clock)
    rec.start()
    start = clock.now()
    twin.unplug(after_frames=15, seconds=1.0)  # 1.5 s in, out for a second
    rec.record_until(start + timedelta(seconds=4.0))
    rec.stop()
    assert twin.sessions == 2  # the stream broke off and the driver opened the camera again
    m, _, _ = read_manifest(directory)
    gaps = m.gaps()
    assert [g["cause"] for g in gaps] == ["camera_disconnected"]
    assert "no frame" in gaps[0]["detail"]
    lost = (np.datetime64(gaps[0]["end"][:26]) - np.datetime64(gaps[0]["start"][:26])) / np.timedelta64(1, "s")
    assert 1.0 <= lost <= 2.0, lost  # the cable out for 1 s, a try every 0.25 s, the stream's start-up
    frames = sum(s["frames"] for s in m.segments())
    assert 15 <= frames and abs(frames - FPS * (4.0 - lost)) <= 4
    check = verify_recording(directory, decode=True)
    assert check.intact, [str(p) for p in check.problems]
    assert check.frames_decoded == frames and check.worst_masked_deviation is not None
    assert check.worst_masked_deviation <= 2

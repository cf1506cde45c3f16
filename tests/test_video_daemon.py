"""`ballotbox service run video`: the video service's real loop as systemd runs it, in a real subprocess on
the synthetic scene (delivered in real time, as a camera does). READY=1 at the first frame and WATCHDOG=1
while frames arrive (read from a NOTIFY_SOCKET the test binds); SIGTERM closes the segment and signs the
manifest; after a SIGKILL the next start adopts the cut segment and records the time off."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ballotbox.cli import main
from simulator.scene import default_masks
from video.manifest import read_manifest
from video.verify import verify_recording

ROOT = Path(__file__).resolve().parents[1]
W, H, FPS = 160, 96, 10


def _settings(path: Path, data_dir: Path, **video: object) -> Path:
    masks = [{"name": m["name"], "polygon": m["polygon"]} for m in default_masks(W, H)]
    path.write_text(json.dumps({"kind": "sim", "device_id": "BB-SIM-0001", "data_dir": str(data_dir),
                                "video": {"source": "synthetic", "width": W, "height": H, "fps": FPS,
                                          "segment_s": 1, "bitrate_kbps": 300, "hours": 1, "masks": masks,
                                          **video}}))
    return path


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    folder = tempfile.mkdtemp(prefix="bbn-", dir="/tmp")  # a socket path must stay under 108 bytes
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()
    shutil.rmtree(folder, ignore_errors=True)


def _start(settings: Path, notify_path: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": notify_path}
    return subprocess.Popen([sys.executable, "-m", "ballotbox.cli", "service", "run", "video", "--settings",
                             str(settings)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _messages(sock: socket.socket, until: str, timeout: float = 20.0) -> list[str]:
    """Datagrams from the service until one equals `until`."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if got[-1] == until:
            return got
    raise AssertionError(f"no {until} from the service within {timeout} s; got {got}")


def _wait_segments(recording: Path, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (recording / "manifest.json").exists() and len(read_manifest(recording)[0].segments()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} segments in {recording} after {timeout} s")


def test_the_service_records_until_sigterm_fed_by_frames_then_closes_and_signs(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    settings = _settings(tmp_path / "device.json", tmp_path / "data")
    recording = tmp_path / "data" / "device" / "video" / "recording"
    proc = _start(settings, path)
    try:
        before_ready = _messages(sock, "READY=1")
        assert not any(m == "WATCHDOG=1" for m in before_ready)  # not fed before the first frame
        _wait_segments(recording, 2)
        fed = _messages(sock, "WATCHDOG=1")
        assert any(m.startswith("STATUS=video: recording") for m in fed + before_ready)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "manifest sha256" in out and err == ""
    m, _, _ = read_manifest(recording)
    assert m.closed and m.events()[-1]["what"] == "stopped" and not m.gaps()
    assert len(m.segments()) >= 3 and all(s["frames"] for s in m.segments())  # the open one closed at SIGTERM
    check = verify_recording(recording, decode=True)
    assert check.intact and check.worst_masked_deviation == 0, [str(p) for p in check.problems]
    assert main(["log", "verify", str(tmp_path / "data" / "device" / "video" / "video-events.jsonl")]) == 0


def test_after_a_sigkill_the_next_start_adopts_the_cut_segment_and_records_the_time_off(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    settings = _settings(tmp_path / "device.json", tmp_path / "data")
    recording = tmp_path / "data" / "device" / "video" / "recording"
    proc = _start(settings, path)
    try:
        _messages(sock, "READY=1")
        _wait_segments(recording, 2)
    finally:
        proc.kill()  # SIGKILL: no handler runs, the open segment is left as it is
        proc.wait(timeout=10)
    killed = read_manifest(recording)[0]
    assert not killed.closed and len(killed.segments()) >= 2
    proc = _start(settings, path)
    try:
        _messages(sock, "READY=1")
        _wait_segments(recording, len(killed.segments()) + 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "(restart 1)" in out
    m, _, _ = read_manifest(recording)
    cut = [s for s in m.segments() if s["cut"]]
    assert len(cut) == 1 and cut[0]["segment"] == len(killed.segments()) + 1  # the one open at the kill
    assert [g["cause"] for g in m.gaps()] == ["power_cut"]
    assert m.segments()[-1]["segment"] > cut[0]["segment"] and m.closed
    check = verify_recording(recording, decode=True)
    assert check.intact, [str(p) for p in check.problems]
    assert main(["log", "verify", str(tmp_path / "data" / "device" / "video" / "video-events.jsonl")]) == 0


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path / "device.json", tmp_path / "data")
    assert main(["service", "run", "video", "--settings", str(settings), "--cycles", "3"]) == 2
    assert "records until it is stopped" in capsys.readouterr().err
    off = _settings(tmp_path / "off.json", tmp_path / "data", enabled=False)
    assert main(["service", "run", "video", "--settings", str(off)]) == 2
    assert "video.enabled is false" in capsys.readouterr().err
    unmasked = _settings(tmp_path / "unmasked.json", tmp_path / "data", masks=[])
    assert main(["service", "run", "video", "--settings", str(unmasked)]) == 2
    assert "video.masks is empty" in capsys.readouterr().err
    assert not (tmp_path / "data" / "device" / "video" / "recording").exists()  # nothing recorded, nothing left open


def test_a_camera_that_never_comes_back_stops_the_recording_and_starves_the_watchdog(tmp_path: Path) -> None:
    from datetime import datetime

    from config.device import load_device_settings
    from firmware.common.identity import load_or_provision
    from firmware.video.daemon import run_video_service
    from hal.clock import SARAJEVO
    from hal.room_camera import CameraDisconnected
    from simulator.devices import AcceleratedClock
    from simulator.scene import SyntheticRoomCamera

    settings = load_device_settings(_settings(tmp_path / "device.json", tmp_path / "data"))
    clock = AcceleratedClock(datetime(2024, 10, 6, 7, 0, tzinfo=SARAJEVO))
    class Unplugged(SyntheticRoomCamera):
        def reopen(self) -> None:
            raise CameraDisconnected("room camera: not there", "check the cable")

    camera = Unplugged(W, H, FPS, clock=clock)
    camera.disconnect_at = 25  # unplugged for good after 2.5 s
    sent: list[tuple[str, int]] = []  # (message, frames recorded when it was sent)

    class Notes:
        def notify(self, state: str) -> None:
            sent.append((state, camera.index))

    identity = load_or_provision(tmp_path / "data", "BB-SIM-0001")
    code = run_video_service(camera, settings, clock=clock, identity=identity, station="089A012", notifier=Notes(),
                             say=lambda line: None)
    assert code == 1
    assert [i for i, (m, _) in enumerate(sent) if m == "READY=1"] == [1]  # after "waiting for the first frame"
    assert all(frames <= 25 for m, frames in sent if m == "WATCHDOG=1")  # fed only while frames came
    assert sent[-1][0].startswith("STATUS=video: recording stopped: camera_disconnected")
    m, _, _ = read_manifest(tmp_path / "data" / "device" / "video" / "recording")
    assert m.closed and m.stopped is not None and m.stopped["cause"] == "camera_disconnected"
    assert sum(s["frames"] for s in m.segments()) == 25
    assert verify_recording(tmp_path / "data" / "device" / "video" / "recording").intact


def _hardware_run(tmp_path: Path, *, fail_after: int | None = None) -> tuple[int, list[str]]:
    """The service's loop on the Pi 4 path against the picamera2 twin: 35 frames at 5 fps, then SIGTERM's
    flag (or, with `fail_after`, the driver's failure as its pre_callback keeps it after that many)."""
    import threading
    from datetime import datetime

    from config.device import load_device_settings
    from firmware.common.identity import load_or_provision
    from firmware.video.daemon import run_video_service
    from hal.clock import SARAJEVO
    from hal.drivers.room_camera import PiHardwareH264
    from simulator.devices import AcceleratedClock
    from simulator.picamera2_twin import Picamera2Twin, installed_picamera2
    from simulator.scene import SyntheticRoomCamera
    from video.masks import MaskError

    settings = load_device_settings(_settings(tmp_path / "device.json", tmp_path / "data", source="picamera2",
                                              encoder="hardware", fps=5, segment_s=2))
    clock = AcceleratedClock(datetime(2024, 10, 6, 7, 0, tzinfo=SARAJEVO))
    twin = Picamera2Twin(SyntheticRoomCamera(W, H, 5, seed=3, clock=clock), clock)
    sent: list[str] = []
    stop = threading.Event()

    class Notes:
        def notify(self, state: str) -> None:
            sent.append(state)

    with installed_picamera2(twin):
        hw = PiHardwareH264(1, W, H, 5, 300, intra_period=10)

        def camera_runs() -> None:
            twin.run_frames(fail_after or 35)
            twin.wait_frames()
            deadline = time.monotonic() + 10
            while "WATCHDOG=1" not in sent and time.monotonic() < deadline:
                time.sleep(0.01)  # the loop looks at the packets every 0.1 s
            if fail_after is not None:
                hw.failure = MaskError("planes (96, 200) are not the 160 x 96 frame the masks are drawn for")
            else:
                stop.set()

        helper = threading.Thread(target=camera_runs)
        helper.start()
        code = run_video_service(hw, settings, clock=clock, identity=load_or_provision(tmp_path / "data", "BB-SIM-0001"),
                                 station="089A012", notifier=Notes(), say=lambda line: None, stop=stop)
        helper.join()
    return code, sent


def test_the_service_on_the_pi4_hardware_path_records_until_stopped(tmp_path: Path) -> None:
    code, sent = _hardware_run(tmp_path)
    assert code == 0 and sent.count("READY=1") == 1 and "WATCHDOG=1" in sent
    assert sent.index("READY=1") < sent.index("WATCHDOG=1")
    recording = tmp_path / "data" / "device" / "video" / "recording"
    m, _, _ = read_manifest(recording)
    assert [s["frames"] for s in m.segments()] == [10, 10, 10, 5] and m.closed and not m.gaps()
    check = verify_recording(recording, decode=True)
    assert check.intact and check.frames_decoded == 35, [str(p) for p in check.problems]


def test_a_mask_failing_on_the_hardware_path_stops_the_service_with_the_reason(tmp_path: Path) -> None:
    code, sent = _hardware_run(tmp_path, fail_after=12)
    assert code == 1 and sent[-1].startswith("STATUS=video: recording stopped: mask_unusable")
    m, _, _ = read_manifest(tmp_path / "data" / "device" / "video" / "recording")
    assert m.closed and m.stopped is not None and m.stopped["cause"] == "mask_unusable"
    assert "not the 160 x 96 frame" in m.stopped["detail"]
    assert verify_recording(tmp_path / "data" / "device" / "video" / "recording", decode=True).intact


def test_sigterm_while_the_camera_is_gone_stops_at_once_with_the_gap(tmp_path: Path) -> None:
    import threading
    import time

    from config.device import load_device_settings
    from firmware.common.identity import load_or_provision
    from firmware.video.daemon import run_video_service
    from hal.clock import SystemClock
    from hal.room_camera import CameraDisconnected
    from simulator.scene import SyntheticRoomCamera

    settings = load_device_settings(_settings(tmp_path / "device.json", tmp_path / "data"))
    clock = SystemClock()  # real waits: the reconnect tries are 5 s apart on this clock
    stop = threading.Event()
    lost: list[float] = []

    class Unplugged(SyntheticRoomCamera):
        def reopen(self) -> None:
            if not lost:
                lost.append(time.monotonic())
                threading.Timer(1.0, stop.set).start()  # systemd's SIGTERM a second into the outage
            raise CameraDisconnected("room camera: not there", "check the cable")

    class Notes:
        def notify(self, state: str) -> None:
            pass

    camera = Unplugged(W, H, FPS, clock=clock)
    camera.disconnect_at = 10
    code = run_video_service(camera, settings, clock=clock, identity=load_or_provision(tmp_path / "data" / "device",
                             "BB-SIM-0001"), station="089A012", notifier=Notes(), say=lambda line: None, stop=stop,
                             state_dir=tmp_path / "data")
    assert code == 0 and lost
    assert time.monotonic() - lost[0] < 3.0  # stopped a second into the outage, not after 12 tries x 5 s
    recording = tmp_path / "data" / "device" / "video" / "recording"
    m, _, _ = read_manifest(recording)
    assert m.closed and m.stopped is None
    assert [g["cause"] for g in m.gaps()] == ["camera_disconnected"]
    assert verify_recording(recording).intact

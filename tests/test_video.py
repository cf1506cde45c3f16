"""The video service's recording pipeline (issue 11): masks burnt into every plane of every frame,
segments that play, a chained signed manifest whose tampering `video verify` names, the storage guard."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ballotbox.cli import main
from firmware.common.identity import DeviceIdentity
from hal.clock import SARAJEVO
from simulator.devices import AcceleratedClock
from simulator.scene import SyntheticRoomCamera, default_masks
from video.manifest import MANIFEST, read_manifest
from video.masks import MaskError, PrivacyMask
from video.recorder import Recorder, RecordingProfile, RecordingStopped
from video.storage import STOP_RESERVE_BYTES, StorageRefused, bytes_per_hour, plan_day
from video.verify import BLANK_TOLERANCE, verify_recording

W, H, FPS = 320, 180, 10
START = datetime(2024, 10, 6, 7, 0, tzinfo=SARAJEVO)
KEY = DeviceIdentity("BB-SIM-0001", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def _recorder(directory: Path, *, seconds_per_segment: float = 2.0, seed: int = 1, free: int = 10**12,
              camera: SyntheticRoomCamera | None = None, masks: list | None = None,
              clock: AcceleratedClock | None = None) -> Recorder:
    clock = clock or AcceleratedClock(START)
    camera = camera or SyntheticRoomCamera(W, H, FPS, seed=seed, clock=clock, start_frame=600 * FPS)
    camera.clock = clock
    return Recorder(camera, RecordingProfile(W, H, FPS, segment_s=seconds_per_segment, overlay=True),
                    default_masks(W, H) if masks is None else masks, directory, clock=clock, signer=KEY,
                    station="089A012", device_id="BB-SIM-0001", free_bytes=lambda: free)


def _record(directory: Path, seconds: float = 6.0, **kw: object) -> Recorder:
    rec = _recorder(directory, **kw)  # type: ignore[arg-type]
    rec.start()
    rec.record_for(seconds)
    rec.stop()
    return rec


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rec") / "video"
    _record(directory, 6.0)
    return directory


def _copy(recording: Path, tmp_path: Path) -> Path:
    target = tmp_path / "video"
    shutil.copytree(recording, target)
    return target


# -- masks ----------------------------------------------------------------------------------------
def test_every_masked_pixel_is_blank_in_every_decoded_frame_of_every_plane(recording: Path) -> None:
    mask = PrivacyMask.from_settings(default_masks(W, H), W, H)
    frames = 0
    for path in sorted(recording.glob("seg-*.ts")):
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                planes = frame.to_ndarray(format="yuv420p")
                y = planes[:H]
                u = planes[H:H * 5 // 4].reshape(H // 2, W // 2)
                v = planes[H * 5 // 4:].reshape(H // 2, W // 2)
                assert int(y[mask.luma_blank].max()) - 16 <= BLANK_TOLERANCE
                assert int(np.abs(u[mask.chroma_blank].astype(int) - 128).max()) <= BLANK_TOLERANCE
                assert int(np.abs(v[mask.chroma_blank].astype(int) - 128).max()) <= BLANK_TOLERANCE
                rgb = frame.to_ndarray(format="rgb24")
                assert int(np.median(rgb[mask.luma_blank])) == 0  # black in RGB, as any player shows it
                frames += 1
    assert frames == 60


def test_what_is_under_the_mask_never_reaches_the_file(tmp_path: Path) -> None:
    """Two recordings whose scenes differ only inside the masks (the ballot being marked, the slot) give
    byte-identical segments: nothing of the booths reaches the encoder."""
    a, b = tmp_path / "a", tmp_path / "b"
    _record(a, 4.0)
    cam = SyntheticRoomCamera(W, H, FPS, seed=1, start_frame=600 * FPS)
    original = cam._render

    def render_with_other_votes(t: float) -> np.ndarray:
        img = original(t)
        mask = PrivacyMask.from_settings(default_masks(W, H), W, H)
        img[:H][mask.luma_blank] = np.random.default_rng(int(t * 100)).integers(0, 256, mask.masked_pixels)
        return img

    cam._render = render_with_other_votes  # type: ignore[method-assign]
    _record(b, 4.0, camera=cam)
    files = sorted(p.name for p in a.glob("seg-*.ts"))
    assert files == sorted(p.name for p in b.glob("seg-*.ts")) and len(files) == 2
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_mask_burns_black_luma_and_neutral_chroma_into_the_frame() -> None:
    cam = SyntheticRoomCamera(W, H, FPS, seed=3)
    frame = cam.read()
    mask = PrivacyMask.from_settings(default_masks(W, H), W, H)
    mask.apply(frame)
    assert set(np.unique(frame.y[mask.luma_blank])) == {16}
    assert set(np.unique(frame.u[mask.chroma_blank])) == {128}
    assert set(np.unique(frame.v[mask.chroma_blank])) == {128}
    assert mask.masked_pixels == int(mask.luma_blank.sum()) > 0
    # what is burnt covers the polygons with whole 16 x 16 macroblocks, at least 4 pixels beyond them
    assert (mask.luma_burn | ~mask.luma_blank).all() and mask.burnt_pixels % 256 in (0, 64, 128, 192)
    assert set(np.unique(frame.y[mask.luma_burn])) == {16}


@pytest.mark.parametrize(("masks", "words"), [
    ([{"name": "booth", "polygon": [[0, 0], [10, 0]]}], "at least 3"),
    ([{"name": "booth", "polygon": [[0, 0], [400, 0], [400, 100]]}], "outside the 320 x 180 frame"),
    ([{"name": "booth", "polygon": [[5, 5], [6, 6], [7, 7]]}], "degenerate"),
    ([{"name": "booth", "polygon": "left half"}], "list of [x, y] points"),
    ([{"polygon": [[0, 0], [10, 0], [10, 10]]}], "needs a \"name\""),
    ([], "video.masks is empty"),
])
def test_unusable_mask_is_refused_before_recording(tmp_path: Path, masks: list, words: str) -> None:
    with pytest.raises(MaskError, match=words.replace("[", r"\[").replace("]", r"\]")):
        _recorder(tmp_path / "video", masks=masks)
    assert not (tmp_path / "video").exists()


def test_camera_of_another_size_stops_the_recording_with_the_reason(tmp_path: Path) -> None:
    clock = AcceleratedClock(START)
    rec = _recorder(tmp_path / "video", clock=clock, camera=SyntheticRoomCamera(640, 360, FPS, clock=clock))
    rec.start()
    with pytest.raises(RecordingStopped, match="mask_unusable"):
        rec.step()
    m, _, _ = read_manifest(tmp_path / "video")
    assert m.closed and m.stopped is not None and m.stopped["cause"] == "mask_unusable"
    assert "640 x 360" in m.stopped["detail"] and not list((tmp_path / "video").glob("seg-*.ts"))


def test_record_sim_with_a_bad_mask_exits_2_naming_the_mask(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    settings = tmp_path / "device.json"
    settings.write_text(json.dumps({"video": {"width": W, "height": H, "fps": FPS, "masks": [
        {"name": "booth-1", "polygon": [[0, 0], [500, 0], [500, 100]]}]}}))
    code = main(["video", "record-sim", "--minutes", "0.1", "--out", str(tmp_path / "v"), "--settings", str(settings)])
    assert code == 2
    assert "booth-1" in capsys.readouterr().err and not list((tmp_path / "v").glob("*.ts"))


# -- segments and manifest ------------------------------------------------------------------------
def test_segments_play_and_the_manifest_chains_them(recording: Path) -> None:
    m, signature, _ = read_manifest(recording)
    segs = m.segments()
    assert [s["segment"] for s in segs] == [1, 2, 3] and [s["frames"] for s in segs] == [20, 20, 20]
    assert segs[0]["prev"] == m.entries[segs[0]["index"] - 1]["hash"] and m.entries[0]["prev"] == m.genesis
    assert m.closed and m.head == m.entries[-1]["hash"] and signature["algorithm"] == "Ed25519"
    assert segs[1]["start"] == segs[0]["end"]  # back to back: a switch loses no frame
    for s in segs:
        with av.open(str(recording / s["file"])) as c:
            assert sum(1 for _ in c.decode(video=0)) == s["frames"]
    assert sorted(p.name for p in recording.iterdir()) == ["device-key.pub.pem", MANIFEST, "seg-000001.ts",
                                                           "seg-000002.ts", "seg-000003.ts"]


def test_intact_recording_verifies_with_exit_0(recording: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["video", "verify", str(recording), "--decode"]) == 0
    out = capsys.readouterr().out
    assert "recording intact" in out and KEY.fingerprint in out


def test_verify_names_a_missing_segment(recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    d = _copy(recording, tmp_path)
    (d / "seg-000002.ts").unlink()
    assert main(["video", "verify", str(d)]) == 1
    assert "PROBLEM segment 2: missing: seg-000002.ts" in capsys.readouterr().out


def test_verify_names_an_altered_segment(recording: Path, tmp_path: Path) -> None:
    d = _copy(recording, tmp_path)
    data = bytearray((d / "seg-000003.ts").read_bytes())
    data[1000] ^= 0xFF
    (d / "seg-000003.ts").write_bytes(bytes(data))
    problems = verify_recording(d).problems
    assert [(p.what, p.segment) for p in problems] == [("altered", 3)]


def test_verify_names_reordered_segments(recording: Path, tmp_path: Path) -> None:
    d = _copy(recording, tmp_path)
    (d / "seg-000001.ts").rename(d / "tmp.ts")
    (d / "seg-000002.ts").rename(d / "seg-000001.ts")
    (d / "tmp.ts").rename(d / "seg-000002.ts")
    problems = verify_recording(d).problems
    assert [(p.what, p.segment) for p in problems] == [("reordered", 1), ("reordered", 2)]
    assert "holds the bytes of segment 2" in problems[0].detail


def test_verify_names_an_inserted_segment_file(recording: Path, tmp_path: Path) -> None:
    d = _copy(recording, tmp_path)
    shutil.copy(d / "seg-000002.ts", d / "seg-000004.ts")
    problems = verify_recording(d).problems
    assert [(p.what, p.segment) for p in problems] == [("inserted", 4)]
    assert "a copy of segment 2" in problems[0].detail


def test_verify_catches_an_entry_removed_from_the_manifest(recording: Path, tmp_path: Path) -> None:
    d = _copy(recording, tmp_path)
    doc = json.loads((d / MANIFEST).read_text())
    doc["body"]["entries"] = [e for e in doc["body"]["entries"] if e.get("segment") != 2]
    (d / MANIFEST).write_text(json.dumps(doc))
    whats = {(p.what, p.segment) for p in verify_recording(d).problems}
    assert ("manifest", None) in whats and ("chain", 3) in whats and ("inserted", 2) in whats


def test_verify_catches_an_edited_head(recording: Path, tmp_path: Path) -> None:
    d = _copy(recording, tmp_path)
    doc = json.loads((d / MANIFEST).read_text())
    doc["body"]["head"] = "0" * 64
    (d / MANIFEST).write_text(json.dumps(doc))
    assert [p.what for p in verify_recording(d).problems] == ["manifest"]


def test_verify_catches_a_manifest_re_signed_with_another_key(recording: Path, tmp_path: Path) -> None:
    from video.manifest import write_signed

    d = _copy(recording, tmp_path)
    m, _, _ = read_manifest(d)
    m.entries[1]["frames"] = 19
    other = DeviceIdentity("BB-SIM-0001", Ed25519PrivateKey.generate())
    write_signed(d, m, other.sign, other.public_key_raw, other.fingerprint)
    problems = verify_recording(d, KEY.public_key_raw).problems
    assert [p.what for p in problems] == ["manifest", "manifest", "chain"]


def test_verify_of_a_directory_without_manifest_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["video", "verify", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert main(["video", "verify", str(tmp_path / "nowhere")]) == 2


# -- health ---------------------------------------------------------------------------------------
def test_camera_disconnect_and_reconnect_is_a_gap_with_its_cause(tmp_path: Path) -> None:
    clock = AcceleratedClock(START)
    cam = SyntheticRoomCamera(W, H, FPS, clock=clock)
    cam.disconnect_at, cam.outage_s = 25, 12.0
    rec = _recorder(tmp_path / "video", clock=clock, camera=cam)
    rec.start()
    rec.record_for(8)
    rec.stop()
    m, _, _ = read_manifest(tmp_path / "video")
    gaps = m.gaps()
    assert [g["cause"] for g in gaps] == ["camera_disconnected"]
    lost = (datetime.fromisoformat(gaps[0]["end"]) - datetime.fromisoformat(gaps[0]["start"])).total_seconds()
    assert 11.9 <= lost <= 12.1  # from the end of the last frame recorded (not overlapping it) to the reconnect
    assert verify_recording(tmp_path / "video", decode=True).intact


def test_frames_that_stop_coming_are_a_frame_stall_gap(tmp_path: Path) -> None:
    clock = AcceleratedClock(START)
    cam = SyntheticRoomCamera(W, H, FPS, clock=clock)
    cam.stall_at, cam.stall_s = 15, 3.0
    rec = _recorder(tmp_path / "video", clock=clock, camera=cam)
    rec.start()
    rec.record_for(6)
    rec.stop()
    m, _, _ = read_manifest(tmp_path / "video")
    [gap] = m.gaps()
    assert gap["cause"] == "frame_stall" and "no frame for 3.1 s" in gap["detail"]
    assert verify_recording(tmp_path / "video", decode=True).intact


# -- storage guard --------------------------------------------------------------------------------
def test_storage_plan_gives_the_numbers() -> None:
    hour = bytes_per_hour(1400)
    assert hour == 667_800_000  # 1.4 Mbit/s x 3600 s / 8 x 1.06 container overhead
    ok = plan_day(14 * hour + STOP_RESERVE_BYTES, 1400, 14)
    assert (ok.verdict, ok.rung, ok.needed_bytes) == ("ok", 0, 14 * hour)
    warn = plan_day(10 * hour, 1400, 14)
    assert (warn.verdict, warn.rung) == ("warn", 1)
    assert "free 6.68 GB; the day (14 h at 1400 kbit/s peak) needs 9.35 GB" in warn.message
    refuse = plan_day(2 * hour, 1400, 14)
    assert refuse.verdict == "refuse" and "even the lowest rate needs 3.27 GB" in refuse.message


def test_recording_is_refused_when_the_day_cannot_fit(tmp_path: Path) -> None:
    rec = _recorder(tmp_path / "video", free=100 * 1024 * 1024)
    with pytest.raises(StorageRefused, match="recording refused"):
        rec.start()
    assert not (tmp_path / "video" / MANIFEST).exists()


def test_under_pressure_the_recorder_lowers_the_rate_then_alarms_then_stops_cleanly(tmp_path: Path) -> None:
    free = [10**12]
    rec = _recorder(tmp_path / "video", free=0)
    rec.free_bytes = lambda: free[0]
    alarms: list[str] = []
    rec.on_alarm = alarms.append
    rec.start()
    rec.record_for(2.5)
    free[0] = STOP_RESERVE_BYTES + bytes_per_hour(1200, 2) * 14  # fits only at rung 2 (half the frame rate)
    rec.record_for(2)
    free[0] = STOP_RESERVE_BYTES + 10**6  # fits nowhere: alarm
    rec.record_for(2)
    free[0] = STOP_RESERVE_BYTES - 1  # below the reserve: stop
    with pytest.raises(RecordingStopped, match="storage_full"):
        rec.record_for(3)
    m, _, _ = read_manifest(tmp_path / "video")
    assert [e["what"] for e in m.events()].count("storage_degraded") == 3
    assert len(alarms) == 1 and m.stopped is not None and m.stopped["cause"] == "storage_full"
    # 10 fps; the switch after the space shrank opens at 5 fps (rung 2), the next at 10/3 fps (rung 3)
    assert [s["frames"] for s in m.segments()][:4] == [20, 20, 10, 7]
    assert len(list((tmp_path / "video").glob("seg-*.ts"))) == len(m.segments())  # nothing deleted
    assert verify_recording(tmp_path / "video", decode=True).intact


def test_packets_of_a_hardware_encoder_make_keyframe_aligned_segments_that_verify(tmp_path: Path) -> None:
    """The Pi 4 path: frames masked in place (picamera2's pre_callback), encoded outside Python (here
    libx264 with the SoC's settings: a keyframe every segment, no forced ones), packets to the recorder."""
    from fractions import Fraction

    clock = AcceleratedClock(START)
    rec = _recorder(tmp_path / "video", clock=clock)
    rec.start()
    cam = SyntheticRoomCamera(W, H, FPS, seed=2)
    soc = av.CodecContext.create("libx264", "w")
    soc.width, soc.height, soc.pix_fmt = W, H, "yuv420p"
    soc.time_base, soc.framerate, soc.gop_size = Fraction(1, FPS), Fraction(FPS), 20  # intra period 2 s
    soc.options = {"preset": "ultrafast", "tune": "zerolatency"}
    for i in range(65):
        frame = cam.read()
        rec.mask.apply_planes(frame.y, frame.u, frame.v)
        vf = av.VideoFrame.from_ndarray(frame.i420, format="yuv420p")
        vf.pts = i
        for p in soc.encode(vf):
            rec.accept_packet(bytes(p), frame.sensor_ns, bool(p.is_keyframe))
    rec.stop()
    check = verify_recording(tmp_path / "video", decode=True)
    assert check.intact and check.worst_masked_deviation == 0
    assert [s["frames"] for s in check.manifest.segments()] == [20, 20, 20, 5]
    with pytest.raises(MaskError, match="not the 320 x 180 frame"):
        rec.mask.apply_planes(np.zeros((H, W + 2), np.uint8), frame.u, frame.v)


def test_verify_json_names_the_problem_for_a_machine(recording: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    d = _copy(recording, tmp_path)
    (d / "seg-000001.ts").unlink()
    assert main(["video", "verify", str(d), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["intact"], out["segments"], out["frames"], out["closed"]) == (False, 3, 60, True)
    assert [(p["what"], p["segment"]) for p in out["problems"]] == [("missing", 1)]
    assert out["key_fingerprint"] == KEY.fingerprint

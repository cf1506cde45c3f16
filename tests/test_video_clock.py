"""A clock that goes back (a box with no RTC restarting before NTP, a bad NTP step): the recording stays in
time order, the step is an event with both times, the video record prints it, and `video verify` finds a
manifest whose entries are not in time order."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from config.election import Language, load_election
from firmware.common.identity import DeviceIdentity
from firmware.common.reports import build_header, render_png, report_to_json
from firmware.video.report import build_video_record
from firmware.video.service import LOG_FILE, VideoService
from hal.clock import SARAJEVO
from simulator.devices import AcceleratedClock
from simulator.scene import SyntheticRoomCamera, default_masks
from video.manifest import Manifest, entry_hash, read_manifest, write_signed
from video.recorder import Recorder, RecordingProfile
from video.verify import verify_recording

W, H, FPS = 160, 96, 5.0
START = datetime(2024, 10, 6, 7, 0, tzinfo=SARAJEVO)
KEY = DeviceIdentity("BB-SIM-0001", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
PROFILE = RecordingProfile(W, H, FPS, segment_s=2.0, overlay=True)
ELECTION = load_election(Path(__file__).resolve().parents[1] / "config/elections/municipal-2024-sample.json")


def _recorder(directory: Path, clock: AcceleratedClock, start_frame: int = 0) -> Recorder:
    camera = SyntheticRoomCamera(W, H, FPS, seed=2, clock=clock, start_frame=start_frame)
    return Recorder(camera, PROFILE, default_masks(W, H), directory, clock=clock, signer=KEY, station="089A012",
                    device_id="BB-SIM-0001", free_bytes=lambda: 10**12)


def _in_time_order(m: Manifest) -> None:
    until = None
    for e in m.entries:
        if e["kind"] in ("segment", "gap") and e["start"]:
            start, end = datetime.fromisoformat(e["start"]), datetime.fromisoformat(e["end"])
            assert until is None or start >= until - timedelta(milliseconds=1), (e, until)
            until = max(end, until) if until else end


def test_a_restart_with_the_clock_an_hour_back_keeps_the_recording_in_time_order(tmp_path: Path) -> None:
    directory, state = tmp_path / "state" / "recording", tmp_path / "state"
    first = _recorder(directory, AcceleratedClock(START))
    first.start()
    first.record_for(5.0)  # segments 1 and 2 closed, 3 open ...
    del first  # ... and the box goes off: no stop(), the open segment is cut (here: nothing of it on disk)
    recorded_until = read_manifest(directory)[0].last_end()
    assert recorded_until is not None

    back = AcceleratedClock(START - timedelta(hours=1))  # no RTC: the clock restarts an hour behind
    camera = SyntheticRoomCamera(W, H, FPS, seed=2, clock=back, start_frame=100)
    service = VideoService(camera, PROFILE, default_masks(W, H), state, clock=back, identity=KEY, station="089A012")
    service.open()
    service.record_until(back.now() + timedelta(seconds=4))  # the idle loop's call, on the clock
    sha = service.close()

    m, _, _ = read_manifest(directory)
    _in_time_order(m)
    steps = [e for e in m.events() if e["what"] == "clock_backwards"]
    assert len(steps) == 1
    step = steps[0]
    assert len([s for s in m.segments() if s["cut"]]) == 1  # the segment open at the cut, adopted
    assert step["at"] == recorded_until.isoformat()  # the recording's last moment before the cut
    assert step["clock"] == (START - timedelta(hours=1)).isoformat()
    behind = recorded_until - (START - timedelta(hours=1))
    assert step["offset_s"] == pytest.approx(behind.total_seconds(), abs=1e-3)
    assert 3603 <= step["offset_s"] <= 3606  # an hour, and the seconds recorded before the cut
    restart = [g for g in m.gaps() if g["cause"] == "power_cut"]
    assert len(restart) == 1 and restart[0]["start"] == restart[0]["end"] == step["at"]
    assert "not known" in restart[0]["detail"]
    after = [s for s in m.segments() if s["start"] and s["start"] >= step["at"]]  # one offset: ISO strings sort
    assert sum(s["frames"] for s in after) == 20  # 4 s at 5 fps recorded after the restart
    assert verify_recording(directory, decode=True).intact
    log = (state / LOG_FILE).read_text()
    assert '"video.clock_backwards"' in log and (START - timedelta(hours=1)).isoformat() in log

    header = build_header(ELECTION, device_id="BB-SIM-0001", software_version="0.1", software_hash="ab" * 32,
                          device_key_fingerprint="ABCD EF01", printed_at=START + timedelta(hours=12))
    record = build_video_record(header, m, sha)
    assert record.restarts == 1 and len(record.clock_steps) == 1
    assert record.clock_steps[0].clock == START - timedelta(hours=1)
    data = report_to_json(record)
    assert data["clock_steps"][0]["offset_s"] == step["offset_s"]
    json.dumps(data)
    for lang in Language:
        path = render_png(dataclasses.replace(record, header=dataclasses.replace(header, language=lang.value)),
                          ELECTION, tmp_path / f"video-{lang.value}.png", 576)
        with Image.open(path) as image:
            assert image.width == 576


def test_a_clock_stepped_back_while_recording_does_not_send_frames_back_in_time(tmp_path: Path) -> None:
    clock = AcceleratedClock(START)
    rec = _recorder(tmp_path / "video", clock)
    rec.start()
    rec.record_for(3.0)
    clock._elapsed -= 600  # a bad NTP step: ten minutes back ...
    assert isinstance(rec.camera, SyntheticRoomCamera)
    rec.camera.disconnect_at, rec.camera.outage_s = rec.camera.index, 2.0  # ... then the camera drops off
    rec.record_for(3.0)  # the recorder's first look at the clock finds it behind the recording
    rec.stop()
    m, _, _ = read_manifest(tmp_path / "video")
    _in_time_order(m)
    steps = [e for e in m.events() if e["what"] == "clock_backwards"]
    assert len(steps) == 1 and "while recording" in steps[0]["detail"]
    assert steps[0]["offset_s"] == pytest.approx(600, abs=0.5)
    assert [g["cause"] for g in m.gaps()] == ["camera_disconnected"]
    assert verify_recording(tmp_path / "video").intact


def test_verify_names_entries_out_of_time_order_even_when_signed_by_the_box(tmp_path: Path) -> None:
    clock = AcceleratedClock(START)
    rec = _recorder(tmp_path / "video", clock)
    rec.start()
    rec.record_for(6.0)
    rec.stop()
    m, _, _ = read_manifest(tmp_path / "video")
    # what a recorder without the check wrote after a clock went back: segment 3 an hour before segment 2
    seg = next(e for e in m.entries if e.get("segment") == 3)
    for field in ("start", "end"):
        seg[field] = (datetime.fromisoformat(seg[field]) - timedelta(hours=1)).isoformat()
    for i, e in enumerate(m.entries[seg["index"]:], seg["index"]):  # re-chained and re-signed: only the times say it
        e["prev"] = m.entries[i - 1]["hash"]
        e["hash"] = entry_hash(e)
    write_signed(tmp_path / "video", m, KEY.sign, KEY.public_key_raw, KEY.fingerprint)
    check = verify_recording(tmp_path / "video")
    assert [(p.what, p.segment) for p in check.problems] == [("time", 3)]
    assert "not in time order" in str(check.problems[0])

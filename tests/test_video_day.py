"""The video service in `ballotbox simulate` (issue 11, item 8): OUT/video is the recording of the day,
its manifest hash is on the results report, and a day killed with SIGKILL and resumed records the time
the box was off as a power-cut gap."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config.election import load_election
from firmware.common.i18n import Messages
from firmware.common.reports import layout_report, report_to_json
from firmware.video.report import build_video_record
from video.manifest import read_manifest
from video.verify import verify_recording

ROOT = Path(__file__).resolve().parents[1]


def _dropped(journal: Path) -> int:
    try:
        return journal.read_text(encoding="utf-8").count('"dropped":"v')
    except FileNotFoundError:
        return 0


def test_a_killed_and_resumed_day_exports_a_verified_recording_with_the_power_cut_gap(tmp_path: Path) -> None:
    out = tmp_path / "day"
    journal = out / "state" / "world" / "journal.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "ballotbox.cli", "simulate", "--quiet", "--desk-voters", "0",
                             "--voters", "8", "--seed", "5", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while _dropped(journal) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the day ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run([sys.executable, "-m", "ballotbox.cli", "simulate", "--resume", "--quiet",
                              "--out", str(out)], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    video = out / "video"
    key = (out / "cdf" / "device-key.pub.pem").read_bytes()
    from cryptography.hazmat.primitives import serialization
    raw = serialization.load_pem_public_key(key).public_bytes_raw()  # type: ignore[union-attr]
    check = verify_recording(video, raw, decode=True)
    assert check.intact, [str(p) for p in check.problems]
    m = check.manifest
    assert m.closed and (m.width, m.height) == (320, 180) and len(m.masks) == 3
    assert [g["cause"] for g in m.gaps()] == ["power_cut"]
    assert sorted(p.name for p in video.iterdir() if not p.name.startswith("seg-")) == ["device-key.pub.pem",
                                                                                         "manifest.json"]
    # the recording covers the polls: 07:00 to 19:00, less the power cut
    first, last = m.segments()[0], m.segments()[-1]
    assert first["start"].startswith("2024-10-06T07:0") and last["end"].startswith("2024-10-06T19:0")
    results = json.loads((out / "reports" / "results-report.json").read_text(encoding="utf-8"))
    assert results["video_manifest_sha256"] == hashlib.sha256((video / "manifest.json").read_bytes()).hexdigest()
    record = json.loads((out / "reports" / "video-report.json").read_text(encoding="utf-8"))
    assert record["report"] == "video_record" and record["restarts"] == 1
    assert record["manifest_sha256"] == results["video_manifest_sha256"]
    assert [g["cause"] for g in record["gaps"]] == ["power_cut"]
    assert "video: " in resumed.stdout


def test_video_record_lays_out_in_the_five_languages(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from config.election import SAMPLE_ELECTION
    from firmware.common.identity import DeviceIdentity
    from firmware.common.reports import build_header
    from hal.clock import station_time
    from simulator.devices import AcceleratedClock
    from simulator.scene import SyntheticRoomCamera, default_masks
    from video.recorder import Recorder, RecordingProfile

    election = load_election(SAMPLE_ELECTION)
    clock = AcceleratedClock(station_time(election.date, "07:00"))
    ident = DeviceIdentity("BB-SIM-0001", Ed25519PrivateKey.generate())
    cam = SyntheticRoomCamera(320, 180, 10, clock=clock)
    cam.disconnect_at, cam.outage_s = 15, 30.0
    rec = Recorder(cam, RecordingProfile(320, 180, 10, segment_s=2), default_masks(320, 180), tmp_path / "v",
                   clock=clock, signer=ident, station=election.station.code, device_id=ident.device_id)
    rec.start()
    rec.record_for(5)  # 1.5 s, then the camera is gone for 30 s
    rec.record_for(3)
    sha = rec.stop()
    manifest = read_manifest(tmp_path / "v")[0]
    header = build_header(election, device_id=ident.device_id, software_version="1", software_hash="ab" * 32,
                          device_key_fingerprint=ident.fingerprint, printed_at=clock.now())
    record = build_video_record(header, manifest, sha, free_bytes=5 * 10**9, remarks=("kamera pomjerena u 10:15",))
    assert (record.segments, record.frames, record.restarts) == (3, 45, 0)
    assert [g.cause for g in record.gaps] == ["camera_disconnected"] and record.gaps[0].seconds >= 29.9  # from the last frame's end
    assert report_to_json(record)["manifest_sha256"] == sha
    from firmware.common.reports import render_raster
    from hal.drivers.escpos_printer import raster_commands

    printed = b"".join(raster_commands(render_raster(record, election, 576)))
    assert printed.startswith(b"\x1dv0") and len(printed) > 576 // 8 * 1000  # ESC/POS raster, > 1000 dot rows
    for language in ("bs", "hr", "sr-Latn", "sr-Cyrl", "en"):
        h = dataclasses.replace(header, language=language)
        lines = layout_report(dataclasses.replace(record, header=h), election, 576)  # in the header's language
        texts = " ".join(line.text + " " + line.right for line in lines)
        title = Messages.for_language(language).t("video.record.title")
        assert title.split()[0] in texts and Messages.for_language(language).t(
            "video.record.cause.camera_disconnected") in texts

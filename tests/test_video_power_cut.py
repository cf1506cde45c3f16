"""A power cut during recording (issue 11, item 3 and 8): `ballotbox video record-sim` killed with SIGKILL
in a real subprocess loses at most the open segment. Every closed segment plays and verifies; the cut
one plays up to the cut, and the restarted recorder adopts it and records the time off as a gap."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import av
import pytest

from simulator.scene import default_masks
from video.manifest import MANIFEST, read_manifest
from video.segments import probe_segment
from video.verify import verify_recording

ROOT = Path(__file__).resolve().parent.parent
W, H, FPS, SEGMENT_S = 320, 180, 10, 2.0


def _settings(tmp_path: Path) -> Path:
    path = tmp_path / "device.json"
    path.write_text(json.dumps({"device_id": "BB-SIM-0001", "video": {
        "width": W, "height": H, "fps": FPS, "segment_s": SEGMENT_S, "masks": default_masks(W, H)}}))
    return path


def _record_sim(out: Path, settings: Path, minutes: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ballotbox.cli", "video", "record-sim", "--minutes", str(minutes),
                             "--out", str(out), "--settings", str(settings), "--seed", "5"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _kill_when(out: Path, proc: subprocess.Popen, segments: int, extra_s: float) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (out / MANIFEST).exists():
            try:
                if len(read_manifest(out)[0].segments()) >= segments:
                    break
            except ValueError:
                pass  # read between write and rename cannot happen (atomic), but be tolerant
        time.sleep(0.02)
    time.sleep(extra_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_sigkill_loses_at_most_the_open_segment_and_the_restart_records_the_gap(tmp_path: Path, cut: int) -> None:
    out, settings = tmp_path / "video", _settings(tmp_path)
    proc = _record_sim(out, settings, minutes=30)
    _kill_when(out, proc, segments=2 + cut, extra_s=random.Random(cut).uniform(0.0, 0.3))

    # before the restart: every signed segment plays and verifies; the open one plays up to the cut
    before = verify_recording(out, decode=True)
    assert before.intact, [str(p) for p in before.problems]
    closed = before.manifest.segments()
    assert len(closed) >= 2 + cut and not before.manifest.closed
    open_files = sorted(p for p in out.glob("seg-*.ts") if p.name not in {s["file"] for s in closed})
    assert len(open_files) <= 1  # at most one segment was open
    cut_frames = probe_segment(open_files[0]).frames if open_files else 0
    assert cut_frames <= SEGMENT_S * FPS

    # the restart adopts the cut segment and records the time off as a power-cut gap
    again = _record_sim(out, settings, minutes=0.1)
    stdout, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr.decode()
    after = verify_recording(out, decode=True)
    assert after.intact, [str(p) for p in after.problems]
    m = after.manifest
    entries = [e for e in m.entries if e["kind"] in ("segment", "gap")]
    n = len(closed)
    assert [e["segment"] for e in entries[:n]] == list(range(1, n + 1))
    if open_files:
        adopted = entries[n]
        assert adopted["kind"] == "segment" and adopted["cut"] and adopted["frames"] == cut_frames
        assert adopted["file"] == open_files[0].name
        gap = entries[n + 1]
    else:
        gap = entries[n]
    assert gap["kind"] == "gap" and gap["cause"] == "power_cut"
    # nothing but the cut is lost: the gap starts where the last frame on disk ends
    last_end = [e for e in entries[:entries.index(gap)] if e["kind"] == "segment" and e["end"]][-1]["end"]
    assert gap["start"] == last_end
    assert datetime.fromisoformat(gap["end"]) > datetime.fromisoformat(gap["start"])
    # closed segments are contiguous: each starts where the one before ended
    segs = [e for e in entries[:n] if e["kind"] == "segment"]
    assert all(b["start"] == a["end"] for a, b in pairwise(segs))
    for s in m.segments():
        if s["frames"] == 0:  # a cut that left no whole frame on disk: the segment is kept, its time is the gap
            assert s["cut"] and s["end"] is None
            continue
        with av.open(str(out / s["file"])) as c:
            assert sum(1 for _ in c.decode(video=0)) == s["frames"]
    assert m.closed and b"resumed after a cut" in stdout

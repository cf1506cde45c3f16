"""The CLI contracts: ballots render, omr interpret, election check, and errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ballotbox.cli import main
from config.election import SAMPLE_ELECTION


def test_render_writes_png_layout_json_and_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, lay, pdf = tmp_path / "n.png", tmp_path / "n.json", tmp_path / "n.pdf"
    rc = main(["ballots", "render", "--election", str(SAMPLE_ELECTION), "--style", "N", "--dpi", "150",
               "--out", str(out), "--layout-json", str(lay), "--pdf", str(pdf)])
    assert rc == 0
    data = json.loads(lay.read_text())
    with Image.open(out) as im:
        assert im.size == (data["image"]["width"], data["image"]["height"]) == (1240, 1754)
        assert round(im.info["dpi"][0]) == 150
    assert data["style"] == "N" and len(data["boxes"]) == 8 and len(data["registration"]) == 4
    assert pdf.read_bytes().startswith(b"%PDF")
    assert "TEST key" in capsys.readouterr().err


def test_interpret_prints_one_json_line_per_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    out, lay = tmp_path / "v.png", tmp_path / "v.json"
    main(["ballots", "render", "--election", str(SAMPLE_ELECTION), "--style", "V", "--dpi", "200",
          "--out", str(out), "--layout-json", str(lay)])
    capsys.readouterr()
    boxes = {b["list"] if b["kind"] == "list" else b["candidate"]: b["rect"] for b in json.loads(lay.read_text())["boxes"]}
    arr = np.array(Image.open(out).convert("RGB"))
    for box in ("l4", "l4c3"):
        x, y, w, h = boxes[box]
        arr[y + 8:y + h - 8, x + 8:x + w - 8] = (20, 20, 120)
    marked = tmp_path / "marked.png"
    Image.fromarray(arr).save(marked, dpi=(200, 200))
    rc = main(["omr", "interpret", "--election", str(SAMPLE_ELECTION), str(marked), str(tmp_path / "missing.png")])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 1  # one image could not be read
    first = lines[0]
    assert set(first) >= {"image", "verdict", "reasons", "style", "contests", "ms"}
    assert first["verdict"] == "valid" and first["style"] == "V"
    assert first["contests"]["vijece"] == {"outcome": "valid", "list": "l4", "candidates": ["l4c3"], "reasons": []}
    assert lines[1]["verdict"] == "unreadable" and "no such file" in lines[1]["error"]


def test_corrupt_election_exits_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "e.json"
    bad.write_text("{", encoding="utf-8")
    assert main(["election", "check", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_election_check_summarises(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["election", "check", str(SAMPLE_ELECTION)]) == 0
    out = capsys.readouterr().out
    assert "contest vijece (open list): 12 lists" in out and "ballot style N: 210 x 297 mm, 8 boxes" in out


def test_unknown_style_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["ballots", "render", "--election", str(SAMPLE_ELECTION), "--style", "Q", "--out", str(tmp_path / "q.png")])
    assert rc == 2 and "no ballot style 'Q'" in capsys.readouterr().err


def test_device_self_test_on_the_simulator_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the sim settings keep the device key in ./out/device-data
    rc = main(["device", "self-test", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert [line.split()[1] for line in out.splitlines()[:12]] == [
        "ballot_camera", "feeder", "panel", "printer", "switches", "document_reader", "fingerprint_sensor",
        "room_camera", "clock", "storage", "network", "software"]
    report = json.loads((tmp_path / "self-test-report.json").read_text(encoding="utf-8"))
    assert [c["ok"] for c in report["checks"]] == [True] * 12
    assert "(14 h at 1200 kbit/s)" in out or "(14 h pri 1200 kbit/s)" in out  # the recorder's settings
    assert (tmp_path / "self-test-report.png").stat().st_size > 0


def test_device_self_test_with_broken_settings_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "device.json"
    bad.write_text('{"kind": "pi", "feeder": {"sensor_entry": 99}}', encoding="utf-8")
    assert main(["device", "self-test", "--settings", str(bad), "--out", str(tmp_path)]) == 2
    assert "feeder.sensor_entry: 99" in capsys.readouterr().err


@pytest.mark.parametrize("desk", ["2", "11"])
def test_simulate_refuses_a_desk_it_cannot_run_before_the_day_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], desk: str) -> None:
    out = tmp_path / "day"
    assert main(["simulate", "--voters", "10", "--desk-voters", desk, "--seed", "1", "--out", str(out), "--quiet"]) == 2
    assert f"--desk-voters {desk}: give 0 (no desk) or 4 to --voters (10)" in capsys.readouterr().err
    assert not out.exists()

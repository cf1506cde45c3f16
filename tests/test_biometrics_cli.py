"""biometrics CLI contracts: extract, match-pairs, identify; exit 2 with one line naming each bad file or row."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from biometrics import match
from biometrics.cli import main
from biometrics.iso19794 import read_record, write_record
from biometrics.template import FingerprintTemplate, Minutia


def _finger(seed: int, jitter_seed: int | None = None) -> FingerprintTemplate:
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(20, 280, 40), rng.uniform(20, 380, 40), rng.uniform(0, 2 * math.pi, 40)])
    if jitter_seed is not None:
        jitter = np.random.default_rng(jitter_seed)
        points = points + np.column_stack([jitter.normal(0, 1.5, (40, 2)), jitter.normal(0, 0.05, 40)])
    return FingerprintTemplate(300, 400, minutiae=tuple(Minutia(x, y, a % (2 * math.pi)) for x, y, a in points))


def _ridges(size: int = 300) -> np.ndarray:
    """A grey image with a whorl-like ridge pattern: enough for the extractor to find minutiae."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    r = np.hypot(x - size / 2, y - size / 2)
    pattern = np.sin(r / 1.5 + 3 * np.sin(x / 40) + 2 * np.cos(y / 35))
    return (128 + 100 * pattern).clip(0, 255).astype(np.uint8)


@pytest.fixture
def records(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, template in {
        "alice_1": _finger(1),
        "alice_2": _finger(1, jitter_seed=5),
        "bob_1": _finger(2),
    }.items():
        paths[name] = tmp_path / f"{name}.iso"
        paths[name].write_bytes(write_record(template))
    paths["truncated"] = tmp_path / "truncated.iso"
    paths["truncated"].write_bytes(paths["alice_1"].read_bytes()[:40])
    paths["foreign"] = tmp_path / "foreign.iso"
    data = bytearray(paths["bob_1"].read_bytes())
    data[4:8] = b" 30\x00"
    paths["foreign"].write_bytes(bytes(data))
    return paths


def test_match_pairs_scores_every_row_and_decides_at_the_shipped_threshold(tmp_path: Path, records: dict) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b\nalice_1.iso,alice_2.iso\nalice_1.iso,bob_1.iso\n")
    out = tmp_path / "scores.csv"
    assert main(["biometrics", "match-pairs", str(pairs), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["a"], r["b"], r["decision"]) for r in rows] == [
        ("alice_1.iso", "alice_2.iso", "match"),
        ("alice_1.iso", "bob_1.iso", "no_match"),
    ]
    assert float(rows[0]["score"]) >= match.THRESHOLD > float(rows[1]["score"])


def test_match_pairs_with_bad_rows_scores_the_others_and_names_the_bad(
    tmp_path: Path, records: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b\nalice_1.iso,truncated.iso\nalice_1.iso,alice_2.iso\nforeign.iso,bob_1.iso\nonly_one.iso\n")
    out = tmp_path / "scores.csv"
    assert main(["biometrics", "match-pairs", str(pairs), "--out", str(out)]) == 2
    assert [r["b"] for r in csv.DictReader(out.open())] == ["alice_2.iso"]
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3
    assert "line 2" in errors[0] and "truncated.iso" in errors[0] and "truncated" in errors[0]
    assert "line 4" in errors[1] and "foreign.iso" in errors[1] and "version b' 30\\x00'" in errors[1]
    assert "line 5" in errors[2] and "two paths" in errors[2]


def test_match_pairs_without_the_header_is_bad_input(tmp_path: Path, records: dict, capsys) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("alice_1.iso,alice_2.iso\n")
    assert main(["biometrics", "match-pairs", str(pairs)]) == 2
    assert "header a,b" in capsys.readouterr().err


def test_match_pairs_extracts_each_image_once(tmp_path: Path, records: dict, monkeypatch) -> None:
    Image.fromarray(_ridges()).save(tmp_path / "probe.png")
    calls = []
    import biometrics.extract as extract_module

    real = extract_module.extract
    monkeypatch.setattr(extract_module, "extract", lambda *a, **k: calls.append(1) or real(*a, **k))
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b\nprobe.png,alice_1.iso\nprobe.png,bob_1.iso\nprobe.png,probe.png\n")
    assert main(["biometrics", "match-pairs", str(pairs), "--out", str(tmp_path / "s.csv")]) == 0
    assert len(calls) == 1
    assert len(list(csv.DictReader((tmp_path / "s.csv").open()))) == 3


def test_extract_writes_one_record_per_image_with_the_same_stem(tmp_path: Path) -> None:
    Image.fromarray(_ridges()).save(tmp_path / "finger_7.png")
    assert main(["biometrics", "extract", str(tmp_path / "finger_7.png"), "--out-dir", str(tmp_path / "out")]) == 0
    template = read_record((tmp_path / "out" / "finger_7.iso").read_bytes(), "finger_7.iso")
    assert (template.width, template.height) == (300, 300)


@pytest.mark.parametrize(("content", "says"), [(b"", "empty"), (b"II*\x00garbage-not-a-tiff", "")])
def test_extract_of_a_corrupt_or_empty_image_exits_2_naming_the_file(
    tmp_path: Path, capsys, content: bytes, says: str
) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(content)
    assert main(["biometrics", "extract", str(bad), "--out-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(bad) in error and says in error
    assert not (tmp_path / "out" / "bad.iso").exists()


def test_identify_puts_the_enrolled_finger_first_as_json_lines(tmp_path: Path, capsys) -> None:
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for seed in range(20):
        (gallery / f"voter{seed:02d}.iso").write_bytes(write_record(_finger(seed + 10)))
    probe = tmp_path / "probe.iso"
    probe.write_bytes(write_record(_finger(17, jitter_seed=3)))
    assert main(["biometrics", "identify", str(probe), "--gallery", str(gallery), "--top", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["rank"] for line in lines] == [1, 2]
    assert lines[0]["id"] == "voter07" and lines[0]["match"] is True and lines[1]["match"] is False


def test_identify_with_a_truncated_probe_exits_2(tmp_path: Path, records: dict, capsys) -> None:
    assert main(["biometrics", "identify", str(records["truncated"]), "--gallery", str(tmp_path)]) == 2
    assert "truncated.iso" in capsys.readouterr().err


def test_bench_fingerprints_on_a_missing_folder_exits_2(tmp_path: Path, capsys) -> None:
    from ballotbox.cli import main as ballotbox_main

    assert ballotbox_main(["bench", "fingerprints", "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a folder" in capsys.readouterr().err

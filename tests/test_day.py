"""A simulated polling-station day end to end: the box's tallies equal the physical box exactly."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ballotbox.cli import main
from config.election import SAMPLE_ELECTION


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("day")
    rc = main(["simulate", "--voters", "40", "--seed", "11", "--out", str(out), "--quiet"])
    return rc, out


def test_day_exits_0_and_tallies_agree_exactly(day: tuple[int, Path]) -> None:
    rc, out = day
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert rc == 0 and doc["simulation"]["agree"] is True and doc["simulation"]["differences"] == []
    assert doc["results"]["contests"] == doc["simulation"]["ground_truth"]
    # every voter cast one ballot of each style
    assert doc["results"]["ballots_cast"] == {"N": 40, "V": 40}
    assert doc["simulation"]["stats"]["sheets_in_box"] == 80


def test_results_are_signed_by_the_device_key(day: tuple[int, Path]) -> None:
    doc = json.loads((day[1] / "results.json").read_text(encoding="utf-8"))
    sig = doc["signature"]
    canonical = json.dumps(doc["results"], sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig["public_key"])).verify(base64.b64decode(sig["value"]), canonical)


def test_zero_and_results_reports_are_written(day: tuple[int, Path]) -> None:
    reports = day[1] / "reports"
    for name in ("zero-report.png", "zero-report.json", "results-report.png", "results-report.json"):
        assert (reports / name).stat().st_size > 0
    zero = json.loads((reports / "zero-report.json").read_text(encoding="utf-8"))
    assert [c["cast"] for c in zero["counts"]] == [0, 0]
    results = json.loads((reports / "results-report.json").read_text(encoding="utf-8"))
    assert [s["cast"] for s in results["styles"]] == [40, 40]


def test_event_log_holds_no_votes(day: tuple[int, Path]) -> None:
    db = sqlite3.connect(day[1] / "state" / "device" / "scanner.sqlite")
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    event_tables = [t for t in tables if "event" in t]
    assert event_tables, tables
    text = " ".join(str(row) for t in event_tables for row in db.execute(f"SELECT * FROM {t}"))
    election = json.loads(SAMPLE_ELECTION.read_text(encoding="utf-8"))
    ids = [c["id"] for c in election["contests"][0]["candidates"]]
    ids += [pl["id"] for pl in election["contests"][1]["lists"]]
    assert "polls_open" in text
    for box_id in ids:
        assert f"'{box_id}'" not in text and f'"{box_id}"' not in text


def test_same_seed_same_day(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["simulate", "--voters", "6", "--seed", "5", "--out", str(a), "--quiet"]) == 0
    assert main(["simulate", "--voters", "6", "--seed", "5", "--out", str(b), "--quiet"]) == 0
    ra = json.loads((a / "results.json").read_text())["results"]["contests"]
    rb = json.loads((b / "results.json").read_text())["results"]["contests"]
    assert ra == rb

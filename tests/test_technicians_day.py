"""The technician's day of the README, in simulation, command after command (issue 12's "done when"):
flash (release build, install, boot-check), provision (package build, sign, provision with the receipt),
self-test, the day (open, vote, close), the export to USB verified with the public key alone, each signed
log verified, and the wipe's deletion record. Every step's exit code is the README's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ballotbox.cli import main

STATION = "089A012"


def test_the_technicians_day_runs_in_simulation_from_flash_to_wipe(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root, state, day = tmp_path / "box-root", tmp_path / "box-state", tmp_path / "box-day"
    devices = tmp_path / "cec-devices"
    devices.mkdir()

    # 1. flash
    assert main(["release", "build", "--out", str(tmp_path / "ballotbox.tar.gz")]) == 0
    assert main(["install", str(tmp_path / "ballotbox.tar.gz"), "--root", str(root)]) == 0
    assert main(["boot-check", "--root", str(root)]) == 0

    # 2. provision
    assert main(["package", "build", "--election", "config/elections/municipal-2024-sample.json",
                 "--endpoint", "http://127.0.0.1:9", "--out", str(tmp_path / "package.json")]) == 0
    assert main(["package", "sign", str(tmp_path / "package.json"), "--out", str(tmp_path / "package.signed.json")]) == 0
    assert main(["provision", "--package", str(tmp_path / "package.signed.json"), "--station", STATION,
                 "--state-dir", str(state), "--receipt", str(devices / f"{STATION}.receipt.json")]) == 0
    receipt = json.loads((devices / f"{STATION}.receipt.json").read_text(encoding="utf-8"))
    assert STATION in json.dumps(receipt)

    # 3. self-test, open, the day, close, export, wipe (the receiver is down: the outbox keeps the documents)
    assert main(["device", "self-test", "--out", str(tmp_path / "self-test")]) == 0
    capsys.readouterr()
    assert main(["simulate", "--voters", "8", "--seed", "5", "--desk-voters", "6", "--no-faults", "--quiet",
                 "--state-dir", str(state), "--out", str(day)]) == 0, capsys.readouterr().out
    assert main(["export", "verify", str(day / "export"), "--key", str(state / "device" / "device-key.pub.pem")]) == 0
    logs = sorted((day / "export" / "logs").glob("*.jsonl"))
    assert {p.name.split("-events")[0] for p in logs} >= {"scanner", "auth"}
    for log in logs:
        assert main(["log", "verify", str(log), "--key", str(state / "device" / "device-key.pub.pem")]) == 0, log
    deletion = next((day / "export" / "reports").glob("deletion-record*.json"))
    record = json.loads(deletion.read_text(encoding="utf-8"))
    assert "deleted" in json.dumps(record).lower()
    assert record["authorized_by"] == "president"  # the wipe took the president's PIN
    assert not any((state / "device").rglob("register.bbr"))  # the register extract is gone from the card

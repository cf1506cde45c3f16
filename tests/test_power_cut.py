"""Process-level power cuts: a real `ballotbox simulate` process killed with SIGKILL and resumed, the
refusals that keep a day from being overwritten, the power-cut bench, and the outbox documents."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ballotbox.cli import SAMPLE_ELECTION, main
from config.election import load_election
from firmware.common.transmission.documents import claimed_station, verify_signature
from firmware.scanner.store import ScannerStore, open_outbox

ROOT = Path(__file__).resolve().parents[1]


def _simulate(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ballotbox.cli", "simulate", "--quiet", "--desk-voters", "0", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _dropped(journal: Path) -> int:
    try:
        return journal.read_text(encoding="utf-8").count('"dropped":"v')
    except FileNotFoundError:
        return 0


def test_a_day_killed_with_sigkill_resumes_and_its_tallies_agree(tmp_path: Path) -> None:
    out = tmp_path / "day"
    journal = out / "state" / "world" / "journal.jsonl"
    proc = _simulate("--voters", "12", "--seed", "5", "--out", str(out))
    deadline = time.monotonic() + 120
    while _dropped(journal) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the day ended before it could be killed: " + (proc.stdout.read() if proc.stdout else "")
    os.kill(proc.pid, signal.SIGKILL)  # the power goes: the process's memory is gone
    proc.wait()
    in_box_at_cut = _dropped(journal)
    assert 6 <= in_box_at_cut < 24

    resumed = subprocess.run([sys.executable, "-m", "ballotbox.cli", "simulate", "--resume", "--quiet",
                              "--out", str(out)], check=False, cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "TALLIES AGREE" in resumed.stdout
    assert "recovery after the power cut:" in resumed.stdout
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["simulation"]["agree"] is True
    assert results["simulation"]["stats"]["power_cuts"] == 1
    assert sum(results["results"]["ballots_cast"].values()) == results["simulation"]["stats"]["sheets_in_box"]
    # the recovery is in the box's own log and on its results report
    with ScannerStore(out / "state" / "device" / "scanner.sqlite") as store:
        assert [e.kind for e in store.events()].count("power_cut_recovery") == 1
    report = json.loads((out / "reports" / "results-report.json").read_text(encoding="utf-8"))
    assert "nakon nestanka struje" in json.dumps(report, ensure_ascii=False)  # the station speaks bs


def test_a_new_day_never_overwrites_one_it_finds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "day"
    (out / "state" / "world").mkdir(parents=True)
    (out / "state" / "world" / "journal.jsonl").write_text("{}\n", encoding="utf-8")
    assert main(["simulate", "--voters", "3", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "never deletes" in err
    assert (out / "state" / "world" / "journal.jsonl").read_text(encoding="utf-8") == "{}\n"  # untouched

    a_file = tmp_path / "file"
    a_file.write_text("x", encoding="utf-8")
    assert main(["simulate", "--voters", "3", "--out", str(a_file), "--quiet"]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err

    assert main(["simulate", "--resume", "--out", str(tmp_path / "none"), "--quiet"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_resume_refuses_parameters_that_differ_from_the_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "day"
    world = out / "state" / "world"
    world.mkdir(parents=True)
    (world / "day.json").write_text(json.dumps({"voters": 5, "seed": 1, "no_faults": False, "desk_voters": 0,
                                                "election": str(SAMPLE_ELECTION.resolve())}), encoding="utf-8")
    assert main(["simulate", "--resume", "--voters", "9", "--out", str(out), "--quiet"]) == 2
    assert "was started with 5" in capsys.readouterr().err


def test_power_cut_bench_loses_and_doubles_nothing(tmp_path: Path) -> None:
    from simulator.bench_power_cut import run

    report = run(load_election(SAMPLE_ELECTION), 14, 11, tmp_path / "work", voters=6)
    assert report["runs"] == 14
    assert report["ballots_lost"] == 0 and report["ballots_doubled"] == 0
    assert report["days_whose_tallies_differ"] == 0, report["differences"]
    assert sum(report["kills_by_mode"].values()) == 14
    assert report["recovery_decisions"]["polls_paused"] + report["recovery_decisions"].get("polls_unchanged", 0) == 14


def test_the_day_leaves_signed_polls_and_turnout_documents_in_the_outbox(tmp_path: Path) -> None:
    out = tmp_path / "day"
    assert main(["simulate", "--voters", "6", "--seed", "2", "--out", str(out), "--quiet", "--desk-voters", "0",
                 "--no-faults"]) == 0
    device = out / "state" / "device"
    public = serialization.load_pem_public_key((device / "device-key.pub.pem").read_bytes())
    with open_outbox(out / "state") as outbox:
        entries = outbox.entries()
    kinds = [e.document.kind for e in entries]
    assert kinds == ["polls-opened", "turnout", "turnout", "turnout", "election-report", "cvr-report", "polls-closed"]
    hours = [e.document.content()["hour"] for e in entries if e.document.kind == "turnout"]
    assert hours == ["11:00", "15:00", "19:00"]
    for e in entries:
        assert verify_signature(public, e.document.body, e.document.signature)  # the public key alone
        assert claimed_station(e.document.kind, e.document.content()) == e.document.station
        assert e.receipt is None and e.attempts == 0
    closed = next(e.document.content() for e in entries if e.document.kind == "polls-closed")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert closed["ballots_cast"] == results["results"]["ballots_cast"]

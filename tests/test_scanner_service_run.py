"""`ballotbox service run scanner` as systemd runs it, and `ballotbox committee` reaching it.

Real subprocesses on the simulator's settings: the service's own loop takes the voters' ballots from the
simulated room (simulator.room, its world in STATE/world/), the committee acts over the control socket
with the test PINs, a SIGKILL in the middle of the day is a power cut, and after the restart the box's
counts agree with the sheets physically in the box.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from config.election import SAMPLE_ELECTION, load_election
from firmware.common.control import ControlError, request, socket_path
from simulator.credentials import TEST_PINS
from simulator.room import check_day, voters_done
from simulator.world import JOURNAL, replay

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ENV.pop("NOTIFY_SOCKET", None)
PINS = {role.value: pin for role, pin in TEST_PINS.items()}
VOTERS, SEED, SPEED = 8, 11, 6000


def _start(state: Path, *extra: str, env: dict[str, str] = ENV) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ballotbox", "service", "run", "scanner", "--state-dir", str(state),
           "--voters", str(VOTERS), "--seed", str(SEED), "--speed", str(SPEED), "--interval", "0.5", *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if _ask(state, "status", "operator")["ok"]:
                return proc
        except ControlError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the service never answered")


def _ask(state: Path, action: str, role: str, **fields: object) -> dict:
    return request(socket_path(state / "device", "scanner"), {"action": action, "role": role, "pin": PINS[role],
                                                               **fields})


def _ok(state: Path, action: str, role: str, **fields: object) -> dict:
    answer = _ask(state, action, role, **fields)
    assert answer["ok"], answer
    return answer


def _wait(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _counted(state: Path) -> int:
    return sum(_ok(state, "status", "operator")["status"]["cast"].values())


def _committee(state: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ballotbox", "committee", *args, "--state-dir", str(state)],
                          check=False, env=ENV, input=stdin, capture_output=True, text=True, timeout=60)


def _in_box_by_style(state: Path, election) -> dict[str, int]:
    import random

    from simulator.day import sheet_for
    from simulator.voters import make_population

    population = make_population(election, VOTERS, random.Random(f"{SEED}:population"))
    world = replay(state / "world" / JOURNAL)
    cache: dict = {}
    return dict(Counter(sheet_for(population, SEED, key, cache).style for key in world.box))


def test_a_day_under_the_service_loop_survives_sigkill_and_counts_agree_with_the_box(tmp_path: Path) -> None:
    election = load_election(SAMPLE_ELECTION)
    state = tmp_path / "box"
    proc = _start(state)
    try:
        # the service never opens by itself: the committee's steps, each with its PIN
        assert _ok(state, "status", "operator")["status"]["polls"] == "setup"
        refused = _ask(state, "open", "president")
        assert not refused["ok"] and refused["error"] == "not_allowed", refused
        _ok(state, "self-test", "technician")
        assert _ok(state, "zero-report", "operator")["message"] == "zero report printed"
        _ok(state, "open", "president")
        _wait(lambda: _counted(state) >= 3, "three ballots counted")
    finally:
        proc.kill()  # the power cut: SIGKILL at whatever the box was doing
        proc.wait()
    assert voters_done(state) < VOTERS, "the kill came after the day; make the day slower"

    proc = _start(state)
    try:
        status = _ok(state, "status", "operator")["status"]
        assert status["polls"] == "paused" and "polls_paused" in status["recovery"], status
        assert status["cast"] == {s: _in_box_by_style(state, election).get(s, 0) for s in status["cast"]}
        refused = _ask(state, "resume", "operator")
        assert not refused["ok"] and refused["error"] == "refused" and "president" in refused["message"]
        _ok(state, "self-test", "technician")
        _ok(state, "resume", "president")
        _wait(lambda: voters_done(state) == VOTERS, "every voter")
        closed = _ok(state, "close", "president")
        assert closed["status"]["polls"] == "closed_final"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopped at a ballot boundary: polls closed_final" in out
    assert check_day(state, election) == []
    assert (state / "device" / "reports" / "results-report.json").exists()
    check = subprocess.run([sys.executable, "-m", "ballotbox", "log", "verify",
                            str(state / "device" / "scanner-events.jsonl"), "--key",
                            str(state / "device" / "device-key.pub.pem")], check=False, env=ENV, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = (state / "device" / "scanner-events.jsonl").read_text()
    assert '"control.request"' in log and '"uid"' in log and "222222" not in log  # never the PIN


def test_committee_cli_exit_codes_and_refusals(tmp_path: Path) -> None:
    state = tmp_path / "box"
    pin_file = tmp_path / "president.pin"
    pin_file.write_text("222222\n")
    gone = _committee(state, "status", "--role", "operator", "--pin-stdin", stdin="111111\n")
    assert gone.returncode == 2 and "no service is listening" in gone.stderr, gone.stderr
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd's end of Type=notify
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(10)
    # station time as the wall's: a lockout lasts
    proc = _start(state, "--no-faults", "--speed", "1", env={**ENV, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        received = [notify.recv(4096).decode() for _ in range(3)]
        assert received[:2] == ["READY=1", "WATCHDOG=1"] and received[2].startswith("STATUS=polls setup"), received
        not_yet = _committee(state, "open", "--role", "president", "--pin-file", str(pin_file))
        assert not_yet.returncode == 1 and "(not_allowed)" in not_yet.stderr and "zero report" in not_yet.stderr
        for n in range(3):
            wrong = _committee(state, "pause", "--role", "president", "--pin-stdin", stdin="000000\n")
            assert wrong.returncode == 1
        assert "(locked)" in wrong.stderr and "locked until" in wrong.stderr, wrong.stderr
        # locked: even the right PIN is refused now, and the other roles are not locked
        assert "(locked)" in _committee(state, "pause", "--role", "president", "--pin-file", str(pin_file)).stderr
        ok = _committee(state, "status", "--role", "technician", "--pin-stdin", stdin="333333\n")
        assert ok.returncode == 0 and ok.stdout.startswith("status: polls setup"), ok.stdout
        empty = tmp_path / "empty.pin"
        empty.write_text("\n")
        bad = _committee(state, "status", "--role", "operator", "--pin-file", str(empty))
        assert bad.returncode == 2 and "no PIN" in bad.stderr
        missing = _committee(state, "status", "--role", "operator", "--pin-file", str(tmp_path / "nope"))
        assert missing.returncode == 2 and "no such file" in missing.stderr
        no_answer = _committee(state, "clear-fault", "--role", "operator", "--pin-stdin", "--sheet-removed", "no",
                               stdin="111111\n")
        assert no_answer.returncode == 1 and "no paper-path fault" in no_answer.stderr
        assert "Traceback" not in "".join(p.stderr for p in (not_yet, wrong, bad, missing, no_answer))
        # a second service on the same box is refused before it touches the store
        second = subprocess.run([sys.executable, "-m", "ballotbox", "service", "run", "scanner", "--state-dir",
                                 str(state)], check=False, env=ENV, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "already running" in second.stderr, second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        notify.close()
    assert proc.returncode == 0
    assert not socket_path(state / "device", "scanner").exists()


@pytest.mark.parametrize("args, words", [
    (["--voters", "3", "--settings", str(ROOT / "config" / "device-pi.json")], "only with the simulator's settings"),
    (["--cycles", "2"], "not an option of the scanner (it runs until SIGTERM)"),
    (["--speed", "0"], "--speed 0"),
])
def test_service_run_scanner_refuses_bad_options(tmp_path: Path, args: list[str], words: str) -> None:
    run = subprocess.run([sys.executable, "-m", "ballotbox", "service", "run", "scanner", "--state-dir",
                          str(tmp_path / "s"), *args], check=False, env=ENV, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr, run.stderr

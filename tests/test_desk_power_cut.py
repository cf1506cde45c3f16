"""Power cuts at the authentication desk: a real `ballotbox simulate` process killed with SIGKILL at the
desk's store commits (firmware.common.failpoints), resumed with `--resume`, until the desk's report agrees
with what the simulated desk did. Nothing of the desk's day is deleted, a voter cut off mid-visit starts
again, a voter decided just before the cut is not taken for a second vote, and the desk's log stays intact."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from firmware.auth.store import AuthStore
from firmware.common.eventlog import verify_log

ROOT = Path(__file__).resolve().parents[1]
DAY = ["--voters", "6", "--seed", "9", "--desk-voters", "6"]

# The child installs a failpoint handler that kills its own process (SIGKILL: no clean-up of any kind)
# at the n-th hit of one named point, then runs the CLI.
_CHILD = """
import os, signal, sys
from firmware.common import failpoints
from ballotbox.cli import main
point, nth = sys.argv[1], int(sys.argv[2])
hits = [0]
def handler(name):
    if name == point:
        hits[0] += 1
        if hits[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
failpoints.install(handler)
sys.exit(main(sys.argv[3:]))
"""


def _run(point: str, nth: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _CHILD, point, str(nth), "simulate", "--quiet", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def _killed(point: str, nth: int, *args: str) -> None:
    run = _run(point, nth, *args)
    assert run.returncode == -signal.SIGKILL, f"not killed at {point} #{nth}: " + run.stdout + run.stderr


def _desk_events(out: Path) -> list[dict]:
    path = out / "state" / "world" / "desk.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.endswith("}")]


def _store(out: Path) -> closing[AuthStore]:
    return closing(AuthStore(out / "state" / "device" / "auth", None))


def _resumed(out: Path, point: str = "none", nth: int = 0) -> subprocess.CompletedProcess[str]:
    return _run(point, nth, "--resume", "--out", str(out))


def test_a_desk_day_cut_three_times_resumes_and_its_report_agrees(tmp_path: Path) -> None:
    out = tmp_path / "day"
    # 1. killed right after the store took a visit (the 5th commit: creation, opening, then visits),
    #    before the world saw the voter leave: the visit stands, the voter is not a second vote
    _killed("auth.commit.after", 5, *DAY, "--out", str(out))
    with _store(out) as store:
        assert store.counters()["visits"] == 3 and store.last_visit() is not None
    events = _desk_events(out)
    assert events[-1]["e"] == "visit" and sum(e["e"] == "done" for e in events) == 2

    # 2. resumed, then killed just before the store takes the second visit after the boot: not recorded
    run = _resumed(out, "auth.commit.before", 2)
    assert run.returncode == -signal.SIGKILL, run.stdout + run.stderr
    with _store(out) as store:
        assert store.counters()["visits"] == 4  # the one decided after the boot; the cut one left nothing
        assert store.counters()["impersonation"] <= 1  # nobody was taken for a second vote by the cut

    # 3. resumed, then killed after the close, before the wipe
    run = _resumed(out, "auth.polls.closed", 1)
    assert run.returncode == -signal.SIGKILL, run.stdout + run.stderr
    assert (out / "state" / "device" / "auth" / "register.bbr").exists()  # not wiped yet

    # 4. resumed, then killed inside the wipe: the extract shredded, its key not yet
    run = _resumed(out, "auth.register.shredded", 1)
    assert run.returncode == -signal.SIGKILL, run.stdout + run.stderr
    auth = out / "state" / "device" / "auth"
    assert not (auth / "register.bbr").exists() and (auth / "auth.key").exists()

    # 5. resumed to the end: the wipe is finished as it was allowed, the report agrees with the world
    run = _resumed(out)
    assert run.returncode == 0, run.stdout + run.stderr
    text = " ".join(run.stdout.split())
    assert "AUTHENTICATION REPORT AGREES" in text and "TALLIES AGREE" in text
    assert not (auth / "register.bbr").exists() and not (auth / "auth.key").exists()
    report = json.loads((out / "reports" / "auth-report.json").read_text(encoding="utf-8"))
    assert report["deletion"]["records"] == 1200 and report["deletion"]["authorized_by"] == "president"
    events = _desk_events(out)
    assert sum(e["e"] == "boot" for e in events) == 4
    assert [e["e"] for e in events].count("opened") == 1  # opened once: a restart never reopens the polls
    done = [e["i"] for e in events if e["e"] == "done"]
    assert len(done) == len(set(done))  # every visit decided once

    # the first boot found the voter decided just before the cut and said so on the committee's screen
    first = _run("none", 0, "--resume", "--out", str(out))  # a finished day resumed again: its report is made again
    assert first.returncode == 0, first.stdout + first.stderr
    assert "AUTHENTICATION REPORT AGREES" in " ".join(first.stdout.split())

    key = serialization.load_pem_public_key((out / "state" / "device" / "device-key.pub.pem").read_bytes())
    check = verify_log(out / "state" / "device" / "auth" / "auth-events.jsonl", key)  # type: ignore[arg-type]
    assert check.intact, check.problems
    assert check.events.get("power.recovered") == 4  # four boots; the finished day resumed again writes nothing
    assert check.events.get("register.wipe_started") == 1 and check.events.get("register.wiped") == 1
    assert check.events.get("polls.opened") == 1 and check.events.get("polls.closed") == 1
    log = (out / "state" / "device" / "auth" / "auth-events.jsonl").read_text(encoding="utf-8")
    assert "posljednja posjeta" not in log  # who was at the desk is on the screen, never in the log


def test_a_desk_cut_while_it_was_provisioned_is_provisioned_again(tmp_path: Path) -> None:
    out = tmp_path / "day"
    _killed("auth.commit.after", 1, *DAY, "--out", str(out))  # the store made, the polls not yet opened
    with _store(out) as store:
        assert store.polls("opened_at") is None
    run = _resumed(out)
    assert run.returncode == 0, run.stdout + run.stderr
    text = " ".join(run.stdout.split())
    assert "provisioned again" in text and "AUTHENTICATION REPORT AGREES" in text

"""A small simulated desk day: the authentication report agrees with the simulator's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

from config.election import load_election
from firmware.common.i18n import Messages
from firmware.common.reports import report_to_json
from simulator.auth_desk import DeskMix, run_desk

ELECTION = load_election(Path(__file__).resolve().parents[1] / "config/elections/municipal-2024-sample.json")


def test_a_small_desk_day_agrees_with_its_ground_truth(tmp_path: Path) -> None:
    mix = DeskMix(corrupt_document=0.2, passport=0.2)
    result = run_desk(ELECTION, 10, 11, tmp_path, Messages.for_language("bs"), registered=40, mix=mix)
    assert result.differences == []
    assert result.agree
    truth = result.truth
    # every case of the desk happened at least once
    assert truth["impersonation"] >= 2 and truth["no_template"] == 1 and truth["not_in_register"] == 1
    assert truth["failures"] >= 1 and truth["attempts"]["2"] >= 1  # type: ignore[index]
    report = result.report
    assert report.registered_voters == 40 and report.deletion is not None
    assert report.deletion.records == 40 and report.deletion.templates == 39
    assert report.deletion.sensor_templates_after == 0
    assert not (tmp_path / "register.bbr").exists() and not (tmp_path / "auth.key").exists()
    assert report_to_json(report)["report"] == "auth_report"


def test_the_desk_log_holds_polls_events_only_and_no_voter_name(tmp_path: Path) -> None:
    result = run_desk(ELECTION, 6, 5, tmp_path, Messages.for_language("en"))
    names = {p.name for p in result.report.reidentifications}
    log = (tmp_path / "auth-events.jsonl").read_text(encoding="utf-8")
    assert names and not any(n in log for n in names)
    events = [json.loads(line)["event"] for line in log.splitlines()]
    assert [e for e in events if not e.startswith("log.")] == ["polls.opened", "register.opened", "polls.closed",
                                                               "user.pin_accepted", "register.wipe_started",
                                                               "register.wiped"]
    assert events[0] == "log.opened" and events[-2:] == ["log.closed", "log.head_signed"]

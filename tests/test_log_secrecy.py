"""The three services' logs share nothing that links or orders ballots (VVSG 2.0 10.2.4-B, ARCHITECTURE
"the secrecy wall"): no event per ballot or per voter, no vote or voter field, no id or sequence of one
log in another, no time in common but the polls' own opening and closing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from config.election import SAMPLE_ELECTION, load_election
from firmware.common.eventlog import GENESIS, verify_log
from firmware.common.events import FORBIDDEN_FIELDS
from firmware.common.i18n import Messages
from firmware.common.identity import load_or_provision
from firmware.common.roles import Role
from hal.clock import station_time
from simulator.auth_desk import run_desk
from simulator.day import FaultRates, run_day

ELECTION = load_election(SAMPLE_ELECTION)
NO_FAULTS = FaultRates(0, 0, 0, 0)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _day(root: Path, voters: int, desk_voters: int) -> dict[str, list[dict]]:
    """A day of the scanner (with its room camera's recorder) and of the desk: the three services' logs."""
    messages = Messages.for_language("en")
    result = run_day(ELECTION, voters, 3, root, messages, faults=NO_FAULTS)
    device = root / "device"
    identity = load_or_provision(device, "BB-SIM-0001")
    run_desk(ELECTION, desk_voters, 3, device / "auth", messages, identity=identity)
    logs = {"scanner": device / "scanner-events.jsonl", "auth": device / "auth" / "auth-events.jsonl",
            "video": device / "video" / "video-events.jsonl"}  # the day's recorder
    for path in logs.values():
        assert verify_log(path, identity.key.public_key()).problems == []
    records = {name: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
               for name, path in logs.items()}
    records["_cvrs"] = [{"ids": [c.get("UniqueId") for c in _cvrs(result)]}]
    return records


def _cvrs(result: object) -> list[dict]:
    docs = {d.kind: d for d in result.documents}  # type: ignore[attr-defined]
    return json.loads(docs["cvr-report"].body)["CVR"]


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    return (_day(tmp_path_factory.mktemp("few"), 3, 4), _day(tmp_path_factory.mktemp("many"), 9, 8))


def _shape(records: list[dict]) -> list[tuple[str, str]]:
    return [(r["event"], r["at"]) for r in records]


def test_no_log_grows_with_the_ballots_or_the_voters(days: tuple[dict, dict]) -> None:
    """Three voters or nine, four at the desk or eight: the same events at the same times. Nothing in
    any log happens once per ballot or per voter, so no log can put ballots or voters in order."""
    few, many = days
    for service in ("scanner", "auth", "video"):
        assert _shape(few[service]) == _shape(many[service]), service
    # each committee action behind its role's PIN (issue 12, item 8), and what the action did
    assert [(r["event"], r["detail"].get("action")) for r in few["scanner"] if not r["event"].startswith("log.")] == [
        ("user.pin_accepted", "self_test"), ("device.self_test", None), ("polls.configured", None),
        ("user.pin_accepted", "print_report"), ("polls.zero_report", None),
        ("user.pin_accepted", "open_polls"), ("polls.opened", None),
        ("polls.turnout", None), ("polls.turnout", None), ("polls.turnout", None),
        ("user.pin_accepted", "close_polls"), ("polls.closed", None)]


def test_no_log_line_carries_a_vote_a_voter_or_a_ballots_id(days: tuple[dict, dict]) -> None:
    for day in days:
        cvr_ids = set(day["_cvrs"][0]["ids"])
        assert len(cvr_ids) >= 6
        for service in ("scanner", "auth", "video"):
            text = json.dumps(day[service])
            assert {k for r in day[service] for k in r["detail"]} & FORBIDDEN_FIELDS == set()
            assert [i for i in cvr_ids if i in text] == [] and UUID.findall(text) == []


def _values(records: list[dict]) -> set[str]:
    out: set[str] = set()
    for r in records:
        out |= {str(r["seq"]), r["prev"], r["hash"], r["at"]}
        for key, value in r["detail"].items():
            for item in value if isinstance(value, list) else [value]:
                out.add(f"{key}={item}")
    return out


def test_the_three_logs_share_no_id_sequence_or_time_but_the_boxs_identity_and_the_schedule(
        days: tuple[dict, dict]) -> None:
    for day in days:
        scanner, auth, video = (day[s] for s in ("scanner", "auth", "video"))
        identity = {f"{k}={v}" for k, v in scanner[0]["detail"].items() if k in ("device_id", "key_fingerprint",
                                                                                   "format")}
        # the day's schedule is public: opening, closing and the turnout hours (the video signs hourly too)
        # and the box's power-on (05:30 in simulation), when the scanner and the room camera both start
        polls = {station_time(ELECTION.date, t).isoformat() for t in
                 (ELECTION.polls.opening, ELECTION.polls.closing, *ELECTION.polls.turnout_reports, "05:30")}
        # each log counts its own lines (seq, and the seq a signed head names)
        small_seqs = {v for n in range(len(scanner) + len(auth) + len(video)) for v in (str(n), f"head_seq={n}")}
        states = {"state=open", "state=closed_final"}
        # the roles are three words, the same on every box (the president closes the polls and has the desk wiped)
        roles = {f"role={role.value}" for role in Role}
        for a, b in ((scanner, auth), (scanner, video), (auth, video)):
            shared = _values(a) & _values(b) - identity - polls - small_seqs - states - roles - {GENESIS}
            assert shared == set()
        logs = [r["detail"]["log_id"] for r in (scanner[0], auth[0], video[0])]
        assert len(set(logs)) == 3 and all(r[0]["prev"] == "0" * 64 for r in (scanner, auth, video))


def test_the_auth_log_holds_no_time_inside_the_voting_hours(days: tuple[dict, dict]) -> None:
    opening = station_time(ELECTION.date, ELECTION.polls.opening).isoformat()
    closing = station_time(ELECTION.date, ELECTION.polls.closing).isoformat()
    for day in days:
        assert {r["at"] for r in day["auth"]} <= {opening, closing}

"""The secrecy wall over a whole simulated day (ARCHITECTURE.md "Services and the secrecy wall"): after a
day with the scanner and the authentication desk, nothing the auth service stored or logged can be joined
with what the scanner stored to link a voter to a ballot or to order ballots — no shared id, no shared
sequence, no per-voter time but the two records the law asks for (to the minute), no vote on the auth side
and no voter on the scanner side."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from ballotbox.cli import main
from biometrics.documents import DocumentError, parse_jmbg

ISO_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d:\d\d")


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wall") / "day"
    assert main(["simulate", "--voters", "16", "--desk-voters", "16", "--seed", "5", "--out", str(out),
                 "--quiet", "--no-faults"]) == 0
    return out


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _auth(day: Path) -> dict[str, bytes]:
    return _files(day / "state" / "device" / "auth")


def _scanner(day: Path) -> dict[str, bytes]:
    return {name: data for name, data in _files(day / "state" / "device").items() if name.startswith("scanner")}


def test_the_desk_ran_and_its_register_and_key_are_gone(day: Path) -> None:
    assert set(_auth(day)) <= {"auth.sqlite", "auth.sqlite-journal", "auth-events.jsonl"}
    report = json.loads((day / "reports" / "auth-report.json").read_text(encoding="utf-8"))
    assert report["deletion"]["key_destroyed"] is True and report["deletion"]["sensor_templates_after"] == 0
    assert report["authenticated"] + report["reidentified"] > 0


def test_no_id_of_one_service_appears_in_the_other_services_files(day: Path) -> None:
    scanner_db = sqlite3.connect(day / "state" / "device" / "scanner.sqlite")
    slot_ids = [row[0] for row in scanner_db.execute("SELECT slot_id FROM cvr_slot")]
    scanner_db.close()
    auth_db = sqlite3.connect(day / "state" / "device" / "auth" / "auth.sqlite")
    auth_ids = [row[0] for row in auth_db.execute("SELECT pseudonym FROM voter")]
    auth_ids += [row[0] for row in auth_db.execute("SELECT id FROM legal_record")]
    auth_db.close()
    assert slot_ids and auth_ids
    auth_bytes, scanner_bytes = b"".join(_auth(day).values()), b"".join(_scanner(day).values())
    assert [i for i in slot_ids if i in auth_bytes] == []
    assert [i for i in auth_ids if i in scanner_bytes] == []


def test_the_auth_side_holds_no_vote_and_the_scanner_side_no_voter(day: Path) -> None:
    auth_bytes = b"".join(_auth(day).values())
    for vote_key in (b'"candidate', b'"list', b'"outcome', b'"contest', b'"style'):
        assert vote_key not in auth_bytes
    scanner_bytes = b"".join(_scanner(day).values())
    jmbgs = []
    for run in re.findall(rb"(?<!\d)\d{13}(?!\d)", scanner_bytes):
        try:
            parse_jmbg(run.decode())
            jmbgs.append(run)
        except DocumentError:
            pass
    assert jmbgs == []
    report = json.loads((day / "reports" / "auth-report.json").read_text(encoding="utf-8"))
    names = {r["name"] for r in report["reidentifications"] + report["impersonations"]}
    assert [n for n in names if n.encode() in scanner_bytes] == []


def test_the_auth_side_keeps_no_time_order_but_the_polls_and_the_legal_records_to_the_minute(day: Path) -> None:
    log = [json.loads(line) for line in _auth(day)["auth-events.jsonl"].decode().splitlines()]
    assert [e["event"] for e in log if not e["event"].startswith("log.")] == [
        "polls.opened", "register.opened", "polls.closed", "user.pin_accepted", "register.wipe_started",
        "register.wiped"]
    db = sqlite3.connect(day / "state" / "device" / "auth" / "auth.sqlite")
    legal = [bytes(row[0]) for row in db.execute("SELECT body FROM legal_record")]
    meta = [bytes(row[0]) for row in db.execute("SELECT value FROM meta")]
    db.close()
    legal_times = [t for body in legal for t in ISO_TIME.findall(body)]
    assert len(legal_times) == len(legal)  # one time per legal record, none elsewhere in it
    assert all(t[17:19] == b"00" and b"." not in t for t in legal_times)  # to the minute
    polls_times = {t for value in meta for t in ISO_TIME.findall(value)}
    assert {t.encode() for e in log for t in [e["at"]]} <= polls_times
    # Beyond the legal records and the polls' two times, the store holds no time at all.
    stored = _auth(day)["auth.sqlite"]
    assert set(ISO_TIME.findall(stored)) <= set(legal_times) | polls_times


def test_the_day_ends_with_a_signed_export_and_a_deletion_record_that_verify(day: Path) -> None:
    """Issue 12, item 7: OUT/export verifies with the device's public key alone; the wipe is on record."""
    export = day / "export"
    assert main(["export", "verify", str(export), "--key", str(day / "state" / "device" / "device-key.pub.pem")]) == 0
    listed = {f["path"] for f in json.loads((export / "index.json").read_bytes())["files"]}
    assert {"logs/scanner-events.jsonl", "logs/auth-events.jsonl", "cdf/election-report.json",
            "cdf/election-report.json.sig", "cdf/cvr-report.json", "reports/deletion-record.png",
            "reports/deletion-record.escpos", "reports/deletion-record.json", "device-key.pub.pem"} <= listed
    record = json.loads((export / "reports" / "deletion-record.json").read_text(encoding="utf-8"))
    assert record["register_file_deleted"] and record["key_destroyed"] and record["sensor_templates_after"] == 0
    assert record["authorized_by"] == "president"  # the simulated president's TEST PIN, never the PIN itself
    assert "222222" not in (export / "reports" / "deletion-record.json").read_text(encoding="utf-8")

"""The event log: chained, signed, durable; verify_log names each kind of tampering."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.common.eventlog import (
    SIGN_EVERY,
    EventLog,
    EventLogError,
    line_hash,
    verify_log,
)
from firmware.common.events import (
    AUTH_KINDS,
    EVENTS,
    FORBIDDEN_FIELDS,
    SCANNER_KINDS,
    Service,
)
from firmware.common.identity import DeviceIdentity

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2024, 10, 6, 7, 0, tzinfo=timezone(timedelta(hours=2)))


class Clock:
    def __init__(self) -> None:
        self.t = START

    def now(self) -> datetime:
        self.t += timedelta(minutes=1)
        return self.t


@pytest.fixture
def identity() -> DeviceIdentity:
    return DeviceIdentity("BB-TEST-0001", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def day_log(path: Path, identity: DeviceIdentity) -> Path:
    """A short scanner day: 11 lines, the events and the signed heads after each polls transition and
    at close (line 4 seq 3 and line 6 seq 5 and line 11 seq 10)."""
    log = EventLog.open(path, Service.SCANNER, identity, Clock().now)
    log.append("device.self_test", {"ok": True, "failed": []})
    log.append("polls.configured", {"state": "closed-initial"})
    log.append("polls.opened", {"state": "open"})
    log.append("feeder.fault", {"fault": "paper_jam", "state": "scanning"})
    log.append("polls.turnout", {"hour": "11:00", "ballots_cast": 41})
    log.append("camera.capture_failed")
    log.close()
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write(path: Path, rows: list[bytes]) -> None:
    path.write_bytes(b"".join(r + b"\n" for r in rows))


def rehash(raw: bytes, **changes: object) -> bytes:
    record = json.loads(raw)
    record.update(changes)
    record["hash"] = line_hash(record)
    return rfc8785.dumps(record)


# -- the catalogue -------------------------------------------------------------------------------
def test_no_catalogued_event_may_carry_a_vote_or_a_voter() -> None:
    assert {e.id: sorted(e.fields & FORBIDDEN_FIELDS) for e in EVENTS.values() if e.fields & FORBIDDEN_FIELDS} == {}


def test_every_kind_the_scanner_and_auth_stores_write_has_a_catalogue_id() -> None:
    assert sorted(k for k, v in {**SCANNER_KINDS, **AUTH_KINDS}.items() if v not in EVENTS) == []


def test_a_detail_field_the_catalogue_does_not_declare_is_refused(tmp_path: Path, identity: DeviceIdentity) -> None:
    log = EventLog.open(tmp_path / "s.jsonl", Service.SCANNER, identity, Clock().now)
    with pytest.raises(EventLogError, match=r"\['contests'\] would put a vote"):
        log.append("feeder.fault", {"fault": "paper_jam", "contests": {"mayor": "c1"}})
    with pytest.raises(EventLogError, match="not to the scanner log"):
        log.append("register.wiped", {"records": 3})
    with pytest.raises(EventLogError, match="not in the catalogue"):
        log.append("ballot.cast", {})


# -- an intact log -------------------------------------------------------------------------------
def test_an_intact_log_verifies_with_its_signed_heads(tmp_path: Path, identity: DeviceIdentity) -> None:
    path = day_log(tmp_path / "scanner-events.jsonl", identity)
    check = verify_log(path, identity.key.public_key())
    assert check.problems == [] and check.torn == []
    assert check.closed and check.service == "scanner"
    assert len(lines(path)) == 11
    assert check.signed_heads == 3  # after the two polls transitions and at close
    first = json.loads(lines(path)[0])
    assert first["event"] == "log.opened" and first["prev"] == "0" * 64 and first["seq"] == 0


def test_another_devices_key_fails_every_signed_head(tmp_path: Path, identity: DeviceIdentity) -> None:
    path = day_log(tmp_path / "scanner-events.jsonl", identity)
    other = Ed25519PrivateKey.generate().public_key()
    check = verify_log(path, other)
    assert len(check.problems) == 3 and all("does not verify with this key" in p for p in check.problems)


def test_a_long_run_of_events_is_signed_every_sign_every_lines(tmp_path: Path, identity: DeviceIdentity) -> None:
    log = EventLog.open(tmp_path / "s.jsonl", Service.SCANNER, identity, Clock().now)
    for _ in range(3 * SIGN_EVERY):
        log.append("camera.capture_failed")
    check = verify_log(tmp_path / "s.jsonl", identity.key.public_key())
    assert check.problems == [] and check.signed_heads == 3


# -- each kind of tampering --------------------------------------------------------------------
def test_a_removed_line_is_named_by_its_seq(tmp_path: Path, identity: DeviceIdentity) -> None:
    path = day_log(tmp_path / "l.jsonl", identity)
    rows = lines(path)
    write(path, rows[:6] + rows[7:])  # line 7 = seq 6
    assert verify_log(path, identity.key.public_key()).problems == [
        "removed: seq 6, between line 6 (seq 5, log.head_signed) and line 7 (seq 7, polls.turnout)"]


def test_an_altered_line_is_named(tmp_path: Path, identity: DeviceIdentity) -> None:
    path = day_log(tmp_path / "l.jsonl", identity)
    rows = lines(path)
    rows[6] = rows[6].replace(b"paper_jam", b"cover_open")
    write(path, rows)
    assert verify_log(path).problems == ["line 7 (seq 6, feeder.fault): altered: its content does not match its hash"]


def test_an_altered_line_with_a_recomputed_hash_is_named_by_the_broken_link(tmp_path: Path,
                                                                            identity: DeviceIdentity) -> None:
    path = day_log(tmp_path / "l.jsonl", identity)
    rows = lines(path)
    rows[6] = rehash(rows[6], detail={"fault": "cover_open", "state": "scanning"})
    write(path, rows)
    assert verify_log(path).problems == [
        ("line 7 (seq 6, feeder.fault): altered: line 8 (seq 7, polls.turnout) chained another line after seq 6 "
        "(the line was rewritten with a new hash)")]


def test_a_rewritten_tail_fails_the_next_signed_head(tmp_path: Path, identity: DeviceIdentity) -> None:
    """Whoever rewrites every hash after a line keeps the chain whole; only the device key could sign it."""
    path = day_log(tmp_path / "l.jsonl", identity)
    rows = lines(path)
    prev = json.loads(rows[5])["hash"]
    for i in range(6, len(rows)):
        record = json.loads(rows[i])
        if i == 6:
            record["detail"] = {"fault": "cover_open", "state": "scanning"}
        if record["event"] == "log.head_signed":
            record["detail"]["head"] = prev
        record["prev"] = prev
        record["hash"] = line_hash(record)
        prev = record["hash"]
        rows[i] = rfc8785.dumps(record)
    write(path, rows)
    assert verify_log(path).problems == []  # the chain alone cannot tell
    assert verify_log(path, identity.key.public_key()).problems == [
        ("line 11 (seq 10, log.head_signed): the signature over the head does not verify with this key: lines "
        "7..10 were rewritten, or another key signed them")]


def test_an_inserted_line_is_named(tmp_path: Path, identity: DeviceIdentity) -> None:
    path = day_log(tmp_path / "l.jsonl", identity)
    rows = lines(path)
    forged = rehash(rows[6], seq=6, detail={"fault": "box_full", "state": "waiting"})  # same prev as line 7
    write(path, rows[:6] + [forged] + rows[6:])
    assert verify_log(path).problems == ["line 7 (seq 6, feeder.fault): inserted: it is not on the log's chain"]


def test_an_inserted_copy_and_an_inserted_stranger_are_named(tmp_path: Path, identity: DeviceIdentity) -> None:
    path = day_log(tmp_path / "l.jsonl", identity)
    rows = lines(path)
    write(path, rows[:8] + [rows[4], b'{"event": "polls.opened"}'] + rows[8:])
    assert verify_log(path).problems == [
        "line 10: not a log line (25 bytes): inserted or altered",
        "line 9 (seq 4, polls.opened): inserted: a copy of line 5"]


def test_reordered_lines_are_named(tmp_path: Path, identity: DeviceIdentity) -> None:
    path = day_log(tmp_path / "l.jsonl", identity)
    rows = lines(path)
    rows[6], rows[7] = rows[7], rows[6]
    write(path, rows)
    assert verify_log(path, identity.key.public_key()).problems == [
        "line 8 (seq 6, feeder.fault): reordered: by the chain it belongs after line 6 (seq 5)"]


def test_removed_signed_heads_are_found_with_the_key(tmp_path: Path, identity: DeviceIdentity) -> None:
    log = EventLog.open(tmp_path / "l.jsonl", Service.SCANNER, identity, Clock().now)
    for _ in range(2 * SIGN_EVERY + 4):
        log.append("camera.capture_failed")
    rows = [json.loads(r) for r in lines(tmp_path / "l.jsonl")]
    kept, prev = [], "0" * 64  # drop every signed head but the first (after log.resumed...) and re-chain
    for record in rows:
        if record["event"] == "log.head_signed":
            continue
        record["seq"], record["prev"] = len(kept), prev
        record["hash"] = line_hash(record)
        prev = record["hash"]
        kept.append(rfc8785.dumps(record))
    write(tmp_path / "l.jsonl", kept)
    problems = verify_log(tmp_path / "l.jsonl", identity.key.public_key()).problems
    assert problems == [("lines 1..37: 37 lines without a valid signed head after them; the box signs at least "
                        "every 16 (signatures were removed, or the lines rewritten)")]


# -- durability ----------------------------------------------------------------------------------
def test_a_torn_last_line_is_torn_not_tampering_and_the_chain_resumes(tmp_path: Path,
                                                                      identity: DeviceIdentity) -> None:
    path = tmp_path / "l.jsonl"
    log = EventLog.open(path, Service.SCANNER, identity, Clock().now)
    log.append("polls.opened", {"state": "open"})
    log.release()
    whole = path.read_bytes()
    torn = rfc8785.dumps({"v": 1, "event": "feeder.fault"})[:20]
    path.write_bytes(whole + torn)  # the power went during the write
    check = verify_log(path, identity.key.public_key())
    assert check.problems == [] and check.torn == [
        "line 4: torn by a power cut (20 bytes, no newline): the last line, never completed"]
    log = EventLog.open(path, Service.SCANNER, identity, Clock().now)
    log.append("feeder.fault", {"fault": "paper_jam", "state": "scanning"})
    log.close()
    check = verify_log(path, identity.key.public_key())
    assert check.problems == [] and check.closed
    assert check.torn == ["line 4: torn by a power cut (20 bytes), declared by line 5; the chain resumed there"]
    resumed = json.loads(lines(path)[4])
    assert resumed["event"] == "log.resumed" and resumed["detail"]["torn_bytes"] == 20
    assert resumed["prev"] == json.loads(lines(path)[2])["hash"]


def test_zeros_left_by_a_cut_are_torn_too(tmp_path: Path, identity: DeviceIdentity) -> None:
    path = tmp_path / "l.jsonl"
    EventLog.open(path, Service.SCANNER, identity, Clock().now).release()
    path.write_bytes(path.read_bytes() + b"\0" * 40 + b"\n")
    EventLog.open(path, Service.SCANNER, identity, Clock().now).close()
    check = verify_log(path, identity.key.public_key())
    assert check.problems == []
    assert check.torn == ["line 2: torn by a power cut (40 bytes), declared by line 3; the chain resumed there"]


def test_a_log_survives_sigkill_in_the_middle_of_a_day(tmp_path: Path) -> None:
    """A real process killed by SIGKILL while it logs; the next start resumes the chain."""
    path = tmp_path / "scanner-events.jsonl"
    script = textwrap.dedent(f"""
        import sys, time
        from datetime import datetime, timezone
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from firmware.common.eventlog import EventLog
        from firmware.common.identity import DeviceIdentity
        identity = DeviceIdentity("BB-TEST-0001", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
        log = EventLog.open({str(path)!r}, "scanner", identity, lambda: datetime.now(timezone.utc))
        print("ready", flush=True)
        while True:
            log.append("camera.capture_failed")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    while len(path.read_bytes()) < 40_000:
        time.sleep(0.005)  # the writer runs on; this loop only waits for enough lines
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    identity = DeviceIdentity("BB-TEST-0001", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    before = verify_log(path, identity.key.public_key())
    assert before.problems == [] and len(before.torn) <= 1
    EventLog.open(path, Service.SCANNER, identity, Clock().now).close()
    after = verify_log(path, identity.key.public_key())
    assert after.problems == [] and after.closed and len(after.torn) == len(before.torn)


def test_an_event_a_service_gets_wrong_is_noted_as_uncatalogued_and_never_stops_the_service(
        tmp_path: Path, identity: DeviceIdentity) -> None:
    log = EventLog.open(tmp_path / "s.jsonl", Service.SCANNER, identity, Clock().now)
    log.append_or_note("device.clock_checked", {"ok": True, "offset_s": 0.25, "ntp_server": "pool"})
    log.append_or_note("tamper.wire_cut", {"where": "lid"})
    noted = [json.loads(r) for r in lines(tmp_path / "s.jsonl")][1:]
    assert [(r["event"], r["detail"]["kind"]) for r in noted] == [
        ("log.uncatalogued", "device.clock_checked"), ("log.uncatalogued", "tamper.wire_cut")]
    assert "['ntp_server']" in noted[0]["detail"]["reason"]
    assert verify_log(tmp_path / "s.jsonl").problems == []


def test_the_scanner_store_mirrors_its_events_and_catches_up_after_a_cut(tmp_path: Path,
                                                                         identity: DeviceIdentity) -> None:
    from firmware.scanner.event_log import open_scanner_log
    from firmware.scanner.store import ScannerStore

    store = ScannerStore(tmp_path / "scanner.sqlite")
    store.log_event("feeder_fault", START, {"fault": "paper_jam", "state": "jammed"})  # before any log: a cut
    log = open_scanner_log(tmp_path, identity, Clock().now, store)
    store.log_event("turnout", START, {"hour": "11:00", "ballots_cast": 3})
    store.log_event("operator.sang", START, {"song": "la"})
    log.close()
    store.close()
    events = [json.loads(r)["event"] for r in lines(tmp_path / "scanner-events.jsonl")]
    assert [e for e in events if e != "log.head_signed"] == [
        "log.opened", "feeder.fault", "polls.turnout", "log.uncatalogued", "log.closed"]
    assert verify_log(tmp_path / "scanner-events.jsonl", identity.key.public_key()).problems == []


def test_a_quiet_half_hour_ends_with_a_signed_head(tmp_path: Path, identity: DeviceIdentity) -> None:
    times = iter(START + timedelta(minutes=10 * i) for i in range(100))
    log = EventLog.open(tmp_path / "s.jsonl", Service.SCANNER, identity, lambda: next(times))
    for _ in range(4):  # 10, 20, 30 minutes after the first line: the third is followed by a signature
        log.append("camera.capture_failed")
    events = [json.loads(r)["event"] for r in lines(tmp_path / "s.jsonl")]
    assert events == ["log.opened", "camera.capture_failed", "camera.capture_failed", "camera.capture_failed",
                      "log.head_signed", "camera.capture_failed"]

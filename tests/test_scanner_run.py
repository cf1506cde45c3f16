"""The scanner service's loop (firmware.scanner.run) in process: the watchdog fed only while the devices
answer, a paper-path fault cleared by the operator's request, a power cut while a fault was being cleared
waiting for the operator's answer, and the committee's refusals."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from config.election import Election
from firmware.common.control import Request
from firmware.common.i18n import Messages
from firmware.common.identity import load_or_provision
from firmware.common.roles import AccessControl
from firmware.scanner.run import ScannerRun
from firmware.scanner.service import ScannerService
from firmware.scanner.store import ScannerStore
from hal.panel import VoterChoice
from simulator.credentials import TEST_PINS, provision_test_pins
from simulator.devices import SimStation, build_sim_station
from simulator.voters import ContestIntent, Expected, Intent, new_sheet


class Notes:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(self, state: str) -> None:
        self.sent.append(state)


def _run(tmp_path: Path, election: Election, sim: SimStation, notes: Notes) -> ScannerRun:
    store = ScannerStore.for_election(tmp_path / "scanner.sqlite", election, rng=random.Random(1))
    access = AccessControl(provision_test_pins(tmp_path), sim.clock, store.log_event)
    svc = ScannerService(election, sim.devices, store, Messages.for_language("bs"),
                         load_or_provision(tmp_path, "BB-TEST-0001"), access=access)
    return ScannerRun(svc, None, notes, probe_interval_s=0.0, say=lambda line: None)


def _ask(run: ScannerRun, action: str, role: str, **fields: object) -> dict:
    return run.handle(Request({"action": action, "role": role, "pin": TEST_PINS[role], **fields}, None))  # type: ignore[index]


def _open(run: ScannerRun) -> None:
    for action, role in (("self-test", "technician"), ("zero-report", "operator"), ("open", "president")):
        answer = _ask(run, action, role)
        assert answer["ok"], answer


def _mayor_sheet(election: Election) -> object:
    valid = ContestIntent("nacelnik", Intent.VALID, frozenset({"m3"}), Expected("valid", None, ("m3",)))
    return new_sheet("N", (valid,), random.Random(3))


@pytest.fixture
def sim(election: Election) -> SimStation:
    return build_sim_station(election, random.Random(5))


def test_watchdog_starves_while_a_device_fails_and_ready_waits_for_a_healthy_probe(
        tmp_path: Path, election: Election, sim: SimStation) -> None:
    notes = Notes()
    run = _run(tmp_path, election, sim, notes)
    run.boot()
    sim.printer.paper_out = True
    run.step()
    assert "READY=1" not in notes.sent and "WATCHDOG=1" not in notes.sent
    assert any(n.startswith("STATUS=") and "printer" in n for n in notes.sent)
    sim.printer.paper_out = False
    run.step()
    assert notes.sent.count("READY=1") == 1 and "WATCHDOG=1" in notes.sent
    fed = notes.sent.count("WATCHDOG=1")
    sim.printer.paper_out = True  # a device gone quiet mid-day: no more feeding, systemd restarts the service
    for _ in range(3):
        run.step()
    assert notes.sent.count("WATCHDOG=1") == fed


def test_a_jam_waits_for_the_operators_clear_fault_and_the_watchdog_keeps_being_fed(
        tmp_path: Path, election: Election, sim: SimStation) -> None:
    notes = Notes()
    run = _run(tmp_path, election, sim, notes)
    run.boot()
    _open(run)
    sim.feeder.inject("jam_in")
    sim.panel.respond = lambda verdict, castable: VoterChoice.CAST
    sim.path.at_entry = _mayor_sheet(election)
    run.step()
    assert run.svc.fault == "paper_jam"
    assert not _ask(run, "clear-fault", "operator")["ok"]  # it must say whether a sheet was taken out
    fed = notes.sent.count("WATCHDOG=1")
    run._fed_at = None  # the next step may feed again at once
    run.step()  # the feeder's paper is the operator's business, not a failed device
    assert notes.sent.count("WATCHDOG=1") == fed + 1
    assert not _ask(run, "clear-fault", "president", sheet_removed=True)["ok"]
    sheet = sim.feeder.clear_jam()
    assert sheet is not None
    answer = _ask(run, "clear-fault", "operator", sheet_removed=True)
    assert answer["ok"] and answer["status"]["fault"] is None, answer
    sim.path.at_entry = sheet  # fed again
    run.step()
    assert run.svc.store.counts().cast["N"] == 1


def test_a_power_cut_while_clearing_a_jam_waits_for_the_operators_answer(
        tmp_path: Path, election: Election, sim: SimStation) -> None:
    run = _run(tmp_path, election, sim, Notes())
    run.boot()
    _open(run)
    sim.feeder.inject("jam_drop")  # the drop began: only the operator knows where the sheet went
    sim.panel.respond = lambda verdict, castable: VoterChoice.CAST
    sim.path.at_entry = _mayor_sheet(election)
    run.step()
    assert run.svc.fault == "paper_jam" and run.svc.store.intent_in_doubt
    sim.feeder.clear_jam()  # the operator has it in hand ... and the power goes
    run.svc.store.close()
    again = _run(tmp_path, election, sim, Notes())
    assert again.boot() == [] and again.awaiting_operator
    refused = _ask(again, "resume", "president")
    assert not refused["ok"] and "clear-fault" in refused["message"]
    answer = _ask(again, "clear-fault", "operator", sheet_removed=True)
    assert answer["ok"] and not again.awaiting_operator, answer
    assert "operator_taken_out" in answer["status"]["recovery"] and answer["status"]["polls"] == "paused"
    assert again.svc.store.counts().cast["N"] == 0
    assert _ask(again, "resume", "president")["ok"]


def test_unknown_actions_and_roles_are_bad_requests(tmp_path: Path, election: Election, sim: SimStation) -> None:
    run = _run(tmp_path, election, sim, Notes())
    run.boot()
    assert run.handle(Request({"action": "wipe-all", "role": "operator", "pin": "111111"}, None))["error"] == \
        "unknown_action"
    assert run.handle(Request({"action": "status", "role": "mayor", "pin": "1"}, None))["error"] == "bad_request"
    assert _ask(run, "status", "operator")["status"]["polls"] == "setup"
    assert run.handle(Request({"action": "status", "role": "operator", "pin": "000000"}, None))["error"] == "refused"


def test_the_uploaders_outbox_requests_take_only_a_receipt_signed_by_the_packages_receiver_key(
        tmp_path: Path, election: Election, sim: SimStation) -> None:
    import base64
    import hashlib
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from firmware.common.control import Peer
    from firmware.common.transmission.receipts import load_public_key_pem, sign_receipt
    from firmware.trust.signing import (
        TEST_RECEIVER_KEY,
        TEST_RECEIVER_PUBLIC_KEY,
        load_private_key,
    )

    run = _run(tmp_path, election, sim, Notes())
    run.receipt_key = load_public_key_pem(TEST_RECEIVER_PUBLIC_KEY.read_bytes(), "test")
    run.boot()
    _open(run)
    me, stranger = Peer(1, os.getuid(), 0), Peer(1, os.getuid() + 1, 0)
    unsent = run.handle(Request({"action": "outbox-unsent"}, me))
    assert unsent["ok"] and len(unsent["entries"]) == 1 and unsent["summary"][-1] == "Poslano CIK-u: 0 od 1"
    assert run.handle(Request({"action": "outbox-unsent"}, stranger))["error"] == "refused"
    entry = unsent["entries"][0]
    doc_hash = hashlib.sha256(base64.b64decode(entry["body"])).hexdigest()
    fields = {"hash": doc_hash, "station": "089A012", "kind": entry["kind"], "device": "BB-TEST-0001",
              "received_at": "2024-10-06T05:01:00Z", "receipt_id": "r-1"}
    forged = sign_receipt(fields, Ed25519PrivateKey.generate())  # a receiver of its own, or anyone on the path
    ack = {"action": "outbox-acknowledge", "hash": doc_hash, "at": "2024-10-06T07:01:00+02:00"}
    refused = run.handle(Request({**ack, "receipt": forged}, me))
    assert not refused["ok"] and "not by the CEC receiver's key" in refused["message"]
    assert run.svc.store.unsent()
    real = sign_receipt(fields, load_private_key(TEST_RECEIVER_KEY))
    assert run.handle(Request({**ack, "receipt": real}, me))["ok"]
    assert not run.svc.store.unsent()


def test_the_simulated_room_clears_paper_path_faults_over_the_control_socket_and_counts_agree(
        tmp_path: Path, election: Election) -> None:
    """Many jams, double sheets and open covers: the room's operator sees the box call (ATTENTION), asks its
    status and clears the fault with the operator's PIN over the real socket; every count agrees."""
    import threading

    from firmware.common.control import ControlServer, socket_path
    from simulator.day import FaultRates
    from simulator.room import ServiceRoom, check_day, room_parameters, voters_done

    state = tmp_path / "box"
    day = room_parameters(state, 6, 5, Path("sample.json"))
    room = ServiceRoom(state, election, voters=day["voters"], seed=day["seed"], speed=20000,
                       faults=FaultRates(jam_in=0.15, jam_drop=0.15, double=0.1, cover=0.05))
    device = state / "device"
    device.mkdir(parents=True)
    store = ScannerStore.for_election(device / "scanner.sqlite", election, rng=random.Random(1))
    svc = ScannerService(election, room.devices, store, Messages.for_language("bs"),
                         load_or_provision(device, "BB-TEST-0001"),
                         access=AccessControl(provision_test_pins(device), room.clock, store.log_event))
    server = ControlServer(socket_path(device, "scanner"))
    run = ScannerRun(svc, server, Notes(), say=lambda line: None)
    run.boot()
    _open(run)
    room.start(server.path)
    stop = threading.Event()
    deadline = time.monotonic() + 120

    def watch() -> None:  # the store belongs to the loop's thread: the loop runs here, the watcher beside it
        while voters_done(state) < 6 and room.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        run.loop(stop)
        assert voters_done(state) == 6, "the voters did not finish"
        assert room.error is None
        closed = _ask(run, "close", "president")  # the results report is printed: the room's paper
        assert closed["ok"], closed
    finally:
        room.stop()
        server.close()
    faults = [e for e in store.events() if e.kind == "feeder_fault"]
    cleared = [e for e in store.events() if e.kind == "user.action" and e.detail.get("action") == "fault_cleared"]
    assert len(faults) >= 2 and len(cleared) == len(faults), (len(faults), len(cleared))
    store.close()
    assert check_day(state, election) == []


def test_the_control_socket_never_removes_a_file_that_is_not_a_socket_nor_changes_a_folder(tmp_path: Path) -> None:
    import os
    import stat

    from firmware.common.control import ControlError, ControlServer, request

    os.chmod(tmp_path, 0o755)
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(ControlError, match="is not a socket"):
        ControlServer(precious)
    assert precious.read_text() == "keep me"
    server = ControlServer(tmp_path / "s.sock")
    try:
        assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o755  # a folder given is left as it is
        assert stat.S_IMODE(os.stat(tmp_path / "s.sock").st_mode) == 0o660
        with pytest.raises(ControlError, match="another service already listens"):
            ControlServer(tmp_path / "s.sock")
    finally:
        server.close()
    made = ControlServer(tmp_path / "control" / "x.sock")  # the folder it makes is 0750
    made.close()
    assert stat.S_IMODE(os.stat(tmp_path / "control").st_mode) == 0o750
    with pytest.raises(ControlError, match="no service is listening"):
        request(tmp_path / "control" / "x.sock", {"action": "status"})


def test_the_watchdog_is_fed_beside_a_long_cycle_but_not_past_its_bound(
        tmp_path: Path, election: Election, sim: SimStation) -> None:
    """A voter has 60 s to choose (longer than WatchdogSec): the thread beside the loop feeds while a cycle
    runs, and stops once the cycle has run MAX_CYCLE_S - a hung cycle is a restart."""
    from firmware.scanner.run import MAX_CYCLE_S

    now = [1000.0]
    notes = Notes()
    run = _run(tmp_path, election, sim, notes)
    run.wall = lambda: now[0]
    run.boot()
    run.step()  # a healthy probe
    assert not run.cycle_beat()  # no cycle: the loop itself feeds
    run._cycle_started = now[0]
    now[0] += 45.0  # the voter still deciding
    fed = notes.sent.count("WATCHDOG=1")
    assert run.cycle_beat() and notes.sent.count("WATCHDOG=1") == fed + 1
    now[0] += MAX_CYCLE_S
    assert not run.cycle_beat()

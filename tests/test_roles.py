"""Roles (issue 12, item 8): the president, the operator and the technician act with their PIN (or card);
three wrong PINs lock the role out, the lockout is logged, alarmed and survives a power cut."""

from __future__ import annotations

import json
import random
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from config.election import Election
from firmware.common.i18n import Messages
from firmware.common.identity import load_or_provision
from firmware.common.roles import (
    ACCESS_FILE,
    AccessError,
    AccessLocked,
    AccessRefused,
    Credential,
    Role,
    hash_secret,
    load_access_file,
    write_access_file,
)
from firmware.scanner.service import ScannerService
from firmware.scanner.states import PollsState
from firmware.scanner.store import ScannerStore
from hal.switches import Indicator
from simulator.credentials import (
    TEST_PINS,
    TEST_SCRYPT_N,
    credential_for,
    provision_test_pins,
)
from simulator.devices import SimStation, build_sim_station

PRESIDENT, OPERATOR, TECHNICIAN = (credential_for(r) for r in (Role.PRESIDENT, Role.OPERATOR, Role.TECHNICIAN))
WRONG = Credential(Role.PRESIDENT, "999999")


class Box:
    """The scanner service on the simulated station, with the test PINs in its access file."""

    def __init__(self, tmp_path: Path, election: Election) -> None:
        self.dir, self.election = tmp_path, election
        self.sim: SimStation = build_sim_station(election, random.Random(1))
        self.store = ScannerStore.for_election(tmp_path / "scanner.sqlite", election, rng=random.Random(2))
        self.svc = self._service()

    def _service(self) -> ScannerService:
        from firmware.common.roles import AccessControl

        access = AccessControl(provision_test_pins(self.dir), self.sim.clock, self.store.log_event)
        return ScannerService(self.election, self.sim.devices, self.store, Messages.for_language("en"),
                              load_or_provision(self.dir, "BB-TEST-ROLES"), access=access)

    def restart(self) -> None:
        self.store.close()
        self.store = ScannerStore.for_election(self.dir / "scanner.sqlite", self.election, rng=random.Random(3))
        self.svc = self._service()

    def events(self, *kinds: str) -> list[tuple[str, dict]]:
        return [(e.kind, e.detail) for e in self.store.events() if e.kind in kinds]

    def ready_to_open(self) -> None:
        self.svc.self_test(credential=TECHNICIAN)
        self.svc.configure()
        self.svc.print_zero_report(credential=OPERATOR)


@pytest.fixture
def box(tmp_path: Path, election: Election) -> Box:
    b = Box(tmp_path, election)
    yield b
    b.store.close()


def test_access_file_holds_salted_scrypt_hashes_and_no_pin(tmp_path: Path) -> None:
    write_access_file(tmp_path, {Role.OPERATOR: hash_secret("123456", n=TEST_SCRYPT_N),
                                 Role.PRESIDENT: hash_secret("123456", n=TEST_SCRYPT_N)})
    path = tmp_path / ACCESS_FILE
    text = path.read_text(encoding="utf-8")
    roles = json.loads(text)["roles"]
    assert "123456" not in text
    assert sorted(roles) == ["operator", "president"]
    assert roles["operator"]["scrypt"]["salt"] != roles["president"]["scrypt"]["salt"]
    assert roles["operator"]["scrypt"]["hash"] != roles["president"]["scrypt"]["hash"]  # same PIN, other salt
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hashes = load_access_file(tmp_path)
    assert hashes[Role.OPERATOR].matches("123456") and not hashes[Role.OPERATOR].matches("123457")


def test_a_hash_below_the_minimum_cost_is_refused(tmp_path: Path) -> None:
    write_access_file(tmp_path, {Role.OPERATOR: hash_secret("123456", n=2**4)})
    with pytest.raises(AccessError, match="too weak a hash"):
        load_access_file(tmp_path)


def test_the_credential_never_shows_its_secret() -> None:
    assert repr(PRESIDENT) == "Credential(role='president', secret=***)"
    assert TEST_PINS[Role.PRESIDENT] not in repr(PRESIDENT)


def test_the_president_opens_the_polls_and_the_action_is_logged(box: Box) -> None:
    box.ready_to_open()
    box.svc.open_polls(credential=PRESIDENT)
    assert box.svc.polls.state == PollsState.OPEN
    assert ("access_granted", {"action": "open_polls", "role": "president"}) in box.events("access_granted")


@pytest.mark.parametrize("credential", [None, OPERATOR, TECHNICIAN])
def test_opening_needs_the_presidents_pin(box: Box, credential: Credential | None) -> None:
    box.ready_to_open()
    with pytest.raises(AccessRefused, match="open_polls: needs the president"):
        box.svc.open_polls(credential=credential)
    assert box.svc.polls.state == PollsState.CLOSED_INITIAL


def test_the_self_test_is_the_technicians_and_a_jam_the_operators_or_technicians(box: Box) -> None:
    with pytest.raises(AccessRefused, match="self_test: needs the technician, not the operator"):
        box.svc.self_test(credential=OPERATOR)
    assert box.svc.self_test(credential=TECHNICIAN)
    from firmware.common.roles import ACTION_ROLES
    assert ACTION_ROLES["clear_fault"] == {Role.OPERATOR, Role.TECHNICIAN}
    assert ACTION_ROLES["wipe"] == {Role.PRESIDENT, Role.TECHNICIAN}  # the biometric wipe at close
    assert {a for a, roles in ACTION_ROLES.items() if roles == {Role.PRESIDENT}} == {
        "open_polls", "pause", "resume", "close_polls"}


def test_three_wrong_pins_lock_the_role_out_with_an_alarm_until_the_time_passes(box: Box) -> None:
    box.ready_to_open()
    for left in (2, 1):
        with pytest.raises(AccessRefused, match=f"wrong PIN for the president \\({left} tries left"):
            box.svc.open_polls(credential=WRONG)
    with pytest.raises(AccessLocked, match="wrong PIN for the president 3 times: locked until 05:3"):
        box.svc.open_polls(credential=WRONG)
    assert box.sim.switches.indicators[Indicator.ATTENTION] is True
    assert box.sim.panel.messages[-1] == ("The committee president's PIN is locked after repeated wrong tries – "
                                          "call the technician")
    locked = box.events("access_locked")
    assert [d["lockouts"] for _, d in locked] == [1]
    with pytest.raises(AccessLocked, match="locked after 3 wrong tries"):
        box.svc.open_polls(credential=PRESIDENT)  # even the right PIN, while locked
    assert box.svc.polls.state == PollsState.CLOSED_INITIAL
    box.svc.print_zero_report(credential=OPERATOR)  # the other roles are not locked
    box.sim.clock.sleep(5 * 60)
    box.svc.open_polls(credential=PRESIDENT)
    assert box.svc.polls.state == PollsState.OPEN
    refused = [d for k, d in box.events("access_refused") if d.get("wrong_secret")]
    assert [d["failures"] for d in refused] == [1, 2, 3]
    assert all(TEST_PINS[Role.PRESIDENT] not in json.dumps(d) and "999999" not in json.dumps(d) for _, d in
               box.events("access_refused", "access_granted", "access_locked"))


def test_a_second_lockout_lasts_twice_as_long(box: Box) -> None:
    box.ready_to_open()
    start = box.sim.clock.now()
    for _ in range(3):
        with pytest.raises(AccessRefused):
            box.svc.open_polls(credential=WRONG)
    box.sim.clock.sleep(5 * 60)
    for _ in range(3):
        with pytest.raises(AccessRefused):
            box.svc.open_polls(credential=WRONG)
    until = [d["until"] for _, d in box.events("access_locked")]
    assert len(until) == 2
    from datetime import datetime
    second = datetime.fromisoformat(until[1])
    assert second - box.sim.clock.now() == timedelta(minutes=10)
    assert second == start + timedelta(minutes=15)


def test_a_power_cut_does_not_lift_a_lockout(box: Box) -> None:
    box.ready_to_open()
    for _ in range(3):
        with pytest.raises(AccessRefused):
            box.svc.open_polls(credential=WRONG)
    box.restart()
    with pytest.raises(AccessLocked):
        box.svc.open_polls(credential=PRESIDENT)
    box.sim.clock.sleep(5 * 60)
    box.svc.self_test(credential=TECHNICIAN)
    box.svc.print_zero_report(credential=OPERATOR)
    box.svc.open_polls(credential=PRESIDENT)
    assert box.svc.polls.state == PollsState.OPEN


def test_two_wrong_pins_before_a_power_cut_and_one_after_lock_the_role(box: Box) -> None:
    box.ready_to_open()
    for _ in range(2):
        with pytest.raises(AccessRefused):
            box.svc.open_polls(credential=WRONG)
    box.restart()
    with pytest.raises(AccessLocked):
        box.svc.open_polls(credential=WRONG)


def test_a_right_pin_resets_the_count_of_wrong_ones(box: Box) -> None:
    box.ready_to_open()
    for _ in range(2):
        with pytest.raises(AccessRefused):
            box.svc.open_polls(credential=WRONG)
    box.svc.open_polls(credential=PRESIDENT)
    for _ in range(2):
        with pytest.raises(AccessRefused, match="tries left"):
            box.svc.pause(credential=WRONG)
    box.svc.pause(credential=PRESIDENT)
    assert box.svc.polls.state == PollsState.PAUSED


def test_set_pin_stores_a_production_cost_hash_and_refuses_a_short_pin(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from ballotbox.cli import main
    from firmware.common.roles import SCRYPT_N

    monkeypatch.setattr("sys.stdin", io.StringIO("204817\n"))
    assert main(["device", "set-pin", "--state-dir", str(tmp_path), "--role", "president"]) == 0
    stored = load_access_file(tmp_path / "device")[Role.PRESIDENT]
    assert stored.n == SCRYPT_N and stored.matches("204817")
    monkeypatch.setattr("sys.stdin", io.StringIO("12\n"))
    assert main(["device", "set-pin", "--state-dir", str(tmp_path), "--role", "operator"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "ballotbox: --role operator: the PIN must be 6 to 12 digits (got 2 characters); type it again"]
    assert set(load_access_file(tmp_path / "device")) == {Role.PRESIDENT}

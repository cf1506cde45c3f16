"""The auth service's paths that need no finger: closed polls, unreadable documents, the register's answers."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import numpy as np
import pytest

from biometrics.iso19794 import write_record
from firmware.auth.flow import VoterState
from firmware.auth.register import (
    RegisterClosed,
    RegisterExtract,
    RegisterVoter,
    build_register_file,
    provision_key,
    pseudonym_key,
)
from firmware.auth.service import AuthService, desk_access
from firmware.auth.store import AuthStore
from firmware.common.eventlog import EventLog
from firmware.common.events import Service
from firmware.common.i18n import Messages
from firmware.common.identity import load_or_provision
from firmware.common.roles import AccessLocked, AccessRefused, Credential, Role
from simulator.credentials import credential_for, provision_test_pins
from simulator.devices import AcceleratedClock
from simulator.documents import id_card, synthetic_person
from simulator.fingerprint_twin import SimulatedFingerprintSensor
from simulator.fingerprints import synthetic_template

STATION = "089A012"
DAY = dt.date(2026, 10, 4)


def _desk(tmp_path: Path, enrolled: bool = True) -> tuple[AuthService, list]:
    rng = random.Random(4)
    people = [synthetic_person(rng) for _ in range(3)]
    voters = [RegisterVoter(p.jmbg.digits, (p.document_number,), f"{p.given_names} {p.surname}", i + 1, p.jmbg.sex,
                            p.jmbg.birth_date.year,
                            (write_record(synthetic_template(i)),) if enrolled else ())
              for i, p in enumerate(people[:2])]
    key = provision_key(tmp_path)
    build_register_file(tmp_path / "r.bbr", STATION, voters, key)
    store = AuthStore.create(tmp_path, pseudonym_key(key, STATION), [v.jmbg for v in voters])
    clock = AcceleratedClock(dt.datetime(2026, 10, 4, 7, 0, tzinfo=dt.UTC))
    service = AuthService(RegisterExtract(tmp_path / "r.bbr", STATION, key), SimulatedFingerprintSensor(), store,
                          clock, Messages.for_language("en"), DAY)
    return service, people


def test_the_desk_refuses_before_the_polls_open(tmp_path: Path) -> None:
    service, people = _desk(tmp_path)
    with pytest.raises(RegisterClosed, match="open the polls first"):
        service.read_document(id_card(people[0]).text)


def test_a_person_not_on_the_register_is_refused(tmp_path: Path) -> None:
    service, people = _desk(tmp_path)
    service.open_polls()
    view = service.read_document(id_card(people[2]).text)
    assert (view.state, view.voter_text) == (VoterState.REFUSED, Messages.for_language("en").t("auth.panel.voter.refused"))
    assert service.store.counters()["not_in_register"] == 1


def test_an_unreadable_document_asks_for_the_typed_jmbg_and_counts_a_problem(tmp_path: Path) -> None:
    service, people = _desk(tmp_path)
    service.open_polls()
    view = service.read_document("IDBIH<<<garbage")
    assert view.state == VoterState.TYPING_JMBG and view.detail
    view = service.type_jmbg(people[0].jmbg.digits)
    assert (view.state, view.voter_name) == (VoterState.CAPTURING, f"{people[0].given_names} {people[0].surname}")
    # a visit is one transaction: nothing of it is on disk before its verdict (a power cut now leaves no trace)
    assert service.store.counters()["problem.document"] == 0
    service.close_polls()  # the close cuts the visit short: what it counted is kept, without a verdict
    counters = service.store.counters()
    assert (counters["problem.document"], counters["visits"]) == (1, 0)
    assert service.store.last_visit() is None


def test_a_visit_goes_into_the_store_in_one_transaction_at_its_verdict(tmp_path: Path) -> None:
    service, people = _desk(tmp_path)
    service.open_polls()
    service.read_document("IDBIH<<<garbage")
    assert service.store.counters()["problem.document"] == 0
    assert service.type_jmbg(people[2].jmbg.digits).state == VoterState.REFUSED  # not on the register
    counters = service.store.counters()
    assert (counters["problem.document"], counters["not_in_register"], counters["visits"]) == (1, 1, 1)
    last = service.store.last_visit()
    assert last is not None and (last.number, last.verdict, last.pseudonym) == (1, "refused", None)


def test_an_authenticated_voter_coming_again_raises_the_impersonation_alarm(tmp_path: Path) -> None:
    service, people = _desk(tmp_path)
    service.open_polls()
    service.store.record_authenticated(people[1].jmbg.digits, sex="F", age=40, attempts=1, seconds=9.0)
    view = service.read_document(id_card(people[1]).text)
    assert view.state == VoterState.IMPERSONATION
    [record] = service.store.legal_records("impersonation")
    assert (record.detail["what"], record.detail["register_number"]) == ("already_authenticated", 2)
    assert service.next_voter().state == VoterState.WAITING_DOCUMENT


def test_a_voter_without_a_template_goes_to_the_committee_and_into_the_reidentification_register(
        tmp_path: Path) -> None:
    service, people = _desk(tmp_path, enrolled=False)
    service.open_polls()
    assert service.read_document(id_card(people[0]).text).state == VoterState.COMMITTEE
    assert service.committee_decides(True).state == VoterState.REIDENTIFIED
    [record] = service.store.legal_records("reidentified")
    assert record.detail["name"] == f"{people[0].given_names} {people[0].surname}"
    assert service.store.counters()["no_template"] == 1 and service.store.counters()["reidentified"] == 1


def test_the_wipe_after_closing_deletes_the_register_and_empties_the_sensor(tmp_path: Path) -> None:
    service, _ = _desk(tmp_path)
    service.open_polls()
    with pytest.raises(RegisterClosed, match="close them first"):
        service.wipe()
    service.close_polls()
    assert (tmp_path / "r.bbr").exists()  # closing alone keeps it until the wipe
    deletion = service.wipe()
    assert (deletion.records, deletion.templates, deletion.sensor_templates_after) == (2, 2, 0)
    assert not (tmp_path / "r.bbr").exists()


# -- the wipe behind a role (issue 12, item 8) --------------------------------------------------------
def _desk_with_roles(tmp_path: Path) -> AuthService:
    service, _ = _desk(tmp_path / "desk")
    service.store.event_log = EventLog.open(tmp_path / "desk" / "auth-events.jsonl", Service.AUTH,
                                            load_or_provision(tmp_path / "key", "BB-TEST-WIPE"), service.clock.now)
    service.access = desk_access(provision_test_pins(tmp_path / "pins"), service.clock, service.store)
    service.open_polls()
    service.close_polls()
    return service


def _logged(service: AuthService) -> list[dict]:
    assert service.store.event_log is not None
    return [json.loads(line) for line in service.store.event_log.path.read_text().splitlines()]


def test_the_wipe_needs_the_presidents_or_the_technicians_pin(tmp_path: Path) -> None:
    service = _desk_with_roles(tmp_path)
    register = tmp_path / "desk" / "r.bbr"
    with pytest.raises(AccessRefused, match="wipe: needs the president or technician's PIN or card"):
        service.wipe()
    with pytest.raises(AccessRefused, match="needs the president or technician, not the operator"):
        service.wipe(credential_for(Role.OPERATOR))
    assert register.exists() and service.deletion is None  # nothing wiped on a refusal
    deletion = service.wipe(credential_for(Role.PRESIDENT))
    assert deletion.authorized_by == "president" and not register.exists()
    wiped = [e for e in _logged(service) if e["event"] == "register.wiped"]
    assert wiped[-1]["detail"]["role"] == "president"
    accepted = [e for e in _logged(service) if e["event"] == "user.pin_accepted"]
    assert accepted[-1]["detail"] == {"action": "wipe", "role": "president"}


def test_the_technician_may_wipe_too(tmp_path: Path) -> None:
    assert _desk_with_roles(tmp_path).wipe(credential_for(Role.TECHNICIAN)).authorized_by == "technician"


def test_wrong_pins_for_the_wipe_lock_the_role_out_and_a_restart_keeps_the_lockout(tmp_path: Path) -> None:
    service = _desk_with_roles(tmp_path)
    wrong = Credential(Role.PRESIDENT, "999999")
    for left in (2, 1):
        with pytest.raises(AccessRefused, match=f"wrong PIN for the president \\({left} tries left"):
            service.wipe(wrong)
    with pytest.raises(AccessLocked, match="wrong PIN for the president 3 times: locked until"):
        service.wipe(wrong)
    with pytest.raises(AccessLocked):  # the right PIN waits for the lockout too
        service.wipe(credential_for(Role.PRESIDENT))
    assert (tmp_path / "desk" / "r.bbr").exists()
    events = [e["event"] for e in _logged(service)]
    assert events.count("user.pin_refused") == 4 and events.count("user.locked_out") == 1
    assert "999999" not in service.store.event_log.path.read_text()  # never the PIN, right or wrong
    # the auth service starts again (a power cut): the lockout is rebuilt from its own log
    again = AuthService(service.register, service.sensor, service.store, service.clock, Messages.for_language("en"),
                        DAY, access=desk_access(provision_test_pins(tmp_path / "pins"), service.clock, service.store))
    with pytest.raises(AccessLocked):
        again.wipe(credential_for(Role.PRESIDENT))
    service.clock.sleep(5 * 60 + 1)
    assert again.wipe(credential_for(Role.PRESIDENT)).authorized_by == "president"


def test_the_service_runs_the_matcher_on_one_blas_thread_as_the_bench_measures_it(tmp_path: Path) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):  # what OpenBLAS takes on its own on this 2-core machine
        _desk(tmp_path)
        assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}


def test_the_capture_extracts_on_one_opencv_thread_and_gives_the_others_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    from firmware.auth import service as service_module

    seen = []

    class Seen(Exception):
        pass

    def spy(pixels: object, dpi: float) -> None:
        seen.append(cv2.getNumThreads())
        raise Seen

    monkeypatch.setattr(service_module, "extract", spy)
    service, people = _desk(tmp_path)
    service.open_polls()
    assert service.read_document(id_card(people[0]).text).state == VoterState.CAPTURING
    service.sensor.present(np.full((288, 256), 200, np.uint8))
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        with pytest.raises(Seen):
            service.capture()
        seen.append(cv2.getNumThreads())
    finally:
        cv2.setNumThreads(before)
    assert seen == [1, 2]


def test_after_a_power_cut_the_desk_resumes_with_the_polls_open_and_names_the_last_visit(tmp_path: Path) -> None:
    service, people = _desk(tmp_path)
    service.open_polls()
    assert service.type_jmbg(people[2].jmbg.digits).state == VoterState.REFUSED  # decided: on disk
    service.next_voter()
    service.read_document("IDBIH<<<garbage")  # the next visit is cut off here by the power
    opened_at = service.store.polls("opened_at")
    service.store.close()

    key = (tmp_path / "auth.key").read_bytes()
    store = AuthStore(tmp_path, pseudonym_key(key, STATION))
    clock = AcceleratedClock(dt.datetime(2026, 10, 4, 9, 0, tzinfo=dt.UTC))
    again = AuthService(RegisterExtract(tmp_path / "r.bbr", STATION, key), SimulatedFingerprintSensor(), store,
                        clock, Messages.for_language("en"), DAY)
    recovery = again.resume_polls()
    assert again.polls_open and recovery.polls_open and recovery.visits_recorded == 1
    assert recovery.last_verdict == "refused" and recovery.last_register_number is None  # not on the register
    assert "visit 1" in recovery.lines[1] and "not in the register extract" in recovery.lines[1]
    assert store.polls("opened_at") == opened_at  # a restart never reopens the polls
    assert store.counters()["problem.document"] == 0  # the visit cut off left nothing
    view = again.read_document(id_card(people[0]).text)
    assert view.state == VoterState.CAPTURING  # the desk serves again
    again.close_polls()
    assert again.resume_polls().polls_open is False and not again.polls_open

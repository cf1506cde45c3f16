"""The day's self-test (issue 12, item 4; Art. 11, 20): the clock, the storage for the day's video (judged
from the recorder's own settings, as its storage guard judges it), the network and the installed software
join the devices' checks, and the polls open only after a passing self-test of the day."""

from __future__ import annotations

import hashlib
import json
import random
import socket
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest

from config.device import (
    DeviceSettings,
    DeviceSettingsError,
    SelfTestSettings,
    VideoSettings,
    load_device_settings,
)
from config.election import Election
from firmware.common.i18n import Messages
from firmware.common.identity import load_or_provision
from firmware.common.selftest import (
    DayCheckSettings,
    clock_status,
    day_checks,
    network_status,
    video_storage_status,
)
from firmware.scanner.service import PollsError, ScannerService
from firmware.scanner.states import PollsState
from firmware.scanner.store import ScannerStore
from firmware.trust.release import MANIFEST_SCHEMA, check_running_release
from firmware.trust.signing import TEST_RELEASE_KEY, load_private_key, sign_envelope
from hal.clock import SARAJEVO, station_time
from hal.errors import DeviceStatus
from hal.switches import SealState
from simulator.devices import AcceleratedClock, build_sim_station
from video.recorder import RecordingProfile
from video.storage import plan_day

EN = Messages.for_language("en")


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_the_clock_on_the_election_morning_is_sane(election: Election) -> None:
    status = clock_status(FixedClock(station_time(election.date, "05:30")), election, EN)
    assert status == DeviceStatus("clock", True, f"{election.date} 05:30, election day {election.date}")


@pytest.mark.parametrize("at", [datetime(1970, 1, 1, 0, 0, tzinfo=SARAJEVO), "19:01", "-3d"])
def test_a_clock_from_1970_after_the_closing_or_days_early_fails(election: Election, at: object) -> None:
    if at == "19:01":
        at = station_time(election.date, "19:01")
    elif at == "-3d":
        at = station_time("2024-10-03", "12:00")
    status = clock_status(FixedClock(at), election, EN)  # type: ignore[arg-type]
    assert status.ok is False and status.detail.endswith(f"the election is on {election.date}: set the clock")


@pytest.mark.parametrize(("free_gb", "ok", "words"), [
    (10, True, "10.0 GB free, the day's video (14 h at 1200 kbit/s) needs 8.1 GB"),
    (5, True, ("5.0 GB free, the day's video (14 h at 1200 kbit/s) needs 8.1 GB: it will record at 50 % of the "
              "bitrate and 1/2 of the frame rate; free space to record at full quality")),
    (2, False, ("2.0 GB free, the day's video (14 h at 1200 kbit/s) needs 8.1 GB, 2.9 GB even at the lowest rate: "
               "the recorder would refuse; free space or change the card")),
])
def test_the_storage_check_decides_as_the_recorders_storage_guard(tmp_path: Path, free_gb: int, ok: bool,
                                                                    words: str) -> None:
    free = free_gb * 1_000_000_000
    status = video_storage_status(tmp_path, 1200, 14.0, EN, free_bytes=free)
    assert status == DeviceStatus("storage", ok, words)
    # the recorder's own guard, from the same figures: it records (perhaps lower) exactly when the check passes
    assert (plan_day(free, 1200, 14.0).verdict != "refuse") is ok


def test_the_storage_figures_are_in_the_stations_language(tmp_path: Path) -> None:
    bs = video_storage_status(tmp_path, 2000, 12.5, Messages.for_language("bs"), free_bytes=15_000_000_000)
    assert bs.detail == "slobodno 15,0 GB, video snimak dana (12,5 h pri 2000 kbit/s) traži 12,0 GB"


def test_the_self_test_reads_the_recorders_own_video_settings() -> None:
    video = VideoSettings(bitrate_kbps=800, hours=12.0, directory="vid")
    settings = DeviceSettings(data_dir="/var/lib/ballotbox", video=video, self_test=SelfTestSettings(
        endpoint="https://rezultati.example"))
    checks = DayCheckSettings.from_device(settings)
    profile = RecordingProfile.from_settings(settings.video)  # what the recorder runs with
    assert (checks.video_bitrate_kbps, checks.video_hours) == (profile.bitrate_kbps, profile.hours) == (800, 12.0)
    # where the video service records: STATE/device/<video.directory>, STATE the data_dir unless given
    assert checks.video_dir == Path("/var/lib/ballotbox/device/vid") and checks.endpoint == "https://rezultati.example"
    assert DayCheckSettings.from_device(settings, Path("/srv/box")).video_dir == Path("/srv/box/device/vid")
    no_video = DeviceSettings(video=VideoSettings(enabled=False))
    assert DayCheckSettings.from_device(no_video).video_dir is None


def test_settings_with_the_old_copy_of_the_video_figures_are_refused_saying_what_to_do(tmp_path: Path) -> None:
    old = tmp_path / "device.json"
    old.write_text(json.dumps({"self_test": {"video_dir": "/var/lib/ballotbox/video", "video_bitrate_kbps": 2000}}))
    with pytest.raises(DeviceSettingsError, match=r"video_bitrate_kbps, video_dir are no longer read: the self-test "
                                                  r"checks the video storage with the recorder's own settings"):
        load_device_settings(old)


def test_the_storage_of_a_folder_not_made_yet_is_read_from_its_parent(tmp_path: Path) -> None:
    status = video_storage_status(tmp_path / "video" / "day", 100, 14.0, EN)
    assert status.ok is True  # 100 kbit/s x 14 h = 0.7 GB: this machine has that much free


def test_the_network_is_reported_and_never_blocks() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert network_status(f"http://127.0.0.1:{port}", EN) == DeviceStatus(
            "network", True, f"127.0.0.1:{port} reachable")
    down = network_status(f"http://127.0.0.1:{port}", EN, timeout_s=1.0)
    assert down.ok is True and down.detail.startswith(f"127.0.0.1:{port} not reachable (")
    assert down.detail.endswith("results wait in the outbox (does not block opening)")
    assert network_status(None, EN) == DeviceStatus("network", True, "no CEC receiver configured (does not block "
                                                                     "opening)")


def test_day_checks_skip_the_storage_on_a_box_without_video(election: Election) -> None:
    clock = FixedClock(station_time(election.date, "06:00"))
    assert [c.device for c in day_checks(clock, election, EN, DayCheckSettings())] == ["clock", "network"]
    with_video = DayCheckSettings(video_dir=Path("/"), video_bitrate_kbps=100)
    assert [c.device for c in day_checks(clock, election, EN, with_video)] == ["clock", "storage", "network"]


# -- required before opening -----------------------------------------------------------------
@pytest.fixture
def station(tmp_path: Path, election: Election):
    sim = build_sim_station(election, random.Random(1))
    store = ScannerStore.for_election(tmp_path / "scanner.sqlite", election, rng=random.Random(2))
    svc = ScannerService(election, sim.devices, store, EN, load_or_provision(tmp_path, "BB-TEST-SELF"))
    yield sim, svc
    store.close()


def test_the_service_self_test_has_the_software_the_clock_and_the_network(station) -> None:
    _sim, svc = station
    results = svc.self_test()
    assert [r.device for r in results][-4:] == ["mark_model", "software", "clock", "network"]
    software = next(r for r in results if r.device == "software")  # the tests run from a source tree
    assert software.ok and software.detail.startswith("not installed: skipped")


# -- the boot check at the opening (issue 12, item 3) ----------------------------------------
def _installed_slot(slot: Path) -> Path:
    """A slot as `ballotbox install` leaves it: code files and the signed manifest (TEST ONLY release key)."""
    files = {"firmware/a.py": b"A = 1\n", "firmware/b.py": b"B = 2\n"}
    for rel, data in files.items():
        (slot / rel).parent.mkdir(parents=True, exist_ok=True)
        (slot / rel).write_bytes(data)
    manifest = {"schema": MANIFEST_SCHEMA, "version": "1.0.0", "built_at": "2024-10-01T08:00:00Z",
                "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}}
    (slot / ".release").mkdir()
    (slot / ".release" / "manifest.json").write_text(json.dumps(sign_envelope(manifest, load_private_key(
        TEST_RELEASE_KEY))))
    return slot


@pytest.fixture
def installed_box(tmp_path: Path, election: Election):
    slot = _installed_slot(tmp_path / "slots" / "a")
    sim = build_sim_station(election, random.Random(1))
    store = ScannerStore.for_election(tmp_path / "scanner.sqlite", election, rng=random.Random(2))
    svc = ScannerService(election, sim.devices, store, EN, load_or_provision(tmp_path, "BB-TEST-SELF"),
                         installed_files=partial(check_running_release, slot))
    yield sim, svc, slot
    store.close()


def test_an_installed_release_that_matches_its_manifest_passes_and_opens(installed_box) -> None:
    _sim, svc, _slot = installed_box
    software = next(r for r in svc.self_test() if r.device == "software")
    assert software.ok and software.detail == "release 1.0.0: all 2 files are those of the signed manifest"
    svc.configure()
    svc.print_zero_report()
    svc.open_polls()
    assert svc.polls.state == PollsState.OPEN


def test_a_file_changed_after_the_self_test_refuses_opening_on_the_panel_and_in_the_log(installed_box) -> None:
    sim, svc, slot = installed_box
    svc.self_test()
    svc.configure()
    svc.print_zero_report()
    (slot / "firmware" / "b.py").write_text("B = 3  # changed on the card\n")
    with pytest.raises(PollsError) as refused:
        svc.open_polls()
    assert "opening refused: the installed files are not those of the signed release 1.0.0: firmware/b.py: " \
           "altered" in str(refused.value) and "flash the box again" in str(refused.value)
    assert svc.polls.state != PollsState.OPEN
    assert sim.panel.messages[-1] == EN.t("panel.software_mismatch")
    logged = [e for e in svc.store.events() if e.kind == "tamper.installed_files_mismatch"]
    assert logged[-1].detail["files"] == ["firmware/b.py"] and logged[-1].detail["reason"].startswith("opening")
    # the self-test says it too, and refuses the day until the box is flashed again
    software = next(r for r in svc.self_test() if r.device == "software")
    assert not software.ok and "(firmware/b.py)" in software.detail
    (slot / "firmware" / "b.py").write_bytes(b"B = 2\n")  # flashed again
    svc.self_test()
    svc.open_polls()
    assert svc.polls.state == PollsState.OPEN


def test_a_self_test_of_the_day_before_does_not_open_the_polls(station, election: Election) -> None:
    sim, svc = station
    sim.devices.clock = AcceleratedClock.for_day("2024-10-05", "14:00")  # installed the day before (Art. 9)
    svc.self_test()
    svc.configure()
    svc.print_zero_report()
    sim.devices.clock.advance_to(station_time(election.date, election.polls.opening))
    with pytest.raises(PollsError, match="the last self-test was on 2024-10-05, not today"):
        svc.open_polls()
    svc.self_test()  # Art. 11: the technician checks again on the day
    svc.open_polls()
    assert svc.polls.state == PollsState.OPEN


def test_a_failed_self_test_after_the_zero_report_refuses_opening_naming_the_device(station) -> None:
    sim, svc = station
    svc.self_test()
    svc.configure()
    svc.print_zero_report()
    sim.switches.state = SealState(seal_intact=True, lid_closed=False)
    assert [r.device for r in svc.self_test() if not r.ok] == ["switches"]
    with pytest.raises(PollsError, match=r"the self-test at 05:30 failed \(switches\); fix it and run the self-test "
                                         "again"):
        svc.open_polls()
    sim.switches.state = SealState(seal_intact=True, lid_closed=True)
    svc.self_test()
    svc.open_polls()
    assert svc.polls.state == PollsState.OPEN


def test_the_self_test_logs_which_devices_failed(station) -> None:
    sim, svc = station
    sim.switches.state = SealState(seal_intact=False, lid_closed=True)
    svc.self_test()
    last = [e for e in svc.store.events() if e.kind == "self_test"][-1]
    assert last.detail == {"ok": False, "failed": ["switches"]}


def test_simulate_on_a_box_whose_files_differ_refuses_with_the_reason_and_exit_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import firmware.trust.release
    from ballotbox.cli import main

    slot = _installed_slot(tmp_path / "slots" / "a")
    (slot / "firmware" / "extra.py").write_text("print('not shipped')\n")
    monkeypatch.setattr(firmware.trust.release, "CODE_ROOT", slot)  # as if the code ran from that slot
    assert main(["simulate", "--voters", "4", "--quiet", "--out", str(tmp_path / "day")]) == 1
    out = " ".join(capsys.readouterr().out.split())
    bs = Messages.for_language("bs")  # the sample station's language
    assert "THE BOX REFUSED: self-test failed: software: " + bs.t("selftest.software.mismatch", count=1,
                                                                  files="firmware/extra.py") in out

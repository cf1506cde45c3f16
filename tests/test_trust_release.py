"""Releases as a technician flashes a box, against a temporary root: install, update into the other slot,
a broken update rolled back by its own health check, a manual rollback, refused bundles that write
nothing, the boot check naming each file that is not the signed manifest's, the units and the watchdog."""

from __future__ import annotations

import io
import os
import shutil
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ballotbox.cli import main
from firmware.cec.packaging import build_release
from firmware.common.identity import CODE_PACKAGES
from firmware.trust.release import SERVICES, release_files
from firmware.trust.signing import TEST_RELEASE_KEY
from firmware.trust.watchdog import health_loop
from hal.errors import DeviceStatus

ROOT = Path(__file__).resolve().parent.parent


def _source_copy(into: Path) -> Path:
    for pkg in CODE_PACKAGES:
        shutil.copytree(ROOT / pkg, into / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bundles")
    broken_source = _source_copy(out / "broken-source")
    service = broken_source / "firmware" / "scanner" / "service.py"
    service.write_text(service.read_text() + "\nraise RuntimeError('this release is broken')\n")
    made = {}
    for name, source, version in (("v1", ROOT, "1.0.0"), ("v2", ROOT, "1.1.0"), ("broken", broken_source, "1.2.0")):
        made[name] = out / f"{name}.tar.gz"
        build_release(source, made[name], TEST_RELEASE_KEY, version)
    return made


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "root"


@pytest.fixture(scope="module")
def flashed_v1(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flashed") / "root"
    assert _install(str(bundles["v1"]), "--root", str(root)) == 0
    return root


@pytest.fixture
def installed(flashed_v1: Path, tmp_path: Path) -> Path:
    """A box flashed with v1 (a copy of one install: the health check runs once for the module)."""
    root = tmp_path / "installed"
    shutil.copytree(flashed_v1, root, symlinks=True)
    return root


def _current(root: Path) -> str:
    return os.readlink(root / "current")


def _install(*argv: str) -> int:
    return main(["install", *argv])


def test_install_then_update_then_rollback_switches_slots_and_keeps_the_previous(
        bundles: dict[str, Path], installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = installed  # v1, flashed on an empty root
    assert _current(root) == "slots/a" and not (root / "previous").exists()
    assert _install(str(bundles["v2"]), "--root", str(root)) == 0
    assert (_current(root), os.readlink(root / "previous")) == ("slots/b", "slots/a")
    assert "release 1.1.0 runs from slot b" in capsys.readouterr().out
    assert _install("--rollback", "--root", str(root)) == 0
    assert (_current(root), os.readlink(root / "previous")) == ("slots/a", "slots/b")
    assert "release 1.0.0 runs from slot a" in capsys.readouterr().out


def test_a_broken_update_fails_its_health_check_and_the_box_goes_back_to_the_release_it_ran(
        bundles: dict[str, Path], installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = installed
    capsys.readouterr()
    assert _install(str(bundles["broken"]), "--root", str(root)) == 1
    out = capsys.readouterr().out
    assert "firmware.scanner.service: does not import (RuntimeError: this release is broken)" in out
    assert "release 1.2.0 in slot b FAILED its health check: rolled back to slot a" in out
    assert _current(root) == "slots/a"
    assert main(["boot-check", "--root", str(root)]) == 0
    assert "boot check: release 1.0.0" in capsys.readouterr().out


def test_a_broken_first_install_leaves_no_current_release(bundles: dict[str, Path], root: Path) -> None:
    assert _install(str(bundles["broken"]), "--root", str(root)) == 1
    assert not (root / "current").exists()
    assert main(["boot-check", "--root", str(root)]) == 1


def _rewritten(bundle: Path, out: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None) -> Path:
    """A copy of bundle with members replaced (bytes) or removed (None), and members added."""
    with tarfile.open(bundle, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name in change:
                if change[member.name] is None:
                    continue
                data = change[member.name]  # type: ignore[assignment]
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
        for name, data in (add or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


@pytest.mark.parametrize(("case", "reason"), [
    ("altered", "files/firmware/errors.py: its SHA-256 is not the one in the signed manifest"),
    ("removed", "firmware/errors.py (and 0 more) listed in the signed manifest but not in the bundle"),
    ("added", "member 'files/firmware/backdoor.py' is not a file of the signed manifest"),
    ("escape", "member 'files/../../etc/cron.d/x' is not a file of the signed manifest"),
])
def test_a_tampered_bundle_is_refused_with_its_reason_and_writes_nothing(
        bundles: dict[str, Path], tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str],
        case: str, reason: str) -> None:
    member = "files/firmware/errors.py"
    changes: dict[str, dict[str, bytes | None]] = {"altered": {member: b"EXIT_OK = 1\n"}, "removed": {member: None}}
    adds = {"added": {"files/firmware/backdoor.py": b"import os\n"}, "escape": {"files/../../etc/cron.d/x": b"x"}}
    bad = _rewritten(bundles["v1"], tmp_path / "bad.tar.gz", changes.get(case, {}), adds.get(case))
    capsys.readouterr()
    assert _install(str(bad), "--root", str(root)) == 2
    assert reason.replace("files/firmware/errors.py: ", "firmware/errors.py: ") in capsys.readouterr().err
    assert sorted(p.name for p in root.iterdir()) == []


def test_a_bundle_signed_by_an_unknown_key_is_refused(tmp_path: Path, root: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.hazmat.primitives import serialization

    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    bundle = tmp_path / "stranger.tar.gz"
    build_release(ROOT, bundle, stranger, "6.6.6")
    capsys.readouterr()
    assert _install(str(bundle), "--root", str(root)) == 2
    assert "stranger.tar.gz: signed by key" in capsys.readouterr().err
    assert list(root.iterdir()) == []


def test_the_boot_check_names_every_file_that_is_not_the_signed_manifests(
        installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = installed
    current = root / "current"
    with open(current / "firmware" / "scanner" / "tally.py", "a") as f:
        f.write("# one more line\n")
    (current / "config" / "election.py").unlink()
    (current / "firmware" / "extra.py").write_text("print('not shipped')\n")
    capsys.readouterr()
    assert main(["boot-check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH firmware/scanner/tally.py: altered (its SHA-256 is not the signed manifest's)" in out
    assert "MISMATCH config/election.py: missing (listed in the signed manifest)" in out
    assert "MISMATCH firmware/extra.py: not in the signed manifest (a file added after install)" in out
    assert "boot check FAILED (3 problem(s)): the box must not open" in out


def test_the_boot_check_refuses_a_manifest_altered_on_the_card(installed: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = installed
    manifest = root / "current" / ".release" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"version": "1.0.0"', '"version": "9.9.9"'))
    capsys.readouterr()
    assert main(["boot-check", "--root", str(root)]) == 1
    assert "the signature does not verify with TEST-ONLY-release.pub.pem" in capsys.readouterr().out


def test_the_code_running_from_the_installed_slot_checks_its_own_files(installed: Path) -> None:
    """What the opening runs (ScannerService: check_running_release) finds the slot from the code's own
    location when it runs through ROOT/current, as the units start it; a changed file is named."""
    import subprocess
    import sys

    current = installed / "current"
    script = ("from firmware.trust.release import check_running_release as c; r = c(); "
              "print(r.slot is not None, r.version, list(r.mismatched))")

    def run() -> str:
        env = {**os.environ, "PYTHONPATH": str(current), "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.run([sys.executable, "-c", script], cwd=current, env=env, capture_output=True,
                              text=True, check=True, timeout=60).stdout.strip()

    assert run() == "True 1.0.0 []"
    with open(current / "firmware" / "scanner" / "tally.py", "a") as f:
        f.write("# one more line\n")
    assert run() == "True 1.0.0 ['firmware/scanner/tally.py']"


def test_install_writes_a_notify_unit_with_a_watchdog_for_each_service(flashed_v1: Path) -> None:
    root = flashed_v1
    units = sorted(p.name for p in (root / "systemd").iterdir())
    assert units == sorted(f"ballotbox-{s}.service" for s in SERVICES)
    for name in units:
        text = (root / "systemd" / name).read_text()
        assert "Type=notify" in text and "WatchdogSec=30" in text
        assert f"ExecStartPre={os.sys.executable} -m ballotbox boot-check --root {root}" in text
        service = name.removeprefix("ballotbox-").removesuffix(".service")
        assert f"service run {service} --settings {root}/current/config/device-pi.json" in text


def test_private_signing_keys_never_go_into_a_release() -> None:
    files = release_files(ROOT)
    assert "config/keys/trusted-release-keys/TEST-ONLY-release.pub.pem" in files
    assert [f for f in files if f.endswith(".signing.pem")] == []
    assert [f for f in files if "__pycache__" in f or f.endswith(".pyc")] == []


# -- the watchdog --------------------------------------------------------------------------------------
class _Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(self, state: str) -> None:
        self.sent.append(state)


def test_the_watchdog_is_fed_only_while_the_devices_answer() -> None:
    answers = iter([[DeviceStatus("feeder", True, "ok")], [DeviceStatus("feeder", False, "motor stalled")],
                    [DeviceStatus("feeder", True, "ok")]])
    recorder = _Recorder()
    beats = health_loop("scanner", lambda: next(answers), cycles=3, notifier=recorder, sleep=lambda s: None)
    assert [b.healthy for b in beats] == [True, False, True]
    assert recorder.sent == ["READY=1", "WATCHDOG=1", "STATUS=scanner: 1 devices ok",
                             "STATUS=scanner: feeder: motor stalled",
                             "WATCHDOG=1", "STATUS=scanner: 1 devices ok"]


def test_a_probe_that_raises_starves_the_watchdog_and_ready_waits_for_health() -> None:
    def probe() -> list[DeviceStatus]:
        raise OSError("/dev/ttyAMA0 gone")

    recorder = _Recorder()
    beats = health_loop("auth", probe, cycles=2, notifier=recorder, sleep=lambda s: None)
    assert [b.healthy for b in beats] == [False, False]
    assert recorder.sent == ["STATUS=auth: device probe failed: OSError: /dev/ttyAMA0 gone"] * 2


def test_service_run_speaks_the_notify_protocol_to_systemd_and_is_silent_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    try:
        assert main(["service", "run", "auth", "--cycles", "1"]) == 0  # the scanner's: test_scanner_service_run.py
        received = [sock.recv(4096).decode() for _ in range(3)]
    finally:
        sock.close()
    assert received[:2] == ["READY=1", "WATCHDOG=1"] and received[2].startswith("STATUS=auth: ")
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert main(["service", "run", "auth", "--cycles", "1"]) == 0  # no NOTIFY_SOCKET: silent, and no failure

"""`ballotbox service run uploader` against a real receiver over loopback HTTP: it waits for the scanner
service, survives a dead network, refuses a receipt signed by another key than the election package's
receiver key (retried, logged), and is acknowledged once the real receiver answers; STATUS= shows the
committee's status line."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from test_scanner_service_run import ENV, _ok, _start
from transmission_support import free_port

from ballotbox.cli import main
from config.election import SAMPLE_ELECTION
from firmware.trust.signing import TEST_RECEIVER_KEY


def _receiver(port: int, store: Path, devices: Path, *key: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "ballotbox", "receiver", "--port", str(port), "--store",
                             str(store), "--devices", str(devices), *key], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the receiver did not start")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return out or ""


class Notes:
    """systemd's end of NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.seen: list[str] = []

    def wait_for(self, words: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.seen.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                time.sleep(0.02)
                continue
            if words in self.seen[-1]:
                return self.seen[-1]
        raise AssertionError(f"no notification with {words!r}; got {[s for s in self.seen if s != 'WATCHDOG=1'][-5:]}")


def test_the_uploader_service_waits_out_a_dead_network_refuses_a_forged_receipt_and_delivers(tmp_path: Path) -> None:
    port = free_port()
    state, devices = tmp_path / "box", tmp_path / "cec-devices"
    package = tmp_path / "package.json"
    assert main(["package", "build", "--election", str(SAMPLE_ELECTION), "--endpoint", f"http://127.0.0.1:{port}",
                 "--out", str(package)]) == 0
    assert main(["package", "sign", str(package), "--out", str(tmp_path / "signed.json")]) == 0
    devices.mkdir()
    assert main(["provision", "--package", str(tmp_path / "signed.json"), "--station", "089A012", "--state-dir",
                 str(state), "--receipt", str(devices / "089A012.receipt.json"), "--json"]) == 0

    notes = Notes(tmp_path / "notify.sock")
    uploader = subprocess.Popen([sys.executable, "-m", "ballotbox", "service", "run", "uploader", "--state-dir",
                                 str(state), "--interval", "0.2", "--retry-cap", "0.3"],
                                env={**ENV, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    scanner = impostor = receiver = None
    try:
        assert notes.wait_for("READY=1") == "READY=1"
        notes.wait_for("waiting for the scanner service")  # the scanner is not running yet
        scanner = _start(state, "--speed", "60")  # the 11:00 turnout is minutes away: one document
        _ok(state, "self-test", "technician")
        _ok(state, "zero-report", "operator")
        _ok(state, "open", "president")  # the opening document goes into the outbox
        notes.wait_for("nema veze s CIK-om")  # dead network: nothing listens on the package's port
        assert "WATCHDOG=1" in notes.seen  # a dead network is not a failed service

        impostor = _receiver(port, tmp_path / "impostor-store", devices)  # signs with a key of its own
        notes.wait_for("not by the CEC receiver's key of the election package")
        status = _ok(state, "status", "operator")["status"]
        assert status["outbox"] == "Poslano CIK-u: 0 od 1", status
        _stop(impostor)
        impostor = None

        receiver = _receiver(port, tmp_path / "cec-store", devices, "--key", str(TEST_RECEIVER_KEY))
        notes.wait_for("STATUS=Poslano CIK-u: 1 od 1")
        assert _ok(state, "status", "operator")["status"]["outbox"] == "Poslano CIK-u: 1 od 1"
        listing = subprocess.run([sys.executable, "-m", "ballotbox", "receiver", "list", "--store",
                                  str(tmp_path / "cec-store"), "--json"], check=False, env=ENV, capture_output=True, text=True)
        assert '"089A012"' in listing.stdout and "polls" in listing.stdout, listing.stdout + listing.stderr
        out = _stop(uploader)
        assert uploader.returncode == 0, out
        assert "acknowledged" in out and "receipt" in out
    finally:
        for proc in (uploader, scanner, impostor, receiver):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        notes.sock.close()
    assert scanner.returncode == 0


def test_the_uploader_service_needs_an_installed_package(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "ballotbox", "service", "run", "uploader", "--state-dir",
                          str(tmp_path)], check=False, env=ENV, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no election package installed" in run.stderr, run.stderr
    run = subprocess.run([sys.executable, "-m", "ballotbox", "service", "run", "uploader", "--voters", "3"],
                         check=False, env=ENV, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "not an option of the uploader" in run.stderr, run.stderr

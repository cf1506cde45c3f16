"""The device key sealed to a TPM 2.0 (firmware/trust/tpm.py), against a real software TPM: swtpm, started
with a temporary state for each test, driven through the same tpm2-tools commands as the box's TPM.
Skipped, saying why, where swtpm or tpm2-tools is not installed (scripts/setup.sh installs both)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ballotbox.cli import main
from firmware.common.identity import SEALED_KEY_FILE, DeviceKeyError, load_or_provision
from firmware.trust.tpm import Tpm, TpmError, tools_missing

STATION = "089A012"
ELECTION_FILE = "config/elections/municipal-2024-sample.json"

needs_swtpm = pytest.mark.skipif(
    shutil.which("swtpm") is None or bool(tools_missing()),
    reason="no software TPM here: swtpm and tpm2-tools are not installed (apt install swtpm tpm2-tools; "
           "scripts/setup.sh installs them)")


def _free_ports() -> int:
    """A free port whose next one is free too: the swtpm TCTI reaches the control channel at port + 1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    pytest.fail("no two free ports side by side on 127.0.0.1 for swtpm")


class SoftwareTpm:
    """A swtpm process with its own state folder: a TPM 2.0 of its own, with its own storage seed."""

    def __init__(self, state: Path) -> None:
        state.mkdir(parents=True)
        self.port = _free_ports()
        ctrl = self.port + 1
        self.process = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={ctrl},bindaddr=127.0.0.1", "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    self.stop()
                    pytest.fail(f"swtpm did not start: {err}")
                time.sleep(0.05)
        self.tpm = Tpm(f"swtpm:host=127.0.0.1,port={self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[SoftwareTpm]:
    box = SoftwareTpm(tmp_path / "swtpm-state")
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def signed_package(tmp_path: Path) -> Path:
    assert main(["package", "build", "--election", ELECTION_FILE, "--endpoint", "http://127.0.0.1:9",
                 "--out", str(tmp_path / "package.json")]) == 0
    assert main(["package", "sign", str(tmp_path / "package.json"), "--out", str(tmp_path / "signed.json")]) == 0
    return tmp_path / "signed.json"


@needs_swtpm
def test_a_sealed_secret_comes_back_from_its_tpm_and_is_not_in_the_blob(swtpm: SoftwareTpm) -> None:
    secret = os.urandom(32)
    blob = swtpm.tpm.seal(secret)
    assert secret not in base64.b64decode(blob["private"]) + base64.b64decode(blob["public"])
    assert swtpm.tpm.unseal(blob) == secret
    assert swtpm.tpm.unseal(blob) == secret  # again: nothing of the first unseal is left loaded in the TPM


@needs_swtpm
def test_another_tpm_cannot_unseal_the_blob(swtpm: SoftwareTpm, tmp_path: Path) -> None:
    blob = swtpm.tpm.seal(os.urandom(32))
    other = SoftwareTpm(tmp_path / "another-tpm")
    try:
        with pytest.raises(TpmError, match="could not load the sealed key"):
            other.tpm.unseal(blob)
    finally:
        other.stop()


@needs_swtpm
def test_provisioning_seals_the_device_key_to_the_tpm_and_the_receipt_says_so(
        swtpm: SoftwareTpm, signed_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    device = state / "device"
    assert main(["provision", "--package", str(signed_package), "--station", STATION, "--state-dir", str(state),
                 "--tpm", swtpm.tpm.tcti]) == 0
    out = capsys.readouterr().out
    receipt = json.loads((device / "provisioning-receipt.json").read_text())
    assert receipt["key_storage"].startswith(f"sealed to the TPM 2.0 ({swtpm.tpm.tcti})")
    assert "key storage      sealed to the TPM 2.0" in out
    assert not (device / "device-key.pem").exists()  # no private key file on the card
    sealed = device / SEALED_KEY_FILE
    assert stat.S_IMODE(os.stat(sealed).st_mode) == 0o600
    # the services unseal it into memory: the key signs, and the receipt's public key verifies it
    identity = load_or_provision(device, "BB-SIM-0001")
    assert identity.storage == "tpm" and identity.fingerprint == receipt["key_fingerprint"]
    seed = identity.key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                      serialization.NoEncryption())
    assert seed not in sealed.read_bytes() and base64.b64encode(seed) not in sealed.read_bytes()
    public = serialization.load_pem_public_key(receipt["public_key_pem"].encode())
    assert isinstance(public, Ed25519PublicKey)
    public.verify(identity.sign(b"results"), b"results")
    # provisioning again (a corrected package) keeps the sealed key
    assert main(["provision", "--package", str(signed_package), "--station", STATION, "--state-dir", str(state),
                 "--tpm", swtpm.tpm.tcti]) == 0
    again = json.loads((device / "provisioning-receipt.json").read_text())
    assert again["key_fingerprint"] == receipt["key_fingerprint"]


@needs_swtpm
def test_a_sealed_key_whose_tpm_does_not_answer_is_refused_with_what_to_do(
        swtpm: SoftwareTpm, tmp_path: Path) -> None:
    device = tmp_path / "device"
    load_or_provision(device, "BB-SIM-0001", tpm=swtpm.tpm)
    swtpm.stop()  # the card moved to another box, or the TPM failed
    with pytest.raises(DeviceKeyError) as refused:
        load_or_provision(device, "BB-SIM-0001")
    words = str(refused.value)
    assert SEALED_KEY_FILE in words and "could not be unsealed" in words and "re-provision" in words
    assert not (device / "device-key.pem").exists()  # never a new key behind the person's back


def test_without_a_tpm_auto_keeps_the_key_in_a_file(signed_package: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import firmware.trust.tpm as tpm_module

    monkeypatch.setattr(tpm_module, "TPM_DEVICE", tmp_path / "no-tpmrm0")
    state = tmp_path / "state"
    assert main(["provision", "--package", str(signed_package), "--station", STATION, "--state-dir", str(state)]) == 0
    receipt = json.loads((state / "device" / "provisioning-receipt.json").read_text())
    assert receipt["key_storage"] == "file (mode 0600); no TPM used"
    assert (state / "device" / "device-key.pem").exists() and not (state / "device" / SEALED_KEY_FILE).exists()


def test_a_tpm_without_its_tools_or_a_bad_tcti_is_refused_and_nothing_is_installed(
        signed_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert main(["provision", "--package", str(signed_package), "--station", STATION, "--state-dir", str(state),
                 "--tpm", "floppy:/dev/fd0"]) == 2
    assert "--tpm 'floppy:/dev/fd0': give auto, none, or a TCTI" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert main(["provision", "--package", str(signed_package), "--station", STATION, "--state-dir", str(state),
                 "--tpm", "device:/dev/tpmrm0"]) == 2
    err = capsys.readouterr().err
    assert "tpm2_createprimary" in err and "install tpm2-tools" in err and "--tpm none" in err
    assert not state.exists()

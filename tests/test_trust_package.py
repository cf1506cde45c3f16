"""The election package and provisioning: every refusal says why (exit 2) and installs nothing; a good
package installs atomically and the receipt teaches the CEC's receiver the device key, bound to its station."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from transmission_support import ReceiverThread, station_documents

from ballotbox.cli import main
from ballotbox.trust_cli import use_installed_package
from config.election import SAMPLE_ELECTION
from firmware.cec.receiver.app import ReceiverConfig
from firmware.cec.receiver.keys import DeviceKeys, KeysError
from firmware.common.identity import DeviceIdentity
from firmware.errors import UserError
from firmware.trust.package import installed_package, verify_package
from firmware.trust.provisioning import key_storage
from firmware.trust.signing import TrustError, sign_envelope
from firmware.trust.tpm import Tpm

STATION = "089A012"  # the sample definition's station
ELECTION = "LI2024"
ENDPOINT = "http://127.0.0.1:8443"


def _build_and_sign(tmp_path: Path, *extra: str, name: str = "signed.json") -> Path:
    unsigned, signed = tmp_path / "unsigned.json", tmp_path / name
    assert main(["package", "build", "--election", str(SAMPLE_ELECTION), "--endpoint", ENDPOINT,
                 "--out", str(unsigned), *extra]) == 0
    assert main(["package", "sign", str(unsigned), "--out", str(signed)]) == 0
    return signed


@pytest.fixture
def signed(tmp_path: Path) -> Path:
    return _build_and_sign(tmp_path)


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    return capsys.readouterr().err


def _state_entries(state: Path) -> list[str]:
    return sorted(p.relative_to(state).as_posix() for p in state.rglob("*")) if state.exists() else []


def test_a_signed_package_verifies_for_its_station_and_election(signed: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["package", "verify", str(signed), "--station", STATION, "--election", ELECTION]) == 0
    out, err = capsys.readouterr()
    assert f"election {ELECTION} (official), station(s) {STATION}, receiver {ENDPOINT}" in out
    assert "TEST ONLY key" in err


def test_provisioning_refuses_a_package_for_another_station_and_installs_nothing(
        signed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    err = _refused(capsys, ["provision", "--package", str(signed), "--station", "089A013", "--state-dir", str(state)])
    assert f"the package is for station(s) {STATION}, not 089A013" in err
    assert _state_entries(state) == []


def test_provisioning_refuses_a_package_for_another_election(signed: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    err = _refused(capsys, ["provision", "--package", str(signed), "--station", STATION, "--election", "LI2028",
                            "--state-dir", str(state)])
    assert f"the package is for election '{ELECTION}', not 'LI2028'" in err
    assert _state_entries(state) == []


def test_a_package_with_one_value_changed_after_signing_is_refused(signed: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    envelope = json.loads(signed.read_text())
    envelope["payload"]["receiver"]["endpoint"] = "http://127.0.0.1:9999"  # a redirect of the results
    signed.write_text(json.dumps(envelope))
    state = tmp_path / "state"
    err = _refused(capsys, ["provision", "--package", str(signed), "--station", STATION, "--state-dir", str(state)])
    assert "signed.json: the signature does not verify with TEST-ONLY-cec-package.pub.pem: the file was altered" in err
    assert _state_entries(state) == []


def test_a_package_signed_by_a_key_the_box_does_not_trust_is_refused(signed: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    payload = json.loads(signed.read_text())["payload"]
    stranger = Ed25519PrivateKey.generate()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(sign_envelope(payload, stranger)))
    state = tmp_path / "state"
    err = _refused(capsys, ["provision", "--package", str(forged), "--station", STATION, "--state-dir", str(state)])
    assert "forged.json: signed by key" in err and "which this box does not trust" in err
    assert _state_entries(state) == []


def test_a_package_of_an_unknown_schema_version_is_refused_after_its_signature(tmp_path: Path) -> None:
    from firmware.trust.signing import TEST_PACKAGE_KEY, load_private_key

    signed = _build_and_sign(tmp_path)
    payload = json.loads(signed.read_text())["payload"] | {"schema": "ballotbox.election-package/2"}
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(sign_envelope(payload, load_private_key(TEST_PACKAGE_KEY))))
    with pytest.raises(TrustError) as refused:
        verify_package(newer, station=STATION)
    assert refused.value.reason == "schema"
    assert "schema 'ballotbox.election-package/2': this box reads 'ballotbox.election-package/1'" in str(refused.value)


def test_a_package_whose_typed_fields_have_the_wrong_type_is_refused(tmp_path: Path) -> None:
    from firmware.trust.signing import TEST_PACKAGE_KEY, load_private_key

    payload = json.loads(_build_and_sign(tmp_path).read_text())["payload"]
    payload["receiver"]["pin_sha256"] = 12345  # strict: a number is not the pin's hex string
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(sign_envelope(payload, load_private_key(TEST_PACKAGE_KEY))))
    with pytest.raises(TrustError) as refused:
        verify_package(bad, station=STATION)
    assert refused.value.reason == "schema" and "receiver.pin_sha256" in str(refused.value)


def test_provisioning_installs_the_package_makes_a_private_key_and_prints_the_receipt(
        signed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    capsys.readouterr()
    assert main(["provision", "--package", str(signed), "--station", STATION, "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    device = state / "device"
    receipt = json.loads((device / "provisioning-receipt.json").read_text())
    assert stat.S_IMODE(os.stat(device / "device-key.pem").st_mode) == 0o600
    assert (receipt["device_id"], receipt["station"], receipt["election"]) == ("BB-SIM-0001", STATION, ELECTION)
    assert receipt["package_sha256"] == verify_package(signed, station=STATION).sha256
    assert len(receipt["software_hash"]) == 64 and receipt["package_signer_test_only"] is True
    assert f"key fingerprint  {receipt['key_fingerprint']}" in out and "TEST ONLY key" in out
    installed = installed_package(device)
    assert installed is not None and (installed.station, installed.endpoint) == (STATION, ENDPOINT)
    assert (device / "package").is_symlink() and os.readlink(device / "package") == \
        f"packages/{receipt['package_sha256'][:16]}"
    assert (device / "package" / "package.json").read_bytes() == signed.read_bytes()


def test_provisioning_again_with_a_corrected_package_keeps_the_key_and_switches_the_package(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    first = _build_and_sign(tmp_path, name="first.json")
    assert main(["provision", "--package", str(first), "--station", STATION, "--state-dir", str(state)]) == 0
    key_before = (state / "device" / "device-key.pem").read_bytes()
    second = tmp_path / "second"
    second.mkdir()
    corrected = _build_and_sign(second, "--pin", "ab" * 32)
    assert main(["provision", "--package", str(corrected), "--station", STATION, "--state-dir", str(state)]) == 0
    assert (state / "device" / "device-key.pem").read_bytes() == key_before
    installed = installed_package(state / "device")
    assert installed is not None and installed.pin_sha256 == "ab" * 32
    assert len(list((state / "device" / "packages").iterdir())) == 1  # the old one is gone


def test_a_box_provisioned_for_one_station_refuses_a_package_of_another(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    stations = tmp_path / "stations.json"
    sample = json.loads(SAMPLE_ELECTION.read_text())["station"]
    stations.write_text(json.dumps([sample, sample | {"code": "089A013"}]))
    signed = _build_and_sign(tmp_path, "--stations", str(stations))
    state = tmp_path / "state"
    assert main(["provision", "--package", str(signed), "--station", STATION, "--state-dir", str(state)]) == 0
    before = _state_entries(state)
    err = _refused(capsys, ["provision", "--package", str(signed), "--station", "089A013", "--state-dir", str(state)])
    assert f"this box is provisioned for station {STATION}, election {ELECTION}; the package is for station " \
           "089A013" in err and "Wipe the box" in err
    assert _state_entries(state) == before


def test_the_installed_election_carries_the_station_chosen_from_the_package_list(tmp_path: Path) -> None:
    stations = tmp_path / "stations.json"
    sample = json.loads(SAMPLE_ELECTION.read_text())["station"]
    stations.write_text(json.dumps([sample, sample | {"code": "089A013", "registered_voters": 640}]))
    signed = _build_and_sign(tmp_path, "--stations", str(stations))
    assert main(["provision", "--package", str(signed), "--station", "089A013", "--state-dir",
                 str(tmp_path / "s")]) == 0
    election = json.loads((tmp_path / "s" / "device" / "package" / "election.json").read_text())
    assert (election["station"]["code"], election["station"]["registered_voters"]) == ("089A013", 640)


def test_simulate_on_a_provisioned_box_takes_the_election_and_receiver_of_its_package(
        signed: Path, tmp_path: Path) -> None:
    import argparse

    state = tmp_path / "state"
    assert main(["provision", "--package", str(signed), "--station", STATION, "--state-dir", str(state)]) == 0
    args = argparse.Namespace(election=None, endpoint=None, pin=None)
    use_installed_package(args, state)
    assert args.election == (state / "device" / "package" / "election.json").resolve()
    assert (args.endpoint, args.pin) == (ENDPOINT, None)
    other = argparse.Namespace(election=Path("config/elections/council-30x35.json"), endpoint=None, pin=None)
    with pytest.raises(UserError, match="is provisioned for election LI2024"):
        use_installed_package(other, state)


def test_simulate_counts_a_provisioned_state_dir_as_no_day_yet(signed: Path, tmp_path: Path) -> None:
    from ballotbox.cli import _provisioned_only

    state = tmp_path / "state"
    assert main(["provision", "--package", str(signed), "--station", STATION, "--state-dir", str(state)]) == 0
    assert _provisioned_only(state)
    (state / "device" / "scanner.sqlite").write_bytes(b"a day")
    assert not _provisioned_only(state)


def test_the_key_storage_says_how_the_key_is_kept() -> None:
    key = Ed25519PrivateKey.generate()
    tpm = Tpm("device:/dev/tpmrm0")
    assert key_storage(DeviceIdentity("BB-SIM-0001", key), None) == "file (mode 0600); no TPM used"
    assert key_storage(DeviceIdentity("BB-SIM-0001", key), tpm) == \
        "file (mode 0600), kept from before this box used its TPM (device:/dev/tpmrm0)"
    assert key_storage(DeviceIdentity("BB-SIM-0001", key, "tpm"), tpm).startswith(
        "sealed to the TPM 2.0 (device:/dev/tpmrm0): the card holds only the sealed blob device-key.tpm.json")


# -- the receiver learns keys from receipts --------------------------------------------------------------
def _provisioned_box(tmp_path: Path, signed: Path, keys: Path) -> Ed25519PrivateKey:
    state = tmp_path / "state"
    assert main(["provision", "--package", str(signed), "--station", STATION, "--state-dir", str(state),
                 "--receipt", str(keys / f"{STATION}.receipt.json")]) == 0
    key = serialization.load_pem_private_key((state / "device" / "device-key.pem").read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def test_the_receiver_takes_a_provisioned_box_for_its_station_and_refuses_it_for_another(
        signed: Path, tmp_path: Path) -> None:
    keys = tmp_path / "devices"
    keys.mkdir()
    key = _provisioned_box(tmp_path, signed, keys)
    own, foreign = station_documents(STATION, "BB-SIM-0001", key)[0], station_documents("001A001", "BB-SIM-0001",
                                                                                        key)[0]
    with ReceiverThread(ReceiverConfig(tmp_path / "store", keys)) as url:
        stored = httpx.post(f"{url}/v1/documents", content=own.body, headers=own.headers(), timeout=10)
        refused = httpx.post(f"{url}/v1/documents", content=foreign.body, headers=foreign.headers(), timeout=10)
    assert stored.status_code == 201
    assert refused.status_code == 403 and refused.json()["error"] == "wrong_station_for_key"
    assert f"{STATION}.receipt.json is provisioned for station {STATION}, not '001A001'" in refused.json()["detail"]


def test_a_receipt_whose_station_was_edited_is_refused_by_the_receiver(signed: Path, tmp_path: Path) -> None:
    keys = tmp_path / "devices"
    keys.mkdir()
    _provisioned_box(tmp_path, signed, keys)
    path = keys / f"{STATION}.receipt.json"
    receipt = json.loads(path.read_text()) | {"station": "001A001"}
    path.write_text(json.dumps(receipt))
    with pytest.raises(KeysError, match="the receipt's signature does not verify with the key it carries"):
        DeviceKeys(keys)


def test_a_bare_pem_beside_a_receipt_does_not_unbind_the_key(signed: Path, tmp_path: Path) -> None:
    keys = tmp_path / "devices"
    keys.mkdir()
    _provisioned_box(tmp_path, signed, keys)
    (keys / "box.pem").write_bytes((tmp_path / "state" / "device" / "device-key.pub.pem").read_bytes())
    found = DeviceKeys(keys)
    assert [k.station for k in found._keys.values()] == [STATION]


# -- every door: --help, and bad input as one line with exit 2 ---------------------------------------------
@pytest.mark.parametrize("command", [["package", "build"], ["package", "sign"], ["package", "verify"], ["provision"],
                                     ["release", "build"], ["install"], ["boot-check"], ["service", "run"]])
def test_each_trust_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0  # main() returns argparse's exit code rather than exiting
    assert "usage: ballotbox" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "words"), [
    (["package", "verify", "{tmp}/none.json"], "none.json: no such file"),
    (["package", "verify", "{tmp}/dir"], "dir: cannot be read"),
    (["package", "build", "--election", "{tmp}/none.json", "--endpoint", ENDPOINT, "--out", "{tmp}/p.json"],
     "none.json: no such file"),
    (["package", "build", "--election", str(SAMPLE_ELECTION), "--endpoint", "http://cec.example", "--out",
      "{tmp}/p.json"], "plain http:// is accepted only on loopback"),
    (["package", "sign", "{tmp}/none.json", "--out", "{tmp}/s.json"], "none.json: no such file"),
    (["package", "sign", str(SAMPLE_ELECTION), "--out", "{tmp}/s.json"], "not a package to sign"),
    (["provision", "--package", str(SAMPLE_ELECTION), "--station", STATION, "--state-dir", "{tmp}/s"],
     "not a signed file"),
    (["install", "{tmp}/none.tar.gz", "--root", "{tmp}/root"], "none.tar.gz: no such file"),
    (["install", str(SAMPLE_ELECTION), "--root", "{tmp}/root"], "not a release bundle"),
    (["install", "--root", "{tmp}/root"], "give a BUNDLE, or --rollback"),
    (["install", "--rollback", "--root", "{tmp}/root"], "no previous release to go back to"),
    (["release", "build", "--out", "{tmp}/r.tar.gz", "--source", "{tmp}/dir"], "no ballotbox/ package inside"),
    (["release", "build", "--out", "{tmp}/r.tar.gz", "--key", "{tmp}/none.pem"], "none.pem: no such file"),
])
def test_bad_input_to_the_trust_commands_is_one_line_and_exit_2(argv: list[str], words: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dir").mkdir()
    err = _refused(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.json").exists()


def test_a_state_dir_made_by_device_provision_alone_is_still_no_day_yet(tmp_path: Path) -> None:
    from ballotbox.cli import _provisioned_only

    assert main(["device", "provision", "--state-dir", str(tmp_path / "state")]) == 0
    assert _provisioned_only(tmp_path / "state")
    (tmp_path / "state" / "world").mkdir()
    assert not _provisioned_only(tmp_path / "state")


def test_the_package_carries_the_receivers_receipt_key_and_the_installed_box_reads_it(tmp_path: Path) -> None:
    from firmware.common.transmission.documents import key_id
    from firmware.common.transmission.receipts import load_public_key_pem
    from firmware.trust.signing import (
        TEST_PACKAGE_KEY,
        TEST_RECEIVER_PUBLIC_KEY,
        load_private_key,
    )

    own = Ed25519PrivateKey.generate().public_key()
    pem = tmp_path / "receiver-key.pub.pem"
    pem.write_bytes(own.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    signed = _build_and_sign(tmp_path, "--receipt-key", str(pem))
    assert main(["provision", "--package", str(signed), "--station", STATION, "--state-dir", str(tmp_path / "s"),
                 "--json"]) == 0
    installed = installed_package(tmp_path / "s" / "device")
    assert installed is not None and key_id(installed.receiver_public_key()) == key_id(own)
    test_only = load_public_key_pem(TEST_RECEIVER_PUBLIC_KEY.read_bytes(), "test")
    assert key_id(test_only) != key_id(own)  # --receipt-key was taken, not the TEST ONLY default
    payload = json.loads(signed.read_text())["payload"]
    payload["receiver"]["receipt_key"] = "not-a-key"  # not base64 of 32 bytes
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(sign_envelope(payload, load_private_key(TEST_PACKAGE_KEY))))
    with pytest.raises(TrustError) as refused:
        verify_package(broken, station=STATION)
    assert refused.value.reason == "schema" and "receipt_key" in str(refused.value), str(refused.value)
    del payload["receiver"]["receipt_key"]
    broken.write_text(json.dumps(sign_envelope(payload, load_private_key(TEST_PACKAGE_KEY))))
    with pytest.raises(TrustError, match="receipt_key"):
        verify_package(broken, station=STATION)

"""The export at close: a signed index of every file; `export verify` names a file altered, missing or
extra with the device's public key alone; the deletion record says what biometric data is gone."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ballotbox.cli import main
from config.election import SAMPLE_ELECTION, load_election
from firmware.auth.deletion_record import (
    build_deletion_record,
    escpos_document,
    save_deletion_record,
)
from firmware.auth.register import (
    DeletionRecord,
    RegisterExtract,
    build_register_file,
    provision_key,
)
from firmware.common.eventlog import EventLog
from firmware.common.events import Service
from firmware.common.export import ExportError, ExportParts, verify_export, write_export
from firmware.common.identity import DeviceIdentity, software_hash, software_version
from firmware.common.reports import build_header
from simulator.escpos_twin import decode_documents
from simulator.fingerprint_twin import SimulatedFingerprintSensor

ELECTION = load_election(SAMPLE_ELECTION)
AT = datetime(2024, 10, 6, 19, 0, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture
def identity() -> DeviceIdentity:
    return DeviceIdentity("BB-TEST-0001", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


@pytest.fixture
def export(tmp_path: Path, identity: DeviceIdentity) -> Path:
    reports = tmp_path / "out" / "reports"
    reports.mkdir(parents=True)
    (reports / "results-report.json").write_text('{"report": "results_report"}\n')
    (reports / "results-report.png").write_bytes(b"\x89PNG fake")
    video = tmp_path / "out" / "video"
    video.mkdir()
    (video / "manifest.json").write_text('{"segments": []}')
    (video / "manifest.json.sig").write_text("c2lnbmF0dXJl\n")
    log = EventLog.open(tmp_path / "scanner-events.jsonl", Service.SCANNER, identity, lambda: AT)
    log.append("polls.closed", {"state": "closed_final"})
    log.close()
    return write_export(tmp_path / "out" / "export", ExportParts(logs=(tmp_path / "scanner-events.jsonl",),
                        video=video, reports=reports, station="089A012", election="lokalni-2024"), identity, at=AT)


def test_an_export_lists_every_file_with_its_hash_and_verifies(export: Path, identity: DeviceIdentity) -> None:
    index = json.loads((export / "index.json").read_bytes())
    assert [f["path"] for f in index["files"]] == [
        "device-key.pub.pem", "logs/scanner-events.jsonl", "reports/results-report.json",
        "reports/results-report.png", "video/manifest.json", "video/manifest.json.sig"]
    assert index["key_fingerprint"] == identity.fingerprint and index["station"] == "089A012"
    check = verify_export(export, identity.key.public_key())
    assert check.problems == [] and check.files == 6
    assert {p.stat().st_mtime for p in export.rglob("*")} == {AT.timestamp()}  # one mtime: nothing ordered


def test_an_altered_a_missing_and_an_extra_file_are_each_named(export: Path, identity: DeviceIdentity) -> None:
    (export / "reports" / "results-report.json").write_text('{"report": "results_report", "x": 1}\n')
    (export / "video" / "manifest.json").unlink()
    (export / "reports" / "zero-report.json").write_text("{}")
    assert verify_export(export, identity.key.public_key()).problems == [
        "reports/results-report.json: altered (its SHA-256 is not the one in the signed index)",
        "video/manifest.json: missing (listed in the signed index)",
        "reports/zero-report.json: extra (not in the signed index)"]


def test_an_index_edited_to_match_an_altered_file_fails_its_signature(export: Path, identity: DeviceIdentity) -> None:
    (export / "reports" / "results-report.png").write_bytes(b"\x89PNG forged")
    index = json.loads((export / "index.json").read_bytes())
    import hashlib
    for entry in index["files"]:
        if entry["path"] == "reports/results-report.png":
            entry["sha256"] = hashlib.sha256(b"\x89PNG forged").hexdigest()
    (export / "index.json").write_text(json.dumps(index))
    assert verify_export(export, identity.key.public_key()).problems == [
        "index.json: altered (its signature does not verify with the device key): no file's hash in it can be trusted"]


def test_a_tampered_log_inside_the_export_is_named_with_its_line(export: Path, identity: DeviceIdentity) -> None:
    log = export / "logs" / "scanner-events.jsonl"
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"\n".join(lines[:1] + lines[2:]))
    problems = verify_export(export, identity.key.public_key()).problems
    assert problems[0] == "logs/scanner-events.jsonl: altered (its SHA-256 is not the one in the signed index)"
    assert problems[1].startswith("logs/scanner-events.jsonl: removed: seq 1, between line 1 (seq 0, log.opened)")


def test_another_devices_key_and_a_replaced_public_key_are_refused(export: Path, identity: DeviceIdentity) -> None:
    other = Ed25519PrivateKey.generate()
    problems = verify_export(export, other.public_key()).problems
    assert problems[0] == "device-key.pub.pem: not the key given with --key (replaced: trust --key)"
    assert problems[1].startswith("index.json: altered (its signature does not verify")
    (export / "device-key.pub.pem").write_bytes(other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert "device-key.pub.pem: altered (its SHA-256 is not the one in the signed index)" in \
        verify_export(export, identity.key.public_key()).problems


def test_export_verify_exits_0_intact_1_tampered_2_not_an_export(export: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "verify", str(export)]) == 0
    assert "export intact" in capsys.readouterr().out
    (export / "reports" / "results-report.png").write_bytes(b"x")
    assert main(["export", "verify", str(export)]) == 1
    assert "PROBLEM reports/results-report.png: altered" in capsys.readouterr().out
    assert main(["export", "verify", str(tmp_path)]) == 2
    assert "no index.json here" in capsys.readouterr().err
    assert main(["export", "verify", str(export), "--key", str(tmp_path / "none.pem")]) == 2
    assert main(["log", "verify", str(export / "logs"), "--key", str(export / "device-key.pub.pem")]) == 2
    assert main(["log", "verify", str(export / "reports" / "results-report.json")]) == 2


def test_log_verify_exits_0_and_1_naming_the_line(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, key = export / "logs" / "scanner-events.jsonl", export / "device-key.pub.pem"
    assert main(["log", "verify", str(log), "--key", str(key)]) == 0
    assert "log intact" in capsys.readouterr().out
    log.write_bytes(log.read_bytes().replace(b"closed_final", b"open"))
    assert main(["log", "verify", str(log), "--key", str(key)]) == 1
    assert "PROBLEM line 2 (seq 1, polls.closed): altered: its content does not match its hash" in \
        capsys.readouterr().out


def test_verify_export_refuses_a_folder_that_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such directory"):
        verify_export(tmp_path / "nothing")


# -- the deletion record ---------------------------------------------------------------------------
def test_the_wipe_empties_the_readers_flash_and_the_record_says_so(tmp_path: Path, identity: DeviceIdentity) -> None:
    key = provision_key(tmp_path)
    build_register_file(tmp_path / "register.bbr", ELECTION.station.code, [], key)
    register = RegisterExtract(tmp_path / "register.bbr", ELECTION.station.code, key, key_file=tmp_path / "auth.key")
    sensor = SimulatedFingerprintSensor()
    sensor.templates = {3, 7, 11}  # left by a technician's enrolment test

    class Clock:
        def now(self) -> datetime:
            return AT

    deletion = register.wipe(sensor, Clock())
    assert (deletion.sensor_templates_before, deletion.sensor_templates_after) == (3, 0)
    header = build_header(ELECTION, device_id=identity.device_id, software_version=software_version(),
                          software_hash=software_hash(), device_key_fingerprint=identity.fingerprint, printed_at=AT)
    record = build_deletion_record(header, deletion, register_path=tmp_path / "register.bbr",
                                   key_path=tmp_path / "auth.key")
    assert record.ok and record.register_file_deleted and record.key_destroyed
    paths = save_deletion_record(record, ELECTION, tmp_path / "reports")
    assert [p.name for p in paths] == ["deletion-record.png", "deletion-record.json", "deletion-record.escpos"]
    data = json.loads(paths[1].read_text(encoding="utf-8"))
    assert data["report"] == "deletion_record" and data["sensor_templates_before"] == 3
    printed = decode_documents(paths[2].read_bytes())
    assert len(printed) == 1 and printed[0].image.width == 576


def test_the_deletion_record_is_printed_through_the_printer_twin_as_its_escpos_file_names_the_role(
        tmp_path: Path, identity: DeviceIdentity) -> None:
    from firmware.common.i18n import Messages
    from firmware.common.reports import layout_report
    from simulator.escpos_twin import twin_printer

    header = build_header(ELECTION, device_id=identity.device_id, software_version="1", software_hash="0" * 64,
                          device_key_fingerprint=identity.fingerprint, printed_at=AT)
    deletion = DeletionRecord(AT, 10, 9, "ab" * 32, 0, True, 0, authorized_by="president")
    record = build_deletion_record(header, deletion, register_path=tmp_path / "gone.bbr")
    with twin_printer() as (printer, twin):
        paths = save_deletion_record(record, ELECTION, tmp_path / "reports", printer=printer)
        [paper] = twin.wait_for_documents(1)
    [filed] = decode_documents(paths[2].read_bytes())
    assert paper.image.size == filed.image.size and paper.image.tobytes() == filed.image.tobytes()
    assert paper.partial_cut and twin.status_queries == [4]  # the driver asked for paper first, then cut
    assert json.loads(paths[1].read_text(encoding="utf-8"))["authorized_by"] == "president"
    bs = Messages.for_language("bs")
    text = " ".join(line.text for line in layout_report(record, ELECTION, 576))
    assert bs.t("deletion.label.authorized_by") in text and bs.t("role.president") in text


@pytest.mark.parametrize("language", ["bs", "hr", "sr-Latn", "sr-Cyrl", "en"])
def test_a_deletion_record_that_finds_data_left_says_so_in_every_language(language: str,
                                                                          identity: DeviceIdentity) -> None:
    from dataclasses import replace

    from firmware.common.i18n import Messages
    from firmware.common.reports import layout_report

    header = replace(build_header(ELECTION, device_id=identity.device_id, software_version="1", software_hash="0" * 64,
                                  device_key_fingerprint=identity.fingerprint, printed_at=AT), language=language)
    record = build_deletion_record(header, DeletionRecord(AT, 10, 9, "ab" * 32, 2, True, 2),
                                   register_path=Path("/nonexistent"))
    assert not record.ok
    text = " ".join(line.text for line in layout_report(record, ELECTION, 576))
    msgs = Messages.for_language(language)
    assert msgs.t("deletion.not_ok") in text and msgs.t("deletion.title").split()[0] in text
    assert len(escpos_document(record, ELECTION, 384)) > 1000

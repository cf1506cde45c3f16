"""The register extract: encrypted at rest, readable only while open, wiped with a deletion record."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest

from firmware.auth.register import (
    KEY_FILE,
    RegisterClosed,
    RegisterError,
    RegisterExtract,
    RegisterVoter,
    build_register_file,
    provision_key,
)

STATION = "089A012"
VOTERS = [
    RegisterVoter("0101990170007", ("A1B2C3D4E",), "AMRA HADZIC", 1, "F", 1990, (b"FMR\x00 20\x00" + b"\x11" * 40,)),
    RegisterVoter("1505975180014", ("X9Y8Z7W6V",), "DRAGAN PETROVIC", 2, "M", 1975, ()),
]


class _Clock:
    def now(self) -> dt.datetime:
        return dt.datetime(2026, 10, 4, 19, 5, tzinfo=dt.UTC)


class _Flash:
    def __init__(self) -> None:
        self.count = 3

    def clear_templates(self) -> None:
        self.count = 0

    def template_count(self) -> int:
        return self.count


@pytest.fixture
def made(tmp_path: Path) -> tuple[Path, bytes]:
    key = provision_key(tmp_path)
    path = build_register_file(tmp_path / "register.bbr", STATION, VOTERS, key)
    return path, key


def test_the_key_file_is_32_bytes_readable_by_the_owner_only(tmp_path: Path) -> None:
    key = provision_key(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode)
    assert (len(key), mode) == (32, 0o600)
    assert provision_key(tmp_path) == key


def test_the_ciphertext_holds_no_jmbg_name_or_document_number(made: tuple[Path, bytes]) -> None:
    data = made[0].read_bytes()
    for voter in VOTERS:
        for secret in (voter.jmbg, voter.name, voter.document_numbers[0], voter.name.split()[1]):
            assert secret.encode() not in data


def test_an_open_register_finds_voters_by_jmbg_or_document_number(made: tuple[Path, bytes]) -> None:
    register = RegisterExtract(made[0], STATION, made[1])
    register.open()
    assert register.lookup([("jmbg", "0101990170007")]) == VOTERS[0]
    assert register.lookup([("jmbg", "0000000000000"), ("document_number", "X9Y8Z7W6V")]) == VOTERS[1]
    assert register.lookup([("jmbg", "0000000000000")]) is None
    assert len(register) == 2


def test_a_closed_register_refuses_lookups(made: tuple[Path, bytes]) -> None:
    register = RegisterExtract(made[0], STATION, made[1])
    with pytest.raises(RegisterClosed, match="closed"):
        register.lookup([("jmbg", VOTERS[0].jmbg)])
    register.open()
    register.close()
    with pytest.raises(RegisterClosed, match="open the polls first"):
        register.voters()


def test_a_wrong_key_fails_to_open_and_names_the_record(made: tuple[Path, bytes]) -> None:
    with pytest.raises(RegisterError, match="record 1 does not decrypt"):
        RegisterExtract(made[0], STATION, b"\x01" * 32).open()


def test_another_stations_register_is_refused(made: tuple[Path, bytes]) -> None:
    with pytest.raises(RegisterError, match="extract of station '089A012', this box is '001A001'"):
        RegisterExtract(made[0], "001A001", made[1]).open()


def test_swapped_records_fail_authentication(made: tuple[Path, bytes], tmp_path: Path) -> None:
    key = made[1]
    one = build_register_file(tmp_path / "one.bbr", STATION, VOTERS[:1], key).read_bytes()
    header_end = one.index(b"\n") + 1
    # the first record of a one-record file, moved to position 2 of a two-record file
    two = bytearray(made[0].read_bytes())
    first_len = int.from_bytes(two[header_end + 12 : header_end + 16], "big")
    second_at = header_end + 16 + first_len
    forged = bytes(two[:second_at]) + one[header_end:]
    forged_path = tmp_path / "forged.bbr"
    forged_path.write_bytes(forged)
    with pytest.raises(RegisterError, match="record 2 does not decrypt"):
        RegisterExtract(forged_path, STATION, key).open()


def test_wipe_deletes_file_and_key_and_returns_the_deletion_record(made: tuple[Path, bytes], tmp_path: Path) -> None:
    register = RegisterExtract(made[0], STATION, made[1], key_file=tmp_path / KEY_FILE)
    register.open()
    sha = register.sha256
    flash = _Flash()
    record = register.wipe(flash, _Clock())
    assert not made[0].exists() and not (tmp_path / KEY_FILE).exists()
    assert (record.records, record.templates, record.sensor_templates_after, record.key_destroyed) == (2, 1, 0, True)
    assert record.register_sha256 == sha and len(sha or "") == 64
    assert record.deleted_at == _Clock().now()
    with pytest.raises(RegisterClosed, match="wiped"):
        register.open()

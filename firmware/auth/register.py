"""The station's register extract: JMBG / document number -> voter, encrypted at rest, wiped at close.

    key = provision_key(data_dir)                    # at provisioning: 32 random bytes, file mode 0600
    build_register_file(path, station, voters, key)  # the CEC side (and the simulator)
    register = RegisterExtract(path, station, key)
    register.open()                                  # polls open: decrypt into memory
    register.lookup(document_identity)               # -> RegisterVoter | None
    record = register.wipe(sensor, clock)            # polls closed: overwrite + delete, key destroyed

File format: one JSON header line (format, station, record count), then per record a 12-byte random
nonce, a 4-byte big-endian length and the AES-256-GCM ciphertext of the voter's JSON. The associated
data binds the station and the record's position (`AAD`), so a record cannot be moved to another
station's file or swapped with another record without failing authentication. The register key is
derived with HKDF-SHA256 from the provisioned key file; a second derivation (`pseudonym_key`) keys
the auth store's hashes of JMBGs, so neither key is ever stored beside the data it protects.

Plain text exists only in memory between open() and close()/wipe(). wipe() overwrites the file and
the key file with zeros (fsynced) before deleting them, empties the sensor's template flash and
returns the DeletionRecord the authentication report prints (Art. 34: what was deleted, when).
Residual risk as for the scanner's store: flash wear levelling may keep old blocks (an encrypted data
partition mitigates it); the ciphertext left there is useless once the key file is gone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from firmware.common import failpoints
from firmware.errors import UserError

FORMAT = "ballotbox-register/1"
KEY_FILE = "auth.key"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random per record (a file holds < 2^32 records, no collision risk)
_LENGTH = struct.Struct(">I")
_REGISTER_INFO = b"ballotbox register extract v1"
_PSEUDONYM_INFO = b"ballotbox auth store pseudonyms v1"


class RegisterError(UserError):
    """The register extract cannot be used as asked; the message says why and what to do."""


class RegisterClosed(RegisterError):
    """The register is opened only while the polls are open (Art. 12)."""


@dataclass(frozen=True)
class RegisterVoter:
    """One voter of the station's register extract, with the templates enrolled for them."""

    jmbg: str  # 13 digits
    document_numbers: tuple[str, ...]
    name: str  # as in the register, in the register's script
    register_number: int  # the voter's number in the station's excerpt (izvod)
    sex: str  # "M" | "F"
    birth_year: int
    templates: tuple[bytes, ...]  # ISO/IEC 19794-2:2005 records, possibly from another vendor

    def to_json(self) -> dict[str, Any]:
        return {"jmbg": self.jmbg, "document_numbers": list(self.document_numbers), "name": self.name,
                "register_number": self.register_number, "sex": self.sex, "birth_year": self.birth_year,
                "templates": [base64.b64encode(t).decode("ascii") for t in self.templates]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegisterVoter:
        return cls(str(data["jmbg"]), tuple(data["document_numbers"]), str(data["name"]),
                   int(data["register_number"]), str(data["sex"]), int(data["birth_year"]),
                   tuple(base64.b64decode(t) for t in data["templates"]))


@dataclass(frozen=True)
class DeletionRecord:
    """What wipe() destroyed, for the authentication report (Art. 34)."""

    deleted_at: datetime
    records: int
    templates: int
    register_sha256: str  # of the encrypted file as provisioned: the CEC compares it with what it sent
    sensor_templates_after: int  # the sensor's own flash after clearing: must be 0
    key_destroyed: bool
    # what the sensor's own flash held before it was cleared (the firmware never stores a template there;
    # a module enrolled at the factory or by a technician's test may hold some)
    sensor_templates_before: int = 0
    authorized_by: str | None = None  # the role whose PIN allowed the wipe (AuthService.wipe), never the PIN


class SensorFlash(Protocol):
    def clear_templates(self) -> None: ...
    def template_count(self) -> int: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


def provision_key(data_dir: Path) -> bytes:
    """Make the station's authentication key file (0600) in `data_dir`, or read the one there."""
    path = Path(data_dir) / KEY_FILE
    if path.exists():
        return read_key(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


def read_key(data_dir: Path) -> bytes:
    path = Path(data_dir) / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise RegisterError(f"{path}: no authentication key; provision the device (it makes this file)") from None
    if len(key) != KEY_BYTES:
        raise RegisterError(f"{path}: {len(key)} bytes, expected {KEY_BYTES}; provision the device again")
    return key


def register_key(key: bytes, station_code: str) -> bytes:
    return _hkdf(key, _REGISTER_INFO + b"|" + station_code.encode("utf-8"))


def pseudonym_key(key: bytes, station_code: str) -> bytes:
    return _hkdf(key, _PSEUDONYM_INFO + b"|" + station_code.encode("utf-8"))


def build_register_file(path: Path, station_code: str, voters: Iterable[RegisterVoter], key: bytes) -> Path:
    """Write the encrypted register extract of `station_code` (the CEC side; the simulator)."""
    voters = list(voters)
    aes = AESGCM(register_key(key, station_code))
    header = json.dumps({"format": FORMAT, "station": station_code, "records": len(voters)}, sort_keys=True)
    parts = [header.encode("ascii") + b"\n"]
    for index, voter in enumerate(voters):
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(voter.to_json(), sort_keys=True, ensure_ascii=False).encode("utf-8")
        cipher = aes.encrypt(nonce, plain, _aad(station_code, index))
        parts += [nonce, _LENGTH.pack(len(cipher)), cipher]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"".join(parts))
        f.flush()
        os.fsync(f.fileno())
    return path


class RegisterExtract:
    """The register, readable only between open() and close(); wipe() destroys it."""

    def __init__(self, path: Path, station_code: str, key: bytes, key_file: Path | None = None) -> None:
        self.path = Path(path)
        self.station_code = station_code
        self._key: bytes | None = key
        self._key_file = key_file
        self._voters: list[RegisterVoter] | None = None
        self._by_key: dict[tuple[str, str], RegisterVoter] = {}
        self.sha256: str | None = None
        self.deletion: DeletionRecord | None = None

    @property
    def is_open(self) -> bool:
        return self._voters is not None

    def open(self) -> None:
        if self.deletion is not None or self._key is None:
            raise RegisterClosed(f"{self.path}: the register extract was wiped at the close of the polls; "
                                 "it cannot be opened again")
        data = self._read()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self._voters = self._decrypt(data)
        self._by_key = {}
        for voter in self._voters:
            self._by_key[("jmbg", voter.jmbg)] = voter
            for number in voter.document_numbers:
                self._by_key[("document_number", number)] = voter

    def close(self) -> None:
        self._voters = None
        self._by_key = {}

    def voters(self) -> Sequence[RegisterVoter]:
        return self._require_open()

    def lookup(self, keys: Iterable[tuple[str, str]]) -> RegisterVoter | None:
        """The voter for the first of `keys` (("jmbg", digits), ("document_number", n)) that is known."""
        self._require_open()
        for key in keys:
            if key in self._by_key:
                return self._by_key[key]
        return None

    def __len__(self) -> int:
        return len(self._require_open())

    def census(self) -> tuple[int, int, str]:
        """(records, templates, sha256 of the file): what a wipe will destroy, for its record."""
        if self._voters is None:
            self.open()
        voters = self._require_open()
        return len(voters), sum(len(v.templates) for v in voters), self.sha256 or ""

    def wipe(self, sensor: SensorFlash | None, clock: Clock,
             census: tuple[int, int, str] | None = None) -> DeletionRecord:
        """Close, overwrite and delete the file and the key file, empty the sensor's flash. `census`: what
        the wipe destroys as counted before it began; given, a wipe that a power cut interrupted (the file
        partly overwritten or gone) is finished instead of refused."""
        if self.deletion is not None:
            return self.deletion
        try:
            records, templates, sha = self.census()
        except RegisterError:
            if census is None:
                raise
            records, templates, sha = census  # the shredding had begun before the cut
        self.close()
        _shred(self.path)
        failpoints.hit("auth.register.shredded")  # the extract gone, its key not yet: a power cut here is tested
        key_destroyed = True
        if self._key_file is not None:
            _shred(self._key_file)
            key_destroyed = not self._key_file.exists()
        self._key = None
        flash = before = 0
        if sensor is not None:
            before = sensor.template_count()
            sensor.clear_templates()
            flash = sensor.template_count()
        self.deletion = DeletionRecord(clock.now(), records, templates, sha, flash, key_destroyed, before)
        return self.deletion

    # -- internals -----------------------------------------------------------------------------
    def _require_open(self) -> list[RegisterVoter]:
        if self._voters is None:
            raise RegisterClosed(f"{self.path}: the register extract is closed; it is readable only while "
                                 "the polls are open (open the polls first)")
        return self._voters

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise RegisterError(f"{self.path}: no register extract; load the station's extract from the CEC") from None

    def _decrypt(self, data: bytes) -> list[RegisterVoter]:
        newline = data.find(b"\n")
        try:
            header = json.loads(data[:newline])
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise RegisterError(f"{self.path}: not a register extract ({FORMAT}); load the file the CEC sent")
        if header.get("station") != self.station_code:
            raise RegisterError(f"{self.path}: extract of station {header.get('station')!r}, this box is "
                                f"{self.station_code!r}; load this station's extract")
        assert self._key is not None
        aes = AESGCM(register_key(self._key, self.station_code))
        pos, voters = newline + 1, []
        for index in range(int(header["records"])):
            nonce = data[pos : pos + NONCE_BYTES]
            (length,) = _LENGTH.unpack_from(data, pos + NONCE_BYTES)
            start = pos + NONCE_BYTES + _LENGTH.size
            cipher = data[start : start + length]
            pos = start + length
            try:
                plain = aes.decrypt(nonce, cipher, _aad(self.station_code, index))
            except InvalidTag:
                raise RegisterError(f"{self.path}: record {index + 1} does not decrypt with this device's key "
                                    "(wrong key, another station's file, or a damaged file); load the extract "
                                    "made for this device") from None
            voters.append(RegisterVoter.from_json(json.loads(plain)))
        if pos != len(data):
            raise RegisterError(f"{self.path}: {len(data) - pos} bytes after the last record; the file is damaged")
        return voters


def _aad(station_code: str, index: int) -> bytes:
    return f"{FORMAT}|{station_code}|{index}".encode()


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(key)


def _shred(path: Path) -> None:
    """Overwrite a file with zeros in place, fsync, delete it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    with open(path, "r+b") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    path.unlink()

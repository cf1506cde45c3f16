"""Who this box is and what it runs: software version and hash, the device key and its fingerprint.

They are printed on the zero and results reports so observers can compare boxes (ARCHITECTURE "Trust").
The device key pair is made once, at provisioning (the first start with an empty data directory), and
signs the results document. It is a file (mode 0600) or, on a box with a TPM 2.0, sealed to that TPM and
unsealed into memory when a service starts (firmware/trust/tpm.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.errors import UserError

if TYPE_CHECKING:
    from firmware.trust.tpm import Tpm

ROOT = Path(__file__).resolve().parents[2]
CODE_PACKAGES = ("ballotbox", "firmware", "hal", "omr", "biometrics", "video", "config", "simulator")
KEY_FILE = "device-key.pem"  # the device key as a file (PKCS#8, mode 0600)
SEALED_KEY_FILE = "device-key.tpm.json"  # or sealed to the box's TPM 2.0 (mode 0600; useless without that TPM)
SEALED_SCHEMA = "ballotbox.tpm-sealed-key/1"


class DeviceKeyError(UserError):
    """The device key cannot be used (unreadable, or its TPM does not unseal it); the message says what to do."""


@lru_cache(maxsize=1)
def software_version() -> str:
    try:
        return metadata.version("ballotbox")
    except metadata.PackageNotFoundError:
        return "0.0.0+source"


@lru_cache(maxsize=1)
def software_hash() -> str:
    """SHA-256 over every Python file of the firmware's packages (path and bytes, in path order)."""
    h = hashlib.sha256()
    for pkg in CODE_PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            h.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    key: Ed25519PrivateKey
    storage: str = "file"  # "file": device-key.pem (0600); "tpm": sealed to the box's TPM (firmware/trust/tpm.py)

    @property
    def public_key_raw(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def fingerprint(self) -> str:
        """First 80 bits of SHA-256 of the public key, in groups of four: easy to compare by eye."""
        return fingerprint_of(self.public_key_raw)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


def fingerprint_of(public_key_raw: bytes) -> str:
    """The fingerprint printed on every report, from the raw 32-byte public key alone (what an observer
    holds): first 80 bits of its SHA-256, upper-case hex in groups of four."""
    digest = hashlib.sha256(public_key_raw).hexdigest()[:20].upper()
    return " ".join(digest[i:i + 4] for i in range(0, 20, 4))


def has_device_key(data_dir: Path) -> bool:
    """The box has its device key already (a file, or sealed to its TPM)."""
    return (data_dir / KEY_FILE).exists() or (data_dir / SEALED_KEY_FILE).exists()


def load_or_provision(data_dir: Path, device_id: str, *, tpm: Tpm | None = None) -> DeviceIdentity:
    """The device key of this box, from data_dir: sealed to its TPM (device-key.tpm.json, unsealed into
    memory) or a file (device-key.pem). A box with none gets one made now: sealed to `tpm` when one is
    given (provisioning on a box with a TPM), else a file (mode 0600)."""
    sealed, path = data_dir / SEALED_KEY_FILE, data_dir / KEY_FILE
    if sealed.exists():
        key = _unseal(sealed)
        _write_public_key(data_dir, key)
        return DeviceIdentity(device_id, key, "tpm")
    if path.exists():
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise DeviceKeyError(f"{path}: the device key is unreadable ({exc}); the box must be re-provisioned "
                                 "by the CEC (a new key means a new fingerprint on every report)") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise DeviceKeyError(f"{path}: not an Ed25519 key; re-provision the box")
        _write_public_key(data_dir, loaded)
        return DeviceIdentity(device_id, loaded)
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    if tpm is not None:
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        from firmware.trust.tpm import TpmError

        try:
            blob = tpm.seal(seed)
        except TpmError as exc:
            raise DeviceKeyError(f"{exc}; or provision without the TPM (--tpm none: the key is then a file)") \
                from None
        body = {"schema": SEALED_SCHEMA, "tcti": tpm.tcti, "primary": "owner hierarchy, ecc256:aes128cfb, sha256",
                "public_key": base64.b64encode(_raw_public(key)).decode(), "sealed": blob}
        _write_new(sealed, (json.dumps(body, indent=1) + "\n").encode())
        _write_public_key(data_dir, key)
        return DeviceIdentity(device_id, key, "tpm")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_new(path, pem)
    _write_public_key(data_dir, key)
    return DeviceIdentity(device_id, key)


def _unseal(path: Path) -> Ed25519PrivateKey:
    """The device key sealed in `path`, unsealed by the TPM it names, checked against its public key."""
    from firmware.trust.tpm import Tpm, TpmError

    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("schema") != SEALED_SCHEMA:
            raise ValueError(f"schema {body.get('schema')!r}, not {SEALED_SCHEMA!r}")
        tcti, blob, public = str(body["tcti"]), body["sealed"], base64.b64decode(body["public_key"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DeviceKeyError(f"{path}: not a sealed device key ({type(exc).__name__}: {exc}); the box must be "
                             "re-provisioned by the CEC") from None
    try:
        key = Ed25519PrivateKey.from_private_bytes(Tpm(tcti).unseal(blob))
    except TpmError as exc:
        raise DeviceKeyError(f"{path}: the device key is sealed to a TPM and could not be unsealed ({exc}). "
                             "The key opens only in the box it was provisioned in; if this is that box, check "
                             "its TPM (tpm2_getcap properties-fixed), else re-provision") from None
    except ValueError as exc:
        raise DeviceKeyError(f"{path}: the TPM gave back no Ed25519 key ({exc}); re-provision the box") from None
    if _raw_public(key) != public:
        raise DeviceKeyError(f"{path}: the unsealed key is not the one whose public key the file names; "
                             "re-provision the box")
    return key


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _write_new(path: Path, data: bytes) -> None:
    """A new secret file, mode 0600, refused if one is there (a key is never overwritten)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_public_key(data_dir: Path, key: Ed25519PrivateKey) -> None:
    """data_dir/device-key.pub.pem: what an observer or the CEC's receiver needs to check signatures."""
    path = data_dir / "device-key.pub.pem"
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not path.exists() or path.read_bytes() != pem:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        os.replace(tmp, path)

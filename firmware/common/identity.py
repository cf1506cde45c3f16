"""Who this box is and what it runs: software version and hash, the device key and its fingerprint.

They are printed on the zero and results reports so observers can compare boxes (ARCHITECTURE "Trust").
The device key pair is made once, at provisioning (the first start with an empty data directory), and
signs the results document.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[2]
CODE_PACKAGES = ("ballotbox", "firmware", "hal", "omr", "biometrics", "video", "config", "simulator")


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


def load_or_provision(data_dir: Path, device_id: str) -> DeviceIdentity:
    """The device key from data_dir/device-key.pem; made there (mode 0600) if this box has none yet."""
    path = data_dir / "device-key.pem"
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise RuntimeError(f"{path}: the device key is unreadable ({exc}); the box must be re-provisioned "
                               "by the CEC (a new key means a new fingerprint on every report)") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise RuntimeError(f"{path}: not an Ed25519 key; re-provision the box")
        _write_public_key(data_dir, key)
        return DeviceIdentity(device_id, key)
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    _write_public_key(data_dir, key)
    return DeviceIdentity(device_id, key)


def _write_public_key(data_dir: Path, key: Ed25519PrivateKey) -> None:
    """data_dir/device-key.pub.pem: what an observer or the CEC's receiver needs to check signatures."""
    path = data_dir / "device-key.pub.pem"
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not path.exists() or path.read_bytes() != pem:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        os.replace(tmp, path)

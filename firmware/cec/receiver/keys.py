"""The device keys the receiver trusts: Ed25519 public keys (PEM) in one folder, found by key_id."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from firmware.common.transmission.documents import key_id

RESCAN_AFTER_S = 5.0  # an unknown key rescans the folder (a box provisioned late), at most this often
RECEIVER_KEY = "receiver-key.pem"
RECEIVER_PUBLIC_KEY = "receiver-key.pub.pem"


class KeysError(ValueError):
    """A keys folder or key file that cannot be used; the message names it."""


@dataclass(frozen=True)
class DeviceKey:
    key: Ed25519PublicKey
    source: str  # the PEM file's name, for the CEC's operators


class DeviceKeys:
    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise KeysError(f"{folder}: not a folder; give --devices the folder holding the boxes' public keys "
                            "(device-key.pub.pem of each box, any file name ending in .pem)")
        self.folder = folder
        self._lock = threading.Lock()
        self._keys: dict[str, DeviceKey] = {}
        self._scanned = 0.0
        self.rescan()

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, kid: str) -> DeviceKey | None:
        found = self._keys.get(kid)
        if found is None and time.monotonic() - self._scanned > RESCAN_AFTER_S:
            self.rescan()
            found = self._keys.get(kid)
        return found

    def rescan(self) -> None:
        keys: dict[str, DeviceKey] = {}
        for path in sorted(self.folder.glob("*.pem")):
            if path.name == RECEIVER_PUBLIC_KEY:
                continue
            key = _load_public(path)
            keys[key_id(key)] = DeviceKey(key, path.name)
        with self._lock:
            self._keys = keys
            self._scanned = time.monotonic()


def load_or_make_receiver_key(store: Path) -> Ed25519PrivateKey:
    """The key that signs receipts: STORE/receiver-key.pem (made once, mode 0600), its public half beside it."""
    path = store / RECEIVER_KEY
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeysError(f"{path}: not an Ed25519 private key; move it away and start again to make a new one")
        return key
    store.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker made it first
        return load_or_make_receiver_key(store)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    (store / RECEIVER_PUBLIC_KEY).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


def _load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError, OSError) as exc:
        raise KeysError(f"{path}: not a PEM public key ({exc}); remove it or replace it with the box's "
                        "device-key.pub.pem") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeysError(f"{path}: not an Ed25519 public key; the boxes sign with Ed25519")
    return key

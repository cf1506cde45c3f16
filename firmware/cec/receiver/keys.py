"""The device keys the receiver trusts, found by key_id, from one folder: Ed25519 public keys (``*.pem``)
and provisioning receipts (``*.receipt.json``, firmware/trust/provisioning.py).

A receipt binds its key to one station: documents signed by that key are taken for that station only. A
bare PEM binds nothing (any station), as before receipts existed; a key that has a receipt is bound even
if its PEM lies beside it. A receipt is trusted only if its own signature verifies with the key it
carries (the box proved it holds the private half); who handed it over is the CEC's procedure.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from firmware.common.transmission.documents import key_id

RESCAN_AFTER_S = 5.0  # an unknown key rescans the folder (a box provisioned late), at most this often
RECEIVER_KEY = "receiver-key.pem"
RECEIVER_PUBLIC_KEY = "receiver-key.pub.pem"
RECEIPT_SUFFIX = ".receipt.json"
RECEIPT_SCHEMA = "ballotbox.provisioning-receipt/1"  # firmware/trust/provisioning.py writes it


class KeysError(ValueError):
    """A keys folder or key file that cannot be used; the message names it."""


@dataclass(frozen=True)
class DeviceKey:
    key: Ed25519PublicKey
    source: str  # the PEM or receipt file's name, for the CEC's operators
    station: str | None = None  # from a receipt: the one station this key may post for


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
        for path in sorted(self.folder.glob(f"*{RECEIPT_SUFFIX}")):
            bound = _load_receipt(path)
            keys[key_id(bound.key)] = bound
        with self._lock:
            self._keys = keys
            self._scanned = time.monotonic()


def load_or_make_receiver_key(store: Path, given: Path | None = None) -> Ed25519PrivateKey:
    """The key that signs receipts: STORE/receiver-key.pem (made once, mode 0600), its public half beside it.
    `given` (`receiver --key`): that key instead, put into a store that has none; a store that holds another
    is refused (the boxes' packages carry the public half of one key)."""
    path = store / RECEIVER_KEY
    wanted = _load_private(given) if given is not None else None
    if path.exists():
        key = _load_private(path)
        if wanted is not None and key_id(key.public_key()) != key_id(wanted.public_key()):
            raise KeysError(f"--key {given}: the store {store} already signs receipts with another key "
                            f"({path}); give that one, or another --store")
        return key
    store.mkdir(parents=True, exist_ok=True)
    key = wanted or Ed25519PrivateKey.generate()
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


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeysError(f"{path}: no such file; give the receiver's Ed25519 private key (PEM)") from None
    except (OSError, ValueError, TypeError) as exc:
        raise KeysError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeysError(f"{path}: not an Ed25519 private key; move it away and start again to make a new one")
    return key


def _load_receipt(path: Path) -> DeviceKey:
    """A provisioning receipt's key, bound to its station, or KeysError naming the file and the fault."""
    try:
        receipt = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(receipt, dict) or receipt.get("schema") != RECEIPT_SCHEMA:
            raise ValueError(f"not a provisioning receipt of schema {RECEIPT_SCHEMA!r}")
        body = {k: v for k, v in receipt.items() if k != "signature"}
        key = serialization.load_pem_public_key(str(receipt["public_key_pem"]).encode())
        if not isinstance(key, Ed25519PublicKey):
            raise TypeError("its public_key_pem is not an Ed25519 key")
        if receipt.get("key_id") != key_id(key):
            raise ValueError("its key_id is not the SHA-256 of its public key")
        station = receipt["station"]
        if not isinstance(station, str) or not station:
            raise ValueError("it names no station")
        key.verify(base64.b64decode(str(receipt["signature"]), validate=True), rfc8785.dumps(body))
    except InvalidSignature:
        raise KeysError(f"{path}: the receipt's signature does not verify with the key it carries: it was "
                        "altered; ask the technician for the receipt the box printed") from None
    except (ValueError, KeyError, TypeError, OSError, binascii.Error, rfc8785.CanonicalizationError) as exc:
        raise KeysError(f"{path}: not a usable provisioning receipt ({exc}); remove it or replace it with the "
                        "box's provisioning-receipt.json") from None
    return DeviceKey(key, path.name, station)


def _load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError, OSError) as exc:
        raise KeysError(f"{path}: not a PEM public key ({exc}); remove it or replace it with the box's "
                        "device-key.pub.pem") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeysError(f"{path}: not an Ed25519 public key; the boxes sign with Ed25519")
    return key

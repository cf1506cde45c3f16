"""Signed envelopes: the one shape in which the CEC's election package and a release manifest reach the box.

An envelope is a JSON object ``{"payload": {...}, "signature": {"alg": "Ed25519", "key_id", "value"}}``.
The signature is Ed25519 over the RFC 8785 canonical bytes of the payload (the same canonical form as the
box's own documents, firmware/common/transmission/documents.py), so whitespace or key order in the file
never matters and any change to a value does. ``key_id`` is the SHA-256 (hex) of the raw 32-byte public
key. The box trusts the public keys (PEM) in a folder of its installed code (config/keys/trusted-*-keys);
a key not there is refused before the payload is even read, whatever the signature says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from firmware.errors import UserError

KEYS_DIR = Path(__file__).resolve().parents[2] / "config" / "keys"
TRUSTED_PACKAGE_KEYS = KEYS_DIR / "trusted-package-keys"
TRUSTED_RELEASE_KEYS = KEYS_DIR / "trusted-release-keys"
# The keys shipped for tests and training only. Their private halves are in this repository, so anything
# they sign proves nothing: every output names them TEST ONLY.
TEST_PACKAGE_KEY = KEYS_DIR / "TEST-ONLY-cec-package.signing.pem"
TEST_RELEASE_KEY = KEYS_DIR / "TEST-ONLY-release.signing.pem"
# the CEC receiver's receipt key: `receiver --key` signs with the private half, `package build` puts the public
# half into the package by default, and the box checks every receipt with it
TEST_RECEIVER_KEY = KEYS_DIR / "TEST-ONLY-cec-receiver.signing.pem"
TEST_RECEIVER_PUBLIC_KEY = KEYS_DIR / "TEST-ONLY-cec-receiver.pub.pem"
TEST_ONLY_MARK = "TEST-ONLY"
SIGNATURE_BYTES = 64


class TrustError(UserError):
    """A signed file that is refused: ``reason`` is a short code (bad_signature, unknown_key, ...) for
    tests and logs; the message says which file, what is wrong and what to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TrustedKey:
    key: Ed25519PublicKey
    source: str  # the PEM's file name, shown to the technician

    @property
    def test_only(self) -> bool:
        return TEST_ONLY_MARK in self.source


def sign_envelope(payload: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    body = rfc8785.dumps(dict(payload))
    return {"payload": dict(payload), "signature": {
        "alg": "Ed25519", "key_id": key_id(key.public_key()), "value": base64.b64encode(key.sign(body)).decode()}}


def open_envelope(source: str, raw: bytes, trusted: Mapping[str, TrustedKey]) -> tuple[dict[str, Any], TrustedKey]:
    """The payload of a signed envelope and the trusted key that signed it, or TrustError naming `source`."""
    try:
        envelope = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrustError("not_json", f"{source}: not a JSON file ({exc}); copy it again from the CEC "
                                     "medium") from None
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "signature"} or not isinstance(
            envelope["payload"], dict) or not isinstance(envelope["signature"], dict):
        raise TrustError("not_signed", f"{source}: not a signed file (an object with exactly 'payload' and "
                                       "'signature'); sign it with `ballotbox package sign` first")
    sig = envelope["signature"]
    if sig.get("alg") != "Ed25519" or not isinstance(sig.get("key_id"), str) or not isinstance(sig.get("value"), str):
        raise TrustError("not_signed", f"{source}: signature: need alg 'Ed25519', key_id and value (base64)")
    signer = trusted.get(sig["key_id"].lower())
    if signer is None:
        raise TrustError("unknown_key", f"{source}: signed by key {sig['key_id'][:16]}…, which this box does not "
                                        f"trust (trusted: {', '.join(sorted(k.source for k in trusted.values()))}"
                                        "); ask the CEC for a package signed with its key")
    try:
        signature = base64.b64decode(sig["value"], validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    try:
        body = rfc8785.dumps(envelope["payload"])
        if len(signature) != SIGNATURE_BYTES:
            raise InvalidSignature
        signer.key.verify(signature, body)
    except (InvalidSignature, rfc8785.CanonicalizationError, ValueError, TypeError):
        raise TrustError("bad_signature", f"{source}: the signature does not verify with {signer.source}: the "
                                          "file was altered after signing; do not use it, copy it again from "
                                          "the CEC medium") from None
    return envelope["payload"], signer


def canonical_sha256(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a payload's canonical bytes: what the box prints as the package hash."""
    return hashlib.sha256(rfc8785.dumps(dict(payload))).hexdigest()


def trusted_keys(folder: Path) -> dict[str, TrustedKey]:
    """Every Ed25519 public key (``*.pem``) in folder, by key id."""
    if not folder.is_dir():
        raise TrustError("no_trust", f"{folder}: no such folder of trusted public keys (PEM); give the folder "
                                     "that holds the CEC's public keys")
    keys: dict[str, TrustedKey] = {}
    for path in sorted(folder.glob("*.pem")):
        key = load_public_key(path)
        keys[key_id(key)] = TrustedKey(key, path.name)
    if not keys:
        raise TrustError("no_trust", f"{folder}: holds no public key (*.pem); put the CEC's public key there")
    return keys


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
        key: Any = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, OSError) as exc:
        raise TrustError("bad_key", f"{path}: not a PEM public key ({exc}); replace it with the signer's "
                                    "public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TrustError("bad_key", f"{path}: not an Ed25519 public key")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key: Any = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise TrustError("bad_key", f"{path}: no such file; give the signing key (PEM)") from None
    except (ValueError, TypeError, OSError) as exc:
        raise TrustError("bad_key", f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TrustError("bad_key", f"{path}: not an Ed25519 private key")
    return key

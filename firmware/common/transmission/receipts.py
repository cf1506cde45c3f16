"""Receipts: what the CEC's receiver answers for a stored document, signed with the receiver's key so
the box (and an observer holding the receipt) can prove the document was acknowledged.

A receipt is a JSON object with ``hash``, ``station``, ``kind``, ``received_at`` (ISO 8601 UTC) and
``receipt_id``, ``receiver_key`` (``key_id`` of the receiver's Ed25519 public key) and ``signature``
(standard base64 of Ed25519 over the RFC 8785 canonical JSON of the receipt without its ``signature``).
The box takes a receipt as an acknowledgement only when it is for the document sent and its signature
verifies with the receiver's key from the election package (``receipt_problem``): anyone on the path
could answer 201 with the right hash.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from firmware.common.transmission.documents import (
    canonical_json,
    key_id,
    verify_signature,
)

RECEIPT_FIELDS = ("hash", "station", "kind", "received_at", "receipt_id")


def sign_receipt(receipt: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    unsigned = {k: v for k, v in receipt.items() if k != "signature"}
    unsigned["receiver_key"] = key_id(key.public_key())
    signature = key.sign(canonical_json(unsigned))
    return {**unsigned, "signature": base64.b64encode(signature).decode("ascii")}


def verify_receipt(receipt: Mapping[str, Any], public_key: Ed25519PublicKey) -> bool:
    """True when `receipt` is signed by `public_key` and names it as its receiver_key."""
    if receipt.get("receiver_key") != key_id(public_key):
        return False
    try:
        signature = base64.b64decode(str(receipt.get("signature", "")), validate=True)
    except (binascii.Error, ValueError):
        return False
    unsigned = {k: v for k, v in receipt.items() if k != "signature"}
    return verify_signature(public_key, canonical_json(unsigned), signature)


def receipt_problem(receipt: Any, doc_hash: str, receiver_key: Ed25519PublicKey) -> str | None:
    """Why `receipt` is not an acknowledgement of the document `doc_hash` signed by `receiver_key` (the CEC
    receiver's, from the election package), or None when it is."""
    if not isinstance(receipt, Mapping):
        return "the answer is not a JSON receipt"
    missing = [f for f in RECEIPT_FIELDS if not isinstance(receipt.get(f), str) or not receipt.get(f)]
    if missing:
        return f"the receipt lacks {', '.join(missing)}"
    if receipt["hash"] != doc_hash:
        return f"the receipt is for another document ({receipt['hash'][:12]}…)"
    if "signature" not in receipt:
        return "the receipt is not signed"
    if receipt.get("receiver_key") != key_id(receiver_key):
        return (f"the receipt is signed by key {str(receipt.get('receiver_key'))[:16]}, not by the CEC receiver's "
                f"key of the election package ({key_id(receiver_key)[:16]})")
    if not verify_receipt(receipt, receiver_key):
        return "the receipt's signature does not verify with the CEC receiver's key"
    return None


def public_key_b64(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key in standard base64: how the election package carries the receiver's key."""
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """The inverse of public_key_b64; ValueError when `text` is not a raw Ed25519 public key."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{text[:20]!r}: not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{len(raw)} bytes: an Ed25519 public key has 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_public_key_pem(data: bytes, source: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo), or ValueError naming `source`."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"{source}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{source}: not an Ed25519 public key")  # noqa: TRY004 - a bad file, not a bad type
    return key

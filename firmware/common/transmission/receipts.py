"""Receipts: what the CEC's receiver answers for a stored document, signed with the receiver's key so
the box (and an observer holding the receipt) can prove the document was acknowledged.

A receipt is a JSON object with at least ``hash``, ``station``, ``kind``, ``received_at`` (ISO 8601
UTC) and ``receipt_id``; a signed one also carries ``receiver_key`` (``key_id`` of the receiver's
Ed25519 public key) and ``signature`` (standard base64 of Ed25519 over the RFC 8785 canonical JSON
of the receipt without its ``signature``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

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


def receipt_problem(receipt: Any, doc_hash: str) -> str | None:
    """Why `receipt` is not an acknowledgement of the document `doc_hash`, or None when it is."""
    if not isinstance(receipt, Mapping):
        return "the answer is not a JSON receipt"
    missing = [f for f in RECEIPT_FIELDS if not isinstance(receipt.get(f), str) or not receipt.get(f)]
    if missing:
        return f"the receipt lacks {', '.join(missing)}"
    if receipt["hash"] != doc_hash:
        return f"the receipt is for another document ({receipt['hash'][:12]}…)"
    return None

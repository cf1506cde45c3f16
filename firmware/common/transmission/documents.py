"""Signed documents: the one shape in which anything leaves the box (results, cast-vote records, polls
and turnout events), and the wire contract between the box's uploader and the CEC's receiver.

A document is a JSON object. Its *body* is the RFC 8785 (JCS) canonical serialisation of that object;
its *hash* is SHA-256 over the body (lower-case hex); its *signature* is Ed25519 by the device key over
the body. The same bytes are written to the export (``election-report.json`` + a detached ``.sig``),
stored in the outbox and sent, so a signature checked at the CEC is the one an observer checks on the
USB export: nothing is re-serialised on the way.

Wire contract (receiver and uploader script against it; keep it stable):

``POST {endpoint}/v1/documents``, ``Content-Type: application/json``, request body = the document body
bytes exactly, with the headers

- ``Idempotency-Key``: the document hash (a receiver refuses a key that is not the body's SHA-256);
- ``X-Ballotbox-Kind``: one of KINDS;
- ``X-Ballotbox-Station``: the station code, which the body itself must carry (see ``claimed_station``);
- ``X-Ballotbox-Device``: the device id;
- ``X-Ballotbox-Key``: ``key_id`` of the device's public key (SHA-256 hex of the raw 32-byte key);
- ``X-Ballotbox-Signature``: standard base64 of the 64-byte Ed25519 signature over the body.

Answers: ``201`` stored now, ``200`` already stored (the body is the *first* receipt, unchanged);
both carry a JSON receipt with at least ``hash``, ``station``, ``kind``, ``received_at`` (ISO 8601 UTC)
and ``receipt_id``. ``400`` a malformed request (the body's hash is not the key, not JSON, the station
or kind in the headers is not the one the body carries), ``403`` an unknown device key or a signature
that does not verify, ``413`` too large; each with ``{"error": code, "detail": words for a person}``.
``5xx`` and timeouts are worth retrying; ``4xx`` are not (the uploader reports them and stops trying
that document).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

# Document kinds. The NIST ones carry the station as a polling-place GpUnit (see claimed_station).
POLLS_OPENED = "polls-opened"
TURNOUT = "turnout"
POLLS_CLOSED = "polls-closed"
ELECTION_REPORT = "election-report"  # NIST SP 1500-100 ElectionReport
CVR_REPORT = "cvr-report"  # NIST SP 1500-103 CastVoteRecordReport
KINDS = (POLLS_OPENED, TURNOUT, POLLS_CLOSED, ELECTION_REPORT, CVR_REPORT)
NIST_KINDS = (ELECTION_REPORT, CVR_REPORT)

# In the NIST reports, the polling station is the GpUnit of this type whose ExternalIdentifier of this
# type holds the station code (e.g. "001A001").
STATION_GPUNIT_TYPE = "polling-place"
STATION_IDENTIFIER_TYPE = "local-level"

# How a body names its own kind, so the kind header is covered by the signature: the NIST reports by
# their schema's "@type", the own kinds by a top-level "kind" equal to the kind.
NIST_TYPES = {ELECTION_REPORT: "ElectionResults.ElectionReport", CVR_REPORT: "CVR.CastVoteRecordReport"}


class DocumentError(ValueError):
    """A document that cannot be sent or accepted as it is; the message says what is wrong."""


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON (sorted keys, no spaces, UTF-8, ECMAScript number form)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise DocumentError(f"the document cannot be put in canonical JSON: {exc}") from None


def document_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """SHA-256 hex of the raw 32-byte public key: how the receiver finds a device's key."""
    raw = public_key if isinstance(public_key, bytes) else public_key.public_bytes_raw()
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class SignedDocument:
    kind: str
    station: str
    device_id: str
    key_id: str
    body: bytes
    signature: bytes

    @property
    def hash(self) -> str:
        return document_hash(self.body)

    @property
    def signature_b64(self) -> str:
        return base64.b64encode(self.signature).decode("ascii")

    def content(self) -> dict[str, Any]:
        return json.loads(self.body)

    def headers(self) -> dict[str, str]:
        """The HTTP headers of the wire contract."""
        return {"Content-Type": "application/json", "Idempotency-Key": self.hash, "X-Ballotbox-Kind": self.kind,
                "X-Ballotbox-Station": self.station, "X-Ballotbox-Device": self.device_id,
                "X-Ballotbox-Key": self.key_id, "X-Ballotbox-Signature": self.signature_b64}


def sign_document(kind: str, document: Mapping[str, Any], *, device_id: str, key: Ed25519PrivateKey) -> SignedDocument:
    """Canonicalise, check that the document names its station, and sign it with the device key."""
    if kind not in KINDS:
        raise DocumentError(f"unknown document kind {kind!r}; one of {', '.join(KINDS)}")
    if claimed_kind(kind, document) != kind:
        raise DocumentError(f"a {kind} document must say so itself ({_where_kind(kind)}), so that its kind is signed")
    station = claimed_station(kind, document)
    if not station:
        raise DocumentError(f"a {kind} document must name its polling station ({_where_station(kind)})")
    body = canonical_json(document)
    return SignedDocument(kind, station, device_id, key_id(key.public_key()), body, key.sign(body))


def verify_signature(public_key: Ed25519PublicKey, body: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, body)
    except InvalidSignature:
        return False
    return True


def claimed_station(kind: str, document: Mapping[str, Any]) -> str | None:
    """The station code a document carries in its own (signed) content, or None.

    Own kinds carry it as the top-level ``"station"``; the NIST reports as the ExternalIdentifier of
    type ``local-level`` of their ``polling-place`` GpUnit (SP 1500-103, the CVR schema, calls the same
    identifier ``Code``: CVR.GpUnit has no ExternalIdentifier).
    """
    if kind not in NIST_KINDS:
        station = document.get("station")
        return station if isinstance(station, str) and station else None
    for unit in document.get("GpUnit") or ():
        if not isinstance(unit, Mapping) or unit.get("Type") != STATION_GPUNIT_TYPE:
            continue
        ext = unit.get("ExternalIdentifier", unit.get("Code"))
        if isinstance(ext, Mapping):
            ext = [ext]
        for ident in ext or ():
            if isinstance(ident, Mapping) and ident.get("Type") == STATION_IDENTIFIER_TYPE:
                value = ident.get("Value")
                if isinstance(value, str) and value:
                    return value
    return None


def claimed_kind(kind: str, document: Mapping[str, Any]) -> str | None:
    """`kind` if the document's own (signed) content declares it, else None (see NIST_TYPES)."""
    if kind in NIST_TYPES:
        return kind if document.get("@type") == NIST_TYPES[kind] else None
    return kind if document.get("kind") == kind else None


def _where_kind(kind: str) -> str:
    if kind in NIST_TYPES:
        return f"\"@type\": {NIST_TYPES[kind]!r}"
    return f"a top-level \"kind\": {kind!r}"


def _where_station(kind: str) -> str:
    if kind in NIST_KINDS:
        return (f"a GpUnit of Type {STATION_GPUNIT_TYPE!r} with an ExternalIdentifier (CVR: Code) of Type "
                f"{STATION_IDENTIFIER_TYPE!r}")
    return "a top-level \"station\" string"

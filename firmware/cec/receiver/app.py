"""The receiver's ASGI app: ``POST /v1/documents`` by the wire contract of documents.py, and
``GET /v1/health``.

Checks, cheapest first, each refusal with ``{"error": code, "detail": words}``: 413 a body over the
limit; 400 a missing or wrong Idempotency-Key (not the body's SHA-256), an unknown kind, a missing
header; 403 an unknown device key, a signature that does not verify, or a key provisioned (by its
receipt) for another station than the one in the headers; 400 a body that is not a
canonical JSON object, or whose own kind or station is not the one in the headers. Then the document
is stored once and the first receipt is answered: 201 for the delivery that stored it, 200 for every
other.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from firmware.cec.receiver.keys import DeviceKeys, load_or_make_receiver_key
from firmware.cec.receiver.store import Delivery, DocumentStore, open_store
from firmware.common.transmission.documents import (
    KINDS,
    DocumentError,
    canonical_json,
    claimed_kind,
    claimed_station,
    document_hash,
    verify_signature,
)
from firmware.common.transmission.receipts import sign_receipt

DEFAULT_MAX_BODY = 32 * 1024 * 1024  # a council CVR report of a 1,500-voter station is a few MB; 32 MB is room
PARSE_IN_THREAD_ABOVE = 64 * 1024  # canonicalising a big body takes a while: off the event loop
CONFIG_ENV = "BALLOTBOX_RECEIVER"  # how `ballotbox receiver --workers K` passes its settings to the workers
SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class ReceiverConfig:
    store: Path  # the receiver key lives here; the SQLite file too unless `database` is given
    devices: Path
    database: str | None = None
    max_body: int = DEFAULT_MAX_BODY

    def to_json(self) -> str:
        return json.dumps({"store": str(self.store), "devices": str(self.devices), "database": self.database,
                           "max_body": self.max_body})

    @classmethod
    def from_json(cls, text: str) -> ReceiverConfig:
        d = json.loads(text)
        return cls(Path(d["store"]), Path(d["devices"]), d.get("database"), int(d["max_body"]))


def build_app(config: ReceiverConfig, *, store: DocumentStore | None = None,
              receiver_key: Ed25519PrivateKey | None = None) -> Starlette:
    keys = DeviceKeys(config.devices)
    documents = store or open_store(config.store, config.database)
    receiver = Receiver(keys, documents, receiver_key or load_or_make_receiver_key(config.store), config.max_body)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await documents.open()
        try:
            yield
        finally:
            await documents.close()

    return Starlette(routes=[Route("/v1/documents", receiver.post_document, methods=["POST"]),
                             Route("/v1/health", receiver.health, methods=["GET"])], lifespan=lifespan)


def app_from_environment() -> Starlette:
    """The factory each uvicorn worker calls (``--workers K``): settings from BALLOTBOX_RECEIVER."""
    return build_app(ReceiverConfig.from_json(os.environ[CONFIG_ENV]))


class Refusal(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class Receiver:
    def __init__(self, keys: DeviceKeys, store: DocumentStore, receiver_key: Ed25519PrivateKey,
                 max_body: int) -> None:
        self.keys, self.store, self.receiver_key, self.max_body = keys, store, receiver_key, max_body
        self.worker = str(os.getpid())

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "worker": self.worker, "devices": len(self.keys)},
                            headers={"X-Ballotbox-Worker": self.worker})

    async def post_document(self, request: Request) -> Response:
        try:
            body = await self._read_body(request)
            delivery = await self._accept(request, body)
        except Refusal as refusal:
            return JSONResponse({"error": refusal.code, "detail": refusal.detail}, status_code=refusal.status,
                                headers={"X-Ballotbox-Worker": self.worker})
        receipt, created = await self.store.put(delivery)
        return Response(receipt, status_code=201 if created else 200, media_type="application/json",
                        headers={"X-Ballotbox-Worker": self.worker})

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise Refusal(413, "too_large", f"the document has {int(declared)} bytes; this receiver takes at "
                                            f"most {self.max_body}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise Refusal(413, "too_large", f"the document has more than {self.max_body} bytes, the most "
                                                "this receiver takes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _accept(self, request: Request, body: bytes) -> Delivery:
        h = request.headers
        doc_hash = document_hash(body)
        key = h.get("idempotency-key", "")
        if key.lower() != doc_hash:
            raise Refusal(400, "hash_mismatch", f"Idempotency-Key {key[:64]!r} is not the SHA-256 of the body "
                                                f"({doc_hash}); send the document's hash")
        kind = h.get("x-ballotbox-kind", "")
        if kind not in KINDS:
            raise Refusal(400, "unknown_kind", f"X-Ballotbox-Kind {kind[:40]!r}: one of {', '.join(KINDS)}")
        station, device = h.get("x-ballotbox-station", ""), h.get("x-ballotbox-device", "")
        if not station or not device:
            raise Refusal(400, "missing_header", "X-Ballotbox-Station and X-Ballotbox-Device are required")
        kid = h.get("x-ballotbox-key", "").lower()
        trusted = self.keys.get(kid)
        if trusted is None:
            raise Refusal(403, "unknown_device", f"device key {kid[:64]!r} (device {device[:40]!r}) is not among "
                                                 "the provisioned boxes' keys; provision the box's "
                                                 "device-key.pub.pem with the CEC")
        signature = _signature(h.get("x-ballotbox-signature", ""))
        if signature is None or not verify_signature(trusted.key, body, signature):
            raise Refusal(403, "bad_signature", f"the signature does not verify with the key of {trusted.source}: "
                                                "the document was altered or signed by another key")
        if trusted.station is not None and trusted.station != station:
            raise Refusal(403, "wrong_station_for_key", f"device key of {trusted.source} is provisioned for "
                                                        f"station {trusted.station}, not {station[:40]!r}: a box "
                                                        "posts for its own station only")
        if len(body) > PARSE_IN_THREAD_ABOVE:
            content = await run_in_threadpool(_canonical_content, body)
        else:
            content = _canonical_content(body)
        if claimed_kind(kind, content) != kind:
            raise Refusal(400, "wrong_kind", f"the headers say {kind!r} but the signed document does not "
                                             "declare that kind")
        claimed = claimed_station(kind, content)
        if claimed != station:
            raise Refusal(400, "wrong_station", f"X-Ballotbox-Station {station[:40]!r} but the signed document "
                                                f"is from station {claimed!r}")
        received_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        receipt_id = uuid.uuid4().hex
        receipt = sign_receipt({"hash": doc_hash, "station": station, "kind": kind, "device": device,
                                "received_at": received_at, "receipt_id": receipt_id}, self.receiver_key)
        return Delivery(doc_hash, station, kind, device, kid, body, signature, receipt_id, received_at,
                        canonical_json(receipt).decode("utf-8"))


def _canonical_content(body: bytes) -> dict[str, Any]:
    try:
        content = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "not_json", "the body is not UTF-8 JSON") from None
    if not isinstance(content, dict):
        raise Refusal(400, "not_json", "the body is not a JSON object")
    try:
        canonical = canonical_json(content)
    except DocumentError as exc:
        raise Refusal(400, "not_canonical", str(exc)) from None
    if canonical != body:
        raise Refusal(400, "not_canonical", "the body is not in RFC 8785 canonical form; send the signed bytes "
                                            "unchanged")
    return content


def _signature(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == SIGNATURE_BYTES else None

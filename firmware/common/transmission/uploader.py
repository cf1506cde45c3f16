"""The uploader: sends the outbox's unsent documents, in the order they were written, to the CEC's
receiver (wire contract in documents.py) and stores the receipts it gets back.

- The endpoint is ``https://`` with the CEC's certificate pinned (SHA-256 of the certificate or of its
  SubjectPublicKeyInfo, from the election package or the device settings): the pin *is* the trust
  anchor, so neither a CA nor the host name is consulted, and the pin is checked right after the TLS
  handshake, before a byte of the document is written. ``http://`` is accepted on loopback only
  (tests, training).
- 2xx with a receipt for this document, signed by the CEC receiver's key of the election package:
  acknowledged. 4xx: the receiver refuses the document itself; retrying cannot cure it, so it is given
  up (a person must look). 5xx, a timeout, a dropped connection, a wrong certificate, a garbled receipt,
  a receipt whose signature does not verify: noted, and tried again later.
- Between passes it waits with exponential backoff and full jitter (a random delay in
  [0, min(cap, base·2^(failures-1))]), so 6,000 boxes coming back online together do not knock in
  step; the cap keeps an offline box trying every few minutes for as long as it takes.
- It keeps no state of its own: the outbox is the state, so after a restart it carries on where the
  outbox says.

Clock, sleep and random source are injectable so tests run a night offline in microseconds.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import ssl
import time
from base64 import b64decode
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.common.i18n import Messages
from firmware.common.transmission.documents import TURNOUT, SignedDocument
from firmware.common.transmission.outbox import Outbox, OutboxEntry
from firmware.common.transmission.receipts import receipt_problem

DOCUMENTS_PATH = "/v1/documents"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
RECEIPT_SHOWN_CHARS = 8  # of the receipt id on the committee's status: enough to compare over the phone


class EndpointError(ValueError):
    """An endpoint or pin the uploader refuses to use; the message says why and what to do."""


class PinMismatch(Exception):
    """The server's certificate is not the pinned one (raised inside the TLS handshake hook)."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # without the trailing slash
    pin: bytes | None  # SHA-256 of the certificate or of its SubjectPublicKeyInfo; None on loopback http

    @property
    def documents_url(self) -> str:
        return self.base_url + DOCUMENTS_PATH


def parse_endpoint(url: str, pin: str | None = None) -> Endpoint:
    """The endpoint to send to, or EndpointError: https needs a pin; http only on loopback."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise EndpointError(f"endpoint {url!r}: give an https:// URL of the CEC's receiver "
                            "(http:// only on this machine, e.g. http://127.0.0.1:8443)")
    if parts.query or parts.fragment:
        raise EndpointError(f"endpoint {url!r}: no query or fragment; give the receiver's base URL")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    if parts.scheme == "http":
        if not _is_loopback(host):
            raise EndpointError(f"endpoint {url!r}: plain http:// is accepted only on loopback (127.0.0.1, ::1, "
                                "localhost); the CEC's receiver needs https:// with its certificate pinned (--pin)")
        return Endpoint(base, parse_pin(pin) if pin else None)
    if not pin:
        raise EndpointError(f"endpoint {url!r}: https:// needs the CEC's certificate pin (--pin: the SHA-256 of "
                            "the certificate or of its public key, 64 hex digits, from the election package)")
    return Endpoint(base, parse_pin(pin))


def parse_pin(text: str) -> bytes:
    """A SHA-256 pin as 64 hex digits (colons and spaces allowed) or base64 (the 'pin-sha256' form,
    optionally prefixed 'sha256/')."""
    cleaned = text.strip().removeprefix("sha256/").removeprefix("sha256:")
    hexdigits = cleaned.replace(":", "").replace(" ", "")
    try:
        if len(hexdigits) == 64:
            return bytes.fromhex(hexdigits)
        raw = b64decode(cleaned, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise EndpointError(f"pin {text!r}: not a SHA-256; give 64 hex digits (or the base64 pin-sha256 form) "
                            "of the CEC's certificate or public key")
    return raw


def certificate_pins(certificate_der: bytes) -> tuple[bytes, bytes]:
    """(SHA-256 of the certificate, SHA-256 of its SubjectPublicKeyInfo): either may be the pin."""
    cert = x509.load_der_x509_certificate(certificate_der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(certificate_der).digest(), hashlib.sha256(spki).digest()


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 2.0  # the first wait after a failure is up to 2 s: a blip costs nothing
    cap_s: float = 300.0  # an offline box still tries every ≤ 5 min, for hours; ≈ 20 requests/s from 6,000 boxes
    timeout_s: float = 20.0  # per request; a results document of a big station is a few MB over a slow uplink

    def delay(self, failures: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^(failures-1))] after `failures` failed passes."""
        if failures <= 0:
            return 0.0
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0 ** min(failures - 1, 60)))


@dataclass(frozen=True)
class Attempt:
    """What one POST of one document came to."""
    receipt: dict[str, Any] | None = None  # acknowledged
    error: str | None = None  # words for the committee when not acknowledged
    give_up: bool = False  # a 4xx: retrying cannot cure it
    fault: str | None = None  # connect, timeout, server, pin, receipt, refused: for counting

    @property
    def acknowledged(self) -> bool:
        return self.receipt is not None


def judge_response(status: int, body: bytes, doc_hash: str, messages: Messages,
                   receipt_key: Ed25519PublicKey) -> Attempt:
    """An HTTP answer to a document's POST, judged by the wire contract; `receipt_key` is the CEC
    receiver's public key (election package) that a receipt must be signed with."""
    if 200 <= status < 300:
        try:
            receipt = json.loads(body)
        except ValueError:
            receipt = None
        problem = receipt_problem(receipt, doc_hash, receipt_key)
        if problem is None:
            return Attempt(receipt=dict(receipt))
        return Attempt(error=messages.t("outbox.error.receipt", detail=problem), fault="receipt")
    if 400 <= status < 500:
        return Attempt(error=messages.t("outbox.error.refused", status=status, detail=_detail(body)),
                       give_up=True, fault="refused")
    return Attempt(error=messages.t("outbox.error.server", status=status), fault="server")


@dataclass
class PassResult:
    acknowledged: list[str] = field(default_factory=list)  # hashes
    refused: list[str] = field(default_factory=list)
    failed: Attempt | None = None  # the transient failure that ended the pass early


@dataclass(frozen=True)
class RunResult:
    acknowledged: int  # in this run
    refused: int  # in this run
    waiting: int  # still unsent when the run ended
    attempts: int  # POSTs made
    stopped: bool  # gave up waiting (give_up_after) or was stopped

    @property
    def complete(self) -> bool:
        return self.waiting == 0


class Uploader:
    def __init__(self, outbox: Outbox, endpoint: Endpoint, messages: Messages, *, receipt_key: Ed25519PublicKey,
                 policy: RetryPolicy | None = None, now: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], object] = time.sleep, rng: random.Random | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.outbox = outbox
        self.endpoint = endpoint
        self.receipt_key = receipt_key  # the CEC receiver's, from the election package: receipts must verify
        self.messages = messages
        self.policy = policy or RetryPolicy()
        self.now = now or (lambda: datetime.now(UTC).astimezone())
        self.sleep = sleep
        self.rng = rng or random.SystemRandom()
        self.attempts = 0
        # The pin is the trust anchor: CA and host name are not consulted (the CEC's certificate may be
        # self-signed); the handshake hook below compares the certificate with the pin.
        verify: ssl.SSLContext | bool = True
        if urlsplit(endpoint.base_url).scheme == "https":
            verify = ssl.create_default_context()
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
        self._client = httpx.Client(verify=verify, timeout=self.policy.timeout_s, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def run(self, give_up_after: float | None = None, stop: Callable[[], bool] | None = None) -> RunResult:
        """Send until every document is acknowledged or given up; after `give_up_after` seconds of
        trying (None: never) or once `stop()` is true, return with the rest still waiting."""
        started = self.now()
        acknowledged = refused = failures = 0
        attempts_before = self.attempts
        while True:
            result = self.send_pending()
            acknowledged += len(result.acknowledged)
            refused += len(result.refused)
            waiting = len(self.outbox.unsent())
            if waiting == 0:
                return RunResult(acknowledged, refused, 0, self.attempts - attempts_before, stopped=False)
            failures = failures + 1 if result.failed is not None else 0
            delay = self.policy.delay(failures, self.rng)
            elapsed = (self.now() - started).total_seconds()
            if (stop is not None and stop()) or (give_up_after is not None and elapsed + delay > give_up_after):
                return RunResult(acknowledged, refused, waiting, self.attempts - attempts_before, stopped=True)
            self.sleep(delay)

    def send_pending(self) -> PassResult:
        """One pass over the unsent documents in order; it ends at the first transient failure, so the
        CEC receives a station's documents in the order they were written."""
        result = PassResult()
        for entry in self.outbox.unsent():
            attempt = self.send(entry.document)
            at = self.now()
            if attempt.acknowledged:
                assert attempt.receipt is not None
                self.outbox.acknowledge(entry.document.hash, attempt.receipt, at)
                result.acknowledged.append(entry.document.hash)
            elif attempt.give_up:
                self.outbox.note_failure(entry.document.hash, attempt.error or "", at, give_up=True)
                result.refused.append(entry.document.hash)
            else:
                self.outbox.note_failure(entry.document.hash, attempt.error or "", at)
                result.failed = attempt
                break
        return result

    def send(self, document: SignedDocument) -> Attempt:
        """One POST of one document, judged."""
        self.attempts += 1
        t = self.messages.t
        try:
            response = self._client.post(self.endpoint.documents_url, content=document.body,
                                         headers=document.headers(), extensions={"trace": self._check_pin})
        except PinMismatch:
            return Attempt(error=t("outbox.error.pin"), fault="pin")
        except httpx.TimeoutException:
            return Attempt(error=t("outbox.error.timeout", seconds=f"{self.policy.timeout_s:g}"), fault="timeout")
        except httpx.TransportError as exc:
            return Attempt(error=t("outbox.error.connect", detail=_transport_detail(exc)), fault="connect")
        return judge_response(response.status_code, response.content, document.hash, self.messages,
                              self.receipt_key)

    def _check_pin(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: right after the TLS handshake, before the request is written."""
        if event != "connection.start_tls.complete" or self.endpoint.pin is None:
            return
        stream = info["return_value"]
        ssl_object = stream.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        if not der or self.endpoint.pin not in certificate_pins(der):
            stream.close()
            raise PinMismatch("the server's certificate does not match the pin")


# -- the committee's status ------------------------------------------------------------------------
def committee_status(entries: Sequence[OutboxEntry], messages: Messages) -> list[str]:
    """One line per document in the station's language, then the summary line, e.g.
    "rezultati: poslano 19:07, potvrda 3F2A91C0…" or
    "izlaznost 11:00: čeka mrežu (pokušaja: 3, zadnji 11:05: nema veze s CIK-om (...))"."""
    lines = [describe_entry(entry, messages) for entry in entries]
    sent = sum(1 for entry in entries if entry.acknowledged)
    lines.append(messages.t("outbox.summary", sent=sent, total=len(entries)))
    return lines


def describe_entry(entry: OutboxEntry, messages: Messages) -> str:
    zone = entry.created_at.tzinfo
    document = messages.t(f"outbox.kind.{entry.document.kind}",
                          time=messages.format_time(entry.created_at) if entry.document.kind == TURNOUT else "")
    if entry.receipt is not None:
        received = _parse_time(str(entry.receipt.get("received_at", "")))
        shown = messages.format_time(received.astimezone(zone)) if received else "?"
        receipt_id = str(entry.receipt.get("receipt_id", ""))
        return messages.t("outbox.status.sent", document=document, time=shown,
                          receipt=receipt_id[:RECEIPT_SHOWN_CHARS].upper() + "…")
    if entry.given_up:
        return messages.t("outbox.status.refused", document=document, error=entry.last_error or "")
    if entry.attempts == 0:
        return messages.t("outbox.status.queued", document=document)
    last = messages.format_time(entry.last_attempt_at.astimezone(zone)) if entry.last_attempt_at else "?"
    return messages.t("outbox.status.waiting", document=document, attempts=entry.attempts, time=last,
                      error=entry.last_error or "")


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _detail(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("detail"), str):
        return answer["detail"]
    return body[:200].decode("utf-8", "replace").strip() or "-"


def _transport_detail(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return text[:160] if text else type(exc).__name__

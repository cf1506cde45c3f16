"""Helpers of the transmission tests: a station's signed documents, the receiver on uvicorn in a thread
over real loopback HTTP (optionally HTTPS with a self-signed certificate), device key folders."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from firmware.cec.receiver.app import ReceiverConfig, build_app
from firmware.cec.receiver.keys import load_or_make_receiver_key
from firmware.common.transmission.documents import SignedDocument
from firmware.trust.signing import TEST_RECEIVER_KEY
from simulator.bench_receiver import station_documents
from simulator.pg_cluster import free_port

__all__ = ["ReceiverThread", "free_port", "provision", "self_signed", "station_documents"]


def provision(keys_dir: Path, station: str = "001A001", device: str = "box-1") -> list[SignedDocument]:
    """A new box: its public key into keys_dir, its six documents signed."""
    key = Ed25519PrivateKey.generate()
    keys_dir.mkdir(parents=True, exist_ok=True)
    (keys_dir / f"{device}.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return station_documents(station, device, key)


def self_signed(folder: Path) -> tuple[Path, Path, str]:
    """(certificate PEM, key PEM, SHA-256 hex of the certificate's SubjectPublicKeyInfo) for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CIK BiH receiver (test)")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert_path, key_path, hashlib.sha256(spki).hexdigest()


class ReceiverThread:
    """The receiver app on uvicorn in a thread: `with ReceiverThread(config) as url:`."""

    def __init__(self, config: ReceiverConfig, *, port: int | None = None, tls: tuple[Path, Path] | None = None,
                 receipt_key: Path | None = TEST_RECEIVER_KEY):
        """`receipt_key`: the key that signs receipts (the TEST ONLY one the boxes' packages carry by default;
        None: a key of the store's own, made at the first start)."""
        self.port = port or free_port()
        ssl = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
        self.scheme = "https" if tls else "http"
        app = build_app(config, receiver_key=load_or_make_receiver_key(config.store, receipt_key))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False, **ssl))
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the receiver did not start")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The CEC's receiver over real loopback HTTP, on SQLite and on a real PostgreSQL server started here:
stored once, duplicates answered with the first receipt, refusals with the right status, and
concurrent duplicates across two worker processes stored once."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from transmission_support import ReceiverThread, free_port, provision

from ballotbox.cli import main
from firmware.cec.receiver.app import ReceiverConfig
from firmware.cec.receiver.keys import RECEIVER_PUBLIC_KEY
from firmware.cec.receiver.store import list_documents
from firmware.common.transmission.documents import (
    POLLS_CLOSED,
    TURNOUT,
    SignedDocument,
    document_hash,
    sign_document,
)
from firmware.common.transmission.receipts import verify_receipt
from simulator.fault_proxy import ProxyThread
from simulator.pg_cluster import PostgresCluster, find_server_bin

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    if find_server_bin() is None:
        pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl/postgres): scripts/setup.sh installs postgresql")
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    import psycopg
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS documents")
    yield cluster.url


def _post(url: str, doc: SignedDocument, **header_changes: str) -> httpx.Response:
    headers = {**doc.headers(), **header_changes}
    return httpx.post(f"{url}/v1/documents", content=doc.body, headers=headers, timeout=10)


def test_a_document_is_stored_once_and_a_duplicate_gets_the_first_receipt(tmp_path: Path,
                                                                         database: str | None) -> None:
    docs = provision(tmp_path / "devices")
    with ReceiverThread(ReceiverConfig(tmp_path / "store", tmp_path / "devices", database)) as url:
        first = _post(url, docs[0])
        again = _post(url, docs[0])
        other = _post(url, docs[1])
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.content == first.content
    receipt = first.json()
    assert receipt["hash"] == docs[0].hash and receipt["station"] == "001A001"
    assert receipt["kind"] == "polls-opened" and receipt["device"] == "box-1"
    assert len(receipt["receipt_id"]) == 32 and receipt["received_at"].endswith("Z")
    public = serialization.load_pem_public_key((tmp_path / "store" / RECEIVER_PUBLIC_KEY).read_bytes())
    assert verify_receipt(receipt, public)  # type: ignore[arg-type]
    assert not verify_receipt({**receipt, "station": "001A002"}, public)  # type: ignore[arg-type]
    rows = list_documents(tmp_path / "store", database)
    assert [(r["kind"], r["hash"], r["deliveries"], r["receipt_id"]) for r in rows] == [
        ("polls-opened", docs[0].hash, 2, receipt["receipt_id"]), ("turnout", docs[1].hash, 1, other.json()["receipt_id"])]


def test_refusals_carry_the_right_status_and_store_nothing(tmp_path: Path, database: str | None) -> None:
    docs = provision(tmp_path / "devices")
    stranger = sign_document(TURNOUT, {"kind": TURNOUT, "station": "001A001", "at": "11:00"}, device_id="box-x",
                             key=Ed25519PrivateKey.generate())
    forged_body = docs[1].body.replace(b'"voters":100', b'"voters":900')
    forged = SignedDocument(docs[1].kind, docs[1].station, "box-1", docs[1].key_id, forged_body, docs[1].signature)
    bad_signature = base64.b64encode(bytes(64)).decode()
    with ReceiverThread(ReceiverConfig(tmp_path / "store", tmp_path / "devices", database,
                                       max_body=2000)) as url:
        answers = {
            "bad signature": _post(url, docs[0], **{"X-Ballotbox-Signature": bad_signature}),
            "altered body": _post(url, forged),
            "unknown key": _post(url, stranger),
            "wrong station": _post(url, docs[0], **{"X-Ballotbox-Station": "001A002"}),
            "wrong kind": _post(url, docs[1], **{"X-Ballotbox-Kind": POLLS_CLOSED}),
            "hash mismatch": _post(url, docs[0], **{"Idempotency-Key": docs[1].hash}),
            "no device": _post(url, docs[0], **{"X-Ballotbox-Device": ""}),
            "too large": httpx.post(f"{url}/v1/documents", content=b"x" * 2001, headers=docs[0].headers()),
        }
        not_json = httpx.post(f"{url}/v1/documents", content=b"[1,2]", headers={
            **docs[0].headers(), "Idempotency-Key": document_hash(b"[1,2]")})
    got = {name: (r.status_code, r.json()["error"]) for name, r in answers.items()}
    assert got == {"bad signature": (403, "bad_signature"), "altered body": (403, "bad_signature"),
                   "unknown key": (403, "unknown_device"), "wrong station": (400, "wrong_station"),
                   "wrong kind": (400, "wrong_kind"), "hash mismatch": (400, "hash_mismatch"),
                   "no device": (400, "missing_header"), "too large": (413, "too_large")}
    assert not_json.status_code == 403  # its signature is checked before its JSON
    assert "001A002" in answers["wrong station"].json()["detail"]
    assert "provision" in answers["unknown key"].json()["detail"]
    assert list_documents(tmp_path / "store", database) == []


def test_a_delivery_duplicated_on_the_way_is_stored_once_with_one_receipt(tmp_path: Path,
                                                                         database: str | None) -> None:
    docs = provision(tmp_path / "devices")
    faults = iter(["duplicate", "duplicate"])
    with ReceiverThread(ReceiverConfig(tmp_path / "store", tmp_path / "devices", database)) as url:
        receiver_port = int(url.rsplit(":", 1)[1])
        proxy = ProxyThread(receiver_port, lambda: next(faults, None))
        with proxy as proxy_port:
            answers = [_post(f"http://127.0.0.1:{proxy_port}", docs[0]) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]  # each answer is the second delivery's
    assert answers[0].json() == answers[1].json()
    assert proxy.proxy.counts["duplicate"] == 2 and proxy.proxy.counts["receipts_differ"] == 0
    assert [r["deliveries"] for r in list_documents(tmp_path / "store", database)] == [4]


def test_concurrent_duplicates_across_two_workers_are_stored_once(tmp_path: Path,
                                                                  postgres: PostgresCluster) -> None:
    import psycopg
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS documents")
    docs = provision(tmp_path / "devices")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ballotbox.cli", "receiver", "--port", str(port), "--store",
                               str(tmp_path / "store"), "--devices", str(tmp_path / "devices"), "--database",
                               postgres.url, "--workers", "2"], cwd=ROOT, start_new_session=True)
    try:
        _wait_for(port)

        def deliver(_: int) -> httpx.Response:  # a new connection each: the kernel spreads them on the workers
            return _post(f"http://127.0.0.1:{port}", docs[5], Connection="close")

        answers: list[httpx.Response] = []
        with ThreadPoolExecutor(24) as pool:
            # rounds of 48 until both workers have answered (on a loaded machine the kernel may hand one
            # worker a whole round); the first round already races 24 connections on the same document
            for _ in range(10):
                answers += pool.map(deliver, range(48))
                if len({a.headers["X-Ballotbox-Worker"] for a in answers}) == 2:
                    break
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    assert sorted(a.status_code for a in answers) == [200] * (len(answers) - 1) + [201]
    assert len({a.content for a in answers}) == 1
    assert len({a.headers["X-Ballotbox-Worker"] for a in answers}) == 2
    rows = list_documents(None, postgres.url)
    assert [(r["kind"], r["deliveries"]) for r in rows] == [("election-report", len(answers))]


def test_receiver_list_prints_one_json_object_per_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = provision(tmp_path / "devices", station="002B017", device="box-17")
    with ReceiverThread(ReceiverConfig(tmp_path / "store", tmp_path / "devices")) as url:
        for doc in docs:
            assert _post(url, doc).status_code == 201
    assert main(["receiver", "list", "--store", str(tmp_path / "store"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in rows] == ["polls-opened", "turnout", "turnout", "turnout", "polls-closed",
                                         "election-report"]
    assert {r["station"] for r in rows} == {"002B017"} and {r["device"] for r in rows} == {"box-17"}
    assert [r["hash"] for r in rows] == [d.hash for d in docs]
    assert all(r["received_at"].endswith("Z") and r["deliveries"] == 1 for r in rows)


def test_receiver_refuses_several_workers_on_sqlite_and_a_missing_keys_folder(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "devices").mkdir()
    assert main(["receiver", "--port", "1", "--store", str(tmp_path), "--devices", str(tmp_path / "devices"),
                 "--workers", "2"]) == 2
    assert "--database" in capsys.readouterr().err
    assert main(["receiver", "--port", "1", "--store", str(tmp_path), "--devices", str(tmp_path / "none")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "devices" / "junk.pem").write_text("not a key")
    assert main(["receiver", "--port", "1", "--store", str(tmp_path), "--devices", str(tmp_path / "devices")]) == 2
    assert "junk.pem" in capsys.readouterr().err


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the receiver did not start")

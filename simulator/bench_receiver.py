"""`ballotbox bench receiver`: the CEC's evening. N stations (each its own device key) send their six
documents (polls opened, turnout 11:00/15:00/19:00, polls closed, results) concurrently over loopback
through the fault-injecting proxy to the receiver's workers on PostgreSQL; at the end the database
must hold every document exactly once.

The stations retry as the box's uploader does (same answer rules, full-jitter backoff) but with a
short backoff (base 50 ms, cap 2 s) and timeout (2 s) so the evening fits in minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.cec.receiver.keys import RECEIVER_PUBLIC_KEY
from firmware.common.i18n import Messages
from firmware.common.transmission.documents import (
    ELECTION_REPORT,
    NIST_TYPES,
    POLLS_CLOSED,
    POLLS_OPENED,
    STATION_GPUNIT_TYPE,
    STATION_IDENTIFIER_TYPE,
    TURNOUT,
    SignedDocument,
    sign_document,
)
from firmware.common.transmission.uploader import RetryPolicy, judge_response
from firmware.errors import EXIT_CHECK_FAILED, EXIT_OK, UserError
from simulator.fault_proxy import FAULTS, FaultProxy
from simulator.pg_cluster import PostgresCluster, free_port

BENCH_POLICY = RetryPolicy(base_s=0.05, cap_s=2.0, timeout_s=2.0)
HOLD_S = BENCH_POLICY.timeout_s + 0.5  # the proxy's "timeout" fault holds a request past the client's timeout
TURNOUT_HOURS = ("11:00", "15:00", "19:00")
CLIENTS = 20  # HTTP clients the stations share (see _evening)


def station_documents(station: str, device_id: str, key: Ed25519PrivateKey) -> list[SignedDocument]:
    """A station's six documents, small but of the real kinds and shapes (the results one NIST-shaped)."""
    day = "2026-10-04"
    docs = [sign_document(POLLS_OPENED, {"kind": POLLS_OPENED, "station": station, "at": f"{day}T07:00:00+02:00"},
                          device_id=device_id, key=key)]
    for i, hour in enumerate(TURNOUT_HOURS):
        docs.append(sign_document(TURNOUT, {"kind": TURNOUT, "station": station, "at": f"{day}T{hour}:00+02:00",
                                            "voters": 100 * (i + 1)}, device_id=device_id, key=key))
    docs.append(sign_document(POLLS_CLOSED, {"kind": POLLS_CLOSED, "station": station,
                                             "at": f"{day}T19:00:00+02:00"}, device_id=device_id, key=key))
    report = {"@type": NIST_TYPES[ELECTION_REPORT], "Format": "summary-contest", "Status": "pre-election",
              "GeneratedDate": f"{day}T19:30:00+02:00", "VendorApplicationId": "ballotbox bench",
              "Issuer": "ballotbox", "IssuerAbbreviation": "BB", "SequenceStart": 1, "SequenceEnd": 1,
              "GpUnit": [{"@id": "gp-station", "@type": "ElectionResults.ReportingUnit", "Type": STATION_GPUNIT_TYPE,
                          "ExternalIdentifier": [{"@type": "ElectionResults.ExternalIdentifier",
                                                  "Type": STATION_IDENTIFIER_TYPE, "Value": station}]}]}
    docs.append(sign_document(ELECTION_REPORT, report, device_id=device_id, key=key))
    return docs


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.stations <= 100_000:
        raise UserError(f"--stations {args.stations}: give 1 to 100000")
    if not 0.0 <= args.fail < 1.0:
        raise UserError(f"--fail {args.fail}: give a share from 0 to below 1 (0.3 = 30 % of requests)")
    if args.workers < 2 and args.database is None:
        print("bench receiver: note: fewer than 2 workers", file=sys.stderr)
    cluster = None if args.database else PostgresCluster(durable=True).__enter__()
    database = args.database or cluster.url  # type: ignore[union-attr]
    try:
        report = bench(args.stations, args.fail, args.workers, database, args.seed, args.concurrency)
    finally:
        if cluster is not None:
            cluster.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    _print(report)
    print(f"figures: {args.out}")
    return EXIT_OK if report["exactly_once"] else EXIT_CHECK_FAILED


def bench(stations: int, fail: float, workers: int, database: str, seed: int, concurrency: int) -> dict[str, Any]:
    import psycopg

    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="ballotbox-bench-receiver-"))
    keys_dir, store = work / "devices", work / "store"
    keys_dir.mkdir()
    started = time.perf_counter()
    plan: list[list[SignedDocument]] = []
    for n in range(stations):
        key = Ed25519PrivateKey.generate()
        station = f"{n // 100:03d}A{n % 100:03d}"
        (keys_dir / f"box-{n:05d}.pem").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        plan.append(station_documents(station, f"box-{n:05d}", key))
    prepare_s = time.perf_counter() - started
    with psycopg.connect(database, autocommit=True) as conn:  # a clean table: the check counts rows
        conn.execute("DROP TABLE IF EXISTS documents")
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "ballotbox.cli", "receiver", "--port", str(port), "--store", str(store),
         "--devices", str(keys_dir), "--database", database, "--workers", str(workers)],
        start_new_session=True)
    try:
        _wait_healthy(port, receiver)
        receipt_key = serialization.load_pem_public_key((store / RECEIVER_PUBLIC_KEY).read_bytes())
        result = asyncio.run(_evening(plan, port, fail, rng, concurrency, receipt_key))
    finally:
        os.killpg(receiver.pid, signal.SIGTERM)
        try:
            receiver.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(receiver.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)  # 6,000 key files and the receiver key
    with psycopg.connect(database, autocommit=True) as conn:
        rows = conn.execute("SELECT hash, deliveries FROM documents").fetchall()
    expected = {doc.hash for docs in plan for doc in docs}
    stored = Counter(h for h, _ in rows)
    missing = len(expected - stored.keys())
    doubled = sum(1 for c in stored.values() if c > 1)
    unexpected = len(stored.keys() - expected)
    latencies = sorted(result.pop("latencies_s"))
    result.update({
        "stations": stations, "documents": len(expected), "fail": fail, "workers": workers, "seed": seed,
        "concurrency": concurrency, "prepare_s": round(prepare_s, 1),
        "stored": len(rows), "missing": missing, "stored_twice": doubled, "unexpected": unexpected,
        "deliveries_recorded": sum(d for _, d in rows),
        "exactly_once": missing == 0 and doubled == 0 and unexpected == 0 and len(rows) == len(expected),
        "documents_per_s": round(len(expected) / result["wall_s"], 1),
        "latency_ms": {"p50": _ms(latencies, 0.50), "p99": _ms(latencies, 0.99), "max": _ms(latencies, 1.0)},
        "policy": {"base_s": BENCH_POLICY.base_s, "cap_s": BENCH_POLICY.cap_s, "timeout_s": BENCH_POLICY.timeout_s,
                   "proxy_hold_s": HOLD_S},
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()[0]},
    })
    return result


async def _evening(plan: list[list[SignedDocument]], port: int, fail: float, rng: random.Random,
                   concurrency: int, receipt_key: Any) -> dict[str, Any]:
    parent, child = multiprocessing.get_context("spawn").Pipe()
    proxy = multiprocessing.get_context("spawn").Process(target=_proxy_process,
                                                         args=(port, fail, rng.random(), HOLD_S, child))
    proxy.start()
    proxy_port = parent.recv()
    messages = Messages.for_language("en")
    retries: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    # Several clients, each with a small pool, as boxes are several clients: httpcore's pool scans its
    # connections per request, so one pool of hundreds makes the load generator the bottleneck.
    limits = httpx.Limits(max_connections=max(1, concurrency // CLIENTS),
                          max_keepalive_connections=max(1, concurrency // CLIENTS))
    plain = ssl.create_default_context()  # shared: never used over http, but httpx builds one per client
    clients = [httpx.AsyncClient(timeout=BENCH_POLICY.timeout_s, limits=limits, verify=plain) for _ in range(CLIENTS)]
    url = f"http://127.0.0.1:{proxy_port}/v1/documents"
    started = time.perf_counter()

    async def station(client: httpx.AsyncClient, docs: list[SignedDocument], jitter: random.Random) -> None:
        for doc in docs:  # in order, as the box sends them
            failures = 0
            while True:
                async with gate:
                    t0 = time.perf_counter()
                    try:
                        response = await client.post(url, content=doc.body, headers=doc.headers())
                    except httpx.TimeoutException:
                        fault = "timeout"
                    except httpx.TransportError as exc:
                        fault = f"connection ({type(exc).__name__})"
                    else:
                        attempt = judge_response(response.status_code, response.content, doc.hash, messages,
                                                 receipt_key)
                        answers[str(response.status_code)] += 1
                        if attempt.acknowledged:
                            latencies.append(time.perf_counter() - t0)
                            break
                        if attempt.give_up:
                            raise RuntimeError(f"{doc.station} {doc.kind}: refused: {attempt.error}")
                        fault = attempt.fault or "server"
                retries[fault] += 1
                failures += 1
                await asyncio.sleep(BENCH_POLICY.delay(failures, jitter))

    try:
        await asyncio.gather(*(station(clients[n % CLIENTS], docs, random.Random(rng.random()))
                               for n, docs in enumerate(plan)))
    finally:
        for client in clients:
            await client.aclose()
    wall = time.perf_counter() - started
    parent.send("stop")
    counts: Counter[str] = Counter(parent.recv())
    proxy.join(30)
    requests = sum(counts[k] for k in (*FAULTS, "forwarded"))
    return {"wall_s": round(wall, 1), "requests": requests, "answers_by_status": dict(answers),
            "retries_by_kind": dict(retries), "retries": sum(retries.values()),
            "faults_injected": {k: counts[k] for k in FAULTS},
            "faulted_share": round(sum(counts[k] for k in FAULTS) / max(requests, 1), 3),
            "duplicate_receipts_differ": counts["receipts_differ"],
            "proxy_connection_errors": counts["proxy_connection_errors"], "latencies_s": latencies}


def _proxy_process(upstream_port: int, fail: float, seed: float, hold_s: float, conn: Any) -> None:
    """The fault proxy in its own process (its own core when there is one): reports its port, runs until
    told to stop, then answers with its counts."""
    faults_rng = random.Random(seed)

    def decide() -> str | None:
        return faults_rng.choice(FAULTS) if faults_rng.random() < fail else None

    async def main() -> None:
        proxy = FaultProxy(upstream_port, decide, hold_s=hold_s)
        conn.send(await proxy.start())
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await proxy.close()
        conn.send(dict(proxy.counts))

    asyncio.run(main())


def _wait_healthy(port: int, receiver: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if receiver.poll() is not None:
            raise RuntimeError(f"the receiver exited with {receiver.returncode} before it answered")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the receiver did not answer on port {port} within {timeout_s:g} s")


def _ms(sorted_s: list[float], q: float) -> float | None:
    if not sorted_s:
        return None
    return round(sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))] * 1000, 1)


def _print(r: dict[str, Any]) -> None:
    print(f"receiver load test: {r['stations']} stations x 6 = {r['documents']} documents, {r['workers']} workers "
          f"on PostgreSQL, faults {r['fail']:.0%} (injected on {r['faulted_share']:.1%} of {r['requests']} requests)")
    print(f"  stored {r['stored']}, missing {r['missing']}, stored twice {r['stored_twice']}, unexpected "
          f"{r['unexpected']}: {'EXACTLY ONCE' if r['exactly_once'] else 'NOT EXACTLY ONCE'}; deliveries "
          f"recorded {r['deliveries_recorded']}, duplicate answers with differing receipts "
          f"{r['duplicate_receipts_differ']}")
    print(f"  wall {r['wall_s']} s, {r['documents_per_s']} documents/s; latency of successful requests p50 "
          f"{r['latency_ms']['p50']} ms, p99 {r['latency_ms']['p99']} ms")
    print(f"  faults injected {r['faults_injected']}; retries {r['retries']} {r['retries_by_kind']}")

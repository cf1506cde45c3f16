"""The transmission commands of `ballotbox`: the box's outbox, the CEC's receiver and its load test.

    ballotbox outbox send --state-dir DIR --endpoint URL [--pin SHA256] [--give-up-after SECONDS]
    ballotbox outbox status --state-dir DIR
    ballotbox receiver --port P --store DIR --devices KEYS_DIR [--database URL] [--workers K] [--host H]
    ballotbox receiver list --store DIR | --database URL [--json]
    ballotbox bench receiver --stations 6000 [--fail 0.3] [--workers 2] [--database URL] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config.election import Language
from firmware.common.arguments import (
    input_dir,
    input_file,
    number,
    output_dir,
    output_file,
    whole,
)
from firmware.errors import EXIT_CHECK_FAILED, EXIT_OK, UserError

LANGUAGES = [language.value for language in Language]  # the message catalogues (config/messages/)


def add_parsers(sub: Any, bench: Any) -> None:
    outbox = sub.add_parser("outbox", help="the box's outbox of signed documents").add_subparsers(metavar="ACTION")
    send = outbox.add_parser("send", help="send what the outbox still holds; exit 0 once all are acknowledged")
    send.add_argument("--state-dir", type=Path, required=True,
                      help="the box's state directory (DIR/device/)")
    send.add_argument("--endpoint", required=True, help="the CEC receiver's base URL (https://…; http:// on loopback)")
    send.add_argument("--pin", help="SHA-256 of the CEC's certificate or public key (64 hex digits): needed "
                                    "for https://")
    send.add_argument("--receipt-key", type=Path, default=None, metavar="PEM",
                      help="the CEC receiver's public key its receipts must verify with (default: the one in "
                      "the box's installed election package)")
    send.add_argument("--give-up-after", type=number(0, unit="seconds"), default=None, metavar="SECONDS",
                      help="stop trying after this long and exit 1 (default: keep trying)")
    send.add_argument("--timeout", type=number(0, 600, "seconds", above=True), default=None, metavar="SECONDS",
                      help="per request (default 20)")
    send.add_argument("--language", default="bs", choices=LANGUAGES, help="language of the status lines (bs, hr, sr-Latn, sr-Cyrl, en)")
    send.set_defaults(run=_outbox_send)
    status = outbox.add_parser("status", help="each document's state, for the committee")
    status.add_argument("--state-dir", type=Path, required=True)
    status.add_argument("--language", default="bs", choices=LANGUAGES)
    status.add_argument("--json", action="store_true", help="one JSON object per document")
    status.set_defaults(run=_outbox_status)

    receiver = sub.add_parser("receiver", help="the CEC's receiver of the boxes' documents (ASGI on uvicorn)")
    receiver.add_argument("--port", type=whole(1, 65535), help="TCP port to listen on")
    receiver.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    receiver.add_argument("--store", type=output_dir("the receiver's store"),
                          help="folder of the receiver's key and its SQLite store")
    receiver.add_argument("--devices", type=Path, metavar="KEYS_DIR", help="folder of the boxes' public keys (PEM)")
    receiver.add_argument("--database", help="postgresql://… instead of the embedded SQLite store")
    receiver.add_argument("--workers", type=whole(1, 64), default=1,
                          help="worker processes (more than 1 needs --database)")
    receiver.add_argument("--tls-cert", type=input_file("the certificate (PEM)"),
                          help="certificate (PEM) the boxes pin; with --tls-key: https")
    receiver.add_argument("--tls-key", type=input_file("its private key (PEM)"), help="its private key (PEM)")
    receiver.add_argument("--max-body-mb", type=number(0, 4096, "MB", above=True), default=32.0,
                          help="largest document taken (default 32 MB)")
    receiver.add_argument("--key", type=input_file("the receipt signing key (PEM)"), default=None,
                          help="the Ed25519 key that signs the receipts (default: STORE/receiver-key.pem, made at "
                          "the first start); its public half goes into the election package (package build "
                          "--receipt-key). config/keys/TEST-ONLY-cec-receiver.signing.pem for training")
    receiver.set_defaults(run=_receiver)
    actions = receiver.add_subparsers(metavar="ACTION")
    listing = actions.add_parser("list", help="every stored document (station, kind, hash, received_at, receipt)")
    listing.add_argument("--store", type=input_dir("the receiver's store"), dest="list_store")
    listing.add_argument("--database", dest="list_database")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_receiver_list)

    load = bench.add_parser("receiver", help="6,000 stations x 6 documents through a fault-injecting proxy "
                            "against the receiver on PostgreSQL")
    load.add_argument("--stations", type=whole(1, 100_000), default=6000)
    load.add_argument("--fail", type=number(0, 0.99), default=0.3, help="share of requests the proxy fails (default 0.3)")
    load.add_argument("--workers", type=whole(1, 64), default=2, help="receiver workers (default 2)")
    load.add_argument("--database", help="postgresql://… (default: the bench starts its own server)")
    load.add_argument("--concurrency", type=whole(1, 10_000), default=200,
                      help="requests in flight at once (default 200)")
    load.add_argument("--seed", type=int, default=1)
    load.add_argument("--out", type=output_file("the JSON figures"), default=Path("out/bench/receiver.json"),
                      help="JSON figures")
    load.set_defaults(run=_bench_receiver)


def _bench_receiver(args: argparse.Namespace) -> int:
    from simulator.bench_receiver import run

    _check_database(args.database)
    return int(run(args))


# -- outbox ------------------------------------------------------------------------------------------
def _outbox_send(args: argparse.Namespace) -> int:
    from firmware.common.transmission.uploader import (
        EndpointError,
        RetryPolicy,
        parse_endpoint,
    )

    try:
        endpoint = parse_endpoint(args.endpoint, args.pin)
    except EndpointError as exc:
        raise UserError(str(exc)) from None
    policy = RetryPolicy() if args.timeout is None else RetryPolicy(timeout_s=args.timeout)
    outbox = _open_outbox(args.state_dir)
    receipt_key = receipt_key_for(args.state_dir, args.receipt_key)
    return send_outbox(outbox, endpoint, _messages(args.language), policy=policy,
                       give_up_after=args.give_up_after, receipt_key=receipt_key)


def receipt_key_for(state_dir: Path, given: Path | None, *, fallback: Path | None = None) -> Any:
    """The CEC receiver's public key that receipts must verify with: the one given (PEM), else the box's
    installed election package's, else `fallback` (simulate's TEST ONLY key); UserError if there is none."""
    from firmware.common.transmission.receipts import load_public_key_pem
    from firmware.trust.package import installed_package
    from firmware.trust.signing import TrustError

    path = given
    if path is None:
        try:
            installed = installed_package(state_dir / "device") if (state_dir / "device").is_dir() else None
            if installed is not None:
                return installed.receiver_public_key()
        except TrustError as exc:
            raise UserError(str(exc)) from None
        path = fallback
    if path is None:
        raise UserError(f"--receipt-key: {state_dir} has no election package installed to take the CEC receiver's "
                        "key from; give --receipt-key RECEIVER.pub.pem (STORE/receiver-key.pub.pem of `ballotbox "
                        "receiver`)")
    try:
        return load_public_key_pem(path.read_bytes(), f"--receipt-key {path}")
    except FileNotFoundError:
        raise UserError(f"--receipt-key {path}: no such file; give the receiver's public key (PEM)") from None
    except IsADirectoryError:
        raise UserError(f"--receipt-key {path}: is a folder; give the receiver's public key (PEM)") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None


def send_outbox(outbox: Any, endpoint: Any, messages: Any, *, give_up_after: float | None,
                print_line: Callable[[str], None] = print, **uploader_options: Any) -> int:
    """The logic of `outbox send` over any Outbox: 0 once every document is acknowledged, else 1."""
    from firmware.common.transmission.uploader import Uploader, committee_status

    with Uploader(outbox, endpoint, messages, **uploader_options) as uploader:
        result = uploader.run(give_up_after=give_up_after)
    entries = outbox.entries()
    for line in committee_status(entries, messages):
        print_line(line)
    print_line(f"acknowledged now {result.acknowledged}, refused now {result.refused}, still waiting "
               f"{result.waiting}, requests {result.attempts}")
    return EXIT_OK if all(entry.acknowledged for entry in entries) else EXIT_CHECK_FAILED


def _outbox_status(args: argparse.Namespace) -> int:
    from firmware.common.transmission.uploader import committee_status

    outbox = _open_outbox(args.state_dir)
    entries = outbox.entries()
    if args.json:
        for e in entries:
            print(json.dumps({"kind": e.document.kind, "station": e.document.station, "hash": e.document.hash,
                              "created_at": e.created_at.isoformat(), "acknowledged": e.acknowledged,
                              "given_up": e.given_up, "attempts": e.attempts, "last_error": e.last_error,
                              "receipt": dict(e.receipt) if e.receipt else None}, ensure_ascii=False))
    else:
        for line in committee_status(entries, _messages(args.language)):
            print(line)
    return EXIT_OK if all(e.acknowledged for e in entries) else EXIT_CHECK_FAILED


def _open_outbox(state_dir: Path) -> Any:
    if not (state_dir / "device").is_dir():
        raise UserError(f"{state_dir}: no device/ folder inside; give --state-dir the box's state directory "
                        "(the one `ballotbox simulate --state-dir` wrote)")
    try:
        from firmware.scanner.store import open_outbox  # type: ignore[attr-defined]
    except ImportError:
        raise UserError("this build's scanner store has no outbox (firmware.scanner.store.open_outbox); "
                        "update the software") from None
    return open_outbox(state_dir)


def _messages(language: str) -> Any:
    from firmware.common.i18n import CatalogueError, Messages

    try:
        return Messages.for_language(language)
    except CatalogueError as exc:
        raise UserError(f"--language: {exc}") from None


# -- receiver ----------------------------------------------------------------------------------------
def _receiver(args: argparse.Namespace) -> int:
    from firmware.cec.receiver.app import ReceiverConfig
    from firmware.cec.receiver.keys import KeysError
    from firmware.cec.receiver.server import serve

    missing = [name for name, value in (("--port", args.port), ("--store", args.store), ("--devices", args.devices))
               if value is None]
    if missing:
        raise UserError(f"receiver: {', '.join(missing)} required (ballotbox receiver --port P --store DIR "
                        "--devices KEYS_DIR), or `ballotbox receiver list`")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UserError(f"--tls-cert {args.tls_cert} --tls-key {args.tls_key}: give both (https) or neither (http)")
    _check_database(args.database)
    config = ReceiverConfig(args.store, args.devices, args.database, int(args.max_body_mb * 1024 * 1024))
    try:
        serve(config, host=args.host, port=args.port, workers=args.workers, tls_cert=args.tls_cert,
              tls_key=args.tls_key, receipt_key=args.key)
    except KeysError as exc:
        raise UserError(str(exc)) from None
    return EXIT_OK


def _receiver_list(args: argparse.Namespace) -> int:
    from firmware.cec.receiver.store import list_documents

    store = args.list_store or args.store
    database = args.list_database or args.database
    if (store is None) == (database is None):
        raise UserError("receiver list: give --store DIR or --database postgresql://… (one of them)")
    _check_database(database)
    try:
        rows = list_documents(store, database)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # psycopg's OperationalError: the server is not there
        if type(exc).__module__.startswith("psycopg"):
            raise UserError(f"--database: cannot read the receiver's database ({exc})") from None
        raise
    for row in rows:
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            print(f"{row['station']:10} {row['kind']:16} {row['hash'][:16]}  {row['received_at']}  "
                  f"receipt {row['receipt_id'][:8]}  deliveries {row['deliveries']}")
    if not args.json:
        print(f"{len(rows)} documents", file=sys.stderr)
    return EXIT_OK


def _check_database(url: str | None) -> None:
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise UserError(f"--database {url!r}: give a postgresql://user@host:port/dbname URL")

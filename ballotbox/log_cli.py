"""`ballotbox log verify` and `ballotbox export verify`, and the export that ends `ballotbox simulate`.

    ballotbox log verify FILE [--key PEM] [--json]
    ballotbox export verify DIR [--key PEM] [--json]

Exit codes: 0 intact; 1 tampered (the lines or files are named); 2 bad input (no such file, not a log or
an export, an unreadable key).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from firmware.errors import EXIT_CHECK_FAILED, EXIT_OK, UserError


def add_parsers(sub: Any) -> None:
    log = sub.add_parser("log", help="the services' signed event logs").add_subparsers(metavar="ACTION")
    verify = log.add_parser("verify", help="check a log's chain and signed heads; names a removed, altered, "
                            "inserted or reordered line (exit 0 intact, 1 tampered, 2 bad input)")
    verify.add_argument("file", type=Path, help="a <service>-events.jsonl file")
    verify.add_argument("--key", type=Path, default=None,
                        help="the device's public key (device-key.pub.pem): without it only the chain is checked")
    verify.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    verify.set_defaults(run=_log_verify)

    export = sub.add_parser("export", help="the export a USB drive gets at close").add_subparsers(metavar="ACTION")
    check = export.add_parser("verify", help="check every file of an export against its signed index, each log "
                              "and the NIST exports, with the device's public key alone (exit 0/1/2)")
    check.add_argument("directory", type=Path, help="the export folder (OUT/export)")
    check.add_argument("--key", type=Path, default=None,
                       help="the device's public key (PEM); default: the export's own device-key.pub.pem, whose "
                            "fingerprint you then compare with the paper report")
    check.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    check.set_defaults(run=_export_verify)


def _log_verify(args: argparse.Namespace) -> int:
    from firmware.common.eventlog import verify_log
    from firmware.common.identity import fingerprint_of

    key = _public_key(args.key)
    path: Path = args.file
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give one log file (e.g. {path}/scanner-events.jsonl), or check a "
                        "whole export with `ballotbox export verify`")
    try:
        check = verify_log(path, key)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; give a <service>-events.jsonl log") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None
    if not check.events:
        raise UserError(f"{path}: not an event log (no line of it is a ballotbox-eventlog/1 record); give a "
                        "<service>-events.jsonl file")
    if args.json:
        print(json.dumps({"file": str(path), "service": check.service, "lines": check.lines, "intact": check.intact,
                          "closed": check.closed, "signed_heads_verified": check.signed_heads,
                          "key_fingerprint": fingerprint_of(key.public_bytes_raw()) if key else None,
                          "problems": check.problems, "torn": check.torn, "notes": check.notes,
                          "events": check.events}, ensure_ascii=False, indent=1))
    else:
        signed = (f"{check.signed_heads} signed heads verified with key {fingerprint_of(key.public_bytes_raw())}"
                  if key else "signed heads not checked (no --key)")
        print(f"{path}: {check.service} log, {check.lines} lines, {signed}, "
              f"{'closed' if check.closed else 'not closed'}")
        for line in check.torn:
            print(f"TORN    {line}")
        for line in check.problems:
            print(f"PROBLEM {line}")
        for line in check.notes:
            print(f"note    {line}")
        print("log intact" if check.intact else f"{len(check.problems)} problem(s): this log was tampered with")
    return EXIT_OK if check.intact else EXIT_CHECK_FAILED


def _export_verify(args: argparse.Namespace) -> int:
    from firmware.common.export import verify_export
    from firmware.scanner.cdf.export import verify_cdf_exports

    key = _public_key(args.key)
    check = verify_export(args.directory, key)
    cdf = args.directory / "cdf"
    if cdf.is_dir():
        from firmware.scanner.cdf.export import load_public_key

        cdf_key = key or load_public_key(args.directory / "device-key.pub.pem")  # verify_export read it already
        check.problems += [f"cdf/: {p}" for p in verify_cdf_exports(cdf, cdf_key)]
    if args.json:
        print(json.dumps({"directory": str(args.directory), "intact": check.intact, "files": check.files,
                          "key_fingerprint": check.key_fingerprint, "key": check.key_source,
                          "problems": check.problems, "notes": check.notes}, ensure_ascii=False, indent=1))
    else:
        print(f"{args.directory}: {check.files} files in the signed index; key {check.key_fingerprint} "
              f"({check.key_source})")
        for line in check.problems:
            print(f"PROBLEM {line}")
        for line in check.notes:
            print(f"note    {line}")
        print("export intact: the index's signature, every file, every log and the NIST exports hold"
              if check.intact else f"{len(check.problems)} problem(s): do not trust this export")
    return EXIT_OK if check.intact else EXIT_CHECK_FAILED


def _public_key(path: Path | None) -> Any:
    if path is None:
        return None
    from firmware.scanner.cdf.export import load_public_key
    from firmware.scanner.cdf.results import CdfError

    if path.is_dir():
        raise UserError(f"--key {path}: is a directory; give the device's public key file (device-key.pub.pem)")
    if not path.exists():
        raise UserError(f"--key {path}: no such file; give the device's public key (device-key.pub.pem)")
    try:
        return load_public_key(path)
    except CdfError as exc:
        raise UserError(f"--key {exc}") from None


# -- the end of a simulated day ---------------------------------------------------------------------
def export_day(out: Path, state_dir: Path, election: Any, result: Any, desk: Any) -> tuple[Path, list[str]]:
    """After close: the deletion record (when the desk ran; its data is already wiped) printed on the printer
    twin and saved in OUT/reports, then OUT/export written and checked at once. Returns the export and what
    is wrong."""
    from firmware.auth.deletion_record import (
        build_deletion_record,
        save_deletion_record,
    )
    from firmware.common.export import ExportParts, verify_export, write_export
    from firmware.common.identity import software_hash, software_version
    from firmware.common.reports import build_header
    from simulator.escpos_twin import decode_documents, twin_printer

    identity = result.service.identity
    at = result.service.d.clock.now()
    problems: list[str] = []
    if desk is not None and desk.service.deletion is not None:
        deletion = desk.service.deletion
        at = max(at, deletion.deleted_at)
        header = build_header(election, device_id=identity.device_id, software_version=software_version(),
                              software_hash=software_hash(), device_key_fingerprint=identity.fingerprint,
                              printed_at=deletion.deleted_at)
        auth_dir = state_dir / "device" / "auth"
        record = build_deletion_record(header, deletion, register_path=auth_dir / "register.bbr",
                                       key_path=auth_dir / "auth.key")
        # printed by the box's ESC/POS driver on a printer twin (the day's simulated printer went with its
        # world journal); what came out of the twin must be the ESC/POS file that goes into the export
        with twin_printer() as (printer, twin):
            paths = save_deletion_record(record, election, out / "reports", printer=printer)
            paper = twin.wait_for_documents(1)[0].image
        filed = decode_documents(paths[2].read_bytes())
        if len(filed) != 1 or filed[0].image.tobytes() != paper.tobytes() or filed[0].image.size != paper.size:
            problems.append(f"the printed deletion record is not its ESC/POS file {paths[2]}")
        if not record.ok:
            problems.append("the deletion record says biometric data is left (see reports/deletion-record.png)")
    logs = tuple(sorted((state_dir / "device").rglob("*-events.jsonl")))
    parts = ExportParts(cdf=out / "cdf", logs=logs, video=out / "video", reports=out / "reports",
                        station=election.station.code, election=election.id)
    export = write_export(out / "export", parts, identity, at=at)
    check = verify_export(export, identity.key.public_key())
    return export, problems + check.problems

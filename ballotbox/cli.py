"""`ballotbox`: the one command line of the box, the simulator and the print house.

The entry sits above firmware/ and simulator/ and may import both; firmware/ never imports simulator/.

    ballotbox simulate --voters N --seed S --out DIR [--election PATH]
    ballotbox ballots render --election PATH --style STYLE --dpi D --out FILE.png [--layout-json F] [--pdf F]
    ballotbox omr interpret --election PATH IMAGE...
    ballotbox election check PATH
    ballotbox outbox send|status, ballotbox receiver [list], ballotbox bench receiver (ballotbox/transmission_cli.py)
    ballotbox package build|sign|verify, provision, release build, install, boot-check, service run (trust_cli.py)
    ballotbox video verify|record-sim, ballotbox bench video (ballotbox/video_cli.py)

Exit codes: 0 success; 1 the job ran but its check failed (tallies differ, an image unreadable...);
2 bad input (a corrupt election package, a missing file): the message names it and what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from config.election import HHMM, SAMPLE_ELECTION, ElectionError, load_election
from firmware.common.arguments import (
    OneLineParser,
    input_file,
    number,
    output_dir,
    output_file,
)
from firmware.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, UserError

__all__ = ["EXIT_BAD_INPUT", "EXIT_CHECK_FAILED", "EXIT_OK", "UserError", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a refused argument (2, one line: OneLineParser)
        return int(exc.code or 0)
    run = getattr(args, "run", None) or getattr(args, "handler", None)  # biometrics/cli.py sets `handler`
    if run is None:
        given = " ".join(a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-"))
        print(f"ballotbox{' ' + given if given else ''}: give a command{' action' if given else ''}; see "
              f"`ballotbox{' ' + given if given else ''} --help`", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(run(args))
    except (UserError, ElectionError) as exc:
        print(f"ballotbox: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # a path the person gave that the system refuses (a folder, permissions, a full disk)
        if exc.filename is None:
            raise
        print(f"ballotbox: {exc.filename}: {exc.strerror or exc}; check the path and its permissions", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("ballotbox: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="ballotbox", description="Scanner ballot box firmware, simulator and tools.")
    sub = p.add_subparsers(metavar="COMMAND")

    sim = sub.add_parser("simulate", help="run a simulated polling-station day and check the tallies")
    sim.add_argument("--voters", type=int, default=None, help="number of voters (default 300)")
    sim.add_argument("--seed", type=int, default=None, help="random seed: the same seed gives the same day (default 7)")
    sim.add_argument("--out", type=output_dir("the day"), default=Path("out/day"),
                     help="output directory (reports, results.json)")
    sim.add_argument("--state-dir", type=output_dir("the day's state"), default=None,
                     help="what survives a power cut: the box's storage (DIR/device) and the physical world "
                          "(DIR/world); default OUT/state")
    sim.add_argument("--resume", action="store_true",
                     help="boot the box as after a power cut and carry the day in --state-dir on to its end")
    sim.add_argument("--endpoint", default=None, help="send the day's signed documents live to this CEC receiver "
                     "(https:// with --pin; http:// on loopback)")
    sim.add_argument("--pin", default=None, help="SHA-256 pin of the receiver's certificate (for https://)")
    sim.add_argument("--receipt-key", type=Path, default=None, help="the receiver's public key its receipts must "
                     "verify with (default: the installed package's, else the TEST ONLY receiver key)")
    sim.add_argument("--election", type=Path, default=None, help="election definition (default: sample)")
    sim.add_argument("--no-faults", action="store_true", default=None,
                     help="no paper jams, double sheets or open covers")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--open-lid", action="append", default=None, metavar="HH:MM",
                     help="a tamper drill: someone opens the box's lid at this station time for 3 minutes while "
                          "the polls are open (repeatable); the box alarms, logs it and prints it on the results")
    sim.add_argument("--desk-voters", type=int, default=None,
                     help="voters through the authentication desk (pilots 1 and 3; default: the first 60 voters, "
                          "0 = no desk); the register holds the station's registered voters")
    sim.set_defaults(run=_simulate)

    ballots = sub.add_parser("ballots", help="ballot printing").add_subparsers(metavar="ACTION")
    render = ballots.add_parser("render", help="render a ballot style as PNG (and layout JSON, PDF)")
    render.add_argument("--election", type=Path, required=True)
    render.add_argument("--style", required=True, help="ballot style id, e.g. N or V")
    render.add_argument("--dpi", type=number(50, 1200, "dpi"), default=200.0)
    render.add_argument("--out", type=output_file("the ballot's PNG"), required=True, help="PNG file to write")
    render.add_argument("--layout-json", type=output_file("the layout JSON"),
                        help="write the box positions in pixels of this render")
    render.add_argument("--pdf", type=output_file("the ballot's PDF"), help="also write a print-ready PDF at this dpi")
    render.add_argument("--key", type=input_file("the CEC's ballot-code key (PEM)"),
                        help="CEC ballot-code signing key (PEM); default: the TEST key")
    render.add_argument("--mode", choices=["official", "test"], help="override the election's mode (test = specimen)")
    render.set_defaults(run=_render)

    deck = ballots.add_parser("test-deck", help="logic & accuracy deck: pre-marked ballots covering every option "
                              "and rule, with the tally they must produce")
    deck.add_argument("--election", type=Path, required=True)
    deck.add_argument("--out", type=output_dir("the deck"), required=True,
                      help="directory for the deck (PNG/PDF pages, expected tally)")
    deck.add_argument("--dpi", type=number(50, 1200, "dpi"), default=200.0)
    deck.add_argument("--key", type=input_file("the CEC's ballot-code key (PEM)"),
                      help="CEC ballot-code signing key (PEM); default: the TEST key")
    deck.add_argument("--mode", choices=["test", "official"], default="test",
                      help="ballot codes of test (specimen) ballots, read only by a box in test mode (default), or "
                           "official codes: castable pre-marked ballots, sensitive material")
    deck.set_defaults(run=lambda a: __import__("firmware.cec.test_deck", fromlist=["run"]).run(a))

    bench = sub.add_parser("bench", help="benchmarks (print figures, write JSON)").add_subparsers(metavar="WHAT")
    bench_omr = bench.add_parser("omr", help="OMR accuracy and latency on a generated corpus (BENCHMARKS.md)")
    bench_omr.add_argument("--level", choices=["L1", "L2", "L3", "foreign"], required=True)
    bench_omr.add_argument("--ballots", type=int, required=True)
    bench_omr.add_argument("--seed", type=int, default=1)
    bench_omr.add_argument("--kind", choices=["mayor", "council", "council-sample", "mixed"], default="mixed",
                           help="ballot kind: mayor (A4, 8 candidates), council (30 x 35 long ballot) or mixed")
    bench_omr.add_argument("--out", type=output_dir("the JSON figures"), default=Path("out/bench"),
                           help="directory for the JSON figures")
    bench_omr.add_argument("--keep-failures", action="store_true", help="save the images of misreads and flags")
    bench_omr.add_argument("--second-opinion", choices=["on", "off"], default="on",
                           help="consult the learned second opinion on marginal boxes, as the box does (default on);"
                                " off = the classical engine alone, for the comparison")
    bench_omr.set_defaults(run=lambda a: __import__("simulator.bench_omr", fromlist=["run"]).run(a))
    bench_total = bench.add_parser("omr-total", help="add up `bench omr` JSON files and judge the bars over them all")
    bench_total.add_argument("files", nargs="+", type=input_file("a JSON file `bench omr` wrote"),
                             help="omr-LEVEL-KIND-SEED.json files")
    bench_total.add_argument("--out", type=output_file("the total's JSON"), help="write the total as JSON here")
    bench_total.set_defaults(run=lambda a: __import__("simulator.bench_omr", fromlist=["total"]).total(a.files, a.out))

    power = bench.add_parser("power-cut", help="kill real box processes (SIGKILL) across the ballot flow, resume "
                             "each, count ballots lost and doubled")
    power.add_argument("--runs", type=int, default=1000, help="power cuts (default 1000)")
    power.add_argument("--seed", type=int, default=1)
    power.add_argument("--voters", type=int, default=60, help="voters per simulated day (default 60)")
    power.add_argument("--work", type=output_dir("the days' state"), default=None, help="directory for the days' state (default: a new "
                       "temporary directory, kept)")
    power.add_argument("--out", type=output_file("the JSON figures"), default=Path("out/bench/power-cut.json"),
                       metavar="JSON")
    power.add_argument("--election", type=Path, default=SAMPLE_ELECTION)
    power.set_defaults(run=_bench_power_cut)

    from biometrics.cli import add_parsers

    fingerprints = bench.add_parser("fingerprints", help="FVC2002 DB1-4 B: ours, cross-vendor, NBIS side by side")
    fingerprints.add_argument("--data", type=Path, required=True, metavar="DIR", help="folder holding DB1_B .. DB4_B")
    fingerprints.add_argument("--out", type=output_file("the JSON figures"), default=None, metavar="JSON")
    fingerprints.add_argument("--no-nbis", action="store_true", help="leave the NBIS baseline out")
    fingerprints.set_defaults(run=_bench_fingerprints)
    add_parsers(sub)
    from ballotbox.transmission_cli import add_parsers as add_transmission_parsers

    add_transmission_parsers(sub, bench)
    from ballotbox.log_cli import add_parsers as add_log_parsers

    add_log_parsers(sub)  # log verify, export verify
    from ballotbox.trust_cli import add_parsers as add_trust_parsers

    add_trust_parsers(sub)  # package, provision, release, install, boot-check, service
    from ballotbox.service_cli import add_parsers as add_service_parsers

    add_service_parsers(sub)  # committee
    from ballotbox.video_cli import add_parsers as add_video_parsers

    add_video_parsers(sub, bench)

    omr = sub.add_parser("omr", help="optical mark recognition").add_subparsers(metavar="ACTION")
    interp = omr.add_parser("interpret", help="interpret ballot images; one JSON object per image per line")
    interp.add_argument("--election", type=Path, required=True)
    interp.add_argument("--dpi", type=number(50, 1200, "dpi"), help="capture resolution, if the image does not "
                        "record it")
    interp.add_argument("--no-second-opinion", action="store_true",
                        help="the classical engine alone: do not consult the learned model on marginal boxes")
    interp.add_argument("images", nargs="+", type=Path)
    interp.set_defaults(run=_interpret)

    device = sub.add_parser("device", help="the box's devices").add_subparsers(metavar="ACTION")
    provision = device.add_parser("provision", help="make the box's device key in a state directory (before its "
                                  "first day) and print what the CEC's receiver must trust")
    provision.add_argument("--state-dir", type=output_dir("the box's state"), required=True)
    provision.set_defaults(run=_device_provision)
    set_pin = device.add_parser("set-pin", help="set a role's PIN (or card id) on the box, stored as a salted scrypt "
                                "hash in STATE/device/access.json; the PIN is read from standard input")
    set_pin.add_argument("--state-dir", type=output_dir("the box's state"), required=True)
    set_pin.add_argument("--role", choices=["operator", "president", "technician"], required=True)
    set_pin.add_argument("--card", action="store_true", help="the secret is a card's id (8 to 64 characters), "
                         "not a PIN of 6 to 12 digits")
    set_pin.set_defaults(run=_device_set_pin)
    selftest = device.add_parser("self-test", help="check every device and print the self-test report (Art. 11, 20)")
    selftest.add_argument("--settings", type=input_file("the device settings (JSON)"), default=None,
                          help="device settings (default: config/device-sim.json; on the Pi: config/device-pi.json)")
    selftest.add_argument("--election", type=Path, default=SAMPLE_ELECTION, help="the installed election package")
    selftest.add_argument("--out", type=output_dir("the self-test report"), default=Path("out/self-test"),
                          help="where the report PNG/JSON go")
    selftest.set_defaults(run=_self_test)

    election = sub.add_parser("election", help="election definitions").add_subparsers(metavar="ACTION")
    check = election.add_parser("check", help="validate an election definition and summarise it")
    check.add_argument("path", type=Path)
    check.set_defaults(run=_check)

    cdf = sub.add_parser("cdf", help="the NIST CDF exports (results, cast-vote records)").add_subparsers(metavar="ACTION")
    cdf_verify = cdf.add_parser("verify", help="check OUT/cdf with the device's public key alone: signatures, "
                                "NIST schemas, Merkle root, every CVR file; exit 1 on any problem")
    cdf_verify.add_argument("directory", type=Path, help="OUT or OUT/cdf")
    cdf_verify.add_argument("--key", type=input_file("the device's public key (PEM)"), required=True,
                            help="the device's public key (PEM, e.g. device-key.pub.pem); compare its fingerprint, "
                                 "printed here, with the one on the paper report")
    cdf_verify.set_defaults(run=_cdf_verify)
    return p


def _cdf_verify(args: argparse.Namespace) -> int:
    from firmware.common.identity import fingerprint_of
    from firmware.scanner.cdf.export import load_public_key, verify_cdf_exports
    from firmware.scanner.cdf.results import CdfError

    if not args.directory.is_dir():
        raise UserError(f"{args.directory}: no such directory; give the OUT or OUT/cdf directory of an export")
    try:
        key = load_public_key(args.key)
    except CdfError as exc:
        raise UserError(str(exc)) from None
    print(f"key fingerprint {fingerprint_of(key.public_bytes_raw())} (compare it with the paper report)")
    problems = verify_cdf_exports(args.directory, key)
    for problem in problems:
        print(f"PROBLEM {problem}")
    print("exports verified: signatures, NIST schemas, Merkle root and every CVR file hold" if not problems
          else f"{len(problems)} problem(s): do not trust these exports")
    return EXIT_CHECK_FAILED if problems else EXIT_OK


# -- simulate ---------------------------------------------------------------------------------
def _simulate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    from firmware.common.i18n import Messages
    from firmware.common.reports import render_png, report_to_json
    from simulator.day import FaultRates, run_day

    out: Path = args.out
    state_dir: Path = args.state_dir or out / "state"
    from ballotbox.trust_cli import use_installed_package

    use_installed_package(args, state_dir)  # a provisioned box runs its package's election and receiver
    endpoint = _endpoint(args) if args.endpoint else None  # refused before the day writes anything
    if endpoint is not None:
        from ballotbox.transmission_cli import receipt_key_for
        from firmware.trust.signing import TEST_RECEIVER_PUBLIC_KEY

        receipt_key = receipt_key_for(state_dir, args.receipt_key, fallback=TEST_RECEIVER_PUBLIC_KEY)
    _day_parameters(args, out, state_dir)  # a new day over an old one is refused; a resumed one reads its own
    election = load_election(args.election)
    console = Console(stderr=False)
    reports_dir = out / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    messages = Messages.for_language(election.station.language)

    def save_report(kind: str, report: Any) -> None:
        render_png(report, election, reports_dir / f"{kind}-report.png")
        (reports_dir / f"{kind}-report.json").write_text(
            json.dumps(report_to_json(report), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        if kind == "results":  # Art. 24: the committee's manual count goes beside the box's, on paper
            from firmware.scanner.comparison import comparison_sheet
            save_report("comparison", comparison_sheet(report, election))

    faults = FaultRates(0, 0, 0, 0) if args.no_faults else FaultRates()
    uploader_for = None
    if endpoint is not None:
        from firmware.common.transmission.uploader import Uploader

        def uploader_for(store: Any, clock: Any) -> Any:
            return Uploader(store, endpoint, messages, receipt_key=receipt_key, now=clock.now, sleep=clock.sleep)
    import cv2

    # One OpenCV thread: the day already keeps both of a small machine's cores busy (the firmware's reading
    # thread and its pool, the camera twin drawing ahead), and OpenCV's own workers waiting on them cost more
    # than they give (the README's figures). A box's scanner service keeps OpenCV's default.
    cv2.setNumThreads(1)
    started = time.perf_counter()
    console.print(f"[bold]ballotbox[/] simulated day: {election.title.latn}, station {election.station.code} "
                  f"{election.station.name.latn}, {args.voters} voters, seed {args.seed}"
                  + (f" - resumed after a power cut from {state_dir}" if args.resume else ""))
    from firmware.scanner.service import PollsError

    with Progress(TextColumn("voters"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=args.quiet) as progress:
        task = progress.add_task("day", total=args.voters)
        try:
            result = run_day(election, args.voters, args.seed, state_dir, messages, faults=faults,
                             on_report=save_report, progress=lambda i, n: progress.update(task, completed=i),
                             resume=args.resume, uploader_for=uploader_for, open_lid=args.open_lid)
        except PollsError as exc:  # the box refused to open (a failed self-test, installed files changed)
            progress.stop()
            console.print(f"[bold red]THE BOX REFUSED[/]: {exc}")
            return EXIT_CHECK_FAILED
    elapsed = time.perf_counter() - started
    for _, words in result.recovery:
        console.print(f"recovery after the power cut: {words}")
    for line in result.transmission:
        console.print(f"transmission: {line}")

    from simulator.results import write_results
    write_results(out / "results.json", election, result)
    cdf = _write_cdf(out, result)
    from ballotbox.video_cli import write_day_video

    write_day_video(out, result, save_report, console)

    desk = _authentication_desk(args, election, state_dir, messages, save_report, console)
    # issue 12, item 7: the deletion record, then OUT/export with its signed index
    from ballotbox.log_cli import export_day
    export, export_problems = export_day(out, state_dir, election, result, desk)

    table = Table(title="Box tallies vs ground truth (the physical ballot box)")
    for col in ("contest", "ballots", "valid", "invalid", "ambiguous", "agree"):
        table.add_column(col, justify="right" if col not in ("contest", "agree") else "left")
    for cid, t in result.box_tallies.items():
        truth = result.truth_tallies[cid]
        same = not [d for d in result.differences if d.startswith(f"contest {cid}:")]
        table.add_row(cid, str(t["ballots"]), str(t["valid"]), str(sum(t["invalid_by_reason"].values())),
                      str(t["ambiguous"]), "[green]yes[/]" if same else f"[red]NO[/] (truth {truth['ballots']})")
    console.print(table)
    s = result.stats
    console.print(f"sheets in the box {s['sheets_in_box']}, replacement ballots {s.get('replacement_ballots', 0)}, "
                  f"returned after 'nevažeći' {s.get('returned_after_nevazeci', 0)}, "
                  f"returned ambiguous {s.get('returned_ambiguous', 0)}, "
                  f"paper-path faults {sum(v for k, v in s.items() if k.startswith('fault_'))}")
    console.print(f"one ballot through the feeder (simulated capture + OMR + store), wall: median "
                  f"{s['cycle_ms_median']} ms, p95 {s['cycle_ms_p95']} ms; whole run {elapsed:.1f} s")
    console.print(f"reports: {reports_dir}/  results: {out / 'results.json'}  NIST CDF: {cdf}/ "
                  f"(check: ballotbox cdf verify {cdf} --key {cdf / 'device-key.pub.pem'})")
    console.print(f"export for the USB drive: {export}/ (check: ballotbox export verify {export})")
    if export_problems:
        console.print("[bold red]EXPORT PROBLEMS[/]: " + "; ".join(export_problems[:10]))
        return EXIT_CHECK_FAILED
    if desk is not None and not desk.agree:
        console.print("[bold red]AUTHENTICATION REPORT DIFFERS[/] from the simulator's ground truth:")
        for d in desk.differences[:30]:
            console.print(f"  {d}")
        return EXIT_CHECK_FAILED
    if result.agree:
        console.print("[bold green]TALLIES AGREE[/] with the simulator's ground truth")
        return EXIT_OK
    console.print("[bold red]TALLIES DIFFER[/] from the simulator's ground truth:")
    for d in result.differences[:30]:
        console.print(f"  {d}")
    return EXIT_CHECK_FAILED


def _endpoint(args: argparse.Namespace) -> Any:
    from firmware.common.transmission.uploader import EndpointError, parse_endpoint

    try:
        return parse_endpoint(args.endpoint, args.pin)
    except EndpointError as exc:
        raise UserError(f"--endpoint {args.endpoint}: {exc}") from None


def _write_cdf(out: Path, result: Any) -> Path:
    """OUT/cdf/ from the signed documents the closing put in the outbox (never built a second time)."""
    from firmware.common.transmission.documents import CVR_REPORT, ELECTION_REPORT
    from firmware.scanner.cdf.export import exports_from_documents, write_cdf_exports

    docs = {d.kind: d for d in result.documents}
    paths = write_cdf_exports(out, exports_from_documents(docs[ELECTION_REPORT], docs[CVR_REPORT]),
                              result.service.identity)
    return paths.directory


def _authentication_desk(args: argparse.Namespace, election: Any, state_dir: Path, messages: Any,
                         save_report: Any, console: Any) -> Any:
    """The authentication desk of the same day (its own store, log, clock and key file in device/auth:
    the secrecy wall), its report saved beside the scanner's, checked against the simulator's truth."""
    from firmware.common.identity import load_or_provision
    from simulator.auth_desk import run_desk
    from simulator.day import SIM_DEVICE_ID

    n = _desk_voters(args)
    if n == 0:
        return None
    registered = max(n, election.station.registered_voters)
    identity = load_or_provision(state_dir / "device", SIM_DEVICE_ID)  # the box's one key, made by the day
    started = time.perf_counter()
    desk = run_desk(election, n, args.seed, state_dir / "device" / "auth", messages, registered=registered,
                    identity=identity, pins_dir=state_dir / "device", on_report=save_report,
                    world_dir=state_dir / "world", resume=args.resume)
    for line in (*(desk.recovery.lines if desk.recovery else ()), *desk.notes):
        console.print(f"authentication desk, after the power cut: {line}")
    r = desk.report
    console.print(f"authentication desk: {n} voters of a register of {registered} in "
                  f"{time.perf_counter() - started:.1f} s; " + ", ".join(f"{k} {v}" for k, v in _desk_line(r)))
    console.print("[bold green]AUTHENTICATION REPORT AGREES[/] with the simulator's ground truth" if desk.agree
                  else "[bold red]AUTHENTICATION REPORT DIFFERS[/]")
    return desk


DAY_DEFAULTS = {"voters": 300, "seed": 7, "no_faults": False, "desk_voters": None, "open_lid": []}


def _device_provision(args: argparse.Namespace) -> int:
    from firmware.common.identity import has_device_key, load_or_provision
    from simulator.day import DEVICE_DIR, SIM_DEVICE_ID

    device_dir = args.state_dir / DEVICE_DIR
    if has_device_key(device_dir):
        raise UserError(f"{device_dir}: this box is provisioned already (it has its device key); a new key means a new "
                        "fingerprint on every report: keep it, or provision another --state-dir")
    identity = load_or_provision(device_dir, SIM_DEVICE_ID)
    print(f"device {identity.device_id}, key fingerprint {identity.fingerprint}")
    print(f"public key for the CEC's receiver (--devices folder): {device_dir / 'device-key.pub.pem'}")
    return EXIT_OK


def _device_set_pin(args: argparse.Namespace) -> int:
    import getpass

    from firmware.common.roles import Role, hash_secret, write_access_file
    from simulator.day import DEVICE_DIR

    what = "card id" if args.card else "PIN"
    secret = getpass.getpass(f"{args.role} {what}: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    if args.card and not 8 <= len(secret) <= 64:
        raise UserError(f"--card: a card id of {len(secret)} characters; the reader gives 8 to 64")
    if not args.card and not (secret.isdigit() and 6 <= len(secret) <= 12):
        raise UserError(f"--role {args.role}: the PIN must be 6 to 12 digits (got {len(secret)} characters); "
                        "type it again")
    path = write_access_file(args.state_dir / DEVICE_DIR, {Role(args.role): hash_secret(secret)})
    print(f"{args.role}: {what} set (salted scrypt hash in {path})")
    return EXIT_OK


# What `device provision` or `provision` leaves: the key (a file or sealed to the TPM) and its public half.
KEY_FILES = ("device-key.pem", "device-key.tpm.json")
PROVISIONED = {*KEY_FILES, "device-key.pub.pem"}


def _day_parameters(args: argparse.Namespace, out: Path, state_dir: Path) -> None:
    """Fill args with the day's parameters: a new day's from the command line (refused over a directory
    that holds anything: `simulate` never deletes a day), a resumed day's from its state directory."""
    from simulator.day import WORLD_DIR
    from simulator.world import WorldError, read_day_file, write_day_file

    for name, path in (("--out", out), ("--state-dir", state_dir)):
        if path.exists() and not path.is_dir():
            raise UserError(f"{name} {path}: is a file, not a directory; give a directory for the day")
    if args.resume:
        try:
            day = read_day_file(state_dir / WORLD_DIR)
        except WorldError as exc:
            raise UserError(str(exc)) from None
        for name in ("voters", "seed", "no_faults", "desk_voters"):
            given = getattr(args, name)
            if given is not None and given != day[name] and not (name == "no_faults" and given is False):
                raise UserError(f"--{name.replace('_', '-')} {given}: the day in {state_dir} was started with "
                                f"{day[name]}; leave it out when resuming")
            setattr(args, name, day[name])
        if args.open_lid is not None and sorted(args.open_lid) != sorted(day.get("open_lid", [])):
            raise UserError(f"--open-lid {' '.join(args.open_lid)}: the day in {state_dir} was started with "
                            f"{day.get('open_lid') or 'none'}; leave it out when resuming")
        args.open_lid = day.get("open_lid", [])
        if args.election is not None and args.election.resolve() != Path(day["election"]):
            raise UserError(f"--election {args.election}: the day in {state_dir} runs {day['election']}")
        args.election = Path(day["election"])
        return
    for name, path in (("--state-dir", state_dir), ("--out", out)):
        provisioned = path == state_dir and _provisioned_only(path)
        if path.is_dir() and any(path.iterdir()) and not provisioned and not (
                path == out and state_dir.parent == out and _only_provisioned(out, state_dir)):
            raise UserError(f"{name} {path} already holds a day (or other files) and simulate never deletes one: "
                            f"carry a killed day on with --resume (--state-dir {state_dir}), or give another "
                            f"{name}")
    for name, default in DAY_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    args.election = (args.election or SAMPLE_ELECTION).resolve()
    if args.voters < 1 or args.voters > 5000:
        raise UserError(f"--voters {args.voters}: give 1 to 5000 voters")
    _desk_voters(args)  # refused before the day, not after it
    polls = load_election(args.election).polls  # a bad package is refused before anything of the day is written
    for at in args.open_lid:
        if not (HHMM.match(at) and polls.opening < at < polls.closing):
            raise UserError(f"--open-lid {at}: give a station time HH:MM between the opening {polls.opening} and "
                            f"the closing {polls.closing}")
    (state_dir / WORLD_DIR).mkdir(parents=True, exist_ok=True)
    write_day_file(state_dir / WORLD_DIR, {name: getattr(args, name) for name in DAY_DEFAULTS}
                   | {"election": str(args.election)})


def _only_provisioned(out: Path, state_dir: Path) -> bool:
    """OUT holds nothing but a provisioned OUT/state (the default --state-dir)."""
    others = [p for p in out.iterdir() if p != state_dir]
    return not others and state_dir.is_dir() and _provisioned_only(state_dir)


def _provisioned_only(state_dir: Path) -> bool:
    """state_dir holds the device key and what `provision` installed (package, receipt), and no day."""
    from ballotbox.trust_cli import PROVISIONED_EXTRA, PROVISIONED_TREES

    inside = {p.relative_to(state_dir).as_posix() for p in state_dir.rglob("*")}
    has_key = any(f"device/{f}" in inside for f in KEY_FILES)
    return has_key and {"device", "device/device-key.pub.pem"} <= inside and all(
        rel in PROVISIONED_EXTRA or rel.startswith(PROVISIONED_TREES) or rel == "device"
        or rel.removeprefix("device/") in PROVISIONED for rel in inside)


def _desk_voters(args: argparse.Namespace) -> int:
    # The desk's cases (passport, impostor, second vote, no template...) need at least 4 register voters.
    default = min(args.voters, 60) if args.voters >= 4 else 0
    n = default if args.desk_voters is None else args.desk_voters
    if n != 0 and not 4 <= n <= args.voters:
        raise UserError(f"--desk-voters {n}: give 0 (no desk) or 4 to --voters ({args.voters})")
    return n


def _desk_line(report: Any) -> list[tuple[str, Any]]:
    fields = ("authenticated", "reidentified", "failures", "refused", "not_in_register", "no_template",
              "impersonation_attempts")
    return [(name.replace("_", " "), getattr(report, name)) for name in fields if hasattr(report, name)]


def _bench_power_cut(args: argparse.Namespace) -> int:
    import tempfile

    from simulator.bench_power_cut import run

    if args.runs < 1 or args.voters < 2:
        raise UserError(f"--runs {args.runs} --voters {args.voters}: give at least 1 run and 2 voters")
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        raise UserError(f"--work {args.work}: not empty; give a new directory (the bench never deletes days)")
    election = load_election(args.election)
    work = args.work or Path(tempfile.mkdtemp(prefix="ballotbox-power-cut-"))
    work.mkdir(parents=True, exist_ok=True)

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"  {done}/{total} power cuts", flush=True)

    report = run(election, args.runs, args.seed, work, voters=args.voters, progress=progress)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"power cuts: {report['runs']} over {report['days']} days of {args.voters} voters "
          f"({report['seconds_per_run']} s each, {report['wall_seconds']} s in all); kills by mode "
          f"{report['kills_by_mode']}, inside a SQLite commit {report['killed_inside_commit']}")
    print(f"ballots lost {report['ballots_lost']}, counted twice {report['ballots_doubled']}, days whose tallies "
          f"differ from the box {report['days_whose_tallies_differ']}")
    print("kill points: " + ", ".join(f"{k} {v}" for k, v in report["kills_by_point"].items()))
    if report["points_never_killed"]:
        print("points never reached: " + ", ".join(report["points_never_killed"]))
    print(f"recovery decisions: {report['recovery_decisions']}; days kept in {work}; figures in {args.out}")
    bad = report["ballots_lost"] or report["ballots_doubled"] or report["days_whose_tallies_differ"]
    return EXIT_CHECK_FAILED if bad else EXIT_OK


def _bench_fingerprints(args: argparse.Namespace) -> int:
    from simulator.bench_fingerprints import run

    if not args.data.is_dir():
        raise UserError(f"{args.data}: not a folder; give the folder holding DB1_B .. DB4_B of FVC2002")
    report = run(args.data, args.out, with_nbis=not args.no_nbis)
    if not report["databases"]:
        raise UserError(f"{args.data}: no DB1_B .. DB4_B folder with .tif images inside")
    return EXIT_OK


# -- ballots render ---------------------------------------------------------------------------
def _render(args: argparse.Namespace) -> int:
    import io

    from firmware.cec.ballots import BallotKeyError, load_signing_key, render_ballot
    from omr.layout import LayoutError

    election = load_election(args.election)
    outputs = {"--out": args.out, "--layout-json": args.layout_json, "--pdf": args.pdf}
    given = [(name, path.resolve()) for name, path in outputs.items() if path is not None]
    for i, (name, path) in enumerate(given):
        for other, other_path in given[:i]:
            if path == other_path:
                raise UserError(f"{name} {outputs[name]}: the same file as {other}; give each output its own file")
    try:
        key = load_signing_key(args.key) if args.key else load_signing_key()
    except BallotKeyError as exc:
        raise UserError(str(exc)) from None
    try:
        img, layout = render_ballot(election, args.style, args.dpi, key=key, mode=args.mode)
    except LayoutError as exc:
        raise UserError(str(exc)) from None
    # Everything is made in memory first, so that a bad later output never leaves an earlier one half-done.
    contents: dict[Path, bytes] = {}
    buffer = io.BytesIO()
    img.save(buffer, "PNG", dpi=(args.dpi, args.dpi))
    contents[args.out] = buffer.getvalue()
    if args.layout_json:
        contents[args.layout_json] = (json.dumps(layout.to_json(args.dpi), indent=1) + "\n").encode()
    if args.pdf:
        buffer = io.BytesIO()
        img.save(buffer, "PDF", resolution=args.dpi)
        contents[args.pdf] = buffer.getvalue()
    for path, data in contents.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if args.key is None:
        print("ballotbox: note: signed with the TEST key (config/keys): not for an official election", file=sys.stderr)
    print(f"{args.out}: ballot style {args.style}, {img.width} x {img.height} px at {args.dpi:g} dpi, "
          f"{len(layout.boxes)} boxes")
    return EXIT_OK


# -- omr interpret ----------------------------------------------------------------------------
def _interpret(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from firmware.cec.ballots import references_for
    from omr.interpret import interpret
    from omr.second_opinion import MarkClassifier

    election = load_election(args.election)
    references = references_for(election)
    model = None if args.no_second_opinion else MarkClassifier.load()
    worst = EXIT_OK
    for path in args.images:
        record: dict[str, Any] = {"image": str(path)}
        try:
            with warnings.catch_warnings():  # Pillow's bomb warning (over MAX_IMAGE_PIXELS) is refused like the error
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    dpi = args.dpi or _image_dpi(im)
                    pixels = np.array(im.convert("RGB"))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            record.update(verdict="unreadable", reasons=["image_invalid"], error=_too_large(path))
            print(json.dumps(record, ensure_ascii=False), flush=True)
            worst = EXIT_CHECK_FAILED
            continue
        except FileNotFoundError:
            record.update(verdict="unreadable", reasons=["image_invalid"], error=f"{path}: no such file")
            print(json.dumps(record, ensure_ascii=False), flush=True)
            worst = EXIT_CHECK_FAILED
            continue
        except (UnidentifiedImageError, OSError) as exc:
            record.update(verdict="unreadable", reasons=["image_invalid"],
                          error=f"{path}: not an image we can read ({exc}); scan it again as PNG or JPEG")
            print(json.dumps(record, ensure_ascii=False), flush=True)
            worst = EXIT_CHECK_FAILED
            continue
        t0 = time.perf_counter()
        result = interpret(pixels, election, dpi=dpi, references=references, second_opinion=model)
        ms = (time.perf_counter() - t0) * 1000
        record.update(result.to_json())
        record["orientation"] = result.orientation
        record["ms"] = round(ms, 1)
        print(json.dumps(record, ensure_ascii=False), flush=True)
    return worst


def _too_large(path: Path) -> str:
    from PIL import Image

    try:  # the header alone says the size (Image.open refused it before reading any pixel)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as im:
                    size = f"{im.width} x {im.height} pixels"
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except Exception:  # noqa: BLE001 - only the words of the message depend on it
        size = "the image"
    return (f"{path}: {size} is too large for a ballot image (at most {Image.MAX_IMAGE_PIXELS or 0:,} pixels; the "
            f"longest ballot, 420 x 1200 mm at 300 dpi, is 70 million); scan it again at 200-300 dpi")


def _image_dpi(im: Any) -> float | None:
    dpi = im.info.get("dpi")
    if dpi and dpi[0] and abs(float(dpi[0]) - 72.0) > 0.5:  # 72 is what many tools write when they know nothing
        return float(dpi[0])
    return None


# -- device self-test ------------------------------------------------------------------------
def _self_test(args: argparse.Namespace) -> int:
    import random

    from config.device import DEFAULT_DEVICE, DeviceSettingsError, load_device_settings
    from firmware.common.i18n import Messages
    from firmware.common.identity import (
        load_or_provision,
        software_hash,
        software_version,
    )
    from firmware.common.reports import (
        build_header,
        build_self_test_report,
        render_png,
        render_raster,
        report_to_json,
    )
    from firmware.common.selftest import software_status
    from firmware.trust.release import check_running_release
    from hal.devices import build_pi_auth_devices, build_pi_devices
    from hal.errors import DeviceStatus, HalError

    election = load_election(args.election)
    try:
        settings = load_device_settings(args.settings or DEFAULT_DEVICE)
    except DeviceSettingsError as exc:
        raise UserError(str(exc)) from None
    if settings.kind == "pi":
        try:
            devices = build_pi_devices(settings)
        except HalError as exc:
            raise UserError(f"cannot open the devices: {exc}") from None
        try:
            auth_devices = build_pi_auth_devices(settings)
        except HalError as exc:  # the desk's devices failing is a failed check, not a refusal to check the rest
            auth_devices, auth_failure = None, exc
    else:
        from simulator.devices import build_sim_auth_devices, build_sim_station
        devices = build_sim_station(election, random.Random(0)).devices
        auth_devices = build_sim_auth_devices()
    try:
        checks = devices.self_test()
        if auth_devices is not None:
            checks += auth_devices.self_test()
        else:
            checks += [DeviceStatus("document_reader", False, f"not opened: {auth_failure.message}"),
                       DeviceStatus("fingerprint_sensor", False, f"not opened: {auth_failure.message}")]
        checks += [_room_camera_check(settings)] if settings.video.enabled else []  # pilot 4's camera
        checks += _day_checks(devices.clock, election, settings)  # clock, the day's video storage, network
        checks += [software_status(check_running_release(), Messages.for_language(election.station.language))]
        seal = devices.switches.read()
        identity = load_or_provision(Path(settings.data_dir), settings.device_id)
        header = build_header(election, device_id=settings.device_id, software_version=software_version(),
                              software_hash=software_hash(), device_key_fingerprint=identity.fingerprint,
                              printed_at=devices.clock.now())
        report = build_self_test_report(header, checks, seal)
        args.out.mkdir(parents=True, exist_ok=True)
        render_png(report, election, args.out / "self-test-report.png")
        (args.out / "self-test-report.json").write_text(
            json.dumps(report_to_json(report), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        for c in checks:
            print(f"{'ok  ' if c.ok else 'FAIL'}  {c.device:14} {c.detail}")
        print(f"seal {'intact' if seal.seal_intact else 'BROKEN'}, lid {'closed' if seal.lid_closed else 'OPEN'}; "
              f"device {settings.device_id}, key {identity.fingerprint}")
        try:
            devices.printer.print_image(render_raster(report, election, devices.printer.width_px))
        except HalError as exc:
            print(f"ballotbox: the report was not printed: {exc}", file=sys.stderr)
            return EXIT_CHECK_FAILED
        print(f"report: {args.out / 'self-test-report.png'}")
        return EXIT_OK if report.ok else EXIT_CHECK_FAILED
    finally:
        devices.close()
        if auth_devices is not None:
            auth_devices.close()


def _room_camera_check(settings: Any) -> Any:
    """The room camera (pilot 4) answers with a frame of the configured size; a camera that cannot be opened
    is a failed check, not a refusal to check the rest."""
    from hal.errors import DeviceStatus, HalError

    video = settings.video
    try:
        if settings.kind == "pi":
            from hal.drivers.room_camera import open_room_camera
            camera = open_room_camera(video)
        else:
            from simulator.scene import SyntheticRoomCamera
            camera = SyntheticRoomCamera(video.width, video.height, video.fps)
    except HalError as exc:
        return DeviceStatus("room_camera", False, f"not opened: {exc.message}")
    try:
        return camera.self_test()
    finally:
        camera.close()


def _day_checks(clock: Any, election: Any, settings: Any) -> list[Any]:
    from firmware.common.i18n import Messages
    from firmware.common.selftest import DayCheckSettings, day_checks

    return day_checks(clock, election, Messages.for_language(election.station.language),
                      DayCheckSettings.from_device(settings))


# -- election check ---------------------------------------------------------------------------
def _check(args: argparse.Namespace) -> int:
    from omr.layout import LayoutError, layout_ballot

    election = load_election(args.path)
    print(f"{args.path}: election {election.id} '{election.title.latn}', {election.date}, mode {election.mode}")
    print(f"  station {election.station.code} {election.station.name.latn}, "
          f"{election.station.registered_voters} registered voters, language {election.station.language}")
    for c in election.contests:
        if c.lists:
            print(f"  contest {c.id} (open list): {len(c.lists)} lists, "
                  f"{sum(len(pl.candidates) for pl in c.lists)} candidates, max {c.max_preferences} preferences")
        else:
            print(f"  contest {c.id} (single choice): {len(c.candidates)} candidates, vote for {c.vote_for}")
    for s in election.ballot_styles:
        try:
            lay = layout_ballot(election, s.id)
        except LayoutError as exc:
            raise UserError(str(exc)) from None
        print(f"  ballot style {s.id}: {lay.width_mm:g} x {lay.height_mm:g} mm, {len(lay.boxes)} boxes")
    print(f"  package digest {election.digest()}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

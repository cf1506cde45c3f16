"""The trust-chain commands of `ballotbox`: the CEC's election package, provisioning, releases on the box.

    ballotbox package build --election PATH --endpoint URL [--pin SHA256] [--stations F] --out FILE
    ballotbox package sign FILE --key KEY.pem --out SIGNED
    ballotbox package verify SIGNED [--station CODE] [--election ID] [--trust DIR]
    ballotbox provision --package SIGNED --station CODE --state-dir DIR [--election ID] [--receipt FILE]
    ballotbox release build --out BUNDLE.tar.gz [--key KEY.pem] [--version V] [--source DIR]
    ballotbox install BUNDLE --root DIR [--trust DIR]   |   ballotbox install --rollback --root DIR
    ballotbox boot-check --root DIR [--health]
    ballotbox service run scanner|auth|video|uploader [--settings F] [--interval S] [--cycles N] [--state-dir DIR]
                                                      (scanner and uploader: ballotbox/service_cli.py)

A refused package or bundle exits 2 and says why; nothing is installed. boot-check exits 1 naming every
file that is not the signed manifest's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from firmware.errors import EXIT_CHECK_FAILED, EXIT_OK, UserError
from firmware.trust.signing import (
    TEST_PACKAGE_KEY,
    TEST_RECEIVER_PUBLIC_KEY,
    TEST_RELEASE_KEY,
    TRUSTED_PACKAGE_KEYS,
    TRUSTED_RELEASE_KEYS,
)

SOURCE_ROOT = Path(__file__).resolve().parents[1]
DEVICE_ID = r"[A-Z0-9-]{4,32}"  # as config/device.py allows: it goes into every header and report
TEST_KEY_NOTE = "signed with a TEST ONLY key (config/keys): for tests and training, never for an election"


def add_parsers(sub: Any) -> None:
    package = sub.add_parser("package", help="the CEC's election package: build, sign, verify")
    actions = package.add_subparsers(metavar="ACTION")
    build = actions.add_parser("build", help="build an unsigned election package (definition, stations, receiver)")
    build.add_argument("--election", type=Path, required=True, help="election definition (config/elections/*.json)")
    build.add_argument("--endpoint", required=True, help="the CEC receiver's base URL the boxes send to")
    build.add_argument("--pin", help="SHA-256 of the receiver's certificate or public key (needed for https://)")
    build.add_argument("--stations", type=Path, help="JSON list of the stations the package serves (default: "
                       "the definition's own station)")
    build.add_argument("--register-extract", type=Path, help="the register extract the desk will load: its name "
                       "and SHA-256 go into the package")
    build.add_argument("--receipt-key", type=Path, default=TEST_RECEIVER_PUBLIC_KEY,
                       help="the receiver's public key that signs its receipts (STORE/receiver-key.pub.pem of "
                       "`ballotbox receiver`); default: the TEST ONLY one")
    build.add_argument("--out", type=Path, required=True, help="the unsigned package (JSON) to write")
    build.set_defaults(run=_package_build)
    sign = actions.add_parser("sign", help="sign a built package (Ed25519)")
    sign.add_argument("file", type=Path, help="the unsigned package from `package build`")
    sign.add_argument("--key", type=Path, default=TEST_PACKAGE_KEY,
                      help="the CEC's package signing key (PEM); default: the TEST ONLY key")
    sign.add_argument("--out", type=Path, required=True, help="the signed package to write")
    sign.set_defaults(run=_package_sign)
    verify = actions.add_parser("verify", help="check a signed package as a box does (exit 2 and why if refused)")
    verify.add_argument("file", type=Path)
    verify.add_argument("--station", help="the station code the box serves (e.g. 089A012)")
    verify.add_argument("--election", help="the election id expected (e.g. LI2024)")
    verify.add_argument("--trust", type=Path, default=TRUSTED_PACKAGE_KEYS,
                        help=f"folder of the trusted package keys (default {TRUSTED_PACKAGE_KEYS})")
    verify.set_defaults(run=_package_verify)

    prov = sub.add_parser("provision", help="install a signed election package, make the device key, print the "
                          "receipt for the CEC")
    prov.add_argument("--package", type=Path, required=True, help="the signed election package")
    prov.add_argument("--station", required=True, help="the station this box serves (e.g. 089A012)")
    prov.add_argument("--state-dir", type=Path, required=True, help="the box's state directory (DIR/device/)")
    prov.add_argument("--election", help="the election id on the work order; refused if the package differs")
    prov.add_argument("--device-id", default=None, help="the box's id (default: from --settings)")
    prov.add_argument("--settings", type=Path, default=None, help="device settings (default config/device-sim.json)")
    prov.add_argument("--trust", type=Path, default=TRUSTED_PACKAGE_KEYS, help="folder of the trusted package keys")
    prov.add_argument("--receipt", type=Path, help="also write the receipt here (e.g. the CEC's --devices folder, "
                      "as NAME.receipt.json)")
    prov.add_argument("--tpm", default="auto", help="seal the device key to a TPM 2.0: auto (the TPM at "
                      "/dev/tpmrm0 when there is one), none (the key is a file, mode 0600), or a tpm2-tools TCTI "
                      "such as device:/dev/tpm0 or swtpm:host=127.0.0.1,port=2321")
    prov.add_argument("--json", action="store_true", help="print the receipt as JSON only")
    prov.set_defaults(run=_provision)

    release = sub.add_parser("release", help="release bundles of the box's software").add_subparsers(metavar="ACTION")
    rbuild = release.add_parser("build", help="a signed bundle: the code files and their SHA-256 manifest")
    rbuild.add_argument("--out", type=Path, required=True, help="bundle to write (.tar.gz)")
    rbuild.add_argument("--key", type=Path, default=TEST_RELEASE_KEY,
                        help="release signing key (PEM); default: the TEST ONLY key")
    rbuild.add_argument("--version", default=None, help="release version (default: the package's version)")
    rbuild.add_argument("--source", type=Path, default=SOURCE_ROOT, help="source tree root (default: this one)")
    rbuild.set_defaults(run=_release_build)

    install = sub.add_parser("install", help="flash a release: verify, install into the spare slot, switch, "
                             "health-check, roll back on failure")
    install.add_argument("bundle", type=Path, nargs="?", help="the release bundle (.tar.gz)")
    install.add_argument("--root", type=Path, required=True, help="where the slots live (e.g. /opt/ballotbox)")
    install.add_argument("--rollback", action="store_true", help="go back to the previous release instead")
    install.add_argument("--trust", type=Path, default=TRUSTED_RELEASE_KEYS, help="folder of the trusted release keys")
    install.add_argument("--python", default=sys.executable, help="interpreter the services run (default: this one)")
    install.set_defaults(run=_install)

    boot = sub.add_parser("boot-check", help="check the installed files against the signed manifest (exit 1 naming "
                          "each file that differs: the box does not open)")
    boot.add_argument("--root", type=Path, required=True)
    boot.add_argument("--trust", type=Path, default=TRUSTED_RELEASE_KEYS)
    boot.add_argument("--health", action="store_true", help="also import the services from the installed slot")
    boot.set_defaults(run=_boot_check)

    service = sub.add_parser("service", help="the box's services under systemd").add_subparsers(metavar="ACTION")
    srun = service.add_parser("run", help="run a service (systemd's ExecStart); READY and the watchdog fed only "
                              "while its devices answer")
    srun.add_argument("name", choices=["scanner", "auth", "video", "uploader"])
    srun.add_argument("--settings", type=Path, default=None, help="device settings (default config/device-sim.json)")
    srun.add_argument("--interval", type=float, default=None, help="seconds between device probes (default 10)")
    srun.add_argument("--cycles", type=int, default=None, help="stop after N probes (default: run until stopped)")
    from ballotbox.service_cli import add_run_options

    add_run_options(srun)  # the scanner's state directory, control socket and simulated room
    srun.set_defaults(run=_service_run)


# -- package -----------------------------------------------------------------------------------------
def _package_build(args: argparse.Namespace) -> int:
    from firmware.cec.packaging import build_package

    payload = build_package(args.election, endpoint=args.endpoint, pin=args.pin, stations_file=args.stations,
                            register_extract=args.register_extract, receipt_key=args.receipt_key)
    _write_json(args.out, payload)
    if args.receipt_key == TEST_RECEIVER_PUBLIC_KEY:
        print(f"receipts: the TEST ONLY receiver key ({TEST_RECEIVER_PUBLIC_KEY.name}): the receiver must run "
              "with --key config/keys/TEST-ONLY-cec-receiver.signing.pem; never for an election")
    print(f"{args.out}: election {payload['election']['id']}, stations "
          f"{', '.join(s['code'] for s in payload['stations'])}, receiver {payload['receiver']['endpoint']} "
          f"(unsigned: sign it with `ballotbox package sign {args.out} --key KEY --out SIGNED`)")
    return EXIT_OK


def _package_sign(args: argparse.Namespace) -> int:
    from firmware.cec.packaging import sign_package
    from firmware.trust.signing import canonical_sha256

    envelope, test_only = sign_package(args.file, args.key)
    _write_json(args.out, envelope)
    print(f"{args.out}: signed by key {envelope['signature']['key_id'][:16]}…, package sha256 "
          f"{canonical_sha256(envelope['payload'])}")
    if test_only:
        print(f"ballotbox: note: {TEST_KEY_NOTE}", file=sys.stderr)
    return EXIT_OK


def _package_verify(args: argparse.Namespace) -> int:
    from firmware.trust.package import verify_package

    v = verify_package(args.file, station=args.station, election_id=args.election, trust=args.trust)
    print(f"{args.file}: package verified: election {v.election.id} ({v.election.mode}), station(s) "
          f"{', '.join(s['code'] for s in v.package.stations)}, receiver {v.package.receiver.endpoint}; signed by "
          f"{v.signer.source}; package sha256 {v.sha256}")
    if v.signer.test_only:
        print(f"ballotbox: note: {TEST_KEY_NOTE}", file=sys.stderr)
    return EXIT_OK


# -- provision ---------------------------------------------------------------------------------------
def _provision(args: argparse.Namespace) -> int:
    from firmware.trust.package import verify_package
    from firmware.trust.provisioning import provision, receipt_text

    if args.state_dir.exists() and not args.state_dir.is_dir():
        raise UserError(f"--state-dir {args.state_dir}: is a file; give the box's state directory")
    if args.receipt is not None and args.receipt.is_dir():
        raise UserError(f"--receipt {args.receipt}: is a folder; give a file name, e.g. "
                        f"{args.receipt}/{args.station}.receipt.json")
    device_id = args.device_id or _device_id(args.settings)
    if not re.fullmatch(DEVICE_ID, device_id):
        raise UserError(f"--device-id {device_id!r}: give 4 to 32 capitals, digits or '-', e.g. BB-PI-0001")
    tpm = _tpm(args.tpm)
    verified = verify_package(args.package, station=args.station, election_id=args.election, trust=args.trust)
    done = provision(verified, args.state_dir / "device", device_id, tpm=tpm)
    if args.receipt is not None:
        _write_json(args.receipt, done.receipt)
    if args.json:
        print(json.dumps(done.receipt, ensure_ascii=False, indent=1))
    else:
        for line in receipt_text(done.receipt, done.receipt_path):
            print(line)
        if not done.key_made:
            print("  (the box kept the device key it had: same fingerprint as before)")
    return EXIT_OK


def _tpm(choice: str) -> Any:
    """--tpm: the TPM the key is sealed to, or None (a key file)."""
    from firmware.trust.tpm import TPM_DEVICE, Tpm, find_tpm, tools_missing

    if choice == "none":
        return None
    if choice == "auto":
        tpm = find_tpm()
        if tpm is None:
            return None
    elif re.fullmatch(r"(device|swtpm|mssim|tabrmd)(:\S*)?", choice):
        tpm = Tpm(choice)
    else:
        raise UserError(f"--tpm {choice!r}: give auto, none, or a TCTI (device:/dev/tpmrm0, "
                        "swtpm:host=HOST,port=PORT)")
    missing = tools_missing()
    if missing:
        where = f"a TPM is at {TPM_DEVICE}" if choice == "auto" else f"--tpm {choice}"
        raise UserError(f"{where}, but {', '.join(missing)} not installed: install tpm2-tools (apt install "
                        "tpm2-tools), or give --tpm none to keep the key in a file")
    return tpm


def _device_id(settings: Path | None) -> str:
    from config.device import DEFAULT_DEVICE, DeviceSettingsError, load_device_settings

    try:
        return load_device_settings(settings or DEFAULT_DEVICE).device_id
    except DeviceSettingsError as exc:
        raise UserError(str(exc)) from None


# -- releases ----------------------------------------------------------------------------------------
def _release_build(args: argparse.Namespace) -> int:
    from firmware.cec.packaging import build_release
    from firmware.common.identity import software_version

    if args.out.is_dir():
        raise UserError(f"--out {args.out}: is a folder; give the bundle's file name (.tar.gz)")
    manifest = build_release(args.source, args.out, args.key, args.version or software_version())
    print(f"{args.out}: release {manifest['version']}, {len(manifest['files'])} files, signed")
    if "TEST-ONLY" in args.key.name:
        print(f"ballotbox: note: {TEST_KEY_NOTE}", file=sys.stderr)
    return EXIT_OK


def _install(args: argparse.Namespace) -> int:
    from firmware.trust.release import install_release, rollback

    if args.root.exists() and not args.root.is_dir():
        raise UserError(f"--root {args.root}: is a file; give the folder of the slots")
    if args.rollback == (args.bundle is not None):
        raise UserError("install: give a BUNDLE, or --rollback (not both)")
    if args.rollback:
        result = rollback(args.root, trust=args.trust, python=args.python)
    else:
        args.root.mkdir(parents=True, exist_ok=True)
        result = install_release(args.bundle, args.root, trust=args.trust, python=args.python)
    print(result.detail)
    if result.healthy:
        print(f"release {result.version} runs from slot {result.slot} ({args.root / 'current'}); units in "
              f"{args.root / 'systemd'}")
        return EXIT_OK
    back = f"rolled back to slot {result.rolled_back_to}" if result.rolled_back_to else "no release runs"
    print(f"release {result.version} in slot {result.slot} FAILED its health check: {back}")
    return EXIT_CHECK_FAILED


def _boot_check(args: argparse.Namespace) -> int:
    from firmware.trust.release import boot_check

    version, problems = boot_check(args.root, trust=args.trust)
    if not problems and args.health:
        problems = _health_problems(args.root)
    for problem in problems:
        print(f"MISMATCH {problem}")
    if problems:
        print(f"boot check FAILED ({len(problems)} problem(s)): the box must not open; flash it again "
              "(`ballotbox install BUNDLE --root ROOT`)")
        return EXIT_CHECK_FAILED
    print(f"boot check: release {version}: every installed file is the signed manifest's"
          + ("; services import from the slot" if args.health else ""))
    return EXIT_OK


def _health_problems(root: Path) -> list[str]:
    """The installed code's own health: its services import, from the slot (not some other copy)."""
    import importlib

    current = (root / "current").resolve()
    problems = []
    for name in ("ballotbox.cli", "firmware.scanner.service", "firmware.scanner.run", "firmware.auth.service",
                 "firmware.common.transmission.uploader", "firmware.trust.release", "config.election"):
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any failure to import is the health check failing, named
            problems.append(f"{name}: does not import ({type(exc).__name__}: {exc})")
            continue
        where = Path(module.__file__ or "").resolve()
        if current not in where.parents:
            problems.append(f"{name}: imported from {where}, not from the installed slot {current}")
    if not problems:
        from config.election import SAMPLE_ELECTION, ElectionError, load_election
        try:
            load_election(SAMPLE_ELECTION)
        except ElectionError as exc:
            problems.append(f"{SAMPLE_ELECTION}: {exc}")
    return problems


# -- services ----------------------------------------------------------------------------------------
def _service_run(args: argparse.Namespace) -> int:
    from ballotbox.service_cli import refuse_options
    from firmware.trust.watchdog import DEFAULT_INTERVAL_S, health_loop

    if args.name == "video":  # records, rather than probes: fed while frames arrive (ballotbox/video_cli.py)
        refuse_options(args, "video", ("socket", "voters", "seed", "speed", "no_faults", "retry_cap"))
        from ballotbox.video_cli import service_run_video
        return service_run_video(args)
    if args.name == "scanner":  # the scanner's whole day: ballots, the committee, the watchdog
        from ballotbox.service_cli import run_scanner
        return run_scanner(args)
    if args.name == "uploader":  # the scanner's outbox to the package's receiver
        from ballotbox.service_cli import run_uploader
        return run_uploader(args)
    # the authentication desk: its devices probed under the watchdog (its day's loop is not built yet)
    refuse_options(args, args.name, ("state_dir", "socket", "voters", "seed", "speed", "no_faults", "retry_cap"))

    if args.cycles is not None and args.cycles < 1:
        raise UserError(f"--cycles {args.cycles}: give 1 or more")
    interval = DEFAULT_INTERVAL_S if args.interval is None else args.interval
    if interval <= 0:
        raise UserError(f"--interval {interval:g}: give a positive number of seconds")
    probe, close = _service_devices(args.name, args.settings)
    try:
        beats = health_loop(args.name, probe, interval_s=interval, cycles=args.cycles)
    finally:
        close()
    for beat in beats[-3:]:
        print(("fed    " if beat.healthy else "STARVED ") + beat.status)
    return EXIT_OK if beats and beats[-1].healthy else EXIT_CHECK_FAILED


def _service_devices(name: str, settings_path: Path | None) -> tuple[Any, Any]:
    """(probe, close) of the authentication desk's devices (document reader, fingerprint sensor). The
    scanner, the uploader and the video service have their own loops (ballotbox/service_cli.py, video_cli.py)."""
    from config.device import DEFAULT_DEVICE, DeviceSettingsError, load_device_settings
    from hal.errors import HalError

    try:
        settings = load_device_settings(settings_path or DEFAULT_DEVICE)
    except DeviceSettingsError as exc:
        raise UserError(str(exc)) from None
    try:
        if settings.kind == "pi":
            from hal.devices import build_pi_auth_devices
            devices: Any = build_pi_auth_devices(settings)
        else:
            from simulator.devices import build_sim_auth_devices
            devices = build_sim_auth_devices()
    except HalError as exc:
        raise UserError(f"service {name}: cannot open the devices: {exc}") from None
    return devices.self_test, devices.close


# -- simulate on a provisioned box -------------------------------------------------------------------
# What `provision` adds to a state directory besides the device key: still "no day yet" for simulate.
PROVISIONED_EXTRA = {"device/package", "device/packages", "device/provisioning-receipt.json"}
PROVISIONED_TREES = ("device/packages/", "device/package/")


def use_installed_package(args: argparse.Namespace, state_dir: Path) -> None:
    """`simulate` on a provisioned state directory: the election and the receiver come from the installed
    package (an --election that is not the package's is refused; --endpoint overrides the receiver)."""
    from firmware.trust.package import installed_package

    installed = installed_package(state_dir / "device") if (state_dir / "device").is_dir() else None
    if installed is None:
        return
    if args.election is not None and args.election.resolve() != installed.election_path.resolve():
        raise UserError(f"--election {args.election}: the box in {state_dir} is provisioned for election "
                        f"{installed.election_id} (station {installed.station}); leave --election out, or give "
                        "another --state-dir")
    args.election = installed.election_path.resolve()
    if args.endpoint is None:
        args.endpoint, args.pin = installed.endpoint, installed.pin_sha256
    print(f"provisioned box: station {installed.station}, election {installed.election_id}, package sha256 "
          f"{installed.sha256[:16]}…, receiver {args.endpoint}")


def _write_json(path: Path, data: Any) -> None:
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


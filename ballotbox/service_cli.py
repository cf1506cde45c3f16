"""The box's scanner service under systemd, and the committee's actions that reach it.

    ballotbox service run scanner [--settings F] [--state-dir DIR] [--socket S] [--interval S]
                                  [--voters N --seed S --speed X --no-faults]   (simulator settings only)
    ballotbox committee ACTION --role R (--pin-file F | --pin-stdin) [--state-dir DIR | --socket S]
                                  [--sheet-removed yes|no] [--json]

`service run scanner` is the units' ExecStart (firmware/trust/release.py): firmware.scanner.run does the
work; this module builds what it runs on. With the simulator's settings (kind "sim") the devices are the
twins of a simulated room (simulator.room) kept in STATE/world/, as `simulate --state-dir` keeps its day.

`committee` exits 0 when the box did it, 1 when the box refused (wrong PIN, a locked role, an action the
polls do not allow now, a device that failed), 2 when the request did not reach a service (none running,
a wrong socket) or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from firmware.errors import EXIT_CHECK_FAILED, EXIT_OK, UserError

SERVICE = "scanner"


def add_run_options(srun: argparse.ArgumentParser) -> None:
    """The scanner's options of `service run` (the other services ignore none of them: they refuse)."""
    srun.add_argument("--state-dir", type=Path, default=None,
                      help="the box's state directory (default: the settings' data_dir)")
    srun.add_argument("--socket", type=Path, default=None,
                      help="the committee's control socket (default STATE/device/control/scanner.sock)")
    srun.add_argument("--retry-cap", type=float, default=None, metavar="SECONDS",
                      help="uploader: the longest wait between two tries after failures (default 300)")
    sim = srun.add_argument_group("simulator settings only (kind \"sim\"): the simulated room's day")
    sim.add_argument("--voters", type=int, default=None, help="voters of a new simulated day (default 20)")
    sim.add_argument("--seed", type=int, default=None, help="seed of a new simulated day (default 7)")
    sim.add_argument("--speed", type=float, default=None, help="station seconds per wall second (default 600)")
    sim.add_argument("--no-faults", action="store_true", help="no paper-path faults in the simulated feeder")


def add_parsers(sub: Any) -> None:
    from firmware.scanner.committee import ACTIONS

    committee = sub.add_parser("committee", help="the committee's actions on the running scanner service "
                               "(each with its role's PIN)")
    actions = committee.add_subparsers(metavar="ACTION")
    for action, what in ACTIONS.items():
        p = actions.add_parser(action, help=what)
        p.add_argument("--role", required=True, choices=["operator", "president", "technician"],
                       help="the role acting (its PIN is checked by the box)")
        pin = p.add_mutually_exclusive_group(required=True)
        pin.add_argument("--pin-file", type=Path, help="a file whose first line is the PIN (or card id)")
        pin.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
        where = p.add_mutually_exclusive_group()
        where.add_argument("--state-dir", type=Path, help="the box's state directory (its control socket is "
                           "STATE/device/control/scanner.sock; default: the settings' data_dir)")
        where.add_argument("--socket", type=Path, help="the service's control socket")
        p.add_argument("--settings", type=Path, default=None, help="device settings (for the default data_dir)")
        if action == "clear-fault":
            p.add_argument("--sheet-removed", required=True, choices=["yes", "no"],
                           help="yes: a sheet was taken out of the paper path (it goes back to the voter)")
        p.add_argument("--json", action="store_true", help="print the box's whole answer as JSON")
        p.set_defaults(run=_committee, action=action)


# -- committee ----------------------------------------------------------------------------------------
def _committee(args: argparse.Namespace) -> int:
    from firmware.common.control import ControlError, request, socket_path

    pin = _read_pin(args)
    path = args.socket or socket_path(_state_dir(args.state_dir, args.settings) / "device", SERVICE)
    body: dict[str, Any] = {"action": args.action, "role": args.role, "pin": pin}
    if args.action == "clear-fault":
        body["sheet_removed"] = args.sheet_removed == "yes"
    try:
        answer = request(path, body)
    except ControlError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=1))
    elif answer["ok"]:
        print(f"{args.action}: {answer['message']}")
    else:
        print(f"ballotbox: {args.action} refused ({answer.get('error')}): {answer['message']}", file=sys.stderr)
    if answer["ok"]:
        return EXIT_OK
    if answer.get("error") in ("bad_request", "unknown_action"):
        return 2
    return EXIT_CHECK_FAILED


def _read_pin(args: argparse.Namespace) -> str:
    if args.pin_stdin:
        pin = sys.stdin.readline().strip()
        source = "standard input"
    else:
        try:
            text = args.pin_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"--pin-file {args.pin_file}: no such file; give the file holding the PIN") from None
        except IsADirectoryError:
            raise UserError(f"--pin-file {args.pin_file}: is a folder; give the file holding the PIN") from None
        except UnicodeDecodeError:
            raise UserError(f"--pin-file {args.pin_file}: not text; its first line must be the PIN") from None
        pin = (text.splitlines() or [""])[0].strip()
        source = f"--pin-file {args.pin_file}"
    if not pin:
        raise UserError(f"{source}: no PIN; give the role's PIN on the first line")
    if len(pin) > 128:
        raise UserError(f"{source}: {len(pin)} characters is not a PIN or card id")
    return pin


def _state_dir(given: Path | None, settings_path: Path | None) -> Path:
    if given is not None:
        return given
    from config.device import DEFAULT_DEVICE, DeviceSettingsError, load_device_settings

    try:
        return Path(load_device_settings(settings_path or DEFAULT_DEVICE).data_dir)
    except DeviceSettingsError as exc:
        raise UserError(str(exc)) from None


# -- service run scanner ------------------------------------------------------------------------------
def run_scanner(args: argparse.Namespace) -> int:
    from ballotbox.transmission_cli import receipt_key_for
    from config.device import DEFAULT_DEVICE, DeviceSettingsError, load_device_settings
    from firmware.common.control import ControlError, ControlServer, socket_path
    from firmware.common.i18n import Messages
    from firmware.common.identity import load_or_provision
    from firmware.common.roles import AccessControl, AccessError, load_access_file
    from firmware.common.selftest import DayCheckSettings
    from firmware.scanner.event_log import open_scanner_log
    from firmware.scanner.run import PROBE_INTERVAL_S, ScannerRun
    from firmware.scanner.service import ScannerService
    from firmware.scanner.store import ScannerStore
    from firmware.trust.signing import TEST_RECEIVER_PUBLIC_KEY
    from firmware.trust.watchdog import SystemdNotifier

    refuse_options(args, "scanner (it runs until SIGTERM)", ("cycles", "retry_cap"))
    try:
        settings = load_device_settings(args.settings or DEFAULT_DEVICE)
    except DeviceSettingsError as exc:
        raise UserError(str(exc)) from None
    interval = PROBE_INTERVAL_S if args.interval is None else args.interval
    if interval <= 0:
        raise UserError(f"--interval {interval:g}: give a positive number of seconds")
    sim_options = [f"--{n.replace('_', '-')}" for n in ("voters", "seed", "speed") if getattr(args, n) is not None]
    sim_options += ["--no-faults"] if args.no_faults else []
    if settings.kind != "sim" and sim_options:
        raise UserError(f"{' '.join(sim_options)}: only with the simulator's settings (kind \"sim\"); "
                        f"{args.settings} is a {settings.kind} box")
    if args.speed is not None and not 1 <= args.speed <= 100000:
        raise UserError(f"--speed {args.speed:g}: give 1 to 100000 station seconds per wall second")
    if args.voters is not None and not 1 <= args.voters <= 5000:
        raise UserError(f"--voters {args.voters}: give 1 to 5000 voters")
    state_dir = args.state_dir or Path(settings.data_dir)
    if state_dir.exists() and not state_dir.is_dir():
        raise UserError(f"--state-dir {state_dir}: is a file; give the box's state directory")
    device_dir = state_dir / "device"
    device_dir.mkdir(parents=True, exist_ok=True)
    lock = _single_instance(device_dir)  # before the store, the log or the room is touched
    election, election_path = _election(settings.kind, device_dir, state_dir)
    messages = Messages.for_language(election.station.language)
    identity = load_or_provision(device_dir, settings.device_id)

    room = None
    if settings.kind == "sim":
        from simulator.credentials import provision_test_pins
        from simulator.day import FaultRates
        from simulator.room import DEFAULT_SPEED, ServiceRoom, room_parameters
        from simulator.world import WorldError

        provision_test_pins(device_dir)  # TEST ONLY PINs, as simulate's box has them
        try:
            day = room_parameters(state_dir, args.voters, args.seed, election_path)
            room = ServiceRoom(state_dir, election, voters=day["voters"], seed=day["seed"],
                               speed=args.speed or DEFAULT_SPEED,
                               faults=FaultRates(0, 0, 0, 0) if args.no_faults else FaultRates())
        except WorldError as exc:
            raise UserError(str(exc)) from None
        devices = room.devices
    else:
        from hal.devices import build_pi_devices
        from hal.errors import HalError

        try:
            devices = build_pi_devices(settings)
        except HalError as exc:
            raise UserError(f"service scanner: cannot open the devices: {exc}") from None
    try:
        try:
            pins = load_access_file(device_dir)
        except AccessError as exc:
            raise UserError(str(exc)) from None
        store = ScannerStore.for_election(device_dir / "scanner.sqlite", election)
        access = AccessControl(pins, devices.clock, store.log_event)
        log = open_scanner_log(device_dir, identity, devices.clock.now, store)
        svc = ScannerService(election, devices, store, messages, identity, on_report=_report_saver(device_dir),
                             access=access, day_check_settings=DayCheckSettings.from_device(settings, state_dir))
        if settings.kind == "sim":
            svc.test_type = "simulation"
        try:
            server = ControlServer(args.socket or socket_path(device_dir, SERVICE))
        except (ControlError, OSError) as exc:
            raise UserError(f"service scanner: the control socket: {exc}") from None
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        run = ScannerRun(svc, server, SystemdNotifier(), probe_interval_s=interval, say=_say(SERVICE),
                         receipt_key=receipt_key_for(state_dir, None, fallback=TEST_RECEIVER_PUBLIC_KEY
                                                     if settings.kind == "sim" else None))
        try:
            run.boot()
            if room is not None:
                room.start(server.path)
            print(f"scanner: station {election.station.code}, polls {svc.polls.state.value}, committee socket "
                  f"{server.path}", flush=True)
            run.loop(stop)
        finally:
            server.close()
            if room is not None:
                room.stop()
            print(f"scanner: stopped at a ballot boundary: {run.status_line()}", flush=True)
            log.release()  # not log.close(): the day goes on at the next start
            store.close()
        if room is not None and room.error:
            print(f"scanner: the simulated room stopped: {room.error}", file=sys.stderr)
            return EXIT_CHECK_FAILED
        return EXIT_OK
    finally:
        devices.close()
        lock.close()


def _single_instance(device_dir: Path) -> Any:
    """An exclusive lock on DEVICE/scanner.lock for as long as the service runs (released by the kernel when
    the process dies, even by SIGKILL): a second scanner service on the same box is refused."""
    import fcntl

    f = open(device_dir / f"{SERVICE}.lock", "a+")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise UserError(f"{device_dir}: a scanner service is already running on this state directory; stop it "
                        "first (systemctl stop ballotbox-scanner)") from None
    return f


# -- service run uploader -----------------------------------------------------------------------------
def run_uploader(args: argparse.Namespace) -> int:
    from firmware.common.control import socket_path
    from firmware.common.i18n import Messages
    from firmware.common.transmission.remote_outbox import RemoteOutbox
    from firmware.common.transmission.upload_service import UploadService
    from firmware.common.transmission.uploader import (
        EndpointError,
        RetryPolicy,
        Uploader,
        parse_endpoint,
    )
    from firmware.trust.package import installed_package
    from firmware.trust.signing import TrustError
    from firmware.trust.watchdog import SystemdNotifier

    refuse_options(args, "uploader", ("voters", "seed", "speed", "no_faults", "cycles"))
    if args.interval is not None and args.interval <= 0:
        raise UserError(f"--interval {args.interval:g}: give a positive number of seconds")
    state_dir = _state_dir(args.state_dir, args.settings)
    device_dir = state_dir / "device"
    try:
        installed = installed_package(device_dir) if device_dir.is_dir() else None
        if installed is None:
            raise UserError(f"{device_dir}: no election package installed: the uploader sends to the receiver it "
                            "names; provision the box first (ballotbox provision --package FILE --station CODE "
                            "--state-dir DIR)")
        receipt_key = installed.receiver_public_key()
        endpoint = parse_endpoint(installed.endpoint, installed.pin_sha256)
    except (TrustError, EndpointError) as exc:
        raise UserError(f"{device_dir}: {exc}") from None
    from config.election import load_election

    messages = Messages.for_language(load_election(installed.election_path).station.language)
    outbox = RemoteOutbox(args.socket or socket_path(device_dir, SERVICE))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    say = _say("uploader")
    if args.retry_cap is not None and not 0 < args.retry_cap <= 3600:
        raise UserError(f"--retry-cap {args.retry_cap:g}: give 0 to 3600 seconds (above 0)")
    policy = RetryPolicy() if args.retry_cap is None else RetryPolicy(cap_s=args.retry_cap,
                                                                       base_s=min(2.0, args.retry_cap))
    with Uploader(outbox, endpoint, messages, receipt_key=receipt_key, sleep=stop.wait, policy=policy) as uploader:
        service = UploadService(uploader, SystemdNotifier(), say=say,
                                idle_s=5.0 if args.interval is None else args.interval)
        say(f"station {installed.station}: sending the scanner's outbox ({outbox.socket_path}) to "
            f"{endpoint.base_url}")
        service.loop(stop)
    say(f"stopped: {service.status}")
    return EXIT_OK


def refuse_options(args: argparse.Namespace, name: str, options: tuple[str, ...]) -> None:
    """`service run NAME` with an option of another service: refused, naming it (never silently ignored)."""
    given = [f"--{n.replace('_', '-')}" for n in options if getattr(args, n, None) not in (None, False)]
    if given:
        raise UserError(f"{' '.join(given)}: not an option of the {name} service; see `ballotbox service run "
                        "--help`")


def _say(service: str) -> Any:
    return lambda line: print(f"{service}: {line}", flush=True)


def _election(kind: str, device_dir: Path, state_dir: Path) -> tuple[Any, Path]:
    """The installed package's election; a simulated box without a package runs its day's (or the sample)."""
    from config.election import SAMPLE_ELECTION, ElectionError, load_election
    from firmware.trust.package import installed_package

    installed = installed_package(device_dir)
    if installed is not None:
        path = installed.election_path
    elif kind == "sim":
        from simulator.world import WorldError, read_day_file

        try:
            path = Path(read_day_file(state_dir / "world")["election"])
        except WorldError:
            path = SAMPLE_ELECTION
    else:
        raise UserError(f"{device_dir}: no election package installed; the technician provisions the box first "
                        "(ballotbox provision --package FILE --station CODE --state-dir DIR)")
    try:
        return load_election(path), path.resolve()
    except ElectionError as exc:
        raise UserError(str(exc)) from None


def _report_saver(device_dir: Path) -> Any:
    """Each report the service prints is kept as data too (DEVICE/reports/KIND-report.json)."""
    from firmware.common.reports import report_to_json

    folder = device_dir / "reports"

    def save(kind: str, report: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{kind}-report.json.part"
        tmp.write_text(json.dumps(report_to_json(report), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        tmp.replace(folder / f"{kind}-report.json")
    return save

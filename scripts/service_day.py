"""A simulated day under `ballotbox service run scanner`, as systemd would run it, with the committee's
steps over the control socket (the test PINs), then the box's tallies against the physical box.

    python scripts/service_day.py --state-dir /tmp/svc-day [--voters 20] [--seed 7] [--speed 600]

Prints the wall time, the ballots counted and returned, the outbox line and the differences (none: exit 0).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.election import SAMPLE_ELECTION, load_election
from firmware.common.control import ControlError, request, socket_path
from simulator.credentials import TEST_PINS
from simulator.room import check_day, voters_done

PINS = {role.value: pin for role, pin in TEST_PINS.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", type=Path, required=True, help="a new, empty state directory")
    p.add_argument("--voters", type=int, default=20)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--speed", type=float, default=600.0)
    args = p.parse_args()
    state = args.state_dir
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ballotbox", "service", "run", "scanner", "--state-dir", str(state),
                             "--voters", str(args.voters), "--seed", str(args.seed), "--speed", str(args.speed)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def ask(action: str, role: str) -> dict:
        answer = request(socket_path(state / "device", "scanner"), {"action": action, "role": role,
                                                                     "pin": PINS[role]})
        if not answer["ok"]:
            raise SystemExit(f"{action}: {answer['message']}")
        return answer

    while True:
        try:
            ask("status", "operator")
            break
        except ControlError:
            if proc.poll() is not None:
                raise SystemExit(proc.stdout.read() if proc.stdout else "the service stopped") from None
            time.sleep(0.1)
    for action, role in (("self-test", "technician"), ("zero-report", "operator"), ("open", "president")):
        ask(action, role)
    while voters_done(state) < args.voters:
        time.sleep(0.2)
    closed = ask("close", "president")["status"]
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    differences = check_day(state, load_election(SAMPLE_ELECTION))
    print(f"wall {time.monotonic() - started:.1f} s, service exit {proc.returncode}; cast {closed['cast']}, "
          f"returned {closed['returned']}; outbox: {closed['outbox']}")
    print("TALLIES AGREE with the physical box" if not differences else "DIFFERENCES: " + "; ".join(differences))
    return 0 if not differences and proc.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

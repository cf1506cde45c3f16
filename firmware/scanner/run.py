"""The scanner service as it runs on the box under systemd (`ballotbox service run scanner`).

    run = ScannerRun(service, server, notifier)
    run.boot()          # as after a power cut: ScannerService.recover_at_boot, the same as `simulate --resume`
    run.loop(stop)      # until `stop` is set (SIGTERM): ballots, turnout, tamper, the committee, the watchdog

The loop takes the next ballot from the feeder while the polls are open (`process_ballot`, which also
reports turnout when an hour is due and reads the lid and seal), and between two ballots answers the
committee's requests from the control channel (firmware.common.control): each needs its role's PIN
(firmware.common.roles). The service never opens, pauses, resumes or closes the polls by itself; after
a power cut open polls come back paused (recover_at_boot) for the president to resume.

systemd (Type=notify, WatchdogSec): READY=1 once the box has recovered, listens for the committee and its
devices answer; WATCHDOG=1 from the loop only while the last probe of the devices was healthy, so a
device gone quiet - or a loop that hangs - starves the watchdog and systemd restarts the service (which
recovers as after a power cut). A paper-path fault waiting for the operator is not a device failure: the
feeder is left out of the probe until it is cleared. STATUS= says the polls, the ballots counted and what
is wrong. Outside systemd (no NOTIFY_SOCKET) the notifications are no-ops.

A stop (SIGTERM) is taken at a ballot boundary: a cycle in progress runs to its end first.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.common.control import ControlServer, Request
from firmware.common.roles import AccessLocked, AccessRefused, Credential, Role
from firmware.common.transmission.receipts import receipt_problem
from firmware.common.transmission.remote_outbox import entry_to_json
from firmware.common.transmission.uploader import committee_status, describe_entry
from firmware.scanner.committee import ACTIONS
from firmware.scanner.reporting import PrintFailed
from firmware.scanner.service import (
    VOTER_DECISION_TIMEOUT_S,
    PollsError,
    ScannerService,
)
from firmware.scanner.states import PollsState
from firmware.scanner.store import StoreError
from firmware.trust.watchdog import Notifier
from hal.errors import DeviceStatus, HalError

IDLE_WAIT_S = 0.5  # station seconds the loop waits at the feeder's entry before it looks at the committee again
PROBE_INTERVAL_S = 10.0  # wall seconds between device probes: a third of WatchdogSec (30 s)
FEED_INTERVAL_S = 1.0  # wall seconds between two WATCHDOG=1
AWAIT_S = 0.05  # wall seconds the loop sleeps while nothing can move (a fault, a question at boot)
# The longest a ballot's cycle may take (wall): the voter has 60 s to choose cast or return, the motors and the
# reading a few more. Longer than WatchdogSec (30 s), so while a cycle runs the watchdog is fed from a thread
# beside the loop - and only until this bound: a cycle that hangs past it starves the watchdog.
MAX_CYCLE_S = VOTER_DECISION_TIMEOUT_S + 30.0



@dataclass
class Health:
    healthy: bool = False
    status: str = "scanner: starting"
    probed_at: float | None = None


class ScannerRun:
    def __init__(self, service: ScannerService, server: ControlServer | None, notifier: Notifier, *,
                 probe_interval_s: float = PROBE_INTERVAL_S, wall: Callable[[], float] = time.monotonic,
                 say: Callable[[str], None] = print, receipt_key: Ed25519PublicKey | None = None) -> None:
        self.svc = service
        self.server = server
        self.notify = notifier
        self.probe_interval_s = probe_interval_s
        self.wall = wall
        self.say = say  # one line per event, to the journal (stdout under systemd)
        self.receipt_key = receipt_key  # the receiver's, from the election package: what a receipt must verify with
        self.health = Health()
        self.ready = False
        self.recovery: list[tuple[str, str]] = []
        self.awaiting_operator = False  # a sheet was being cleared at the power cut: the operator must say
        self._fed_at: float | None = None
        self._status_sent = ""
        self._cycle_started: float | None = None  # wall time a ballot's cycle began, while it runs

    # -- start --------------------------------------------------------------------------------------
    def boot(self) -> list[tuple[str, str]]:
        """Recover as after a power cut. When a paper-path fault was being cleared at the cut, recovery
        waits for the operator's answer (`clear-fault`); everything else is decided from the sensors."""
        try:
            self.recovery = self.svc.recover_at_boot()
        except PollsError as exc:
            self.awaiting_operator = True
            self.say(f"recovery waits for the operator: {exc}")
            return []
        for code, words in self.recovery:
            self.say(f"recovery: {code}: {words}")
        return self.recovery

    # -- the loop -----------------------------------------------------------------------------------
    def loop(self, stop: threading.Event) -> None:
        beside = threading.Thread(target=self._feed_during_cycles, args=(stop,), name="watchdog", daemon=True)
        beside.start()
        while not stop.is_set():
            self.step()
        beside.join(timeout=2 * FEED_INTERVAL_S)

    def _feed_during_cycles(self, stop: threading.Event) -> None:
        while not stop.wait(FEED_INTERVAL_S):
            self.cycle_beat()

    def cycle_beat(self) -> bool:
        """WATCHDOG=1 while a ballot's cycle runs (the loop cannot feed then: the voter may take a minute to
        choose), if the devices were healthy and the cycle is within MAX_CYCLE_S. Whether it fed."""
        started = self._cycle_started
        if started is None or not self.health.healthy or self.wall() - started > MAX_CYCLE_S:
            return False
        self.notify.notify("WATCHDOG=1")
        return True

    def step(self) -> None:
        """One turn: the committee's requests, the watchdog, then one ballot (or a short wait)."""
        if self.server is not None:
            for request in self.server.pending():
                request.answer(self.handle(request))
        self._watchdog()
        if self.awaiting_operator:  # nothing moves until the operator has answered
            time.sleep(AWAIT_S)
            return
        if self.svc.fault is not None:  # the paper path waits for the operator; the hours and the lid do not
            self.svc.report_due_turnout()
            self.svc.watch_tamper()
            time.sleep(AWAIT_S)
            return
        if self.svc.polls.state != PollsState.OPEN:  # no ballot is taken in; a returned sheet, turnout, the lid
            self.svc.process_ballot(wait_s=0)
            time.sleep(AWAIT_S)
            return
        self._cycle_started = self.wall()
        try:
            result = self.svc.process_ballot(wait_s=IDLE_WAIT_S)
        finally:
            self._cycle_started = None
        if result is not None and result.fault is not None:
            self.say(f"paper path: {result.fault} ({result.state.value}): the operator clears it")

    # -- the committee --------------------------------------------------------------------------------
    def handle(self, request: Request) -> dict[str, Any]:
        body, action = request.body, request.action
        peer = request.peer
        if action.startswith("outbox-"):
            return self._outbox(request)
        who = f"pid {peer.pid} uid {peer.uid} gid {peer.gid}" if peer else "peer unknown"
        answer = self._answer(action, body)
        self.svc.store.log_event("control.request", self.svc.d.clock.now(), {
            "action": action[:40], "result": answer.get("error", "ok"),
            **({"pid": peer.pid, "uid": peer.uid, "gid": peer.gid} if peer else {})})
        self.say(f"committee {action!r} from {who}: {answer.get('error', 'ok')}: {answer['message']}")
        return answer

    def _answer(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        if action not in ACTIONS:
            return _refused("unknown_action", f"no such action {action!r}; give one of {', '.join(ACTIONS)}")
        try:
            credential = Credential(Role(str(body.get("role"))), str(body.get("pin", "")))
        except ValueError:
            return _refused("bad_request", f"role {body.get('role')!r}: give operator, president or technician")
        try:
            message = getattr(self, "_do_" + action.replace("-", "_"))(credential, body)
        except AccessLocked as exc:
            return _refused("locked", str(exc))
        except AccessRefused as exc:
            return _refused("refused", str(exc))
        except PollsError as exc:
            return _refused("not_allowed", str(exc))
        except (PrintFailed, HalError) as exc:
            return _refused("device", f"{exc}; fix the device and try again")
        except StoreError as exc:
            return _refused("failed", f"the store refused: {exc}; call the technician")
        except Exception as exc:  # noqa: BLE001 - a person's action that fails must not take the box down
            self.say(f"committee {action!r} FAILED: {type(exc).__name__}: {exc}")
            return _refused("failed", f"{action} failed ({type(exc).__name__}: {exc}); call the technician")
        return {"ok": True, "message": message, "status": self.status()}

    def _do_self_test(self, cred: Credential, body: dict[str, Any]) -> str:
        results = self.svc.self_test(credential=cred)
        failed = [r for r in results if not r.ok]
        if failed:
            return "self-test FAILED: " + "; ".join(f"{r.device}: {r.detail}" for r in failed)
        return f"self-test passed ({len(results)} checks)"

    def _do_zero_report(self, cred: Credential, body: dict[str, Any]) -> str:
        if self.svc.polls.state == PollsState.SETUP:
            if not self.svc.self_test_results:
                raise PollsError("run the self-test first (committee self-test --role technician)")
            self.svc.configure()
        self.svc.print_zero_report(credential=cred)
        return "zero report printed" if self.svc.zero_report_printed else \
            "zero report printed, but it is not zero: opening stays refused (call the technician)"

    def _do_open(self, cred: Credential, body: dict[str, Any]) -> str:
        self.svc.open_polls(credential=cred)
        return "polls open"

    def _do_pause(self, cred: Credential, body: dict[str, Any]) -> str:
        self.svc.pause(credential=cred)
        return "voting paused"

    def _do_resume(self, cred: Credential, body: dict[str, Any]) -> str:
        if self.awaiting_operator:
            raise PollsError("the operator must first say where the sheet being cleared at the power cut went "
                             "(committee clear-fault --role operator --sheet-removed yes|no)")
        self.svc.resume(credential=cred)
        return "voting resumed"

    def _do_close(self, cred: Credential, body: dict[str, Any]) -> str:
        self.svc.close_polls(credential=cred)
        return "polls closed; results signed into the outbox and the results report printed"

    def _do_reprint(self, cred: Credential, body: dict[str, Any]) -> str:
        self.svc.reprint_results(credential=cred)
        return "results report printed again"

    def _do_clear_fault(self, cred: Credential, body: dict[str, Any]) -> str:
        removed = body.get("sheet_removed")
        if not isinstance(removed, bool):
            raise PollsError("say whether a sheet was taken out of the paper path (--sheet-removed yes|no)")
        if self.awaiting_operator:
            self.recovery = self.svc.recover_at_boot(ask_operator=lambda question: removed, credential=cred)
            self.awaiting_operator = False
            return "recovered: " + "; ".join(words for _, words in self.recovery)
        fault = self.svc.fault
        if fault is None:
            raise PollsError("there is no paper-path fault to clear")
        self.svc.clear_fault(removed, credential=cred)
        return f"{fault} cleared"

    def _do_status(self, cred: Credential, body: dict[str, Any]) -> str:
        if self.svc.access is not None:
            self.svc.access.authorize("status", cred)
        return self.status_line()

    # -- the uploader service (firmware.common.transmission.remote_outbox) ----------------------------------
    def _outbox(self, request: Request) -> dict[str, Any]:
        """The uploader's requests: only from a process of the service's own user (SO_PEERCRED), and an
        acknowledgement only with a receipt that verifies with the election package's receiver key. Not
        logged one by one (the uploader asks every few seconds); a refusal is."""
        body, store, now = request.body, self.svc.store, self.svc.d.clock.now()
        if request.peer is None or request.peer.uid != os.getuid():
            self.svc.store.log_event("control.request", now, {"action": request.action[:40], "result": "refused", **(
                {"pid": request.peer.pid, "uid": request.peer.uid, "gid": request.peer.gid} if request.peer else {})})
            return _refused("refused", "the outbox is for the uploader service, running as the scanner's user")
        try:
            if request.action == "outbox-unsent":
                entries = store.entries()
                unsent = [e for e in entries if e.receipt is None and not e.given_up]
                return {"ok": True, "message": "", "entries": [entry_to_json(e) for e in unsent],
                        "summary": [describe_entry(e, self.svc.msg) for e in unsent]
                        + committee_status(entries, self.svc.msg)[-1:]}
            doc_hash, at = str(body["hash"]), datetime.fromisoformat(str(body["at"]))
            if request.action == "outbox-acknowledge":
                problem = "no receiver key in the election package" if self.receipt_key is None else \
                    receipt_problem(body.get("receipt"), doc_hash, self.receipt_key)
                if problem is not None:
                    return _refused("refused", f"not an acknowledgement: {problem}")
                store.acknowledge(doc_hash, body["receipt"], at)
                self.say(f"outbox: {doc_hash[:12]} acknowledged, receipt {body['receipt'].get('receipt_id', '')[:8]}")
            elif request.action == "outbox-failure":
                store.note_failure(doc_hash, str(body.get("error", ""))[:500], at, give_up=body.get("give_up") is True)
            else:
                return _refused("unknown_action", f"no such outbox action {request.action!r}")
        except (KeyError, TypeError, ValueError) as exc:
            return _refused("bad_request", f"{request.action}: {type(exc).__name__}: {exc}")
        except StoreError as exc:
            return _refused("failed", f"the store refused: {exc}")
        return {"ok": True, "message": "done"}

    # -- what the box says about itself -----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        counts = self.svc.store.counts()
        return {"polls": self.svc.polls.state.value, "station_time": self.svc.d.clock.now().isoformat(),
                "cast": dict(counts.cast), "returned": dict(counts.returned), "fault": self.svc.fault,
                "awaiting_operator": self.awaiting_operator, "devices_ok": self.health.healthy,
                "devices": self.health.status, "recovery": [code for code, _ in self.recovery],
                "outbox": committee_status(self.svc.store.entries(), self.svc.msg)[-1]}

    def status_line(self) -> str:
        counts = self.svc.store.counts()
        cast = ", ".join(f"{style} {n}" for style, n in sorted(counts.cast.items()))
        line = f"polls {self.svc.polls.state.value}; ballots counted: {cast}"
        if self.awaiting_operator:
            line += "; WAITING for the operator: where did the sheet being cleared at the power cut go?"
        elif self.svc.fault is not None:
            line += f"; paper path: {self.svc.fault}, call the operator"
        return line + ("" if self.health.healthy else f"; DEVICES: {self.health.status}")

    # -- systemd ------------------------------------------------------------------------------------
    def _watchdog(self) -> None:
        now = self.wall()
        if self.health.probed_at is None or now - self.health.probed_at >= self.probe_interval_s:
            self.health = self._probe(now)
            if not self.health.healthy:
                self.say(f"devices: {self.health.status} (watchdog not fed)")
        if self.health.healthy:
            if not self.ready:
                self.notify.notify("READY=1")
                self.ready = True
                self.say("ready: " + self.status_line())
            if self._fed_at is None or now - self._fed_at >= FEED_INTERVAL_S:
                self.notify.notify("WATCHDOG=1")
                self._fed_at = now
        status = self.status_line()[:200]
        if status != self._status_sent:
            self.notify.notify(f"STATUS={status}")
            self._status_sent = status

    def _probe(self, now: float) -> Health:
        try:
            statuses = list(self.svc.d.self_test())
        except Exception as exc:  # noqa: BLE001 - a driver that raises is a device that does not answer
            return Health(False, f"device probe failed: {type(exc).__name__}: {exc}"[:200], now)
        if self.svc.fault is not None or self.awaiting_operator:
            statuses = [s for s in statuses if s.device != "feeder"]  # the operator's, not the watchdog's
        failing: list[DeviceStatus] = [s for s in statuses if not s.ok]
        if failing:
            return Health(False, "; ".join(f"{s.device}: {s.detail}" for s in failing)[:200], now)
        return Health(True, f"{len(statuses)} devices ok", now)


def _refused(error: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": error, "message": message}

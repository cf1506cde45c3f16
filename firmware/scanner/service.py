"""The scanner service: feeder, camera, OMR, voter panel, printer, store, reports.

Driven by the two state tables of firmware.scanner.states: an event fires a transition, the transition's
actions run here (`_do_<action>`), and an action may produce the next event. Secrecy rules kept here:
the cast-vote record goes to the store with no id, time or image; events logged name what happened to
the device, never what a ballot said.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from config.election import Election
from firmware.common import failpoints
from firmware.common.i18n import Messages
from firmware.common.identity import DeviceIdentity
from firmware.common.reports import SignedResults
from firmware.common.roles import AccessControl, Credential, Role
from firmware.common.selftest import DayCheckSettings, day_checks, software_status
from firmware.common.transmission.documents import ELECTION_REPORT, SignedDocument
from firmware.scanner import documents as docs
from firmware.scanner.reporting import print_report, results_report, zero_report
from firmware.scanner.states import (
    BallotEvent,
    BallotState,
    PollsEvent,
    PollsState,
    StateMachine,
    TransitionRefused,
    ballot_machine,
    polls_machine,
)
from firmware.scanner.store import Resolution, ScannerStore, StoreError
from firmware.scanner.tally import ContestTally, tally
from firmware.trust.release import SlotCheck, check_running_release
from hal.camera import CaptureError
from hal.clock import station_time
from hal.devices import DeviceSet
from hal.errors import DeviceStatus, HalError
from hal.feeder import BoxFull, CoverOpen, DoubleSheet, FeederError, PaperJam
from hal.panel import PanelVerdict, VoterChoice
from hal.switches import Indicator
from omr.interpret import interpret
from omr.types import Interpretation, Verdict

VOTER_DECISION_TIMEOUT_S = 60.0
# The seal and lid are read at most once a second of the idle loop: a lid stays open for minutes, and each
# debounced read costs the switches' debounce time (30 ms on the Pi) before the next sheet is taken in.
TAMPER_POLL_S = 1.0

# feeder exception -> (fault name, ballot-table event); the first matching class wins
_FEEDER_FAULTS: dict[type[FeederError], tuple[str, BallotEvent]] = {
    DoubleSheet: ("double_sheet", BallotEvent.DOUBLE),
    BoxFull: ("box_full", BallotEvent.BOX_IS_FULL),
    CoverOpen: ("cover_open", BallotEvent.COVER_OPENED),
    PaperJam: ("paper_jam", BallotEvent.JAM),
}


class PollsError(RuntimeError):
    """A polls action refused; the message says why and what to do."""


@dataclass
class CycleResult:
    """What one pass of a sheet through the feeder came to (in memory only; never stored or logged)."""

    state: BallotState  # where the ballot state machine stopped: WAITING, or a fault state
    cast: bool = False
    returned: bool = False
    interpretation: Interpretation | None = None
    fault: str | None = None


@dataclass
class _Ballot:
    machine: StateMachine
    interpretation: Interpretation | None = None
    token: object | None = None
    image: object | None = None
    fault: str | None = None
    cast: bool = False
    returned: bool = False
    sheet_removed: bool = True  # operator's answer when clearing a fault: a sheet was taken out of the path
    error: str | None = None  # what failed, for the operator (never holds the ballot's content)
    drop_started: bool = False


@dataclass
class Usage:
    """Art. 26: time needed to use the device - aggregated, never per ballot."""

    cycles: int = 0
    seconds: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    unread_returned: int = 0  # sheets handed back whose ballot style could not be read (unreadable, foreign)


class ScannerService:
    def __init__(self, election: Election, devices: DeviceSet, store: ScannerStore, messages: Messages,
                 identity: DeviceIdentity, on_report: Callable[[str, object], None] | None = None,
                 access: AccessControl | None = None, day_check_settings: DayCheckSettings | None = None,
                 installed_files: Callable[[], SlotCheck] = check_running_release) -> None:
        self.election = election
        self.identity = identity
        self.d = devices
        self.store = store
        self.msg = messages
        self.polls = polls_machine(PollsState(store.polls_state()))
        self.usage = Usage()
        from firmware.cec.ballots import references_for
        self.references = references_for(election)  # printed ballots, for the ink-outside-boxes check
        from omr.second_opinion import MarkClassifier
        # the certified model, read once now (interpretation stays pure); None without a runtime: then
        # marginal boxes simply stay marginal
        self.second_opinion = MarkClassifier.load()
        # one thread beside the service's for the checks the OMR can run alongside (omr.interpret's pool):
        # the same reading, and a shorter wait for the voter on a box with cores to spare (a Pi has four)
        self._omr_pool: ThreadPoolExecutor | None = None
        self.self_test_results: list[DeviceStatus] = []
        self.day_check_settings = day_check_settings or DayCheckSettings()  # clock, video storage, network
        # the boot check of the files that run (firmware.trust.release): at the self-test and at the opening
        self.installed_files = installed_files
        self.zero_report_printed = False
        self._ballot: _Ballot | None = None
        # A returned sheet sticks out of the slot over the entry sensor until the voter takes it: until
        # the entry clears, "paper at the entry" is that sheet, not a new ballot (it must not be pulled in).
        self._await_pickup = False
        self._on_report = on_report or (lambda kind, report: None)
        self._next_turnout: datetime | None = None
        self._turnouts_all_sent = False
        # "simulation", "training", ...: the results it signs are marked as a test (NIST IsTest/TestType)
        self.test_type: str | None = None
        # the video service's final manifest hash, set before the close: printed on the results report
        self.video_manifest_sha256: str | None = None
        record = store.polls_record()
        self.opened_at: datetime | None = record.opened_at
        self.closed_at: datetime | None = record.closed_at
        # Roles (firmware.common.roles): with an AccessControl every person's action needs its PIN or card;
        # without one (a bench, a unit test) nothing is asked. A box always runs with one.
        self.access = access
        if access is not None:
            access.restore(store.events())  # a power cut does not lift a lockout
            access.on_lockout = self._access_locked
        # Tamper (lid and seal) as last logged: what the switches are compared with while the polls are open
        self._tamper_seen = {"lid": "closed", "seal": "intact"}
        for e in store.events():
            if e.kind == "tamper":
                self._tamper_seen[e.detail["switch"]] = e.detail["state"]
        self._tamper_read_at: float | None = None

    def watch_tamper(self) -> list[str]:
        """While the polls are open or paused: read the lid and seal switches; each change is logged. A lid
        opened or a seal broken sounds the alarm, shows it on the panel and suspends voting until the
        president has looked and resumes. Called from the idle loop (process_ballot); returns the changes
        as "lid:open", "seal:broken", ... (at most one read per TAMPER_POLL_S)."""
        if self.polls.state not in (PollsState.OPEN, PollsState.PAUSED):
            return []
        now_s = self.d.clock.monotonic()
        if self._tamper_read_at is not None and now_s - self._tamper_read_at < TAMPER_POLL_S:
            return []
        self._tamper_read_at = now_s
        try:
            seal = self.d.switches.read()
        except HalError as exc:  # a chattering contact: reported, never guessed either way
            self.store.log_event("tamper_switch_fault", self.d.clock.now(), {"error": exc.message})
            return []
        states = {"lid": "closed" if seal.lid_closed else "open", "seal": "intact" if seal.seal_intact else "broken"}
        changes = [f"{switch}:{state}" for switch, state in states.items() if self._tamper_seen[switch] != state]
        alarm = False
        for switch, state in states.items():
            if self._tamper_seen[switch] == state:
                continue
            self._tamper_seen[switch] = state
            self.store.log_event("tamper", self.d.clock.now(), {"switch": switch, "state": state})
            if state in ("open", "broken"):
                alarm = True
                self.d.panel.show_message(self.msg.t(f"panel.tamper.{switch}"))
        if alarm:
            self.d.switches.set_indicator(Indicator.ATTENTION, True)
            self.d.switches.beep(5)
            if self.polls.allows(PollsEvent.PAUSE):
                self._polls(PollsEvent.PAUSE)
        return changes

    def _authorize(self, action: str, credential: Credential | None) -> None:
        if self.access is not None:
            self.access.authorize(action, credential)

    def _access_locked(self, role: Role) -> None:
        self.d.switches.set_indicator(Indicator.ATTENTION, True)
        self.d.switches.beep(3)
        self.d.panel.show_message(self.msg.t("panel.access_locked", role=self.msg.t(f"role.{role.value}")))

    # ------------------------------------------------------------------------------------------
    # Polls
    # ------------------------------------------------------------------------------------------
    def self_test(self, credential: Credential | None = None) -> list[DeviceStatus]:
        """Art. 11/20: check every device; the results go on the zero report. The technician's action."""
        self._authorize("self_test", credential)
        results = self.d.self_test() + [self._mark_model_status(), self._installed_files_status()]
        results += day_checks(self.d.clock, self.election, self.msg, self.day_check_settings)
        self.self_test_results = results
        self.store.log_event("self_test", self.d.clock.now(), {"ok": all(r.ok for r in results),
                                                                "failed": [r.device for r in results if not r.ok]})
        return results

    def _mark_model_status(self) -> DeviceStatus:
        """The learned second opinion on faint marks (omr.second_opinion). Without it the box counts the
        same and no less safely - marginal boxes simply stay with the committee - so it never fails the
        self-test; the zero report says which it is."""
        from omr.second_opinion import MODEL_SHA256, MarkClassifier

        if self.second_opinion is not None:
            return DeviceStatus("mark_model", True, self.msg.t(
                "selftest.mark_model.loaded", runtime=self.second_opinion.runtime, sha=MODEL_SHA256[:12]))
        return DeviceStatus("mark_model", True, self.msg.t(
            "selftest.mark_model.unavailable", reason=MarkClassifier.unavailable_reason() or "?"))

    def _installed_files_status(self) -> DeviceStatus:
        """The installed files against the signed manifest of their release (`boot-check`); a mismatch is
        logged as tamper."""
        check = self.installed_files()
        if not check.ok:
            self._log_installed_files_mismatch(check, "self_test")
        return software_status(check, self.msg)

    def _assert_installed_files(self) -> None:
        """At the opening, the boot check once more on the files that run now: a file changed since the boot
        or the self-test keeps the polls shut, with the reason on the panel, in the log and in the refusal."""
        check = self.installed_files()
        if check.ok:
            return
        self._log_installed_files_mismatch(check, "opening")
        self.d.switches.set_indicator(Indicator.ATTENTION, True)
        self.d.panel.show_message(self.msg.t("panel.software_mismatch"))
        more = f" (and {len(check.problems) - 3} more)" if len(check.problems) > 3 else ""
        raise PollsError(f"opening refused: the installed files are not those of the signed release "
                         f"{check.version or '?'}: {'; '.join(check.problems[:3])}{more} -- flash the box again "
                         "(ballotbox install BUNDLE --root ROOT), then run the self-test")

    def _log_installed_files_mismatch(self, check: SlotCheck, when: str) -> None:
        self.store.log_event("tamper.installed_files_mismatch", self.d.clock.now(), {
            "files": list(check.mismatched[:50]),
            "reason": f"{when}: {len(check.problems)} problem(s) against the signed manifest of {check.slot}"})

    def configure(self) -> None:
        """Election loaded and self-tested: the box may print its zero report."""
        if not self.self_test_results:
            self.self_test()
        failed = [r for r in self.self_test_results if not r.ok]
        if failed:
            raise PollsError("self-test failed: " + "; ".join(f"{r.device}: {r.detail}" for r in failed)
                             + " -- fix the device and run the self-test again")
        self._polls(PollsEvent.CONFIGURED)

    def _assert_self_tested_today(self) -> None:
        """Art. 11, 20(1): the polls open only after a self-test of this day that passed, as the event log
        has it (a power cut or a restart does not stand in for the check)."""
        now = self.d.clock.now()
        tests = [e for e in self.store.events() if e.kind == "self_test"]
        if not tests:
            raise PollsError("opening refused: no self-test was run; the technician runs it first (Art. 11, 20(1))")
        last = tests[-1]
        if last.at.astimezone(now.tzinfo).date() != now.date():
            raise PollsError(f"opening refused: the last self-test was on {last.at.strftime('%Y-%m-%d')}, not today; "
                             "the technician runs it again on the election day (Art. 11)")
        if not last.detail.get("ok"):
            failed = ", ".join(last.detail.get("failed", [])) or "a device"
            raise PollsError(f"opening refused: the self-test at {last.at.strftime('%H:%M')} failed ({failed}); "
                             "fix it and run the self-test again")

    def print_zero_report(self, credential: Credential | None = None) -> None:
        self._authorize("print_report", credential)
        self._polls(PollsEvent.ZERO_REPORT)

    def open_polls(self, credential: Credential | None = None) -> None:
        self._authorize("open_polls", credential)
        if not self.zero_report_printed:
            raise PollsError("opening refused: print the zero report first and have the committee sign it (Art. 20(4))")
        self._assert_self_tested_today()
        self._assert_installed_files()
        self.store.assert_can_open()
        self._polls(PollsEvent.OPEN)
        self.d.panel.show_message(self.msg.t("panel.insert_ballot"))
        self.d.switches.set_indicator(Indicator.READY, True)

    def pause(self, credential: Credential | None = None) -> None:
        self._authorize("pause", credential)
        self._polls(PollsEvent.PAUSE)
        self.d.panel.show_message(self.msg.t("panel.polls_paused"))

    def resume(self, credential: Credential | None = None) -> None:
        self._authorize("resume", credential)
        self._polls(PollsEvent.RESUME)
        self.d.switches.set_indicator(Indicator.ATTENTION, False)
        self.d.panel.show_message(self.msg.t("panel.insert_ballot"))

    def close_polls(self, credential: Credential | None = None) -> None:
        self._authorize("close_polls", credential)
        if self._ballot is not None:
            raise PollsError(f"closing refused: a ballot is in state '{self._ballot.machine.state}'; clear it first")
        self.report_due_turnout()  # the last hour (19:00) is due at the closing itself
        self._polls(PollsEvent.CLOSE)
        self.d.switches.set_indicator(Indicator.READY, False)
        self.d.panel.show_message(self.msg.t("panel.polls_closed"))

    def reprint_results(self, credential: Credential | None = None) -> None:
        self._authorize("print_report", credential)
        self._polls(PollsEvent.RESULTS_REPORT)

    def _polls(self, event: PollsEvent) -> None:
        try:
            actions = self.polls.fire(event)
        except TransitionRefused as exc:
            raise PollsError(f"{exc}; see the day's steps in the README") from None
        # The new state is on disk before any action prints: a printer out of paper must not undo a close.
        # Its signed documents (opening, closing, results) enter the outbox in the same transaction.
        now = self.d.clock.now()
        self.store.set_polls_state(self.polls.state.value, now, documents=self._polls_documents(event, now))
        for action in actions:
            getattr(self, f"_do_{action}")(event)

    def _polls_documents(self, event: PollsEvent, now: datetime) -> list[SignedDocument]:
        if event == PollsEvent.OPEN:
            return [docs.polls_opened(self, now)]
        if event == PollsEvent.CLOSE:
            return docs.at_closing(self, now)
        return []

    def report_due_turnout(self) -> None:
        """Art. 15: at each of the election's turnout hours (11:00, 15:00, 19:00), while the polls are
        open or paused, one signed turnout document into the outbox, in the transaction of its event.
        An hour that passed while the box was off is reported as soon as it is back, with the real time."""
        if self.polls.state not in (PollsState.OPEN, PollsState.PAUSED):
            return
        now = self.d.clock.now()
        if self._turnouts_all_sent or (self._next_turnout is not None and now < self._next_turnout):
            return  # the per-ballot cost: one comparison (the event log is read only when an hour is due)
        done = {e.detail.get("hour") for e in self.store.events() if e.kind == "turnout"}
        self._next_turnout = None
        self._turnouts_all_sent = done >= set(self.election.polls.turnout_reports)
        for hour in sorted(self.election.polls.turnout_reports):
            due = station_time(self.election.date, hour)
            if hour in done:
                continue
            if now < due:
                self._next_turnout = due
                break
            counts = self.store.counts()
            self.store.log_event("turnout", now, {"hour": hour, "ballots_cast": counts.total_cast},
                                 documents=[docs.turnout(self, hour, now, counts)])
        else:
            self._turnouts_all_sent = True

    def _do_log(self, event: PollsEvent) -> None:
        self.store.log_event(f"polls_{event.value}", self.d.clock.now(), {"state": self.polls.state.value})

    def _do_print_zero_report(self, event: PollsEvent) -> None:
        report = zero_report(self)
        self._on_report("zero", report)  # saved before printing: a paper jam loses nothing
        print_report(self, report)  # raises PrintFailed: then the zero report does not count as printed
        self.zero_report_printed = report.is_zero

    def _do_record_opening(self, event: PollsEvent) -> None:
        self.opened_at = self.store.polls_record().opened_at

    def _do_record_closing(self, event: PollsEvent) -> None:
        self.closed_at = self.store.polls_record().closed_at

    def signed_results(self) -> SignedDocument | None:
        """The signed NIST election report of the closing, as the outbox holds it."""
        found = [e.document for e in self.store.entries() if e.document.kind == ELECTION_REPORT]
        return found[-1] if found else None

    def _do_print_results_report(self, event: PollsEvent) -> None:
        doc = self.signed_results()
        signed = SignedResults(doc.station, doc.hash, doc.signature_b64) if doc is not None else None
        report = results_report(self, signed_results=signed)
        self._on_report("results", report)
        print_report(self, report)

    # ------------------------------------------------------------------------------------------
    # Ballots
    # ------------------------------------------------------------------------------------------
    def process_ballot(self, wait_s: float = 1.0) -> CycleResult | None:
        """Wait up to wait_s for a sheet at the entry and take it through one full cycle.

        Returns None when no sheet came, else where the cycle ended. A fault state (jam, cover open,
        double sheet, box full) stays until the operator calls clear_fault()."""
        if self._ballot is not None:
            raise PollsError(f"the feeder is in state '{self._ballot.machine.state}': clear the fault first")
        if self._await_pickup:  # checked in any polls state: the slot may empty during a pause too
            if self.d.feeder.sensors().entry:
                self.d.clock.sleep(wait_s)
                return None
            self._await_pickup = False
        self.report_due_turnout()
        self.watch_tamper()
        if self.polls.state != PollsState.OPEN:
            return None
        if not self.d.feeder.wait_for_ballot(wait_s):
            return None
        started = self.d.clock.monotonic()
        b = self._ballot = _Ballot(ballot_machine())
        self.d.switches.set_indicator(Indicator.BUSY, True)
        try:
            self._run(BallotEvent.INSERTED)
        finally:
            self.d.switches.set_indicator(Indicator.BUSY, False)
        result = CycleResult(b.machine.state, b.cast, b.returned, b.interpretation, b.fault)
        if b.machine.state == BallotState.WAITING:
            self._ballot = None
            self.usage.cycles += 1
            self.usage.seconds += self.d.clock.monotonic() - started
            self.d.panel.show_message(self.msg.t("panel.insert_ballot"))
        return result

    @property
    def fault(self) -> str | None:
        """The paper-path fault waiting for the operator's clear_fault(), or None."""
        b = self._ballot
        return None if b is None else (b.fault or b.machine.state.value)

    def clear_fault(self, sheet_removed: bool, credential: Credential | None = None) -> None:
        """The operator has cleared a fault. `sheet_removed`: a ballot was taken out of the paper path
        (it goes back to the voter) - which also tells an interrupted drop did NOT reach the box."""
        if self._ballot is None:
            return
        self._authorize("clear_fault", credential)
        b = self._ballot
        b.sheet_removed = sheet_removed
        # a user action (VVSG 15.1), without what the operator found: that says where a ballot went
        self.store.log_event("user.action", self.d.clock.now(), {"role": "operator", "action": "fault_cleared"})
        self._run(BallotEvent.CLEARED)
        if b.machine.state == BallotState.WAITING:
            self._ballot = None
            self.d.switches.set_indicator(Indicator.ATTENTION, False)
            self.d.panel.show_message(self.msg.t("panel.insert_ballot"))

    def _run(self, event: BallotEvent | None) -> None:
        """Fire `event` and run the transition's actions in order. An action that produces an event ends
        the transition there: after a failed intent write the drop must NOT run. An action that raises
        sends the ballot to ERROR (the operator is called); nothing after it runs."""
        b = self._ballot
        assert b is not None
        while event is not None:
            actions = b.machine.fire(event)
            event = None
            for action in actions:
                failpoints.hit(f"ballot.{b.machine.state.value}.{action}")
                try:
                    event = getattr(self, f"_do_{action}")(b)
                except (HalError, StoreError, OSError, ValueError) as exc:
                    if b.machine.state == BallotState.ERROR:
                        raise  # the safe stop itself failed: nothing more can be done in software
                    b.fault = b.fault or "device_error"
                    b.error = f"{action}: {exc}"
                    event = BallotEvent.FAILED
                if event is not None:
                    break

    def _move_paper(self, b: _Ballot, motion: Callable[[], None], done: BallotEvent) -> BallotEvent:
        """Run a feeder motion; a paper-path fault becomes its event of the ballot table."""
        try:
            motion()
        except FeederError as exc:
            for kind, (fault, event) in _FEEDER_FAULTS.items():
                if isinstance(exc, kind):
                    b.fault = fault
                    return event
            raise
        return done

    def _do_take_in(self, b: _Ballot) -> BallotEvent:
        event = self._move_paper(b, self.d.feeder.take_in, BallotEvent.HELD)
        if event == BallotEvent.HELD:
            self.d.panel.show_message(self.msg.t("panel.reading"))
        return event

    def _do_capture(self, b: _Ballot) -> BallotEvent | None:
        try:
            b.image = self.d.camera.capture()
        except CaptureError:
            b.fault = "capture_failed"
            b.interpretation = Interpretation(Verdict.UNREADABLE, ("capture_failed",))
            self.store.log_event("capture_failed", self.d.clock.now(), {})
            return BallotEvent.RETURN_CHOSEN
        return None

    def _do_interpret(self, b: _Ballot) -> BallotEvent | None:
        if b.image is None:  # capture failed: already returning
            return None
        if self._omr_pool is None:  # made here, in the process that reads (never inherited across a fork)
            self._omr_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omr")
        b.interpretation = interpret(b.image.pixels, self.election, dpi=b.image.dpi,  # type: ignore[attr-defined]
                                     references=self.references, white=b.image.white_level,  # type: ignore[attr-defined]
                                     second_opinion=self.second_opinion, pool=self._omr_pool)
        b.image = None  # the image is never kept
        return BallotEvent.INTERPRETED

    def _do_show_verdict(self, b: _Ballot) -> BallotEvent:
        interp = b.interpretation
        assert interp is not None
        verdict = PanelVerdict(interp.verdict.value)
        text = self.msg.verdict(interp.verdict.value)
        self.d.panel.show_verdict(verdict, text, interp.castable)
        if interp.verdict == Verdict.FOREIGN:
            # Art. 21(10): a sheet that differs from the genuine ballots stops the voting; the president
            # takes it. The box will not take it in and pauses until the committee resumes.
            self.d.switches.set_indicator(Indicator.ATTENTION, True)
            self.d.switches.beep(3)
            self.store.log_event("foreign_ballot", self.d.clock.now(), {"reasons": [str(r) for r in interp.reasons]})
            if self.polls.allows(PollsEvent.PAUSE):
                self._polls(PollsEvent.PAUSE)
        if not interp.castable:
            return BallotEvent.RETURN_CHOSEN
        choice = self.d.panel.ask_cast_or_return(VOTER_DECISION_TIMEOUT_S)
        # No answer means no consent to cast: the ballot goes back (the voter keeps the secret).
        return BallotEvent.CAST_CHOSEN if choice == VoterChoice.CAST else BallotEvent.RETURN_CHOSEN

    def _do_write_intent(self, b: _Ballot) -> None:
        assert b.interpretation is not None
        b.token = self.store.begin_cast(b.interpretation.cast_vote_record())

    def _do_drop(self, b: _Ballot) -> BallotEvent:
        b.drop_started = True
        return self._move_paper(b, self.d.feeder.drop_into_box, BallotEvent.DROPPED)

    def _do_confirm_cast(self, b: _Ballot) -> None:
        self.store.confirm_cast(b.token)
        b.cast = True
        self.d.panel.show_message(self.msg.t("panel.cast_done"))

    def _do_abort_intent(self, b: _Ballot) -> None:
        self.store.abort_cast(b.token)
        b.token = None

    def _do_return_to_voter(self, b: _Ballot) -> BallotEvent | None:
        try:
            self.d.feeder.return_to_voter()
        except (PaperJam, CoverOpen):
            b.fault = "paper_jam"
            return BallotEvent.JAM if b.machine.state == BallotState.RETURNING else None
        self._await_pickup = True
        self.d.panel.show_message(self.msg.t("panel.take_ballot"))
        return BallotEvent.RETURNED if b.machine.state == BallotState.RETURNING else None

    def _do_record_return(self, b: _Ballot) -> None:
        self._count_return(b)

    def _count_return(self, b: _Ballot) -> None:
        """Returned ballots are counted per style of this station; a sheet that is not one (foreign, or
        unread) is counted apart in the usage figures, never against a style."""
        interp = b.interpretation
        own_styles = {s.id for s in self.election.ballot_styles}
        if interp is not None and interp.verdict != Verdict.FOREIGN and interp.style in own_styles:
            self.store.record_return(interp.style)
        else:
            self.usage.unread_returned += 1
        b.returned = True

    def _do_alert(self, b: _Ballot) -> None:
        if b.token is not None and b.drop_started:
            self.store.mark_intent_in_doubt()  # until the operator clears it, only they know where it is
        self.d.switches.set_indicator(Indicator.ATTENTION, True)
        self.d.switches.beep(2)
        fault = b.fault or "device_error"
        self.usage.faults[fault] = self.usage.faults.get(fault, 0) + 1
        self.store.log_event("feeder_fault", self.d.clock.now(), {"fault": fault, "state": b.machine.state.value})
        key = {"double_sheet": "panel.double_sheet", "box_full": "panel.box_full", "cover_open": "panel.cover_open",
               "device_error": "panel.call_operator",
               "paper_jam": "panel.paper_jam"}.get(fault, "panel.call_operator")
        self.d.panel.show_message(self.msg.t(key))

    def _do_safe_stop(self, b: _Ballot) -> None:
        """After a failure: a sheet whose drop never began goes back to the voter (no intent, or an intent
        that is void because the motor never moved); once the drop began only the operator can tell."""
        self.store.log_event("ballot_cycle_failed", self.d.clock.now(), {"step": (b.error or "").split(":")[0]})
        if b.drop_started:
            return
        if b.token is not None:
            self.store.abort_cast(b.token)
            b.token = None
        try:
            self.d.feeder.return_to_voter()
            self._await_pickup = True
        except HalError:
            pass  # stays in the path: the operator takes it out when clearing the fault

    def _do_resolve_intent(self, b: _Ballot) -> None:
        """After a jam or an open cover: an open intent is resolved by what the operator found. A sheet
        taken out of the path did not reach the box; an empty path after a drop began means it did."""
        if b.token is None:
            return
        if b.sheet_removed:
            # not a return: the voter did not take the ballot back, a fault took it out; it is fed again
            self.store.abort_cast(b.token)
        else:
            self.store.confirm_cast(b.token)
            b.cast = True
        b.token = None

    def recover_at_boot(self, ask_operator: Callable[[str], bool] | None = None,
                        credential: Credential | None = None) -> list[tuple[str, str]]:
        """Start-up after a power cut: resolve every open intent from the sensors, push out a sheet left
        in the path (not counted), and keep the polls as they were - except that open polls come back
        paused, for the committee to look at the box and resume. Nothing is opened, closed or reopened.
        Returns the decisions as (code, words) in the station's language; they are logged (codes only)
        and printed on the results report.

        An open intent is counted only if its sheet has left the path. When a paper-path fault was being
        cleared at the cut (the intent is in doubt), an empty path proves nothing - the operator may have
        the sheet in hand - and `ask_operator(question)` decides: True = the ballot was taken out."""
        decisions: list[tuple[str, str]] = []
        sensors = self.d.feeder.sensors()
        in_path = sensors.entry or sensors.imaging

        def dropped() -> bool:
            if in_path:
                return False
            if self.store.intent_in_doubt:
                if ask_operator is None:
                    raise PollsError("a ballot was being cleared from a paper-path fault at the power cut: the "
                                     "operator must say whether it was taken out before the box can go on")
                taken_out = ask_operator(self.msg.t("recovery.ask_taken_out"))
                code = "operator_taken_out" if taken_out else "operator_in_box"
                decisions.append((code, self.msg.t(f"recovery.{code}")))
                return not taken_out
            return True

        if self.store.intent_in_doubt and not in_path and ask_operator is not None:
            self._authorize("operator_decision", credential)  # before the store's recovery begins
        resolution = self.store.recover(dropped)
        if resolution is Resolution.CONFIRMED:
            decisions.append(("counted", self.msg.t("recovery.counted")))
        elif resolution is Resolution.ABORTED:
            decisions.append(("returned_intent", self.msg.t("recovery.returned_intent")))
        if sensors.imaging:  # in the rollers: pushed back out to the voter
            try:
                self.d.feeder.return_to_voter()
                self._await_pickup = True
                if resolution is not Resolution.ABORTED:
                    decisions.append(("returned_unread", self.msg.t("recovery.returned_unread")))
            except HalError:
                decisions.append(("stuck", self.msg.t("recovery.stuck")))
        elif sensors.entry:  # in the slot, outside the rollers: the voter takes it back by hand
            self._await_pickup = True
            if resolution is not Resolution.ABORTED:
                decisions.append(("returned_unread", self.msg.t("recovery.returned_unread")))
        if not decisions:
            decisions.append(("nothing_open", self.msg.t("recovery.nothing_open")))
        if self.polls.state == PollsState.OPEN:
            self.polls = polls_machine(PollsState.PAUSED)
            self.store.set_polls_state(PollsState.PAUSED.value, self.d.clock.now())
            decisions.append(("polls_paused", self.msg.t("recovery.polls_paused")))
        else:
            decisions.append(("polls_unchanged", self.msg.t("recovery.polls_unchanged", state=self.polls.state.value)))
        self.store.log_event("power_cut_recovery", self.d.clock.now(), {"decisions": [c for c, _ in decisions]})
        failpoints.hit("boot.recovered")
        return decisions

    def recover_after_power_cut(self) -> bool:
        """At start-up: resolve an intent left open by a power cut from the paper-path sensors. A sheet
        still in the path never reached the box; an empty path means the drop completed."""
        sensors = self.d.feeder.sensors()
        in_path = sensors.entry or sensors.imaging
        return self.store.recover(lambda: not in_path) is not Resolution.NOTHING_OPEN

    # ------------------------------------------------------------------------------------------
    # Results
    # ------------------------------------------------------------------------------------------
    def tallies(self) -> dict[str, ContestTally]:
        if self.polls.state not in (PollsState.CLOSED_FINAL, PollsState.TRANSMITTED):
            # VVSG 10.2.2-B / Art. 23: results exist only after the polls close
            raise PollsError("results are available only after the polls are closed")
        return tally(self.election, self.store.cast_vote_records())

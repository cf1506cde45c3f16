"""The authentication service: the desk's devices, the register, the matcher and the store, driven by
the voter state table (firmware/auth/flow.py).

    service = AuthService(register, sensor, store, clock, messages, day=election_date)
    service.open_polls()                      # opens the register, builds the 1:N gallery
    view = service.read_document(scan_text)   # DeskView(state, voter_text, committee_text, ...)
    view = service.capture()                  # repeat while view.state is CAPTURING
    view = service.committee_decides(True)    # in COMMITTEE: identified (re-identification register) or not
    service.next_voter()
    service.close_polls()                     # the desk stops; the templates and the gallery leave memory
    recovery = service.resume_polls()         # after a power cut: the polls as the store kept them, the last visit
    deletion = service.wipe(credential)       # the president's (or technician's) PIN: register and sensor wiped

The polls state crosses the secrecy wall as a plain value (`polls_open: bool` given by whoever owns
the polls, `open_polls`/`close_polls` here); the service never asks the scanner anything.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from biometrics.documents import (
    DocumentError,
    DocumentIdentity,
    parse_document,
    parse_typed_jmbg,
)
from biometrics.extract import extract
from biometrics.iso19794 import read_record
from biometrics.match import THRESHOLD, Gallery, MatchTemplate, prepare, verify
from biometrics.threads import limit_blas_threads, opencv_on_one_thread
from firmware.auth.flow import (
    FINAL_STATES,
    MAX_ATTEMPTS,
    PANEL,
    VoterEvent,
    VoterState,
    voter_machine,
)
from firmware.auth.register import (
    DeletionRecord,
    RegisterClosed,
    RegisterError,
    RegisterExtract,
    RegisterVoter,
)
from firmware.auth.store import AuthStore, LegalRecord, Visit
from firmware.common import failpoints
from firmware.common.i18n import Messages
from firmware.common.roles import (
    AccessControl,
    Credential,
    Role,
    SecretHash,
    access_events_from_log,
)
from hal.fingerprint import FingerprintError, FingerprintSensor, NoFinger

CAPTURE_TIMEOUT_S = 10.0  # the voter has ten seconds to place the finger
# 1:N: another register voter's template must beat the claimed voter's by this margin (calibrated
# score units, -log10 FMR) and pass the threshold with room, so a look-alike does not raise an alarm.
IMPERSONATION_MARGIN = 1.0


class Clock(Protocol):
    def now(self) -> dt.datetime: ...
    def monotonic(self) -> float: ...


@dataclass(frozen=True)
class DeskView:
    """What the desk shows now: the state, the two texts, and for the committee the voter in question."""

    state: VoterState
    voter_text: str
    committee_text: str
    voter_name: str | None = None
    detail: str | None = None  # e.g. the document error, for the operator


@dataclass
class _Voter:
    identity: DocumentIdentity | None = None
    voter: RegisterVoter | None = None
    attempts: int = 0
    started: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    visit: Visit = field(default_factory=Visit)  # what the store gets at the verdict, in one transaction


_VERDICT = {VoterState.AUTHENTICATED: "authenticated", VoterState.REIDENTIFIED: "reidentified",
            VoterState.REFUSED: "refused", VoterState.IMPERSONATION: "impersonation"}
assert set(_VERDICT) == FINAL_STATES  # every final state is a verdict the store records


@dataclass(frozen=True)
class DeskRecovery:
    """What the desk decided at boot after a power cut, for the committee's screen and the simulator.
    `last_*`: the latest visit the store recorded before the cut (its number counts the visits decided);
    the voter at the desk at the cut was recorded only if the committee's screen names them."""

    polls_open: bool
    visits_recorded: int
    last_verdict: str | None
    last_name: str | None
    last_register_number: int | None
    lines: tuple[str, ...]  # the committee's screen, in the station's language


def desk_access(hashes: Mapping[Role, SecretHash], clock: Clock, store: AuthStore) -> AccessControl:
    """The roles' check at the desk: the box's PIN hashes (access.json), its decisions in the auth store's
    own signed log (never the scanner's: nothing joins the two)."""
    return AccessControl(hashes, clock, lambda kind, at, detail: store.log_event(kind, {**detail,
                                                                                      "at": at.isoformat()}))


def deletion_from_log(path: Path) -> DeletionRecord | None:
    """The deletion record of the register's wipe as the desk's log has it (the last `register.wiped`), or
    None: after a power cut that came after the wipe, the register is gone and the log is what remains."""
    line = _last_logged(path, "register.wiped")
    if line is None:
        return None
    d = line["detail"]
    try:
        return DeletionRecord(dt.datetime.fromisoformat(line["at"]), int(d["records"]), int(d["templates"]),
                              str(d["register_sha256"]), int(d["sensor_templates_after"]),
                              bool(d["key_destroyed"]), int(d["sensor_templates_before"]), d.get("role"))
    except (KeyError, TypeError, ValueError) as exc:
        raise RegisterError(f"{path}: the register.wiped line lacks {exc}; check the log (ballotbox log verify)") from None


def _last_logged(path: Path, event: str) -> dict[str, Any] | None:
    """The last whole line of `event` in a log (a torn line is skipped)."""
    found = None
    try:
        lines = Path(path).read_bytes().splitlines()
    except FileNotFoundError:
        return None
    for raw in lines:
        try:
            line = json.loads(raw)
            if isinstance(line, dict) and line.get("event") == event and isinstance(line.get("detail"), dict):
                found = line
        except ValueError:
            continue
    return found


class AuthService:
    def __init__(self, register: RegisterExtract, sensor: FingerprintSensor, store: AuthStore, clock: Clock,
                 messages: Messages, day: dt.date, access: AccessControl | None = None) -> None:
        limit_blas_threads()  # the matcher as the bench measures it (biometrics/threads.py): process-wide
        self.register = register
        self.sensor = sensor
        self.store = store
        self.clock = clock
        self.msgs = messages
        self.day = day
        self.machine = voter_machine()
        self.polls_open = False
        self.deletion: DeletionRecord | None = None
        self._current = _Voter()
        self._enrolled: dict[str, list[MatchTemplate]] = {}
        self._gallery: Gallery | None = None
        # Roles (firmware.common.roles): with an AccessControl the wipe needs the president's or the
        # technician's PIN; its decisions go into this service's own log, and a lockout is rebuilt from it.
        self.access = access
        if access is not None and store.event_log is not None:
            access.restore(access_events_from_log(store.event_log.path))

    # -- polls -------------------------------------------------------------------------------------
    def open_polls(self) -> None:
        self._open_register()
        self.polls_open = True
        self.store.set_polls("opened_at", self.clock.now())
        self.store.log_event("register.opened", {"records": len(self.register), "at": self.clock.now().isoformat()})

    def resume_polls(self) -> DeskRecovery:
        """Boot after a power cut on the store the desk kept: the polls stay as they were (never opened or
        closed by a restart). Open polls: the register is opened again and the desk serves; a visit not
        decided before the cut left nothing in the store (a visit is one transaction), so that voter starts
        again. The committee's screen says the last visit recorded, so the committee knows whether the
        voter standing at the desk was decided before the cut. The log says what was decided, never who."""
        opened, closed = self.store.polls("opened_at"), self.store.polls("closed_at")
        if opened is None:
            raise RegisterClosed(f"{self.store.path}: the polls were never opened at this desk; there is nothing "
                                 "to resume (open the polls)")
        counters = self.store.counters()
        last = self.store.last_visit()
        now = self.clock.now()
        if closed is not None:
            if self.store.event_log is not None:  # wiped before the cut: the record is read back from the log
                self.deletion = deletion_from_log(self.store.event_log.path)
            lines = (self.msgs.t("auth.recovery.polls_closed"),)
            decision = "polls closed at the cut: the desk stays closed"
            self.store.log_event("power_cut_recovery", {"decisions": [decision], "at": now.isoformat()})
            return DeskRecovery(False, counters["visits"], None, None, None, lines)
        self._open_register()
        self.polls_open = True
        voter = self._voter_by_pseudonym(last.pseudonym) if last is not None and last.pseudonym else None
        lines = [self.msgs.t("auth.recovery.polls_open")]
        if last is None:
            lines.append(self.msgs.t("auth.recovery.no_visit"))
        elif voter is not None:
            lines.append(self.msgs.t("auth.recovery.last_visit", number=last.number, name=voter.name,
                                     register_number=voter.register_number,
                                     verdict=self.msgs.t(f"auth.verdict.{last.verdict}")))
        else:
            lines.append(self.msgs.t("auth.recovery.last_visit_outsider", number=last.number,
                                     verdict=self.msgs.t(f"auth.verdict.{last.verdict}")))
        self.store.log_event("power_cut_recovery", {
            "decisions": ["polls open at the cut: the desk serves again, the register reopened",
                          "a visit not decided before the cut is not recorded: that voter starts again",
                          "the last visit recorded is shown to the committee"], "at": now.isoformat()})
        self.store.log_event("register.opened", {"records": len(self.register), "at": now.isoformat()})
        return DeskRecovery(True, counters["visits"], last.verdict if last else None,
                            voter.name if voter else None, voter.register_number if voter else None, tuple(lines))

    def _voter_by_pseudonym(self, pseudonym: bytes) -> RegisterVoter | None:
        for voter in self.register.voters():
            if self.store.pseudonym(voter.jmbg) == pseudonym:
                return voter
        return None

    def _open_register(self) -> None:
        self.register.open()
        self._enrolled = {}
        templates, ids = [], []
        for voter in self.register.voters():
            prepared = [prepare(read_record(t, f"register record {voter.register_number}")) for t in voter.templates]
            self._enrolled[voter.jmbg] = prepared
            templates += prepared
            ids += [voter.jmbg] * len(prepared)
        self._gallery = Gallery(templates, ids) if templates else None

    def close_polls(self) -> None:
        """The desk stops serving; the decrypted templates and the 1:N gallery leave memory. The register's
        file, its key and the sensor's flash stay until the wipe (`wipe`, with a PIN). A visit the close cut
        short keeps what it counted (a document problem, failed touches), without a verdict."""
        if self._current.visit.counts or self._current.visit.legal:
            self.store.record_visit(self._current.visit, None)
        self._current = _Voter()
        self.polls_open = False
        self.store.set_polls("closed_at", self.clock.now())
        self._enrolled, self._gallery = {}, None
        self.register.close()
        failpoints.hit("auth.polls.closed")  # closed, not yet wiped: a power cut here is tested

    def wipe(self, credential: Credential | None = None) -> DeletionRecord:
        """After the close: the register extract and its key overwritten and deleted, the sensor's template
        flash emptied (Art. 34). The committee president's or the technician's action: a wrong PIN is refused
        (AccessRefused) and counts toward the role's lockout, and nothing is wiped."""
        if self.polls_open:
            raise RegisterClosed("the wipe comes after the close of the polls; close them first")
        if self.deletion is not None:  # done already (before a power cut, read back by resume_polls)
            return self.deletion
        log = self.store.event_log.path if self.store.event_log is not None else None
        started = _last_logged(log, "register.wipe_started") if log is not None else None
        if started is not None:  # authorized and begun before a power cut: finished now, as it was allowed
            d = started["detail"]
            census = (int(d["records"]), int(d["templates"]), str(d["register_sha256"]))
            role_name = d.get("role")
        else:
            role = self.access.authorize("wipe", credential) if self.access is not None else None
            role_name = role.value if role is not None else None
            census = self.register.census()
            self.store.log_event("register.wipe_started", {"records": census[0], "templates": census[1],
                                                           "register_sha256": census[2], "role": role_name,
                                                           "at": self.clock.now().isoformat()})
        failpoints.hit("auth.wipe.started")
        deletion = self.register.wipe(self.sensor, self.clock, census)
        self.deletion = replace(deletion, authorized_by=role_name)
        self.store.log_event("register.wiped", {"records": deletion.records, "templates": deletion.templates,
                                                "sensor_templates_before": deletion.sensor_templates_before,
                                                "sensor_templates_after": deletion.sensor_templates_after,
                                                "key_destroyed": deletion.key_destroyed,
                                                "register_sha256": deletion.register_sha256,
                                                "role": self.deletion.authorized_by,
                                                "at": deletion.deleted_at.isoformat()})
        return self.deletion

    # -- one voter ---------------------------------------------------------------------------------
    def view(self, detail: str | None = None) -> DeskView:
        voter_key, committee_key = PANEL[self.machine.state]
        voter = self._current.voter
        name = voter.name if voter is not None else None
        return DeskView(self.machine.state, self.msgs.t(voter_key), self.msgs.t(committee_key), name, detail)

    def read_document(self, scan: str) -> DeskView:
        self._require_open()
        try:
            identity = parse_document(scan, self.day)
        except DocumentError as exc:
            self._fire(VoterEvent.DOCUMENT_UNREADABLE)
            self._current.visit.count("problem.document")
            return self.view(str(exc))
        return self._identified(VoterEvent.DOCUMENT_READ, identity)

    def type_jmbg(self, text: str) -> DeskView:
        self._require_open()
        try:
            identity = parse_typed_jmbg(text, self.day)
        except DocumentError as exc:
            self._current.visit.count("problem.document")
            return self.view(str(exc))
        return self._identified(VoterEvent.JMBG_TYPED, identity)

    def capture(self) -> DeskView:
        """One capture on the sensor, its quality check and, if good, the match."""
        self._require_open()
        voter = self._current.voter
        if self.machine.state != VoterState.CAPTURING or voter is None:
            self._fire(VoterEvent.CAPTURED)  # refused by the table with the state named
        assert voter is not None
        self._current.attempts += 1
        last = self._current.attempts >= MAX_ATTEMPTS
        try:
            image = self.sensor.capture(CAPTURE_TIMEOUT_S)
        except NoFinger:
            return self._poor_capture(last)
        except FingerprintError as exc:
            self._current.visit.count("problem.sensor")
            return self._poor_capture(last, str(exc))
        with opencv_on_one_thread():  # as the bench measures it
            extraction = extract(image.pixels, image.dpi)
        if extraction.retry:  # the extractor's quality floor (biometrics.extract RETRY_BELOW_QUALITY)
            return self._poor_capture(last)
        self._fire(VoterEvent.CAPTURED)
        probe = prepare(extraction.template)
        result = verify(probe, self._enrolled[voter.jmbg])
        # 1:N only for a finger that is not the claimed voter's: a finger that matches its document's
        # voter is that voter's, and the 1:N pass costs ~25 consolidations (the matcher's shortlist).
        other = None if result.matched else self._another_voter(probe, voter.jmbg, result.score)
        if result.matched:
            self._record(voter, reidentified=False)
            self._fire(VoterEvent.MATCHED)
        elif other is not None:
            self._record_impersonation("finger_of_another_voter", voter, other)
            self._fire(VoterEvent.MATCHES_ANOTHER)
        else:
            if last:
                self._current.visit.count("failures")
            self._fire(VoterEvent.FINAL_NOT_MATCHED if last else VoterEvent.NOT_MATCHED)
        return self.view()

    def committee_decides(self, identified: bool) -> DeskView:
        """In COMMITTEE: the committee identified the voter by the document (re-identification
        register, Art. 12(5)) or did not (the voter is refused)."""
        self._require_open()
        voter = self._current.voter
        if self.machine.state != VoterState.COMMITTEE or voter is None:  # refused by the table, state named
            self._fire(VoterEvent.COMMITTEE_IDENTIFIED if identified else VoterEvent.COMMITTEE_REFUSED)
        assert voter is not None
        if identified:
            self._record(voter, reidentified=True)
            self._fire(VoterEvent.COMMITTEE_IDENTIFIED)
        else:
            self._current.visit.count("refused")
            self._fire(VoterEvent.COMMITTEE_REFUSED)
        return self.view()

    def next_voter(self) -> DeskView:
        self._fire(VoterEvent.NEXT_VOTER)
        self._current = _Voter()  # nothing of the last voter stays in memory
        return self.view()

    # -- internals ---------------------------------------------------------------------------------
    def _poor_capture(self, last: bool, detail: str | None = None) -> DeskView:
        if last:
            self._current.visit.count("failures")
        self._fire(VoterEvent.ATTEMPTS_EXHAUSTED if last else VoterEvent.POOR_CAPTURE)
        return self.view(detail)

    def _identified(self, event: VoterEvent, identity: DocumentIdentity) -> DeskView:
        self._fire(event)
        self._current.identity = identity
        self._current.started = self.clock.monotonic()
        voter = self.register.lookup(identity.lookup_keys())
        if voter is None:
            self._current.visit.count("not_in_register")
            self._fire(VoterEvent.NOT_IN_REGISTER)
            return self.view()
        self._current.voter = voter
        self._current.visit.jmbg = voter.jmbg
        if self.store.state_of(voter.jmbg) != "N":
            self._record_impersonation("already_authenticated", voter, None)
            self._fire(VoterEvent.ALREADY_AUTHENTICATED)
            return self.view()
        if not self._enrolled.get(voter.jmbg):
            self._current.visit.count("no_template")
            self._fire(VoterEvent.NO_TEMPLATE)
            return self.view()
        self._fire(VoterEvent.FOUND)
        return self.view()

    def _another_voter(self, probe: MatchTemplate, claimed: str, claimed_score: float) -> str | None:
        if self._gallery is None:
            return None
        for jmbg, score in self._gallery.identify(probe, top=2):
            if jmbg != claimed and score >= THRESHOLD + IMPERSONATION_MARGIN and score > claimed_score + IMPERSONATION_MARGIN:
                return str(jmbg)
        return None

    def _record(self, voter: RegisterVoter, reidentified: bool) -> None:
        seconds = self.clock.monotonic() - (self._current.started or self.clock.monotonic())
        legal = None
        if reidentified:
            legal = LegalRecord("reidentified", self.clock.now(),
                                {"name": voter.name, "register_number": voter.register_number})
        self._current.visit.authenticate(voter.jmbg, sex=voter.sex, age=self.day.year - voter.birth_year,
                                         attempts=self._current.attempts, seconds=seconds, reidentified=legal)

    def _record_impersonation(self, what: str, claimed: RegisterVoter, other_jmbg: str | None) -> None:
        detail: dict[str, Any] = {"what": what, "name": claimed.name, "register_number": claimed.register_number}
        if other_jmbg is not None:
            other = self.register.lookup([("jmbg", other_jmbg)])
            if other is not None:
                detail["finger_of"] = {"name": other.name, "register_number": other.register_number}
        self._current.visit.impersonation(LegalRecord("impersonation", self.clock.now(), detail))

    def _fire(self, event: VoterEvent) -> tuple[str, ...]:
        """One event of the table. Landing in a final state decides the visit: everything it gathered goes
        into the store in one transaction, before the panel shows the verdict (synchronous=FULL)."""
        actions = self.machine.fire(event)
        verdict = _VERDICT.get(self.machine.state)
        if verdict is not None:
            visit, self._current.visit = self._current.visit, Visit()
            self.store.record_visit(visit, verdict)
        return actions

    def _require_open(self) -> None:
        if not self.polls_open:
            raise RegisterClosed("the authentication desk works only while the polls are open; open the polls first")

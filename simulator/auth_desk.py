"""The authentication desk of a simulated polling-station day (pilots 1 and 3), with its ground truth.

    result = run_desk(election, voters=40, seed=7, data_dir=Path("out"), messages=Messages.for_language("bs"))
    result.agree, result.differences    # the auth report's figures against what the simulator did
    result.report                       # firmware.auth.report.AuthReport (render_png / report_to_json)

The register extract holds `voters` synthetic voters (simulator/documents.py persons, one
simulator/fingerprints.py finger each); the enrolled template is extracted from one good impression
and stored as an ISO 19794-2 record, as the CEC would send it. One voter has no template. Every probe is
a fresh impression presented to the simulated sensor (SimulatedFingerprintSensor, 256 x 288, 4-bit) and
goes through the service exactly as on the device. Who comes to the desk (`DeskMix`):
- honest voters, by ID card, barcode or passport (the operator types the JMBG), some with a corrupt
  MRZ first (read fails, the JMBG is typed) and some whose first touch is a failed capture;
- failed captures: three failed touches, then the committee re-identifies the voter (Art. 12(5));
- the voter without a template (the committee identifies them);
- impersonators: a register voter with someone else's document (the victim never comes), caught 1:N;
- second-vote attempts: an authenticated voter comes again;
- a person who is not on this station's register.
The clock is simulated: reading a document, each touch and the committee's check take fixed times.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing as closing_store
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from biometrics.extract import extract
from biometrics.iso19794 import write_record
from config.election import Election
from firmware.auth.flow import VoterState
from firmware.auth.register import (
    KEY_FILE,
    DeletionRecord,
    RegisterExtract,
    RegisterVoter,
    build_register_file,
    provision_key,
    pseudonym_key,
    read_key,
)
from firmware.auth.report import AuthReport, build_auth_report
from firmware.auth.service import (
    AuthService,
    DeskRecovery,
    deletion_from_log,
    desk_access,
)
from firmware.auth.store import (
    DB_FILE,
    DURATION_EDGES_S,
    LOG_FILE,
    AuthStore,
    AuthStoreError,
)
from firmware.common.eventlog import EventLog
from firmware.common.events import Service
from firmware.common.i18n import Messages
from firmware.common.identity import (
    DeviceIdentity,
    load_or_provision,
    software_hash,
    software_version,
)
from firmware.common.reports import build_header
from firmware.common.roles import Role
from firmware.errors import UserError
from hal.clock import station_time
from simulator.credentials import credential_for, provision_test_pins
from simulator.devices import AcceleratedClock
from simulator.documents import (
    SyntheticPerson,
    barcode,
    corrupted,
    id_card,
    synthetic_person,
)
from simulator.fingerprint_twin import SimulatedFingerprintSensor
from simulator.fingerprints import QualityHint, SyntheticFinger, synthetic_template
from simulator.world import Journal

SIM_DEVICE_ID = "BB-SIM-AUTH-0001"
REGISTER_FILE = "register.bbr"
DESK_JOURNAL = "desk.jsonl"  # the desk's physical world, in the state's world/ part
# Simulated desk times (s): reading a document, typing a JMBG, one touch, the committee's check.
READ_S, TYPE_S, TOUCH_S, COMMITTEE_S = 4.0, 15.0, 5.0, 40.0


@dataclass(frozen=True)
class DeskMix:
    """Fractions of the register's voters in each case (each at least one when the register allows)."""

    passport: float = 0.15
    barcode: float = 0.2
    corrupt_document: float = 0.1
    retry_capture: float = 0.1  # first touch fails, the second is good
    failed_capture: float = 0.05  # three failed touches -> committee
    impersonators: float = 0.05
    second_vote: float = 0.05
    outsiders: int = 1  # people not on the register


@dataclass
class DeskResult:
    agree: bool
    differences: list[str]
    report: AuthReport
    truth: dict[str, object]
    stats: dict[str, object]
    service: AuthService = field(repr=False)
    recovery: DeskRecovery | None = None  # what the desk said at boot, when this run carried a day on
    notes: tuple[str, ...] = ()  # what the simulator decided for the desk's world at a resume


def run_desk(election: Election, voters: int, seed: int, data_dir: Path, messages: Messages,
             clock: AcceleratedClock | None = None, *, registered: int | None = None, mix: DeskMix = DeskMix(),
             identity: DeviceIdentity | None = None, pins_dir: Path | None = None,
             on_report: Callable[[str, object], None] | None = None, world_dir: Path | None = None,
             resume: bool = False) -> DeskResult:
    """Provision the desk in `data_dir`, run the polls' authentications, close, report, compare.

    `voters` come to the desk; the register holds `registered` (default: `voters`). Register voters
    who never come get a template drawn without an image (simulator.fingerprints.synthetic_template,
    microseconds), so a full station's register costs nothing and the 1:N pass runs at its real size.
    `clock`: the desk's own simulated clock (default: one starting at the opening); do not pass the
    scanner's clock object - the wall wants no shared clock order. `identity`: the box's device key
    (the scanner day's), else one is provisioned in `data_dir`. `pins_dir`: where the box's access file is
    (the state's device/ folder), else `data_dir`; the simulated president wipes with the TEST PIN.

    `world_dir`: where the desk's physical world is journaled (`desk.jsonl`: the clock, who came and what
    they were told), so that the process may be killed at any instant; `resume` boots the desk from
    `data_dir` as after a power cut (AuthService.resume_polls) and carries the same desk day on. A desk
    found in `data_dir` is never deleted: without `resume` it is refused; with it, only a desk that had
    not opened its polls (provisioning cut short, no voter served) is provisioned again."""
    if voters < 4:
        raise ValueError(f"voters = {voters}: the desk needs at least 4 register voters for its cases")
    if resume and world_dir is None:
        raise ValueError("resume needs the desk's world (world_dir) of the run it carries on")
    rng = random.Random(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    world = _DeskWorld(world_dir) if world_dir is not None else None
    opened_before = _opened(data_dir)
    if not resume and (opened_before is not None or (world is not None and world.events)):
        raise DeskError(f"{data_dir}: a desk day is there already; carry it on (--resume) or give another state "
                        "directory: a day is never deleted")
    opening = station_time(election.date, election.polls.opening)
    closing = station_time(election.date, election.polls.closing)
    clock = clock or AcceleratedClock(opening)
    day = dt.date.fromisoformat(election.date)
    wall = time.perf_counter()
    messages_out: list[str] = []

    registered = voters if registered is None else registered
    if registered < voters:
        raise ValueError(f"registered = {registered}: fewer register voters than the {voters} who come")
    people = [_Person(synthetic_person(rng), seed * 100_003 + i) for i in range(voters)]
    no_template = people[-1]
    extras = [_Person(synthetic_person(rng), seed * 100_003 + i) for i in range(voters, registered)]
    if opened_before is None:  # a fresh desk, or one whose provisioning the power cut stopped: nothing served
        if resume and any(data_dir.iterdir()):
            messages_out.append("the desk had not opened its polls at the power cut: it is provisioned again "
                                "(no voter had been served)")
        for stale in [data_dir / REGISTER_FILE, data_dir / LOG_FILE, data_dir / KEY_FILE, *data_dir.glob(DB_FILE + "*")]:
            stale.unlink(missing_ok=True)
        if world is not None:
            world.restart()
        gen = np.random.default_rng(seed)
        register_voters = [p.register_voter(i + 1, gen, enrolled=p is not no_template) for i, p in enumerate(people)]
        for i, p in enumerate(extras, start=voters):  # on the register, never at the desk
            register_voters.append(RegisterVoter(
                p.person.jmbg.digits, (p.person.document_number,), p.name, i + 1, p.person.jmbg.sex,
                p.person.jmbg.birth_date.year, (write_record(synthetic_template(p.finger_seed)),)))
        key: bytes | None = provision_key(data_dir)
        build_register_file(data_dir / REGISTER_FILE, election.station.code, register_voters, key)
        store = AuthStore.create(data_dir, pseudonym_key(key, election.station.code), (v.jmbg for v in register_voters))
    else:
        key = read_key(data_dir) if (data_dir / KEY_FILE).exists() else None  # None: wiped before the cut
        store = AuthStore(data_dir, pseudonym_key(key, election.station.code) if key is not None else None)
        assert world is not None
        clock.sleep(world.t + _outage_s(seed, world.boots + 1))  # the power was off a while
    enrol_s = time.perf_counter() - wall

    register = RegisterExtract(data_dir / REGISTER_FILE, election.station.code, key, key_file=data_dir / KEY_FILE)
    identity = identity or load_or_provision(data_dir, SIM_DEVICE_ID)
    if opened_before is not None and _log_closed(data_dir / LOG_FILE):
        # the desk's day had ended (closed, wiped, its log closed) before the cut: only its report is made again
        return _report_again(election, data_dir, store, identity, clock, messages, registered, world, people,
                             no_template, mix, rng, on_report, tuple(messages_out), enrol_s)
    # the auth service's own signed log (issue 12, item 5), on the desk's own clock: nothing joins it to the scanner's
    store.event_log = EventLog.open(data_dir / LOG_FILE, Service.AUTH, identity, clock.now)
    sensor = SimulatedFingerprintSensor()
    access = desk_access(provision_test_pins(pins_dir or data_dir), clock, store)
    service = AuthService(register, sensor, store, clock, messages, day, access=access)
    desk = _Desk(service, sensor, clock, seed)

    visits = _plan(rng, people, no_template, mix)
    span = (closing - opening).total_seconds() - 600
    offsets = sorted(rng.uniform(0, span) for _ in visits)
    truth = _Truth()
    recovery = None
    if opened_before is None:
        clock.sleep(max(0.0, (opening - clock.now()).total_seconds()))
        service.open_polls()
        if world is not None:
            world.write("opened", clock.monotonic())
    else:
        world.write("boot", clock.monotonic())
        recovery = service.resume_polls()
        for i in sorted(world.done):
            desk.replay(visits[i], truth, world.done[i])
        in_flight = world.in_flight
        if in_flight is not None and recovery.polls_open:
            recorded = recovery.visits_recorded - world.decided  # visits the box decided that the world did not see
            if recorded not in (0, 1):
                raise DeskError(f"{data_dir}: the desk recorded {recovery.visits_recorded} visits, the world saw "
                                f"{world.decided} decided and one at the desk: the two cannot be reconciled")
            visit = visits[in_flight]
            number = people.index(visit.document_of) + 1 if visit.document_of in people else None
            if recorded and recovery.last_register_number != number:
                raise DeskError(f"{data_dir}: the desk's last visit names register number "
                                f"{recovery.last_register_number}, the voter at the desk at the cut is {number}")
            if recorded:  # decided before the cut: the committee's screen names this voter; the verdict stands
                outcome = desk.planned(visit)
                desk.replay(visit, truth, outcome)
                world.write("done", clock.monotonic(), i=in_flight, **outcome)
                messages_out.append(f"the voter at the desk at the power cut had been decided: {visit.case}")
            else:
                messages_out.append("the voter at the desk at the power cut had not been decided: they start again")
    wall_desk = time.perf_counter()
    if service.polls_open:
        for i, (visit, offset) in enumerate(zip(visits, offsets)):
            if world is not None and i in world.done:
                continue
            target = opening + dt.timedelta(seconds=offset)
            clock.sleep(max(0.0, (target - clock.now()).total_seconds()))
            if world is not None:
                world.write("visit", clock.monotonic(), i=i)
            outcome = desk.serve(i, visit, truth, day)
            if world is not None:
                world.write("done", clock.monotonic(), i=i, **outcome)
        clock.sleep(max(0.0, (closing - clock.now()).total_seconds()))
        service.close_polls()
        if world is not None:
            world.write("closed", clock.monotonic())
    desk_s = time.perf_counter() - wall_desk
    deletion = service.wipe(credential_for(Role.PRESIDENT))  # the president has the biometric data wiped (Art. 34)
    if world is not None:
        world.write("wiped", clock.monotonic())
    store.event_log.close(clock.now())
    report, differences = _report(election, data_dir, store, identity, clock, registered, deletion, truth, on_report)
    stats = {"visits": len(visits), "captures": sensor.captures, "wall_seconds_enrolment": round(enrol_s, 2),
             "wall_seconds_desk": round(desk_s, 2),
             "seconds_per_visit": round(desk_s / max(1, len(visits)), 3),
             "true_duration_median_s": median(truth.durations) if truth.durations else None,
             "report_duration_median_s": report.duration_median_s, "report_duration_p95_s": report.duration_p95_s,
             "power_cuts": world.boots if world is not None else 0}
    return DeskResult(not differences, differences, report, truth.as_dict(), stats, service, recovery,
                      tuple(messages_out))


def _report(election: Election, data_dir: Path, store: AuthStore, identity: DeviceIdentity, clock: AcceleratedClock,
            registered: int, deletion: DeletionRecord, truth: _Truth,
            on_report: Callable[[str, object], None] | None) -> tuple[AuthReport, list[str]]:
    """The authentication report (the store is closed after it) and its differences from the truth."""
    header = build_header(election, device_id=identity.device_id, software_version=software_version(),
                          software_hash=software_hash(), device_key_fingerprint=identity.fingerprint,
                          printed_at=clock.now())
    report = build_auth_report(header, store, registered_voters=registered, deletion=deletion)
    store.close()
    if on_report:
        on_report("auth", report)  # saved as auth-report.png / .json by the CLI's save_report
    differences = truth.compare(report)
    if deletion.sensor_templates_after != 0 or (data_dir / REGISTER_FILE).exists():
        differences.append("the register extract or the sensor's templates survived the close")
    return report, differences


def _report_again(election: Election, data_dir: Path, store: AuthStore, identity: DeviceIdentity,
                  clock: AcceleratedClock, messages: Messages, registered: int, world: _DeskWorld | None,
                  people: list[_Person],
                  no_template: _Person, mix: DeskMix, rng: random.Random,
                  on_report: Callable[[str, object], None] | None, notes: tuple[str, ...], enrol_s: float) -> DeskResult:
    """A desk whose day was over before the power cut: the report again from its store and its log (the
    deletion record as the log has it), compared with the world's truth; nothing is written to the desk."""
    assert world is not None
    deletion = deletion_from_log(data_dir / LOG_FILE)
    if deletion is None:
        raise DeskError(f"{data_dir / LOG_FILE}: the desk's log is closed but holds no deletion record; check the "
                        "log (ballotbox log verify) before the day is carried on")
    visits = _plan(rng, people, no_template, mix)
    truth = _Truth()
    for i in sorted(world.done):
        _Desk.replay(visits[i], truth, world.done[i])
    report, differences = _report(election, data_dir, store, identity, clock, registered, deletion, truth, on_report)
    sensor = SimulatedFingerprintSensor()
    service = AuthService(RegisterExtract(data_dir / REGISTER_FILE, election.station.code, None), sensor, store,
                          clock, messages, dt.date.fromisoformat(election.date))
    service.deletion = deletion
    stats = {"visits": len(visits), "captures": 0, "wall_seconds_enrolment": round(enrol_s, 2),
             "wall_seconds_desk": 0.0, "seconds_per_visit": None,
             "true_duration_median_s": median(truth.durations) if truth.durations else None,
             "report_duration_median_s": report.duration_median_s, "report_duration_p95_s": report.duration_p95_s,
             "power_cuts": world.boots}
    return DeskResult(not differences, differences, report, truth.as_dict(), stats, service, None,
                      (*notes, "the desk's day had ended before the power cut: its report is made again"))


def _log_closed(path: Path) -> bool:
    """Whether the desk's log ends its day (`log.closed`): nothing may be written to it any more."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        try:
            if json.loads(line).get("event") == "log.closed":
                return True
        except (ValueError, AttributeError):
            continue  # a torn line
    return False


def _outage_s(seed: int, boot: int) -> float:
    """How long the power was off before the desk's boot `boot` (desk seconds), the same in every process."""
    return random.Random(f"{seed}:desk-outage:{boot}").uniform(30, 300)


class DeskError(UserError):
    """A desk day that cannot be started or carried on as asked; the message says why and what to do."""


def _opened(data_dir: Path) -> dt.datetime | None:
    """When the desk in `data_dir` opened its polls, or None (no store, or provisioning cut short)."""
    if not (data_dir / DB_FILE).exists():
        return None
    try:
        with closing_store(AuthStore(data_dir, None)) as store:
            return store.polls("opened_at")
    except (AuthStoreError, sqlite3.DatabaseError):
        return None  # a store whose creation the cut stopped (no tables yet): nothing was served


class _DeskWorld:
    """The desk's physical world (`desk.jsonl` in the state's world/ part), one JSON line per event with
    the desk clock's time `t`, written before the firmware is told (simulator.world's rule): who was at
    the desk (`visit`), what they were finally told (`done`, with the touches and the time taken), the
    opening, close, wipe and each boot. A torn last line is an event that did not happen."""

    def __init__(self, world_dir: Path) -> None:
        world_dir.mkdir(parents=True, exist_ok=True)
        self.path = world_dir / DESK_JOURNAL
        self._load()

    def _load(self) -> None:
        self.events = _read_lines(self.path)
        self.journal = Journal(self.path)
        self.t = max((float(e.get("t", 0.0)) for e in self.events), default=0.0)
        self.boots = sum(e["e"] == "boot" for e in self.events)
        self.done = {int(e["i"]): {"touches": int(e["touches"]), "duration": float(e["duration"])}
                     for e in self.events if e["e"] == "done"}
        started = [int(e["i"]) for e in self.events if e["e"] == "visit"]
        self.in_flight = started[-1] if started and started[-1] not in self.done else None

    @property
    def decided(self) -> int:
        return len(self.done)

    def restart(self) -> None:
        """Provisioning again (the desk never opened): what the world journaled of it did not happen."""
        self.journal.close()
        self.path.unlink(missing_ok=True)
        self._load()

    def write(self, event: str, t: float, **detail: Any) -> None:
        self.journal.write({"e": event, "t": round(t, 3), **detail})
        if event == "done":
            self.done[int(detail["i"])] = {"touches": int(detail["touches"]), "duration": float(detail["duration"])}
            self.in_flight = None
        elif event == "visit":
            self.in_flight = int(detail["i"])


def _read_lines(path: Path) -> list[dict[str, object]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    events = []
    for line in raw.split(b"\n"):
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the torn last line
        if isinstance(event, dict) and "e" in event:
            events.append(event)
    return events


# ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _finger(seed: int) -> SyntheticFinger:
    """Masters are the expensive part (about 0.1 s): one per seed per process."""
    return SyntheticFinger(seed)


@dataclass
class _Person:
    person: SyntheticPerson
    finger_seed: int

    @property
    def finger(self) -> SyntheticFinger:
        return _finger(self.finger_seed)

    @property
    def name(self) -> str:
        return f"{self.person.given_names} {self.person.surname}"

    def register_voter(self, number: int, gen: np.random.Generator, enrolled: bool) -> RegisterVoter:
        templates: tuple[bytes, ...] = ()
        if enrolled:
            image = self.finger.impression(gen, quality_hint=QualityHint.GOOD)
            templates = (write_record(extract(image).template),)
        j = self.person.jmbg
        return RegisterVoter(j.digits, (self.person.document_number,), self.name, number, j.sex,
                             j.birth_date.year, templates)


@dataclass(frozen=True)
class _Visit:
    case: str  # honest | retry | failed | no_template | impersonator | second_vote | outsider
    document_of: _Person  # whose document is shown
    finger_of: _Person  # whose finger touches the sensor
    document: str  # id_card | passport | barcode | corrupt


def _plan(rng: random.Random, people: list[_Person], no_template: _Person, mix: DeskMix) -> list[_Visit]:
    enrolled = [p for p in people if p is not no_template]
    rng.shuffle(enrolled)

    def take(fraction: float, pool: list[_Person]) -> list[_Person]:
        n = min(len(pool) - 1, max(1, round(fraction * len(people))))
        taken = pool[:n]
        del pool[:n]
        return taken

    pool = list(enrolled)
    victims = take(mix.impersonators, pool)  # their documents are stolen; they never come
    failed = take(mix.failed_capture, pool)
    retry = take(mix.retry_capture, pool)
    honest = pool + retry
    impostors = [honest[i % len(honest)] for i in range(len(victims))]
    second = honest[: max(1, round(mix.second_vote * len(people)))]

    def document(i: int) -> str:
        draw = rng.random()
        if draw < mix.corrupt_document:
            return "corrupt"
        if draw < mix.corrupt_document + mix.passport:
            return "passport"
        return "barcode" if draw < mix.corrupt_document + mix.passport + mix.barcode else "id_card"

    visits = [_Visit("retry" if p in retry else "honest", p, p, document(i)) for i, p in enumerate(pool + retry)]
    visits += [_Visit("failed", p, p, "id_card") for p in failed]
    visits.append(_Visit("no_template", no_template, no_template, "id_card"))
    visits += [_Visit("impersonator", v, y, "id_card") for v, y in zip(victims, impostors)]
    rng.shuffle(visits)
    visits += [_Visit("second_vote", p, p, "id_card") for p in second]  # after their first vote
    for i in range(mix.outsiders):
        outsider = _Person(synthetic_person(rng), -(i + 1))
        visits.insert(rng.randrange(len(visits) + 1), _Visit("outsider", outsider, outsider, "id_card"))
    return visits


@dataclass
class _Truth:
    authenticated: int = 0
    reidentified: int = 0
    failures: int = 0
    refused: int = 0
    not_in_register: int = 0
    no_template: int = 0
    impersonation: int = 0
    problem_document: int = 0
    attempts: dict[str, int] = field(default_factory=lambda: {"1": 0, "2": 0, "3": 0})
    by_sex: dict[str, int] = field(default_factory=lambda: {"M": 0, "F": 0})
    durations: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "durations"}

    def compare(self, r: AuthReport) -> list[str]:
        pairs = {"authenticated": r.authenticated, "reidentified": r.reidentified, "failures": r.failures,
                 "refused": r.refused, "not_in_register": r.not_in_register, "no_template": r.no_template,
                 "impersonation": r.impersonation_attempts, "problem_document": r.problems["document"],
                 "attempts": r.attempts, "by_sex": r.by_sex}
        out = [f"{name}: report {got}, truth {getattr(self, name)}"
               for name, got in pairs.items() if got != getattr(self, name)]
        if len(r.reidentifications) != self.reidentified:
            out.append(f"re-identification register: {len(r.reidentifications)} lines, truth {self.reidentified}")
        if len(r.impersonations) != self.impersonation:
            out.append(f"impersonation records: {len(r.impersonations)}, truth {self.impersonation}")
        ordered = sorted(self.durations)
        for name, q, got in (("median", 0.5, r.duration_median_s), ("p95", 0.95, r.duration_p95_s)):
            if not ordered:
                continue
            true = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
            low, high = _bin_bounds(true)
            if got is None or not low <= got <= high:
                out.append(f"time per authentication {name}: report {got} s, truth {true} s (bin {low}-{high} s)")
        return out


def _bin_bounds(seconds: float) -> tuple[float, float]:
    """The duration histogram's bin holding `seconds` (the report can only be that precise)."""
    lows = (0.0, *DURATION_EDGES_S)
    for low, high in zip(lows, DURATION_EDGES_S):
        if seconds < high:
            return low, float(high)
    return float(lows[-1]), float(lows[-1])


class _Desk:
    """The desk's people and committee. Each visit draws from its own generators (the seed and the visit's
    number), so a visit served again after a power cut is the same visit."""

    def __init__(self, service: AuthService, sensor: SimulatedFingerprintSensor, clock: AcceleratedClock,
                 seed: int) -> None:
        self.service, self.sensor, self.clock, self.seed = service, sensor, clock, seed

    def serve(self, i: int, visit: _Visit, truth: _Truth, day: dt.date) -> dict[str, float]:
        s = self.service
        gen = np.random.default_rng([self.seed, i])
        person = visit.document_of.person
        self.clock.sleep(READ_S)
        start = self.clock.monotonic()  # the desk's timer starts when the identity is read (or typed)
        if visit.document == "passport":
            view = s.type_jmbg(person.jmbg.digits)
        else:
            maker = {"id_card": id_card, "barcode": barcode, "corrupt": id_card}[visit.document]
            doc = maker(person)
            if visit.document == "corrupt":
                view = s.read_document(corrupted(random.Random(f"{self.seed}:desk:{i}"), doc).text)
                self.clock.sleep(TYPE_S)
                start = self.clock.monotonic()
                view = s.type_jmbg(person.jmbg.digits)
            else:
                view = s.read_document(doc.text)
        touches = 0
        while view.state == VoterState.CAPTURING:
            failed = visit.case == "failed" or (visit.case == "retry" and touches == 0)
            hint = QualityHint.FAILED if failed else QualityHint.TYPICAL
            self.sensor.present(visit.finger_of.finger.impression(gen, quality_hint=hint))
            self.clock.sleep(TOUCH_S)
            view = s.capture()
            touches += 1
        self.sensor.lift()
        if view.state == VoterState.COMMITTEE:
            self.clock.sleep(COMMITTEE_S)
            view = s.committee_decides(visit.case in ("failed", "no_template"))
        outcome = {"touches": touches, "duration": round(self.clock.monotonic() - start, 3)}
        self.replay(visit, truth, outcome)
        s.next_voter()
        return outcome

    @staticmethod
    def planned(visit: _Visit) -> dict[str, float]:
        """The touches and the time of a visit as planned: for the one the box decided just before a power
        cut, whose end the world did not see."""
        touches = {"honest": 1, "retry": 2, "failed": 3, "impersonator": 1}.get(visit.case, 0)
        committee = visit.case in ("failed", "no_template")
        return {"touches": touches, "duration": touches * TOUCH_S + COMMITTEE_S * committee}

    @staticmethod
    def replay(visit: _Visit, truth: _Truth, outcome: dict[str, float]) -> None:
        """What the visit adds to the ground truth."""
        case = visit.case
        truth.problem_document += visit.document == "corrupt"
        if case in ("honest", "retry"):
            truth.authenticated += 1
            truth.attempts["2" if case == "retry" else "1"] += 1
        elif case in ("failed", "no_template"):
            truth.reidentified += 1
            truth.failures += case == "failed"
            truth.no_template += case == "no_template"
        elif case in ("impersonator", "second_vote"):
            truth.impersonation += 1
        elif case == "outsider":
            truth.not_in_register += 1
        if case in ("honest", "retry", "failed", "no_template"):
            truth.by_sex[visit.document_of.person.jmbg.sex] += 1
            truth.durations.append(float(outcome["duration"]))

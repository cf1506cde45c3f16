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
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from statistics import median

import numpy as np

from biometrics.extract import extract
from biometrics.iso19794 import write_record
from config.election import Election
from firmware.auth.flow import VoterState
from firmware.auth.register import (
    RegisterExtract,
    RegisterVoter,
    build_register_file,
    provision_key,
    pseudonym_key,
)
from firmware.auth.report import AuthReport, build_auth_report
from firmware.auth.service import AuthService, desk_access
from firmware.auth.store import DB_FILE, DURATION_EDGES_S, LOG_FILE, AuthStore
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

SIM_DEVICE_ID = "BB-SIM-AUTH-0001"
REGISTER_FILE = "register.bbr"
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


def run_desk(election: Election, voters: int, seed: int, data_dir: Path, messages: Messages,
             clock: AcceleratedClock | None = None, *, registered: int | None = None, mix: DeskMix = DeskMix(),
             identity: DeviceIdentity | None = None, pins_dir: Path | None = None,
             on_report: Callable[[str, object], None] | None = None) -> DeskResult:
    """Provision the desk in `data_dir` (fresh), run the polls' authentications, close, report, compare.

    `voters` come to the desk; the register holds `registered` (default: `voters`). Register voters
    who never come get a template drawn without an image (simulator.fingerprints.synthetic_template,
    microseconds), so a full station's register costs nothing and the 1:N pass runs at its real size.
    `clock`: the desk's own simulated clock (default: one starting at the opening); do not pass the
    scanner's clock object - the wall wants no shared clock order. `identity`: the box's device key
    (the scanner day's), else one is provisioned in `data_dir`. `pins_dir`: where the box's access file is
    (the state's device/ folder), else `data_dir`; the simulated president wipes with the TEST PIN."""
    if voters < 4:
        raise ValueError(f"voters = {voters}: the desk needs at least 4 register voters for its cases")
    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in [data_dir / REGISTER_FILE, data_dir / LOG_FILE, data_dir / "auth.key",
                  *data_dir.glob(DB_FILE + "*")]:
        stale.unlink(missing_ok=True)
    opening = station_time(election.date, election.polls.opening)
    clock = clock or AcceleratedClock(opening)
    day = dt.date.fromisoformat(election.date)
    wall = time.perf_counter()

    registered = voters if registered is None else registered
    if registered < voters:
        raise ValueError(f"registered = {registered}: fewer register voters than the {voters} who come")
    people = [_Person(synthetic_person(rng), seed * 100_003 + i) for i in range(voters)]
    no_template = people[-1]
    register_voters = [p.register_voter(i + 1, gen, enrolled=p is not no_template) for i, p in enumerate(people)]
    for i in range(voters, registered):  # on the register, never at the desk
        p = _Person(synthetic_person(rng), seed * 100_003 + i)
        register_voters.append(RegisterVoter(
            p.person.jmbg.digits, (p.person.document_number,), p.name, i + 1, p.person.jmbg.sex,
            p.person.jmbg.birth_date.year, (write_record(synthetic_template(p.finger_seed)),)))
    key = provision_key(data_dir)
    build_register_file(data_dir / REGISTER_FILE, election.station.code, register_voters, key)
    enrol_s = time.perf_counter() - wall

    register = RegisterExtract(data_dir / REGISTER_FILE, election.station.code, key, key_file=data_dir / "auth.key")
    store = AuthStore.create(data_dir, pseudonym_key(key, election.station.code), (v.jmbg for v in register_voters))
    identity = identity or load_or_provision(data_dir, SIM_DEVICE_ID)
    # the auth service's own signed log (issue 12, item 5), on the desk's own clock: nothing joins it to the scanner's
    store.event_log = EventLog.open(data_dir / LOG_FILE, Service.AUTH, identity, clock.now)
    sensor = SimulatedFingerprintSensor()
    access = desk_access(provision_test_pins(pins_dir or data_dir), clock, store)
    service = AuthService(register, sensor, store, clock, messages, day, access=access)
    desk = _Desk(service, sensor, clock, gen)

    visits = _plan(rng, people, no_template, mix)
    clock.sleep(max(0.0, (opening - clock.now()).total_seconds()))
    service.open_polls()
    span = (station_time(election.date, election.polls.closing) - opening).total_seconds() - 600
    offsets = sorted(rng.uniform(0, span) for _ in visits)
    truth = _Truth()
    wall_desk = time.perf_counter()
    for visit, offset in zip(visits, offsets):
        target = opening + dt.timedelta(seconds=offset)
        clock.sleep(max(0.0, (target - clock.now()).total_seconds()))
        desk.serve(visit, truth, day)
    desk_s = time.perf_counter() - wall_desk
    clock.sleep(max(0.0, (station_time(election.date, election.polls.closing) - clock.now()).total_seconds()))
    service.close_polls()
    deletion = service.wipe(credential_for(Role.PRESIDENT))  # the president has the biometric data wiped (Art. 34)
    store.event_log.close(clock.now())
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
    stats = {"visits": len(visits), "captures": sensor.captures, "wall_seconds_enrolment": round(enrol_s, 2),
             "wall_seconds_desk": round(desk_s, 2),
             "seconds_per_visit": round(desk_s / max(1, len(visits)), 3),
             "true_duration_median_s": median(truth.durations) if truth.durations else None,
             "report_duration_median_s": report.duration_median_s, "report_duration_p95_s": report.duration_p95_s}
    return DeskResult(not differences, differences, report, truth.as_dict(), stats, service)


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
    def __init__(self, service: AuthService, sensor: SimulatedFingerprintSensor, clock: AcceleratedClock,
                 gen: np.random.Generator) -> None:
        self.service, self.sensor, self.clock, self.gen = service, sensor, clock, gen

    def serve(self, visit: _Visit, truth: _Truth, day: dt.date) -> None:
        s = self.service
        person = visit.document_of.person
        self.clock.sleep(READ_S)
        start = self.clock.monotonic()  # the desk's timer starts when the identity is read (or typed)
        if visit.document == "passport":
            view = s.type_jmbg(person.jmbg.digits)
        else:
            maker = {"id_card": id_card, "barcode": barcode, "corrupt": id_card}[visit.document]
            doc = maker(person)
            if visit.document == "corrupt":
                view = s.read_document(corrupted(random.Random(int(self.gen.integers(1 << 30))), doc).text)
                truth.problem_document += 1
                self.clock.sleep(TYPE_S)
                start = self.clock.monotonic()
                view = s.type_jmbg(person.jmbg.digits)
            else:
                view = s.read_document(doc.text)
        touches = 0
        while view.state == VoterState.CAPTURING:
            failed = visit.case == "failed" or (visit.case == "retry" and touches == 0)
            hint = QualityHint.FAILED if failed else QualityHint.TYPICAL
            self.sensor.present(visit.finger_of.finger.impression(self.gen, quality_hint=hint))
            self.clock.sleep(TOUCH_S)
            view = s.capture()
            touches += 1
        self.sensor.lift()
        if view.state == VoterState.COMMITTEE:
            self.clock.sleep(COMMITTEE_S)
            view = s.committee_decides(visit.case in ("failed", "no_template"))
        self._truth(visit, truth, touches, day)
        if visit.case in ("honest", "retry", "failed", "no_template"):
            truth.durations.append(self.clock.monotonic() - start)
        s.next_voter()

    @staticmethod
    def _truth(visit: _Visit, truth: _Truth, touches: int, day: dt.date) -> None:
        case = visit.case
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

"""Printed reports: one model, many renderings (ARCHITECTURE.md "Reports").

    store -> build_*_report(...) -> ZeroReport | ResultsReport | SelfTestReport
          -> render_raster (thermal printer, mode "1"), render_png, report_to_json

- ZeroReport, "početni izvještaj" (CEC instruction Art. 20(4)): printed before opening; shows that the
  scanner's count is "0", is signed by the president and all committee members and goes with the ZARBO.
- ResultsReport, "završni izvještaj" (Art. 23(1)-(2), Art. 26): after closing; turnout per ballot type and
  the results, device and internet problems, remarks; one copy signed for the ZARBO, one posted outside.
- SelfTestReport (Art. 11, 20(1)): the operator's equipment check.

The builders take plain inputs (counts, tallies, device statuses) and never read a store: what the
report says is exactly what the caller handed over, checked for consistency with the election
definition. Every text comes from the station language's message catalogue (firmware/i18n.py); names
are printed in the station's script (`Name.render`). Reports carry the software hash, the election
package hash and the device key fingerprint so observers can compare boxes (ARCHITECTURE.md "Trust").

Tally shape (`ContestTally`, one per contest, in the election's contest order):
    contest_id        the contest
    valid             ballots whose outcome for this contest is valid
    invalid_by_reason {"blank": n, "overvote": n, "multiple_lists": n}  (omr.types INVALID_OUTCOMES)
    ambiguous         ballots cast with an unclear mark in this contest, for the committee
    list_votes        {list_id: n}  open list only: one vote per valid ballot
    candidate_votes   {candidate_id: n}  single choice: votes; open list: preferential votes
A contest's valid + invalid + ambiguous equals the ballots cast of its ballot style.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import segno
from PIL import Image, ImageDraw, ImageFont

from config.election import ContestKind, Election
from firmware.common.fonts import Style, font
from firmware.common.i18n import Messages
from hal.errors import DeviceStatus
from hal.switches import SealState
from omr.types import INVALID_OUTCOMES, Outcome

# Invalid outcomes in the order the reports list them.
INVALID_REASONS: tuple[str, ...] = tuple(o.value for o in Outcome if o in INVALID_OUTCOMES)
# The invalid outcomes each kind of contest can have (DOMAIN.md): the printed report lists these, and
# any other reason only when its count is not 0. The JSON always carries all of INVALID_REASONS.
REASONS_BY_KIND: dict[ContestKind, tuple[str, ...]] = {
    ContestKind.SINGLE_CHOICE: (Outcome.BLANK.value, Outcome.OVERVOTE.value),
    ContestKind.OPEN_LIST: (Outcome.BLANK.value, Outcome.MULTIPLE_LISTS.value),
}

# A polling-station committee has a president and up to four members (Election Law of BiH, Art. 2.19):
# four member lines are always printed; unused ones stay blank.
MEMBER_SIGNATURE_LINES = 4

# Blank lines under "remarks" on the results report: Art. 26 asks for the operator's and the
# president's remarks, which are written by hand on the printed copy.
REMARK_LINES = 3

# The QR code of the signed results: at most 8 dots (1 mm at 203 dpi) a module, the quiet zone of 4
# modules ISO/IEC 18004 asks for; the ~180-character payload is version 9 (53 modules), so 80 mm paper
# prints 7-dot modules and 58 mm paper 6-dot ones, both well above what a phone camera resolves.
QR_MAX_DOTS_PER_MODULE = 8
QR_QUIET_ZONE = 4

MIN_WIDTH_PX = 300  # below this a 58 mm receipt cannot hold a label and a number side by side
MAX_WIDTH_PX = 2400

_HEX = re.compile(r"^[0-9a-fA-F]+$")


class ReportError(ValueError):
    """Report inputs that do not fit the election or each other. The message names the field, the
    value and what to do."""


# ================================================================================================
# Model
# ================================================================================================
@dataclass(frozen=True)
class ReportHeader:
    """Who printed what, for which election and station, with which software and key."""

    election_id: str
    election_title: str  # in the station's script
    election_date: str  # ISO YYYY-MM-DD
    election_mode: str  # "official" | "test": a test report says so in a banner
    station_code: str
    station_name: str  # in the station's script
    municipality: str  # in the station's script
    device_id: str
    software_version: str
    software_hash: str
    package_hash: str  # Election.digest() of the installed package
    device_key_fingerprint: str
    printed_at: datetime  # aware
    language: str  # bs | hr | sr-Latn | sr-Cyrl | en

    def __post_init__(self) -> None:
        if self.printed_at.utcoffset() is None:
            raise ReportError(
                f"report header: printed_at {self.printed_at.isoformat()} has no time zone; "
                "take the time from the device clock (aware datetimes)"
            )
        for name in ("device_id", "software_version", "software_hash", "package_hash", "device_key_fingerprint"):
            if not str(getattr(self, name)).strip():
                raise ReportError(f"report header: {name} is empty; observers compare it between boxes, give it")


@dataclass(frozen=True)
class StyleCounts:
    """Ballots of one ballot style: put into the box (`cast`) and handed back to voters (`returned`,
    counted apart, never part of the results)."""

    style_id: str
    cast: int
    returned: int = 0

    def __post_init__(self) -> None:
        for name in ("cast", "returned"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ReportError(f"ballot style {self.style_id!r}: {name} = {value!r}, must be a count (int >= 0)")


@dataclass(frozen=True)
class ContestTally:
    """The count of one contest (shape in the module docstring). Mappings are frozen copies."""

    contest_id: str
    valid: int
    invalid_by_reason: Mapping[str, int]
    ambiguous: int
    list_votes: Mapping[str, int] = field(default_factory=dict)
    candidate_votes: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("invalid_by_reason", "list_votes", "candidate_votes"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ReportError(f"contest {self.contest_id!r}: {name} must be a mapping, got {value!r}")
            object.__setattr__(self, name, MappingProxyType(dict(value)))
        counts = [("valid", self.valid), ("ambiguous", self.ambiguous)]
        counts += [(f"invalid_by_reason[{k!r}]", v) for k, v in self.invalid_by_reason.items()]
        counts += [(f"list_votes[{k!r}]", v) for k, v in self.list_votes.items()]
        counts += [(f"candidate_votes[{k!r}]", v) for k, v in self.candidate_votes.items()]
        for name, value in counts:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ReportError(f"contest {self.contest_id!r}: {name} = {value!r}, must be a count (int >= 0)")

    @property
    def invalid(self) -> int:
        return sum(self.invalid_by_reason.values())

    @property
    def ballots(self) -> int:
        return self.valid + self.invalid + self.ambiguous

    @classmethod
    def of(cls, tally: Any) -> ContestTally:
        """Copy any object with the ContestTally attributes (e.g. firmware.scanner.tally.ContestTally)."""
        if isinstance(tally, cls):
            return tally
        try:
            return cls(
                contest_id=tally.contest_id,
                valid=tally.valid,
                invalid_by_reason=tally.invalid_by_reason,
                ambiguous=tally.ambiguous,
                list_votes=tally.list_votes,
                candidate_votes=tally.candidate_votes,
            )
        except AttributeError as exc:
            raise ReportError(
                f"tally {tally!r} lacks {exc.name!r}; give a ContestTally (contest_id, valid, "
                "invalid_by_reason, ambiguous, list_votes, candidate_votes)"
            ) from None


@dataclass(frozen=True)
class ZeroReport:
    """"Početni izvještaj" (Art. 20(4)): the scanner's count before opening, which must be 0."""

    kind: ClassVar[str] = "zero_report"
    header: ReportHeader
    polls_opening: str  # scheduled, HH:MM
    polls_closing: str
    registered_voters: int
    counts: tuple[StyleCounts, ...]  # per ballot style, from the scanner's counters
    self_test: tuple[DeviceStatus, ...]
    seal: SealState

    @property
    def is_zero(self) -> bool:
        return all(c.cast == 0 and c.returned == 0 for c in self.counts)


@dataclass(frozen=True)
class ResultsReport:
    """"Završni izvještaj" (Art. 23(1), Art. 26): turnout and results of the automatic count."""

    kind: ClassVar[str] = "results_report"
    header: ReportHeader
    opened_at: datetime
    closed_at: datetime
    registered_voters: int
    styles: tuple[StyleCounts, ...]  # turnout is reported per ballot style
    contests: tuple[ContestTally, ...]
    seconds_per_ballot: float | None  # Art. 26 "vrijeme potrebno za korištenje uređaja" (mean), if measured
    device_problems: tuple[str, ...]
    internet_problems: tuple[str, ...]
    remarks: tuple[str, ...]
    results_digest: str  # results_digest() of the counts: compare with the transmitted results
    signed_results: SignedResults | None = None  # the signed NIST results document, printed as a QR code
    video_manifest_sha256: str | None = None  # the video service's final manifest (firmware.video), if it recorded


@dataclass(frozen=True)
class SignedResults:
    """The signed results document (NIST ElectionReport) that leaves the box, as the results report
    prints it: its SHA-256 and its Ed25519 signature, in words and as a QR code (`qr_payload`), so an
    observer's phone can check the paper against what the CEC received with the device's public key."""

    station_code: str
    sha256: str  # hex of the signed body (firmware/common/transmission/documents.py document_hash)
    signature: str  # standard base64 of the 64-byte Ed25519 signature over that body

    QR_PREFIX: ClassVar[str] = "BALLOTBOX-ER1"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ReportError(f"signed results: sha256 {self.sha256!r} is not 64 lower-case hex digits; give "
                              "the hash of the signed election report")
        try:
            raw = base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 64:
            raise ReportError(f"signed results: signature {self.signature[:16]!r}... is not base64 of a 64-byte "
                              "Ed25519 signature; give SignedDocument.signature_b64")

    @property
    def qr_payload(self) -> str:
        """``BALLOTBOX-ER1:<station>:<sha256 hex>:<signature base64>``"""
        return f"{self.QR_PREFIX}:{self.station_code}:{self.sha256}:{self.signature}"


@dataclass(frozen=True)
class SelfTestReport:
    """The operator's equipment check (Art. 11, 20(1))."""

    kind: ClassVar[str] = "self_test_report"
    header: ReportHeader
    checks: tuple[DeviceStatus, ...]
    seal: SealState | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


Report = ZeroReport | ResultsReport | SelfTestReport


@runtime_checkable
class ServiceReport(Protocol):
    """A report of another service: a frozen dataclass with `kind`, a `header` and `lay_out(page)`."""

    kind: ClassVar[str]
    header: ReportHeader

    def lay_out(self, page: ReceiptPage) -> None: ...


# ================================================================================================
# Builders
# ================================================================================================
def build_header(
    election: Election,
    *,
    device_id: str,
    software_version: str,
    software_hash: str,
    device_key_fingerprint: str,
    printed_at: datetime,
) -> ReportHeader:
    """The header of every report: election, station (names in the station's script), device, hashes."""
    script = election.script
    station = election.station
    return ReportHeader(
        election_id=election.id,
        election_title=election.title.render(script),
        election_date=election.date,
        election_mode=election.mode,
        station_code=station.code,
        station_name=station.name.render(script),
        municipality=station.municipality.render(script),
        device_id=device_id,
        software_version=software_version,
        software_hash=software_hash,
        package_hash=election.digest(),
        device_key_fingerprint=device_key_fingerprint,
        printed_at=printed_at,
        language=station.language.value,
    )


def build_zero_report(
    election: Election,
    header: ReportHeader,
    *,
    counts: Mapping[str, int] | Iterable[StyleCounts],
    self_test: Iterable[DeviceStatus],
    seal: SealState,
) -> ZeroReport:
    """The opening report. `counts` is what the scanner's counters say, per ballot style: either
    {style_id: ballots cast} or StyleCounts (cast and returned). It is printed as it is - a count that
    is not 0 is shown, with a warning not to open, never hidden."""
    _check_header(election, header)
    if isinstance(counts, Mapping):
        given = [StyleCounts(style_id=sid, cast=n) for sid, n in counts.items()]
    else:
        given = list(counts)
    return ZeroReport(
        header=header,
        polls_opening=election.polls.opening,
        polls_closing=election.polls.closing,
        registered_voters=election.station.registered_voters,
        counts=_styles_in_order(election, given),
        self_test=tuple(self_test),
        seal=seal,
    )


def build_results_report(
    election: Election,
    header: ReportHeader,
    *,
    opened_at: datetime,
    closed_at: datetime,
    styles: Iterable[StyleCounts],
    tallies: Mapping[str, Any] | Iterable[Any],
    seconds_per_ballot: float | None = None,
    device_problems: Iterable[str] = (),
    internet_problems: Iterable[str] = (),
    remarks: Iterable[str] = (),
    signed_results: SignedResults | None = None,
    video_manifest_sha256: str | None = None,
) -> ResultsReport:
    """The closing report. `tallies`: ContestTally (or objects with its attributes, e.g.
    firmware.scanner.tally.tally()'s values), as a sequence or {contest_id: tally}.

    Lists and candidates missing from a tally are printed with 0; everything is put in ballot order.
    Raises ReportError when the counts contradict the election or each other (unknown ids, a contest
    whose valid + invalid + ambiguous differs from its style's ballots cast, list votes that do not add
    up to the valid ballots...): such results must not be printed for signature."""
    _check_header(election, header)
    if signed_results is not None and signed_results.station_code != header.station_code:
        raise ReportError(f"results report: the signed results are of station {signed_results.station_code}, the "
                          f"report of {header.station_code}; print the document this box signed")
    for name, value in (("opened_at", opened_at), ("closed_at", closed_at)):
        if value.utcoffset() is None:
            raise ReportError(f"results report: {name} {value.isoformat()} has no time zone; use the device clock")
    if closed_at < opened_at:
        raise ReportError(
            f"results report: closed_at {closed_at.isoformat()} is before opened_at {opened_at.isoformat()}; "
            "check the device clock"
        )
    if seconds_per_ballot is not None and not seconds_per_ballot >= 0:
        raise ReportError(f"results report: seconds_per_ballot = {seconds_per_ballot!r}, must be >= 0 or None")
    style_counts = _styles_in_order(election, list(styles))
    contest_tallies = _tallies_in_order(election, tallies)
    cast_by_style = {s.style_id: s.cast for s in style_counts}
    for style in election.ballot_styles:
        for contest_id in style.contests:
            _check_tally(election, next(t for t in contest_tallies if t.contest_id == contest_id),
                         style.id, cast_by_style[style.id])
    return ResultsReport(
        header=header,
        opened_at=opened_at,
        closed_at=closed_at,
        registered_voters=election.station.registered_voters,
        styles=style_counts,
        contests=contest_tallies,
        seconds_per_ballot=seconds_per_ballot,
        device_problems=_texts("device_problems", device_problems),
        internet_problems=_texts("internet_problems", internet_problems),
        remarks=_texts("remarks", remarks),
        results_digest=results_digest(header.package_hash, header.station_code, style_counts, contest_tallies),
        signed_results=signed_results,
        video_manifest_sha256=video_manifest_sha256,
    )


def build_self_test_report(
    header: ReportHeader, checks: Iterable[DeviceStatus], seal: SealState | None = None
) -> SelfTestReport:
    return SelfTestReport(header=header, checks=tuple(checks), seal=seal)


def results_digest(
    package_hash: str, station_code: str, styles: Iterable[StyleCounts], contests: Iterable[ContestTally]
) -> str:
    """SHA-256 (hex) of the canonical JSON of the counts, bound to the package and the station. The
    transmitted results document should carry the same value, so the printed and the sent results can
    be compared by eye."""
    payload = {
        "package_hash": package_hash,
        "station": station_code,
        "styles": [_to_json(s) for s in styles],
        "contests": [_to_json(c) for c in contests],
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_header(election: Election, header: ReportHeader) -> None:
    digest = election.digest()
    if header.package_hash != digest:
        raise ReportError(
            f"report header is for election package {header.package_hash[:16]}..., the election given is "
            f"{digest[:16]}...; build the header and the report from the same installed package"
        )


def _styles_in_order(election: Election, given: list[StyleCounts]) -> tuple[StyleCounts, ...]:
    by_id: dict[str, StyleCounts] = {}
    known = [s.id for s in election.ballot_styles]
    for counts in given:
        if not isinstance(counts, StyleCounts):
            raise ReportError(f"ballot counts: expected StyleCounts, got {counts!r}")
        if counts.style_id not in known:
            raise ReportError(
                f"ballot counts: ballot style {counts.style_id!r} is not in election {election.id} "
                f"(styles {known}); the counters belong to another election package"
            )
        if counts.style_id in by_id:
            raise ReportError(f"ballot counts: ballot style {counts.style_id!r} is given twice")
        by_id[counts.style_id] = counts
    missing = [sid for sid in known if sid not in by_id]
    if missing:
        raise ReportError(
            f"ballot counts: no count for ballot style(s) {missing}; give every style of election "
            f"{election.id}, 0 included"
        )
    return tuple(by_id[sid] for sid in known)


def _tallies_in_order(election: Election, tallies: Mapping[str, Any] | Iterable[Any]) -> tuple[ContestTally, ...]:
    if isinstance(tallies, Mapping):
        items = []
        for key, value in tallies.items():
            tally = ContestTally.of(value)
            if tally.contest_id != key:
                raise ReportError(f"tallies: key {key!r} holds the tally of contest {tally.contest_id!r}")
            items.append(tally)
    else:
        items = [ContestTally.of(t) for t in tallies]
    by_id: dict[str, ContestTally] = {}
    for tally in items:
        try:
            election.contest(tally.contest_id)
        except KeyError:
            raise ReportError(
                f"tallies: contest {tally.contest_id!r} is not in election {election.id} "
                f"(contests {[c.id for c in election.contests]}); the tallies belong to another package"
            ) from None
        if tally.contest_id in by_id:
            raise ReportError(f"tallies: contest {tally.contest_id!r} is given twice")
        by_id[tally.contest_id] = tally
    missing = [c.id for c in election.contests if c.id not in by_id]
    if missing:
        raise ReportError(f"tallies: no tally for contest(s) {missing}; every contest is reported, 0 included")
    return tuple(_normalised(election, by_id[c.id]) for c in election.contests)


def _normalised(election: Election, tally: ContestTally) -> ContestTally:
    """The tally with every reason, list and candidate of the contest, in ballot order (0 if absent)."""
    contest = election.contest(tally.contest_id)
    where = f"tallies: contest {contest.id!r}"
    unknown_reasons = [r for r in tally.invalid_by_reason if r not in INVALID_REASONS]
    if unknown_reasons:
        raise ReportError(f"{where}: invalid_by_reason has {unknown_reasons}; the reasons are {list(INVALID_REASONS)}")
    if contest.kind == ContestKind.SINGLE_CHOICE:
        if any(tally.list_votes.values()):
            raise ReportError(f"{where}: a single_choice contest has no lists, list_votes = {dict(tally.list_votes)}")
        list_ids: list[str] = []
        candidate_ids = [c.id for c in contest.candidates]
    else:
        list_ids = [pl.id for pl in contest.lists]
        candidate_ids = [c.id for pl in contest.lists for c in pl.candidates]
        if len(set(candidate_ids)) != len(candidate_ids):
            twice = sorted({c for c in candidate_ids if candidate_ids.count(c) > 1})
            raise ReportError(
                f"election {election.id}: contest {contest.id!r} has candidate ids {twice} on more than one list, "
                "so preferential votes keyed by candidate id are ambiguous; the package must give every "
                "candidate of a contest its own id"
            )
    for name, keys, known in (("list_votes", tally.list_votes, list_ids),
                              ("candidate_votes", tally.candidate_votes, candidate_ids)):
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ReportError(f"{where}: {name} names {unknown}, which the contest does not have")
    return ContestTally(
        contest_id=contest.id,
        valid=tally.valid,
        invalid_by_reason={r: tally.invalid_by_reason.get(r, 0) for r in INVALID_REASONS},
        ambiguous=tally.ambiguous,
        list_votes={lid: tally.list_votes.get(lid, 0) for lid in list_ids},
        candidate_votes={cid: tally.candidate_votes.get(cid, 0) for cid in candidate_ids},
    )


def _check_tally(election: Election, tally: ContestTally, style_id: str, cast: int) -> None:
    contest = election.contest(tally.contest_id)
    where = f"tallies: contest {contest.id!r}"
    advice = "the counts disagree: do not sign or publish them; keep the store as evidence and call the operator"
    if tally.ballots != cast:
        raise ReportError(
            f"{where}: valid {tally.valid} + invalid {tally.invalid} + ambiguous {tally.ambiguous} = "
            f"{tally.ballots}, but ballot style {style_id!r} has {cast} ballots cast; {advice}"
        )
    if contest.kind == ContestKind.SINGLE_CHOICE:
        votes = sum(tally.candidate_votes.values())
        if not tally.valid <= votes <= tally.valid * contest.vote_for:
            raise ReportError(
                f"{where}: {votes} candidate votes from {tally.valid} valid ballots (each gives 1 to "
                f"{contest.vote_for}); {advice}"
            )
        return
    list_total = sum(tally.list_votes.values())
    if list_total != tally.valid:
        raise ReportError(f"{where}: list votes add up to {list_total}, valid ballots are {tally.valid}; {advice}")
    for pl in contest.lists:
        preferences = sum(tally.candidate_votes[c.id] for c in pl.candidates)
        limit = tally.list_votes[pl.id] * contest.max_preferences
        if preferences > limit:
            raise ReportError(
                f"{where}: list {pl.id!r} has {preferences} preferential votes from {tally.list_votes[pl.id]} "
                f"ballots (at most {contest.max_preferences} each); {advice}"
            )


def _texts(name: str, values: Iterable[str]) -> tuple[str, ...]:
    out = []
    for value in values:
        if not isinstance(value, str):
            raise ReportError(f"results report: {name} must be texts, got {value!r}")
        if value.strip():
            out.append(value.strip())
    return tuple(out)


# ================================================================================================
# JSON rendering
# ================================================================================================
def report_to_json(report: Report | ServiceReport) -> dict[str, Any]:
    """The report as JSON-safe data: field order of the model, tallies in ballot order, times ISO 8601."""
    data: dict[str, Any] = {"report": report.kind}
    data.update(_to_json(report))
    return data


def _to_json(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ReportError(f"report field value {value!r} ({type(value).__name__}) has no JSON form")


# ================================================================================================
# Layout: the report as receipt lines (shared by every raster rendering)
# ================================================================================================
LineKind = Literal["text", "row", "rule", "space", "big", "banner", "box_top", "box_bottom", "qr"]


@dataclass(frozen=True)
class Line:
    """One line of a receipt. Text is drawn between x and x_end (absolute pixels); a row has `text` on
    the left and `right` right-aligned at x_end."""

    kind: LineKind
    height: int
    text: str = ""
    right: str = ""
    style: Style = "regular"
    right_style: Style = "regular"
    size: int = 0
    align: Literal["left", "center", "right"] = "left"
    x: int = 0
    x_end: int = 0
    leader: bool = False  # dotted leader between a row's text and its number
    rule: Literal["solid", "dashed", "double", "thin"] = "solid"

    def spans(self) -> list[tuple[float, float]]:
        """The horizontal pixel ranges the line's text paints: [left text] or [left text, right text]."""
        if self.kind not in ("text", "row", "big", "banner") or not (self.text or self.right):
            return []
        width = font(self.style, self.size).getlength(self.text)
        if self.align == "center":
            start = (self.x + self.x_end - width) / 2
        elif self.align == "right":
            start = self.x_end - width
        else:
            start = float(self.x)
        out = [(start, start + width)] if self.text else []
        if self.kind == "row" and self.right:
            right_width = font(self.right_style, self.size).getlength(self.right)
            out.append((self.x_end - right_width, float(self.x_end)))
        return out


@dataclass(frozen=True)
class _Sizes:
    margin: int
    title: int
    heading: int
    body: int
    small: int
    mono: int
    big: int
    gap: int  # minimum space between a row's text and its number

    @classmethod
    def for_width(cls, width_px: int) -> _Sizes:
        # Anchors: 576 dots (80 mm paper) and 384 dots (58 mm), at 203 dpi (8 dots per mm); a body text
        # of 19-22 dots is 2.4-2.8 mm high, the size of a till receipt. Other widths interpolate.
        def pick(at384: int, at576: int) -> int:
            return max(at384 * 2 // 3, round(at384 + (at576 - at384) * (width_px - 384) / 192))

        return cls(margin=pick(6, 10), title=pick(27, 36), heading=pick(21, 25), body=pick(19, 22),
                   small=pick(16, 19), mono=pick(15, 19), big=pick(112, 150), gap=pick(10, 14))


def layout_report(report: Report | ServiceReport, election: Election, width_px: int) -> list[Line]:
    """The report as receipt lines for paper `width_px` dots wide, in the header's language and script.
    Long texts wrap; nothing is ever wider than the paper."""
    if not isinstance(width_px, int) or not MIN_WIDTH_PX <= width_px <= MAX_WIDTH_PX:
        raise ReportError(
            f"width_px = {width_px!r}: the printable width must be {MIN_WIDTH_PX}..{MAX_WIDTH_PX} dots "
            "(384 for 58 mm paper, 576 for 80 mm; printer.width_px in the device settings)"
        )
    _check_header(election, report.header)
    page = ReceiptPage(election, Messages.for_language(report.header.language), width_px)
    if isinstance(report, ZeroReport):
        page.zero_report(report)
    elif isinstance(report, ResultsReport):
        page.results_report(report)
    elif isinstance(report, SelfTestReport):
        page.self_test_report(report)
    elif callable(getattr(report, "lay_out", None)):
        # Another service's report (e.g. the authentication report, firmware.auth.report) lays itself
        # out with the page's blocks, so every report of the box prints in one hand.
        report.lay_out(page)
    else:
        raise ReportError(
            f"cannot lay out {type(report).__name__}; reports are ZeroReport, ResultsReport, SelfTestReport "
            "or a model with a lay_out(page) method"
        )
    return page.lines


class ReceiptPage:
    """Builds the lines of one report. Methods read top-down in the order things are printed. Its block
    methods (title, station_block, field, row, heading, text, rule, items, device_block, signatures,
    footer, ...) are what other services' report models use in their `lay_out(page)`."""

    def __init__(self, election: Election, msgs: Messages, width_px: int) -> None:
        self.election = election
        self.msgs = msgs
        self.script = msgs.script
        self.width = width_px
        self.s = _Sizes.for_width(width_px)
        self.left = self.s.margin
        self.right = width_px - self.s.margin
        self.lines: list[Line] = []

    # -- the three reports ---------------------------------------------------------------------
    def zero_report(self, r: ZeroReport) -> None:
        t = self.msgs.t
        self.title(t("report.zero.title"), t("report.zero.subtitle"), r.header)
        self.station_block(r.header, r.registered_voters)
        self.field(t("report.label.polling_hours"), f"{r.polls_opening}–{r.polls_closing}")
        self.rule("double")
        self.heading(t("report.zero.counted"), center=True)
        for counts in r.counts:
            self.big_count(self.style_title(counts.style_id), counts.cast)
        if r.is_zero:
            self.text(t("report.zero.statement"), style="bold", size=self.s.body, align="center")
        else:
            self.banner(t("report.zero.not_zero"))
        self.rule()
        self.checks(r.self_test)
        self.checks_summary(r.self_test)
        self.seal(r.seal)
        self.rule()
        self.device_block(r.header)
        self.rule("double")
        self.signatures(members=True)
        self.footer(t("report.zero.footer"))

    def results_report(self, r: ResultsReport) -> None:
        t = self.msgs.t
        self.title(t("report.results.title"), t("report.results.subtitle"), r.header)
        self.station_block(r.header, r.registered_voters)
        self.field(t("report.label.opened_at"), self.msgs.format_datetime(r.opened_at))
        self.field(t("report.label.closed_at"), self.msgs.format_datetime(r.closed_at))
        self.rule("double")
        self.heading(t("report.section.turnout"))
        for counts in r.styles:
            self.text(self.style_title(counts.style_id), style="bold")
            self.row(t("report.label.ballots_cast"), str(counts.cast), indent=self.s.body, bold=True)
            percent = 100.0 * counts.cast / r.registered_voters if r.registered_voters else 0.0
            self.row(t("report.label.turnout"), t("report.value.percent", value=self.msgs.format_decimal(percent)),
                     indent=self.s.body)
            self.row(t("report.label.ballots_returned"), str(counts.returned), indent=self.s.body)
            self.space(self.s.small // 2)
        for tally in r.contests:
            self.rule("double")
            self.contest(tally)
        self.rule("double")
        self.heading(t("report.section.usage"))
        seconds = "–" if r.seconds_per_ballot is None else t(
            "report.value.seconds", value=self.msgs.format_decimal(r.seconds_per_ballot))
        self.row(t("report.label.seconds_per_ballot"), seconds)
        self.items(t("report.section.device_problems"), r.device_problems)
        self.items(t("report.section.internet_problems"), r.internet_problems)
        self.items(t("report.section.remarks"), r.remarks)
        for _ in range(REMARK_LINES):  # room for the operator's and the president's handwritten remarks
            self.space(self.s.body + self.s.small)
            self.rule("thin")
        self.space(self.s.small // 2)
        self.text(t("report.results.preliminary"), size=self.s.small)
        self.rule()
        self.device_block(r.header)
        self.hash(t("report.label.results_digest"), r.results_digest, bold=True)
        if r.signed_results is not None:
            self.signed_results(r.signed_results)
        if r.video_manifest_sha256 is not None:
            self.hash(t("report.label.video_manifest"), r.video_manifest_sha256)
        self.rule("double")
        self.signatures(members=True)
        self.footer(t("report.results.footer"))

    def self_test_report(self, r: SelfTestReport) -> None:
        t = self.msgs.t
        self.title(t("report.selftest.title"), None, r.header)
        self.station_block(r.header, None)
        self.rule()
        self.checks(r.checks)
        self.checks_summary(r.checks)
        if r.seal is not None:
            self.seal(r.seal)
        self.rule()
        self.device_block(r.header)
        self.rule("double")
        self.signatures(members=False)

    # -- blocks --------------------------------------------------------------------------------
    def title(self, title: str, subtitle: str | None, header: ReportHeader) -> None:
        self.space(self.s.small // 2)
        self.text(title, style="bold", size=self.s.title, align="center")
        if subtitle:
            self.text(subtitle, size=self.s.small, align="center")
        if header.election_mode != "official":
            self.space(self.s.small // 2)
            self.banner(self.msgs.t("report.test_mode"))
        self.rule("double")

    def station_block(self, h: ReportHeader, registered_voters: int | None) -> None:
        t = self.msgs.t
        self.text(h.election_title, style="bold", size=self.s.heading)
        self.field(t("report.label.election_date"), self.msgs.format_date(h.election_date))
        self.space(self.s.small // 3)
        self.row(t("report.label.station"), h.station_code, bold=True, right_bold=True)
        self.text(h.station_name, style="bold")
        self.field(t("report.label.municipality"), h.municipality)
        if registered_voters is not None:
            self.field(t("report.label.registered_voters"), str(registered_voters))

    def big_count(self, caption: str, count: int) -> None:
        """A framed box with the style's name and its count in figures a room can read."""
        pad = self.s.gap
        self.add(Line("box_top", height=pad, x=self.left, x_end=self.right))
        for piece in wrap_text(caption, font("bold", self.s.body), self.right - self.left - 2 * pad):
            self.add(self._text_line(piece, "bold", self.s.body, "center", self.left + pad, self.right - pad))
        self.add(Line("big", height=_line_height(font("bold", self.s.big), 1.0), text=str(count), style="bold",
                      size=self.s.big, align="center", x=self.left + pad, x_end=self.right - pad))
        self.add(Line("box_bottom", height=pad, x=self.left, x_end=self.right))
        self.space(self.s.small // 2)

    def contest(self, tally: ContestTally) -> None:
        t = self.msgs.t
        contest = self.election.contest(tally.contest_id)
        self.text(contest.title.render(self.script).upper(), style="bold", size=self.s.heading)
        self.space(self.s.small // 3)
        self.row(t("report.label.valid_ballots"), str(tally.valid), bold=True)
        self.row(t("report.label.invalid_ballots"), str(tally.invalid), bold=True)
        for reason, count in tally.invalid_by_reason.items():
            if reason not in REASONS_BY_KIND[contest.kind] and count == 0:
                continue
            self.row(self.msgs.outcome(reason), str(count), indent=self.s.body, size=self.s.small)
        self.row(t("report.label.ambiguous_ballots"), str(tally.ambiguous), bold=True)
        self.row(t("report.label.total_in_box"), str(tally.ballots), bold=True)
        self.rule("dashed")
        if contest.kind == ContestKind.SINGLE_CHOICE:
            self.heading(t("report.section.candidate_votes"), size=self.s.body)
            for candidate in contest.candidates:
                self.row(f"{candidate.number}. {candidate.name.render(self.script)}",
                         str(tally.candidate_votes[candidate.id]), leader=True, hang=f"{candidate.number}. ")
            return
        self.heading(t("report.section.list_votes"), size=self.s.body)
        for pl in contest.lists:
            self.space(self.s.small // 3)
            self.row(f"{pl.number}. {pl.name.render(self.script)}", str(tally.list_votes[pl.id]),
                     bold=True, right_bold=True, leader=True, hang=f"{pl.number}. ")
            if pl.candidates:
                self.text(t("report.label.preferences"), size=self.s.small, indent=self.s.body)
            for candidate in pl.candidates:
                self.row(f"{candidate.number}. {candidate.name.render(self.script)}",
                         str(tally.candidate_votes[candidate.id]), indent=self.s.body, size=self.s.small,
                         leader=True, hang=f"{candidate.number}. ")

    def checks(self, checks: tuple[DeviceStatus, ...]) -> None:
        t = self.msgs.t
        self.heading(t("report.section.selftest"))
        for check in checks:
            key = f"device.{check.device}"
            name = t(key) if self.msgs.has(key) else check.device
            verdict = t("report.label.check_ok") if check.ok else t("report.label.check_failed")
            self.row(name, verdict, bold=not check.ok, right_bold=True)
            if check.detail:
                self.text(check.detail, size=self.s.small, indent=self.s.body)

    def checks_summary(self, checks: tuple[DeviceStatus, ...]) -> None:
        failed = sum(1 for c in checks if not c.ok)
        if failed:
            self.banner(self.msgs.t("report.selftest.some_failed", count=failed))
        else:
            self.text(self.msgs.t("report.selftest.all_ok"), style="bold", align="center")

    def seal(self, seal: SealState) -> None:
        t = self.msgs.t
        self.heading(t("report.section.seal"))
        for ok, text in ((seal.seal_intact, t("seal.intact") if seal.seal_intact else t("seal.broken")),
                         (seal.lid_closed, t("lid.closed") if seal.lid_closed else t("lid.open"))):
            if ok:
                self.text(text)
            else:
                self.banner(text)

    def device_block(self, h: ReportHeader) -> None:
        t = self.msgs.t
        self.heading(t("report.section.device"))
        self.field(t("report.label.device_id"), h.device_id)
        self.field(t("report.label.software_version"), h.software_version)
        self.hash(t("report.label.software_hash"), h.software_hash)
        self.hash(t("report.label.package_hash"), h.package_hash)
        self.hash(t("report.label.key_fingerprint"), h.device_key_fingerprint)
        self.field(t("report.label.printed_at"), self.msgs.format_datetime(h.printed_at))

    def signed_results(self, signed: SignedResults) -> None:
        t = self.msgs.t
        self.hash(t("report.label.signed_results_hash"), signed.sha256, bold=True)
        self.qr(signed.qr_payload)
        self.text(t("report.results.qr_caption"), size=self.s.small, align="center")

    def qr(self, payload: str) -> None:
        """A QR code (segno, error correction M), centred, modules of whole dots with a 4-module quiet
        zone; a line of kind "qr" whose text is the payload."""
        size = segno.make(payload, error="m", micro=False).symbol_size(scale=1, border=QR_QUIET_ZONE)[0]
        scale = max(1, min(QR_MAX_DOTS_PER_MODULE, (self.right - self.left) // size))
        self.add(Line("qr", height=size * scale, text=payload, size=scale, x=self.left, x_end=self.right))

    def hash(self, label: str, value: str, bold: bool = False) -> None:
        """A hash in monospaced groups of four, which people compare by eye between boxes."""
        self.text(label + ":", style="bold" if bold else "regular", size=self.s.small)
        indent = self.s.small // 2
        prefix, _, body = value.rpartition(":")
        if not _HEX.match(body):  # not hex: print it as it is, wrapped
            self.text(value, style="mono", size=self.s.mono, indent=indent)
            return
        if prefix:  # e.g. "SHA256:" of a key fingerprint
            self.text(prefix + ":", style="mono", size=self.s.mono, indent=indent)
        groups = [body[i : i + 4] for i in range(0, len(body), 4)]
        for i in range(0, len(groups), 8):  # 8 groups of 4 = 32 hex digits a line: a SHA-256 in two lines
            self.text(" ".join(groups[i : i + 8]), style="mono", size=self.s.mono, indent=indent)

    def items(self, heading: str, values: tuple[str, ...]) -> None:
        self.heading(heading, size=self.s.body)
        if not values:
            self.text(self.msgs.t("report.label.none"), indent=self.s.body)
        for value in values:
            self.bullet(value)

    def bullet(self, value: str) -> None:
        bullet = "– "
        self.text(bullet + value, indent=self.s.body // 2, hang=bullet)

    def signatures(self, members: bool) -> None:
        t = self.msgs.t
        self.heading(t("report.section.signatures"))
        labels: list[str] = []
        if members:
            labels.append(t("report.signature.president"))
            labels += [f"{t('report.signature.member')} {i}" for i in range(1, MEMBER_SIGNATURE_LINES + 1)]
        labels.append(t("report.signature.operator"))
        for label in labels:
            self.text(label, style="bold")
            self.space(self.s.body * 2)  # room to sign: about 6 mm on 80 mm paper
            self.rule("thin")
            self.text(t("report.signature.caption"), size=self.s.small, align="center")
            self.space(self.s.small // 2)

    def footer(self, text: str) -> None:
        self.rule()
        self.text(text, size=self.s.small, align="center")

    def style_title(self, style_id: str) -> str:
        return f"{self.election.style(style_id).title.render(self.script)}\u00a0({style_id})"

    # -- primitives ----------------------------------------------------------------------------
    def add(self, line: Line) -> None:
        self.lines.append(line)

    def space(self, height: int) -> None:
        self.add(Line("space", height=max(1, height)))

    def rule(self, kind: Literal["solid", "dashed", "double", "thin"] = "solid") -> None:
        self.add(Line("rule", height=self.s.small, x=self.left, x_end=self.right, rule=kind))

    def heading(self, text: str, size: int | None = None, center: bool = False) -> None:
        self.space(self.s.small // 3)
        self.text(text.upper(), style="bold", size=size or self.s.heading, align="center" if center else "left")

    def text(self, text: str, style: Style = "regular", size: int | None = None,
             align: Literal["left", "center", "right"] = "left", indent: int = 0, hang: str = "") -> None:
        size = size or self.s.body
        face = font(style, size)
        x = self.left + indent
        hang_px = round(face.getlength(hang)) if hang else 0
        pieces = wrap_text(text, face, self.right - x, self.right - x - hang_px)
        for i, piece in enumerate(pieces):
            start = x if i == 0 else x + hang_px
            self.add(self._text_line(piece, style, size, align, start, self.right))

    def banner(self, text: str) -> None:
        """White on black: for what must not be missed (test run, count not 0, broken seal)."""
        face = font("bold", self.s.body)
        pad = self.s.gap // 2
        for piece in wrap_text(text, face, self.right - self.left - 2 * pad):
            self.add(Line("banner", height=_line_height(face), text=piece, style="bold", size=self.s.body,
                          align="center", x=self.left + pad, x_end=self.right - pad))

    def field(self, label: str, value: str) -> None:
        """'Label   value' on one line when it fits, else the label with the value below it."""
        face = font("regular", self.s.body)
        if face.getlength(label) + self.s.gap + face.getlength(value) <= self.right - self.left:
            self.row(label, value)
        else:
            self.text(label + ":")
            self.text(value, align="right", indent=self.s.body)

    def row(self, text: str, right: str, *, indent: int = 0, size: int | None = None, bold: bool = False,
            right_bold: bool | None = None, leader: bool = False, hang: str = "") -> None:
        """Text on the left (wrapped, hanging indent `hang`), `right` right-aligned on its last line."""
        size = size or self.s.body
        style: Style = "bold" if bold else "regular"
        right_style: Style = "bold" if (bold if right_bold is None else right_bold) else "regular"
        face = font(style, size)
        x = self.left + indent
        right_width = font(right_style, size).getlength(right)
        available = self.right - x - right_width - self.s.gap
        if available < (self.right - x) * 0.4:  # a long value: the text alone, then the value right-aligned
            self.text(text, style=style, size=size, indent=indent, hang=hang)
            self.add(self._text_line(right, right_style, size, "right", x, self.right))
            return
        hang_px = round(face.getlength(hang)) if hang else 0
        pieces = wrap_text(text, face, available, available - hang_px)
        for i, piece in enumerate(pieces):
            start = x if i == 0 else x + hang_px
            if i < len(pieces) - 1:
                self.add(self._text_line(piece, style, size, "left", start, self.right))
            else:
                self.add(Line("row", height=_line_height(face), text=piece, right=right, style=style,
                              right_style=right_style, size=size, x=start, x_end=self.right, leader=leader))

    def _text_line(self, text: str, style: Style, size: int, align: Literal["left", "center", "right"],
                   x: int, x_end: int) -> Line:
        return Line("text", height=_line_height(font(style, size)), text=text, style=style, size=size, align=align,
                    x=x, x_end=x_end)


def wrap_text(text: str, face: ImageFont.FreeTypeFont, max_width: float, next_width: float | None = None) -> list[str]:
    """Break `text` into lines no wider than `max_width` pixels (`next_width` for the lines after the
    first), at spaces (not at no-break spaces); a word longer than a whole line (a hash, a long
    compound) is cut between letters."""
    if max_width < 1:
        raise ReportError(f"cannot wrap text into {max_width} pixels")
    widths = [max_width, next_width if next_width is not None else max_width]
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in (w for w in paragraph.split(" ") if w):  # split at plain spaces only: NBSP binds
            limit = widths[min(len(lines), 1)]
            candidate = f"{current} {word}" if current else word
            if face.getlength(candidate) <= limit:
                current = candidate
                continue
            if current:
                lines.append(current)
                current = ""
            limit = widths[min(len(lines), 1)]
            while face.getlength(word) > limit:
                cut = max(1, _longest_prefix(word, face, limit))
                lines.append(word[:cut])
                word = word[cut:]
                limit = widths[1]
            current = word
        lines.append(current)
    return lines


def _longest_prefix(word: str, face: ImageFont.FreeTypeFont, limit: float) -> int:
    low, high = 0, len(word)
    while low < high:
        mid = (low + high + 1) // 2
        if face.getlength(word[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def _line_height(face: ImageFont.FreeTypeFont, leading: float = 1.18) -> int:
    ascent, descent = face.getmetrics()
    return round((ascent + descent) * leading)


# ================================================================================================
# Raster rendering
# ================================================================================================
def render_raster(report: Report | ServiceReport, election: Election, width_px: int) -> Image.Image:
    """The report as a 1-bit image `width_px` dots wide, for the thermal printer (hal.printer)."""
    lines = layout_report(report, election, width_px)
    s = _Sizes.for_width(width_px)
    top, bottom = s.body, s.body * 3  # the cutter sits a few mm above the print head: feed past it
    height = top + sum(line.height for line in lines) + bottom
    image = Image.new("L", (width_px, height), 255)
    draw = ImageDraw.Draw(image)
    y = top
    box_top: int | None = None
    for line in lines:
        if line.kind == "box_top":
            box_top = y
        elif line.kind == "box_bottom" and box_top is not None:
            draw.rectangle([line.x, box_top, line.x_end - 1, y + line.height // 2], outline=0,
                           width=max(3, s.margin // 2))
            box_top = None
        elif line.kind == "rule":
            _draw_rule(draw, line, y)
        elif line.kind == "banner":
            pad = s.gap // 2
            draw.rectangle([line.x - pad, y, line.x_end + pad - 1, y + line.height - 1], fill=0)
            _draw_text(draw, line, y, fill=255)
        elif line.kind in ("text", "row", "big"):
            _draw_text(draw, line, y, fill=0)
        elif line.kind == "qr":
            _draw_qr(draw, line, y)
        y += line.height
    # Thermal dots are on or off: threshold the anti-aliased text (no dithering, which greys edges).
    return image.point(lambda v: 255 if v >= 160 else 0, mode="1")


def render_png(report: Report | ServiceReport, election: Election, path: str | Path, width_px: int = 576) -> Path:
    """Save the printed form of the report as a PNG (previews, archives, the commission's copy)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    render_raster(report, election, width_px).save(path, format="PNG")
    return path


def _draw_text(draw: ImageDraw.ImageDraw, line: Line, y: int, fill: int) -> None:
    face = font(line.style, line.size)
    ascent, descent = face.getmetrics()
    baseline = y + (line.height - ascent - descent) // 2 + ascent
    spans = line.spans()
    if line.text:
        draw.text((spans[0][0], baseline), line.text, font=face, fill=fill, anchor="ls")
    if line.kind == "row" and line.right:
        right_face = font(line.right_style, line.size)
        draw.text((line.x_end, baseline), line.right, font=right_face, fill=fill, anchor="rs")
        if line.leader:
            start = (spans[0][1] if line.text else line.x) + line.size // 2
            end = spans[-1][0] - line.size // 2
            step = max(4, line.size // 3)
            dot = max(1, line.size // 12)
            for x in range(int(start), int(end), step):
                draw.rectangle([x, baseline - dot, x + dot, baseline], fill=fill)


def _draw_qr(draw: ImageDraw.ImageDraw, line: Line, y: int) -> None:
    matrix = segno.make(line.text, error="m", micro=False).matrix
    scale = line.size
    x0 = (line.x + line.x_end - (len(matrix) + 2 * QR_QUIET_ZONE) * scale) // 2 + QR_QUIET_ZONE * scale
    y0 = y + QR_QUIET_ZONE * scale
    for row, modules in enumerate(matrix):
        for col, dark in enumerate(modules):
            if dark:
                draw.rectangle([x0 + col * scale, y0 + row * scale, x0 + (col + 1) * scale - 1,
                                y0 + (row + 1) * scale - 1], fill=0)


def _draw_rule(draw: ImageDraw.ImageDraw, line: Line, y: int) -> None:
    mid = y + line.height // 2
    if line.rule == "double":
        draw.rectangle([line.x, mid - 4, line.x_end - 1, mid - 3], fill=0)
        draw.rectangle([line.x, mid + 2, line.x_end - 1, mid + 3], fill=0)
    elif line.rule == "dashed":
        for x in range(line.x, line.x_end, 12):
            draw.rectangle([x, mid - 1, min(x + 6, line.x_end - 1), mid], fill=0)
    elif line.rule == "thin":
        draw.rectangle([line.x, mid, line.x_end - 1, mid + 1], fill=0)
    else:
        draw.rectangle([line.x, mid - 1, line.x_end - 1, mid + 1], fill=0)

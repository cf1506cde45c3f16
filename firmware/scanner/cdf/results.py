"""The station's results as a NIST SP 1500-100 (rev. 2) ElectionReport: a pure builder.

How the BiH election maps onto the CDF (ids in firmware/scanner/cdf/ids.py):

- GpUnit: the municipality (ReportingUnit "municipality", the election's scope and every contest's
  district), the polling station (ReportingUnit "polling-place" with an ExternalIdentifier "local-level"
  = the station code, VotersRegistered from the package, VotersParticipated when the caller knows it,
  CountStatus "completed") and the scanner (ReportingDevice, DeviceClass "opscan-precinct").
- single_choice contest -> CandidateContest (VotesAllowed = vote_for, "plurality" / "n-of-m"), a
  CandidateSelection per candidate with its votes.
- open_list contest -> two contests: a PartyContest ("proportional") with a PartySelection per list
  (each list is a Party) holding the list votes, and a CandidateContest ``<id>-preferences`` (VoteVariation
  "other": "open-list-preferences", VotesAllowed = max_preferences) with a CandidateSelection per
  candidate (Person + Candidate with PartyId = the list) holding the preferential votes.
- Every VoteCounts is Type "total" for the station GpUnit, DeviceClass "opscan-precinct".
- Invalid ballots: each contest's OtherCounts says Undervotes = blank ballots and Overvotes = over-voted
  (single choice) or multiple-list (open list) ballots, in *ballots* (BiH law counts invalid ballots, and
  every contest here is one ballot paper's choice). The exact split is in Election.BallotCounts, which
  the CDF lets name any count with Type "other" and an OtherType; for each contest
  ``contest:<id>:ballots | valid | invalid:blank | invalid:overvote | invalid:multiple_lists | ambiguous``
  with the count in BallotsCast (ambiguous: cast with a mark the box could not call, for the committee).
- Turnout and returned ballots: Election.BallotCounts ``ballot-style:<style>`` per ballot paper, with
  BallotsCast = ballots in the box and BallotsRejected = ballots the box handed back to the voter
  (never counted), and a Type "total" line over all styles.
- Report: Format "summary-contest", Status "unofficial-partial" (one station's preliminary count of a
  municipality-wide election; the committee's manual count and the CEC's certification come later),
  IsTest for a test package or a simulated day. ExternalIdentifiers carry the software hash, the
  election package hash and, when given, the Merkle root of the cast-vote records (so the printed QR
  code of this report's hash also binds the CVRs).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from config.election import Contest, ContestKind, Election, Name
from firmware.common.reports import ContestTally, ReportError
from firmware.scanner.cdf import ids
from omr.types import INVALID_OUTCOMES, Outcome

INVALID_REASONS: tuple[str, ...] = tuple(o.value for o in Outcome if o in INVALID_OUTCOMES)
ISSUER = "ballotbox polling-station scanner"
# The package gives names per script (Latin, Cyrillic), not per language: BCP 47 "undetermined
# language" with the script subtag says exactly that.
LATIN, CYRILLIC = "und-Latn", "und-Cyrl"
DEVICE_CLASS = {"@type": "ElectionResults.DeviceClass", "Type": "opscan-precinct"}


class CdfError(ValueError):
    """Inputs that cannot become a NIST export (unknown contest, counts that disagree...): the message
    names the field and the value and says what to do."""


class StyleCountsSource(Protocol):
    """Ballots per ballot style (firmware.scanner.store.BallotCounts is one)."""

    @property
    def cast(self) -> Mapping[str, int]: ...

    @property
    def returned(self) -> Mapping[str, int]: ...


def election_report(
    election: Election,
    tallies: Mapping[str, Any],
    counts: StyleCountsSource,
    *,
    device_id: str,
    generated: datetime,
    software_version: str,
    software_hash: str,
    voters_participated: int | None = None,
    is_test: bool | None = None,
    test_type: str | None = None,
    cvr_merkle_root: str | None = None,
) -> dict[str, Any]:
    """The ElectionReport of this station (mapping in the module docstring).

    `tallies`: {contest_id: tally} with the attributes of firmware.scanner.tally.ContestTally, one for
    every contest of `election`; `counts`: ballots cast and returned per style (store.counts()).
    `generated` is aware (the device clock at close). `is_test` defaults to the package's mode; pass
    True (and a `test_type`, e.g. "simulation") for a simulated day. Raises CdfError when the tallies
    do not belong to `election` or disagree with the ballot counts."""
    if generated.utcoffset() is None:
        raise CdfError(f"election report: generated {generated.isoformat()} has no time zone; use the device clock")
    cast, returned = _style_counts(election, counts)
    by_contest = _tallies(election, tallies, cast)
    code = election.station.code
    station_id, municipality_id = ids.station(code), ids.municipality(code)
    test = election.mode == "test" if is_test is None else is_test

    contests: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    parties: list[dict[str, Any]] = []
    persons: list[dict[str, Any]] = []
    for order, contest in enumerate(election.contests, start=1):
        t = by_contest[contest.id]
        if contest.kind == ContestKind.SINGLE_CHOICE:
            contests.append(_candidate_contest(contest, t, station_id, municipality_id, order))
        else:
            contests += _open_list_contests(contest, t, station_id, municipality_id, order)
            parties += [_party(contest, pl.id, pl.name, pl.number, station_id) for pl in contest.lists]
        for pl_id, candidate in _candidates(contest):
            persons.append({"@type": "ElectionResults.Person", "@id": ids.person(contest.id, candidate.id),
                            "FullName": _text(candidate.name)})
            entry = {"@type": "ElectionResults.Candidate", "@id": ids.candidate(contest.id, candidate.id),
                     "BallotName": _text(candidate.name), "PersonId": ids.person(contest.id, candidate.id),
                     "ExternalIdentifier": [_ext("ballot-number", str(candidate.number)),
                                            _ext("package-id", candidate.id)]}
            if pl_id is not None:
                entry["PartyId"] = ids.party(contest.id, pl_id)
            candidates.append(entry)

    report: dict[str, Any] = {
        "@type": "ElectionResults.ElectionReport",
        "Format": "summary-contest",
        "GeneratedDate": _datetime(generated),
        "Issuer": f"{ISSUER} {device_id}, polling station {code}",
        "IssuerAbbreviation": code,
        "SequenceStart": 1,
        "SequenceEnd": 1,
        "Status": "unofficial-partial",
        "VendorApplicationId": f"ballotbox {software_version}",
        "IsTest": test,
        "ExternalIdentifier": _report_identifiers(election, software_hash, cvr_merkle_root),
        "GpUnit": _gp_units(election, device_id, voters_participated),
        "Party": parties,
        "Person": persons,
        "Election": [{
            "@type": "ElectionResults.Election",
            "Name": _text(election.title),
            "Type": "general",
            "StartDate": election.date,
            "EndDate": election.date,
            "ElectionScopeId": municipality_id,
            "ExternalIdentifier": [_ext("election-id", election.id)],
            "BallotStyle": [_ballot_style(election, sid, station_id) for sid in cast],
            "BallotCounts": _ballot_counts(election, cast, returned, by_contest, station_id),
            "Contest": contests,
            "Candidate": candidates,
            "CountStatus": [{"@type": "ElectionResults.CountStatus", "Type": "total", "Status": "completed"}],
        }],
    }
    if test and test_type:
        report["TestType"] = test_type
    return report


# -- inputs --------------------------------------------------------------------------------------
def _style_counts(election: Election, counts: StyleCountsSource) -> tuple[dict[str, int], dict[str, int]]:
    known = [s.id for s in election.ballot_styles]
    out: list[dict[str, int]] = []
    for name in ("cast", "returned"):
        given = getattr(counts, name, None)
        if not isinstance(given, Mapping):
            raise CdfError(f"election report: counts.{name} must map ballot style -> count, got {given!r}; "
                           "pass the store's counts()")
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise CdfError(f"election report: counts.{name} names ballot style(s) {unknown}, which election "
                           f"{election.id} lacks (styles {known}); the counts belong to another package")
        values = {sid: given.get(sid, 0) for sid in known}
        for sid, n in values.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise CdfError(f"election report: counts.{name}[{sid!r}] = {n!r}, must be a count (int >= 0)")
        out.append(values)
    return out[0], out[1]


def _tallies(election: Election, tallies: Mapping[str, Any], cast: Mapping[str, int]) -> dict[str, ContestTally]:
    if not isinstance(tallies, Mapping):
        raise CdfError(f"election report: tallies must map contest id -> tally, got {type(tallies).__name__}")
    known = [c.id for c in election.contests]
    unknown = sorted(set(tallies) - set(known))
    if unknown:
        raise CdfError(f"election report: tallies for contest(s) {unknown}, which election {election.id} lacks "
                       f"(contests {known}); the tallies belong to another election package")
    missing = [cid for cid in known if cid not in tallies]
    if missing:
        raise CdfError(f"election report: no tally for contest(s) {missing}; every contest is reported, 0 included")
    style_of = {cid: s.id for s in election.ballot_styles for cid in s.contests}
    out: dict[str, ContestTally] = {}
    for contest in election.contests:
        try:
            t = ContestTally.of(tallies[contest.id])
        except ReportError as exc:
            raise CdfError(f"election report: contest {contest.id!r}: {exc}") from None
        _check(contest, t, cast[style_of[contest.id]], style_of[contest.id])
        out[contest.id] = t
    return out


def _check(contest: Contest, t: ContestTally, cast: int, style_id: str) -> None:
    where = f"election report: contest {contest.id!r}"
    advice = "the counts disagree: do not publish them; keep the store as evidence and call the operator"
    if t.contest_id != contest.id:
        raise CdfError(f"{where}: the tally given is of contest {t.contest_id!r}")
    bad = sorted(set(t.invalid_by_reason) - set(INVALID_REASONS))
    if bad:
        raise CdfError(f"{where}: invalid_by_reason names {bad}; the reasons are {list(INVALID_REASONS)}")
    lists = [pl.id for pl in contest.lists]
    people = [c.id for _, c in _candidates(contest)]
    for name, keys, allowed in (("list_votes", t.list_votes, lists), ("candidate_votes", t.candidate_votes, people)):
        foreign = [k for k in keys if k not in allowed]
        if foreign:
            raise CdfError(f"{where}: {name} names {foreign}, which the contest does not have")
    if t.ballots != cast:
        raise CdfError(f"{where}: valid {t.valid} + invalid {t.invalid} + ambiguous {t.ambiguous} = {t.ballots}, "
                       f"but ballot style {style_id!r} has {cast} ballots cast; {advice}")
    if contest.kind == ContestKind.OPEN_LIST and sum(t.list_votes.values()) != t.valid:
        raise CdfError(f"{where}: list votes add up to {sum(t.list_votes.values())}, valid ballots are {t.valid}; "
                       f"{advice}")


def _candidates(contest: Contest) -> list[tuple[str | None, Any]]:
    if contest.kind == ContestKind.SINGLE_CHOICE:
        return [(None, c) for c in contest.candidates]
    return [(pl.id, c) for pl in contest.lists for c in pl.candidates]


# -- parts ---------------------------------------------------------------------------------------
def _gp_units(election: Election, device_id: str, voters_participated: int | None) -> list[dict[str, Any]]:
    station = election.station
    station_unit: dict[str, Any] = {
        "@type": "ElectionResults.ReportingUnit", "@id": ids.station(station.code), "Type": "polling-place",
        "Name": _text(station.name),
        "ExternalIdentifier": [{"@type": "ElectionResults.ExternalIdentifier", "Type": "local-level",
                                "Value": station.code}],
        "VotersRegistered": station.registered_voters,
        "CountStatus": [{"@type": "ElectionResults.CountStatus", "Type": "total", "Status": "completed"}],
    }
    if voters_participated is not None:
        if not isinstance(voters_participated, int) or isinstance(voters_participated, bool) or voters_participated < 0:
            raise CdfError(f"election report: voters_participated = {voters_participated!r}, must be a count or None")
        station_unit["VotersParticipated"] = voters_participated
    return [
        {"@type": "ElectionResults.ReportingUnit", "@id": ids.municipality(station.code), "Type": "municipality",
         "Name": _text(station.municipality), "ComposingGpUnitIds": [ids.station(station.code)],
         "ExternalIdentifier": [_ext("cik-municipality-code", station.code[:3])]},
        station_unit,
        {"@type": "ElectionResults.ReportingDevice", "@id": ids.device(device_id), "SerialNumber": device_id,
         "DeviceClass": {**DEVICE_CLASS, "Manufacturer": "ballotbox", "Model": "polling-station scanner"}},
    ]


def _candidate_contest(contest: Contest, t: ContestTally, station_id: str, district: str,
                       order: int) -> dict[str, Any]:
    return {
        "@type": "ElectionResults.CandidateContest", "@id": ids.contest(contest.id),
        "Name": contest.title.latn, "BallotTitle": _text(contest.title), "ElectionDistrictId": district,
        "SequenceOrder": order, "VotesAllowed": contest.vote_for,
        "VoteVariation": "plurality" if contest.vote_for == 1 else "n-of-m",
        "ExternalIdentifier": [_ext("package-id", contest.id)],
        "OtherCounts": [_other_counts(t, station_id, overvotes=t.invalid_by_reason.get(Outcome.OVERVOTE.value, 0))],
        "ContestSelection": [
            {"@type": "ElectionResults.CandidateSelection", "@id": ids.candidate_selection(contest.id, c.id),
             "SequenceOrder": c.number, "CandidateIds": [ids.candidate(contest.id, c.id)],
             "VoteCounts": [_votes(t.candidate_votes.get(c.id, 0), station_id)]}
            for c in contest.candidates],
    }


def _open_list_contests(contest: Contest, t: ContestTally, station_id: str, district: str,
                        order: int) -> list[dict[str, Any]]:
    lists = {
        "@type": "ElectionResults.PartyContest", "@id": ids.contest(contest.id),
        "Name": contest.title.latn, "BallotTitle": _text(contest.title), "ElectionDistrictId": district,
        "SequenceOrder": order, "VoteVariation": "proportional",
        "ExternalIdentifier": [_ext("package-id", contest.id)],
        "OtherCounts": [_other_counts(t, station_id,
                                      overvotes=t.invalid_by_reason.get(Outcome.MULTIPLE_LISTS.value, 0))],
        "ContestSelection": [
            {"@type": "ElectionResults.PartySelection", "@id": ids.list_selection(contest.id, pl.id),
             "SequenceOrder": pl.number, "PartyIds": [ids.party(contest.id, pl.id)],
             "VoteCounts": [_votes(t.list_votes.get(pl.id, 0), station_id)]}
            for pl in contest.lists],
    }
    preferences = {
        "@type": "ElectionResults.CandidateContest", "@id": ids.preferences(contest.id),
        "Name": f"{contest.title.latn}: preferential votes", "BallotTitle": _text(contest.title),
        "ElectionDistrictId": district, "SequenceOrder": order, "VotesAllowed": contest.max_preferences,
        "VoteVariation": "other", "OtherVoteVariation": "open-list-preferences",
        "ExternalIdentifier": [_ext("package-id", contest.id), _ext("preferences-of", ids.contest(contest.id))],
        "PrimaryPartyIds": [ids.party(contest.id, pl.id) for pl in contest.lists],
        "ContestSelection": [
            {"@type": "ElectionResults.CandidateSelection", "@id": ids.preference_selection(contest.id, c.id),
             "SequenceOrder": pl.number * 100 + c.number, "CandidateIds": [ids.candidate(contest.id, c.id)],
             "EndorsementPartyIds": [ids.party(contest.id, pl.id)],
             "VoteCounts": [_votes(t.candidate_votes.get(c.id, 0), station_id)]}
            for pl in contest.lists for c in pl.candidates],
    }
    return [lists, preferences]


def _party(contest: Contest, list_id: str, name: Name, number: int, station_id: str) -> dict[str, Any]:
    return {"@type": "ElectionResults.Party", "@id": ids.party(contest.id, list_id), "Name": _text(name),
            "PartyScopeGpUnitIds": [station_id],
            "ExternalIdentifier": [_ext("ballot-number", str(number)), _ext("package-id", list_id),
                                   _ext("contest", ids.contest(contest.id))]}


def _ballot_style(election: Election, style_id: str, station_id: str) -> dict[str, Any]:
    style = election.style(style_id)
    content = []
    for cid in style.contests:
        contest = election.contest(cid)
        content.append({"@type": "ElectionResults.OrderedContest", "ContestId": ids.contest(cid)})
        if contest.kind == ContestKind.OPEN_LIST:
            content.append({"@type": "ElectionResults.OrderedContest", "ContestId": ids.preferences(cid)})
    return {"@type": "ElectionResults.BallotStyle", "GpUnitIds": [station_id], "OrderedContent": content,
            "ExternalIdentifier": [_ext("ballot-style", style_id)]}


def _ballot_counts(election: Election, cast: Mapping[str, int], returned: Mapping[str, int],
                   tallies: Mapping[str, ContestTally], station_id: str) -> list[dict[str, Any]]:
    out = [_ballots(station_id, "total", None, sum(cast.values()), sum(returned.values()))]
    out += [_ballots(station_id, "other", f"ballot-style:{sid}", cast[sid], returned[sid]) for sid in cast]
    for contest in election.contests:
        t = tallies[contest.id]
        named = [("ballots", t.ballots), ("valid", t.valid)]
        named += [(f"invalid:{r}", t.invalid_by_reason.get(r, 0)) for r in INVALID_REASONS]
        named.append(("ambiguous", t.ambiguous))
        out += [_ballots(station_id, "other", f"contest:{contest.id}:{name}", n, None) for name, n in named]
    return out


def _ballots(station_id: str, kind: str, other: str | None, cast: int, rejected: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"@type": "ElectionResults.BallotCounts", "GpUnitId": station_id, "Type": kind,
                             "DeviceClass": DEVICE_CLASS, "BallotsCast": cast}
    if other is not None:
        entry["OtherType"] = other
    if rejected is not None:
        entry["BallotsRejected"] = rejected
    return entry


def _other_counts(t: ContestTally, station_id: str, *, overvotes: int) -> dict[str, Any]:
    return {"@type": "ElectionResults.OtherCounts", "GpUnitId": station_id, "DeviceClass": DEVICE_CLASS,
            "Undervotes": t.invalid_by_reason.get(Outcome.BLANK.value, 0), "Overvotes": overvotes}


def _votes(count: int, station_id: str) -> dict[str, Any]:
    return {"@type": "ElectionResults.VoteCounts", "GpUnitId": station_id, "Type": "total", "Count": count}


def _report_identifiers(election: Election, software_hash: str, merkle_root: str | None) -> list[dict[str, Any]]:
    out = [_ext("software-hash-sha256", software_hash), _ext("election-package-hash-sha256", election.digest())]
    if merkle_root is not None:
        out.append(_ext("cvr-merkle-root-sha256", merkle_root))
    return out


def _ext(kind: str, value: str) -> dict[str, Any]:
    return {"@type": "ElectionResults.ExternalIdentifier", "Type": "other", "OtherType": kind, "Value": value}


def _text(name: Name) -> dict[str, Any]:
    texts = [{"@type": "ElectionResults.LanguageString", "Language": LATIN, "Content": name.latn}]
    if name.cyrl and name.cyrl != name.latn:
        texts.append({"@type": "ElectionResults.LanguageString", "Language": CYRILLIC, "Content": name.cyrl})
    return {"@type": "ElectionResults.InternationalizedText", "Text": texts}


def _datetime(value: datetime) -> str:
    """ISO 8601 with seconds and offset, no fraction: the schema's DateTimeWithZone pattern."""
    text = value.replace(microsecond=0).isoformat()
    return text.replace("+00:00", "Z")

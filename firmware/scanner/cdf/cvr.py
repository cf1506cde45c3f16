"""The cast-vote records as a NIST SP 1500-103 CastVoteRecordReport: a pure builder, and its inverse.

One CVR per ballot in the box, with nothing that could tie it to a voter or to the order of casting
(VVSG 2.0 10.2.2-B):

- its id (``UniqueId``, and the snapshot's ``@id`` made from it) is a random UUID4;
- the records are in a cryptographic shuffle (``secrets.SystemRandom``; the `rng` parameter exists for
  tests only), whatever order the store returns them in;
- no time of any kind: no per-ballot time exists (the store keeps none), and the report's required
  ``GeneratedDate`` is the election day at 00:00 UTC, the same for every box, not the time of export;
- no batch, sequence or sheet number, no image, no mark scores: the ballot style and, per contest, the
  selections and the outcome.

A CVR holds one snapshot of Type "interpreted" with a CVRContest per NIST contest of its ballot style
(ids as in the ElectionReport, firmware/scanner/cdf/ids.py; an open list is the list contest and the
``-preferences`` contest). A valid contest lists its selections (HasIndication "yes", one vote, allocable)
with ``Selections`` and ``Undervotes``; any other outcome has no selections and a Status: blank
"undervoted", overvote and multiple_lists "overvoted" + "invalidated-rules", ambiguous (a mark the box
could not call; the ballot is counted apart for the committee) "needs-adjudication" on the snapshot; in
every such case also "other" with ``OtherStatus`` = the box's outcome code, so that
`cast_vote_records_of` gives back exactly the records the tally counted.

The report's ``Notes`` carry the Merkle root of the records (firmware/scanner/cdf/merkle.py) as
``merkle-root-sha256=<hex>; leaves=<n>; rule=...``; `noted_merkle_root` reads it back.
"""

from __future__ import annotations

import random
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from config.election import Contest, ContestKind, Election
from firmware.common.transmission.documents import canonical_json
from firmware.scanner.cdf import ids
from firmware.scanner.cdf.merkle import RULE, merkle_root
from firmware.scanner.cdf.results import CdfError
from omr.types import Outcome

VERSION = "1.0.0"
NOTES = re.compile(r"^merkle-root-sha256=(?P<root>[0-9a-f]{64}); leaves=(?P<leaves>\d+); rule=")
_STATUS = {Outcome.BLANK.value: ["undervoted"], Outcome.OVERVOTE.value: ["overvoted", "invalidated-rules"],
           Outcome.MULTIPLE_LISTS.value: ["overvoted", "invalidated-rules"], Outcome.AMBIGUOUS.value: []}


def cvr_report(election: Election, records: Iterable[Mapping[str, Any]], *, device_id: str,
               software_version: str, rng: random.Random | None = None) -> dict[str, Any]:
    """The CastVoteRecordReport of `records` (as ScannerStore.cast_vote_records() gives them), shuffled
    and under random ids. `rng` only for tests: the default is the operating system's CSPRNG.
    Raises CdfError for a record that does not fit `election` (unknown style, contest, list, candidate)."""
    chance = rng if rng is not None else secrets.SystemRandom()
    code = election.station.code
    cvrs = [_cvr(election, record, index, device_id, chance) for index, record in enumerate(records)]
    chance.shuffle(cvrs)
    root = merkle_root(canonical_json(c) for c in cvrs)
    return {
        "@type": "CVR.CastVoteRecordReport",
        "Version": VERSION,
        "ReportType": ["originating-device-export"],
        "GeneratedDate": f"{election.date}T00:00:00Z",
        "ReportGeneratingDeviceIds": [ids.device(device_id)],
        "ReportingDevice": [{"@type": "CVR.ReportingDevice", "@id": ids.device(device_id), "SerialNumber": device_id,
                             "Application": f"ballotbox {software_version}", "Model": "polling-station scanner",
                             "Manufacturer": "ballotbox"}],
        "GpUnit": [{"@type": "CVR.GpUnit", "@id": ids.station(code), "Type": "polling-place",
                    "Name": election.station.name.latn, "ReportingDeviceIds": [ids.device(device_id)],
                    "Code": [{"@type": "CVR.Code", "Type": "local-level", "Value": code}]}],
        "Party": [{"@type": "CVR.Party", "@id": ids.party(c.id, pl.id), "Name": pl.name.latn,
                   "Code": [_code("ballot-number", str(pl.number))]}
                  for c in election.contests if c.kind == ContestKind.OPEN_LIST for pl in c.lists],
        "Election": [{
            "@type": "CVR.Election", "@id": ids.election(election.id), "Name": election.title.latn,
            "ElectionScopeId": ids.station(code), "Code": [_code("election-id", election.id)],
            "Candidate": [_candidate(c, pl_id, cand) for c in election.contests for pl_id, cand in _people(c)],
            "Contest": [nist for c in election.contests for nist in _contests(c)],
        }],
        "CVR": cvrs,
        "Notes": f"merkle-root-sha256={root}; leaves={len(cvrs)}; rule={RULE}",
    }


def noted_merkle_root(report: Mapping[str, Any]) -> tuple[str, int] | None:
    """(root, leaves) as the report's Notes state them, or None when the Notes do not."""
    match = NOTES.match(str(report.get("Notes", "")))
    return (match["root"], int(match["leaves"])) if match else None


def cvr_merkle_root(report: Mapping[str, Any]) -> str:
    """The Merkle root recomputed from the report's CVR array (what an observer checks)."""
    return merkle_root(canonical_json(c) for c in report.get("CVR") or ())


def cast_vote_records_of(election: Election, report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records again, in the report's order, as the store holds them ({style, contests: {id:
    {outcome, list, candidates}}}): so anyone can recount the export with firmware.scanner.tally."""
    by_selection: dict[str, tuple[str, str, str]] = {}  # selection @id -> (contest id, "list"|"candidate", id)
    for contest in election.contests:
        for pl in contest.lists:
            by_selection[ids.list_selection(contest.id, pl.id)] = (contest.id, "list", pl.id)
        for _, cand in _people(contest):
            sel = (ids.candidate_selection(contest.id, cand.id) if contest.kind == ContestKind.SINGLE_CHOICE
                   else ids.preference_selection(contest.id, cand.id))
            by_selection[sel] = (contest.id, "candidate", cand.id)
    records = []
    for n, cvr in enumerate(report.get("CVR") or ()):
        where = f"CVR[{n}] ({cvr.get('UniqueId')})"
        snapshot = next((s for s in cvr.get("CVRSnapshot", ()) if s.get("@id") == cvr.get("CurrentSnapshotId")), None)
        if snapshot is None:
            raise CdfError(f"{where}: no CVRSnapshot with the CurrentSnapshotId {cvr.get('CurrentSnapshotId')!r}")
        contests: dict[str, dict[str, Any]] = {}
        for entry in snapshot.get("CVRContest", ()):
            nist_id = entry.get("ContestId", "")
            base = nist_id.removeprefix("contest-").removesuffix("-preferences")
            result = contests.setdefault(base, {"outcome": Outcome.VALID.value, "list": None, "candidates": []})
            if "other" in entry.get("Status", ()) and not nist_id.endswith("-preferences"):
                result["outcome"] = entry.get("OtherStatus")
            for selection in entry.get("CVRContestSelection", ()):
                found = by_selection.get(selection.get("ContestSelectionId", ""))
                if found is None or found[0] != base:
                    raise CdfError(f"{where}: selection {selection.get('ContestSelectionId')!r} is not one of "
                                   f"contest {nist_id!r} of election {election.id}")
                if found[1] == "list":
                    result["list"] = found[2]
                else:
                    result["candidates"].append(found[2])
        for result in contests.values():
            result["candidates"].sort()
        records.append({"style": cvr.get("BallotStyleId"), "contests": contests})
    return records


# -- one record ----------------------------------------------------------------------------------
def _cvr(election: Election, record: Mapping[str, Any], index: int, device_id: str,
         chance: random.Random) -> dict[str, Any]:
    where = f"cast-vote record #{index + 1} (in the order given)"
    if not isinstance(record, Mapping) or not isinstance(record.get("contests"), Mapping):
        raise CdfError(f"{where}: not a cast-vote record {{'style', 'contests'}}: {record!r}; pass the store's "
                       "cast_vote_records()")
    style_id = record.get("style")
    try:
        style = election.style(style_id)
    except KeyError:
        raise CdfError(f"{where}: ballot style {style_id!r} is not in election {election.id} "
                       f"(styles {[s.id for s in election.ballot_styles]}); the store belongs to another package") from None
    if sorted(record["contests"]) != sorted(style.contests):
        raise CdfError(f"{where}: style {style_id!r} carries contests {sorted(style.contests)}, the record has "
                       f"{sorted(record['contests'])}; the store is corrupt or of another package")
    unique = str(uuid.UUID(int=chance.getrandbits(128), version=4))
    entries: list[dict[str, Any]] = []
    for cid in style.contests:
        entries += _contest_entries(election.contest(cid), record["contests"][cid], f"{where}, contest {cid!r}")
    snapshot: dict[str, Any] = {"@type": "CVR.CVRSnapshot", "@id": f"snapshot-{unique}", "Type": "interpreted",
                                "CVRContest": entries}
    if any(e.get("OtherStatus") == Outcome.AMBIGUOUS.value for e in entries):
        snapshot["Status"] = ["needs-adjudication"]
    return {"@type": "CVR.CVR", "UniqueId": unique, "ElectionId": ids.election(election.id),
            "BallotStyleId": style.id, "BallotStyleUnitId": ids.station(election.station.code),
            "CreatingDeviceId": ids.device(device_id), "CurrentSnapshotId": snapshot["@id"],
            "CVRSnapshot": [snapshot]}


def _contest_entries(contest: Contest, result: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(result, Mapping):
        raise CdfError(f"{where}: expected {{'outcome', 'list', 'candidates'}}, got {result!r}")
    outcome, list_id, chosen = result.get("outcome"), result.get("list"), list(result.get("candidates") or [])
    if outcome not in {o.value for o in Outcome}:
        raise CdfError(f"{where}: unknown outcome {outcome!r} (known: {[o.value for o in Outcome]})")
    people = {cand.id: pl_id for pl_id, cand in _people(contest)}
    unknown = [c for c in chosen if c not in people]
    if unknown:
        raise CdfError(f"{where}: candidates {unknown} are not in the contest")
    valid = outcome == Outcome.VALID.value
    if contest.kind == ContestKind.SINGLE_CHOICE:
        if valid and not 1 <= len(chosen) <= contest.vote_for:
            raise CdfError(f"{where}: a valid vote names 1..{contest.vote_for} candidates, the record {len(chosen)}")
        selections = [ids.candidate_selection(contest.id, c) for c in chosen] if valid else []
        return [_entry(ids.contest(contest.id), outcome, selections, contest.vote_for)]
    if valid and (list_id not in {pl.id for pl in contest.lists} or any(people[c] != list_id for c in chosen)
                  or len(chosen) > contest.max_preferences):
        raise CdfError(f"{where}: a valid open-list vote names one list of the contest and at most "
                       f"{contest.max_preferences} of its candidates; the record has list {list_id!r}, {chosen}")
    lists = _entry(ids.contest(contest.id), outcome, [ids.list_selection(contest.id, list_id)] if valid else [], 1)
    prefs = _entry(ids.preferences(contest.id), outcome,
                   [ids.preference_selection(contest.id, c) for c in chosen] if valid else [], contest.max_preferences)
    if not valid:
        prefs["Status"] = ["invalidated-rules", "other"]
    return [lists, prefs]


def _entry(contest_id: str, outcome: str, selections: list[str], allowed: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"@type": "CVR.CVRContest", "ContestId": contest_id}
    if outcome == Outcome.VALID.value:
        entry["Selections"] = len(selections)
        entry["Undervotes"] = allowed - len(selections)
        entry["CVRContestSelection"] = [
            {"@type": "CVR.CVRContestSelection", "ContestSelectionId": sel,
             "SelectionPosition": [{"@type": "CVR.SelectionPosition", "HasIndication": "yes", "NumberVotes": 1,
                                    "IsAllocable": "yes"}]}
            for sel in sorted(selections)]
        return entry
    entry["Selections"] = 0
    entry["Status"] = [*_STATUS[outcome], "other"]
    entry["OtherStatus"] = outcome
    return entry


# -- the election's contests, as the CVR schema declares them -------------------------------------
def _contests(contest: Contest) -> list[dict[str, Any]]:
    if contest.kind == ContestKind.SINGLE_CHOICE:
        return [{"@type": "CVR.CandidateContest", "@id": ids.contest(contest.id), "Name": contest.title.latn,
                 "VotesAllowed": contest.vote_for, "VoteVariation": "plurality" if contest.vote_for == 1 else "n-of-m",
                 "Code": [_code("package-id", contest.id)],
                 "ContestSelection": [{"@type": "CVR.CandidateSelection",
                                       "@id": ids.candidate_selection(contest.id, c.id),
                                       "CandidateIds": [ids.candidate(contest.id, c.id)]} for c in contest.candidates]}]
    return [
        {"@type": "CVR.PartyContest", "@id": ids.contest(contest.id), "Name": contest.title.latn,
         "VoteVariation": "proportional", "Code": [_code("package-id", contest.id)],
         "ContestSelection": [{"@type": "CVR.PartySelection", "@id": ids.list_selection(contest.id, pl.id),
                               "PartyIds": [ids.party(contest.id, pl.id)]} for pl in contest.lists]},
        {"@type": "CVR.CandidateContest", "@id": ids.preferences(contest.id),
         "Name": f"{contest.title.latn}: preferential votes", "VotesAllowed": contest.max_preferences,
         "VoteVariation": "other", "OtherVoteVariation": "open-list-preferences",
         "Code": [_code("package-id", contest.id)],
         "ContestSelection": [{"@type": "CVR.CandidateSelection", "@id": ids.preference_selection(contest.id, c.id),
                               "CandidateIds": [ids.candidate(contest.id, c.id)]}
                              for pl in contest.lists for c in pl.candidates]},
    ]


def _candidate(contest: Contest, list_id: str | None, cand: Any) -> dict[str, Any]:
    entry = {"@type": "CVR.Candidate", "@id": ids.candidate(contest.id, cand.id), "Name": cand.name.latn,
             "Code": [_code("ballot-number", str(cand.number))]}
    if list_id is not None:
        entry["PartyId"] = ids.party(contest.id, list_id)
    return entry


def _people(contest: Contest) -> list[tuple[str | None, Any]]:
    if contest.kind == ContestKind.SINGLE_CHOICE:
        return [(None, c) for c in contest.candidates]
    return [(pl.id, c) for pl in contest.lists for c in pl.candidates]


def _code(kind: str, value: str) -> dict[str, Any]:
    return {"@type": "CVR.Code", "Type": "other", "OtherType": kind, "Value": value}

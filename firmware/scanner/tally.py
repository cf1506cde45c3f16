"""Tallies computed from cast-vote records, at report time.

The scanner store keeps no running per-list or per-candidate totals on disk (a rollback-journal
pre-image of a running total would reveal the last vote, see firmware/scanner/store.py); results are
computed here from the cast-vote records instead.

Rules (DOMAIN.md, "Ballots and their validity"):
- every CVR carries the contests of its ballot style; a contest's `ballots` counts the CVRs that
  carry it, and `ballots == valid + sum(invalid_by_reason) + ambiguous`;
- single choice, valid: one vote for each chosen candidate (1 .. vote_for of them);
- open list, valid: one vote for the list, one preferential vote for each of its candidates in
  the record (0 .. max_preferences, all on that list; when the voter marked more, omr already
  voided the preferences and the record holds none);
- blank / overvote / multiple_lists: invalid, counted by reason; ambiguous: counted apart, for
  the committee.

A record naming an unknown style, contest, outcome, list or candidate, or a valid record that
breaks the rules above, cannot come from omr: the store is corrupt or was written for another
election. `tally` refuses it with `TallyError` rather than count something nobody cast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from config.election import Contest, ContestKind, Election
from omr.types import Outcome

INVALID_REASONS: tuple[str, ...] = (Outcome.BLANK.value, Outcome.OVERVOTE.value, Outcome.MULTIPLE_LISTS.value)


class TallyError(ValueError):
    """A cast-vote record that cannot be counted. The message names the record, field and value."""


@dataclass
class ContestTally:
    contest_id: str
    ballots: int = 0  # CVRs carrying this contest
    valid: int = 0
    invalid_by_reason: dict[str, int] = field(default_factory=lambda: {r: 0 for r in INVALID_REASONS})
    ambiguous: int = 0
    list_votes: dict[str, int] = field(default_factory=dict)  # open list only; definition order
    candidate_votes: dict[str, int] = field(default_factory=dict)  # definition order

    @property
    def invalid(self) -> int:
        return sum(self.invalid_by_reason.values())


def tally(election: Election, cvrs: Iterable[Mapping[str, Any]]) -> dict[str, ContestTally]:
    """Count `cvrs` (as `ScannerStore.cast_vote_records()` returns them) for every contest of
    `election`, in definition order. Every list and candidate appears, with 0 when it got nothing."""
    result = {c.id: _empty_tally(c) for c in election.contests}
    styles = {s.id: s.contests for s in election.ballot_styles}
    for index, cvr in enumerate(cvrs):
        where = f"cast-vote record #{index + 1} (in store order)"
        style_id, contests = _shape(cvr, where)
        if style_id not in styles:
            raise TallyError(f"{where}: ballot style {style_id!r} is not in election {election.id} "
                             f"(styles {sorted(styles)}); {_CORRUPT}")
        expected = styles[style_id]
        if sorted(contests) != sorted(expected):
            raise TallyError(f"{where}: style {style_id!r} carries contests {sorted(expected)}, the record has "
                             f"{sorted(contests)}; {_CORRUPT}")
        for contest_id in expected:
            _count(election.contest(contest_id), contests[contest_id], result[contest_id],
                   f"{where}, contest {contest_id!r}")
    return result


_CORRUPT = ("the store is corrupt or belongs to another election: do not publish these results, "
            "keep the store as evidence and call the operator")


def _empty_tally(contest: Contest) -> ContestTally:
    if contest.kind == ContestKind.SINGLE_CHOICE:
        return ContestTally(contest.id, candidate_votes={c.id: 0 for c in contest.candidates})
    owner: dict[str, str] = {}
    for pl in contest.lists:
        for c in pl.candidates:
            if c.id in owner:
                raise TallyError(f"election, contest {contest.id!r}: candidate id {c.id!r} is on lists "
                                 f"{owner[c.id]!r} and {pl.id!r}; preferential votes are counted per candidate id: "
                                 "make candidate ids unique within the contest (the CEC package is wrong)")
            owner[c.id] = pl.id
    return ContestTally(contest.id, list_votes={pl.id: 0 for pl in contest.lists},
                        candidate_votes={cid: 0 for cid in owner})


def _shape(cvr: Mapping[str, Any], where: str) -> tuple[str, Mapping[str, Any]]:
    if (not isinstance(cvr, Mapping) or not isinstance(cvr.get("style"), str)
            or not isinstance(cvr.get("contests"), Mapping)):
        raise TallyError(f"{where}: not a cast-vote record {{'style': str, 'contests': {{...}}}}: {cvr!r}; {_CORRUPT}")
    return cvr["style"], cvr["contests"]


def _count(contest: Contest, record: Any, into: ContestTally, where: str) -> None:
    if not isinstance(record, Mapping):
        raise TallyError(f"{where}: expected {{'outcome', 'list', 'candidates'}}, got {record!r}; {_CORRUPT}")
    outcome = record.get("outcome")
    list_id = record.get("list")
    candidates = record.get("candidates", [])
    if outcome not in {o.value for o in Outcome}:
        raise TallyError(f"{where}: unknown outcome {outcome!r} (known: {[o.value for o in Outcome]}); {_CORRUPT}")
    if list_id is not None and list_id not in into.list_votes:
        raise TallyError(f"{where}: unknown list {list_id!r}; {_CORRUPT}")
    if not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates):
        raise TallyError(f"{where}: 'candidates' must be a list of ids, got {candidates!r}; {_CORRUPT}")
    for cid in candidates:
        if cid not in into.candidate_votes:
            raise TallyError(f"{where}: unknown candidate {cid!r}; {_CORRUPT}")
    if len(set(candidates)) != len(candidates):
        raise TallyError(f"{where}: candidate named twice in {candidates!r}; {_CORRUPT}")

    into.ballots += 1
    if outcome == Outcome.AMBIGUOUS:
        into.ambiguous += 1
        return
    if outcome != Outcome.VALID:
        into.invalid_by_reason[outcome] += 1
        return

    if contest.kind == ContestKind.SINGLE_CHOICE:
        if list_id is not None:
            raise TallyError(f"{where}: a single-choice contest has no lists, the record names {list_id!r}; {_CORRUPT}")
        if not 1 <= len(candidates) <= contest.vote_for:
            raise TallyError(f"{where}: a valid vote names 1..{contest.vote_for} candidates, the record names "
                             f"{len(candidates)}; {_CORRUPT}")
    else:
        if list_id is None:
            raise TallyError(f"{where}: a valid open-list vote names its list, the record names none; {_CORRUPT}")
        own = {c.id for c in contest.list_by_id(list_id).candidates}
        foreign = [c for c in candidates if c not in own]
        if foreign:
            raise TallyError(f"{where}: preferences {foreign} are not on list {list_id!r}; {_CORRUPT}")
        if len(candidates) > contest.max_preferences:
            raise TallyError(f"{where}: {len(candidates)} preferences, at most {contest.max_preferences} count "
                             f"(more are voided by omr before the record is made); {_CORRUPT}")
        into.list_votes[list_id] += 1
    into.valid += 1
    for cid in candidates:
        into.candidate_votes[cid] += 1

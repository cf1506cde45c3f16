"""Logic & accuracy (L&A) test deck: printable pre-marked ballots and the tally they must produce.

    ballotbox ballots test-deck --election PATH --out DIR [--dpi D] [--key PEM]

Before election day the committee feeds the whole deck through the box and compares the box's results
report with `expected-tally.txt`: every number must be the same (VVSG-style logic & accuracy testing).

What the deck covers
- **Every option**, marked at least once in a valid way: every candidate of a single-choice contest,
  every list box (on a valid ballot with the list box marked) and every candidate of every list (as a
  counted preferential vote, when the contest allows preferences).
- **Distinct counts**, so that two options swapped anywhere between the printed ballot and the count
  show in the totals. The classic pattern: the k-th option gets k votes. For open lists the list totals
  are all different (lists with preferences need at least ceil(preferences / max_preferences) ballots,
  so the totals are "as small as possible, all different", not literally k), and the k-th candidate of a
  list gets k preferential votes.
- **A budget**: a committee feeds the deck by hand, so it is kept to about `BUDGET` (300) ballots. When
  the classic pattern would need more, the counts repeat with a period W ("window"): option k gets
  1 + (k-1) mod W votes, so any two options fewer than W places apart in the printed order - a shifted
  row, a neighbour swapped - still differ. W is lowered first for the preferences, then for the lists
  and single-choice candidates, down to 2 (adjacent options always differ). If even W = 2 does not fit,
  the deck exceeds the budget and says so (every option must be covered; that is not negotiable).
  `deck.json` records the windows chosen ("pattern").
- **Every rule** of DOMAIN.md, per contest: blank; over-vote (and every candidate marked); for open
  lists: list only, list + 1 .. max_preferences candidates, candidates of one list without its list box,
  more than max_preferences candidates (with and without the list box: list vote, preferences void),
  two list boxes, a list box with another list's candidate, candidates of two lists. A rule that cannot
  occur in a contest (e.g. two lists when there is one) is listed under `not_applicable` with the reason.
- Ballot styles carrying several contests get one deck ballot per row of the longest contest; a contest
  with fewer rows is left blank on the remaining ballots (counted as blank, stated as the purpose).

The expected tally is computed here from the deck's intentions by the DOMAIN.md rules (`expected_outcome`),
independently of omr.rules; it has the shape of `firmware.scanner.tally.tally()` serialized (`tally_to_json`).

Output in DIR: one PNG per ballot (`NNN-STYLE.png`, rendered at --dpi with pen marks - X, filled box, tick
in black, blue and dark-blue ink, one pen per ballot - and no capture distortion: these are printed; 8-bit
palette, see DeckPrinter), `deck.pdf` (all pages, lossless, at their true size),
`deck.json` and `expected-tally.txt` (headings in the station's language). A small label in the stamp zone
("test deck, ballot n / N") lets the committee match pages to the listing; the stamp zone is where the
station stamp goes and is never read as a vote.

By default the ballots carry test (specimen) ballot codes: a box set up for the official day refuses them
(reason test_ballot), so the L&A test runs with the box in test mode and a lost page can never be cast.
`--mode official` makes a deck with official codes: a stack of castable pre-marked ballots, handled as
sensitive material.
"""

from __future__ import annotations

import functools
import io
import json
import random
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageDraw

from config.election import Contest, ContestKind, Election, load_election
from omr.types import Outcome

BUDGET = 300  # ballots a committee can feed by hand in reasonable time (~25 min at 5 s a sheet)
FULL = 10**6  # window meaning "the classic pattern": every option a different count
FORMAT = "ballotbox-test-deck/1"
INVALID_REASONS: tuple[str, ...] = (Outcome.BLANK.value, Outcome.OVERVOTE.value, Outcome.MULTIPLE_LISTS.value)

# Pens of the deck: shapes of firmware.cec.pens.MarkStyle and inks of firmware.cec.pens.INKS, one pen per ballot
# (one voter, one pen), rotating so that every shape meets every ink.
SHAPES = ("x", "filled", "check")
INK_NAMES = ("black", "blue", "dark_blue")
PEN_WIDTH_MM = 0.55


class DeckError(ValueError):
    """The deck cannot be made for this election (the message says why)."""


# -- the plan: which boxes each deck ballot marks, and why ---------------------------------------------
@dataclass(frozen=True)
class ContestMarks:
    """What one deck ballot does in one contest."""

    contest: str
    marked: tuple[str, ...]  # ids inside the contest: list ids and candidate ids, in ballot order
    rule: str  # see RULES
    preferences: int | None = None  # open list: the number of candidates marked (for the rule's name)
    intended: dict[str, Any] = field(default_factory=dict)  # the designer's intention: outcome/list/candidates


@dataclass(frozen=True)
class DeckBallot:
    number: int
    style: str
    contests: dict[str, ContestMarks]
    shape: str
    ink: str

    def file_name(self, total: int) -> str:
        return f"{self.number:0{max(3, len(str(total)))}d}-{self.style}.png"


@dataclass(frozen=True)
class Pattern:
    candidate_window: int  # single-choice candidates
    list_window: int  # list totals
    preference_window: int  # preferential votes within a list
    budget: int

    def to_json(self) -> dict[str, Any]:
        def w(v: int) -> int | str:
            return "full" if v >= FULL else v
        return {"candidate_window": w(self.candidate_window), "list_window": w(self.list_window),
                "preference_window": w(self.preference_window), "budget": self.budget,
                "description": self.describe()}

    def describe(self) -> str:
        def part(name: str, v: int) -> str:
            if v >= FULL:
                return f"{name}: the k-th gets k votes (all different)"
            if v == 1:
                return f"{name}: 1 vote each (coverage only)"
            return f"{name}: the k-th gets 1 + (k-1) mod {v} votes (any two fewer than {v} apart differ)"
        lists = ("lists: all totals different" if self.list_window >= FULL else
                 f"lists: totals differ for lists fewer than {self.list_window} apart")
        return "; ".join([part("single-choice candidates", self.candidate_window), lists,
                          part("candidates within a list (preferential votes)", self.preference_window)])


@dataclass
class Deck:
    election: Election
    pattern: Pattern
    ballots: list[DeckBallot]
    not_applicable: dict[str, dict[str, str]]  # contest -> rule -> why

    @property
    def over_budget(self) -> bool:
        return len(self.ballots) > self.pattern.budget


# Rules a deck exercises, with the words of deck.json ("purpose").
RULES: dict[str, str] = {
    "valid_full": "valid: as many candidates as the contest allows (vote_for)",
    "valid_partial": "valid: fewer candidates than vote_for",
    "blank": "nothing marked: invalid (blank)",
    "overvote": "one candidate more than vote_for: invalid (over-vote)",
    "overvote_all": "every candidate marked: invalid (over-vote)",
    "list_only": "the list box only: valid vote for the list",
    "list_and_preferences": "the list box and candidates of that list: valid, with preferential votes",
    "candidates_only": "candidates of one list, list box unmarked: valid vote for that list, with preferences",
    "too_many_preferences_with_list": "the list box and more candidates than max_preferences: "
                                      "valid vote for the list, preferences void",
    "too_many_preferences_candidates_only": "more candidates than max_preferences of one list, list box unmarked: "
                                            "valid vote for the list, preferences void",
    "two_list_boxes": "two list boxes: invalid (more than one list)",
    "list_and_other_lists_candidate": "a list box and a candidate of another list: invalid (more than one list)",
    "candidates_of_two_lists": "candidates of two lists: invalid (more than one list)",
    "filler_blank": "contest left blank on purpose (the style's other contest needs more ballots)",
}
# The rules every deck must exercise, per contest kind (or list under not_applicable, with the reason).
SINGLE_CHOICE_RULES = ("valid_full", "blank", "overvote", "overvote_all", "valid_partial")
OPEN_LIST_RULES = ("blank", "list_only", "list_and_preferences", "candidates_only", "too_many_preferences_with_list",
                   "too_many_preferences_candidates_only", "two_list_boxes", "list_and_other_lists_candidate",
                   "candidates_of_two_lists")


def pattern_counts(n: int, window: int) -> list[int]:
    """Votes for the options 1..n: k for the k-th (window >= n), else 1 + (k-1) mod window."""
    return [1 + (k % window) if window < n else k + 1 for k in range(n)]


def plan_deck(election: Election, budget: int = BUDGET) -> Deck:
    """The deck for `election`: the richest pattern whose deck fits `budget` ballots (see the module doc)."""
    longest_list = max((len(pl.candidates) for c in election.contests for pl in c.lists), default=1)
    widest = max([len(c.candidates) for c in election.contests] + [len(c.lists) for c in election.contests])
    full = _plan(election, Pattern(FULL, FULL, FULL, budget))
    if not full.over_budget:
        return full
    # Phase 1: lower the preference window; phase 2: then the candidate and list windows. The deck grows
    # with the window (near enough: the largest fitting window is found by bisection, a few plans).
    phases = [(lambda w: Pattern(FULL, FULL, w, budget), longest_list - 1),
              (lambda w: Pattern(w, w, 2, budget), widest - 1)]
    for make, top in phases:
        lo, hi = 2, top  # the window we look for is in [lo, hi]
        lo_deck = _plan(election, make(lo)) if lo <= top else None
        if lo_deck is None or lo_deck.over_budget:
            continue  # even window 2 is too big in this phase
        while lo < hi:
            mid = (lo + hi + 1) // 2
            deck = _plan(election, make(mid))
            if deck.over_budget:
                hi = mid - 1
            else:
                lo, lo_deck = mid, deck
        return lo_deck
    # the smallest deck that still tells neighbours apart; run() says it is over budget
    return _plan(election, Pattern(2, 2, 2, budget))


def _plan(election: Election, pattern: Pattern) -> Deck:
    not_applicable: dict[str, dict[str, str]] = {}
    per_contest: dict[str, list[ContestMarks]] = {}
    for contest in election.contests:
        na: dict[str, str] = {}
        if contest.kind == ContestKind.SINGLE_CHOICE:
            per_contest[contest.id] = _single_choice_rows(contest, pattern.candidate_window, na)
        else:
            per_contest[contest.id] = _open_list_rows(contest, pattern.list_window, pattern.preference_window, na)
        not_applicable[contest.id] = na
    ballots: list[DeckBallot] = []
    for style in election.ballot_styles:
        rows = max(len(per_contest[cid]) for cid in style.contests)
        for i in range(rows):
            contests = {}
            for cid in style.contests:
                items = per_contest[cid]
                contests[cid] = items[i] if i < len(items) else ContestMarks(
                    cid, (), "filler_blank", intended={"outcome": Outcome.BLANK.value, "list": None, "candidates": []})
            n = len(ballots)
            ballots.append(DeckBallot(n + 1, style.id, contests, SHAPES[n % 3], INK_NAMES[(n // 3) % 3]))
    return Deck(election, pattern, ballots, not_applicable)


def _valid(list_id: str | None, candidates: Iterable[str]) -> dict[str, Any]:
    return {"outcome": Outcome.VALID.value, "list": list_id, "candidates": list(candidates)}


def _invalid(outcome: Outcome) -> dict[str, Any]:
    return {"outcome": outcome.value, "list": None, "candidates": []}


def _take(remaining: dict[str, int], order: Sequence[str], k: int, force: bool = False) -> list[str]:
    """The k options with the most votes still to give (ties: ballot order), in ballot order; each loses one.
    With `force`, a rule ballot that needs k marks gets them even when the pattern has fewer left: the
    extra votes go beyond the pattern (only on tiny lists; the expected tally counts what is marked)."""
    pos = {o: i for i, o in enumerate(order)}
    ranked = sorted((o for o in order if remaining[o] > 0), key=lambda o: (-remaining[o], pos[o]))[:k]
    for o in ranked:
        remaining[o] -= 1
    if force and len(ranked) < k:
        ranked += [o for o in order if o not in ranked][:k - len(ranked)]
    return sorted(ranked, key=pos.__getitem__)


def _single_choice_rows(contest: Contest, window: int, na: dict[str, str]) -> list[ContestMarks]:
    ids = [c.id for c in contest.candidates]
    v, n = contest.vote_for, len(ids)
    rows = [ContestMarks(contest.id, (), "blank", intended=_invalid(Outcome.BLANK))]
    if n > v:
        rows.append(ContestMarks(contest.id, tuple(ids[:v + 1]), "overvote", intended=_invalid(Outcome.OVERVOTE)))
    else:
        na["overvote"] = f"{n} candidates, vote for {v}: an over-vote cannot be marked"
    if n > v + 1:
        rows.append(ContestMarks(contest.id, tuple(ids), "overvote_all", intended=_invalid(Outcome.OVERVOTE)))
    else:
        na["overvote_all"] = "every candidate marked is the over-vote above"
    remaining = dict(zip(ids, pattern_counts(n, window)))
    if v > 1:
        picked = _take(remaining, ids, 1)
        rows.append(ContestMarks(contest.id, tuple(picked), "valid_partial", intended=_valid(None, picked)))
    else:
        na["valid_partial"] = "vote for 1: a valid ballot marks exactly one candidate"
    while any(remaining.values()):
        picked = _take(remaining, ids, v)
        rule = "valid_full" if len(picked) == v else "valid_partial"
        rows.append(ContestMarks(contest.id, tuple(picked), rule, intended=_valid(None, picked)))
    return rows


def _open_list_rows(contest: Contest, list_window: int, pref_window: int, na: dict[str, str]) -> list[ContestMarks]:
    m = contest.max_preferences
    lists = contest.lists
    cands = {pl.id: [c.id for c in pl.candidates] for pl in lists}
    remaining = {pl.id: dict(zip(cands[pl.id], pattern_counts(len(cands[pl.id]), pref_window) if m else
                                 [0] * len(cands[pl.id]))) for pl in lists}
    rule_list = max(lists, key=lambda pl: len(pl.candidates))  # first of the longest: room for every rule
    cid = contest.id
    invalid: list[ContestMarks] = [ContestMarks(cid, (), "blank", intended=_invalid(Outcome.BLANK))]
    if len(lists) >= 2:  # first and second list, first and last, second (or first) and last: other columns
        a, b, z = lists[0], lists[1], lists[-1]
        x = b if len(lists) >= 3 else a
        invalid += [
            ContestMarks(cid, (a.id, b.id), "two_list_boxes", intended=_invalid(Outcome.MULTIPLE_LISTS)),
            ContestMarks(cid, (a.id, z.candidates[0].id), "list_and_other_lists_candidate",
                         intended=_invalid(Outcome.MULTIPLE_LISTS)),
            ContestMarks(cid, (x.candidates[0].id, z.candidates[-1].id), "candidates_of_two_lists",
                         intended=_invalid(Outcome.MULTIPLE_LISTS)),
        ]
    else:
        for rule in ("two_list_boxes", "list_and_other_lists_candidate", "candidates_of_two_lists"):
            na[rule] = "the contest has one list"

    valid: dict[str, list[ContestMarks]] = {pl.id: [] for pl in lists}
    r = rule_list
    rem = remaining[r.id]
    order = cands[r.id]
    # list + 1 .. m preferences, then candidates only (1 and m preferences), taken from the pattern
    for k in range(1, min(m, len(order)) + 1):
        picked = _take(rem, order, k, force=True)
        valid[r.id].append(ContestMarks(cid, (r.id, *picked), "list_and_preferences", len(picked),
                                        _valid(r.id, picked)))
    if m > len(order):
        na[f"list_and_preferences_{len(order) + 1}..{m}"] = f"the longest list has {len(order)} candidates"
    if m == 0:
        na["list_and_preferences"] = na["candidates_only"] = "max_preferences is 0: no preferential votes"
    for k in sorted({1, min(m, len(order))}) if m else ():
        picked = _take(rem, order, k, force=True)
        valid[r.id].append(ContestMarks(cid, tuple(picked), "candidates_only", len(picked), _valid(r.id, picked)))
    if len(order) > m:
        over = tuple(order[:m + 1])
        valid[r.id].append(ContestMarks(cid, (r.id, *over), "too_many_preferences_with_list", len(over),
                                        _valid(r.id, [])))
        valid[r.id].append(ContestMarks(cid, over, "too_many_preferences_candidates_only", len(over),
                                        _valid(r.id, [])))
    else:
        na["too_many_preferences_with_list"] = na["too_many_preferences_candidates_only"] = (
            f"no list has more than max_preferences = {m} candidates")
    if m == 0:  # candidates can only be marked in a way that voids them: cover each list's candidates so
        for pl in lists:
            if pl is not r or len(order) > 1:
                valid[pl.id].append(ContestMarks(cid, (pl.id, *cands[pl.id]), "too_many_preferences_with_list",
                                                 len(cands[pl.id]), _valid(pl.id, [])))
    # the pattern: the remaining preferential votes, max_preferences per ballot, most-needed first
    for pl in lists:
        rem, order = remaining[pl.id], cands[pl.id]
        i = 0
        while m and any(rem.values()):
            picked = _take(rem, order, m)
            if i % 3 == 2:  # every third ballot of a list: candidates only, list box unmarked
                valid[pl.id].append(ContestMarks(cid, tuple(picked), "candidates_only", len(picked),
                                                 _valid(pl.id, picked)))
            else:
                valid[pl.id].append(ContestMarks(cid, (pl.id, *picked), "list_and_preferences", len(picked),
                                                 _valid(pl.id, picked)))
            i += 1
    # every list box marked at least once on a valid ballot; one explicit "list only" ballot
    for pl in lists:
        if not any(pl.id in row.marked for row in valid[pl.id]) or (pl is lists[-1]):
            valid[pl.id].append(ContestMarks(cid, (pl.id,), "list_only", intended=_valid(pl.id, [])))
    # list totals: all different (or different within the window), padded with "list only" ballots
    need = [len(valid[pl.id]) for pl in lists]
    for pl, target in zip(lists, _list_totals(need, list_window)):
        while len(valid[pl.id]) < target:
            valid[pl.id].append(ContestMarks(cid, (pl.id,), "list_only", intended=_valid(pl.id, [])))
    return invalid + [row for pl in lists for row in valid[pl.id]]


def _list_totals(need: list[int], window: int) -> list[int]:
    """Totals >= need, different for any two lists fewer than `window` apart, as small as that allows."""
    totals = [0] * len(need)
    if window >= len(need):
        last = 0
        for i in sorted(range(len(need)), key=lambda i: (need[i], i)):
            last = max(need[i], last + 1)
            totals[i] = last
        return totals
    for i, n in enumerate(need):
        taken = set(totals[max(0, i - window + 1):i])
        t = n
        while t in taken:
            t += 1
        totals[i] = t
    return totals


# -- the rules of DOMAIN.md, applied to the deck's intentions (independent of omr.rules) ---------------
def expected_outcome(contest: Contest, marked: Iterable[str]) -> dict[str, Any]:
    """What a ballot with `marked` boxes (ids inside the contest) must give, by DOMAIN.md:
    single choice: none -> blank, more than vote_for -> over-vote, else valid for the marked;
    open list: the lists touched (list box or any of its candidates); none -> blank, more than one ->
    multiple lists; one -> valid for it, with its marked candidates as preferences unless there are more
    than max_preferences (then the preferences are void)."""
    marks = set(marked)
    if contest.kind == ContestKind.SINGLE_CHOICE:
        chosen = [c.id for c in contest.candidates if c.id in marks]
        if not chosen:
            return _invalid(Outcome.BLANK)
        if len(chosen) > contest.vote_for:
            return _invalid(Outcome.OVERVOTE)
        return _valid(None, chosen)
    touched = [pl for pl in contest.lists if pl.id in marks or any(c.id in marks for c in pl.candidates)]
    if not touched:
        return _invalid(Outcome.BLANK)
    if len(touched) > 1:
        return _invalid(Outcome.MULTIPLE_LISTS)
    pl = touched[0]
    prefs = [c.id for c in pl.candidates if c.id in marks]
    if len(prefs) > contest.max_preferences:
        return {**_valid(pl.id, []), "preferences_void": True}
    return _valid(pl.id, prefs)


def _empty_tally(contest: Contest) -> dict[str, Any]:
    if contest.kind == ContestKind.SINGLE_CHOICE:
        lists: dict[str, int] = {}
        candidates = {c.id: 0 for c in contest.candidates}
    else:
        lists = {pl.id: 0 for pl in contest.lists}
        candidates = {c.id: 0 for pl in contest.lists for c in pl.candidates}
    return {"ballots": 0, "valid": 0, "invalid_by_reason": {r: 0 for r in INVALID_REASONS}, "ambiguous": 0,
            "list_votes": lists, "candidate_votes": candidates}


def expected_tally(election: Election, ballots: Sequence[DeckBallot]) -> dict[str, Any]:
    """The tally the deck must produce: {"ballots_by_style": {...}, "contests": {id: tally_to_json shape}}."""
    contests = {c.id: _empty_tally(c) for c in election.contests}
    by_style = {s.id: 0 for s in election.ballot_styles}
    for ballot in ballots:
        by_style[ballot.style] += 1
        for cid, row in ballot.contests.items():
            t = contests[cid]
            exp = expected_outcome(election.contest(cid), row.marked)
            t["ballots"] += 1
            if exp["outcome"] != Outcome.VALID:
                t["invalid_by_reason"][exp["outcome"]] += 1
                continue
            t["valid"] += 1
            if exp["list"] is not None:
                t["list_votes"][exp["list"]] += 1
            for c in exp["candidates"]:
                t["candidate_votes"][c] += 1
    return {"ballots_by_style": by_style, "contests": contests}


def tally_to_json(tallies: Mapping[str, Any], cvrs_styles: Iterable[str] | None = None) -> dict[str, Any]:
    """`firmware.scanner.tally.tally()` output (ContestTally objects) in the shape of `expected_tally`; pass the
    styles of the cast-vote records to get `ballots_by_style` too."""
    out: dict[str, Any] = {"contests": {
        cid: {"ballots": t.ballots, "valid": t.valid, "invalid_by_reason": dict(t.invalid_by_reason),
              "ambiguous": t.ambiguous, "list_votes": dict(t.list_votes), "candidate_votes": dict(t.candidate_votes)}
        for cid, t in tallies.items()}}
    if cvrs_styles is not None:
        counts: dict[str, int] = {}
        for s in cvrs_styles:
            counts[s] = counts.get(s, 0) + 1
        out["ballots_by_style"] = counts
    return out


def check_deck(deck: Deck) -> dict[str, Any]:
    """Coverage of the deck, and a self-check: every intention must agree with `expected_outcome`
    (raises DeckError when the planner and the rules disagree - a bug, never a deck to print)."""
    e = deck.election
    coverage: dict[str, Any] = {}
    for contest in e.contests:
        rules: dict[str, int] = {}
        marked_valid: set[str] = set()
        counted: set[str] = set()
        for ballot in deck.ballots:
            row = ballot.contests.get(contest.id)
            if row is None:
                continue
            exp = expected_outcome(contest, row.marked)
            got = {k: exp[k] for k in ("outcome", "list", "candidates")}
            if got != row.intended:
                raise DeckError(f"deck ballot {ballot.number}, contest {contest.id}: planned {row.intended}, "
                                f"the rules give {got} for marks {list(row.marked)} (a bug in the planner)")
            name = row.rule if row.preferences is None or row.rule.startswith("too_many") else \
                f"{row.rule}_{row.preferences}"
            rules[name] = rules.get(name, 0) + 1
            if exp["outcome"] == Outcome.VALID:
                marked_valid.update(row.marked)
                counted.update(exp["candidates"])
                if exp["list"]:
                    counted.add(exp["list"])
        options = [c.id for c in contest.candidates] + [x for pl in contest.lists
                                                         for x in (pl.id, *(c.id for c in pl.candidates))]
        not_marked = [o for o in options if o not in marked_valid]
        not_counted = [o for o in options if o not in counted]
        if not_marked or (contest.max_preferences and not_counted):
            raise DeckError(f"contest {contest.id}: options {not_marked or not_counted} are not covered by a valid "
                            "ballot (a bug in the planner)")
        base = {name.rsplit("_", 1)[0] if name[-1].isdigit() else name for name in rules}
        kinds = SINGLE_CHOICE_RULES if contest.kind == ContestKind.SINGLE_CHOICE else OPEN_LIST_RULES
        missing = [r for r in kinds if r not in base and r not in deck.not_applicable[contest.id]]
        if missing:
            raise DeckError(f"contest {contest.id}: rules {missing} are neither exercised nor marked not applicable "
                            "(a bug in the planner)")
        coverage[contest.id] = {"rules": rules, "options_marked_valid": len(options) - len(not_marked),
                                "options": len(options), "not_applicable": deck.not_applicable[contest.id]}
    return coverage


# -- drawing -----------------------------------------------------------------------------------------
def _box_index(layout: Any) -> dict[tuple[str, str], Any]:
    return {(b.contest, b.candidate or b.list): b for b in layout.boxes}


class DeckPrinter:
    """Draws deck pages: the style rendered once (firmware.cec.ballots), then per ballot the marks with the
    ballot's pen (firmware.cec.pens) and the deck label in the stamp zone.

    Pages are written as 8-bit palette PNGs: a rendered ballot has ~260 colours (grey text anti-aliasing on
    the paper colour) and the marks add blends of one ink, so 256 colours look the same, the files are a
    third of RGB and no per-page colour quantisation is needed: the style's palette is made once, and only
    the pixels the pen and the label changed are mapped to their nearest colour."""

    BASE_COLOURS = 176  # palette entries for the printed ballot; the rest are the ink's blends

    def __init__(self, election: Election, dpi: float, key: Any, label: str, total: int) -> None:
        self.election, self.dpi, self.key, self.label, self.total = election, dpi, key, label, total
        self._styles: dict[str, tuple[np.ndarray, Any, np.ndarray, np.ndarray]] = {}

    def _style(self, style_id: str) -> tuple[np.ndarray, Any, np.ndarray, np.ndarray]:
        if style_id not in self._styles:
            from firmware.cec.ballots import render_ballot

            img, layout = render_ballot(self.election, style_id, self.dpi, key=self.key)
            q = img.quantize(self.BASE_COLOURS, method=Image.Quantize.FASTOCTREE)
            palette = np.array(q.getpalette()[:3 * self.BASE_COLOURS], dtype=np.int32).reshape(-1, 3)
            self._styles[style_id] = (np.array(img), layout, np.array(q), palette)
        return self._styles[style_id]

    def draw(self, ballot: DeckBallot) -> np.ndarray:
        """The page as an RGB array."""
        from firmware.cec.pens import INKS, MarkStyle, Pen, draw_mark
        from firmware.common.fonts import load_font

        base, layout, _, _ = self._style(ballot.style)
        dpi = self.dpi
        boxes = _box_index(layout)
        pixels = base.copy()
        rng = random.Random(f"{self.election.content_digest()}:{ballot.number}")
        pen = Pen(INKS[ballot.ink], PEN_WIDTH_MM)
        for cid, row in ballot.contests.items():
            for box_id in row.marked:
                draw_mark(pixels, boxes[(cid, box_id)].rect.px(dpi), MarkStyle(ballot.shape), pen, dpi, rng)
        k = dpi / 25.4
        sx, sy, sw, sh = layout.stamp.px(dpi)
        zone = Image.fromarray(pixels[sy:sy + sh, sx:sx + sw])  # the label goes into the stamp zone only
        draw = ImageDraw.Draw(zone)
        font = load_font(max(6, round(2.8 * k)), bold=True)
        big = load_font(max(6, round(5.0 * k)), bold=True)
        draw.text((round(2 * k), round(8 * k)), self.label, font=font, fill=(90, 90, 90))
        draw.text((round(2 * k), round(13 * k)), f"{ballot.number} / {self.total}", font=big, fill=(90, 90, 90))
        pixels[sy:sy + sh, sx:sx + sw] = np.asarray(zone)
        return pixels

    def _touched(self, ballot: DeckBallot) -> list[tuple[int, int, int, int]]:
        """Pixel rectangles (x0, y0, x1, y1) that can differ from the printed ballot: each marked box with a
        margin of its own size (a mark overruns its box by well under that) and the stamp zone (the label)."""
        base, layout, _, _ = self._style(ballot.style)
        h, w = base.shape[:2]
        boxes = _box_index(layout)
        rects = [boxes[(cid, b)].rect.px(self.dpi) for cid, row in ballot.contests.items() for b in row.marked]
        out = []
        for x, y, bw, bh in rects + [layout.stamp.px(self.dpi)]:
            mx, my = (bw, bh) if len(out) < len(rects) else (2, 2)
            out.append((max(0, x - mx), max(0, y - my), min(w, x + bw + mx + 1), min(h, y + bh + my + 1)))
        return out

    def png(self, ballot: DeckBallot) -> tuple[tuple[int, int], bytes]:
        """The page as PNG bytes, and its size in px."""
        from firmware.cec.pens import INKS

        pixels = self.draw(ballot)
        base, _, base_index, base_palette = self._style(ballot.style)
        paper = np.array([int(self.election.style(ballot.style).colour[i:i + 2], 16) for i in (1, 3, 5)])
        ink = np.array(INKS[ballot.ink])
        n = 256 - len(base_palette)
        t = np.linspace(0.0, 1.0, n // 2)[:, None]
        ramps = np.vstack([paper * (1 - t) + ink * t, ink * (1 - t)])  # ink on paper, ink on black print
        palette = np.vstack([base_palette, np.round(ramps).astype(np.int32)])
        index = base_index.copy()
        for x0, y0, x1, y1 in self._touched(ballot):  # where the pen and the label went: map those pixels only
            region, was = pixels[y0:y1, x0:x1], base[y0:y1, x0:x1]
            changed = (region != was).any(axis=2)
            if not changed.any():
                continue
            px = region[changed].astype(np.int32)
            packed = (px[:, 0] << 16) | (px[:, 1] << 8) | px[:, 2]
            colours, inverse = np.unique(packed, return_inverse=True)
            rgb = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1)
            nearest = ((rgb[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
            sub = index[y0:y1, x0:x1]
            sub[changed] = nearest[inverse.reshape(-1)].astype(np.uint8)
        img = Image.fromarray(index, "P")
        img.putpalette(palette.astype(np.uint8).reshape(-1).tolist())
        buf = io.BytesIO()
        img.save(buf, "PNG", dpi=(self.dpi, self.dpi), compress_level=3)  # 6 is 20 % smaller, 2.5 x slower
        return (img.width, img.height), buf.getvalue()


def draw_ballot(election: Election, ballot: DeckBallot, total: int, dpi: float, key: Any = None,
                label: str = "TEST DECK") -> Image.Image:
    """One deck ballot as an RGB image (see DeckPrinter)."""
    from firmware.cec.ballots import load_signing_key

    return Image.fromarray(DeckPrinter(election, dpi, key or load_signing_key(), label, total).draw(ballot))


class PdfWriter:
    """A multi-page PDF of images written one page at a time (a long deck at 200 dpi does not fit in memory
    at once, which rules out PIL's save_all): each page is the image at its true size (px * 72 / dpi points),
    losslessly - the PNG's own compressed data (8-bit RGB or palette, non-interlaced) goes in unchanged with
    the PNG predictor, as img2pdf does; anything else is deflated from raw RGB."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        self.offsets: dict[int, int] = {}
        self.pages: list[int] = []
        self.next_id = 3  # 1 catalog, 2 page tree
        fp.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self._obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")

    def _obj(self, num: int, body: bytes, stream: bytes | None = None) -> None:
        self.offsets[num] = self.fp.tell()
        self.fp.write(b"%d 0 obj\n" % num + body)
        if stream is not None:
            self.fp.write(b"\nstream\n" + stream + b"\nendstream")
        self.fp.write(b"\nendobj\n")

    def add_page(self, width: int, height: int, dpi: float, png: bytes | None = None,
                 rgb: Callable[[], bytes] | None = None) -> None:
        """One page: the PNG's own data when it is 8-bit RGB or 8-bit palette, else `rgb()` (raw RGB rows)
        compressed here."""
        found = _png_data(png, width, height) if png is not None else None
        if found is not None:
            data, colours, space = found
            params = b" /DecodeParms << /Predictor 15 /Colors %d /BitsPerComponent 8 /Columns %d >>" % (colours, width)
        else:
            if rgb is None:
                raise ValueError("add_page needs a PNG (8-bit RGB or palette) or raw RGB bytes")
            data, params, space = zlib.compress(rgb(), 6), b"", b"/DeviceRGB"
        image_id, content_id, page_id = self.next_id, self.next_id + 1, self.next_id + 2
        self.next_id += 3
        self._obj(image_id, b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s "
                  b"/BitsPerComponent 8 /Filter /FlateDecode%s /Length %d >>" % (width, height, space, params,
                                                                                 len(data)), data)
        w_pt, h_pt = width * 72.0 / dpi, height * 72.0 / dpi
        content = b"q %.4f 0 0 %.4f 0 0 cm /Im0 Do Q" % (w_pt, h_pt)
        self._obj(content_id, b"<< /Length %d >>" % len(content), content)
        self._obj(page_id, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.4f %.4f] /Resources << /XObject "
                  b"<< /Im0 %d 0 R >> >> /Contents %d 0 R >>" % (w_pt, h_pt, image_id, content_id))
        self.pages.append(page_id)

    def close(self) -> None:
        kids = b" ".join(b"%d 0 R" % p for p in self.pages)
        self._obj(2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(self.pages)))
        xref = self.fp.tell()
        n = self.next_id
        self.fp.write(b"xref\n0 %d\n0000000000 65535 f \n" % n)
        for i in range(1, n):
            self.fp.write(b"%010d 00000 n \n" % self.offsets[i])
        self.fp.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (n, xref))


def _png_rgb(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as im:
        return im.convert("RGB").tobytes()


def _png_data(png: bytes, width: int, height: int) -> tuple[bytes, int, bytes] | None:
    """(zlib stream, colour components, PDF colour space) of a non-interlaced 8-bit RGB or palette PNG of
    this size, else None (the caller then compresses raw pixels itself)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, idat, header, palette = 8, [], None, b""
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            return None  # transparency has no place on a printed page
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        return None
    w, h, depth, colour, _, _, interlace = header
    if (w, h, depth, interlace) != (width, height, 8, 0):
        return None
    if colour == 2:
        return b"".join(idat), 3, b"/DeviceRGB"
    if colour == 3 and palette and len(palette) % 3 == 0:
        return b"".join(idat), 1, b"[/Indexed /DeviceRGB %d <%s>]" % (len(palette) // 3 - 1, palette.hex().encode())
    return None


# -- words for the committee -----------------------------------------------------------------------------
# Deck-specific texts are not (yet) in config/messages; the report labels are taken from there. The Latin
# texts below are worded to read correctly in Bosnian, Croatian and Serbian; sr-Cyrl is their transliteration.
_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "LOGIC & ACCURACY TEST DECK - EXPECTED RESULTS",
        "intro": "Feed every ballot of the deck into the scanner, then compare the final report with the numbers "
                 "below: every number must be the same. A difference means the box must not be used: call the "
                 "operator and the election commission.",
        "official": "CAUTION: these ballots carry the official ballot code of this election and would be counted "
                    "on election day. Count them, keep them under the committee's control and destroy them after "
                    "the test, with a record.",
        "test": "The ballots carry the test (specimen) ballot code: they are read only in test mode.",
        "label": "TEST DECK",
        "deck": "Ballots in the deck",
        "size": "{n} ballots",
        "listing": "THE BALLOTS OF THE DECK (what the panel must show for each)",
        "list": "list", "pref": "preferences", "nothing": "nothing marked",
        "x": "X", "filled": "filled box", "check": "tick",
        "black": "black", "blue": "blue", "dark_blue": "dark blue",
        "pattern": "Pattern",
    },
    "bs": {
        "title": "KONTROLNI LISTIĆI ZA PROVJERU SKENERA – OČEKIVANI REZULTATI",
        "intro": "Ubacite u skener sve kontrolne listiće, pa uporedite završni izvještaj s brojevima ispod: svaki "
                 "broj mora biti isti. Ako se ijedan broj razlikuje, uređaj se ne smije koristiti: pozovite "
                 "operatera i izbornu komisiju.",
        "official": "PAŽNJA: ovi listići nose službeni kod ovih izbora i na dan izbora bili bi prebrojani. "
                    "Prebrojte ih, držite pod nadzorom biračkog odbora i nakon provjere ih uništite uz zapisnik.",
        "test": "Listići nose probni kod: skener ih čita samo u probnom radu.",
        "label": "KONTROLNI LISTIĆ",
        "deck": "Listića u kontrolnom skupu",
        "size": "{n} listića",
        "listing": "KONTROLNI LISTIĆI (šta ekran skenera mora pokazati za svaki)",
        "list": "lista", "pref": "preferencijalni glasovi", "nothing": "ništa nije označeno",
        "x": "X", "filled": "popunjeno polje", "check": "kvačica",
        "black": "crna", "blue": "plava", "dark_blue": "tamnoplava",
        "pattern": "Raspored glasova",
    },
}
_RULE_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "valid_full": "vote for the allowed number of candidates", "valid_partial": "fewer candidates than allowed",
        "blank": "nothing marked", "overvote": "one candidate too many", "overvote_all": "every candidate marked",
        "list_only": "list only", "list_and_preferences": "list and {k} of its candidates",
        "candidates_only": "{k} candidate(s) of one list, list box empty",
        "too_many_preferences_with_list": "list and {k} candidates: preferences void",
        "too_many_preferences_candidates_only": "{k} candidates without the list box: preferences void",
        "two_list_boxes": "two lists", "list_and_other_lists_candidate": "list and another list's candidate",
        "candidates_of_two_lists": "candidates of two lists", "filler_blank": "left blank on purpose",
    },
    "bs": {
        "valid_full": "glas za dozvoljeni broj kandidata", "valid_partial": "manje kandidata od dozvoljenog",
        "blank": "ništa nije označeno", "overvote": "jedan kandidat previše", "overvote_all": "označeni svi kandidati",
        "list_only": "samo lista", "list_and_preferences": "lista i kandidati s te liste: {k}",
        "candidates_only": "samo kandidati jedne liste, bez liste: {k}",
        "too_many_preferences_with_list": "lista i previše kandidata ({k}): preferencijalni glasovi ne važe",
        "too_many_preferences_candidates_only": "previše kandidata bez liste ({k}): važi samo glas za listu",
        "two_list_boxes": "dvije liste", "list_and_other_lists_candidate": "lista i kandidat druge liste",
        "candidates_of_two_lists": "kandidati dvije liste", "filler_blank": "namjerno ostavljeno prazno",
    },
}


def _words(language: str) -> tuple[dict[str, str], dict[str, str], bool]:
    """Deck texts and rule words for a station language, and whether to transliterate to Cyrillic."""
    if language == "en":
        return _TEXTS["en"], _RULE_WORDS["en"], False
    return _TEXTS["bs"], _RULE_WORDS["bs"], language == "sr-Cyrl"


def write_expected_text(deck: Deck, tally: Mapping[str, Any], path: Path) -> None:
    from firmware.common.i18n import Messages, latin_message_to_cyrillic

    e = deck.election
    msgs = Messages.for_language(e.station.language)
    texts, rule_words, cyrillic = _words(str(e.station.language))

    def tr(s: str) -> str:
        return latin_message_to_cyrillic(s) if cyrillic else s

    def w(key: str, **kw: Any) -> str:
        return tr(texts[key].format(**kw))

    script = e.script
    t = msgs.t
    width = 72
    lines: list[str] = []

    def row(label: str, value: Any, indent: int = 0) -> None:
        label = " " * indent + label
        value = str(value)
        dots = width - len(label) - len(value) - 2
        lines.append(f"{label} {'.' * max(1, dots)} {value}")

    lines += [w("title"), "=" * width,
              f"{t('report.label.election')}: {e.title.render(script)}",
              f"{t('report.label.election_date')}: {msgs.format_date(e.date)}",
              f"{t('report.label.station')}: {e.station.code} · {e.station.name.render(script)}",
              f"{t('report.label.municipality')}: {e.station.municipality.render(script)}",
              f"{t('report.label.package_hash')}: {e.digest()}", ""]
    lines += _wrap(w("intro"), width) + [""]
    lines += _wrap(w("official") if e.mode == "official" else w("test"), width) + [""]
    lines.append(t("report.section.turnout"))
    lines.append("-" * width)
    for style in e.ballot_styles:
        row(f"{style.id}  {style.title.render(script)}", tally["ballots_by_style"][style.id])
    row(w("deck"), len(deck.ballots))
    lines.append("")
    for contest in e.contests:
        ct = tally["contests"][contest.id]
        lines += [contest.title.render(script).upper(), "-" * width]
        row(t("report.label.valid_ballots"), ct["valid"])
        row(t("report.label.invalid_ballots"), sum(ct["invalid_by_reason"].values()))
        shown = (Outcome.BLANK.value, Outcome.OVERVOTE.value) if contest.kind == ContestKind.SINGLE_CHOICE else \
            (Outcome.BLANK.value, Outcome.MULTIPLE_LISTS.value)
        for reason, count in ct["invalid_by_reason"].items():
            if reason in shown or count:
                row(msgs.outcome(reason), count, indent=4)
        row(t("report.label.ambiguous_ballots"), ct["ambiguous"])
        row(t("report.label.total_in_box"), ct["ballots"])
        if contest.kind == ContestKind.SINGLE_CHOICE:
            lines.append(t("report.section.candidate_votes"))
            for c in contest.candidates:
                row(f"{c.number}. {c.name.render(script)}", ct["candidate_votes"][c.id], indent=2)
        else:
            lines.append(t("report.section.list_votes"))
            for pl in contest.lists:
                row(f"{pl.number}. {pl.name.render(script)}", ct["list_votes"][pl.id], indent=2)
                lines.append("      " + t("report.label.preferences"))
                for c in pl.candidates:
                    row(f"{c.number}. {c.name.render(script)}", ct["candidate_votes"][c.id], indent=6)
        lines.append("")
    lines += [f"{w('pattern')}: {deck.pattern.describe()}", ""]
    lines += [w("listing"), "-" * width]
    digits = len(str(len(deck.ballots)))
    for ballot in deck.ballots:
        verdict = _ballot_verdict(e, ballot)
        lines.append(f"{ballot.number:>{digits}}  {ballot.style}  {msgs.verdict(verdict)}  "
                     f"({w(ballot.shape)}, {w(ballot.ink)})")
        for cid, r in ballot.contests.items():
            contest = e.contest(cid)
            exp = expected_outcome(contest, r.marked)
            what = tr(rule_words[r.rule].format(k=r.preferences or 0))
            marks = _describe_marks(contest, r.marked) or w("nothing")
            if exp["outcome"] == Outcome.VALID:
                result = msgs.outcome("valid")
                if exp["list"]:
                    result += f": {w('list')} {contest.list_by_id(exp['list']).number}"
                if exp["candidates"]:
                    result += ("; " + w("pref") + " " if exp["list"] else ": ") + _describe_marks(
                        contest, exp["candidates"], with_lists=False)
                if exp.get("preferences_void"):
                    result += f" ({msgs.reason('preferences_void')})"
            else:
                result = msgs.outcome(exp["outcome"])
            lines.append(f"{' ' * (digits + 2)}{contest.title.render(script)}: {what}")
            lines.append(f"{' ' * (digits + 4)}{marks} -> {result}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _wrap(text: str, width: int) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width)


def _describe_marks(contest: Contest, marked: Iterable[str], with_lists: bool = True) -> str:
    """Boxes as printed: candidate numbers; on open lists 'L3' for list 3's box and '3-5' for its candidate 5."""
    marks = set(marked)
    if contest.kind == ContestKind.SINGLE_CHOICE:
        return ", ".join(str(c.number) for c in contest.candidates if c.id in marks)
    out = []
    for pl in contest.lists:
        if with_lists and pl.id in marks:
            out.append(f"L{pl.number}")
        out += [f"{pl.number}-{c.number}" for c in pl.candidates if c.id in marks]
    return ", ".join(out)


def _ballot_verdict(election: Election, ballot: DeckBallot) -> str:
    outcomes = [expected_outcome(election.contest(cid), r.marked)["outcome"] for cid, r in ballot.contests.items()]
    return "valid" if all(o == Outcome.VALID for o in outcomes) else "invalid"


# -- deck.json ----------------------------------------------------------------------------------------
def deck_json(deck: Deck, tally: Mapping[str, Any], coverage: Mapping[str, Any], dpi: float,
              key_note: str) -> dict[str, Any]:
    e = deck.election
    total = len(deck.ballots)
    ballots = []
    for b in deck.ballots:
        contests = {}
        for cid, r in b.contests.items():
            exp = expected_outcome(e.contest(cid), r.marked)
            contests[cid] = {"marked": list(r.marked), "rule": r.rule, "preferences": r.preferences,
                             "purpose": RULES[r.rule], "expected": exp}
        ballots.append({"number": b.number, "file": b.file_name(total), "style": b.style,
                        "mark": {"shape": b.shape, "ink": b.ink, "pen_mm": PEN_WIDTH_MM},
                        "marked_boxes": [f"{cid}/{x}" for cid, r in b.contests.items() for x in r.marked],
                        "verdict": _ballot_verdict(e, b), "contests": contests})
    return {
        "format": FORMAT,
        "election": {"id": e.id, "title": e.title.latn, "date": e.date, "mode": e.mode, "station": e.station.code,
                     "package_digest": e.digest(), "content_digest": e.content_digest()},
        "signing_key": key_note,
        "dpi": dpi,
        "pdf": "deck.pdf",
        "size": total,
        "over_budget": deck.over_budget,
        "pattern": deck.pattern.to_json(),
        "coverage": coverage,
        "ballots": ballots,
        "expected_tally": tally,
    }


# -- the command ----------------------------------------------------------------------------------
def make_deck(election: Election, out: Path, dpi: float, key: Any = None, key_note: str = "test",
              budget: int = BUDGET, workers: int | None = None) -> dict[str, Any]:
    """Plan, check and write the deck into `out`; returns the deck.json document. Pages are drawn by
    `workers` processes (default: one per core, at most 4), written in deck order."""
    deck = plan_deck(election, budget)
    coverage = check_deck(deck)
    tally = expected_tally(election, deck.ballots)
    out.mkdir(parents=True, exist_ok=True)
    _remove_previous(out)
    texts, _, cyrillic = _words(str(election.station.language))
    label = texts["label"]
    if cyrillic:
        from firmware.common.i18n import latin_message_to_cyrillic
        label = latin_message_to_cyrillic(label)
    total = len(deck.ballots)
    with open(out / "deck.pdf", "wb") as fp:
        pdf = PdfWriter(fp)
        for ballot, (size, png) in zip(deck.ballots, _pages(election, deck.ballots, dpi, key, label, workers)):
            (out / ballot.file_name(total)).write_bytes(png)
            pdf.add_page(size[0], size[1], dpi, png=png, rgb=functools.partial(_png_rgb, png))
        pdf.close()
    doc = deck_json(deck, tally, coverage, dpi, key_note)
    (out / "deck.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    write_expected_text(deck, tally, out / "expected-tally.txt")
    return doc


_WORKER: dict[str, DeckPrinter] = {}


def _worker_init(election: Election, key_raw: bytes, total: int, dpi: float, label: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _WORKER["printer"] = DeckPrinter(election, dpi, Ed25519PrivateKey.from_private_bytes(key_raw), label, total)


def _worker_page(ballot: DeckBallot) -> tuple[tuple[int, int], bytes]:
    return _WORKER["printer"].png(ballot)


def _pages(election: Election, ballots: Sequence[DeckBallot], dpi: float, key: Any, label: str,
           workers: int | None) -> Iterable[tuple[tuple[int, int], bytes]]:
    """The PNG of every ballot, in order; in parallel when there are cores and enough pages."""
    import os

    from cryptography.hazmat.primitives import serialization

    from firmware.cec.ballots import load_signing_key

    key = key or load_signing_key()
    n = workers if workers is not None else min(4, os.cpu_count() or 1)
    if n > 1 and len(ballots) >= 8:
        from concurrent.futures import ProcessPoolExecutor

        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        try:
            pool = ProcessPoolExecutor(n, initializer=_worker_init,
                                       initargs=(election, raw, len(ballots), dpi, label))
        except (OSError, NotImplementedError):  # no process support (e.g. no /dev/shm): draw them here
            pool = None
        if pool is not None:
            with pool:
                yield from pool.map(_worker_page, ballots, chunksize=4)
            return
    printer = DeckPrinter(election, dpi, key, label, len(ballots))
    for ballot in ballots:
        yield printer.png(ballot)


def _remove_previous(out: Path) -> None:
    """Pages of an earlier deck in `out` (as its deck.json lists them): stale pages would be mistaken for
    this deck's. Nothing else in the directory is touched."""
    old = out / "deck.json"
    if not old.is_file():
        return
    try:
        files = [b["file"] for b in json.loads(old.read_text(encoding="utf-8")).get("ballots", [])]
    except (ValueError, TypeError, KeyError, AttributeError):
        return
    for name in files:
        p = out / Path(str(name)).name
        if p.suffix == ".png" and p.is_file():
            p.unlink()


def run(args: Any) -> int:
    from firmware.cec.ballots import BallotKeyError, load_signing_key
    from firmware.errors import EXIT_OK, UserError
    from omr.layout import LayoutError

    election = load_election(args.election)
    if getattr(args, "mode", "test") == "test" and election.mode != "test":
        # A deck is specimen ballots by default: a box on an official day refuses them (reason test_ballot),
        # so a lost page can never be cast. The L&A test runs with the box set up in test mode.
        election = election.model_copy(update={"mode": "test"})
    if not 50 <= args.dpi <= 1200:
        raise UserError(f"--dpi {args.dpi}: give 50 to 1200")
    try:
        key = load_signing_key(args.key) if args.key else load_signing_key()
        doc = make_deck(election, args.out, float(args.dpi), key, key_note=str(args.key) if args.key else "test",
                        workers=getattr(args, "workers", None))
    except (BallotKeyError, LayoutError, DeckError) as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{args.out}: cannot write the deck ({exc})") from None
    if args.key is None:
        print("ballotbox: note: signed with the TEST key (config/keys): not for an official election", file=sys.stderr)
    if election.mode == "official":
        print("ballotbox: caution: the deck carries OFFICIAL ballot codes of this election: count the pages, keep "
              "them under the committee's control and destroy them after the test", file=sys.stderr)
    by_style = ", ".join(f"{s} {n}" for s, n in doc["expected_tally"]["ballots_by_style"].items())
    print(f"{args.out}: test deck of {doc['size']} ballots ({by_style}) at {args.dpi:g} dpi: "
          f"{doc['size']} PNG, deck.pdf, deck.json, expected-tally.txt")
    if doc["over_budget"]:
        print(f"ballotbox: note: {doc['size']} ballots is over the budget of {BUDGET}: covering every option with "
              "neighbours told apart needs that many", file=sys.stderr)
    print(f"  pattern: {doc['pattern']['description']}")
    for cid, t in doc["expected_tally"]["contests"].items():
        inv = ", ".join(f"{r} {n}" for r, n in t["invalid_by_reason"].items() if n)
        print(f"  {cid}: {t['ballots']} ballots, valid {t['valid']}, invalid {sum(t['invalid_by_reason'].values())}"
              f" ({inv}), ambiguous {t['ambiguous']}")
    return EXIT_OK

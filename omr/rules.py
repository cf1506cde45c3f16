"""Contest rules of DOMAIN.md as one pure function per contest kind: marks in, outcome out.

The numbers (vote_for, max_preferences) come from the election definition, never from here.
A marginal mark anywhere in a contest makes the contest AMBIGUOUS, naming the box: the box
never guesses which way a faint mark was meant (the voter can take the ballot back; a cast one
goes to the committee).
"""

from __future__ import annotations

from config.election import Contest, ContestKind
from omr.types import INVALID_OUTCOMES, ContestResult, Outcome, Reason, Verdict


def decide_contest(contest: Contest, marked: set[str], marginal: set[str] | dict[str, str]) -> ContestResult:
    """`marked` / `marginal`: box ids of the contest ("<list id>" for a list box, "<candidate id>");
    `marginal` may map each box to its Reason code (default marginal_mark)."""
    if marginal:
        why = marginal if isinstance(marginal, dict) else {b: Reason.MARGINAL_MARK for b in marginal}
        return ContestResult(contest.id, Outcome.AMBIGUOUS,
                             reasons=tuple(f"{why[b] or Reason.MARGINAL_MARK}:{contest.id}/{b}" for b in sorted(why)))
    if contest.kind == ContestKind.SINGLE_CHOICE:
        return _single_choice(contest, marked)
    return _open_list(contest, marked)


def _single_choice(contest: Contest, marked: set[str]) -> ContestResult:
    chosen = [c.id for c in contest.candidates if c.id in marked]  # definition order, deterministic
    if not chosen:
        return ContestResult(contest.id, Outcome.BLANK, reasons=(Reason.BLANK,))
    if len(chosen) > contest.vote_for:
        return ContestResult(contest.id, Outcome.OVERVOTE, reasons=(Reason.OVERVOTE,))
    return ContestResult(contest.id, Outcome.VALID, candidates=tuple(chosen))


def _open_list(contest: Contest, marked: set[str]) -> ContestResult:
    # A list counts as chosen when its own box is marked or any of its candidates is (DOMAIN.md:
    # "candidates of one list only, list box unmarked -> valid vote for that list").
    chosen_lists = [pl for pl in contest.lists if pl.id in marked or any(c.id in marked for c in pl.candidates)]
    if not chosen_lists:
        return ContestResult(contest.id, Outcome.BLANK, reasons=(Reason.BLANK,))
    if len(chosen_lists) > 1:
        return ContestResult(contest.id, Outcome.MULTIPLE_LISTS, reasons=(Reason.MULTIPLE_LISTS,))
    pl = chosen_lists[0]
    prefs = tuple(c.id for c in pl.candidates if c.id in marked)
    if len(prefs) > contest.max_preferences:
        # More than max_preferences candidates: the list vote stands, the preferences are void.
        return ContestResult(contest.id, Outcome.VALID, list=pl.id, reasons=(Reason.PREFERENCES_VOID,))
    return ContestResult(contest.id, Outcome.VALID, list=pl.id, candidates=prefs)


def ballot_verdict(results: list[ContestResult]) -> tuple[Verdict, tuple[str, ...]]:
    """Ambiguous beats invalid beats valid: an unclear mark must be seen even on an invalid ballot."""
    reasons = tuple(r for res in results for r in res.reasons)
    if any(r.outcome == Outcome.AMBIGUOUS for r in results):
        return Verdict.AMBIGUOUS, reasons
    if any(r.outcome in INVALID_OUTCOMES for r in results):
        return Verdict.INVALID, reasons
    return Verdict.VALID, reasons

"""Every validity rule of DOMAIN.md, table-driven, plus properties over random mark sets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.election import Election
from omr.rules import ballot_verdict, decide_contest
from omr.types import Outcome, Reason, Verdict

MAYOR = [  # marked boxes -> outcome, candidates, reasons
    (set(), Outcome.BLANK, (), (Reason.BLANK,)),
    ({"m3"}, Outcome.VALID, ("m3",), ()),
    ({"m3", "m5"}, Outcome.OVERVOTE, (), (Reason.OVERVOTE,)),
    ({"m1", "m2", "m8"}, Outcome.OVERVOTE, (), (Reason.OVERVOTE,)),
]


@pytest.mark.parametrize("marked, outcome, candidates, reasons", MAYOR)
def test_mayor_rules(election: Election, marked, outcome, candidates, reasons) -> None:
    r = decide_contest(election.contest("nacelnik"), marked, set())
    assert (r.outcome, r.candidates, r.reasons, r.list) == (outcome, candidates, reasons, None)


COUNCIL = [  # marked boxes -> outcome, list, preferences, reasons
    ("nothing marked -> blank", set(), Outcome.BLANK, None, (), (Reason.BLANK,)),
    ("list only", {"l2"}, Outcome.VALID, "l2", (), ()),
    ("list + 1", {"l2", "l2c4"}, Outcome.VALID, "l2", ("l2c4",), ()),
    ("list + 3", {"l2", "l2c1", "l2c4", "l2c9"}, Outcome.VALID, "l2", ("l2c1", "l2c4", "l2c9"), ()),
    ("candidates only -> their list", {"l5c2", "l5c7"}, Outcome.VALID, "l5", ("l5c2", "l5c7"), ()),
    ("list + 4 -> list only", {"l2", "l2c1", "l2c2", "l2c3", "l2c4"}, Outcome.VALID, "l2", (), (Reason.PREFERENCES_VOID,)),
    ("4 candidates, no list box", {"l1c1", "l1c2", "l1c3", "l1c5"}, Outcome.VALID, "l1", (), (Reason.PREFERENCES_VOID,)),
    ("two list boxes", {"l2", "l3"}, Outcome.MULTIPLE_LISTS, None, (), (Reason.MULTIPLE_LISTS,)),
    ("list + other list's candidate", {"l2", "l3c1"}, Outcome.MULTIPLE_LISTS, None, (), (Reason.MULTIPLE_LISTS,)),
    ("candidates of two lists", {"l2c1", "l3c1"}, Outcome.MULTIPLE_LISTS, None, (), (Reason.MULTIPLE_LISTS,)),
    ("independent candidate's list", {"l12"}, Outcome.VALID, "l12", (), ()),
]


@pytest.mark.parametrize("case, marked, outcome, list_id, prefs, reasons", COUNCIL, ids=[c[0] for c in COUNCIL])
def test_council_rules(election: Election, case, marked, outcome, list_id, prefs, reasons) -> None:
    r = decide_contest(election.contest("vijece"), marked, set())
    assert (r.outcome, r.list, r.candidates, r.reasons) == (outcome, list_id, prefs, reasons)


def test_max_preferences_comes_from_the_definition(election: Election) -> None:
    five = election.contest("vijece").model_copy(update={"max_preferences": 5})
    marked = {"l2", "l2c1", "l2c2", "l2c3", "l2c4"}
    assert decide_contest(five, marked, set()).candidates == ("l2c1", "l2c2", "l2c3", "l2c4")


def test_marginal_mark_makes_the_contest_ambiguous_and_names_the_box(election: Election) -> None:
    r = decide_contest(election.contest("nacelnik"), {"m1"}, {"m4"})
    assert r.outcome == Outcome.AMBIGUOUS and r.reasons == ("marginal_mark:nacelnik/m4",)


def test_verdict_ambiguous_beats_invalid_beats_valid(election: Election) -> None:
    valid = decide_contest(election.contest("nacelnik"), {"m1"}, set())
    blank = decide_contest(election.contest("vijece"), set(), set())
    unclear = decide_contest(election.contest("vijece"), set(), {"l1"})
    assert ballot_verdict([valid])[0] == Verdict.VALID
    assert ballot_verdict([valid, blank]) == (Verdict.INVALID, (Reason.BLANK,))
    assert ballot_verdict([blank, unclear])[0] == Verdict.AMBIGUOUS


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_open_list_properties(election: Election, data: st.DataObject) -> None:
    contest = election.contest("vijece")
    all_boxes = [pl.id for pl in contest.lists] + [c.id for pl in contest.lists for c in pl.candidates]
    marked = set(data.draw(st.lists(st.sampled_from(all_boxes), max_size=8)))
    r = decide_contest(contest, marked, set())
    owner = {c.id: pl.id for pl in contest.lists for c in pl.candidates}
    lists = {owner.get(b, b) for b in marked}
    if not marked:
        assert r.outcome == Outcome.BLANK
    elif len(lists) > 1:
        assert r.outcome == Outcome.MULTIPLE_LISTS and r.list is None
    else:
        assert r.outcome == Outcome.VALID and r.list == lists.pop()
        prefs = {b for b in marked if b in owner}
        assert set(r.candidates) == (prefs if len(prefs) <= contest.max_preferences else set())
        assert all(owner[c] == r.list for c in r.candidates)

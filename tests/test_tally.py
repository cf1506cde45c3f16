"""Tallies from cast-vote records: the DOMAIN.md rules, exact numbers, corrupt records refused."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.election import SAMPLE_ELECTION, Election, load_election
from firmware.scanner.store import ScannerStore
from firmware.scanner.tally import ContestTally, TallyError, tally


@pytest.fixture(scope="module")
def election() -> Election:
    return load_election(SAMPLE_ELECTION)


@pytest.fixture
def tmp_path(tmpfs_path: Path) -> Path:
    return tmpfs_path


def mayor(outcome: str, *candidates: str) -> dict[str, Any]:
    return {"style": "N", "contests": {"nacelnik": {"outcome": outcome, "list": None, "candidates": list(candidates)}}}


def council(outcome: str, list_id: str | None = None, *candidates: str) -> dict[str, Any]:
    return {"style": "V", "contests": {"vijece": {"outcome": outcome, "list": list_id, "candidates": list(candidates)}}}


def test_single_choice_counts_votes_and_invalid_by_reason(election: Election) -> None:
    result = tally(election, [mayor("valid", "m3"), mayor("valid", "m3"), mayor("valid", "m8"),
                              mayor("blank"), mayor("overvote"), mayor("overvote"), mayor("ambiguous")])
    n = result["nacelnik"]
    assert n == ContestTally(
        contest_id="nacelnik", ballots=7, valid=3,
        invalid_by_reason={"blank": 1, "overvote": 2, "multiple_lists": 0}, ambiguous=1, list_votes={},
        candidate_votes={"m1": 0, "m2": 0, "m3": 2, "m4": 0, "m5": 0, "m6": 0, "m7": 0, "m8": 1})
    assert n.invalid == 3
    assert result["vijece"].ballots == 0  # the other style's contest is there, all zeros


def test_open_list_counts_list_votes_and_preferences(election: Election) -> None:
    result = tally(election, [
        council("valid", "l3"),  # list only
        council("valid", "l3", "l3c2", "l3c7", "l3c9"),  # list + 3 preferences
        council("valid", "l3", "l3c2"),  # candidates of one list, list box unmarked: same record
        council("valid", "l1"),  # > 3 preferences: omr voided them, the record holds the list only
        council("multiple_lists"),
        council("blank"),
        council("ambiguous"),
    ])
    v = result["vijece"]
    assert (v.ballots, v.valid, v.ambiguous) == (7, 4, 1)
    assert v.invalid_by_reason == {"blank": 1, "overvote": 0, "multiple_lists": 1}
    assert list(v.list_votes) == [f"l{i}" for i in range(1, 13)]  # definition order, every list
    assert v.list_votes == {"l1": 1, "l2": 0, "l3": 3, "l4": 0, "l5": 0, "l6": 0, "l7": 0, "l8": 0, "l9": 0,
                            "l10": 0, "l11": 0, "l12": 0}
    assert {c: n for c, n in v.candidate_votes.items() if n} == {"l3c2": 2, "l3c7": 1, "l3c9": 1}
    assert len(v.candidate_votes) == sum(len(pl.candidates) for pl in election.contest("vijece").lists)
    assert list(v.candidate_votes)[:3] == ["l1c1", "l1c2", "l1c3"] and list(v.candidate_votes)[-1] == "l12c1"
    assert result["nacelnik"].ballots == 0


def test_no_ballots_gives_zeros_for_everything(election: Election) -> None:
    result = tally(election, [])
    assert list(result) == ["nacelnik", "vijece"]
    assert all(t.ballots == t.valid == t.ambiguous == t.invalid == 0 for t in result.values())
    assert set(result["nacelnik"].candidate_votes.values()) == {0}
    assert set(result["vijece"].list_votes.values()) == {0}


@pytest.mark.parametrize(("cvr", "message"), [
    ({"style": "Z", "contests": {}}, "ballot style 'Z' is not in election"),
    ({"style": "N", "contests": {"gradonacelnik": {"outcome": "valid", "list": None, "candidates": ["m1"]}}},
     r"style 'N' carries contests \['nacelnik'\], the record has \['gradonacelnik'\]"),
    (mayor("valid", "m9"), "unknown candidate 'm9'"),
    (mayor("valid", "m1", "m2"), "a valid vote names 1..1 candidates, the record names 2"),
    (mayor("valid"), "a valid vote names 1..1 candidates, the record names 0"),
    (mayor("counted", "m1"), "unknown outcome 'counted'"),
    (mayor("valid", "m1", "m1"), "candidate named twice"),
    (council("valid", "l13"), "unknown list 'l13'"),
    (council("valid", None, "l3c2"), "names its list, the record names none"),
    (council("valid", "l3", "l4c1"), r"preferences \['l4c1'\] are not on list 'l3'"),
    (council("valid", "l3", "l3c1", "l3c2", "l3c3", "l3c4"), "4 preferences, at most 3 count"),
    (council("valid", "l3", "x9"), "unknown candidate 'x9'"),
    ({"style": "V"}, "not a cast-vote record"),
])
def test_records_that_omr_cannot_make_are_refused(election: Election, cvr: dict[str, Any], message: str) -> None:
    with pytest.raises(TallyError, match=message) as refused:
        tally(election, [mayor("valid", "m1"), cvr])
    assert "cast-vote record #2" in str(refused.value)
    assert "do not publish these results" in str(refused.value)


def test_candidate_ids_shared_by_two_lists_are_refused(election: Election) -> None:
    """config.election refuses such a package on load; tally does not rely on it (an Election built
    without validation would merge two candidates' preferential votes)."""
    council_def = election.contest("vijece")
    first, second = council_def.lists[0], council_def.lists[1]
    clash = second.model_copy(update={"candidates": [first.candidates[0], *second.candidates[1:]]})
    broken_council = council_def.model_copy(update={"lists": [first, clash, *council_def.lists[2:]]})
    broken = election.model_copy(update={"contests": [broken_council if c.id == "vijece" else c
                                                      for c in election.contests]})
    with pytest.raises(TallyError, match="candidate id 'l1c1' is on lists 'l1' and 'l2'"):
        tally(broken, [])


def test_tally_of_a_store_equals_tally_of_what_was_cast(tmp_path: Path, election: Election) -> None:
    rng = random.Random(4)
    council_def = election.contest("vijece")
    cast: list[dict[str, Any]] = []
    for _ in range(120):
        if rng.random() < 0.5:
            cast.append(mayor("valid", rng.choice(["m1", "m2", "m5"])) if rng.random() < 0.9 else mayor("blank"))
        else:
            pl = rng.choice(council_def.lists[:4])
            cast.append(council("valid", pl.id, *sorted(c.id for c in pl.candidates[: rng.randint(0, 3)])))
    with ScannerStore.for_election(tmp_path / "scanner.db", election) as store:
        store.set_polls_state("open", datetime(2024, 10, 6, 7, tzinfo=UTC))
        for cvr in cast:
            store.confirm_cast(store.begin_cast(cvr))
        stored = store.cast_vote_records()
    assert stored != cast  # slot order, not cast order
    assert tally(election, stored) == tally(election, cast)
    n, v = tally(election, stored)["nacelnik"], tally(election, stored)["vijece"]
    assert n.ballots + v.ballots == 120
    assert n.valid + n.invalid_by_reason["blank"] == n.ballots
    assert sum(v.list_votes.values()) == v.valid == v.ballots

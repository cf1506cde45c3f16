"""The logic & accuracy test deck (`ballotbox ballots test-deck`, firmware/cec/test_deck.py).

The deck for the sample election is made once through the CLI (at 100 dpi to keep it quick) and then:
its coverage is checked from deck.json; the L&A test itself is run - every page through
omr.interpret.interpret, the cast-vote records through firmware.scanner.tally.tally - and must reproduce the
expected tally exactly; a corrupt election file ends with exit 2 and a clear message.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ballotbox.cli import main
from config.election import SAMPLE_ELECTION, Election, load_election, parse_election
from firmware.cec.test_deck import (
    BUDGET,
    FULL,
    Pattern,
    PdfWriter,
    _list_totals,
    check_deck,
    expected_outcome,
    expected_tally,
    pattern_counts,
    plan_deck,
    tally_to_json,
)

DPI = 100  # the interpreter reads 5 mm boxes at 100 dpi; the printed deck defaults to 200


@pytest.fixture(scope="module")
def deck_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deck")
    rc = main(["ballots", "test-deck", "--election", str(SAMPLE_ELECTION), "--out", str(out), "--dpi", str(DPI)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def deck(deck_dir: Path) -> dict[str, Any]:
    return json.loads((deck_dir / "deck.json").read_text(encoding="utf-8"))


def _ballots_of(deck: dict[str, Any], contest: str) -> list[dict[str, Any]]:
    return [b["contests"][contest] for b in deck["ballots"] if contest in b["contests"]]


# -- coverage ---------------------------------------------------------------------------------
def test_deck_files_and_size(deck_dir: Path, deck: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    n = deck["size"]
    assert n == len(deck["ballots"]) <= BUDGET and not deck["over_budget"]
    assert [b["number"] for b in deck["ballots"]] == list(range(1, n + 1))
    for b in deck["ballots"][:: max(1, n // 12)]:
        with Image.open(deck_dir / b["file"]) as im:
            assert round(im.info["dpi"][0]) == DPI
            assert im.size[0] == round((210 if b["style"] == "N" else 297) / 25.4 * DPI)
    assert len(list(deck_dir.glob("*.png"))) == n
    pdf = (deck_dir / "deck.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type /Page\b(?!s)", pdf)) == n
    text = (deck_dir / "expected-tally.txt").read_text(encoding="utf-8")
    assert "Važeći glasački listići" in text and "Glasovi za liste" in text  # station language: bs
    assert "NEVAŽEĆI" in text and "VAŽEĆI" in text  # per ballot, what the panel must show


def test_every_candidate_and_list_is_covered_with_distinct_counts(deck: dict[str, Any], election: Election) -> None:
    tally = deck["expected_tally"]["contests"]
    mayor = election.contest("nacelnik")
    # the classic pattern: the k-th candidate gets k votes
    assert tally["nacelnik"]["candidate_votes"] == {c.id: k for k, c in enumerate(mayor.candidates, start=1)}

    council = election.contest("vijece")
    rows = _ballots_of(deck, "vijece")
    votes = tally["vijece"]["list_votes"]
    assert len(set(votes.values())) == len(votes), f"list totals must all differ: {votes}"
    for pl in council.lists:
        assert any(r["expected"]["outcome"] == "valid" and r["expected"]["list"] == pl.id and pl.id in r["marked"]
                   for r in rows), f"list box {pl.id} never marked on a valid ballot"
    window = deck["pattern"]["preference_window"]
    window = FULL if window == "full" else window
    prefs = tally["vijece"]["candidate_votes"]
    for pl in council.lists:
        counts = [prefs[c.id] for c in pl.candidates]
        assert min(counts) >= 1, f"list {pl.id}: a candidate without a counted preferential vote: {counts}"
        for i in range(len(counts)):
            for j in range(i + 1, min(len(counts), i + window)):
                assert counts[i] != counts[j], f"list {pl.id}: candidates {i + 1} and {j + 1} both get {counts[i]}"
        assert counts == pattern_counts(len(counts), window)


def test_every_rule_is_exercised(deck: dict[str, Any]) -> None:
    rules = {cid: set(c["rules"]) for cid, c in deck["coverage"].items()}
    assert {"blank", "overvote", "overvote_all", "valid_full"} <= rules["nacelnik"]
    assert {"blank", "list_only", "list_and_preferences_1", "list_and_preferences_2", "list_and_preferences_3",
            "candidates_only_1", "candidates_only_3", "too_many_preferences_with_list",
            "too_many_preferences_candidates_only", "two_list_boxes", "list_and_other_lists_candidate",
            "candidates_of_two_lists"} <= rules["vijece"]
    assert deck["coverage"]["vijece"]["not_applicable"] == {}
    want = {"blank": "blank", "overvote": "overvote", "overvote_all": "overvote", "two_list_boxes": "multiple_lists",
            "list_and_other_lists_candidate": "multiple_lists", "candidates_of_two_lists": "multiple_lists"}
    for b in deck["ballots"]:
        for r in b["contests"].values():
            exp = r["expected"]
            if r["rule"] in want:
                assert exp["outcome"] == want[r["rule"]], (b["number"], r)
            elif r["rule"].startswith("too_many_preferences"):
                assert exp["outcome"] == "valid" and exp["list"] and exp["candidates"] == [] and \
                    len([m for m in r["marked"] if m != exp["list"]]) > 3
            else:
                assert exp["outcome"] == "valid", (b["number"], r)
            assert b["marked_boxes"] == [f"{c}/{m}" for c, rr in b["contests"].items() for m in rr["marked"]]
        all_valid = all(r["expected"]["outcome"] == "valid" for r in b["contests"].values())
        assert b["verdict"] == ("valid" if all_valid else "invalid")
    assert {"x", "filled", "check"} == {b["mark"]["shape"] for b in deck["ballots"]}
    assert {"black", "blue", "dark_blue"} == {b["mark"]["ink"] for b in deck["ballots"]}


def test_expected_tally_adds_up_from_the_ballots(deck: dict[str, Any], election: Election) -> None:
    exp = deck["expected_tally"]
    assert exp["ballots_by_style"] == dict(Counter(b["style"] for b in deck["ballots"]))
    for contest in election.contests:
        t = exp["contests"][contest.id]
        rows = _ballots_of(deck, contest.id)
        assert t["ballots"] == len(rows) == t["valid"] + sum(t["invalid_by_reason"].values()) + t["ambiguous"]
        assert t["ambiguous"] == 0
        assert t["valid"] == sum(r["expected"]["outcome"] == "valid" for r in rows)
        for reason, n in t["invalid_by_reason"].items():
            assert n == sum(r["expected"]["outcome"] == reason for r in rows)
        assert t["candidate_votes"] == {cid: sum(cid in r["expected"]["candidates"] for r in rows)
                                        for cid in t["candidate_votes"]}
        if contest.lists:
            assert sum(t["list_votes"].values()) == t["valid"]


# -- the rules, by DOMAIN.md, independent of omr.rules ----------------------------------------------
def test_expected_outcome_follows_domain_rules(election: Election) -> None:
    mayor, council = election.contest("nacelnik"), election.contest("vijece")
    assert expected_outcome(mayor, [])["outcome"] == "blank"
    assert expected_outcome(mayor, ["m3"]) == {"outcome": "valid", "list": None, "candidates": ["m3"]}
    assert expected_outcome(mayor, ["m3", "m4"])["outcome"] == "overvote"
    assert expected_outcome(council, [])["outcome"] == "blank"
    assert expected_outcome(council, ["l2"]) == {"outcome": "valid", "list": "l2", "candidates": []}
    assert expected_outcome(council, ["l2", "l2c1", "l2c5"]) == {"outcome": "valid", "list": "l2",
                                                                 "candidates": ["l2c1", "l2c5"]}
    assert expected_outcome(council, ["l2c4", "l2c2"]) == {"outcome": "valid", "list": "l2",
                                                           "candidates": ["l2c2", "l2c4"]}
    void = expected_outcome(council, ["l2", "l2c1", "l2c2", "l2c3", "l2c4"])
    assert void == {"outcome": "valid", "list": "l2", "candidates": [], "preferences_void": True}
    assert expected_outcome(council, ["l2c1", "l2c2", "l2c3", "l2c4"])["candidates"] == []
    assert expected_outcome(council, ["l2", "l3"])["outcome"] == "multiple_lists"
    assert expected_outcome(council, ["l2", "l3c1"])["outcome"] == "multiple_lists"
    assert expected_outcome(council, ["l2c1", "l3c1"])["outcome"] == "multiple_lists"


def test_pattern_helpers() -> None:
    assert pattern_counts(5, FULL) == [1, 2, 3, 4, 5]
    assert pattern_counts(7, 3) == [1, 2, 3, 1, 2, 3, 1]
    totals = _list_totals([5, 1, 5, 3, 3], FULL)
    assert len(set(totals)) == 5 and all(t >= n for t, n in zip(totals, [5, 1, 5, 3, 3]))
    windowed = _list_totals([4, 4, 4, 4], 2)
    assert windowed == [4, 5, 4, 5]


# -- other elections: the planner's limits --------------------------------------------------------------
def test_large_council_deck_keeps_neighbours_apart_over_budget(large_election: Election) -> None:
    deck = plan_deck(large_election)
    check_deck(deck)  # raises if an option is uncovered or an intention breaks the rules
    assert deck.over_budget and deck.pattern.preference_window == 2 and deck.pattern.list_window == 2
    tally = expected_tally(large_election, deck.ballots)["contests"]["vijece"]
    for pl in large_election.contest("vijece").lists:
        counts = [tally["candidate_votes"][c.id] for c in pl.candidates]
        assert all(a != b for a, b in itertools.pairwise(counts)) and min(counts) >= 1
    votes = list(tally["list_votes"].values())
    assert all(a != b for a, b in itertools.pairwise(votes))
    # 1050 candidates at 1-2 preferential votes each, 3 per ballot: the floor is ~525 ballots
    assert 525 <= len(deck.ballots) <= 600


def _variant(election: Election, **changes: Any) -> Election:
    data = election.model_dump(mode="json")
    for contest in data["contests"]:
        contest.update(changes.get(contest["id"], {}))
    if changes.get("one_style"):
        data["ballot_styles"] = [{**data["ballot_styles"][1], "contests": ["nacelnik", "vijece"]}]
    return parse_election(data, "variant")


def test_style_with_two_contests_and_vote_for_two(election: Election) -> None:
    e = _variant(election, nacelnik={"vote_for": 2}, vijece={"max_preferences": 5}, one_style=True)
    deck = plan_deck(e)
    coverage = check_deck(deck)
    assert {"valid_full", "valid_partial", "overvote", "blank"} <= set(coverage["nacelnik"]["rules"])
    assert {f"list_and_preferences_{k}" for k in range(1, 6)} <= set(coverage["vijece"]["rules"])
    assert all(set(b.contests) == {"nacelnik", "vijece"} for b in deck.ballots)
    fillers = sum(b.contests["nacelnik"].rule == "filler_blank" for b in deck.ballots)
    tally = expected_tally(e, deck.ballots)
    assert tally["ballots_by_style"] == {"V": len(deck.ballots)}
    assert tally["contests"]["nacelnik"]["invalid_by_reason"]["blank"] == fillers + 1
    mayor_votes = list(tally["contests"]["nacelnik"]["candidate_votes"].values())
    assert len(set(mayor_votes)) == len(mayor_votes)


def test_no_preferences_contest_still_marks_every_candidate(election: Election) -> None:
    e = _variant(election, vijece={"max_preferences": 0})
    deck = plan_deck(e)
    coverage = check_deck(deck)
    assert coverage["vijece"]["options_marked_valid"] == coverage["vijece"]["options"]
    assert "list_and_preferences" in coverage["vijece"]["not_applicable"]
    assert sum(expected_tally(e, deck.ballots)["contests"]["vijece"]["candidate_votes"].values()) == 0


def test_pdf_writer_offsets(tmp_path: Path) -> None:
    path = tmp_path / "t.pdf"
    with open(path, "wb") as fp:
        pdf = PdfWriter(fp)
        pdf.add_page(3, 2, 72.0, rgb=lambda: bytes(range(18)))
        pdf.close()
    data = path.read_bytes()
    start = int(re.search(rb"startxref\n(\d+)", data).group(1))  # type: ignore[union-attr]
    table = data[start:].split(b"\n")
    count = int(table[1].split()[1])
    for i in range(1, count):
        offset = int(table[2 + i].split()[0])
        assert data[offset:].startswith(b"%d 0 obj" % i)
    assert b"/MediaBox [0 0 3.0000 2.0000]" in data


# -- the L&A test itself -----------------------------------------------------------------------------
_READER: dict[str, Any] = {}


def _reader_init(election_path: str) -> None:
    # the L&A test runs with the box in test mode: the deck carries test (specimen) ballot codes
    election = load_election(election_path).model_copy(update={"mode": "test"})
    _READER["election"] = election
    try:
        from firmware.cec.ballots import references_for
        _READER["refs"] = {"references": references_for(election)}  # as the box reads: outside-ink check on
    except ImportError:  # an interpreter without the outside-ink reference
        _READER["refs"] = {}


def _read(path: str) -> dict[str, Any]:
    from omr.interpret import interpret

    with Image.open(path) as im:
        pixels = np.array(im.convert("RGB"))
    result = interpret(pixels, _READER["election"], dpi=DPI, **_READER["refs"])
    return {"verdict": result.verdict.value, "reasons": list(result.reasons),
            "contests": {cid: {"outcome": r.outcome.value, "list": r.list, "candidates": sorted(r.candidates)}
                         for cid, r in result.contests.items()},
            "cvr": result.cast_vote_record() if result.castable else None}


def test_interpreting_the_deck_reproduces_the_expected_tally(deck_dir: Path, deck: dict[str, Any],
                                                             election: Election) -> None:
    """The L&A test: every page through the interpreter, the records through the tally."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from firmware.scanner.tally import tally

    files = [str(deck_dir / b["file"]) for b in deck["ballots"]]
    workers = min(2, os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_reader_init, initargs=(str(SAMPLE_ELECTION),)) as pool:
            results = list(pool.map(_read, files, chunksize=8))
    else:
        _reader_init(str(SAMPLE_ELECTION))
        results = [_read(f) for f in files]
    cvrs, wrong = [], []
    for b, got in zip(deck["ballots"], results):
        want = {cid: {"outcome": r["expected"]["outcome"], "list": r["expected"]["list"],
                      "candidates": sorted(r["expected"]["candidates"])} for cid, r in b["contests"].items()}
        if got["verdict"] != b["verdict"] or got["contests"] != want:
            wrong.append(f"{b['file']}: {got['verdict']} {got['reasons']} {got['contests']}, deck says "
                         f"{b['verdict']} {want}")
        if got["cvr"] is not None:
            cvrs.append(got["cvr"])
    assert not wrong, f"{len(wrong)} deck ballots misread:\n" + "\n".join(wrong[:10])
    got_tally = tally_to_json(tally(election, cvrs), [c["style"] for c in cvrs])
    assert got_tally == deck["expected_tally"]


def test_an_official_day_box_refuses_deck_ballots(deck_dir: Path, deck: dict[str, Any], election: Election) -> None:
    """A deck page that goes astray can never be cast: its code says test ballot."""
    from omr.interpret import interpret
    from omr.types import Reason, Verdict

    with Image.open(deck_dir / deck["ballots"][0]["file"]) as im:
        result = interpret(np.array(im.convert("RGB")), election, dpi=DPI)
    assert (result.verdict, result.reasons) == (Verdict.FOREIGN, (Reason.TEST_BALLOT,))


# -- bad input ------------------------------------------------------------------------------------
def test_corrupt_election_exits_2_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "e.json"
    bad.write_text('{"id": "LI2024", ', encoding="utf-8")
    out = tmp_path / "deck"
    assert main(["ballots", "test-deck", "--election", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "e.json" in err and "not valid JSON" in err and "Traceback" not in err
    assert not out.exists()

    data = json.loads(SAMPLE_ELECTION.read_text(encoding="utf-8"))
    data["contests"][0]["vote_for"] = 0
    bad.write_text(json.dumps(data), encoding="utf-8")
    assert main(["ballots", "test-deck", "--election", str(bad), "--out", str(out)]) == 2
    assert "vote_for" in capsys.readouterr().err

    assert main(["ballots", "test-deck", "--election", str(SAMPLE_ELECTION), "--out", str(out),
                 "--key", str(tmp_path / "missing.pem")]) == 2
    assert "missing.pem" in capsys.readouterr().err


def test_plan_is_deterministic(election: Election) -> None:
    a, b = plan_deck(election), plan_deck(load_election(SAMPLE_ELECTION))
    assert [(x.style, x.shape, x.ink, {c: r.marked for c, r in x.contests.items()}) for x in a.ballots] == \
        [(x.style, x.shape, x.ink, {c: r.marked for c, r in x.contests.items()}) for x in b.ballots]
    assert a.pattern == Pattern(FULL, FULL, a.pattern.preference_window, BUDGET)

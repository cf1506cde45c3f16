"""The OMR corpus (simulator.corpus) and its benchmark (simulator.bench_omr): seeded, within the levels of
BENCHMARKS.md, every foreign kind present, ground truth a second reading of DOMAIN.md, and the judging
of a reading exact."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

from ballotbox.cli import main
from config.election import Election
from firmware.cec.pens import (
    HESITATION_DOT_MAX_MM,
    MarkStyle,
    NonMark,
    Pen,
    draw_non_mark,
)
from omr.ballot_code import verify_code
from omr.types import BoxScore, ContestResult, Interpretation, Outcome, Reason, Verdict
from simulator.bench_omr import judge
from simulator.corpus import (
    FOREIGN_KINDS,
    LEVELS,
    PERSPECTIVE_MAX,
    CorpusItem,
    expected_outcome,
    generate,
    make_item,
)


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def test_same_seed_same_images_and_truth_and_an_item_regenerates_alone() -> None:
    first = [(digest(i.image), i.truth_json()) for i in generate("L2", "mayor", 3, seed=5)]
    again = [(digest(i.image), i.truth_json()) for i in generate("L2", "mayor", 3, seed=5)]
    assert first == again
    alone = make_item("L2", "mayor", 2, seed=5)
    assert (digest(alone.image), alone.truth_json()) == first[2]
    other_seed = [digest(i.image) for i in generate("L2", "mayor", 3, seed=6)]
    assert not set(other_seed) & {d for d, _ in first}


@pytest.mark.parametrize(("level", "n"), [("L1", 8), ("L2", 8), ("L3", 10)])
def test_every_distortion_stays_within_its_level(level: str, n: int) -> None:
    spec = LEVELS[level]
    items = list(generate(level, "mayor", n, seed=3))
    for it in items:
        d = it.distortions
        assert it.dpi == d["dpi"] == spec.dpi
        if d["reject"] == "rotation_12":
            assert abs(d["rotation_deg"]) == 12.0 and it.expected_verdict == "reject"
        else:
            assert abs(d["rotation_deg"]) <= spec.rotation_deg
        if d["reject"] == "print_scale_0.95":
            assert d["print_scale"] == 0.95 and it.expected_verdict == "reject"
        else:
            assert spec.print_scale[0] <= d["print_scale"] <= spec.print_scale[1]
        assert 0.0 <= d["perspective"]["keystone"] <= PERSPECTIVE_MAX
        assert (d["blur_px"], d["noise_grey"], d["jpeg_quality"], d["lighting"], d["show_through"],
                d["registration_density"]) == (spec.blur_px, spec.noise_grey, spec.jpeg_quality, spec.lighting,
                                               spec.show_through, spec.registration_density)
        assert spec.streaks[0] <= len(d["streaks"]) <= spec.streaks[1]
        for s in d["streaks"]:
            assert spec.streak_px[0] <= s["width_px"] <= spec.streak_px[1]
            if spec.streaks_through_boxes:
                assert s["through_box"] in s["boxes_crossed"]
        assert len(d["creases"]) == spec.creases
        for c in d["creases"]:
            assert (c["through_box"] is not None) == spec.creases_through_boxes
            if spec.creases_through_boxes:
                assert c["through_box"] in c["boxes_crossed"]
        assert (d["registration_cropped"] is not None) == bool(spec.registration_cropped)
        assert d["stamp"]["placement"] == spec.stamp
        marked = {b for b, t in it.truth.items() if t.marked}
        if spec.stamp == "clear":
            assert d["stamp"]["box"] is None and not d["stamp"]["boxes_under"]
        else:
            assert d["stamp"]["box"] in d["stamp"]["boxes_under"]
        if spec.stamp == "over_mark" and marked:
            assert d["stamp"]["box"] in marked
    assert sum(it.distortions["upside_down"] for it in items[:8]) == 2  # 25 %: one in every block of four
    if level == "L3":
        assert sorted(it.distortions["reject"] or "" for it in items if it.distortions["reject"]) == [
            "print_scale_0.95", "rotation_12"]


def test_recorded_perspective_is_the_keystone_in_the_image() -> None:
    for it in generate("L1", "mayor", 4, seed=11):
        M = np.array(it.distortions["mm_to_image"])
        w, h = 210.0, 297.0
        corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], float) @ M.T
        p = corners[:, :2] / corners[:, 2:]
        top, right, bottom, left = (np.linalg.norm(p[(i + 1) % 4] - p[i]) for i in range(4))
        a, b = (top, bottom) if it.distortions["perspective"]["axis"] == "vertical" else (left, right)
        assert 1 - min(a, b) / max(a, b) == pytest.approx(it.distortions["perspective"]["keystone"], abs=0.01)


def test_every_foreign_kind_is_made_labelled_and_foreign(election: Election) -> None:
    items = {i.foreign: i for i in generate("foreign", "mayor", len(FOREIGN_KINDS), seed=2)}
    assert list(items) == list(FOREIGN_KINDS)
    assert {i.expected_verdict for i in items.values()} == {"foreign"}
    tampered = items["tampered_code"].distortions["payload"]
    assert verify_code(tampered, election) == (None, [Reason.CODE_FORGED])
    assert items["other_station"].distortions["printed_for"]["station"] != election.station.code
    assert items["blank_sheet"].expected == {"nacelnik": {"outcome": "blank", "list": None, "candidates": []}}
    assert not any(t.marked for t in items["blank_sheet"].truth.values())
    assert items["two_sheets"].distortions["variant"] in ("overlapped", "stacked")
    assert items["wrong_scale"].distortions["print_scale"] < 0.95 or items["wrong_scale"].distortions[
        "print_scale"] > 1.05


def test_expected_outcomes_follow_domain_rules(election: Election) -> None:
    mayor, council = election.contest("nacelnik"), election.contest("vijece")

    def o(contest, *boxes):  # type: ignore[no-untyped-def]
        e = expected_outcome(contest, set(boxes))
        return e["outcome"], e["list"], tuple(e["candidates"])

    assert o(mayor, "m2") == ("valid", None, ("m2",))
    assert o(mayor) == ("blank", None, ())
    assert o(mayor, "m3", "m1") == ("overvote", None, ())
    assert o(council, "l7") == ("valid", "l7", ())
    assert o(council, "l7", "l7c11", "l7c2") == ("valid", "l7", ("l7c2", "l7c11"))
    assert o(council, "l7c2") == ("valid", "l7", ("l7c2",))  # preferences only: a vote for their list
    assert o(council, "l7", "l7c1", "l7c2", "l7c3", "l7c4") == ("valid", "l7", ())  # > 3: preferences void
    assert o(council, "l1", "l9c3") == ("multiple_lists", None, ())
    assert o(council, "l1c1", "l2c1") == ("multiple_lists", None, ())
    assert o(council) == ("blank", None, ())


def test_every_item_expects_what_its_marks_say() -> None:
    for it in [*generate("L1", "mayor", 3, seed=4), make_item("L3", "mixed", 1, seed=4)]:
        marked = {b for b, t in it.truth.items() if t.marked}
        for contest in it.election.contests_of(it.style):
            mine = {b.split("/", 1)[1] for b in marked if b.startswith(contest.id + "/")}
            assert it.expected[contest.id] == expected_outcome(contest, mine)


def test_hesitation_dot_stays_within_0_8_mm_and_day_styles_are_unchanged() -> None:
    dpi = 200.0
    for seed in range(20):
        img = np.full((80, 80, 3), 255, np.uint8)
        draw_non_mark(img, [20, 20, 40, 40], NonMark.HESITATION_DOT, dpi, random.Random(seed), Pen((0, 0, 0), 0.5))
        ys, xs = np.nonzero(img.min(axis=2) < 250)
        assert max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) <= HESITATION_DOT_MAX_MM * dpi / 25.4 + 1
    assert [str(s) for s in MarkStyle] == ["x", "filled", "check"]  # the day simulator draws over these three


def _item(expected_verdict: str, foreign: str | None = None) -> CorpusItem:
    it = make_item("L1", "mayor", 0, seed=1)
    it.expected = {"nacelnik": {"outcome": "valid", "list": None, "candidates": ["m2"]}}
    it.expected_verdict, it.foreign = expected_verdict, foreign
    return it


def _reading(verdict: Verdict, chosen: str | None) -> Interpretation:
    outcome = Outcome.VALID if chosen else Outcome.BLANK
    contests = {"nacelnik": ContestResult("nacelnik", outcome, candidates=(chosen,) if chosen else ())}
    scores = tuple(BoxScore("nacelnik", "candidate", None, f"m{i}", 0.3 if f"m{i}" == chosen else 0.0,
                            "mark" if f"m{i}" == chosen else "empty") for i in range(1, 9))
    return Interpretation(verdict, (), style="N", contests=contests, scores=scores)


def test_judging_silent_misreads_returns_flags_and_foreign_accepts() -> None:
    right = judge(_item("valid"), _reading(Verdict.VALID, "m2"), 10.0)
    wrong = judge(_item("valid"), _reading(Verdict.VALID, "m3"), 10.0)
    assert (right.category, wrong.category) == ("correct", "silent_misread")
    assert [e["box"] for e in wrong.phantom] == ["nacelnik/m3"] and [e["box"] for e in wrong.missed] == [
        "nacelnik/m2"]
    assert judge(_item("valid"), Interpretation(Verdict.UNREADABLE, (Reason.NO_CODE,)), 1.0).category == "return"
    assert judge(_item("valid"), _reading(Verdict.AMBIGUOUS, None), 1.0).category == "flag"
    # a sheet that must be rejected: any count is a silent misread, even the right one
    assert judge(_item("reject"), _reading(Verdict.VALID, "m2"), 1.0).category == "silent_misread"
    assert judge(_item("reject"), Interpretation(Verdict.UNREADABLE, ()), 1.0).category == "correct"
    # a foreign sheet the box would let in: counted or flagged, it is accepted
    assert judge(_item("foreign", "photocopy"), _reading(Verdict.INVALID, None), 1.0).category == "foreign_accept"
    assert judge(_item("foreign", "photocopy"), _reading(Verdict.AMBIGUOUS, None), 1.0).category == "foreign_accept"
    assert judge(_item("foreign", "photocopy"), Interpretation(Verdict.FOREIGN, ()), 1.0).category == "correct"


def test_bench_omr_writes_the_figures(tmp_path: Path) -> None:
    code = main(["bench", "omr", "--level", "L1", "--ballots", "6", "--kind", "mayor", "--seed", "3",
                 "--out", str(tmp_path)])
    report = json.loads((tmp_path / "omr-L1-mayor-3.json").read_text(encoding="utf-8"))
    assert code == (0 if report["bar"]["met"] else 1)
    f = report["figures"]
    for key in ("silent_misreads", "correct_verdicts", "returns", "flags", "foreign_false_accepts", "phantom_votes",
                "missed_votes", "marginal_boxes", "box_positions", "box_positions_counted"):
        assert isinstance(f[key], int), key
    assert f["ballots"] == 6 and f["box_positions"] == 6 * 8
    assert sum(report["categories"].values()) == 6
    assert set(report["latency_ms"]) >= {"p50", "p95", "p99"} and report["peak_rss_mb"] > 0
    assert len(report["software_hash"]) == 64
    assert report["command"].startswith("ballotbox bench omr --level L1 --ballots 6 --seed 3 --kind mayor")
    assert (report["corpus"]["level"], report["corpus"]["kind"], report["corpus"]["seed"]) == ("L1", "mayor", 3)

"""The station's stamp over boxes (omr.stamp): found by its rim wherever it lies near an inked box, and
every inked box under it put to the committee - a stamp's lettering is never counted as a vote."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from config.election import Election
from firmware.cec.ballots import references_for, render_ballot
from firmware.cec.pens import INKS, MarkStyle, Pen, draw_mark
from omr.interpret import _find, _paper_level, interpret
from omr.layout import BallotLayout
from omr.stamp import STAMP_DIAMETER_MM, find_stamp
from omr.types import Reason, Verdict
from simulator.bench_omr import _safe_interpret, judge
from simulator.capture import CaptureProfile, capture
from simulator.corpus import _apply_stamp, make_item

DPI = 200.0
R = STAMP_DIAMETER_MM / 2


def _ballot(election: Election, vote: str, stamp: tuple[float, float] | None, strength: float = 0.75,
            angle: float = 30.0, seed: int = 1) -> tuple[np.ndarray, BallotLayout]:
    """A mayor ballot marked for `vote`, stamped with its centre at `stamp` (layout mm) or in its zone."""
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    rect = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == vote)
    draw_mark(arr, rect, MarkStyle.X, Pen(INKS["blue"], 0.5), DPI, random.Random(seed))
    cx, cy = stamp if stamp is not None else (layout.stamp.cx, layout.stamp.cy)
    _apply_stamp(arr, cx, cy, angle, strength, DPI, random.Random(seed), np.random.default_rng(seed))
    image = capture(arr, DPI, random.Random(seed), CaptureProfile(max_rotation_deg=2.0))
    return image, layout


def _search(image: np.ndarray, election: Election, layout: BallotLayout, box: str):  # noqa: ANN202
    """find_stamp around `box`, on the thumbnail and fit that interpret() makes."""
    seen: dict = {}
    interpret(image, election, dpi=DPI, trace=lambda stage, value: seen.__setitem__(stage, value))
    found, thumb, _ = _find(image, election, DPI)
    H = np.diag([found.scale, found.scale, 1.0]) @ seen["fit"].homography
    i = next(j for j, b in enumerate(layout.boxes) if b.candidate == box)
    b = layout.boxes[i].rect
    x, y, w = (H @ np.array([b.cx, b.cy, 1.0]))
    paper = _paper_level(thumb, found.thumb_ppm)
    level = float(paper[int(y / w), int(x / w)])
    return find_stamp(thumb, H, layout, i, level, references_for(election).get("N"))


def _centre(layout: BallotLayout, box: str) -> tuple[float, float]:
    r = next(b.rect for b in layout.boxes if b.candidate == box)
    return r.cx, r.cy


@pytest.mark.parametrize("box, dx, dy, strength, angle", [
    ("m4", 0.0, 0.0, 0.55, 10.0),  # centred on the box, faintest pad
    ("m4", R - 0.3, 0.0, 0.75, 200.0),  # the rim through the box
    ("m5", -6.0, 7.0, 0.95, 95.0),
    ("m6", 4.0, -9.0, 0.6, 300.0),
])
def test_a_stamp_over_a_box_is_found_where_it_is(election: Election, box: str, dx: float, dy: float,
                                                 strength: float, angle: float) -> None:
    _, layout = render_ballot(election, "N", DPI)
    cx, cy = _centre(layout, box)
    image, layout = _ballot(election, "m2", (cx + dx, cy + dy), strength, angle)
    stamp = _search(image, election, layout, box)
    assert stamp is not None
    assert math.hypot(stamp.centre_mm[0] - (cx + dx), stamp.centre_mm[1] - (cy + dy)) < 1.6


@pytest.mark.parametrize("vote", ["m1", "m4", "m8"])
def test_no_stamp_is_seen_around_a_voters_mark(election: Election, vote: str) -> None:
    image, layout = _ballot(election, vote, None, seed=5)  # the stamp in its zone
    assert _search(image, election, layout, vote) is None


def test_a_stamp_beside_a_box_is_not_over_it(election: Election) -> None:
    _, layout = render_ballot(election, "N", DPI)
    r = next(b.rect for b in layout.boxes if b.candidate == "m3")
    centre = (r.x + r.w + R + 2.5, r.cy)  # the disc ends 2.5 mm right of the box
    image, layout = _ballot(election, "m3", centre, 0.9, seed=7)
    stamp = _search(image, election, layout, "m3")
    assert stamp is None or not stamp.touches(r)


def test_boxes_under_the_stamp_go_to_the_committee(election: Election) -> None:
    """The voter marked m2; the stamp's rim and lettering lie over m5. Nothing under the stamp counts."""
    _, layout = render_ballot(election, "N", DPI)
    cx, cy = _centre(layout, "m5")
    image, layout = _ballot(election, "m2", (cx + R - 2.0, cy), 0.95, angle=0.0, seed=3)
    r = interpret(image, election, dpi=DPI, references=references_for(election))
    m5 = next(s for s in r.scores if s.candidate == "m5")
    assert m5.mark != "mark"
    assert m5.mark == "empty" or m5.why == Reason.INK_ACROSS_BOX
    m2 = next(s for s in r.scores if s.candidate == "m2")
    assert m2.mark == "mark"


def test_a_faint_stamp_over_an_empty_box_was_a_silent_overvote(monkeypatch: pytest.MonkeyPatch) -> None:
    """Corpus L2 mayor seed 6 #84: a faint stamp's ring over empty box m5 read as a mark (fill 0.11) with
    too little ink around the box to be seen as foreign - an overvote nobody was told about. (The sheet
    also carries a white streak, which now stops the box for maintenance first; the stamp must be
    caught on its own, so the streak checks are switched off here.)"""
    import omr.interpret as oi

    monkeypatch.setattr(oi, "_streaks", lambda grey, found: None)
    monkeypatch.setattr(oi, "_bed_streak", lambda thumb, found: None)
    item = make_item("L2", "mayor", 84, 6)
    result, error = _safe_interpret(interpret, item)
    assert error is None
    assert result.verdict == Verdict.AMBIGUOUS
    assert f"{Reason.INK_ACROSS_BOX}:nacelnik/m5" in result.reasons
    assert judge(item, result, 0.0).category == "flag"

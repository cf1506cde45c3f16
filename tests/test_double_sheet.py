"""Two ballots fed at once in near register: the lower one's registration squares show through the top one
(omr.double_sheet). The outline of such a pair is the top sheet's own, so only the print tells."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from config.election import Election
from firmware.cec.ballots import render_ballot
from firmware.cec.pens import INKS, MarkStyle, Pen, draw_mark
from omr.double_sheet import corner_ghosts, two_sheets
from omr.interpret import _find, interpret
from omr.types import Reason, Verdict
from simulator.capture import CaptureProfile, capture

DPI = 200.0
K = DPI / 25.4


def _sheet(election: Election, vote: str = "m2", seed: int = 1) -> np.ndarray:
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    rect = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == vote)
    draw_mark(arr, rect, MarkStyle.X, Pen(INKS["blue"], 0.5), DPI, random.Random(seed))
    return arr


def _stacked(top: np.ndarray, lower: np.ndarray, dx_mm: float, dy_mm: float, turn_deg: float = 0.0,
             show: float = 0.08) -> np.ndarray:
    """The top sheet with the lower one (shifted by dx, dy mm and turned) showing through it at `show`
    contrast. Only the top sheet's outline is kept: nothing sticks out, the outline cannot tell."""
    h, w = top.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), turn_deg, 1.0)
    M[0, 2] += dx_mm * K
    M[1, 2] += dy_mm * K
    under = cv2.warpAffine(lower, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(255, 255, 255))
    shade = 1.0 - show * (1.0 - under.astype(np.float32) / 255.0)
    return np.clip(top.astype(np.float32) * shade + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("dx, dy, turn", [(1.5, 0.0, 0.0), (0.0, -3.0, 0.3), (-2.5, 2.0, -0.5), (4.0, 4.0, 0.0),
                                          (-6.0, -1.0, 0.8)])
def test_stacked_sheets_are_given_back(election: Election, dx: float, dy: float, turn: float) -> None:
    scene = _stacked(_sheet(election), _sheet(election, "m5", seed=2), dx, dy, turn)
    image = capture(scene, DPI, random.Random(3), CaptureProfile(max_rotation_deg=1.0))
    r = interpret(image, election, dpi=DPI)
    assert (r.verdict, r.reasons) == (Verdict.UNREADABLE, (Reason.DOUBLE_SHEET,))


def test_ghost_offset_is_measured(election: Election) -> None:
    scene = _stacked(_sheet(election), _sheet(election, "m5", seed=2), 3.0, -2.0)
    image = capture(scene, DPI, random.Random(4), CaptureProfile(max_rotation_deg=0.0, max_scale_error=0.0))
    found, thumb, _ = _find(image, election, DPI)
    offset = two_sheets(thumb, found)
    assert offset is not None
    assert abs(offset[0] - 3.0) < 0.75 and abs(offset[1] + 2.0) < 0.75


def test_single_sheet_shows_no_ghost(election: Election) -> None:
    image = capture(_sheet(election), DPI, random.Random(5), CaptureProfile(max_rotation_deg=2.0, upside_down_rate=1.0))
    found, thumb, _ = _find(image, election, DPI)
    assert two_sheets(thumb, found) is None
    assert all(g is None or g.contrast < 0.02 for g in corner_ghosts(thumb, found))
    r = interpret(image, election, dpi=DPI)
    assert r.verdict == Verdict.VALID


def test_a_smudge_beside_one_square_is_not_a_second_sheet(election: Election) -> None:
    """A faint grey patch next to one square (a fingerprint, a smudge) is one corner, not the same offset at
    every corner."""
    arr = _sheet(election)
    x, y = int(14 * K), int(8 * K)
    patch = arr[y:y + int(7 * K), x:x + int(7 * K)].astype(np.float32)
    arr[y:y + int(7 * K), x:x + int(7 * K)] = (patch * 0.88).astype(np.uint8)
    image = capture(arr, DPI, random.Random(6))
    found, thumb, _ = _find(image, election, DPI)
    assert two_sheets(thumb, found) is None


@pytest.mark.parametrize("level, index", [("L2", 0), ("L2", 1), ("L2", 2), ("L3", 2), ("L3", 3), ("L3", 4)])
def test_hard_captures_of_one_sheet_show_no_second_sheet(level: str, index: int) -> None:
    """Show-through of a back page, creases, streaks, stamps, uneven light, noise and JPEG (BENCHMARKS L2, L3)."""
    from simulator.corpus import make_item

    item = make_item(level, "mayor", index, 5)
    found, thumb, _ = _find(item.image, item.election, item.dpi)
    assert not isinstance(found, Reason), f"no registration at {level} #{index}: {found}"
    assert two_sheets(thumb, found) is None


def test_the_lower_sheets_margin_is_not_the_paper_level() -> None:
    """Stacked 3 mm apart (foreign mixed seed 6 #59, council sample): beside the top-right and bottom-left
    squares the lower sheet's bare margin sticks out, brighter than the top sheet it darkens. Taken for the
    paper level it made the whole top sheet read as 'dark' and the square's blurred edge endless (the ghost
    hidden under it), or it inflated the paper's noise past the ghost's contrast: one corner was lost. Every
    corner shows the ghost, at one offset."""
    from simulator.corpus import make_item

    item = make_item("foreign", "mixed", 59, 6)
    assert item.distortions["variant"] == "stacked"
    found, thumb, _ = _find(item.image, item.election, item.dpi)
    assert not isinstance(found, Reason)
    ghosts = corner_ghosts(thumb, found)
    assert all(g is not None and g.contrast >= max(0.035, 2.5 * g.noise) for g in ghosts)
    assert two_sheets(thumb, found) is not None


def test_a_ghost_cut_short_is_looked_at_again_where_the_others_put_it() -> None:
    """Stacked 5 mm apart and turned 0.7 degrees (foreign mixed seed 10 #59, council sample): at the right-hand
    corners the ghost is cut by the top sheet's edge, and at the top-left mostly hidden under the square, so
    the strongest offsets there are 1-3 mm off and no one motion fits them. The corners are looked at again
    near the offsets a loose motion predicts, and those fit."""
    from simulator.corpus import make_item

    item = make_item("foreign", "mixed", 59, 10)
    assert item.distortions["variant"] == "stacked"
    found, thumb, _ = _find(item.image, item.election, item.dpi)
    assert not isinstance(found, Reason)
    assert two_sheets(thumb, found) is not None

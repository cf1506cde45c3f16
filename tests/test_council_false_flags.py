"""Issue 13: council ballots flagged without cause - `ink_outside_boxes` at a fixed place on sheets fed
turned by 180 degrees, and `ink_across_box` on ordinary marks. Two causes, each tested where it lies:
the printed reference's text was drawn at a rounded font size (shorter lines at 100 dpi than on a 200-dpi
print), and what is read off the thumbnail and off layout canvases slipped by half a pixel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from config.election import Election
from firmware.cec.ballots import references_for, render_ballot
from omr.interpret import interpret
from omr.layout import layout_ballot
from omr.reference import StyleReference, canvas_to_layout, image_to_thumb
from omr.types import Reason
from simulator.corpus import make_item


def _line_ends_mm(election: Election, style: str, dpi: float) -> dict[str, float]:
    """Right end (mm) of the ink of every list's title line on the print at `dpi`."""
    img, layout = render_ballot(election, style, dpi)
    ink = np.asarray(img).min(axis=2) < 160
    k = dpi / 25.4
    out = {}
    for t in layout.texts:
        if t.role != "list":
            continue
        x, y, w, h = t.rect.px(dpi)
        cols = np.flatnonzero(ink[y:y + h, x:x + w].any(axis=0))
        out[t.latn] = (x + int(cols.max()) + 1) / k
    return out


def test_a_list_title_ends_at_the_same_place_on_the_100_dpi_reference_as_on_a_200_dpi_print(
        election: Election) -> None:
    low, high = _line_ends_mm(election, "V", 100), _line_ends_mm(election, "V", 200)
    assert low.keys() == high.keys() and len(low) == 12
    # a pixel of the 100-dpi render is 0.25 mm; rounded font sizes made lines up to 2.8 mm shorter
    worst = max(abs(low[t] - high[t]) for t in low)
    assert worst <= 0.5, worst


def test_the_thumbnail_map_takes_an_image_pixel_centre_to_the_thumbnail_pixel_that_averages_it() -> None:
    image = np.zeros((8, 8), np.uint8)
    image[2:4, 4:6] = 200  # the 2 x 2 block that thumbnail pixel (row 1, column 2) averages
    thumb = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    assert np.argwhere(thumb == 200).tolist() == [[1, 2]]
    centre = image_to_thumb(0.5) @ np.array([4.5, 2.5, 1.0])  # the block's centre, image px
    assert centre[:2].tolist() == [2.0, 1.0]
    assert image_to_thumb(1.0).tolist() == np.eye(3).tolist()


@pytest.mark.parametrize("quarter_turns", [0, 2])
def test_a_layout_canvas_warped_from_an_image_matches_the_reference_cells_in_either_orientation(
        quarter_turns: int) -> None:
    # a print at 8 px/mm (layout mm -> image px: pixel i's centre is at (i + 0.5) / 8 mm), turned or not
    k, n_mm = 8.0, 20
    rng = np.random.default_rng(1)
    cells = (rng.random((n_mm * 2, n_mm * 2)) < 0.3).astype(np.uint8) * 255  # 0.5 mm cells
    fine = cv2.resize(cells, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)
    image = np.rot90(fine, quarter_turns).copy()
    size = image.shape[0]
    H = np.array([[k, 0, -0.5], [0, k, -0.5], [0, 0, 1.0]])  # layout mm -> px of the upright print
    if quarter_turns == 2:  # the same sheet turned by 180 degrees: px -> size - 1 - px
        H = np.array([[-1, 0, size - 1], [0, -1, size - 1], [0, 0, 1.0]]) @ H
    # the canvas at 2 px/mm, through the thumbnail of the image (area resize by 2), as outside_ink reads it
    thumb = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    M = image_to_thumb(0.5) @ H @ canvas_to_layout(2.0)
    seen = cv2.warpPerspective(thumb, M, (n_mm * 2, n_mm * 2), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    assert np.abs(seen.astype(int) - cells.astype(int)).max() <= 1


@pytest.fixture(scope="module")
def references(election: Election) -> dict[str, StyleReference]:
    return references_for(election)


# Sheets of the L1 council corpus (the sample election's 297 x 470 mm council ballot, seed 9113) that
# were flagged with nothing on them to flag; all were fed turned by 180 degrees.
@pytest.mark.parametrize(("index", "reason"), [
    (34, Reason.INK_OUTSIDE_BOXES),  # ink_outside_boxes:277,315 - the end of list 11's title
    (9, Reason.INK_ACROSS_BOX),  # vijece/l9c17, l9c18: slashes in light blue
    (51, Reason.INK_ACROSS_BOX),  # vijece/l6c2, l6c3, l6c8: a check and X's in black
])
def test_council_sheet_fed_upside_down_is_not_flagged_without_cause(
        election: Election, references: dict[str, StyleReference], index: int, reason: Reason) -> None:
    item = make_item("L1", "council-sample", index, 9113)
    assert item.distortions["upside_down"] and not any(t.under_stamp for t in item.truth.values())
    result = interpret(item.image, item.election, dpi=item.dpi, references=references)
    assert result.orientation == 180
    assert not [r for r in result.reasons if str(r).startswith(str(reason))]
    assert result.verdict == item.expected_verdict


def test_oversized_x_running_past_the_box_corners_reads_as_a_mark_upright_and_turned(
        election: Election, references: dict[str, StyleReference]) -> None:
    layout = layout_ballot(election, "V")
    found = []
    for index in range(40):
        item = make_item("L1", "council-sample", index, 9113)
        oversized = [b for b, t in item.truth.items() if t.style == "x_oversized"]
        if not oversized or item.expected_verdict == "reject":
            continue
        result = interpret(item.image, item.election, dpi=item.dpi, references=references)
        if not result.scores:  # returned unread (a few L1 sheets of this ballot: `scan_streak`, not issue 13)
            continue
        scores = {b.box_id: s for b, s in zip(layout.boxes, result.scores, strict=True)}
        assert {b: scores[b].mark for b in oversized} == dict.fromkeys(oversized, "mark"), item.name
        found.append(item.distortions["upside_down"])
        if len(set(found)) == 2:
            break
    assert set(found) == {False, True}

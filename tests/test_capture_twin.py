"""The ballot camera's twin: the sheet drawn through the lens once per style, the marks blurred in place, the
pose computed on one plane where the sheet is grey."""

from __future__ import annotations

import random

import numpy as np

from config.election import SAMPLE_ELECTION, load_election
from firmware.cec.pens import draw_mark
from simulator import capture as capture_module
from simulator.capture import (
    MILD,
    CaptureProfile,
    capture,
    colour_boxes,
    lens_blur,
    lens_blur_patched,
)
from simulator.devices import build_sim_station
from simulator.voters import make_population, new_sheet


def _camera():
    election = load_election(SAMPLE_ELECTION)
    return election, build_sim_station(election, random.Random(0)).camera


def test_marked_sheets_are_blurred_byte_for_byte_as_the_whole_sheet_would_be(monkeypatch) -> None:
    election, camera = _camera()
    for style in election.ballot_styles:
        camera._blank(style.id)
    whole = []  # the patched path's fallbacks to blurring the whole sheet
    monkeypatch.setattr(capture_module, "lens_blur", lambda sheet, profile=MILD: whole.append(1) or lens_blur(sheet, profile))
    checked = 0
    for i, voter in enumerate(make_population(election, 12, random.Random(5))):
        for b, plan in enumerate(voter.ballots):
            for variant, intents in (("f", plan.final), ("s", plan.spoiled_first), ("c", plan.corrected)):
                if intents is None:
                    continue
                sheet = new_sheet(plan.style, intents, random.Random(f"{i}:{b}:{variant}"), key=f"v{i}.b{b}.{variant}0")
                blank, _, rects, _ = camera._blank(sheet.style)
                marked = blank.copy()
                ink = random.Random(sheet.ink_seed)
                for box, (style, pen) in sorted(sheet.marks.items()):
                    draw_mark(marked, rects[box], style, pen, camera.dpi, ink)
                assert np.array_equal(camera._draw(sheet)[0], lens_blur(marked, MILD)), sheet.key
                checked += 1
    assert checked >= 24
    assert not whole, "every mark stayed inside its window: no sheet needed the whole blur"


def test_ink_beyond_a_window_falls_back_to_the_whole_sheet() -> None:
    rng = np.random.default_rng(3)
    blank = np.full((300, 400, 3), 250, np.uint8)
    blank[::17, :, :] = 20  # printed lines
    blurred = lens_blur(blank, MILD)
    marked = blank.copy()
    marked[100:140, 100:300] = rng.integers(0, 255, (40, 200, 3), dtype=np.uint8)  # ink wider than the window
    whole, written = lens_blur_patched(blank, blurred, marked, [(90, 90, 100, 60)], MILD)
    assert np.array_equal(whole, lens_blur(marked, MILD)) and written is None
    inside = blank.copy()
    inside[150:160, 150:170] = 0  # ink well inside its window
    patched, written = lens_blur_patched(blank, blurred, inside, [(130, 130, 60, 50)], MILD)
    assert np.array_equal(patched, lens_blur(inside, MILD))
    assert written and all(x <= 150 and y <= 150 and x + w >= 170 and y + h >= 160 for x, y, w, h in written)
    untouched, written = lens_blur_patched(blank, blurred, blank.copy(), [(130, 130, 60, 50)], MILD)
    assert np.array_equal(untouched, blurred) and written == []


def _outside(img: np.ndarray, boxes) -> np.ndarray:
    keep = np.ones(img.shape[:2], bool)
    for x, y, w, h in boxes:
        keep[max(0, y):y + h, max(0, x):x + w] = False
    return img[keep]


def test_the_twin_knows_where_its_sheets_are_not_grey_and_poses_them_byte_for_byte() -> None:
    election, camera = _camera()
    upside_down = CaptureProfile(upside_down_rate=1.0)
    checked = tinted_seen = sheets = 0
    for i, voter in enumerate(make_population(election, 6, random.Random(9))):
        for b, plan in enumerate(voter.ballots):
            sheet = new_sheet(plan.style, plan.final, random.Random(f"{i}:{b}"), key=f"v{i}.b{b}.f0")
            img, tinted = camera._draw(sheet)
            assert tinted is not None
            rest = _outside(img, tinted)
            assert (rest[:, 0] == rest[:, 1]).all() and (rest[:, 1] == rest[:, 2]).all(), sheet.key
            tinted_seen += len(tinted)
            sheets += 1
            for n, profile in ((0, MILD), (1, upside_down)):
                whole = capture(img, camera.dpi, random.Random(f"{sheet.key}:{n}"), profile, blurred=True)
                fast = capture(img, camera.dpi, random.Random(f"{sheet.key}:{n}"), profile, blurred=True, colour=tinted)
                assert np.array_equal(fast, whole), (sheet.key, n)
                checked += 1
    assert sheets >= 6 and tinted_seen > sheets  # the blue band of the print, and the pens' ink


def test_colour_anywhere_on_the_sheet_even_at_its_edges_is_posed_in_colour() -> None:
    rng = np.random.default_rng(4)
    sheet = np.full((400, 300, 3), 240, np.uint8)
    sheet[::13] = 30
    for x, y in ((0, 0), (290, 390), (140, 200), (0, 250), (295, 7)):
        h, w = sheet[y:y + 10, x:x + 10].shape[:2]
        sheet[y:y + h, x:x + w] = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    sheet = lens_blur(sheet, MILD)
    boxes = colour_boxes(sheet)
    assert 1 <= len(boxes) <= 5 and colour_boxes(np.full((50, 50, 3), 9, np.uint8)) == []
    for seed in range(20):
        profile = CaptureProfile(max_rotation_deg=4.0, max_shift_mm=6.0, upside_down_rate=0.3)
        whole = capture(sheet, 200.0, random.Random(seed), profile, blurred=True)
        assert np.array_equal(capture(sheet, 200.0, random.Random(seed), profile, blurred=True, colour=boxes), whole)
    missed = capture(sheet, 200.0, random.Random(1), MILD, blurred=True, colour=boxes[1:])
    assert not np.array_equal(missed, capture(sheet, 200.0, random.Random(1), MILD, blurred=True))

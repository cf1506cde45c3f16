"""The ballot camera's twin: the sheet drawn through the lens once per style, the marks blurred in place."""

from __future__ import annotations

import random

import numpy as np

from config.election import SAMPLE_ELECTION, load_election
from firmware.cec.pens import draw_mark
from simulator import capture as capture_module
from simulator.capture import MILD, lens_blur, lens_blur_patched
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
                blank, _, rects = camera._blank(sheet.style)
                marked = blank.copy()
                ink = random.Random(sheet.ink_seed)
                for box, (style, pen) in sorted(sheet.marks.items()):
                    draw_mark(marked, rects[box], style, pen, camera.dpi, ink)
                assert np.array_equal(camera._draw(sheet), lens_blur(marked, MILD)), sheet.key
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
    assert np.array_equal(lens_blur_patched(blank, blurred, marked, [(90, 90, 100, 60)], MILD), lens_blur(marked, MILD))
    inside = blank.copy()
    inside[150:160, 150:170] = 0  # ink well inside its window
    assert np.array_equal(lens_blur_patched(blank, blurred, inside, [(130, 130, 60, 50)], MILD), lens_blur(inside, MILD))
    assert np.array_equal(lens_blur_patched(blank, blurred, blank.copy(), [(130, 130, 60, 50)], MILD), blurred)

"""The interpreter on rendered ballots marked with the simulator's pens and captured by its camera
model: it must read pixels only, and every non-valid verdict carries its reasons."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from config.election import Election
from firmware.cec.ballots import load_signing_key, render_ballot
from firmware.cec.pens import INKS, MarkStyle, Pen, draw_mark
from omr.interpret import interpret
from omr.types import Outcome, Reason, Verdict
from simulator.capture import CaptureProfile, capture

DPI = 200.0


def marked(election: Election, style: str, boxes: dict[str, MarkStyle], seed: int = 1, *, dpi: float = DPI,
           upside_down: bool = False, pen: Pen | None = None) -> np.ndarray:
    rng = random.Random(seed)
    img, layout = render_ballot(election, style, dpi)
    arr = np.array(img)
    rects = {b.candidate or b.list: b.rect.px(dpi) for b in layout.boxes}
    for box, how in boxes.items():
        draw_mark(arr, rects[box], how, pen or Pen(INKS["blue"], 0.5), dpi, rng)
    return capture(arr, dpi, rng, CaptureProfile(upside_down_rate=1.0 if upside_down else 0.0))


@pytest.mark.parametrize("how", list(MarkStyle))
@pytest.mark.parametrize("upside_down", [False, True])
def test_mayor_vote_read_in_every_pen_style_and_orientation(election: Election, how: MarkStyle, upside_down: bool) -> None:
    r = interpret(marked(election, "N", {"m6": how}, upside_down=upside_down), election, dpi=DPI)
    assert r.verdict == Verdict.VALID, r.reasons
    assert r.contests["nacelnik"].candidates == ("m6",)
    assert r.orientation == (180 if upside_down else 0)
    assert [s.box_id for s in r.scores if s.mark != "empty"] == ["nacelnik/m6"]


def test_council_list_and_preferences(election: Election) -> None:
    boxes = {"l7": MarkStyle.X, "l7c2": MarkStyle.CHECK, "l7c11": MarkStyle.X, "l7c20": MarkStyle.FILLED}
    r = interpret(marked(election, "V", boxes, seed=3), election, dpi=DPI)
    c = r.contests["vijece"]
    assert (r.verdict, c.outcome, c.list, c.candidates) == (Verdict.VALID, Outcome.VALID, "l7", ("l7c2", "l7c11", "l7c20"))


def test_council_two_lists_is_invalid_with_reason(election: Election) -> None:
    r = interpret(marked(election, "V", {"l1": MarkStyle.X, "l9c3": MarkStyle.X}, seed=4), election, dpi=DPI)
    assert r.verdict == Verdict.INVALID and r.reasons == (Reason.MULTIPLE_LISTS,)


def test_blank_and_overvoted_mayor_ballots_are_invalid(election: Election) -> None:
    blank = interpret(marked(election, "N", {}), election, dpi=DPI)
    over = interpret(marked(election, "N", {"m1": MarkStyle.X, "m2": MarkStyle.X}), election, dpi=DPI)
    assert (blank.verdict, blank.reasons) == (Verdict.INVALID, (Reason.BLANK,))
    assert (over.verdict, over.reasons) == (Verdict.INVALID, (Reason.OVERVOTE,))


def test_faint_small_mark_is_ambiguous_never_guessed(election: Election) -> None:
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    x, y, w, h = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m2")
    # a short stroke covering ~5 % of the inner box: between marginal (3 %) and definite (8 %)
    arr[y + h // 2 - 2:y + h // 2 + 2, x + w // 2 - 10:x + w // 2 + 10] = (30, 30, 30)
    r = interpret(arr, election, dpi=DPI)
    assert r.verdict == Verdict.AMBIGUOUS and r.reasons == ("marginal_mark:nacelnik/m2",)


def test_ballot_of_another_station_is_foreign(election: Election) -> None:
    other = election.model_copy(update={"station": election.station.model_copy(update={"code": "089A013"})})
    img, _ = render_ballot(other, "N", DPI, key=load_signing_key())
    r = interpret(np.array(img), election, dpi=DPI)
    assert (r.verdict, r.reasons, r.castable) == (Verdict.FOREIGN, (Reason.OTHER_STATION,), False)


def test_sheet_without_code_is_unreadable_with_reason(election: Election) -> None:
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    x, y, w, h = layout.code.px(DPI)
    arr[y:y + h, x:x + w] = 255
    r = interpret(arr, election, dpi=DPI)
    assert (r.verdict, r.reasons) == (Verdict.UNREADABLE, (Reason.NO_CODE,))


def test_cropped_corner_is_read_right_or_rejected_never_misread(election: Election) -> None:
    arr = marked(election, "N", {"m1": MarkStyle.X})
    arr[-260:, :260] = 55  # bottom-left corner of the capture out of view
    r = interpret(arr, election, dpi=DPI)
    if r.verdict == Verdict.UNREADABLE:  # a corner that is not there reads as torn (double_sheet's message)
        assert r.reasons[0] in (Reason.NO_REGISTRATION, Reason.BAD_GEOMETRY, Reason.DOUBLE_SHEET)
    else:
        assert (r.verdict, r.contests["nacelnik"].candidates) == (Verdict.VALID, ("m1",))


@pytest.mark.parametrize("print_scale, readable", [(0.95, False), (0.975, False), (0.985, True), (1.015, True), (1.03, False)])
def test_print_scale_is_measured_against_the_paper_edge(election: Election, print_scale: float, readable: bool) -> None:
    """A ballot printed at the wrong scale on the right paper: the squares move relative to the paper's
    edges. 0.985-1.015 is accepted (print-house tolerance), beyond 0.98-1.02 (0.5 % kept for the
    measurement) the sheet is rejected."""
    import cv2
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    h, w = arr.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), 0, print_scale)
    printed = cv2.warpAffine(arr, M, (w, h), borderValue=(255, 255, 255))
    x, y, bw, bh = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m1")
    cx, cy = (np.array([x + bw / 2, y + bh / 2]) - (w / 2, h / 2)) * print_scale + (w / 2, h / 2)
    rect = [round(cx - bw * print_scale / 2), round(cy - bh * print_scale / 2), round(bw * print_scale), round(bh * print_scale)]
    draw_mark(printed, rect, MarkStyle.X, Pen(INKS["black"], 0.5), DPI, random.Random(1))
    r = interpret(capture(printed, DPI, random.Random(2)), election, dpi=DPI)
    if readable:
        assert r.verdict == Verdict.VALID and r.contests["nacelnik"].candidates == ("m1",)
    else:  # rejected: the squares do not fit the paper (or, enlarged, run off its edge)
        assert r.verdict == Verdict.UNREADABLE and r.reasons[0] in (Reason.BAD_GEOMETRY, Reason.NO_REGISTRATION)


def test_absolute_size_is_checked_against_the_camera_calibration(election: Election) -> None:
    """A copy enlarged or shrunk with its paper keeps its print scale; the calibrated camera sees its size.
    Without a calibration (an image file of unknown dpi) size cannot matter."""
    import cv2
    arr = marked(election, "N", {"m1": MarkStyle.X})
    small = cv2.resize(arr, None, fx=0.94, fy=0.94, interpolation=cv2.INTER_AREA)
    assert (interpret(small, election, dpi=DPI).reasons) == (Reason.BAD_GEOMETRY,)
    r = interpret(small, election)
    assert r.verdict == Verdict.VALID and r.contests["nacelnik"].candidates == ("m1",)


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((100, 100), np.float32), "not an image"])
def test_not_an_image_is_unreadable(election: Election, bad) -> None:
    r = interpret(bad, election)  # type: ignore[arg-type]
    assert (r.verdict, r.reasons) == (Verdict.UNREADABLE, (Reason.IMAGE_INVALID,))


def test_blank_paper_is_unreadable(election: Election) -> None:
    r = interpret(np.full((2339, 1654, 3), 250, np.uint8), election, dpi=DPI)
    assert r.verdict == Verdict.UNREADABLE


def test_30x35_ballot_reads_at_150_dpi(large_election: Election) -> None:
    boxes = {"l30": MarkStyle.X, "l30c35": MarkStyle.X, "l30c1": MarkStyle.CHECK}
    r = interpret(marked(large_election, "V", boxes, seed=9, dpi=150.0), large_election, dpi=150.0)
    c = r.contests["vijece"]
    assert (c.outcome, c.list, c.candidates) == (Outcome.VALID, "l30", ("l30c1", "l30c35"))
    assert len(r.scores) == 1080


def test_interpreter_is_pure_no_clock_no_disk(election: Election, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import time
    arr = marked(election, "N", {"m3": MarkStyle.X})
    def forbidden(*a, **k):
        raise AssertionError("omr touched the clock or the disk")
    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(time, "time", forbidden)
    assert interpret(arr, election, dpi=DPI).contests["nacelnik"].candidates == ("m3",)


def _rotate(arr: np.ndarray, degrees: float) -> np.ndarray:
    import cv2
    h, w = arr.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(M[0, 0]), abs(M[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    M[0, 2] += nw / 2 - w / 2
    M[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(arr, M, (nw, nh), borderValue=(55, 55, 55))


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_every_insertion_orientation_is_read(election: Election, quarter_turns: int) -> None:
    arr = np.ascontiguousarray(np.rot90(marked(election, "V", {"l4": MarkStyle.X, "l4c7": MarkStyle.CHECK}), quarter_turns))
    r = interpret(arr, election, dpi=DPI)
    c = r.contests["vijece"]
    assert (r.verdict, c.list, c.candidates) == (Verdict.VALID, "l4", ("l4c7",))
    assert r.orientation == (360 - 90 * quarter_turns) % 360  # np.rot90 turns counter-clockwise


@pytest.mark.parametrize("degrees, readable", [(6.0, True), (-6.0, True), (12.0, False)])
def test_skew_up_to_6_degrees_is_read_and_12_rejected(election: Election, degrees: float, readable: bool) -> None:
    r = interpret(_rotate(marked(election, "N", {"m8": MarkStyle.X}), degrees), election, dpi=DPI)
    if readable:
        assert (r.verdict, r.contests["nacelnik"].candidates) == (Verdict.VALID, ("m8",))
    else:
        assert r.verdict == Verdict.UNREADABLE and r.reasons == (Reason.BAD_GEOMETRY,)


def test_one_missing_square_is_inferred_and_checked(election: Election) -> None:
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    x, y, w, h = layout.registration[3].px(DPI)
    arr[y - 3:y + h + 3, x - 3:x + w + 3] = 255  # the bottom-left square did not print (or wore off)
    x, y, w, h = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m2")
    draw_mark(arr, [x, y, w, h], MarkStyle.FILLED, Pen(INKS["blue"], 0.5), DPI, random.Random(1))
    r = interpret(capture(arr, DPI, random.Random(2)), election, dpi=DPI)
    assert (r.verdict, r.contests["nacelnik"].candidates) == (Verdict.VALID, ("m2",))


def test_two_sheets_fed_together_are_given_back(election: Election) -> None:
    img, _ = render_ballot(election, "N", DPI)
    top = np.array(img)
    h, w = top.shape[:2]
    k = DPI / 25.4
    scene = np.full((h + 200, w + 200, 3), 55, np.uint8)
    scene[100 + int(3 * k):100 + int(3 * k) + h, 100 + int(2 * k):100 + int(2 * k) + w] = 235  # the lower sheet, 2-3 mm off
    scene[100:100 + h, 100:100 + w] = top
    r = interpret(scene, election, dpi=DPI)
    assert (r.verdict, r.reasons) == (Verdict.UNREADABLE, (Reason.DOUBLE_SHEET,))


def test_camera_perspective_of_10_percent_is_read(election: Election) -> None:
    import cv2
    arr = marked(election, "V", {"l11": MarkStyle.X, "l11c2": MarkStyle.X})
    h, w = arr.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[0.05 * w, 0], [0.95 * w, 0], [w, h], [0, h]])  # top edge 10 % shorter than the bottom
    warped = cv2.warpPerspective(arr, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=(55, 55, 55))
    r = interpret(warped, election, dpi=DPI)
    c = r.contests["vijece"]
    assert (r.verdict, c.list, c.candidates) == (Verdict.VALID, "l11", ("l11c2",))


def test_signature_outside_the_boxes_is_flagged_with_its_place(election: Election) -> None:
    import cv2

    from firmware.cec.ballots import references_for
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    x, y, w, h = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m3")
    draw_mark(arr, [x, y, w, h], MarkStyle.X, Pen(INKS["black"], 0.5), DPI, random.Random(3))
    k = DPI / 25.4  # a scrawled signature in the empty space below the candidates, at ~ (120, 200) mm
    pts = np.array([[100 + 40 * t, 200 + 4 * np.sin(9 * t)] for t in np.linspace(0, 1, 40)]) * k
    cv2.polylines(arr, [pts.astype(np.int32)], False, (20, 30, 120), 4, cv2.LINE_AA)
    refs = references_for(election)
    r = interpret(capture(arr, DPI, random.Random(4)), election, dpi=DPI, references=refs)
    assert r.verdict == Verdict.AMBIGUOUS and r.contests["nacelnik"].candidates == ("m3",)
    places = [tuple(map(float, reason.split(":")[1].split(","))) for reason in r.reasons if reason.startswith("ink_outside")]
    assert len(places) == 1 and abs(places[0][0] - 120) < 6 and abs(places[0][1] - 200) < 6
    clean = interpret(marked(election, "N", {"m3": MarkStyle.X}), election, dpi=DPI, references=refs)
    assert clean.verdict == Verdict.VALID  # marks overrunning their box are not "writing"


def test_sheet_fed_face_down_is_blank(election: Election) -> None:
    sheet = np.full((2339, 1654, 3), 246, np.uint8)
    r = interpret(capture(sheet, DPI, random.Random(5)), election, dpi=DPI)
    assert (r.verdict, r.reasons) == (Verdict.UNREADABLE, (Reason.BLANK_SHEET,))


def test_black_and_white_photocopy_is_foreign(election: Election) -> None:
    import cv2
    original = marked(election, "N", {"m4": MarkStyle.X})
    grey = cv2.cvtColor(original, cv2.COLOR_RGB2GRAY)
    copy = cv2.cvtColor(cv2.convertScaleAbs(grey, alpha=1.1, beta=-8), cv2.COLOR_GRAY2RGB)  # toner contrast
    assert interpret(original, election, dpi=DPI).verdict == Verdict.VALID
    r = interpret(copy, election, dpi=DPI)
    assert (r.verdict, r.reasons, r.castable) == (Verdict.FOREIGN, (Reason.NOT_ORIGINAL,), False)


def test_ballot_on_paper_of_another_colour_is_foreign(election: Election) -> None:
    img, _ = render_ballot(election, "N", DPI)
    arr = np.array(img).astype(np.float32)
    pink = np.clip(arr * np.array([1.0, 0.86, 0.9]), 0, 255).astype(np.uint8)  # the whole sheet tinted
    r = interpret(capture(pink, DPI, random.Random(6)), election, dpi=DPI)
    assert (r.verdict, r.reasons) == (Verdict.FOREIGN, (Reason.WRONG_PAPER,))


@pytest.mark.parametrize("colour, width", [(30, 2), (30, 4), (250, 2), (250, 4)])
def test_streak_from_dust_on_the_glass_stops_for_maintenance(election: Election, colour: int, width: int) -> None:
    arr = marked(election, "V", {"l2": MarkStyle.X})
    img, layout = render_ballot(election, "V", DPI)
    x = 8 * 8 + next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "l2c3")[0] + 10  # through a column of boxes
    arr[:, x:x + width] = colour
    r = interpret(arr, election, dpi=DPI)
    assert r.verdict == Verdict.UNREADABLE and r.reasons[0].startswith("scan_streak:")


def test_no_streak_reported_on_clean_captures(election: Election) -> None:
    for seed in range(6):
        r = interpret(marked(election, "V", {"l6": MarkStyle.FILLED, "l6c1": MarkStyle.CHECK}, seed=seed), election, dpi=DPI)
        assert r.verdict == Verdict.VALID, r.reasons


def _faint_streak_through_boxes(level: str, index: int, seed: int) -> tuple[object, int]:
    """A corpus mayor sheet with a faint, blurred dark streak (4 px at 0.72 of the paper, like L2 council
    #590 and #716) drawn down the column of its candidates' boxes, off their centre; and its column."""
    import cv2

    from omr.layout import layout_ballot
    from simulator.corpus import make_item

    item = make_item(level, "mayor", index, seed)
    layout = layout_ballot(item.election, item.style)
    M = np.array(item.distortions["mm_to_image"])
    centres = cv2.perspectiveTransform(np.array([[(b.rect.cx, b.rect.cy) for b in layout.boxes]], np.float64), M)[0]
    x = int(round(float(np.median(centres[:, 0])))) + 3
    img = item.image.copy()
    strip = img[:, x - 4:x + 8].astype(np.float32)
    strip[:, 4:8] *= 0.72
    img[:, x - 4:x + 8] = np.clip(cv2.GaussianBlur(strip, (5, 1), 0.8) + 0.5, 0, 255).astype(np.uint8)
    return dataclasses.replace(item, image=img), x


@pytest.mark.parametrize("index", [0, 1])
def test_faint_dark_streak_through_a_column_of_boxes_stops_for_maintenance(index: int) -> None:
    """A streak too faint to fall under half the paper level still puts a phantom stroke in every empty
    box it crosses (read as marks: a silent overvote, or two lists on a council ballot). It is found by
    its darkness relative to the paper beside it, along the whole sheet."""
    item, x = _faint_streak_through_boxes("L1", index, 5)
    r = interpret(item.image, item.election, dpi=item.dpi)
    assert r.verdict == Verdict.UNREADABLE and r.reasons[0].startswith("scan_streak:"), r.reasons
    assert abs(int(r.reasons[0].split(":")[1]) - x) <= 4


def test_no_faint_streak_found_on_clean_corpus_sheets() -> None:
    """Box outlines, left-aligned names and table rules are long dark columns too, but not through the
    header and footer: clean L1 sheets, mayor and council, have no streak."""
    import cv2

    from omr.interpret import _faint_dark_streak, _find
    from simulator.corpus import make_item

    for level, kind, index in [("L1", "mayor", i) for i in range(4)] + [("L1", "council", 0)]:
        item = make_item(level, kind, index, 5)
        found = _find(item.image, item.election, item.dpi)[0]
        assert not isinstance(found, Reason)
        assert _faint_dark_streak(cv2.extractChannel(item.image, 1), found) is None, item.name


@pytest.mark.parametrize("index", [2, 3])
def test_white_streak_is_seen_on_the_bed_and_stops_for_maintenance(index: int) -> None:
    """A lit line through the whole frame, as dust on the glass makes it (2 px at 0.65 towards white,
    blurred by 1.2 px), down the column of the candidates' boxes: on the sheet it only shows where it
    breaks print, too little for the check of broken strokes; on the dark bed beyond the sheet's ends
    it is plain."""
    import cv2

    from omr.layout import layout_ballot
    from simulator.corpus import make_item

    item = make_item("L1", "mayor", index, 5)
    layout = layout_ballot(item.election, item.style)
    M = np.array(item.distortions["mm_to_image"])
    centres = cv2.perspectiveTransform(np.array([[(b.rect.cx, b.rect.cy) for b in layout.boxes]], np.float64), M)[0]
    x = int(round(float(np.median(centres[:, 0])))) - 2
    img = item.image.copy()
    strip = img[:, x - 4:x + 6].astype(np.float32)
    strip[:, 4:6] += (250.0 - strip[:, 4:6]) * 0.65
    img[:, x - 4:x + 6] = np.clip(cv2.GaussianBlur(strip, (7, 1), 1.2) + 0.5, 0, 255).astype(np.uint8)
    r = interpret(img, item.election, dpi=item.dpi)
    assert r.verdict == Verdict.UNREADABLE and r.reasons[0].startswith("scan_streak:"), r.reasons
    assert abs(int(r.reasons[0].split(":")[1]) - x) <= 4


def test_nothing_lit_on_the_bed_of_clean_sheets() -> None:
    """Clean L1 sheets: the bed beyond their ends shows no lit line (a second sheet sticking out is wide)."""
    import cv2

    from omr.interpret import _bed_streak, _find
    from simulator.corpus import make_item

    for level, kind, index in [("L1", "mayor", i) for i in range(4)] + [("L1", "council", 1)]:
        item = make_item(level, kind, index, 7)
        found, thumb, _ = _find(item.image, item.election, item.dpi)
        assert not isinstance(found, Reason) and found.sheet is not None
        assert _bed_streak(thumb, found) is None, item.name


def test_specimen_ballot_prints_nothing_over_the_boxes(election: Election) -> None:
    """The specimen wording of a test ballot must not read as votes in test mode."""
    test_mode = election.model_copy(update={"mode": "test"})
    for style in ("N", "V"):
        img, _ = render_ballot(test_mode, style, 100.0)
        r = interpret(np.array(img), test_mode, dpi=100.0)
        assert r.verdict == Verdict.INVALID and all(s.mark == "empty" for s in r.scores), r.reasons


def test_code_reads_at_100_dpi_with_2px_blur(election: Election) -> None:
    """BENCHMARKS L3: 100 dpi, 2 px blur, noise, JPEG 40, a few degrees of skew - the code still decodes."""
    import cv2

    from omr.ballot_code import verify_code
    from omr.interpret import _read_code, darkest_channel
    from omr.registration import find_sheet_and_marks

    img, _ = render_ballot(election, "N", 100)
    arr = np.array(img)
    h, w = arr.shape[:2]
    rng = np.random.default_rng(7)
    for angle in (-5.0, 4.0):
        M = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 0.92)
        cap = cv2.warpAffine(arr, M, (w, h), flags=cv2.INTER_AREA, borderValue=(55, 55, 55))
        cap = cv2.GaussianBlur(cap.astype(np.float32), (0, 0), 2.0) + rng.normal(0, 12, cap.shape)
        cap = np.clip(cap, 0, 255).astype(np.uint8)
        cap = cv2.imdecode(cv2.imencode(".jpg", cap, [cv2.IMWRITE_JPEG_QUALITY, 40])[1], cv2.IMREAD_COLOR)
        found = find_sheet_and_marks(darkest_channel(cap), 100 / 25.4, 1.0)
        assert not isinstance(found, Reason), found
        payload, k = _read_code(cv2.extractChannel(cap, 1), found)
        assert payload is not None and k == 0
        assert verify_code(payload, election)[1] == []


def test_code_finder_pattern_is_never_taken_for_a_registration_square(election: Election) -> None:
    """The code's finder patterns (7 x 1.2 mm) are the size of a registration square and lie within a
    corner's reach: with the top-right square gone, it must be inferred from the other three, not found
    on the code."""
    from omr.interpret import _find

    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    x, y, w, h = layout.registration[1].px(DPI)
    arr[y - 2:y + h + 2, x - 2:x + w + 2] = 255
    found, _, _ = _find(arr, election, DPI)  # on the interpreter's 4 px/mm thumbnail
    assert not isinstance(found, Reason)
    assert found.inferred is not None
    true = np.array([layout.registration[1].cx, layout.registration[1].cy]) * DPI / 25.4
    assert np.hypot(*(found.corners[found.inferred] - true)) < 1.0 * DPI / 25.4


@pytest.mark.parametrize("index", [2, 15, 16])
def test_corner_out_of_view_is_not_a_second_sheet(index: int) -> None:
    """L3: one registration square partly beyond the camera's view (black, not the lit bed). The hidden
    corner says nothing about a second sheet, and the sides are fitted on what is seen: no corner gap."""
    from omr.interpret import DOUBLE_SHEET_CORNER_GAP_MM, _find
    from simulator.corpus import make_item

    item = make_item("L3", "mayor", index, 5)
    assert item.distortions["registration_cropped"]
    found, _, _ = _find(item.image, item.election, item.dpi)
    assert not isinstance(found, Reason) and found.inferred is not None
    assert max(found.corner_gaps_mm) <= DOUBLE_SHEET_CORNER_GAP_MM


def _turned(election: Election, degrees: float) -> np.ndarray:
    """A mayor ballot marked m3, turned by `degrees` on the feeder bed (white margin around it)."""
    import cv2

    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    rect = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m3")
    draw_mark(arr, rect, MarkStyle.X, Pen(INKS["blue"], 0.5), DPI, random.Random(2))
    h, w = arr.shape[:2]
    pad = int(0.12 * max(h, w))
    arr = cv2.copyMakeBorder(arr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(60, 60, 60))
    M = cv2.getRotationMatrix2D((arr.shape[1] / 2, arr.shape[0] / 2), degrees, 1.0)
    return cv2.warpAffine(arr, M, (arr.shape[1], arr.shape[0]), flags=cv2.INTER_LINEAR, borderValue=(60, 60, 60))


@pytest.mark.parametrize("degrees, readable", [(5.5, True), (-5.5, True), (9.0, False), (-12.0, False)])
def test_rotation_up_to_6_degrees_is_read_beyond_7_rejected(election: Election, degrees: float, readable: bool) -> None:
    r = interpret(_turned(election, degrees), election, dpi=DPI)
    if readable:
        assert r.verdict == Verdict.VALID and r.contests["nacelnik"].candidates == ("m3",)
    else:
        assert (r.verdict, r.reasons) == (Verdict.UNREADABLE, (Reason.BAD_GEOMETRY,))


def test_a_long_ballot_under_10_percent_keystone_is_read() -> None:
    """L1 council seed 12 #25: keystone 9.75 % across the 1141 mm ballot tilts its top and bottom edges
    by ~7 degrees each, the other way; the sheet itself is turned 0.7 degrees. It was returned
    `bad_geometry` when the skew was taken from the top edge alone."""
    from simulator.bench_omr import _safe_interpret, judge
    from simulator.corpus import make_item

    item = make_item("L1", "council", 25, 12)
    result, error = _safe_interpret(interpret, item)
    assert error is None and judge(item, result, 0.0).category == "correct", result.reasons


def test_square_cut_by_the_paper_edge_is_placed_from_what_is_left(election: Election) -> None:
    """A long ballot printed a little large (1 % of 1141 mm is 5.7 mm at each end) has its squares cut by the
    paper's edge; against the bed a cut square is one dark shape with it. Here the paper is cut 8 mm short at
    the top: 4 of the top squares' 7 mm are left. Their centres are placed from their uncut sides, and the
    fit is checked on the box outlines as ever."""
    from omr.interpret import _find

    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)[int(round(8 * DPI / 25.4)):]
    x, y, w, h = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m3")
    draw_mark(arr, [x, y - int(round(8 * DPI / 25.4)), w, h], MarkStyle.X, Pen(INKS["blue"], 0.5), DPI,
              random.Random(1))
    image = capture(arr, DPI, random.Random(2))
    found, _, _ = _find(image, election, DPI)
    assert not isinstance(found, Reason) and sorted(found.cut) == [0, 1] and found.inferred is None
    r = interpret(image, election, dpi=DPI)
    assert (r.verdict, r.contests["nacelnik"].candidates) == (Verdict.VALID, ("m3",))


def test_keystone_is_not_taken_for_skew(election: Election) -> None:
    """A keystone tilts the sheet's top and bottom edges opposite ways (on the 1141 mm council ballot 10 %
    tilts each by 7 degrees): the skew is their mean. 4 degrees of skew and a 10 % keystone are read."""
    import cv2
    arr = marked(election, "N", {"m6": MarkStyle.X})
    h, w = arr.shape[:2]
    pad = int(0.05 * h)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    # left edge 5 % shorter, right edge 5 % longer (the centre keeps its scale, as with a camera's tilt)
    dst = np.float32([[0, pad + 0.025 * h], [w, pad - 0.025 * h], [w, pad + 1.025 * h], [0, pad + 0.975 * h]])
    warped = cv2.warpPerspective(arr, cv2.getPerspectiveTransform(src, dst), (w, h + 2 * pad),
                                 borderValue=(55, 55, 55))
    r = interpret(_rotate(warped, 4.0), election, dpi=DPI)
    assert (r.verdict, r.contests["nacelnik"].candidates) == (Verdict.VALID, ("m6",))


def test_percentile_of_uint8_levels_is_numpys() -> None:
    from omr.registration import percentile_u8

    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 1000, 40_000):
        x = np.clip(rng.normal(190, 40, n), 0, 255).astype(np.uint8)
        levels = np.cumsum(np.bincount(x, minlength=256))
        for q in (0, 3, 50, 90, 100):
            assert percentile_u8(levels, q) == pytest.approx(float(np.percentile(x, q)), abs=1e-9)

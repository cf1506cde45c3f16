"""The learned second opinion (omr.second_opinion): the crop is deterministic and light-independent, the
shipped model is the certified one and tells clear marks from empty boxes on freshly simulated ballots,
and without a runtime nothing breaks - there is simply no second opinion."""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from config.election import Election
from firmware.cec.ballots import render_ballot
from firmware.cec.pens import INKS, MarkStyle, Pen, draw_mark
from omr import second_opinion
from omr.second_opinion import (
    CROP_PX,
    EMPTY_AT,
    MARK_AT,
    MODEL_PATH,
    MODEL_SHA256,
    MarkClassifier,
    crop_box,
    settle,
)
from simulator.capture import CaptureProfile, capture

DPI = 200.0
# A still camera: no rotation, scale error or shift, so a box's centre in the capture is its layout
# position plus the bed margin (the real pipeline gets it from registration).
STILL = CaptureProfile(max_rotation_deg=0.0, max_scale_error=0.0, max_shift_mm=0.0)


@pytest.fixture(autouse=True)
def fresh_loader() -> Iterator[None]:
    """Every test sees the loader as at start-up, and leaves it so."""
    second_opinion._load.cache_clear()
    yield
    second_opinion._load.cache_clear()


def runtime_or_skip() -> MarkClassifier:
    if not second_opinion._runtimes():
        pytest.skip("no tflite runtime installed (tflite-runtime or ai-edge-litert): the engine runs without "
                    "a second opinion, which the no-runtime tests cover")
    clf = MarkClassifier.load()
    assert clf is not None, MarkClassifier.unavailable_reason()
    return clf


def ballot_crops(election: Election, style: str, marks: dict[str, tuple[MarkStyle, str]], empty: list[str],
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops of the marked boxes and of the empty boxes of one simulated, captured ballot."""
    rng = random.Random(seed)
    img, layout = render_ballot(election, style, DPI)
    sheet = np.array(img)
    by_id = {b.candidate or b.list: b for b in layout.boxes}
    for box, (how, ink) in marks.items():
        draw_mark(sheet, by_id[box].rect.px(DPI), how, Pen(INKS[ink], rng.uniform(0.4, 0.7)), DPI, rng)
    shot = capture(sheet, DPI, rng, STILL)
    ink_image = shot.min(axis=2)
    k = DPI / 25.4
    margin = STILL.bed_margin_mm * k

    def crops(ids: list[str]) -> np.ndarray:
        return np.stack([crop_box(ink_image, (by_id[i].rect.cx * k + margin, by_id[i].rect.cy * k + margin), k,
                                  layout.box_mm) for i in ids])

    return crops(list(marks)), crops(empty)


# -- crop_box ------------------------------------------------------------------------------------
def test_crop_box_is_deterministic_square_and_puts_paper_at_white(election: Election) -> None:
    marked, empty = ballot_crops(election, "V", {"l3": (MarkStyle.X, "blue")}, ["l5"], seed=11)
    again, _ = ballot_crops(election, "V", {"l3": (MarkStyle.X, "blue")}, ["l5"], seed=11)
    assert marked.shape == (1, CROP_PX, CROP_PX) and marked.dtype == np.uint8
    assert marked.tobytes() == again.tobytes()
    assert int(empty.max()) == 255 and int(marked.max()) == 255


def test_crop_box_reads_the_same_under_dim_light_and_on_tinted_paper() -> None:
    rng = np.random.default_rng(3)
    clean = np.full((200, 200), 240, np.uint8)
    cv2.rectangle(clean, (80, 80), (119, 119), 20, 3)  # a box outline
    cv2.line(clean, (90, 92), (108, 110), 40, 3)  # a stroke in it
    img = cv2.add(clean, rng.integers(0, 3, clean.shape, dtype=np.uint8))
    bright = crop_box(img, (100.0, 100.0), 8.0, 5.0).astype(int)
    dim = crop_box((img * 0.7).astype(np.uint8), (100.0, 100.0), 8.0, 5.0).astype(int)
    assert np.abs(bright - dim).max() <= 4


def test_crop_box_at_the_image_edge_repeats_the_edge() -> None:
    img = np.full((60, 60), 230, np.uint8)
    crop = crop_box(img, (2.0, 58.0), 8.0, 5.0)
    assert crop.shape == (CROP_PX, CROP_PX) and int(crop.min()) == 255


def test_crop_box_names_what_is_wrong_with_its_input() -> None:
    with pytest.raises(ValueError, match="ink_image must be H x W uint8"):
        crop_box(np.zeros((40, 40, 3), np.uint8), (20.0, 20.0), 8.0, 5.0)
    with pytest.raises(ValueError, match="px_per_mm 0"):
        crop_box(np.zeros((40, 40), np.uint8), (20.0, 20.0), 0, 5.0)


# -- the shipped model ---------------------------------------------------------------------------
def test_shipped_model_is_small_and_is_the_certified_one() -> None:
    content = MODEL_PATH.read_bytes()
    assert len(content) < 200_000
    assert hashlib.sha256(content).hexdigest() == MODEL_SHA256
    assert MODEL_SHA256 in (MODEL_PATH.parent / "README.md").read_text(encoding="utf-8")


def test_model_calls_clear_marks_marks_and_empty_boxes_empty(election: Election) -> None:
    clf = runtime_or_skip()
    council_marks = {"l2": (MarkStyle.X, "blue"), "l7c3": (MarkStyle.CHECK, "black"),
                     "l9": (MarkStyle.FILLED, "dark_blue"), "l11c5": (MarkStyle.X, "black")}
    council = ballot_crops(election, "V", council_marks, ["l1", "l4c2", "l8", "l12c1"], seed=5)
    mayor = ballot_crops(election, "N", {"m3": (MarkStyle.X, "blue"), "m6": (MarkStyle.CHECK, "blue")},
                         ["m1", "m8"], seed=6)
    for marked, empty in (council, mayor):
        assert (clf.classify(marked) > 0.9).all(), clf.classify(marked)
        assert (clf.classify(empty) < 0.1).all(), clf.classify(empty)


def test_classify_batches_in_order_and_takes_no_crops(election: Election) -> None:
    clf = runtime_or_skip()
    marked, empty = ballot_crops(election, "V", {"l6": (MarkStyle.X, "blue"), "l10": (MarkStyle.CHECK, "black")},
                                 ["l3", "l5", "l12"], seed=8)
    batch = np.concatenate([marked, empty])
    together = clf.classify(batch)
    one_by_one = np.concatenate([clf.classify(batch[i:i + 1]) for i in range(len(batch))])
    assert together.shape == (5,) and together.dtype == np.float64
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    assert clf.classify(np.zeros((0, CROP_PX, CROP_PX), np.uint8)).shape == (0,)
    with pytest.raises(ValueError, match="crops must be N x 32 x 32 uint8"):
        clf.classify(np.zeros((2, 16, 16), np.uint8))


def test_model_loads_once_and_is_shared(election: Election) -> None:
    runtime_or_skip()
    assert MarkClassifier.load() is MarkClassifier.load()


def test_only_a_very_sure_second_opinion_settles_a_marginal_box() -> None:
    assert (settle(MARK_AT), settle(1.0), settle(EMPTY_AT), settle(0.0)) == ("mark", "mark", "empty", "empty")
    assert (settle(0.5), settle(0.999), settle(0.001)) == (None, None, None)


# -- without a runtime, or with a tampered file ----------------------------------------------------
def test_without_a_runtime_there_is_no_second_opinion_and_nothing_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("tflite_runtime", "tflite_runtime.interpreter", "ai_edge_litert", "ai_edge_litert.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # `import` of a None entry raises ImportError
    assert second_opinion._runtimes() == []
    assert MarkClassifier.available() is False
    assert MarkClassifier.load() is None
    assert MarkClassifier.unavailable_reason() == "no tflite runtime installed (tflite-runtime or ai-edge-litert)"
    # cropping needs no runtime: the engine can still make and log crops
    assert crop_box(np.full((80, 80), 200, np.uint8), (40.0, 40.0), 8.0, 5.0).shape == (CROP_PX, CROP_PX)


def test_a_model_file_that_is_not_the_certified_one_is_refused(tmp_path: Path) -> None:
    tampered = bytearray(MODEL_PATH.read_bytes())
    tampered[-1] ^= 0xFF
    path = tmp_path / "mark_classifier.tflite"
    path.write_bytes(bytes(tampered))
    assert MarkClassifier.load(path) is None
    assert "is not the certified model" in (MarkClassifier.unavailable_reason(path) or "")
    assert MarkClassifier.load(tmp_path / "missing.tflite") is None
    assert "cannot read the model" in (MarkClassifier.unavailable_reason(tmp_path / "missing.tflite") or "")


# -- the interpreter consults it ------------------------------------------------------------------
class ScriptedOpinion:
    """A stand-in model that answers a fixed probability and records what it was shown."""

    def __init__(self, p: float) -> None:
        self.p = p
        self.shown: list[np.ndarray] = []

    def classify(self, crops: np.ndarray) -> np.ndarray:
        self.shown.append(crops)
        return np.full(len(crops), self.p)


def _short_stroke_on_m2(election: Election) -> np.ndarray:
    """A short dark stroke over ~5 % of m2's inner area: marginal for the classical score."""
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    x, y, w, h = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m2")
    arr[y + h // 2 - 2:y + h // 2 + 2, x + w // 2 - 10:x + w // 2 + 10] = (30, 30, 30)
    return arr


@pytest.mark.parametrize("p, verdict, read", [
    (1.0, "valid", "mark"),           # very sure of a mark: the ballot counts for m2
    (0.0, "invalid", "empty"),        # very sure it is no mark: a blank ballot
    (0.999, "ambiguous", "marginal"),  # anything less sure changes nothing: ambiguous, box named
])
def test_interpreter_settles_a_marginal_box_only_on_a_very_sure_opinion(
        election: Election, p: float, verdict: str, read: str) -> None:
    from omr.interpret import interpret

    model = ScriptedOpinion(p)
    r = interpret(_short_stroke_on_m2(election), election, dpi=DPI, second_opinion=model)  # type: ignore[arg-type]
    assert len(model.shown) == 1 and model.shown[0].shape == (1, CROP_PX, CROP_PX)  # only the marginal box
    m2 = next(s for s in r.scores if s.candidate == "m2")
    assert (r.verdict.value, m2.mark, m2.opinion) == (verdict, read, p)
    if verdict == "ambiguous":
        assert r.reasons == ("marginal_mark:nacelnik/m2",)
    assert all(s.opinion is None for s in r.scores if s.candidate != "m2")


def test_interpreter_never_asks_about_foreign_ink_across_a_box(election: Election) -> None:
    """A stamp or a line across a box is for a person to judge, however sure the model would be."""
    from omr.interpret import interpret

    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    x, y, w, h = next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m4")
    k = DPI / 25.4
    # a thick line right across the box and 10 mm beyond it on both sides
    arr[y + h // 2 - 3:y + h // 2 + 3, int(x - 10 * k):int(x + w + 10 * k)] = (40, 40, 160)
    model = ScriptedOpinion(0.0)
    r = interpret(arr, election, dpi=DPI, second_opinion=model)  # type: ignore[arg-type]
    m4 = next(s for s in r.scores if s.candidate == "m4")
    assert m4.mark == "marginal" and m4.why == "ink_across_box" and m4.opinion is None
    assert model.shown == [] and r.verdict.value == "ambiguous"


def test_interpreter_with_the_shipped_model_reads_clear_ballots_as_without_it(election: Election) -> None:
    from omr.interpret import interpret

    clf = runtime_or_skip()
    rng = random.Random(3)
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    draw_mark(arr, next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m5"), MarkStyle.X,
              Pen(INKS["blue"], 0.5), DPI, rng)
    shot = capture(arr, DPI, rng, STILL)
    with_model = interpret(shot, election, dpi=DPI, second_opinion=clf)
    without = interpret(shot, election, dpi=DPI)
    assert (with_model.verdict, with_model.reasons, with_model.contests) == (without.verdict, without.reasons,
                                                                               without.contests)
    assert [s.mark for s in with_model.scores] == [s.mark for s in without.scores]
    assert with_model.contests["nacelnik"].candidates == ("m5",)
    m5 = next(s for s in with_model.scores if s.candidate == "m5")
    assert m5.opinion is not None and m5.opinion >= 0.5  # the mark was shown, and the model agreed


@pytest.mark.parametrize("p, read", [(0.0, "marginal"), (0.49, "marginal"), (0.5, "mark"), (1.0, "mark")])
def test_a_mark_the_model_doubts_goes_to_a_person_and_is_never_cleared(election: Election, p: float, read: str) -> None:
    """In this direction the model can only raise a flag: even sure it is no mark, the box is not read as
    empty, only put to the committee."""
    from omr.interpret import interpret

    rng = random.Random(5)
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    draw_mark(arr, next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m3"), MarkStyle.X,
              Pen(INKS["blue"], 0.5), DPI, rng)
    model = ScriptedOpinion(p)
    r = interpret(arr, election, dpi=DPI, second_opinion=model)  # type: ignore[arg-type]
    m3 = next(s for s in r.scores if s.candidate == "m3")
    assert (m3.mark, m3.opinion) == (read, p)
    assert r.verdict.value == ("valid" if read == "mark" else "ambiguous")


@pytest.mark.parametrize("style, asked", [(MarkStyle.FILLED, False), (MarkStyle.X, True)])
def test_a_filled_box_is_not_put_to_the_models_doubt(election: Election, style: MarkStyle, asked: bool) -> None:
    """The doubt rule is for lines (a stamp's ring, a streak) that pass the fill threshold; a box mostly
    covered by ink is a filling. The model doubts light pencil fillings, so it is not asked about them."""
    from omr.interpret import interpret

    rng = random.Random(8)
    img, layout = render_ballot(election, "N", DPI)
    arr = np.array(img)
    draw_mark(arr, next(b.rect.px(DPI) for b in layout.boxes if b.candidate == "m6"), style,
              Pen.named("pencil", 0.6), DPI, rng)
    model = ScriptedOpinion(0.01)
    r = interpret(arr, election, dpi=DPI, second_opinion=model)  # type: ignore[arg-type]
    m6 = next(s for s in r.scores if s.candidate == "m6")
    if asked:
        assert (m6.mark, m6.opinion, r.verdict.value) == ("marginal", 0.01, "ambiguous")
    else:
        assert (m6.mark, m6.opinion, r.verdict.value) == ("mark", None, "valid")
        assert model.shown == []

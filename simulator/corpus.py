"""The OMR corpus: seeded ballot images with ground truth, distorted as the levels of BENCHMARKS.md.

    generate(level, kind, n, seed) -> Iterator[CorpusItem]      level: L1 | L2 | L3 | foreign
                                                                 kind:  mayor | council | mixed

Every item is one capture of one sheet: the printed ballot (firmware.cec.ballots, the real test key), the
voter's marks (firmware.cec.pens: X, filled, check, slash, crossed-then-filled, and at L1 a hurried voter's
oversized X running past the box's corners; black, blue, light blue, red ink and pencil) and ink that is not
a vote (hesitation dots, smudges, erasures), the station stamp, paper damage, and the camera's view of it.
With it come the truth per box (marked or not, with what, and what else lies on it), the expected outcome
per contest - derived here from the intended marks by the rules of DOMAIN.md, never by omr.rules - and the
verdict a correct box must reach:

    "valid" | "invalid"   the ballot must be counted so (or returned / flagged: never counted otherwise)
    "reject"              L3's 12-degree and 0.95-scale sheets: unreadable or foreign, never a count
    "foreign"             not a ballot of this station and election: rejected, never counted

Item i of (level, kind, seed) is the same image on every run and on its own (`make_item`), so a failure
seen in a long benchmark can be regenerated alone. Items are made lazily, one at a time: a 30 x 35
council ballot at 200 dpi is ~29 MP (87 MB as RGB).

The capture model, in the order it is applied:
  paper    registration-mark density, stamp, marks, non-marks, creases, show-through of the back page
  camera   print scale, rotation (+180 deg for a quarter of the sheets), perspective, framing, a registration
           mark out of view (L3), uneven lighting, streaks, blur, sensor noise, JPEG
"""

from __future__ import annotations

import math
import random
import sys
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from config.election import (
    LARGE_ELECTION,
    SAMPLE_ELECTION,
    Contest,
    ContestKind,
    Election,
    load_election,
)
from firmware.cec.pens import (
    ALL_MARK_STYLES,
    ExtraMarkStyle,
    MarkStyle,
    NonMark,
    Pen,
    draw_mark,
    draw_non_mark,
)
from omr.layout import BallotLayout, BoxSpec, Rect, layout_ballot
from simulator.voters import PopulationMix, _intend

# ---------------------------------------------------------------------------------------------------
# The levels (BENCHMARKS.md, "Capture levels"). Ranges are drawn uniformly per sheet; single values are
# the level's condition and apply to every sheet of the level.
# ---------------------------------------------------------------------------------------------------

# Camera perspective, "up to 10 %": we read it as keystone - the sheet's far edge imaged up to 10 %
# shorter than its near edge (1 - short/long <= 0.10), as a camera tilted off the bed's normal sees it.
# The tilt is about the sheet's centre, so the nominal dpi holds at the centre of the frame and the
# local scale runs from ~0.95 (far edge) to ~1.05 (near edge). It belongs to the camera profile, so it
# applies at every level (and to the foreign sheets), uniformly in 0-10 %, along either axis.
PERSPECTIVE_MAX = 0.10


@dataclass(frozen=True)
class LevelSpec:
    name: str
    dpi: float
    rotation_deg: float  # uniform in +-rotation_deg
    print_scale: tuple[float, float]  # uniform in [lo, hi]
    blur_px: float  # Gaussian sigma, pixels of the capture
    noise_grey: float  # Gaussian sensor noise sigma, grey levels, per colour channel
    jpeg_quality: int
    lighting: float  # uneven lighting: the darkest point of the frame is this fraction below the brightest
    streaks: tuple[int, int]  # how many (uniform in [lo, hi]); along the feed = image columns
    streak_px: tuple[int, int]  # width, pixels of the capture
    streaks_through_boxes: bool
    creases: int
    creases_through_boxes: bool
    show_through: float  # contrast of the back page's print seen through the paper
    registration_density: float  # ink density of the four registration squares (1 = solid)
    registration_cropped: int  # registration marks partly out of the camera's view
    stamp: str  # "clear" (in its zone) | "over_box" | "over_mark"
    upside_down_share: float = 0.25  # 180-degree insertion: exactly one sheet in every block of four
    perspective: float = PERSPECTIVE_MAX
    # L3 only: sheets that must be rejected (expected_verdict "reject"), one of each per block of ten
    reject_rotation_deg: float | None = None
    reject_print_scale: float | None = None
    # issue 13: the share of sheets whose hurried voter draws every X oversized, its strokes running past
    # the box's corners by OVERRUN of the box's size; drawn from its own seeded stream, so the sheets'
    # other draws (and every sheet of a level without it) stay as they were
    oversized_x_share: float = 0.0


LEVELS: dict[str, LevelSpec] = {
    "L1": LevelSpec("L1", 200, 1.0, (1.0, 1.0), 0.5, 2, 95, 0.03, (0, 0), (0, 0), False, 0, False, 0.0, 1.0, 0,
                    "clear", oversized_x_share=0.2),
    "L2": LevelSpec("L2", 150, 3.0, (0.985, 1.015), 1.0, 6, 75, 0.10, (1, 1), (1, 2), False, 1, False, 0.05, 0.70,
                    0, "over_box"),
    "L3": LevelSpec("L3", 100, 6.0, (0.985, 1.015), 2.0, 12, 40, 0.25, (1, 3), (2, 4), True, 2, True, 0.15, 0.40,
                    1, "over_mark", reject_rotation_deg=12.0, reject_print_scale=0.95),
}
# Foreign sheets are captured as a typical (L1) sheet: what must reject them is what they are.
FOREIGN_CAPTURE = LEVELS["L1"]

FOREIGN_KINDS: tuple[str, ...] = (
    "photocopy",  # grey, colour lost, contrast changed, toner speckle
    "paper_colour",  # printed on paper of another colour
    "other_election",  # a genuine code of another election (other id or date): real key, other content
    "other_station",  # a genuine ballot of another polling station
    "specimen",  # a test / specimen ballot on an official day (issue 3, item 4)
    "tampered_code",  # an edited payload re-encoded as QR: its signature no longer verifies
    "missing_code",  # no code, or a code inked over
    "wrong_scale",  # printed at 0.88-0.95 or 1.05-1.12 of its size
    "blank_sheet",  # plain paper
    "two_sheets",  # two ballots fed at once: overlapped with an offset, or stacked (show-through, darker)
)


@dataclass(frozen=True)
class BallotKind:
    name: str
    election: Path
    style: str


BALLOT_KINDS: dict[str, BallotKind] = {
    "mayor": BallotKind("mayor", SAMPLE_ELECTION, "N"),  # A4, 8 candidates, single choice
    "council": BallotKind("council", LARGE_ELECTION, "V"),  # 30 lists x 35 candidates, 420 x 1119 mm
    "council-sample": BallotKind("council-sample", SAMPLE_ELECTION, "V"),  # 12 lists, 297 mm wide
}
# --kind mixed: half mayor ballots, a quarter of each council ballot.
KIND_CYCLE: dict[str, tuple[str, ...]] = {
    "mayor": ("mayor",),
    "council": ("council",),
    "council-sample": ("council-sample",),  # the sample election's council ballot alone (issue 13)
    "mixed": ("mayor", "council-sample", "mayor", "council"),
}

# What voters intend (shares per contest; voters.py draws the boxes).
INTENT_MIX = PopulationMix(valid=0.80, blank=0.06, overvote_or_multiple=0.07, over_preferenced=0.07)
# Pens (a voter keeps one) and mark habits (85 % of a voter's marks in their habitual style).
INK_WEIGHTS: dict[str, float] = {"black": 3, "blue": 3, "dark_blue": 1, "light_blue": 1.5, "red": 1, "pencil": 1.5}
STYLE_WEIGHTS: dict[str, float] = {MarkStyle.X: 5, MarkStyle.CHECK: 2, MarkStyle.FILLED: 1.5,
                                   ExtraMarkStyle.SLASH: 1.5, ExtraMarkStyle.CROSSED_THEN_FILLED: 0.7}
HABIT_SHARE = 0.85
OVERSIZED_X = "x_oversized"  # the truth's style of an X drawn with an overrun (LevelSpec.oversized_x_share)
# Ink that is not a vote: per ballot, each kind independently with this probability, in an unmarked box.
NON_MARK_RATES: dict[NonMark, float] = {NonMark.HESITATION_DOT: 0.30, NonMark.SMUDGE: 0.15, NonMark.ERASURE: 0.15}

STAMP_DIAMETER_MM = 24.0  # round station stamp; fits the 50 x 26 mm stamp zone
STAMP_INK = (70, 60, 150)  # violet stamp pad ink
BED_GREY = 55  # the feeder bed behind the sheet
OUT_OF_VIEW = 6  # beyond the camera's field of view: no light
OVERRUN = (0.15, 0.25)  # an oversized X: past the box's corners by 1/5 of its size, as the issue-13 corpus drew them
FRAME_MARGIN_MM = (4.0, 12.0)  # bed visible around the sheet, each side, uniform

MAX_CACHED_RENDERS = 4


# ---------------------------------------------------------------------------------------------------
# The items
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoxTruth:
    """What is on one box of the sheet, as printed, marked and handled."""

    marked: bool
    style: str | None = None  # mark style when marked
    ink: str | None = None  # ink name when marked
    non_mark: str | None = None  # NonMark when there is ink that is not a vote
    under_stamp: bool = False
    streak: bool = False  # a streak on the glass crosses it
    crease: bool = False  # a fold line crosses it

    def causes(self) -> list[str]:
        """Labels for what could make this box read wrong."""
        out = []
        if self.marked:
            out += [f"style:{self.style}", f"ink:{self.ink}"]
        if self.non_mark:
            out.append(f"non_mark:{self.non_mark}")
        out += [name for name, on in (("stamp", self.under_stamp), ("streak", self.streak), ("crease", self.crease))
                if on]
        return out or ["none"]


@dataclass
class CorpusItem:
    index: int
    level: str
    kind: str  # ballot kind: mayor | council | council-sample
    seed: int
    image: np.ndarray = field(repr=False)  # RGB uint8, the capture
    dpi: float  # the camera's calibrated resolution (at the centre of the frame)
    election: Election = field(repr=False)  # the station's election: what the box has installed
    style: str
    truth: dict[str, BoxTruth]  # box id "contest/box" -> truth
    expected: dict[str, dict[str, Any]]  # contest -> {"outcome", "list", "candidates"}
    expected_verdict: str  # valid | invalid | reject | foreign
    distortions: dict[str, Any]
    foreign: str | None = None  # FOREIGN_KINDS member for foreign sheets

    @property
    def name(self) -> str:
        return f"{self.level}-{self.kind}-s{self.seed}-{self.index:05d}"

    def truth_json(self) -> dict[str, Any]:
        return {"item": self.name, "index": self.index, "level": self.level, "kind": self.kind, "seed": self.seed,
                "style": self.style, "dpi": self.dpi, "foreign": self.foreign,
                "expected_verdict": self.expected_verdict, "expected": self.expected,
                "marked": sorted(b for b, t in self.truth.items() if t.marked),
                "boxes": {b: asdict(t) for b, t in self.truth.items() if t != BoxTruth(False)},
                "distortions": self.distortions}


def generate(level: str, kind: str, n: int, seed: int) -> Iterator[CorpusItem]:
    """n items of a level, lazily: each is made when asked for."""
    _check(level, kind)
    for i in range(n):
        yield make_item(level, kind, i, seed)


def make_item(level: str, kind: str, index: int, seed: int) -> CorpusItem:
    """Item `index` of generate(level, kind, ..., seed), on its own."""
    _check(level, kind)
    if level == "foreign":
        return _foreign_item(kind, index, seed)
    return _regular_item(LEVELS[level], kind, index, seed)


def expected_outcome(contest: Contest, marked: set[str] | frozenset[str]) -> dict[str, Any]:
    """The outcome a correct count records for a contest with these boxes marked (list ids and
    candidate ids), by the rules of DOMAIN.md - written here, apart from omr.rules, so the benchmark
    checks the engine against a second reading of the rules."""
    if contest.kind == ContestKind.SINGLE_CHOICE:
        # Mayor: exactly one candidate (vote_for); none -> blank; more -> invalid.
        chosen = [c.id for c in contest.candidates if c.id in marked]
        if not chosen:
            return {"outcome": "blank", "list": None, "candidates": []}
        if len(chosen) > contest.vote_for:
            return {"outcome": "overvote", "list": None, "candidates": []}
        return {"outcome": "valid", "list": None, "candidates": chosen}
    # Council, open list: one list; up to max_preferences of its own candidates.
    touched = [pl for pl in contest.lists if pl.id in marked or any(c.id in marked for c in pl.candidates)]
    if not touched:
        return {"outcome": "blank", "list": None, "candidates": []}
    if len(touched) > 1:  # list boxes or candidates of more than one list
        return {"outcome": "multiple_lists", "list": None, "candidates": []}
    chosen_list = touched[0]
    prefs = [c.id for c in chosen_list.candidates if c.id in marked]
    if len(prefs) > contest.max_preferences:  # the list vote stands, the preferences are void
        return {"outcome": "valid", "list": chosen_list.id, "candidates": []}
    return {"outcome": "valid", "list": chosen_list.id, "candidates": prefs}


def corpus_parameters() -> dict[str, Any]:
    """Everything that defines the corpus apart from (level, kind, n, seed): for the benchmark's JSON."""
    return {"levels": {k: asdict(v) for k, v in LEVELS.items()}, "foreign_kinds": list(FOREIGN_KINDS),
            "foreign_capture": "L1", "perspective_max": PERSPECTIVE_MAX,
            "perspective_meaning": "keystone: 1 - short/long edge of the imaged sheet, about its centre",
            "ballot_kinds": {k: {"election": v.election.name, "style": v.style} for k, v in BALLOT_KINDS.items()},
            "kind_cycle": {k: list(v) for k, v in KIND_CYCLE.items()},
            "intent_mix": asdict(INTENT_MIX), "ink_weights": INK_WEIGHTS,
            "style_weights": {str(k): v for k, v in STYLE_WEIGHTS.items()}, "habit_share": HABIT_SHARE,
            "non_mark_rates": {str(k): v for k, v in NON_MARK_RATES.items()},
            "stamp_diameter_mm": STAMP_DIAMETER_MM, "oversized_x_overrun": OVERRUN}


def _check(level: str, kind: str) -> None:
    if level not in LEVELS and level != "foreign":
        raise ValueError(f"corpus level '{level}': use one of {', '.join([*LEVELS, 'foreign'])}")
    if kind not in KIND_CYCLE:
        raise ValueError(f"corpus kind '{kind}': use one of {', '.join(KIND_CYCLE)}")


# ---------------------------------------------------------------------------------------------------
# Regular sheets (L1-L3)
# ---------------------------------------------------------------------------------------------------
def _regular_item(spec: LevelSpec, kind: str, index: int, seed: int) -> CorpusItem:
    bk = BALLOT_KINDS[KIND_CYCLE[kind][index % len(KIND_CYCLE[kind])]]
    rng = random.Random(f"omr-corpus:{seed}:{spec.name}:{kind}:{index}")
    nrng = np.random.default_rng(rng.getrandbits(64))
    election = _election(bk.election)
    layout = layout_ballot(election, bk.style)
    dpi = spec.dpi
    reject = _reject_case(spec, seed, kind, index)
    upside_down = _upside_down(seed, spec.name, kind, index)

    plan = _plan_ballot(election, bk.style, layout, rng)
    plan.overruns = _oversized_xs(spec, plan, seed, kind, index)
    sheet = _printed(election, bk.style, dpi).copy()
    paper = _paper_colour(election, bk.style)
    d: dict[str, Any] = {"dpi": dpi, "reject": reject}

    d["registration_density"] = spec.registration_density
    _registration_density(sheet, layout, dpi, spec.registration_density, paper)
    d["stamp"] = _stamp_sheet(sheet, layout, dpi, spec.stamp, plan, rng, nrng)
    _mark_sheet(sheet, layout, dpi, plan, rng)
    d["creases"] = _crease_sheet(sheet, layout, dpi, spec.creases, spec.creases_through_boxes, plan, rng)
    d["show_through"] = spec.show_through
    if spec.show_through > 0:
        _show_through(sheet, dpi, spec.show_through)

    rotation = rng.uniform(-spec.rotation_deg, spec.rotation_deg)
    scale = rng.uniform(*spec.print_scale)
    if reject == "rotation_12":
        rotation = spec.reject_rotation_deg * rng.choice((-1, 1))  # type: ignore[operator]
    elif reject == "print_scale_0.95":
        scale = spec.reject_print_scale  # type: ignore[assignment]
    geom = _draw_geometry(rng, rotation, upside_down, scale, False, spec.perspective)
    h, w = sheet.shape[:2]
    image, M, _ = _photograph(sheet, [_rect_quad(0, 0, w, h)], (w / 2, h / 2), geom, dpi, paper)
    del sheet
    d.update(_geometry_json(geom, M, dpi))
    d["registration_cropped"] = None
    if spec.registration_cropped:
        d["registration_cropped"] = _crop_registration(image, layout, M, dpi, rng)
    _finish_capture(image, spec, layout, M, dpi, plan, rng, nrng, d)
    expected_verdict = "reject" if reject else (
        "valid" if all(e["outcome"] == "valid" for e in plan.expected.values()) else "invalid")
    return CorpusItem(index, spec.name, bk.name, seed, image, dpi, election, bk.style, plan.truth(), plan.expected,
                      expected_verdict, d)


def _reject_case(spec: LevelSpec, seed: int, kind: str, index: int) -> str | None:
    """L3: in every block of ten sheets, one at 12 degrees and one at 0.95 scale (places seeded)."""
    if spec.reject_rotation_deg is None and spec.reject_print_scale is None:
        return None
    places = random.Random(f"omr-reject:{seed}:{spec.name}:{kind}:{index // 10}").sample(range(10), 2)
    if index % 10 == places[0] and spec.reject_rotation_deg is not None:
        return "rotation_12"
    if index % 10 == places[1] and spec.reject_print_scale is not None:
        return "print_scale_0.95"
    return None


def _oversized_xs(spec: LevelSpec, plan: _BallotPlan, seed: int, kind: str, index: int) -> dict[str, float]:
    """Box id -> overrun of each X a hurried voter draws oversized (spec.oversized_x_share of the sheets)."""
    r = random.Random(f"omr-oversize:{seed}:{spec.name}:{kind}:{index}")
    if not spec.oversized_x_share or r.random() >= spec.oversized_x_share:
        return {}
    return {bid: r.uniform(*OVERRUN) for bid, (how, _) in sorted(plan.marks.items()) if how == MarkStyle.X}


def _upside_down(seed: int, level: str, kind: str, index: int) -> bool:
    """Exactly one sheet in every block of four is fed turned by 180 degrees (25 %)."""
    return random.Random(f"omr-flip:{seed}:{level}:{kind}:{index // 4}").randrange(4) == index % 4


def _finish_capture(image: np.ndarray, spec: LevelSpec, layout: BallotLayout, M: np.ndarray, dpi: float,
                    plan: _BallotPlan, rng: random.Random, nrng: np.random.Generator, d: dict[str, Any]) -> None:
    """Lighting, streaks, blur, noise: in place. JPEG last, by the caller's assignment."""
    d["lighting"] = spec.lighting
    if spec.lighting > 0:
        _uneven_lighting(image, spec.lighting, rng)
    d["streaks"] = _streaks(image, layout, M, dpi, spec, plan, rng)
    d["blur_px"] = spec.blur_px
    if spec.blur_px > 0:
        cv2.GaussianBlur(image, (0, 0), spec.blur_px, dst=image)
    d["noise_grey"] = spec.noise_grey
    if spec.noise_grey > 0:
        _noise(image, spec.noise_grey, nrng)
    d["jpeg_quality"] = spec.jpeg_quality
    _jpeg(image, spec.jpeg_quality)


# ---------------------------------------------------------------------------------------------------
# The voter: intentions, marks, non-marks
# ---------------------------------------------------------------------------------------------------
@dataclass
class _BallotPlan:
    boxes: dict[str, BoxSpec]  # box id -> spec
    marks: dict[str, tuple[MarkStyle | ExtraMarkStyle, str]]  # box id -> (style, ink name)
    pen: Pen
    ink: str
    non_marks: dict[str, NonMark]
    expected: dict[str, dict[str, Any]]
    intents: dict[str, str]
    stamp_boxes: set[str] = field(default_factory=set)
    streak_boxes: set[str] = field(default_factory=set)
    crease_boxes: set[str] = field(default_factory=set)
    overruns: dict[str, float] = field(default_factory=dict)  # box id -> overrun of an oversized X

    def truth(self) -> dict[str, BoxTruth]:
        out = {}
        for bid in self.boxes:
            style, ink = self.marks.get(bid, (None, None))
            if bid in self.overruns:
                style = OVERSIZED_X
            nm = self.non_marks.get(bid)
            out[bid] = BoxTruth(bid in self.marks, str(style) if style else None, ink, str(nm) if nm else None,
                                bid in self.stamp_boxes, bid in self.streak_boxes, bid in self.crease_boxes)
        return out


def _plan_ballot(election: Election, style: str, layout: BallotLayout, rng: random.Random,
                 with_marks: bool = True) -> _BallotPlan:
    boxes = {b.box_id: b for b in layout.boxes}
    marked: set[str] = set()
    expected: dict[str, dict[str, Any]] = {}
    intents: dict[str, str] = {}
    for contest in election.contests_of(style):
        ci = _intend(contest, rng, INTENT_MIX) if with_marks else None
        chosen = set(ci.boxes) if ci else set()
        expected[contest.id] = expected_outcome(contest, chosen)
        if ci is not None:
            intents[contest.id] = str(ci.intent)
            # voters.py wrote its own expectation of the same intention: two readings must agree
            theirs = {"outcome": ci.expected.outcome, "list": ci.expected.list,
                      "candidates": list(ci.expected.candidates)}
            assert theirs == expected[contest.id], (contest.id, sorted(chosen), theirs, expected[contest.id])
        marked |= {f"{contest.id}/{b}" for b in chosen}
    ink = rng.choices(list(INK_WEIGHTS), weights=list(INK_WEIGHTS.values()))[0]
    if ink == "pencil":
        pen = Pen.named("pencil", rng.uniform(0.4, 0.7), tone=rng.randint(80, 130))
    elif ink in ("light_blue", "red"):
        pen = Pen.named(ink, rng.uniform(0.4, 0.9))  # often felt tips
    else:
        pen = Pen.named(ink, rng.uniform(0.35, 0.8))
    habit = rng.choices(list(STYLE_WEIGHTS), weights=list(STYLE_WEIGHTS.values()))[0]
    marks: dict[str, tuple[MarkStyle | ExtraMarkStyle, str]] = {}
    for bid in sorted(marked):
        how = habit if rng.random() < HABIT_SHARE else rng.choice(ALL_MARK_STYLES)
        marks[bid] = (how, ink)  # type: ignore[assignment]
    non_marks: dict[str, NonMark] = {}
    if with_marks:
        free = sorted(set(boxes) - marked)
        for kind, rate in NON_MARK_RATES.items():
            if rng.random() < rate and free:
                bid = free.pop(rng.randrange(len(free)))
                non_marks[bid] = kind
    return _BallotPlan(boxes, marks, pen, ink, non_marks, expected, intents)


def _mark_sheet(sheet: np.ndarray, layout: BallotLayout, dpi: float, plan: _BallotPlan, rng: random.Random) -> None:
    for bid, (how, _) in sorted(plan.marks.items()):
        draw_mark(sheet, plan.boxes[bid].rect.px(dpi), how, plan.pen, dpi, rng, overrun=plan.overruns.get(bid, 0.0))
    for bid, nm in sorted(plan.non_marks.items()):
        draw_non_mark(sheet, plan.boxes[bid].rect.px(dpi), nm, dpi, rng, pen=plan.pen)


# ---------------------------------------------------------------------------------------------------
# Paper: printing, stamp, creases, show-through
# ---------------------------------------------------------------------------------------------------
_renders: OrderedDict[tuple[str, str, float, str], np.ndarray] = OrderedDict()


def _printed(election: Election, style: str, dpi: float, mode: str | None = None) -> np.ndarray:
    """The printed ballot as an RGB array (cached: render each style once per dpi; callers copy)."""
    from firmware.cec.ballots import render_ballot

    key = (election.digest(), style, float(dpi), mode or election.mode)
    if key in _renders:
        _renders.move_to_end(key)
        return _renders[key]
    img, _ = render_ballot(election, style, dpi, key=_signing_key(), mode=mode)
    arr = np.asarray(img, dtype=np.uint8).copy()
    del img
    # firmware.cec.ballots keeps its own cache of PIL renders (8 x 87 MB at 30 x 35, 200 dpi); ours holds the
    # arrays, so let it go
    clear = getattr(getattr(sys.modules.get("firmware.cec.ballots"), "_render_cached", None), "cache_clear", None)
    if clear is not None:
        clear()
    arr.setflags(write=False)
    _renders[key] = arr
    while len(_renders) > MAX_CACHED_RENDERS:
        _renders.popitem(last=False)
    return arr


@lru_cache(maxsize=1)
def _signing_key() -> Any:
    from firmware.cec.ballots import load_signing_key

    return load_signing_key()


@lru_cache(maxsize=4)
def _election(path: Path) -> Election:
    return load_election(path)


def _paper_colour(election: Election, style: str) -> tuple[int, int, int]:
    c = election.style(style).colour.lstrip("#")
    return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16))


def _registration_density(sheet: np.ndarray, layout: BallotLayout, dpi: float, density: float,
                          paper: tuple[int, int, int]) -> None:
    """Registration squares printed at `density` of full ink (a worn toner cartridge, a light print)."""
    if density >= 1.0:
        return
    for r in layout.registration:
        x, y, w, h = r.px(dpi)
        region = sheet[y:y + h, x:x + w].astype(np.float32)
        region = np.array(paper, np.float32) * (1 - density) + region * density
        sheet[y:y + h, x:x + w] = np.clip(region + 0.5, 0, 255).astype(np.uint8)


def _stamp_sheet(sheet: np.ndarray, layout: BallotLayout, dpi: float, placement: str, plan: _BallotPlan,
                 rng: random.Random, nrng: np.random.Generator) -> dict[str, Any]:
    """The committee stamps every ballot (Art. 21(3)): in its zone, or - carelessly - over a box."""
    radius = STAMP_DIAMETER_MM / 2
    target: str | None = None
    if placement == "clear":
        z = layout.stamp
        cx = z.cx + rng.uniform(-1, 1) * max(0.0, (z.w - STAMP_DIAMETER_MM) / 2) * 0.8
        cy = z.cy + rng.uniform(-1, 1) * max(0.0, (z.h - STAMP_DIAMETER_MM) / 2) * 0.8
    else:
        pool = sorted(plan.marks) if placement == "over_mark" and plan.marks else sorted(plan.boxes)
        target = rng.choice(pool)
        r = plan.boxes[target].rect
        # the box lies somewhere inside the stamp's disc: under the ring, the lettering or the centre
        rho, phi = radius * 0.85 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        cx, cy = r.cx + rho * math.cos(phi), r.cy + rho * math.sin(phi)
    angle = rng.uniform(0, 360)
    strength = rng.uniform(0.55, 0.95)
    _apply_stamp(sheet, cx, cy, angle, strength, dpi, rng, nrng)
    for bid, b in plan.boxes.items():
        if _rect_disc_distance(b.rect, cx, cy) < radius:
            plan.stamp_boxes.add(bid)
    return {"placement": placement, "box": target, "centre_mm": [round(cx, 2), round(cy, 2)],
            "angle_deg": round(angle, 1), "strength": round(strength, 3), "boxes_under": sorted(plan.stamp_boxes)}


def _rect_disc_distance(r: Rect, cx: float, cy: float) -> float:
    dx = max(r.x - cx, 0.0, cx - (r.x + r.w))
    dy = max(r.y - cy, 0.0, cy - (r.y + r.h))
    return math.hypot(dx, dy)


@lru_cache(maxsize=4)
def _stamp_template(dpi: float) -> np.ndarray:
    """The station's round stamp as ink cover 0..1: two rings, lettering between them, three lines of
    text in the middle. One design per station, so a fixed seed."""
    k = dpi / 25.4
    ss = 4  # drawn 4x over and reduced: thin lines keep their weight at 100 dpi
    kk = k * ss
    radius = STAMP_DIAMETER_MM / 2
    side = math.ceil(STAMP_DIAMETER_MM * kk) + 4 * ss
    c = side / 2
    canvas = np.zeros((side, side), np.uint8)
    rng = random.Random("station stamp 089A012")

    def stroke(p: tuple[float, float], q: tuple[float, float], width_mm: float) -> None:
        cv2.line(canvas, (round((c + p[0] * kk) * 16), round((c + p[1] * kk) * 16)),
                 (round((c + q[0] * kk) * 16), round((c + q[1] * kk) * 16)), 255,
                 thickness=max(1, round(width_mm * kk)), lineType=cv2.LINE_AA, shift=4)

    cv2.circle(canvas, (round(c * 16), round(c * 16)), round((radius - 0.3) * kk * 16), 255,
               thickness=max(1, round(0.5 * kk)), lineType=cv2.LINE_AA, shift=4)
    cv2.circle(canvas, (round(c * 16), round(c * 16)), round((radius - 3.6) * kk * 16), 255,
               thickness=max(1, round(0.3 * kk)), lineType=cv2.LINE_AA, shift=4)

    def glyph(ox: float, oy: float, gw: float, gh: float, rot: float) -> None:
        cr, sr = math.cos(rot), math.sin(rot)
        for _ in range(rng.randint(1, 3)):
            a = (rng.uniform(-gw / 2, gw / 2), rng.uniform(-gh / 2, gh / 2))
            b = (rng.uniform(-gw / 2, gw / 2), rng.uniform(-gh / 2, gh / 2))
            pa = (ox + a[0] * cr - a[1] * sr, oy + a[0] * sr + a[1] * cr)
            pb = (ox + b[0] * cr - b[1] * sr, oy + b[0] * sr + b[1] * cr)
            stroke(pa, pb, 0.25)

    ring_r = radius - 1.95
    step = 1.55 / ring_r
    t = 0.0
    while t < 2 * math.pi - step:
        if not (math.pi / 2 - 3 * step < t < math.pi / 2 + 3 * step):  # a gap at the bottom
            glyph(ring_r * math.cos(t), ring_r * math.sin(t), 1.1, 1.9, t + math.pi / 2)
        t += step
    for row in (-2.4, 0.0, 2.4):
        half = math.sqrt(max(0.0, (radius - 4.4) ** 2 - row ** 2))
        x = -half
        while x < half - 1.0:
            glyph(x + 0.6, row, 1.0, 1.6, 0.0)
            x += 1.35
    small = cv2.resize(canvas, (side // ss, side // ss), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _apply_stamp(sheet: np.ndarray, cx_mm: float, cy_mm: float, angle: float, strength: float, dpi: float,
                 rng: random.Random, nrng: np.random.Generator) -> None:
    k = dpi / 25.4
    tpl = _stamp_template(dpi)
    side = tpl.shape[0]
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    cover = cv2.warpAffine(tpl, rot, (side, side), flags=cv2.INTER_LINEAR)
    # uneven inking: a smooth random field, and one side pressed harder than the other
    coarse = nrng.uniform(0.55, 1.0, (6, 6)).astype(np.float32)
    field_ = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC)
    ramp_dir = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
    ramp = 1.0 - rng.uniform(0.0, 0.6) * (0.5 + xx * math.cos(ramp_dir) + yy * math.sin(ramp_dir))
    alpha = np.clip(cover * field_ * ramp * strength, 0, 1)
    x0, y0 = round(cx_mm * k - side / 2), round(cy_mm * k - side / 2)
    h, w = sheet.shape[:2]
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if sx1 <= sx0 or sy1 <= sy0:
        return
    a = alpha[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0, None]
    patch = sheet[sy0:sy1, sx0:sx1].astype(np.float32)
    patch *= 1.0 - a * (1.0 - np.array(STAMP_INK, np.float32) / 255.0)  # translucent ink: it darkens
    sheet[sy0:sy1, sx0:sx1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def _crease_sheet(sheet: np.ndarray, layout: BallotLayout, dpi: float, count: int, through_boxes: bool,
                  plan: _BallotPlan, rng: random.Random) -> list[dict[str, Any]]:
    """Fold lines: the voter folds the ballot to hide the vote. Through a box's centre at L3."""
    out = []
    k = dpi / 25.4
    pool = sorted(plan.boxes)
    for _ in range(count):
        vertical = rng.random() < 0.3
        angle = rng.uniform(-3, 3)
        if through_boxes and pool:
            bid = pool.pop(rng.randrange(len(pool)))
            r = plan.boxes[bid].rect
            px, py = r.cx + rng.uniform(-0.25, 0.25) * r.w, r.cy + rng.uniform(-0.25, 0.25) * r.h
        else:
            bid = None
            px, py = layout.width_mm * rng.uniform(0.25, 0.75), layout.height_mm * rng.uniform(0.25, 0.75)
        depth = rng.uniform(0.10, 0.25)  # darkening at the fold's core
        shadow = rng.uniform(0.03, 0.08)  # on the side turned from the light
        highlight = rng.uniform(0.0, 0.04)  # on the side turned to it
        _crease(sheet, px * k, py * k, math.radians(angle), vertical, depth, shadow, highlight, k)
        crossed = _boxes_on_line(plan.boxes, px, py, math.radians(angle), vertical, 0.3)
        plan.crease_boxes |= crossed
        out.append({"orientation": "vertical" if vertical else "horizontal", "angle_deg": round(angle, 2),
                    "through_mm": [round(px, 2), round(py, 2)], "through_box": bid, "depth": round(depth, 3),
                    "boxes_crossed": sorted(crossed)})
    return out


def _boxes_on_line(boxes: dict[str, BoxSpec], px: float, py: float, angle: float, vertical: bool,
                   halfwidth_mm: float) -> set[str]:
    out = set()
    for bid, b in boxes.items():
        r = b.rect
        if vertical:  # x = px + (y - py) tan(angle)
            x_at = px + (r.cy - py) * math.tan(angle)
            if r.x - halfwidth_mm <= x_at <= r.x + r.w + halfwidth_mm:
                out.add(bid)
        else:
            y_at = py + (r.cx - px) * math.tan(angle)
            if r.y - halfwidth_mm <= y_at <= r.y + r.h + halfwidth_mm:
                out.add(bid)
    return out


def _crease(sheet: np.ndarray, px: float, py: float, angle: float, vertical: bool, depth: float, shadow: float,
            highlight: float, k: float) -> None:
    """A fold line through (px, py) at `angle` from the horizontal (or vertical): a dark core, a shadow on
    one side, a faint highlight on the other. Computed only in the band it touches."""
    view = sheet.transpose(1, 0, 2) if vertical else sheet
    if vertical:
        px, py = py, px
    h, w = view.shape[:2]
    core_w, side_w = 0.25 * k, 1.2 * k
    margin = int(5 * side_w + 3 * core_w) + 2
    xs = np.arange(w, dtype=np.float32)
    y_line = py + (xs - px) * math.tan(angle)
    y0, y1 = max(0, int(y_line.min()) - margin), min(h, int(y_line.max()) + margin + 1)
    if y1 <= y0:
        return
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    dist = (ys - y_line[None, :]) * math.cos(angle)
    dark = depth * np.exp(-(dist / core_w) ** 2)
    dark += np.where(dist > 0, shadow * np.exp(-np.abs(dist) / side_w), -highlight * np.exp(-np.abs(dist) / side_w))
    band = view[y0:y1].astype(np.float32)
    band *= (1.0 - dark)[:, :, None]
    view[y0:y1] = np.clip(band + 0.5, 0, 255).astype(np.uint8)


# The back of the ballot carries the voting instructions ("Uputstvo za glasanje: na poleđini listića").
_BACK_TEXT = (
    "Uputstvo za glasanje. Birač glasa tako što zaokruži ili označi znakom X kvadrat ispred imena kandidata "
    "ili naziva liste za koju glasa. Na listiću za izbor načelnika označite samo jednog kandidata. Na listiću "
    "za izbor općinskog vijeća označite jednu listu i najviše tri kandidata sa te liste. Listić na kojem su "
    "označene dvije ili više lista je nevažeći. Ne upisujte ništa na listić osim oznake. Presavijte listić i "
    "stavite ga u zaštitnu fasciklu, te ga sami ubacite u skener. Ako pogriješite, tražite novi listić. "
)


@lru_cache(maxsize=3)
def _back_page(h: int, w: int, dpi: float) -> np.ndarray:
    """The back page's ink as seen through the paper from the front: mirrored, diffused, 3 channels
    (0 = no ink .. 255 = full ink)."""
    from PIL import Image, ImageDraw

    from firmware.common.fonts import load_font

    k = dpi / 25.4
    img = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(img)
    font = load_font(max(6, round(3.2 * k)))
    col_w_mm = 180.0
    ncols = max(1, int((w / k - 30) // col_w_mm))
    chars = int(col_w_mm / (3.2 * 0.52))
    text = _BACK_TEXT * 4
    pos = 0
    for col in range(ncols):
        x = (15 + col * (col_w_mm + 10)) * k
        y_mm, line = 20.0, 0
        while y_mm < h / k - 20:
            seg = text[pos:pos + chars]
            pos = (pos + chars) % len(_BACK_TEXT)
            draw.text((x, y_mm * k), seg, font=font, fill=20)
            line += 1
            y_mm += 5.5 + (5.5 if line % 7 == 0 else 0.0)
    back = np.asarray(img)[:, ::-1]
    back = cv2.GaussianBlur(back, (0, 0), 0.35 * k)
    dark = 255 - back
    return cv2.merge([dark, dark, dark])


def _show_through(sheet: np.ndarray, dpi: float, contrast: float) -> None:
    h, w = sheet.shape[:2]
    dark = _back_page(h, w, dpi)
    shade = cv2.multiply(sheet, dark, scale=contrast / 255.0)
    cv2.subtract(sheet, shade, dst=sheet)


# ---------------------------------------------------------------------------------------------------
# The camera
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Geometry:
    rotation_deg: float  # in the frame, including 180 for a sheet fed the other way round
    upside_down: bool
    print_scale: float  # of the print on its paper, about the sheet's centre
    paper_scaled: bool  # the paper is scaled too (an enlarged copy on bigger paper)
    keystone: float  # 1 - short/long edge
    keystone_axis: str  # "vertical": top and bottom edges differ; "horizontal": left and right
    keystone_far: int  # -1: the top (or left) edge is the far one; +1: the bottom (or right)
    margins_mm: tuple[float, float, float, float]  # bed visible left, top, right, bottom


def _draw_geometry(rng: random.Random, rotation: float, upside_down: bool, scale: float, paper_scaled: bool,
                   perspective: float) -> _Geometry:
    keystone = rng.uniform(0, perspective)
    axis = rng.choice(("vertical", "horizontal"))
    far = rng.choice((-1, 1))
    margins = tuple(rng.uniform(*FRAME_MARGIN_MM) for _ in range(4))
    return _Geometry(rotation + (180.0 if upside_down else 0.0), upside_down, scale, paper_scaled, keystone, axis,
                     far, margins)  # type: ignore[arg-type]


def _geometry_json(g: _Geometry, M: np.ndarray, dpi: float) -> dict[str, Any]:
    k = dpi / 25.4
    mm_to_image = M @ np.diag([k, k, 1.0])
    return {"rotation_deg": round(g.rotation_deg - (180.0 if g.upside_down else 0.0), 3),
            "upside_down": g.upside_down, "print_scale": round(g.print_scale, 5),
            "perspective": {"keystone": round(g.keystone, 4), "axis": g.keystone_axis,
                            "far": ("top" if g.keystone_far < 0 else "bottom") if g.keystone_axis == "vertical"
                            else ("left" if g.keystone_far < 0 else "right")},
            "frame_margins_mm": [round(m, 2) for m in g.margins_mm],
            "mm_to_image": [[round(float(v), 8) for v in row] for row in mm_to_image]}


def _rect_quad(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


def _affine3(a: np.ndarray) -> np.ndarray:
    return np.vstack([a, [0.0, 0.0, 1.0]])


def _apply(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(-1, 1, 2), M).reshape(-1, 2)


def _photograph(scene: np.ndarray, papers: list[np.ndarray], centre: tuple[float, float], g: _Geometry,
                dpi: float, paper_colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The camera's frame of `scene` (paper sheets on the bed): print scale, rotation and keystone, framed
    with a margin of bed. `papers` are the sheets' outlines in scene pixels (bed outside them).

    Returns the RGB frame, the 3x3 map scene px -> frame px, and the paper outlines in the frame."""
    k = dpi / 25.4
    cx, cy = centre
    T = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]], np.float64)
    Ti = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    S = T @ np.diag([g.print_scale, g.print_scale, 1.0]) @ Ti
    R = _affine3(cv2.getRotationMatrix2D((cx, cy), g.rotation_deg, 1.0))
    content, outline = R @ S, R @ (S if g.paper_scaled else np.eye(3))
    pts = np.vstack([_apply(outline, p) for p in papers])
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    mx, my, a, b = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    q = g.keystone / (2 - g.keystone)  # (1 - q) / (1 + q) = 1 - keystone
    near, farr = 1 + q, 1 - q
    src = np.array([[mx - a, my - b], [mx + a, my - b], [mx + a, my + b], [mx - a, my + b]], np.float32)
    if g.keystone_axis == "vertical":
        top, bottom = (farr, near) if g.keystone_far < 0 else (near, farr)
        dst = np.array([[mx - a * top, my - b], [mx + a * top, my - b], [mx + a * bottom, my + b],
                        [mx - a * bottom, my + b]], np.float32)
    else:
        left, right = (farr, near) if g.keystone_far < 0 else (near, farr)
        dst = np.array([[mx - a, my - b * left], [mx + a, my - b * right], [mx + a, my + b * right],
                        [mx - a, my + b * left]], np.float32)
    K = cv2.getPerspectiveTransform(src, dst).astype(np.float64)
    pts = np.vstack([_apply(K @ outline, p) for p in papers])
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    ml, mt, mr, mb = (m * k for m in g.margins_mm)
    shift = np.array([[1, 0, ml - x0], [0, 1, mt - y0], [0, 0, 1]], np.float64)
    width, height = math.ceil(x1 - x0 + ml + mr), math.ceil(y1 - y0 + mt + mb)
    M, Mp = shift @ K @ content, shift @ K @ outline
    frame = cv2.warpPerspective(scene, M, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=paper_colour)
    quads = [_apply(Mp, p) for p in papers]
    _bed_outside(frame, quads)
    return frame, M, quads


def _bed_outside(frame: np.ndarray, quads: list[np.ndarray]) -> None:
    h, w = frame.shape[:2]
    bed = (BED_GREY,) * 3
    if len(quads) == 1:
        # the frame's rectangle with the sheet as a hole: fillPoly fills between the two outlines
        outer = np.array([[-2, -2], [w + 2, -2], [w + 2, h + 2], [-2, h + 2]], np.int32) * 16
        cv2.fillPoly(frame, [outer, np.round(quads[0] * 16).astype(np.int32)], bed, lineType=cv2.LINE_AA, shift=4)
        return
    mask = np.zeros((h, w), np.uint8)
    for q in quads:
        cv2.fillPoly(mask, [np.round(q * 16).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4)
    frame[mask == 0] = bed


def _crop_registration(frame: np.ndarray, layout: BallotLayout, M: np.ndarray, dpi: float,
                       rng: random.Random) -> dict[str, Any]:
    """One registration mark partly out of the camera's view: the frame corner nearest it is dark
    beyond a 45-degree line cutting 25-60 % of the mark (the lens's field of view clipped at a corner;
    cropping a frame edge instead would cut the two marks of that side alike)."""
    k = dpi / 25.4
    h, w = frame.shape[:2]
    j = rng.randrange(4)
    r = layout.registration[j]
    corners = _apply(M, _rect_quad(r.x * k, r.y * k, r.w * k, r.h * k))
    centre = corners.mean(axis=0)
    frame_corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    qx, qy = frame_corners[int(np.argmin(np.hypot(*(frame_corners - centre).T)))]
    sx, sy = (1.0 if qx > centre[0] else -1.0), (1.0 if qy > centre[1] else -1.0)
    u = np.array([sx, sy]) / math.sqrt(2)
    proj = corners @ u
    frac = rng.uniform(0.25, 0.60)
    t = proj.max() - frac * (proj.max() - proj.min())
    # points on the frame's edges through the corner where p . u = t
    x_edge = (t * math.sqrt(2) - qy * sy) / sx
    y_edge = (t * math.sqrt(2) - qx * sx) / sy
    tri = np.array([[qx, qy], [x_edge, qy], [qx, y_edge]], np.float64)
    cv2.fillPoly(frame, [np.round(tri * 16).astype(np.int32)], (OUT_OF_VIEW,) * 3, lineType=cv2.LINE_AA, shift=4)
    return {"mark": ["top-left", "top-right", "bottom-right", "bottom-left"][j], "fraction": round(frac, 3)}


def _uneven_lighting(frame: np.ndarray, amount: float, rng: random.Random) -> None:
    """Brightness falling by up to `amount` across the frame: a gradient and an off-centre fall-off."""
    h, w = frame.shape[:2]
    gh, gw = 33, max(3, round(33 * w / h))
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    yy, xx = yy / (gh - 1), xx / (gw - 1)
    theta = rng.uniform(0, 2 * math.pi)
    grad = xx * math.cos(theta) + yy * math.sin(theta)
    ccx, ccy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
    radial = (xx - ccx) ** 2 + (yy - ccy) ** 2
    f = rng.uniform(0.3, 0.7) * _unit(grad) + rng.uniform(0.3, 0.7) * _unit(radial)
    light = 1.0 - amount * _unit(f)
    coarse8 = np.clip(light * 255 + 0.5, 0, 255).astype(np.uint8)
    light8 = cv2.resize(coarse8, (w, h), interpolation=cv2.INTER_LINEAR)
    for y in range(0, h, 1024):
        chunk = frame[y:y + 1024]
        lc = light8[y:y + 1024]
        cv2.multiply(chunk, cv2.merge([lc, lc, lc]), dst=chunk, scale=1 / 255.0)


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _streaks(frame: np.ndarray, layout: BallotLayout, M: np.ndarray, dpi: float, spec: LevelSpec,
             plan: _BallotPlan, rng: random.Random) -> list[dict[str, Any]]:
    """Dust on the glass: lines along the feed (image columns) through the whole frame, dark or white."""
    count = rng.randint(*spec.streaks)
    if count == 0:
        return []
    k = dpi / 25.4
    w = frame.shape[1]
    centres = {bid: _apply(M, np.array([[b.rect.cx * k, b.rect.cy * k]]))[0] for bid, b in plan.boxes.items()}
    extents = {bid: _apply(M, _rect_quad(b.rect.x * k, b.rect.y * k, b.rect.w * k, b.rect.h * k))[:, 0]
               for bid, b in plan.boxes.items()}
    out = []
    pool = sorted(plan.boxes)
    for _ in range(count):
        width = rng.randint(*spec.streak_px)
        target = None
        if spec.streaks_through_boxes and pool:
            target = pool.pop(rng.randrange(len(pool)))
            inner_half = (layout.box_mm / 2 - 0.9) * k
            x = centres[target][0] + rng.uniform(-0.4, 0.4) * inner_half
        else:
            x = rng.uniform(0.05 * w, 0.95 * w)
        x0 = round(x - width / 2)
        x0, x1 = max(0, x0), min(w, x0 + width)
        dark = rng.random() < 0.65
        value = rng.uniform(30, 120) if dark else rng.uniform(240, 255)
        opacity = rng.uniform(0.6, 1.0)
        col = frame[:, x0:x1].astype(np.float32)
        col += (value - col) * opacity
        frame[:, x0:x1] = np.clip(col + 0.5, 0, 255).astype(np.uint8)
        crossed = sorted(bid for bid, xs in extents.items() if xs.min() < x1 and xs.max() > x0)
        plan.streak_boxes |= set(crossed)
        out.append({"x_px": x0, "width_px": x1 - x0, "polarity": "dark" if dark else "white",
                    "value": round(value, 1), "opacity": round(opacity, 3), "through_box": target,
                    "boxes_crossed": crossed})
    return out


def _noise(frame: np.ndarray, sigma: float, nrng: np.random.Generator) -> None:
    """Gaussian sensor noise per colour channel. One random byte per sample picks one of 256
    equiprobable Gaussian quantiles (so the tails stop at +-2.9 sigma): four times faster than drawing
    normals, which matters at 29 MP a frame. Saturating uint8 add and subtract, in row chunks."""
    pos, neg = _noise_tables(float(sigma))
    h = frame.shape[0]
    for y in range(0, h, 1024):
        chunk = frame[y:y + 1024]
        raw = np.frombuffer(nrng.bytes(chunk.size), np.uint8).reshape(chunk.shape)
        cv2.add(chunk, cv2.LUT(raw, pos), dst=chunk)
        cv2.subtract(chunk, cv2.LUT(raw, neg), dst=chunk)


@lru_cache(maxsize=8)
def _noise_tables(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    from statistics import NormalDist

    quantiles = np.rint(np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)]) * sigma)
    return np.clip(quantiles, 0, 255).astype(np.uint8), np.clip(-quantiles, 0, 255).astype(np.uint8)


def _jpeg(frame: np.ndarray, quality: int) -> None:
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok, "JPEG encoding failed"
    del bgr
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert decoded is not None, "JPEG decoding failed"
    cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB, dst=frame)


# ---------------------------------------------------------------------------------------------------
# Foreign sheets
# ---------------------------------------------------------------------------------------------------
_TINTS: dict[str, tuple[int, int, int]] = {"yellow": (250, 238, 170), "pink": (250, 212, 222),
                                           "green": (212, 240, 200), "blue": (208, 224, 250),
                                           "grey": (222, 222, 218)}


def _foreign_item(kind: str, index: int, seed: int) -> CorpusItem:
    spec = FOREIGN_CAPTURE
    fk = FOREIGN_KINDS[index % len(FOREIGN_KINDS)]
    bk = BALLOT_KINDS[KIND_CYCLE[kind][(index // len(FOREIGN_KINDS)) % len(KIND_CYCLE[kind])]]
    rng = random.Random(f"omr-corpus:{seed}:foreign:{kind}:{index}")
    nrng = np.random.default_rng(rng.getrandbits(64))
    election = _election(bk.election)
    style = bk.style
    layout = layout_ballot(election, style)
    dpi = spec.dpi
    paper = _paper_colour(election, style)
    upside_down = _upside_down(seed, "foreign", kind, index)
    d: dict[str, Any] = {"dpi": dpi, "foreign": fk, "reject": None}
    plan = _plan_ballot(election, style, layout, rng, with_marks=fk != "blank_sheet")
    scale, paper_scaled = 1.0, False

    if fk == "blank_sheet":
        sheet = np.empty_like(_printed(election, style, dpi))
        sheet[...] = paper
        d["variant"] = "plain paper"
        papers, centre = [_rect_quad(0, 0, sheet.shape[1], sheet.shape[0])], (sheet.shape[1] / 2, sheet.shape[0] / 2)
    elif fk == "two_sheets":
        sheet, papers, centre, scene_info = _two_sheets(election, style, layout, dpi, plan, rng, nrng)
        d.update(scene_info)
    else:
        source_election, mode = election, None
        if fk == "other_election":
            variant = rng.choice(("other_id", "other_date"))
            update: dict[str, Any] = {"date": "2020-10-04"}
            if variant == "other_id":
                update["id"] = ("LI2020" + election.id[6:])[:16] if election.id != "LI2020" else "LI2016"
            source_election = election.model_copy(update=update)
            d["variant"] = variant
            d["printed_for"] = {"id": source_election.id, "date": source_election.date}
        elif fk == "other_station":
            code = election.station.code
            variant = rng.choice(("same_municipality", "other_municipality"))
            other = (f"{code[:4]}{int(code[4:]) % 999 + 1:03d}" if variant == "same_municipality"
                     else f"{int(code[:3]) % 999 + 1:03d}{code[3:]}")
            source_election = election.model_copy(
                update={"station": election.station.model_copy(update={"code": other})})
            d["variant"] = variant
            d["printed_for"] = {"station": other}
        elif fk == "specimen":
            mode = "test" if election.mode == "official" else "official"
            d["variant"] = f"printed in {mode} mode"
        sheet = _printed(source_election, style, dpi, mode).copy()
        if fk == "tampered_code":
            d.update(_tamper_code(sheet, election, style, layout, dpi, paper, rng))
        elif fk == "missing_code":
            d.update(_remove_code(sheet, layout, dpi, paper, plan, rng))
        elif fk == "wrong_scale":
            scale = rng.uniform(0.88, 0.95) if rng.random() < 0.5 else rng.uniform(1.05, 1.12)
            paper_scaled = scale > 1  # an enlarged copy comes on bigger paper; a shrunk one on the same
            d["variant"] = "enlarged on bigger paper" if paper_scaled else "shrunk to fit"
        d["stamp"] = _stamp_sheet(sheet, layout, dpi, "clear", plan, rng, nrng)
        if fk == "photocopy":
            d.update(_photocopy(sheet, dpi, rng, nrng))
        elif fk == "paper_colour":
            d.update(_tint_paper(sheet, paper, rng))
        _mark_sheet(sheet, layout, dpi, plan, rng)
        h, w = sheet.shape[:2]
        papers, centre = [_rect_quad(0, 0, w, h)], (w / 2, h / 2)

    rotation = rng.uniform(-spec.rotation_deg, spec.rotation_deg)
    geom = _draw_geometry(rng, rotation, upside_down, scale, paper_scaled, spec.perspective)
    image, M, _ = _photograph(sheet, papers, centre, geom, dpi, paper)
    del sheet
    d.update(_geometry_json(geom, M, dpi))
    if fk == "two_sheets":  # the map of the top sheet (the scene has an offset)
        off = d.pop("top_offset_px")
        d["mm_to_image"] = [[round(float(v), 8) for v in row] for row in
                            (M @ np.array([[1, 0, off[0]], [0, 1, off[1]], [0, 0, 1.0]]) @ np.diag([dpi / 25.4,
                                                                                                       dpi / 25.4, 1]))]
    d["registration_density"] = 1.0
    d["registration_cropped"] = None
    d["creases"] = []
    d["show_through"] = 0.0
    _finish_capture(image, spec, layout, M, dpi, plan, rng, nrng, d)
    return CorpusItem(index, "foreign", bk.name, seed, image, dpi, election, style, plan.truth(), plan.expected,
                      "foreign", d, foreign=fk)


def _tamper_code(sheet: np.ndarray, election: Election, style: str, layout: BallotLayout, dpi: float,
                 paper: tuple[int, int, int], rng: random.Random) -> dict[str, Any]:
    """Replace the code by an edited payload: what was edited no longer matches its signature."""
    from omr.ballot_code import encode_signature, make_code

    genuine = make_code(election, style, _signing_key())
    parts = genuine.split(":", 6)  # BB2 ELECTION STATION STYLE MODE TAG SIGNATURE (CONTENT16 signed, not printed)
    variant = rng.choice(("station", "mode", "style", "signature"))
    if variant == "station":
        parts[2] = f"{parts[2][:4]}{int(parts[2][4:]) % 999 + 1:03d}"
    elif variant == "mode":  # e.g. a specimen's code made to claim it is official
        test = make_code(election, style, _signing_key(), mode="test" if election.mode == "official" else "official")
        parts = test.split(":", 6)
        parts[4] = "O" if parts[4] == "T" else "T"
    elif variant == "style":  # another style of the same election claimed
        others = [s.id for s in election.ballot_styles if s.id != style]
        parts[3] = others[0] if others else parts[3] + "X"
    else:
        parts[6] = encode_signature(bytes(rng.getrandbits(8) for _ in range(64)))
    payload = ":".join(parts)
    _paste_code(sheet, payload, layout.code.px(dpi), paper)
    return {"variant": f"{variant} edited", "payload": payload}


def _paste_code(sheet: np.ndarray, payload: str, rect: list[int], paper: tuple[int, int, int]) -> None:
    """A QR of `payload` drawn where the ballot code goes, as the printer draws codes."""
    import segno

    qr = segno.make(payload, error="m")
    modules = np.pad(np.array([list(row) for row in qr.matrix], dtype=np.uint8), 4)
    x, y, w, h = rect
    side = min(w, h)
    n = modules.shape[0]
    idx = (np.arange(side) * n // side).clip(0, n - 1)
    tile = modules[np.ix_(idx, idx)] == 1
    region = sheet[y:y + side, x:x + side]
    region[...] = np.where(tile[:, :, None], np.uint8(0), np.array(paper, np.uint8))


def _remove_code(sheet: np.ndarray, layout: BallotLayout, dpi: float, paper: tuple[int, int, int],
                 plan: _BallotPlan, rng: random.Random) -> dict[str, Any]:
    x, y, w, h = layout.code.px(dpi)
    if rng.random() < 0.5:
        sheet[y:y + h, x:x + w] = paper
        return {"variant": "not printed"}
    # inked over: a felt-tip scribble across most of the code
    draw_mark(sheet, [x + w // 8, y + h // 8, w * 3 // 4, h * 3 // 4], MarkStyle.FILLED,
              Pen((25, 25, 30), 2.5), dpi, rng)
    return {"variant": "inked over"}


def _photocopy(sheet: np.ndarray, dpi: float, rng: random.Random, nrng: np.random.Generator) -> dict[str, Any]:
    """A copier's output: grey, the contrast changed, toner speckle, a little soft. (Marks come after:
    the copy is what the voter then marks.)"""
    grey = cv2.cvtColor(sheet, cv2.COLOR_RGB2GRAY).astype(np.float32)
    contrast = rng.uniform(1.15, 1.45)
    background = rng.uniform(215, 245)
    grey = (grey - 255.0) * contrast + background
    h, w = grey.shape
    density = rng.uniform(2e-5, 1e-4)
    n = int(h * w * density)
    ys, xs = nrng.integers(0, h, n), nrng.integers(0, w, n)
    grey[ys, xs] = nrng.uniform(30, 110, n)
    soft = cv2.GaussianBlur(grey, (0, 0), 0.6)
    g8 = np.clip(soft + 0.5, 0, 255).astype(np.uint8)
    cv2.merge([g8, g8, g8], dst=sheet)
    return {"variant": "grey copy", "contrast": round(contrast, 3), "background": round(background, 1),
            "speckle_density": round(density, 7)}


def _tint_paper(sheet: np.ndarray, paper: tuple[int, int, int], rng: random.Random) -> dict[str, Any]:
    choices = [n for n, c in _TINTS.items() if sum(abs(a - b) for a, b in zip(c, paper)) > 30]
    name = rng.choice(choices)
    tint = _TINTS[name]
    gains = np.diag([tint[ch] / max(1, paper[ch]) for ch in range(3)]).astype(np.float32)
    sheet[...] = cv2.transform(sheet, gains)  # per-channel gain, saturated: the paper becomes `tint`
    return {"variant": f"{name} paper", "paper_rgb": list(tint)}


def _two_sheets(election: Election, style: str, layout: BallotLayout, dpi: float, top_plan: _BallotPlan,
                rng: random.Random, nrng: np.random.Generator
                ) -> tuple[np.ndarray, list[np.ndarray], tuple[float, float], dict[str, Any]]:
    """Two ballots fed at once, both stamped and marked. "overlapped": the lower one sticks out by
    10-60 mm; "stacked": nearly aligned, seen only through the top sheet (its print shows through, the
    doubled paper is darker)."""
    k = dpi / 25.4
    paper = _paper_colour(election, style)
    top = _printed(election, style, dpi).copy()
    _stamp_sheet(top, layout, dpi, "clear", top_plan, rng, nrng)
    _mark_sheet(top, layout, dpi, top_plan, rng)
    bottom_plan = _plan_ballot(election, style, layout, rng)
    bottom = _printed(election, style, dpi).copy()
    _stamp_sheet(bottom, layout, dpi, "clear", bottom_plan, rng, nrng)
    _mark_sheet(bottom, layout, dpi, bottom_plan, rng)
    variant = rng.choice(("overlapped", "stacked"))
    if variant == "overlapped":
        dist, turn = rng.uniform(10, 60), rng.uniform(-3, 3)
    else:
        dist, turn = rng.uniform(1, 6), rng.uniform(-1, 1)
    direction = rng.uniform(0, 2 * math.pi)
    dx, dy = dist * math.cos(direction) * k, dist * math.sin(direction) * k
    show, darker = rng.uniform(0.08, 0.15), rng.uniform(0.03, 0.08)
    h, w = top.shape[:2]
    B = _affine3(cv2.getRotationMatrix2D((w / 2, h / 2), turn, 1.0))
    B[0, 2] += dx
    B[1, 2] += dy
    bottom_quad = _apply(B, _rect_quad(0, 0, w, h))
    lo = np.minimum(bottom_quad.min(axis=0), 0).astype(int) - 2
    hi = np.maximum(bottom_quad.max(axis=0), (w, h)).astype(int) + 2
    ox, oy = -lo[0], -lo[1]
    scene = np.full((hi[1] - lo[1], hi[0] - lo[0], 3), BED_GREY, np.uint8)
    Bs = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1.0]]) @ B
    cv2.warpAffine(bottom, Bs[:2], (scene.shape[1], scene.shape[0]), dst=scene, flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_TRANSPARENT)
    del bottom
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round((bottom_quad) * 16).astype(np.int32)], 255, shift=4)
    under = scene[oy:oy + h, ox:ox + w].copy()
    under[mask == 0] = paper
    shade = cv2.multiply(top, cv2.subtract(np.full_like(under, 255), under), scale=show / 255.0)
    cv2.subtract(top, shade, dst=top)
    factor = np.where(mask > 0, np.uint8(round(255 * (1 - darker))), np.uint8(255))
    factor3 = cv2.merge([factor, factor, factor])
    cv2.multiply(top, factor3, dst=top, scale=1 / 255.0)
    scene[oy:oy + h, ox:ox + w] = top
    papers = [_rect_quad(ox, oy, w, h), _apply(np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1.0]]), bottom_quad)]
    info = {"variant": variant, "offset_mm": round(dist, 2), "turn_deg": round(turn, 2),
            "show_through": round(show, 3), "darkening": round(darker, 3),
            "lower_sheet_marked": sorted(bottom_plan.marks), "top_offset_px": [ox, oy]}
    return scene, papers, (ox + w / 2, oy + h / 2), info

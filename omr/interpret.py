"""Ballot image -> interpretation. Pure: pixels, the election definition (and optionally the printed
reference of each style) in, a decision out. Nothing here reads a clock, a file or a device.

Pipeline (each stage can be watched through `trace`, SourceAFIS-style):
  1. thumbnail      - 4 px/mm, darkest colour channel (blue, red and black pens all read as ink)
  2. registration   - sheet and corner squares (omr.registration.find_sheet_and_marks); two sheets at
                      once, by the outline or by the lower sheet's squares showing through (omr.double_sheet)
  3. ballot code    - decoded from a small window where the code must be for each of the four
                      orientations; verified (signature, election, station, mode) -> style, orientation
  4. fit            - homography from the squares, verified and refined on printed box outlines, rotation
                      and print-scale limits (omr.registration.fit)
  5. box scores     - ink fraction of each box's inner area against the local paper level
  6. ink elsewhere  - ink outside the boxes, where the printed ballot has none (Election Law 5.17)
  7. rules          - omr.rules per contest -> outcome, verdict and reasons
"""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from typing import Any, Callable

import cv2
import numpy as np

from config.election import Election
from omr.ballot_code import verify_code
from omr.double_sheet import two_sheets
from omr.layout import BallotLayout, layout_ballot
from omr.reference import FINE_PPM, StyleReference, canvas_to_layout, image_to_thumb, outside_ink
from omr.registration import CODE_WINDOW_MM, THUMB_PPM, Fit, Found, code_windows, find_sheet_and_marks, fit
from omr.rules import ballot_verdict, decide_contest
from omr.second_opinion import MarkClassifier, crop_box, settle
from omr.stamp import Stamp, find_stamp
from omr.types import BoxScore, Interpretation, Reason, Verdict

Trace = Callable[[str, Any], None]

# Inner area of a box that is scored: the printed outline (0.35 mm) plus registration error must stay
# out, or every box would look "marked". 0.9 mm each side leaves 3.2 mm of a 5 mm box.
INNER_MARGIN_MM = 0.9
# The decoded code's centre must be within this distance (mm) of where the squares say it is.
CODE_POSITION_TOLERANCE_MM = 8.0
# Boxes beyond which scoring switches from per-box patches to one integral image over their region.
PATCH_SCORING_MAX_BOXES = 120
# Two sheets fed off-register by 1-6 mm show as one bigger outline with corners where neither sheet
# reaches; a single flat sheet's corners are sharp to 0.25 mm (L1/L2 corpus). A folded or torn corner
# looks the same and is refused the same way: flat, one by one. (The feeder's double-sheet sensor
# catches sheets fed in exact register.)
DOUBLE_SHEET_CORNER_GAP_MM = 1.2
# Share of the sheet that must be ink for a sheet without squares or code to count as printed at all.
BLANK_SHEET_INK = 0.002


def interpret(image: np.ndarray, election: Election, dpi: float | None = None,
              references: dict[str, StyleReference] | None = None, white: float | None = None,
              second_opinion: MarkClassifier | None = None, trace: Trace | None = None,
              pool: Executor | None = None) -> Interpretation:
    """Interpret one ballot image (H x W grey or H x W x 3 RGB, uint8).

    `dpi` is the capture's calibrated resolution when known; `white` the calibrated grey level of genuine
    ballot paper (then paper much darker is refused: grey or recycled paper). `references` (style id -> the printed
    ballot's ink, see omr.reference) enables the check for writing anywhere outside the boxes; without
    it only the layout's blank areas are checked. `second_opinion` (omr.second_opinion, loaded once by
    the caller) may settle boxes whose fill is marginal, when it is very sure; without it they stay
    marginal and the ballot ambiguous. `pool` (a thread pool of the caller's) runs the checks that need
    only the registration beside the reading of the code and the boxes: the same result, sooner on a
    box with cores to spare; without one everything runs here, in order."""
    emit = trace or (lambda stage, value: None)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) \
            or min(image.shape[:2]) < 64 or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        return Interpretation(Verdict.UNREADABLE, (Reason.IMAGE_INVALID,))
    rgb = image if image.ndim == 2 or image.shape[2] == 3 else image[:, :, :3]
    # green: black print at full contrast (needed only after the registration: on the pool, beside it)
    grey_job = _submit(pool, cv2.extractChannel, rgb, 1) if rgb.ndim == 3 else None

    found, thumb, ppm_guess = _find(rgb, election, dpi)
    grey = rgb if grey_job is None else grey_job.result()
    emit("registration_marks", found)
    if isinstance(found, Reason):
        return Interpretation(Verdict.UNREADABLE, (_why_no_marks(thumb, found, ppm_guess),))

    # (with a square out of view the frame cuts the outline there: its corners say nothing)
    if found.inferred is None and max(found.corner_gaps_mm, default=0.0) > DOUBLE_SHEET_CORNER_GAP_MM:
        # a second sheet sticks out from under the first: give both back, to be fed one by one
        return Interpretation(Verdict.UNREADABLE, (Reason.DOUBLE_SHEET,))
    if two_sheets(thumb, found) is not None:  # a second sheet in near register: its squares show through
        return Interpretation(Verdict.UNREADABLE, (Reason.DOUBLE_SHEET,))

    # With a pool, the checks that need only the registration (the paper level, streaks, later the ink
    # outside the boxes) run beside the code, fit and box scores, which are read before the streaks' answer
    # is awaited; the results, the trace and the early returns are those of the one-thread order (each
    # stage is pure; only what runs when differs).
    paper_job = pool.submit(_paper_level, thumb, found.thumb_ppm) if pool is not None else None
    streak_job = _submit(pool, _any_streak, grey, thumb, found)
    read = _read_and_fit(rgb, grey, found, election, dpi, white) if pool is not None else None
    boxes = None
    if read is not None and read.refused is None:
        try:
            boxes = _read_boxes(read, rgb, thumb, found, election, references, second_opinion, paper_job, pool)
        except Exception:  # noqa: BLE001 - read again below, in the one-thread order (which may never get there)
            boxes = None
    streak = streak_job.result()
    emit("streaks", streak)
    if streak is not None:
        return Interpretation(Verdict.UNREADABLE, (f"{Reason.SCAN_STREAK}:{streak}",))
    if read is None:
        read = _read_and_fit(rgb, grey, found, election, dpi, white)
    for stage, value in read.trace:
        emit(stage, value)
    if read.refused is not None:
        return read.refused
    code, layout, geometry = read.code, read.layout, read.geometry
    assert code is not None and layout is not None and geometry is not None
    if boxes is None:
        boxes = _read_boxes(read, rgb, thumb, found, election, references, second_opinion, None, None)
    scores, stray_of = boxes
    emit("scores", scores)

    results = []
    for contest in election.contests_of(code.style):
        marked = {s.candidate or s.list for s in scores if s.contest == contest.id and s.mark == "mark"}
        marginal = {s.candidate or s.list: s.why for s in scores if s.contest == contest.id and s.mark == "marginal"}
        results.append(decide_contest(contest, marked, marginal))  # type: ignore[arg-type]
    verdict, why = ballot_verdict(results)

    stray = stray_of()
    emit("outside_ink", stray)
    if stray:
        # Election Law 5.17: a name or sign written on the ballot may make it invalid - a person decides.
        where = tuple(f"{Reason.INK_OUTSIDE_BOXES}:{x:.0f},{y:.0f}" for x, y in stray[:5])
        verdict, why = Verdict.AMBIGUOUS, why + where
    return Interpretation(verdict, why, style=code.style, contests={r.contest: r for r in results},
                          scores=tuple(scores), orientation=geometry.orientation)


def _read_boxes(read: _Read, rgb: np.ndarray, thumb: np.ndarray, found: Found, election: Election,
                references: dict[str, StyleReference] | None, second_opinion: MarkClassifier | None,
                paper_job: Future[np.ndarray] | None, pool: Executor | None
                ) -> tuple[list[BoxScore], Callable[[], list[tuple[float, float]]]]:
    """Stages 5-6 on a sheet whose code and fit were read: the box scores, and the ink outside the boxes
    (on the pool, when there is one; without, it is looked for when asked)."""
    code, layout, geometry = read.code, read.layout, read.geometry
    assert code is not None and layout is not None and geometry is not None
    paper = paper_job.result() if paper_job is not None else _paper_level(thumb, found.thumb_ppm)
    reference = (references or {}).get(code.style)
    # where a square was cut by the paper's edge, the print runs off the paper: the bed beyond is not ink
    on_paper = found.sheet * found.scale if found.cut and found.sheet is not None else None
    edge_px = int(round(found.thumb_ppm))
    stray_job = pool.submit(outside_ink, thumb, paper, geometry.homography, found.scale, layout, reference,
                            on_paper, edge_px=edge_px) if pool is not None else None
    scores = _score_boxes(rgb, layout, geometry, election, paper, found.scale, reference, second_opinion, thumb)
    if stray_job is not None:
        return scores, stray_job.result
    return scores, lambda: outside_ink(thumb, paper, geometry.homography, found.scale, layout, reference, on_paper,
                                       edge_px=edge_px)


def _submit(pool: Executor | None, fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """fn(*args) on the pool, or here and now (a finished future) without one."""
    if pool is not None:
        return pool.submit(fn, *args)
    done: Future[Any] = Future()
    done.set_result(fn(*args))
    return done


def _any_streak(grey: np.ndarray, thumb: np.ndarray, found: Found) -> int | None:
    """A streak in the capture (a dirty glass, a dead sensor line), on the sheet or on the bed around it."""
    streak = _streaks(grey, found)
    return _bed_streak(thumb, found) if streak is None else streak


@dataclass(frozen=True)
class _Read:
    """Stages 3-4 and the print check: the code, the layout and the fit, or the refusal at the first
    that fails; `trace` holds what each stage showed, in order."""
    trace: tuple[tuple[str, Any], ...]
    refused: Interpretation | None = None
    code: Any = None
    layout: BallotLayout | None = None
    geometry: Fit | None = None


def _read_and_fit(rgb: np.ndarray, grey: np.ndarray, found: Found, election: Election, dpi: float | None,
                  white: float | None) -> _Read:
    payload, k = _read_code(grey, found)
    shown: list[tuple[str, Any]] = [("code", payload)]
    if payload is None:
        return _Read(tuple(shown), Interpretation(Verdict.UNREADABLE, (Reason.NO_CODE,)))
    code, reasons = verify_code(payload, election)
    if code is None or reasons:
        return _Read(tuple(shown), Interpretation(Verdict.FOREIGN, tuple(reasons), style=code.style if code else None))
    layout = layout_ballot(election, code.style)
    if k is None:
        return _Read(tuple(shown), Interpretation(Verdict.UNREADABLE, (Reason.BAD_GEOMETRY,), style=code.style))
    geometry = fit(layout, found, k, grey, image_ppm=dpi / 25.4 if dpi else None)
    shown.append(("fit", geometry))
    if isinstance(geometry, Reason):
        return _Read(tuple(shown), Interpretation(Verdict.UNREADABLE, (geometry,), style=code.style))
    not_original = _print_check(rgb, geometry.homography, layout, election.style(code.style), white)
    shown.append(("print_check", not_original))
    if not_original is not None:
        return _Read(tuple(shown), Interpretation(Verdict.FOREIGN, (not_original,), style=code.style))
    return _Read(tuple(shown), None, code, layout, geometry)


# -- 1./2. thumbnail and registration ---------------------------------------------------------
def _find(rgb: np.ndarray, election: Election, dpi: float | None) -> tuple[Found | Reason, np.ndarray, float]:
    """Registration on the thumbnail. Without a calibrated dpi the scale is guessed from each ballot
    style's paper length in turn (the image then shows about the sheet)."""
    h, w = rgb.shape[:2]
    if dpi:
        guesses = [dpi / 25.4]
    else:
        longest = sorted({max(layout_ballot(election, s.id).width_mm, layout_ballot(election, s.id).height_mm)
                          for s in election.ballot_styles})
        guesses = [max(h, w) / (length + 10.0) for length in longest]
    found: Found | Reason = Reason.NO_REGISTRATION
    thumb = np.zeros((1, 1), np.uint8)
    for ppm in guesses:
        # an integer decimation keeps OpenCV on its fast path (15x faster than an arbitrary factor)
        d = max(1, round(ppm / THUMB_PPM))
        small = rgb if d == 1 else cv2.resize(rgb, None, fx=1 / d, fy=1 / d, interpolation=cv2.INTER_AREA)
        thumb = darkest_channel(small)
        found = find_sheet_and_marks(thumb, ppm / d, scale=1 / d)
        if not isinstance(found, Reason):
            return found, thumb, ppm
    return found, thumb, guesses[-1]


def darkest_channel(rgb: np.ndarray) -> np.ndarray:
    """Per pixel, the darkest of R, G, B: any ink colour on white paper is dark in at least one channel."""
    if rgb.ndim == 2:
        return rgb
    r, g, b = cv2.split(rgb)
    return cv2.min(cv2.min(r, g), b)


def _darkest(patch: np.ndarray) -> np.ndarray:
    """darkest_channel of a small patch (a view into the frame), plane by plane: the same bytes, several
    times cheaper than patch.min(axis=2)."""
    if patch.ndim == 2:
        return patch
    return np.minimum(np.minimum(patch[..., 0], patch[..., 1]), patch[..., 2])


def _why_no_marks(thumb: np.ndarray, reason: Reason, image_ppm: float) -> Reason:
    """A sheet with (almost) no ink is a blank sheet, or a ballot fed face down. Ink is counted inside
    the lit sheet only, 5 mm in from its edge (the feeder bed around it is dark, not ink)."""
    paper = float(np.percentile(thumb[::3, ::3], 90))
    if paper < 60:
        return reason
    thumb_ppm = image_ppm / max(1, round(image_ppm / THUMB_PPM))
    lit = (thumb > 0.55 * paper).astype(np.uint8)
    contours, _ = cv2.findContours(lit, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return reason
    sheet = np.zeros_like(lit)
    cv2.drawContours(sheet, [max(contours, key=cv2.contourArea)], -1, 1, -1)
    inner = cv2.erode(sheet, np.ones((int(10 * thumb_ppm) | 1,) * 2, np.uint8)).astype(bool)
    if inner.sum() > 0 and float(np.mean(thumb[inner] < 0.6 * paper)) < BLANK_SHEET_INK:
        return Reason.BLANK_SHEET
    return reason


# -- scan health ------------------------------------------------------------------------------
# Dust or a scratch on the glass draws a line along the feed direction (image columns) through every
# sheet: dark (a phantom vote where it crosses a box) or white (it can erase a mark). Read through it
# and the count is wrong; so the box stops with a maintenance message instead.
STREAK_DARK_SHARE = 0.85  # a column dark along this share of the sheet is no print: print never does that
STREAK_BRIDGE_MIN_ROWS = 12  # rows where a horizontal stroke crosses (both neighbours dark) to judge a column
STREAK_BRIDGE_MAX = 0.15  # share of those rows where the column itself is dark: print ~0.6+, a white streak ~0
STREAK_MAX_WIDTH_PX = 6  # dust and scratches: 1-4 px (BENCHMARKS L2/L3)
STREAK_BANDS = 8  # the sheet's length in bands, for the evidence of a white streak
STREAK_MIN_BANDS = 3  # bands with crossing strokes needed to call a streak
STREAK_GAP_PX = 7  # run centres this far each side: a 5 px run there ends >= 5 px away, clear of a 4 px streak
# Faint dark streaks (_faint_dark_streak): a column darker than the bare paper beside it, by relative darkness.
FAINT_ROW_MM = 1.5  # one image row per 1.5 mm of the sheet's length is judged
FAINT_SIDE_GAP_PX = 5  # the paper beside a column is looked at from this far: past a 4 px streak blurred by 2 px
FAINT_SIDE_PX = 8  # ... over this many columns on each side
FAINT_FLAT = 0.12  # a side is bare paper when its max - min is within this share of its max (L3 noise: ~0.05)
FAINT_DARKER = 0.08  # a column darker than the bare paper beside it by this share is dark there (harm: ~0.18)
FAINT_BAND_MM = 36.0  # the sheet's length in bands of this length: the 72 mm header is two bands without boxes
FAINT_BAND_MIN_ROWS = 8  # rows beside bare paper a band needs to be judged
FAINT_BANDS_JUDGED = 0.6  # share of the bands that must be judged
FAINT_MIN_SHARE = 0.5  # in every judged band, this share of its judged rows dark: streaks 0.7-1.0, print <= 0.03
FAINT_MARGIN_MM = 3.0  # off the sheet's edge (the bed beside it is darker paper-flat)
FAINT_END_MM = 15.0  # the sheet's ends up to here (its top and bottom in the image) are judged on their own:
#   the margins, where no vertical print runs (a band or a rule of a sheet fed sideways stops at 15 mm)
FAINT_END_MIN_ROWS = 4  # rows beside bare paper an end needs to be judged; a judged end must show the streak


# A streak on the glass runs through the whole frame, so across the bare feeder bed beyond the sheet's
# ends too, where a white one is a lit line on a dark ground: easy to see there, while on the sheet it
# shows only where it breaks print (the in-sheet check below misses most thin or blurred ones).
BED_MARGIN_MM = 2.0  # off the sheet's edge: its shadow, blur and a slight curl
BED_BAND_MM = 6.0  # the bed judged at each end: this much beyond the margin
BED_MIN_MM = 2.0  # at least this much of it seen at a column for that end to be judged there
BED_BRIGHTER = 20.0  # grey levels over the bed beside it, averaged over the band (bed ~55; the corpus' white
# streaks +45..+190 at full resolution, about half that on the thumbnail)
BED_SIDE_PX = (2, 6)  # the bed beside a column: this many thumbnail px away (0.5-1.5 mm), both sides
BED_RUN_MM = 4.0  # a lit run along the feed up to this wide is streaks (a cluster of them); wider is not


def _bed_streak(thumb: np.ndarray, found: Found) -> int | None:
    """The image column of a lit line along the feed across the bed beyond both of the sheet's ends (or
    the one end in view), within the sheet's width; or None. On the thumbnail (a 2 px streak keeps half
    its contrast there: still +50 grey levels or more). Without a bed in view (a sheet filling the
    frame) there is nothing to judge."""
    if found.sheet is None:
        return None
    h, w = thumb.shape
    ppm = found.thumb_ppm
    sheet = found.sheet * found.scale
    quad = _inset(sheet, -BED_MARGIN_MM * ppm)  # grown: the margin off every edge, however skewed
    lo, hi = BED_SIDE_PX
    x0 = int(max(sheet[:, 0].min() + BED_MARGIN_MM * ppm, hi))
    x1 = int(min(sheet[:, 0].max() - BED_MARGIN_MM * ppm, w - hi))
    if x1 - x0 < 4 * hi:
        return None
    cols = np.arange(x0, x1)
    # the grown outline per column: its top and bottom (a skewed sheet's corners are anywhere)
    top, bottom = np.full(len(cols), np.inf), np.full(len(cols), -np.inf)
    for i in range(4):
        (ax, ay), (bx, by) = quad[i], quad[(i + 1) % 4]
        if abs(bx - ax) < 1e-6:
            continue
        on = (cols >= min(ax, bx)) & (cols <= max(ax, bx))
        y = ay + (cols - ax) * (by - ay) / (bx - ax)
        top[on], bottom[on] = np.minimum(top[on], y[on]), np.maximum(bottom[on], y[on])
    band, need = BED_BAND_MM * ppm, BED_MIN_MM * ppm
    found_at = []
    for near, sign in ((top, -1), (bottom, 1)):
        far = near + sign * band
        r0 = int(max(0, np.floor(np.min(np.minimum(near, far)))))
        r1 = int(min(h, np.ceil(np.max(np.maximum(near, far)))))
        if r1 - r0 < 2:
            continue
        # each column's band (rows [r_lo, r_hi) of the strip), and the same rows in the columns beside it
        # (their own bands differ little), summed on the strip's integral image
        r_lo = np.clip(np.ceil(np.minimum(near, far)) - r0, 0, r1 - r0).astype(np.int64)
        r_hi = np.clip(np.floor(np.maximum(near, far)) + 1 - r0, 0, r1 - r0).astype(np.int64)
        r_lo = np.concatenate((np.full(hi, r_lo[0]), r_lo, np.full(hi, r_lo[-1])))
        r_hi = np.concatenate((np.full(hi, r_hi[0]), r_hi, np.full(hi, r_hi[-1])))
        run = cv2.integral(np.ascontiguousarray(thumb[r0:r1, x0 - hi:x1 + hi]), sdepth=cv2.CV_32S)
        k = np.arange(len(cols) + 2 * hi)
        n = (r_hi - r_lo).astype(np.float32)
        sums = run[r_hi, k + 1] - run[r_hi, k] - run[r_lo, k + 1] + run[r_lo, k]
        level = sums.astype(np.float32) / np.maximum(n, 1.0)
        if (n[hi:-hi] >= need).sum() < 0.25 * len(cols):
            continue  # this end is out of view
        # the bed beside a column: the darker of its two sides (a neighbouring streak lights one side)
        c = np.concatenate(([0.0], np.cumsum(level)))
        j = np.arange(hi, hi + len(cols))
        left = (c[j - lo + 1] - c[j - hi]) / (hi - lo + 1)
        right = (c[j + hi + 1] - c[j + lo]) / (hi - lo + 1)
        bright = (level[j] - np.minimum(left, right) > BED_BRIGHTER) & (n[j] >= need)
        found_at.append((bright, n[j] >= need))
    if not found_at:
        return None
    hit = np.zeros(len(cols), bool)
    for bright, _ in found_at:
        hit |= bright
    for bright, judged in found_at:  # where both ends are judged, a streak crosses both (+-1 px)
        near_by = bright.copy()
        near_by[1:] |= bright[:-1]
        near_by[:-1] |= bright[1:]
        hit &= ~judged | near_by
    # narrow runs only (streaks come in clusters: up to BED_RUN_MM): a second sheet beyond this one is wide
    edges = np.flatnonzero(np.diff(np.concatenate(([0], hit.astype(np.int8), [0]))))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start <= BED_RUN_MM * ppm:
            return int(round((x0 + (start + stop - 1) / 2) / found.scale))
    return None


def _streaks(grey: np.ndarray, found: Found) -> int | None:
    """The image column of a streak within the sheet, or None.

    Dark streak: a column dark along nearly the whole sheet, or darker than the paper beside it along the
    whole sheet (_faint_dark_streak: faint or blurred ones). White streak: a column that breaks the
    horizontal strokes crossing it - in the rows where the columns STREAK_GAP_PX to its left and right
    are both dark (a box's top or bottom line, a letter's bar), print is dark in between too; a white
    streak is not."""
    h, w = grey.shape
    if found.sheet is not None:
        # the axis-aligned rectangle inside the (skewed) sheet: the inner two of its corners' x and y
        xs, ys = np.sort(found.sheet[:, 0]), np.sort(found.sheet[:, 1])
        x0, x1, y0, y1 = int(max(0, xs[1])), int(xs[2]), int(max(0, ys[1])), int(ys[2])
        m = int(4 * found.mark_px / 7.0)  # stay 4 mm off the sheet's edge (shadow, bed)
        x0, y0, x1, y1 = x0 + m, y0 + m, min(w, x1 - m), min(h, y1 - m)
    else:
        x0, y0, x1, y1 = 0, 0, w, h
    g = STREAK_GAP_PX
    if x1 - x0 < 8 * g or y1 - y0 < 32:
        return None
    region = grey[y0:y1:2, x0:x1]  # every other row: printed lines are >= 2 px thick at 100 dpi and up
    paper = float(np.percentile(region[::5, ::7], 90))
    # region < 0.5 * paper, by OpenCV (10x numpy's speed on this strided view): uint8 x <= ceil(t) - 1 is x < t
    dark = cv2.threshold(region, math.ceil(0.5 * paper) - 1, 1, cv2.THRESH_BINARY_INV)[1].view(bool)
    share = cv2.reduce(dark.view(np.uint8), 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel()
    # Dark streak: a run of at most STREAK_MAX_WIDTH_PX columns dark along nearly the whole sheet. Wider
    # runs are print: the security band of a sheet fed sideways lies along the feed too.
    dark_cols = (share > STREAK_DARK_SHARE).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], dark_cols, [0]))))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start <= STREAK_MAX_WIDTH_PX and g <= start < len(share) - g:
            return int(start + x0)
    faint = _faint_dark_streak(grey, found)
    if faint is not None:
        return faint
    # White streak candidates: columns with much less ink than their neighbours (median of the columns
    # 5..7 px away: a box's vertical outline is a one-column spike that must not count). Most such
    # columns are just gaps in the print; each candidate is then judged on the horizontal strokes.
    n = len(share)
    padded = np.pad(share, 7, mode="edge")
    around = np.median(np.stack([padded[7 + d:7 + d + n] for d in (-7, -6, -5, 5, 6, 7)]), axis=0)
    candidates = np.flatnonzero((around > 0.02) & (share < 0.5 * around))
    candidates = candidates[(candidates >= g + 2) & (candidates < n - g - 2)]
    if len(candidates) > 64:
        candidates = candidates[np.argsort(share[candidates] / around[candidates])[:64]]
    if len(candidates) == 0:
        return None
    cands = np.sort(candidates)
    # rows where a horizontal stroke (a >= 5 px run) passes on both sides, g px away: box tops and
    # bottoms, rules, letter bars. Letters' vertical strokes side by side do not count. All candidates at
    # once: rows x candidates.
    run = np.arange(-2, 3)
    left = dark[:, (cands - g)[:, None] + run].all(axis=2)
    right = dark[:, (cands + g)[:, None] + run].all(axis=2)
    crossing = left & right
    enough = np.count_nonzero(crossing, axis=0) >= STREAK_BRIDGE_MIN_ROWS
    if not enough.any():
        return None
    cands, crossing = cands[enough], crossing[:, enough]
    bridged = crossing & dark[:, cands]
    # Dust breaks strokes all along the sheet; a gap between two boxes breaks them in one place. So the
    # evidence is judged in bands down the sheet: enough bands must have crossings, nearly all broken.
    rows = dark.shape[0]
    starts = np.array([b[0] for b in np.array_split(np.arange(rows), STREAK_BANDS) if len(b)])
    n_cross = np.add.reduceat(crossing.astype(np.int32), starts, axis=0)  # bands x candidates
    n_bridged = np.add.reduceat(bridged.astype(np.int32), starts, axis=0)
    judged_bands = n_cross >= 3
    judged = judged_bands.sum(axis=0)
    broken = (judged_bands & (n_bridged < STREAK_BRIDGE_MAX * n_cross)).sum(axis=0)
    hits = np.flatnonzero((judged >= STREAK_MIN_BANDS) & (broken >= 0.8 * judged))
    return int(cands[hits[0]] + x0) if len(hits) else None


def _faint_dark_streak(grey: np.ndarray, found: Found) -> int | None:
    """The image column of a dark streak too faint or too blurred to fall under half the paper level,
    or None. Judged by relative darkness, so uneven light and any streak level count alike: a 2 px streak
    at 0.7 of the paper, blurred, makes a phantom stroke in every empty box it crosses (L2 council #590,
    #716: a column of boxes read as marks).

    In the rows where the columns beside it (FAINT_SIDE_GAP_PX .. + FAINT_SIDE_PX on either side) are
    bare paper - flat - a column is dark when it is FAINT_DARKER below that paper. One flat side is
    enough (streaks come in clusters at L3); with both flat the darker is the reference, so the edge of a
    wide print (a band, a square) is no streak. A streak is dark in nearly every such row along the
    whole sheet. Print is not: a box outline or a left-aligned column of names runs down the box area
    only, and the header and footer, where the print has no long vertical line, are bands of their own
    in which such a column is dark in almost no row. So: in every judged band (FAINT_BAND_MM of the
    sheet's length) at least FAINT_MIN_SHARE of the judged rows dark. Clean L1-L3 sheets reach <= 0.03,
    the corpus' dark streaks 0.7-1.0."""
    h, w = grey.shape
    ppm = found.mark_px / 7.0
    sheet = found.sheet if found.sheet is not None else np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    x0, y0 = int(max(0, sheet[:, 0].min())), int(max(0, sheet[:, 1].min()))
    x1, y1 = int(min(w, math.ceil(sheet[:, 0].max()))), int(min(h, math.ceil(sheet[:, 1].max())))
    gap, side = FAINT_SIDE_GAP_PX, FAINT_SIDE_PX
    step = max(1, int(round(FAINT_ROW_MM * ppm)))
    rows = grey[y0:y1:step, x0:x1]  # a strided view: OpenCV reads it in place
    n, width = rows.shape
    if n < 16 or width < 8 * (gap + side):
        return None
    kernel = np.ones((1, side), np.uint8)
    lo = cv2.erode(rows, kernel, anchor=(0, 0))  # lo[:, x]: min of columns x .. x + side - 1
    hi = cv2.dilate(rows, kernel, anchor=(0, 0))
    flat = cv2.compare(cv2.subtract(hi, lo), cv2.convertScaleAbs(hi, alpha=FAINT_FLAT), cv2.CMP_LE)
    c0, c1 = gap + side - 1, width - gap - side + 1  # columns with both sides in view
    left, right = slice(c0 - gap - side + 1, c1 - gap - side + 1), slice(c0 + gap, c1 + gap)
    # the paper level beside each column: the darker flat side (255 where a side is not flat)
    level = cv2.min(cv2.bitwise_or(lo[:, left], cv2.bitwise_not(flat[:, left])),
                    cv2.bitwise_or(lo[:, right], cv2.bitwise_not(flat[:, right])))
    judged = cv2.bitwise_or(flat[:, left], flat[:, right])
    # inside the sheet, FAINT_MARGIN_MM off its edge (beyond it the bed: flat, and darker than paper)
    def fill(quad: np.ndarray) -> np.ndarray:  # image px -> this grid: rows every `step`, columns c0 ..
        mask = np.zeros((n, c1 - c0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((quad - (x0 + c0, y0)) / (1, step)).astype(np.int32), 255)
        return mask

    near, far = _inset(sheet, FAINT_MARGIN_MM * ppm), _inset(sheet, FAINT_END_MM * ppm)
    judged = cv2.bitwise_and(judged, fill(near))
    dark = cv2.bitwise_and(cv2.compare(rows[:, c0:c1], cv2.convertScaleAbs(level, alpha=1 - FAINT_DARKER), cv2.CMP_LT),
                           judged)
    bands = max(1, int(round(n * step / (FAINT_BAND_MM * ppm))))
    starts = np.linspace(0, n, bands + 1).astype(np.int64)

    def per_band(mask: np.ndarray) -> np.ndarray:  # bands x columns: rows set in each band
        return np.concatenate([cv2.reduce(mask[a:b], 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
                               for a, b in zip(starts[:-1], starts[1:])]) // 255

    n_judged, n_dark = per_band(judged), per_band(dark)
    ok = n_judged >= FAINT_BAND_MIN_ROWS
    share = np.where(ok, n_dark / np.maximum(n_judged, 1), 1.0).min(axis=0)
    through = (share >= FAINT_MIN_SHARE) & (ok.sum(axis=0) >= FAINT_BANDS_JUDGED * bands)
    # ... and not stopping short of the sheet's ends where they can be judged (the title may fill them):
    # the corners run clockwise from the top-left, so sides 0-1 are the top, 2-3 the bottom
    for end in (np.array([near[0], near[1], far[1], far[0]]), np.array([far[3], far[2], near[2], near[3]])):
        if not through.any():
            break
        zone = fill(end)
        j = cv2.reduce(cv2.bitwise_and(judged, zone), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() // 255
        d = cv2.reduce(cv2.bitwise_and(dark, zone), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() // 255
        through &= (j < FAINT_END_MIN_ROWS) | (d >= FAINT_MIN_SHARE * j)
    hits = np.flatnonzero(through)
    return int(hits[0] + c0 + x0) if len(hits) else None


def _inset(quad: np.ndarray, d: float) -> np.ndarray:
    """A convex quadrilateral's corners with every side moved d inwards (outwards for d < 0; plain
    floats: 4 corners)."""
    pts = [(float(x), float(y)) for x, y in quad]
    cx, cy = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    sides = []  # per side i (corner i -> i + 1): a point of the moved side and the unit direction
    for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1]):
        length = math.hypot(bx - ax, by - ay) or 1e-9
        ux, uy = (bx - ax) / length, (by - ay) / length
        nx, ny = -uy, ux
        if (cx - ax) * nx + (cy - ay) * ny < 0:
            nx, ny = -nx, -ny
        sides.append((ax + d * nx, ay + d * ny, ux, uy))
    out = []
    for i, (px, py, ux, uy) in enumerate(sides):  # corner i: where the moved sides i - 1 and i meet
        qx, qy, vx, vy = sides[i - 1]
        det = vx * uy - vy * ux
        if abs(det) < 1e-9:
            out.append(pts[i])
            continue
        t = ((px - qx) * uy - (py - qy) * ux) / det  # q + t v = p + s u, crossed with u
        out.append((qx + t * vx, qy + t * vy))
    return np.array(out)


# -- 3. ballot code ---------------------------------------------------------------------------
def _read_code(grey: np.ndarray, found: Found) -> tuple[str | None, int | None]:
    """The code payload and the orientation k whose predicted code position it was read at.

    zbar reads a tight window around the code best. Each window is first brought to about
    CODE_PX_PER_MM (a 200 dpi capture is halved: 4x fewer pixels for zbar, modules still ~5 px); blur,
    noise and JPEG at 100-150 dpi then need a binarised copy, upscaled 2x (cubic) and thresholded
    against its neighbourhood (CODE_BINARISE_MM), which restores the module edges the blur softened.
    Cheapest first: every orientation's window as it is (the most code-like first), then the binarised
    copies."""
    ppm = found.mark_px / 7.0
    half = CODE_WINDOW_MM / 2 * ppm
    d = max(1, int(ppm / CODE_PX_PER_MM))
    h, w = grey.shape
    windows = []
    for k, (cx, cy) in code_windows(found):
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
        if x1 - x0 >= 16 and y1 - y0 >= 16:
            win = grey[y0:y1, x0:x1]
            if d > 1:
                win = cv2.resize(win, None, fx=1 / d, fy=1 / d, interpolation=cv2.INTER_AREA)
            windows.append((k, cx, cy, x0, y0, win))
    # the window that looks most like a code first: a QR symbol is about half dark modules, the other
    # orientations' windows fall on text, the band or blank paper
    windows.sort(key=lambda t: abs(float(cv2.mean(cv2.compare(t[5], 128, cv2.CMP_LT))[0]) / 255.0 - 0.5))
    for f in (1, 2):
        for k, cx, cy, x0, y0, win in windows:
            img = win if f == 1 else _binarise(win, f, ppm / d)
            hit = _decode(img)
            if hit is not None:
                text, (qx, qy) = hit
                if np.hypot(qx * d / f + x0 - cx, qy * d / f + y0 - cy) <= CODE_POSITION_TOLERANCE_MM * ppm:
                    return text, k
                return text, None  # a code, but not where the squares say: the geometry is not trusted
    # Not at any predicted spot: look at the whole sheet, to tell "no code" from "code elsewhere".
    scale = min(1.0, 2000.0 / max(h, w))
    small = grey if scale == 1.0 else cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    hit = _decode(small)
    return (hit[0], None) if hit is not None else (None, None)


CODE_PX_PER_MM = 3.5  # a window finer than twice this is reduced by an integer factor (1.2 mm modules: >= 4 px)
CODE_BINARISE_MM = 6.0  # neighbourhood of the binarisation threshold: 5 modules, wider than any run of blur


def _binarise(grey: np.ndarray, f: int, ppm: float) -> np.ndarray:
    up = cv2.resize(grey, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    block = int(CODE_BINARISE_MM * ppm * f) | 1
    return cv2.adaptiveThreshold(up, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, max(3, block), 0)


def _decode(grey: np.ndarray) -> tuple[str, tuple[float, float]] | None:
    from pyzbar.pyzbar import ZBarSymbol, decode  # imported here: needs the system libzbar0

    for sym in decode(np.ascontiguousarray(grey), symbols=[ZBarSymbol.QRCODE]):
        try:
            text = sym.data.decode("ascii")
        except UnicodeDecodeError:
            continue
        xs = [p.x for p in sym.polygon] or [sym.rect.left, sym.rect.left + sym.rect.width]
        ys = [p.y for p in sym.polygon] or [sym.rect.top, sym.rect.top + sym.rect.height]
        return text, (float(np.mean(xs)), float(np.mean(ys)))
    return None


# -- 4b. is it an original on the right paper? -------------------------------------------------
# A black-and-white copy turns the security band grey; a copy on coloured paper, or the wrong ballot
# paper, tints the paper. Both are judged as chromaticity relative to the sheet's own white, so the
# colour and brightness of the light do not matter. A good colour copy on the right paper is NOT caught
# here; that needs the paper's own security features, which a camera cannot see.
BAND_MIN_SATURATION = 0.30  # (max - min) / max of band / paper, per channel; the printed band is >= 0.5
BAND_HUE_TOLERANCE = 0.22  # distance between the normalised band / paper colour and the expected one
PAPER_TINT_TOLERANCE = 0.10  # normalised paper colour vs the style's paper colour


PAPER_WHITE_MIN = 0.92  # of the calibrated white: the LEDs and the exposure are fixed; uneven light is local


def _print_check(rgb: np.ndarray, H: np.ndarray, layout: BallotLayout, style: Any,
                 white: float | None = None) -> Reason | None:
    if rgb.ndim == 2:
        return Reason.NOT_ORIGINAL  # a grey image cannot show the band: originality is not established
    band = layout.band
    band_pts = [(x, band.cy) for x in np.linspace(band.x + 5, band.x + band.w - 5, 24)]
    # the blank columns outside the margins, between the registration squares, are bare paper
    ys = np.linspace(layout.registration[0].y + 20, layout.registration[3].y - 12, 16)
    xs = (layout.registration[0].cx, layout.registration[1].cx)
    paper_pts = [(x, y) for x in xs for y in ys]
    band_rgb = _sample(rgb, H, band_pts)
    paper_rgb = _sample(rgb, H, paper_pts)
    brightest = _sample(rgb, H, paper_pts, percentile=90)  # uneven light darkens part of the sheet
    if band_rgb is None or paper_rgb is None or min(paper_rgb) < 1:
        return Reason.NOT_ORIGINAL
    expect_paper = np.array([int(style.colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    expect_band = np.array([int(style.security_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    if np.max(np.abs(paper_rgb / paper_rgb.max() - expect_paper / expect_paper.max())) > PAPER_TINT_TOLERANCE:
        return Reason.WRONG_PAPER
    if white and brightest is not None and brightest.max() < PAPER_WHITE_MIN * white * expect_paper.max() / 255.0:
        return Reason.WRONG_PAPER  # neutral but grey: not the ballot paper
    ratio = band_rgb / paper_rgb
    want = expect_band / expect_paper
    if (ratio.max() - ratio.min()) / max(ratio.max(), 1e-6) < BAND_MIN_SATURATION:
        return Reason.NOT_ORIGINAL
    if np.max(np.abs(ratio / ratio.max() - want / want.max())) > BAND_HUE_TOLERANCE:
        return Reason.NOT_ORIGINAL
    return None


def _sample(rgb: np.ndarray, H: np.ndarray, pts: list[tuple[float, float]], percentile: float = 50) -> np.ndarray | None:
    """A percentile (median) of the colours of 3 x 3 px patches at layout points (mm); None if most fall
    off the image."""
    img = cv2.perspectiveTransform(np.array(pts, dtype=np.float64).reshape(-1, 1, 2), H).reshape(-1, 2)
    h, w = rgb.shape[:2]
    inside = (img[:, 0] >= 1) & (img[:, 0] < w - 2) & (img[:, 1] >= 1) & (img[:, 1] < h - 2)
    if inside.sum() < len(pts) // 2 or not inside.any():
        return None
    xi, yi = img[inside, 0].astype(np.int64), img[inside, 1].astype(np.int64)  # truncation: x, y >= 1
    d = np.arange(-1, 2)
    patches = rgb[(yi[:, None] + d)[:, :, None], (xi[:, None] + d)[:, None, :]]  # n x 3 x 3 x 3
    samples = patches.reshape(len(xi), 9, 3).mean(axis=1)
    return np.percentile(samples, percentile, axis=0)


# -- 5. box scores ----------------------------------------------------------------------------
def _paper_level(thumb: np.ndarray, thumb_ppm: float) -> np.ndarray:
    """Local paper brightness on the thumbnail: a max filter wider than a filled box (8 mm) removes the
    ink, a blur smooths the lighting. Uneven lighting and show-through then divide out."""
    size = int(8 * thumb_ppm) | 1
    paper = cv2.dilate(thumb, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)))
    return cv2.blur(paper, (size, size))


def _score_boxes(rgb: np.ndarray, layout: BallotLayout, geometry: Fit, election: Election, paper: np.ndarray,
                 thumb_scale: float, reference: StyleReference | None = None,
                 second_opinion: MarkClassifier | None = None, thumb: np.ndarray | None = None) -> list[BoxScore]:
    """Score every box. Three stages, each box leaving at the first that decides it:
      dark ink (ballpoint, felt tip: below ink_level of the paper) covering >= definite  -> mark
      light ink (below light_level: adds pencil, smudges, erasures) covering < marginal   -> empty
      otherwise: stroke analysis (_stroke_mark) -> mark / marginal / empty
    A box read as anything but empty is then checked for foreign ink around it (_surroundings): a
    stamp or writing over a box puts lines in it that look like a voter's; such a box is marginal.
    So is an inked box under the station's stamp, found by its ring of lettering on the thumbnail
    (omr.stamp). Last, the learned second opinion (if given) looks at the boxes left marginal for their
    fill alone, and at the marks that are not fillings (_ask_second_opinion)."""
    boxes = layout.boxes
    H = geometry.homography
    centres = np.array([(b.rect.cx, b.rect.cy) for b in boxes], dtype=np.float64)
    img_c = cv2.perspectiveTransform(centres.reshape(-1, 1, 2), H).reshape(-1, 2)
    img_dx = cv2.perspectiveTransform((centres + (1.0, 0.0)).reshape(-1, 1, 2), H).reshape(-1, 2)
    img_dy = cv2.perspectiveTransform((centres + (0.0, 1.0)).reshape(-1, 1, 2), H).reshape(-1, 2)
    # local scale (px per mm) at each box: perspective makes it vary across the sheet
    local = np.minimum(np.hypot(*(img_dx - img_c).T), np.hypot(*(img_dy - img_c).T))
    half = np.maximum(1.0, (layout.box_mm / 2 - INNER_MARGIN_MM) * local)
    h, w = rgb.shape[:2]
    x0 = np.clip(np.round(img_c[:, 0] - half), 0, w).astype(np.int64)
    x1 = np.clip(np.round(img_c[:, 0] + half), 0, w).astype(np.int64)
    y0 = np.clip(np.round(img_c[:, 1] - half), 0, h).astype(np.int64)
    y1 = np.clip(np.round(img_c[:, 1] + half), 0, h).astype(np.int64)
    ty = np.clip(np.round(img_c[:, 1] * thumb_scale).astype(np.int64), 0, paper.shape[0] - 1)
    tx = np.clip(np.round(img_c[:, 0] * thumb_scale).astype(np.int64), 0, paper.shape[1] - 1)
    level = paper[ty, tx].astype(np.float64)
    th = election.omr
    area = (x1 - x0) * (y1 - y0)
    if len(boxes) <= PATCH_SCORING_MAX_BOXES:
        dark, light = np.zeros(len(boxes)), np.zeros(len(boxes))
        for i in range(len(boxes)):
            patch = rgb[y0[i]:y1[i], x0[i]:x1[i]]
            ink = _darkest(patch)
            dark[i] = np.count_nonzero(ink < level[i] * th.ink_level / 255.0)
            light[i] = np.count_nonzero(ink < level[i] * th.light_level / 255.0)
    else:
        dark, light = _region_sums(rgb, paper, thumb_scale, (th.ink_level, th.light_level), x0, x1, y0, y1)
    safe = np.maximum(area, 1)
    dark_fill, light_fill = dark / safe, light / safe
    # a box whose inner area is cut off by the image edge cannot be read: marginal, so the contest is
    # ambiguous with the box named rather than read as empty
    cropped = area < 0.8 * (2 * half) ** 2
    out = []
    for i, b in enumerate(boxes):
        fill = float(dark_fill[i])
        if cropped[i]:
            mark = "marginal"
        elif fill >= th.definite:
            mark = "mark"
        elif light_fill[i] < th.marginal:
            mark = "empty"
        else:
            fill, mark = _stroke_mark(rgb, img_c[i], half[i], local[i], level[i], th.definite, th.marginal)
        why = ""
        if mark != "empty" and _surroundings(rgb, H, layout, i, level[i], th.light_level, reference) >= FOREIGN_AROUND:
            mark, why = "marginal", Reason.INK_ACROSS_BOX
        out.append(BoxScore(b.contest, b.kind, b.list, b.candidate, round(fill, 4), mark, why))
    if thumb is not None:
        out = _under_stamp(thumb, image_to_thumb(thumb_scale) @ H, layout, out, level, cropped, reference)
    if second_opinion is not None:
        # a box mostly covered by ink (FILLED_SHARE of it past light_level) is a filling, not a line the
        # doubt rule is for: the model, trained on the marginal band, knows light pencil fillings badly
        asked = [i for i, s in enumerate(out) if s.mark != "empty" and not s.why and not cropped[i]
                 and not (s.mark == "mark" and light_fill[i] >= FILLED_SHARE)]
        if asked:
            out = _ask_second_opinion(second_opinion, rgb, layout.box_mm, img_c, local, out, asked)
    return out


def _under_stamp(thumb: np.ndarray, H: np.ndarray, layout: BallotLayout, scores: list[BoxScore], level: np.ndarray,
                 cropped: np.ndarray, reference: StyleReference | None) -> list[BoxScore]:
    """The station's stamp put over boxes (omr.stamp): it is looked for on the thumbnail (`H`: layout mm
    to its pixels) around every box read as inked for its own sake (not already put to a person);
    every inked box under its disc is marginal."""
    stamps: list[Stamp] = []
    for i, s in enumerate(scores):
        if s.mark == "empty" or s.why or cropped[i]:
            continue
        if not any(st.touches(layout.boxes[i].rect) for st in stamps):
            found = find_stamp(thumb, H, layout, i, float(level[i]), reference)
            if found is not None:
                stamps.append(found)
    if not stamps:
        return scores
    return [replace(s, mark="marginal", why=Reason.INK_ACROSS_BOX)
            if s.mark != "empty" and not s.why and any(st.touches(b.rect) for st in stamps) else s
            for s, b in zip(scores, layout.boxes)]


# A box the classical score reads as a mark, which the model thinks more likely no mark at all, is put
# to a person (marginal): a faint stamp's ring or lettering, or a streak, crossing a box can pass the
# fill threshold with too little ink around the box to be seen as foreign. In this direction the model
# can only raise a flag, never clear one or make a vote. A box mostly covered by ink is not asked: such
# lines never cover most of a box, and the model doubts light pencil fillings (p 0.0003-0.49 on L1
# fillings read right; 11 of the 16 flags on 1,600 L1 council sheets, seeds 2031-2032).
DOUBT_BELOW = 0.5


def _ask_second_opinion(model: MarkClassifier, rgb: np.ndarray, box_mm: float, centres: np.ndarray,
                        ppm: np.ndarray, scores: list[BoxScore], asked: list[int]) -> list[BoxScore]:
    """Boxes read as marks or marginal for their fill alone - not cut by the image's edge, no foreign ink
    around them - shown to the model (omr.second_opinion). A marginal box is settled only by an answer
    past the model's certified thresholds, anything else leaves it marginal; a mark the model doubts
    (p < DOUBT_BELOW) becomes marginal. The probability is kept on every box asked (`opinion`)."""
    h, w = rgb.shape[:2]
    crops = []
    for i in asked:
        # the model's crop is cut from the ink image (darkest channel); only this box's window is needed
        r = int(np.ceil((box_mm / 2 + 1.0) * ppm[i])) + 2
        cx, cy = float(centres[i][0]), float(centres[i][1])
        x0, y0 = max(0, int(cx) - r), max(0, int(cy) - r)
        win = rgb[y0:min(h, int(cy) + r + 1), x0:min(w, int(cx) + r + 1)]
        ink = darkest_channel(win)
        crops.append(crop_box(np.ascontiguousarray(ink), (cx - x0, cy - y0), float(ppm[i]), box_mm))
    p = model.classify(np.stack(crops))
    out = list(scores)
    for i, pi in zip(asked, p):
        if out[i].mark == "marginal":
            mark = settle(float(pi)) or "marginal"
        else:
            mark = "marginal" if pi < DOUBT_BELOW else "mark"
        out[i] = replace(out[i], mark=mark, opinion=round(float(pi), 6))
    return out


# Foreign ink around a box. A stamp put carelessly over a box (the 2024 pilot's lesson), a signature or a
# line drawn across the ballot, puts strokes in a box that look like a voter's. They also leave ink
# around the box, where a voter's mark does not reach (marks overrun their box by 1-3 mm): in the
# annulus AROUND_MM from the box, with the printed ballot (reference) and every box's own area removed.
AROUND_MM = (4.0, 9.0)
FOREIGN_AROUND = 0.008  # share of that annulus inked: a faint stamp gives >= 0.013, a voter's clean mark 0.000-0.004 (L1, L2 measured)


def _surroundings(rgb: np.ndarray, H: np.ndarray, layout: BallotLayout, index: int, paper_level: float,
                  light_level: int, reference: StyleReference | None) -> float:
    b = layout.boxes[index].rect
    reach = AROUND_MM[1]
    k = FINE_PPM
    x0, y0 = b.x - reach, b.y - reach
    size = (int(round((b.w + 2 * reach) * k)), int(round((b.h + 2 * reach) * k)))
    # the window in layout space (k px/mm) -> image, pixel centres to pixel centres
    M = H @ canvas_to_layout(k, x0, y0)
    win = cv2.warpPerspective(rgb, M, size, flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))
    ink = _darkest(win) < paper_level * light_level / 255.0
    area = np.zeros(size[::-1], np.uint8)
    inner, outer = int(round((reach - AROUND_MM[0]) * k)), int(round((reach - AROUND_MM[1]) * k))
    cv2.rectangle(area, (outer, outer), (size[0] - 1 - outer, size[1] - 1 - outer), 1, -1)
    cv2.rectangle(area, (inner, inner), (size[0] - 1 - inner, size[1] - 1 - inner), 0, -1)
    for other in layout.boxes:  # every box and its marks' overrun are a voter's, not foreign
        o = other.rect
        if abs(o.cx - b.cx) < reach + o.w and abs(o.cy - b.cy) < reach + o.h:
            cv2.rectangle(area, (int((o.x - 2.5 - x0) * k), int((o.y - 2.5 - y0) * k)),
                          (int((o.x + o.w + 2.5 - x0) * k), int((o.y + o.h + 2.5 - y0) * k)), 0, -1)
    if reference is not None and reference.fine.shape[0] > 0:
        fx0, fy0 = int(round(x0 * k)), int(round(y0 * k))
        ref = np.zeros(size[::-1], np.uint8)
        sy0, sx0 = max(0, fy0), max(0, fx0)
        sy1, sx1 = min(reference.fine.shape[0], fy0 + size[1]), min(reference.fine.shape[1], fx0 + size[0])
        if sy1 > sy0 and sx1 > sx0:
            ref[sy0 - fy0:sy1 - fy0, sx0 - fx0:sx1 - fx0] = reference.fine[sy0:sy1, sx0:sx1]
        printed = cv2.dilate(ref, np.ones((5, 5), np.uint8)) > 0  # +-0.5 mm: the fit's residual, blur
    else:
        printed = np.zeros(size[::-1], bool)
        for t in layout.texts:  # no reference: text lines are printed areas
            r = t.rect
            cv2.rectangle(area, (int((r.x - x0) * k), int((r.y - y0) * k)),
                          (int((r.x + r.w - x0) * k), int((r.y + r.h - y0) * k)), 0, -1)
    region = area.astype(bool) & ~printed
    n = int(region.sum())
    return float((ink & region).sum() / n) if n > 20 else 0.0


# Stroke analysis of a box with faint or little ink. Darkness d = 1 - pixel / paper.
#  - strokes: the white top-hat of d with a 1.2 mm disc keeps anything narrower than the disc at full
#    darkness (pen and pencil lines, however blurred by the camera) and removes wide soft blobs (smudges);
#    erasures are too faint to pass STROKE_MIN. Isolated blobs under DOT_MAX_MM2 (hesitation dots) go.
#  - filling: a box filled in pencil is wide too, so the top-hat loses it; the share of the box darker
#    than FILL_DARKNESS catches it. A smudge never darkens most of a box; part of one, it is flagged.
STROKE_DISC_MM = 1.2
STROKE_MIN = 0.18  # top-hat darkness of a stroke pixel (graphite at full pressure ~0.45, light hand ~0.25)
DOT_MAX_MM2 = 0.8  # a 1 mm dot is ~0.8 mm2; the shortest deliberate tick is several mm2
FILL_DARKNESS = 0.2
FILLED_SHARE = 0.55  # of the inner area darker than FILL_DARKNESS: a filled box
UNCLEAR_SHARE = 0.25  # a large faint area that is neither: a person must look


def _stroke_mark(rgb: np.ndarray, centre: np.ndarray, half: float, ppm: float, paper_level: float,
                 definite: float, marginal: float) -> tuple[float, str]:
    """(fill, mark) of a box from its strokes and its filling, see above."""
    pad = int(round(1.5 * ppm))
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    r = int(round(half))
    h, w = rgb.shape[:2]
    X0, Y0, X1, Y1 = max(0, cx - r - pad), max(0, cy - r - pad), min(w, cx + r + pad), min(h, cy + r + pad)
    patch = rgb[Y0:Y1, X0:X1]
    if patch.size == 0:
        return 0.0, "marginal"
    ink = _darkest(patch).astype(np.float32)
    d = np.clip(1.0 - ink / max(paper_level, 1.0), 0.0, 1.0)
    disc = int(round(STROKE_DISC_MM * ppm)) | 1
    tophat = cv2.morphologyEx(d, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (disc, disc)))
    strokes = (tophat > STROKE_MIN).astype(np.uint8)
    # Graphite's grain breaks a pencil stroke into fragments: group what lies within 0.4 mm before judging
    # a blob's size, so that only a truly isolated small blob counts as a hesitation dot.
    grow = max(1, int(round(0.4 * ppm)))
    groups = cv2.dilate(strokes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    n, labels = cv2.connectedComponents(groups, connectivity=8)
    if n > 1:
        sizes = np.bincount(labels[strokes > 0], minlength=n)  # stroke pixels per group
        dots = np.flatnonzero(sizes <= DOT_MAX_MM2 * ppm * ppm)
        strokes[np.isin(labels, dots[dots > 0])] = 0
    iy0, ix0 = cy - r - Y0, cx - r - X0
    sl = (slice(max(0, iy0), iy0 + 2 * r), slice(max(0, ix0), ix0 + 2 * r))
    if strokes[sl].size == 0:
        return 0.0, "marginal"
    stroke_fill = float(strokes[sl].mean())
    filled = float((d[sl] > FILL_DARKNESS).mean())
    if stroke_fill >= definite or filled >= FILLED_SHARE:
        return max(stroke_fill, filled), "mark"
    if stroke_fill >= marginal or filled >= UNCLEAR_SHARE:
        return max(stroke_fill, filled), "marginal"
    return stroke_fill, "empty"


def _region_sums(rgb: np.ndarray, paper: np.ndarray, thumb_scale: float, ink_levels: tuple[int, ...],
                 x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> tuple[np.ndarray, ...]:
    """Ink counts of many boxes at once, one array per level of `ink_levels`, against the paper level
    resized once over the boxes' region. Only the boxes' own pixels are looked at (a small share of their
    region): gathered into one row, box after box, with their darkest channel and their level; then one
    comparison per level and a sum per box."""
    rx0, ry0, rx1, ry1 = int(x0.min()), int(y0.min()), int(x1.max()), int(y1.max())
    tx0, ty0 = int(rx0 * thumb_scale), int(ry0 * thumb_scale)
    tx1, ty1 = int(np.ceil(rx1 * thumb_scale)) + 1, int(np.ceil(ry1 * thumb_scale)) + 1
    level = paper[ty0:ty1, tx0:tx1]
    level = cv2.resize(level, (round(level.shape[1] / thumb_scale), round(level.shape[0] / thumb_scale)),
                       interpolation=cv2.INTER_LINEAR)
    oy, ox = ry0 - round(ty0 / thumb_scale), rx0 - round(tx0 / thumb_scale)
    shape = (ry1 - ry0, rx1 - rx0)  # the region, as the level must cover it
    level = level[max(0, oy):max(0, oy) + shape[0], max(0, ox):max(0, ox) + shape[1]]
    if level.shape != shape:
        level = cv2.resize(level, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    # every box's pixels, row by row, box after box: pixel k of box i is at row y0 + k // width, column
    # x0 + k % width of it
    sizes = (y1 - y0) * (x1 - x0)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    box = np.repeat(np.arange(len(sizes)), sizes)
    k = np.arange(int(sizes.sum())) - starts[box]
    width = (x1 - x0)[box]
    ys, xs = y0[box] + k // np.maximum(width, 1), x0[box] + k % np.maximum(width, 1)
    if rgb.ndim == 2:
        ink = rgb[ys, xs]
    else:  # the darkest channel of those pixels alone, from the image's bytes
        at = (ys * rgb.shape[1] + xs) * rgb.shape[2]
        flat = rgb.reshape(-1)
        ink = np.minimum(np.minimum(flat[at], flat[at + 1]), flat[at + 2])
    box_level = level[ys - ry0, xs - rx0]
    # (an empty box at the end would start past the last pixel: its start is kept in range, its count set to 0)
    starts = np.minimum(starts, max(0, len(k) - 1))
    grey_levels = np.arange(256, dtype=np.uint16)
    sums = []
    for ink_level in ink_levels:
        # the threshold per pixel, level * ink_level // 255 in integers, as a lookup table
        below = ink < (grey_levels * ink_level // 255).astype(np.uint8)[box_level]
        counts = np.add.reduceat(below.astype(np.int64), starts) if len(below) else np.zeros(len(sizes), np.int64)
        sums.append(np.where(sizes > 0, counts, 0).astype(np.float64))  # (reduceat gives an empty box its next pixel)
    return tuple(sums)

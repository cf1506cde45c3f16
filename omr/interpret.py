"""Ballot image -> interpretation. Pure: pixels and the election definition in, a decision out.

Pipeline (each stage can be watched through `trace`, SourceAFIS-style):
  1. ink image      - the darkest colour channel, so blue, red and black pens all read as ink
  2. ballot code    - the QR, read with zbar and verified (signature, election, station, mode)
  3. registration   - the four solid corner squares -> a homography from layout mm to image pixels;
                      the decoded code must sit where the layout puts it, which also tells 0 from 180 deg
  4. normalisation  - divide out uneven lighting with a local background estimate
  5. box scores     - fraction of each box's inner area that is ink (integral image: O(1) per box)
  6. rules          - omr.rules per contest -> outcome, verdict and reasons
Nothing here reads a clock, a file or a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from config.election import Election
from omr.ballot_code import verify_code
from omr.layout import MARK_MM, BallotLayout, BoxSpec, layout_ballot
from omr.rules import ballot_verdict, decide_contest
from omr.types import BoxScore, Interpretation, Reason, Verdict

Trace = Callable[[str, Any], None]

# Inner area of a box that is scored: the printed outline (0.35 mm) plus registration error must stay
# out, or every box would look "marked". 0.9 mm each side leaves 3.2 mm of a 5 mm box.
INNER_MARGIN_MM = 0.9
# Registration squares are found as solid dark blobs of this size (mm) with this much tolerance.
MARK_SIZE_TOLERANCE = 0.30
MARK_MIN_SOLIDITY = 0.85
# Print-scale bounds accepted when the capture's dpi is known (the camera is calibrated). Ballots
# printed at the wrong scale would put boxes off their expected place; beyond this they are rejected.
SCALE_BOUNDS = (0.97, 1.03)
# The decoded code's centre must fall within this distance (mm) of where the layout puts it.
CODE_POSITION_TOLERANCE_MM = 6.0


def interpret(image: np.ndarray, election: Election, dpi: float | None = None,
              trace: Trace | None = None) -> Interpretation:
    """Interpret one ballot image (H x W grey or H x W x 3 RGB, uint8).

    `dpi` is the capture's calibrated resolution when known; it enables the print-scale check.
    """
    emit = trace or (lambda stage, value: None)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 64:
        return Interpretation(Verdict.UNREADABLE, (Reason.IMAGE_INVALID,))
    ink = _ink_channel(image)
    emit("ink", ink)

    payload, code_centre = _read_code(ink, dpi)
    emit("code", payload)
    if payload is None:
        return Interpretation(Verdict.UNREADABLE, (Reason.NO_CODE,))
    code, reasons = verify_code(payload, election)
    if code is None or reasons:
        return Interpretation(Verdict.FOREIGN, tuple(reasons), style=code.style if code else None)
    layout = layout_ballot(election, code.style)

    fit = _register(ink, layout, code_centre, dpi)
    emit("registration", fit)
    if isinstance(fit, Reason):
        verdict = Verdict.UNREADABLE
        return Interpretation(verdict, (fit,), style=code.style)

    normalised = _ink_mask(ink, election.omr.ink_level)
    emit("ink_mask", normalised)
    scores = _score_boxes(normalised, layout, fit, election)
    emit("scores", scores)

    results = []
    for contest in election.contests_of(code.style):
        marked = {s.candidate or s.list for s in scores if s.contest == contest.id and s.mark == "mark"}
        marginal = {s.candidate or s.list for s in scores if s.contest == contest.id and s.mark == "marginal"}
        results.append(decide_contest(contest, marked, marginal))  # type: ignore[arg-type]
    verdict, why = ballot_verdict(results)
    return Interpretation(verdict, why, style=code.style, contests={r.contest: r for r in results},
                          scores=tuple(scores), orientation=fit.orientation)


# -- 1. ink image ---------------------------------------------------------------------------
def _ink_channel(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        image = image[:, :, :3]
    r, g, b = cv2.split(np.ascontiguousarray(image))
    return cv2.min(cv2.min(r, g), b)


# -- 2. ballot code ---------------------------------------------------------------------------
def _read_code(grey: np.ndarray, dpi: float | None) -> tuple[str | None, tuple[float, float] | None]:
    """The first QR payload zbar reads, and its centre in image pixels.

    The layout puts the code in the top-right corner, so a sheet fed upright or turned 180 degrees has
    it in the top-right or bottom-left corner of the capture: those two windows are tried first (a few
    ms), the whole image only if neither has it."""
    h, w = grey.shape
    ppm = (dpi / 25.4) if dpi else max(h, w) / 300.0  # unknown dpi: assume about A4 long side in view
    side_x, side_y = min(w, round(75 * ppm)), min(h, round(75 * ppm))
    windows = [(w - side_x, 0, side_x, side_y), (0, h - side_y, side_x, side_y), (0, 0, w, h)]
    for x0, y0, ww, hh in windows:
        found = _decode(grey[y0:y0 + hh, x0:x0 + ww])
        if found is not None:
            text, (cx, cy) = found
            return text, (cx + x0, cy + y0)
    return None, None


def _decode(grey: np.ndarray) -> tuple[str, tuple[float, float]] | None:
    from pyzbar.pyzbar import ZBarSymbol, decode  # imported here: needs the system libzbar0

    for sym in decode(grey, symbols=[ZBarSymbol.QRCODE]):
        try:
            text = sym.data.decode("ascii")
        except UnicodeDecodeError:
            continue
        xs = [p.x for p in sym.polygon] or [sym.rect.left, sym.rect.left + sym.rect.width]
        ys = [p.y for p in sym.polygon] or [sym.rect.top, sym.rect.top + sym.rect.height]
        return text, (float(np.mean(xs)), float(np.mean(ys)))
    return None


# -- 3. registration --------------------------------------------------------------------------
@dataclass(frozen=True)
class Fit:
    homography: np.ndarray  # layout mm -> image px
    orientation: int
    px_per_mm: float
    scale: float | None  # print scale vs the calibrated dpi, when known


def _register(grey: np.ndarray, layout: BallotLayout, code_centre: tuple[float, float] | None,
              dpi: float | None) -> Fit | Reason:
    found = _find_marks(grey, layout, dpi)
    if found is None:
        return Reason.NO_REGISTRATION
    tl, tr, br, bl = found
    layout_pts = np.array([[r.cx, r.cy] for r in layout.registration], dtype=np.float64)
    best: Fit | Reason = Reason.BAD_GEOMETRY
    for orientation, image_pts in ((0, [tl, tr, br, bl]), (180, [br, bl, tl, tr])):
        H = cv2.getPerspectiveTransform(layout_pts.astype(np.float32), np.array(image_pts, dtype=np.float32))
        # The code must be where the layout says: this catches 180-degree insertion and a mark-set that
        # was picked up from the wrong blobs.
        if code_centre is not None:
            expect = _apply(H, [(layout.code.cx, layout.code.cy)])[0]
            tol = CODE_POSITION_TOLERANCE_MM * _px_per_mm(H, layout)
            if np.hypot(expect[0] - code_centre[0], expect[1] - code_centre[1]) > tol:
                continue
        ppm = _px_per_mm(H, layout)
        scale = None
        if dpi:
            scale = ppm / (dpi / 25.4)
            if not SCALE_BOUNDS[0] <= scale <= SCALE_BOUNDS[1]:
                return Reason.BAD_GEOMETRY
        best = Fit(H, orientation, ppm, scale)
        break
    return best


def _find_marks(grey: np.ndarray, layout: BallotLayout, dpi: float | None) -> list[tuple[float, float]] | None:
    """The centroid of the solid square nearest each image corner (TL, TR, BR, BL)."""
    h, w = grey.shape
    # Work at ~4 px/mm: plenty to find 7 mm squares, and fast.
    ppm_guess = (dpi / 25.4) if dpi else max(w, h) / max(layout.width_mm, layout.height_mm)
    factor = min(1.0, 4.0 / ppm_guess)
    small = cv2.resize(grey, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    _, dark = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    n, _, stats, centroids = cv2.connectedComponentsWithStats(dark, connectivity=8)
    side = MARK_MM * ppm_guess * factor
    lo, hi = side * (1 - MARK_SIZE_TOLERANCE), side * (1 + MARK_SIZE_TOLERANCE)
    candidates: list[tuple[float, float]] = []
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if not (lo <= bw <= hi and lo <= bh <= hi):
            continue
        if area < MARK_MIN_SOLIDITY * bw * bh * 0.9:  # rotated squares lose a little bbox fill
            continue
        candidates.append((centroids[i][0] / factor, centroids[i][1] / factor))
    if len(candidates) < 4:
        return None
    pts = np.array(candidates)
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    chosen = []
    for cx, cy in corners:
        d = np.hypot(pts[:, 0] - cx, pts[:, 1] - cy)
        chosen.append(int(np.argmin(d)))
    if len(set(chosen)) < 4:
        return None
    marks = [tuple(pts[i]) for i in chosen]
    # The four must form the sheet's rectangle: opposite sides equal within 3 % and the aspect ratio
    # within 3 % of the layout's. A blob picked up from a mark in a box fails this.
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = marks
    top, bottom = np.hypot(x1 - x0, y1 - y0), np.hypot(x2 - x3, y2 - y3)
    left, right = np.hypot(x3 - x0, y3 - y0), np.hypot(x2 - x1, y2 - y1)
    if min(top, bottom, left, right) <= 0:
        return None
    if abs(top - bottom) / max(top, bottom) > 0.03 or abs(left - right) / max(left, right) > 0.03:
        return None
    reg = layout.registration
    expect_aspect = (reg[1].cx - reg[0].cx) / (reg[3].cy - reg[0].cy)
    aspect = ((top + bottom) / 2) / ((left + right) / 2)
    if abs(aspect / expect_aspect - 1) > 0.03:
        return None
    return marks  # type: ignore[return-value]


def _apply(H: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
    arr = np.array(pts, dtype=np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(arr, H).reshape(-1, 2)


def _px_per_mm(H: np.ndarray, layout: BallotLayout) -> float:
    a, b = layout.registration[0], layout.registration[1]
    p = _apply(H, [(a.cx, a.cy), (b.cx, b.cy)])
    return float(np.hypot(*(p[1] - p[0])) / (b.cx - a.cx))


# -- 4. normalisation -------------------------------------------------------------------------
def _ink_mask(grey: np.ndarray, ink_level: int) -> np.ndarray:
    """1 where a pixel is darker than `ink_level` relative to the local paper brightness."""
    h, w = grey.shape
    f = 16
    small = cv2.resize(grey, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    # max filter removes ink up to ~5 small px (80 px full-res, > a box), leaving the paper's brightness
    paper = cv2.dilate(small, np.ones((5, 5), np.uint8))
    paper = cv2.GaussianBlur(paper, (5, 5), 0)
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    threshold = (paper.astype(np.uint16) * ink_level // 255).astype(np.uint8)
    return (grey < threshold).view(np.uint8)


# -- 5. box scores ----------------------------------------------------------------------------
def _score_boxes(mask: np.ndarray, layout: BallotLayout, fit: Fit, election: Election) -> list[BoxScore]:
    integral = cv2.integral(mask, sdepth=cv2.CV_32S)
    h, w = mask.shape
    boxes: tuple[BoxSpec, ...] = layout.boxes
    centres = _apply(fit.homography, [(b.rect.cx, b.rect.cy) for b in boxes])
    half = (layout.box_mm / 2 - INNER_MARGIN_MM) * fit.px_per_mm
    x0 = np.clip(np.round(centres[:, 0] - half), 0, w).astype(np.int64)
    x1 = np.clip(np.round(centres[:, 0] + half), 0, w).astype(np.int64)
    y0 = np.clip(np.round(centres[:, 1] - half), 0, h).astype(np.int64)
    y1 = np.clip(np.round(centres[:, 1] + half), 0, h).astype(np.int64)
    area = np.maximum(1, (x1 - x0) * (y1 - y0))
    sums = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    fills = sums / area
    th = election.omr
    out = []
    for b, fill in zip(boxes, fills):
        mark = "mark" if fill >= th.definite else "marginal" if fill >= th.marginal else "empty"
        out.append(BoxScore(b.contest, b.kind, b.list, b.candidate, round(float(fill), 4), mark))
    return out

"""Registration: where the ballot's layout lies in the captured image, or a reason it cannot be trusted.

Stages (all on pixels, no truth):
  find_sheet_and_marks  the sheet against the feeder bed and the solid registration squares, on a
                        4 px/mm thumbnail of the darkest colour channel
  corner_marks          the square nearest each sheet corner; one missing corner (cropped, torn) is
                        inferred from the other three (a rectangle in the paper's plane, through the sheet
                        outline), then checked like the rest
  orientations          the four ways the sheet can lie (0, 90, 180, 270 degrees); the ballot code sits
                        at a fixed offset from the layout's top-right square, which names the one
  fit                   a homography from the four squares, then verified and refined on the printed box
                        outlines: each sampled outline is located by template matching and the model is
                        refitted on all points; an RMS residual over RESIDUAL_MAX_MM rejects the sheet
  print scale           the paper's size measured in layout millimetres (independent of camera distance
                        and tilt): a ballot printed at the wrong scale puts the squares too close together
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from omr.layout import CODE_MM, MARGIN_MM, MARK_INSET_MM, MARK_MM, BallotLayout
from omr.types import Reason

THUMB_PPM = 4.0  # px/mm of the working thumbnail: a 7 mm square is 28 px, an A4 sheet ~ 840 x 1190 px
MARK_SIZE_TOLERANCE = 0.35  # perspective (10 %), print scale and blur change a square's apparent size
MARK_MIN_FILL = 0.50  # of its bounding box; a 40 %-density (worn) square still fills its outline when blurred
MARK_DARKNESS = 0.72  # a square is darker than this fraction of the paper level (40 % density reads ~0.6)
OUT_OF_VIEW = 0.12  # of the paper level: beyond the camera's field of view (the lit bed reads ~0.23)
MARK_MAX_HOLES = 0.10  # share of a square's outline that may be enclosed white (a finder pattern: 0.33)
CUT_MIN_SHARE = 0.35  # a square cut by the paper's edge: at least this share of it must be left
CUT_EDGE_PX = 2  # thumb px of the sheet's blurred edge left out
CUT_LOOK_MM = 15.0  # a square further than this from its sheet corner (one in place: 12 mm) may be other print
STREAK_CLEAR_MM = 3.0  # dust streaks: <= 4 px at 100 dpi (1 mm), two side by side and blurred ~2.5 mm
CORNER_REACH_MM = 30.0  # a corner's square must lie within this distance of the sheet corner
MAX_ROTATION_DEG = 7.0  # +-6 degrees are read (BENCHMARKS L3); 12 degrees must be rejected, not read
# Print scale (the print against its own paper) accepted. The print-house tolerance is 0.985-1.015; the
# bounds keep 0.5 % for the measurement (sd 0.07 %, bias +0.2 % on the L1/L2 corpus), so a genuine
# ballot at 1.015 is never returned, and 0.95 prints (BENCHMARKS L3) are rejected.
SCALE_BOUNDS = (0.980, 1.020)
# Absolute scale at the sheet's centre against the camera's calibration: a ballot printed on bigger
# paper (an enlarged copy) keeps its print scale but not its size.
ABSOLUTE_SCALE_BOUNDS = (0.97, 1.03)
RESIDUAL_MAX_MM = 0.45  # a box's inner area keeps 0.9 mm from its outline: half of that is the budget
FIDUCIAL_BOXES = 12
CODE_WINDOW_MM = CODE_MM + 10.0  # around the predicted centre: the code, perspective and a cropped square's error

# The code's centre relative to the layout's top-right registration square, in layout mm (left along
# the top edge, down the right edge). Both hang off the top-right corner, so it is the same on every
# style (omr.layout places the code at x = W - MARGIN - CODE + 3, y = INSET + MARK + 2).
CODE_FROM_TR = ((MARGIN_MM + CODE_MM / 2 - 3) - (MARK_INSET_MM + MARK_MM / 2), MARK_MM / 2 + 2 + CODE_MM / 2)


@dataclass(frozen=True)
class Found:
    """What the thumbnail shows: the sheet's corners and the registration squares (image px)."""

    scale: float  # thumbnail px per image px
    thumb_ppm: float  # thumbnail px per mm (about THUMB_PPM)
    sheet: np.ndarray | None  # 4 x 2 corners clockwise from the image's top-left-most; None: sheet fills the view
    corners: np.ndarray  # 4 x 2 square centres at the sheet corners (clockwise), one possibly inferred
    inferred: int | None  # index of the corner square that was inferred, if any
    mark_px: float  # measured side of a square in image px (-> image px/mm before the layout is known)
    corner_gaps_mm: tuple[float, ...] = ()  # per sheet corner: how far the outline keeps off the corner
    cut: tuple[int, ...] = ()  # corners whose square the paper's edge cuts: centre placed from its uncut sides


@dataclass(frozen=True)
class Fit:
    homography: np.ndarray  # layout mm -> image px
    orientation: int  # degrees (0, 90, 180, 270)
    px_per_mm: float
    residual_mm: float  # RMS of the fiducials after refinement
    fiducials: int
    print_scale: float | None
    rotation_deg: float


def find_sheet_and_marks(thumb: np.ndarray, thumb_ppm: float, scale: float) -> Found | Reason:
    """`thumb`: the darkest-channel thumbnail, at about `thumb_ppm` px/mm; `scale`: thumb px per image px."""
    f = scale
    levels = np.cumsum(np.bincount(thumb[::3, ::3].ravel(), minlength=256))  # subsampled: levels, not fine statistics
    paper = percentile_u8(levels, 90)
    if paper < 60:
        return Reason.NO_REGISTRATION  # no lit paper in view
    sheet, gaps_px = _sheet_corners(thumb, paper, percentile_u8(levels, 3))
    frame = sheet if sheet is not None else np.array([[0, 0], [thumb.shape[1], 0], [thumb.shape[1], thumb.shape[0]],
                                                      [0, thumb.shape[0]]], dtype=np.float64)
    reach = CORNER_REACH_MM * thumb_ppm * (1.0 if sheet is not None else 1.6)
    side = MARK_MM * thumb_ppm
    corners: list[np.ndarray | None] = []
    sizes = []
    cut = []
    for k, (cx, cy) in enumerate(frame):
        # only a window around each sheet corner is searched: squares live there, and it is 20x less work
        x0, y0 = int(max(0, cx - reach - side)), int(max(0, cy - reach - side))
        x1, y1 = int(min(thumb.shape[1], cx + reach + side)), int(min(thumb.shape[0], cy + reach + side))
        best = _square_near(thumb[y0:y1, x0:x1], paper, side, (cx - x0, cy - y0), reach)
        if sheet is not None and (best is None or np.hypot(best[0] - (cx - x0), best[1] - (cy - y0))
                                  > CUT_LOOK_MM * thumb_ppm):
            # no square, or one further in than a square at the corner: the corner's own may be cut by the
            # paper's edge (the one found is then other print)
            near = _cut_square(thumb[y0:y1, x0:x1], paper, side, (cx - x0, cy - y0), reach, sheet - (x0, y0))
            if near is not None and (best is None or np.hypot(near[0] - (cx - x0), near[1] - (cy - y0))
                                     < np.hypot(best[0] - (cx - x0), best[1] - (cy - y0))):
                best = near
                cut.append(k)
        if best is None:
            corners.append(None)
        else:
            corners.append(np.array([best[0] + x0, best[1] + y0]))
            sizes.append(best[2])
    seen = [c for c in corners if c is not None]
    if any(np.hypot(*(a - b)) < side for i, a in enumerate(seen) for b in seen[i + 1:]):
        return Reason.NO_REGISTRATION  # one square claimed by two corners: the view is too small to be a sheet
    missing = [i for i, c in enumerate(corners) if c is None]
    if len(missing) > 1:
        return Reason.NO_REGISTRATION
    inferred = None
    if missing:
        i = missing[0]
        a, b, c = corners[(i + 1) % 4], corners[(i + 2) % 4], corners[(i + 3) % 4]
        corners[i] = _infer_corner(a, b, c, sheet)
        inferred = i
    pts = np.array(corners, dtype=np.float64) / f
    return Found(scale=f, thumb_ppm=thumb_ppm, sheet=None if sheet is None else sheet / f, corners=pts, inferred=inferred,
                 mark_px=float(np.median(sizes)) / f, corner_gaps_mm=tuple(g / thumb_ppm for g in gaps_px),
                 cut=tuple(cut))


def _infer_corner(a: np.ndarray, b: np.ndarray, c: np.ndarray, sheet: np.ndarray | None) -> np.ndarray:
    """The fourth square's centre from the other three (b opposite it): the squares form a rectangle on
    the paper, so the missing one is a + c - b - in the paper's own plane when the sheet's outline is
    known (its hidden corner extrapolated from the sides), which undoes the camera's perspective;
    otherwise in the image (a parallelogram, off by the perspective). fit() then checks the result on
    the printed box outlines."""
    if sheet is not None:
        unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
        to_paper = cv2.getPerspectiveTransform(sheet.astype(np.float32), unit)
        if abs(np.linalg.det(to_paper)) > 1e-12:
            pa, pb, pc = cv2.perspectiveTransform(np.array([[a, b, c]], np.float64), to_paper)[0]
            out = cv2.perspectiveTransform(np.array([[pa + pc - pb]], np.float64), np.linalg.inv(to_paper))[0, 0]
            if np.all(np.isfinite(out)):
                return out
    return a + c - b  # parallelogram: the opposite corner mirrored through the diagonal's middle


def _square_near(window: np.ndarray, paper: float, side: float, corner: tuple[float, float],
                 reach: float) -> tuple[float, float, float] | None:
    """The solid square nearest `corner` in the window: (x, y, side) in window px, or None.

    Streaks on the glass run along the feed (image columns) through the squares too: a dark streak
    passing a square joins it to the bed or the print into one big component. When no square is seen,
    the mask is looked at again opened along the rows, which removes anything narrower than
    STREAK_CLEAR_MM (a streak, print strokes) and keeps a 7 mm square. Only pixels are taken away, and a
    candidate must still pass every test of a square."""
    if window.size == 0:
        return None
    _, dark = cv2.threshold(window, MARK_DARKNESS * paper, 255, cv2.THRESH_BINARY_INV)
    dark = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))  # worn squares: close pinholes
    best = _nearest_square(dark, side, corner, reach)
    if best is None:
        k = int(STREAK_CLEAR_MM * side / MARK_MM) | 1
        best = _nearest_square(cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((1, k), np.uint8)), side, corner, reach)
    return best


def _cut_square(window: np.ndarray, paper: float, side: float, corner: tuple[float, float], reach: float,
                sheet: np.ndarray) -> tuple[float, float, float] | None:
    """A square the paper's edge cuts (a long ballot printed a little large: 1 % of 1141 mm is 5.7 mm at each
    end, and the squares are 5 mm from the edge): against the bed it is one dark shape with the bed. Inside
    the sheet's outline (`sheet`, window px) what is left is a solid rectangle against the nearest side of
    the sheet: a square's side along it, CUT_MIN_SHARE of that or more across it. Its inner edge and its two
    ends are the square's own, so its centre is a side's half in from the inner edge: (x, y, side) in window
    px, or None."""
    _, dark = cv2.threshold(window, MARK_DARKNESS * paper, 255, cv2.THRESH_BINARY_INV)
    dark = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    inside = np.zeros_like(dark)
    cv2.fillConvexPoly(inside, np.round(sheet * 16).astype(np.int32), 255, shift=4)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8), iterations=CUT_EDGE_PX)  # the edge's blur is bed
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.bitwise_and(dark, inside), connectivity=8)
    lo, hi = side * (1 - MARK_SIZE_TOLERANCE), side * (1 + MARK_SIZE_TOLERANCE)
    centre = sheet.mean(axis=0)
    best, best_d = None, reach
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if area < CUT_MIN_SHARE * lo * lo or max(bw, bh) > 1.3 * hi:
            continue
        ys, xs = np.nonzero(labels[y:y + bh, x:x + bw] == i)
        pts = np.column_stack([xs + x, ys + y]).astype(np.float64)
        mid = pts.mean(axis=0)
        # the nearest side of the sheet: along it (t) and inward from it (depth)
        sides = []
        for j in range(4):
            p, q = sheet[j], sheet[(j + 1) % 4]
            along = (q - p) / max(np.hypot(*(q - p)), 1e-9)
            inward = np.array([-along[1], along[0]])
            if np.dot(inward, centre - p) < 0:
                inward = -inward
            sides.append((float(np.dot(mid - p, inward)), p, along, inward))
        sides.sort(key=lambda t: t[0])
        _, p, along, inward = sides[0]
        # clear of the other sides: a square is cut by one edge; dark at a corner of the outline, against
        # two, is the bed (a torn corner, a second sheet's step)
        if any(float(((pts - q) @ n).min()) < CUT_EDGE_PX + side / MARK_MM for _, q, _, n in sides[1:]):
            continue
        t, depth = (pts - p) @ along, (pts - p) @ inward
        t0, t1, d0, d1 = float(t.min()), float(t.max()) + 1, float(depth.min()), float(depth.max()) + 1
        width, deep = t1 - t0, d1 - d0
        if not (lo <= width <= hi and CUT_MIN_SHARE * width <= deep <= 1.1 * width and area >= 0.8 * width * deep):
            continue
        if d0 > CUT_EDGE_PX + 1.5:
            continue  # not against the paper's edge: not cut by it
        cx, cy = p + along * (t0 + t1) / 2 + inward * (d1 - width / 2)
        dist = float(np.hypot(cx - corner[0], cy - corner[1]))
        if dist <= best_d and not _has_hole(labels[y:y + bh, x:x + bw] == i, area):
            best, best_d = (float(cx), float(cy), float(width)), dist
    return best


def _nearest_square(dark: np.ndarray, side: float, corner: tuple[float, float],
                    reach: float) -> tuple[float, float, float] | None:
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(dark, connectivity=8)
    lo, hi = side * (1 - MARK_SIZE_TOLERANCE), side * (1 + MARK_SIZE_TOLERANCE) * 1.15  # rotated bbox grows
    best, best_d = None, reach
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if lo <= bw <= hi and lo <= bh <= hi and area >= MARK_MIN_FILL * bw * bh and 0.7 < bw / bh < 1.43:
            d = float(np.hypot(centroids[i][0] - corner[0], centroids[i][1] - corner[1]))
            if d <= best_d and not _has_hole(labels[y:y + bh, x:x + bw] == i, area):
                best, best_d = (float(centroids[i][0]), float(centroids[i][1]), float(np.sqrt(area))), d
    return best


def _has_hole(component: np.ndarray, area: int) -> bool:
    """A ring, not a solid square: the ballot code's finder patterns (7 x 1.2 mm, a dark ring round a
    dark core) are the size of a registration square, but hollow - a white ring of 16 of their 49
    modules. A worn square's pinholes are closed before this."""
    filled = np.pad(component.astype(np.uint8), 1)
    cv2.floodFill(filled, None, (0, 0), 2)
    holes = int(np.count_nonzero(filled == 0))
    return holes > MARK_MAX_HOLES * (area + holes)


def percentile_u8(cumulative: np.ndarray, q: float) -> float:
    """np.percentile(x, q) of uint8 data x, from the running count of its levels (np.cumsum of
    np.bincount(x, minlength=256)): the same linear interpolation between order statistics, without
    sorting the data."""
    n = int(cumulative[-1])
    at = q / 100.0 * (n - 1)
    lo = int(np.floor(at))
    a = int(np.searchsorted(cumulative, lo, side="right"))  # the lo-th smallest value (0-based)
    b = int(np.searchsorted(cumulative, min(lo + 1, n - 1), side="right"))
    return float(a + (b - a) * (at - lo))


def _sheet_corners(thumb: np.ndarray, paper: float, bed: float) -> tuple[np.ndarray | None, list[float]]:
    """Corners of the lit sheet against the darker feeder bed (`bed`: the thumbnail's 3rd percentile level,
    `paper` its 90th), clockwise from the top-left-most, and per
    corner how far (thumb px) the outline keeps off it. Two sheets fed off-register make one bigger
    outline with two diagonally opposite corners missing; a torn or folded corner is one. (None, [])
    when the sheet fills the view (a scan, a rendered file) or the frame cuts it."""
    # the edge lies halfway between the bed's and the paper's brightness (a fixed share of the paper level
    # would put it inside a blurred edge and measure the sheet too small)
    level = (bed + paper) / 2 if bed < 0.6 * paper else 0.55 * paper
    _, bright = cv2.threshold(thumb, level, 255, cv2.THRESH_BINARY)
    # open: a white streak crossing the bed is a thin bright line, not sheet; close: print is not a hole
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None, []
    c = max(contours, key=cv2.contourArea)
    x, y, bw, bh = cv2.boundingRect(c)
    H, W = thumb.shape
    if x <= 1 and y <= 1 and x + bw >= W - 1 and y + bh >= H - 1:
        return None, []  # touches all four edges: no bed visible
    if cv2.contourArea(c) < 0.2 * H * W:
        return None, []
    quad = cv2.approxPolyDP(c, 0.02 * cv2.arcLength(c, True), True).reshape(-1, 2).astype(np.float64)
    if len(quad) != 4:
        quad = cv2.boxPoints(cv2.minAreaRect(c)).astype(np.float64)
    quad = _clockwise(quad)
    pts = c.reshape(-1, 2)
    if (pts[:, 0] <= 2).any() or (pts[:, 1] <= 2).any() or (pts[:, 0] >= W - 3).any() or (pts[:, 1] >= H - 3).any():
        return quad, []  # cut by the frame: its outline says nothing
    # Outline beyond the camera's field of view (no light at all: far darker than the lit bed) is not the
    # sheet's edge but the view's; it is left out, and a corner lying there is not seen: its gap says
    # nothing about a second sheet or a torn corner. (A second sheet still shows at the opposite corner;
    # the square hidden there is inferred by find_sheet_and_marks.)
    no_light = OUT_OF_VIEW * paper
    dark = None
    if float(thumb[::2, ::2].min()) < no_light:  # (a whole view in sight: skipped)
        dark = cv2.dilate((thumb < no_light).view(np.uint8), np.ones((5, 5), np.uint8))
    unseen = np.zeros(len(pts), bool) if dark is None else dark[pts[:, 1], pts[:, 0]] > 0
    if unseen.any() and (~unseen).sum() >= 40:
        pts = pts[~unseen]
    quad = _robust_sides(pts.astype(np.float64), quad)
    if unseen.any():  # the approximated outline had a vertex where the view ends: refit from the first fit
        quad = _robust_sides(pts.astype(np.float64), quad)
    gaps = [float(np.min(np.hypot(*(pts - q).T))) for q in quad]
    for i, q in enumerate(quad):
        x, y = int(round(q[0])), int(round(q[1]))
        if dark is not None and 0 <= x < W and 0 <= y < H and dark[y, x]:
            gaps[i] = 0.0
    return _clockwise(quad), [gaps[i] for i in np.argsort([np.arctan2(*(q - quad.mean(0))[::-1]) for q in quad])]


def _robust_sides(pts: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Refit the quadrilateral's four sides to where most of the outline runs: the points near each side
    vote for its offset (the mode, so a second sheet's step or a torn corner does not pull it), then the
    inliers give its direction; adjacent sides intersect in the corners."""
    lines = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        d = (b - a) / max(np.hypot(*(b - a)), 1e-9)
        nrm = np.array([-d[1], d[0]])
        t = (pts - a) @ d
        off = (pts - a) @ nrm
        length = np.hypot(*(b - a))
        near = (t > 0.1 * length) & (t < 0.9 * length) & (np.abs(off) < 0.06 * length)
        if near.sum() < 10:
            lines.append((a, d))
            continue
        hist, edges = np.histogram(off[near], bins=max(8, int(np.ptp(off[near])) + 1))
        mode = (edges[np.argmax(hist)] + edges[np.argmax(hist) + 1]) / 2
        inl = pts[near][np.abs(off[near] - mode) < 1.5]
        vx, vy, x0, y0 = cv2.fitLine(inl.astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        # the band round the mode holds only part of the edge when the first quadrilateral was tilted
        # (a vertex where the view ends): gather the points along the fitted line and fit again
        for _ in range(2):
            dist = np.abs((pts[near][:, 0] - x0) * vy - (pts[near][:, 1] - y0) * vx)
            more = pts[near][dist < 1.5]
            if len(more) <= len(inl):
                break
            inl = more
            vx, vy, x0, y0 = cv2.fitLine(inl.astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    corners = []
    for i in range(4):
        (p1, d1), (p2, d2) = lines[i - 1], lines[i]
        A = np.array([d1, -d2]).T
        if abs(np.linalg.det(A)) < 1e-9:
            return quad
        t = np.linalg.solve(A, p2 - p1)
        corners.append(p1 + t[0] * d1)
    return np.array(corners)


def _clockwise(quad: np.ndarray) -> np.ndarray:
    centre = quad.mean(axis=0)
    ang = np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0])
    quad = quad[np.argsort(ang)]  # clockwise in image coordinates (y down)
    start = int(np.argmin(quad[:, 0] + quad[:, 1]))
    return np.roll(quad, -start, axis=0)


def code_windows(found: Found) -> list[tuple[int, np.ndarray]]:
    """For each of the four orientations, (k, predicted code centre in image px). Orientation k means
    the layout's top-left square is found at sheet corner k (clockwise)."""
    c = found.corners
    ppm = found.mark_px / MARK_MM
    out = []
    for k in range(4):
        tl, tr, br = c[k % 4], c[(k + 1) % 4], c[(k + 2) % 4]
        left = (tl - tr) / max(np.hypot(*(tl - tr)), 1e-6)
        down = (br - tr) / max(np.hypot(*(br - tr)), 1e-6)
        out.append((k, tr + left * CODE_FROM_TR[0] * ppm + down * CODE_FROM_TR[1] * ppm))
    return out


def fit(layout: BallotLayout, found: Found, k: int, grey: np.ndarray, image_ppm: float | None) -> Fit | Reason:
    """The verified homography for orientation k, or the reason the sheet's geometry cannot be trusted."""
    reg = np.array([[r.cx, r.cy] for r in layout.registration], dtype=np.float64)
    img = np.array([found.corners[(k + i) % 4] for i in range(4)], dtype=np.float64)
    # The squares must form the layout's rectangle, up to the camera's perspective (10 %): compare the
    # quadrilateral's side lengths with the layout's, pairwise.
    top, right = np.hypot(*(img[1] - img[0])), np.hypot(*(img[2] - img[1]))
    bottom, left = np.hypot(*(img[2] - img[3])), np.hypot(*(img[3] - img[0]))
    want = (reg[1, 0] - reg[0, 0]) / (reg[3, 1] - reg[0, 1])
    got = ((top + bottom) / 2) / ((left + right) / 2)
    if abs(got / want - 1) > 0.12 or abs(top / bottom - 1) > 0.15 or abs(left / right - 1) > 0.15:
        return Reason.BAD_GEOMETRY
    # skew: the mean angle of the layout's top and bottom edges in the image (perspective tilts them
    # equally the other way: on the 1141 mm council ballot a 10 % keystone turns each by ~7 degrees),
    # less the k quarter turns of the insertion
    top_dir, bottom_dir = img[1] - img[0], img[2] - img[3]
    mean_dir = top_dir / max(np.hypot(*top_dir), 1e-9) + bottom_dir / max(np.hypot(*bottom_dir), 1e-9)
    angle = float(np.degrees(np.arctan2(mean_dir[1], mean_dir[0])))
    rotation = (angle - 90.0 * k + 180.0) % 360.0 - 180.0
    if abs(rotation) > MAX_ROTATION_DEG:
        return Reason.BAD_GEOMETRY  # skewed beyond what the feeder allows: the sheet is not held flat
    H = cv2.getPerspectiveTransform(reg.astype(np.float32), img.astype(np.float32)).astype(np.float64)
    H, residual, n = _refine(H, layout, grey, reg, img, found.inferred, trusted=not found.cut)
    if H is None or residual > RESIDUAL_MAX_MM:
        return Reason.BAD_GEOMETRY
    ppm = _px_per_mm(H, layout)
    scale = _print_scale(H, layout, found) if found.sheet is not None else None
    if scale is not None and not SCALE_BOUNDS[0] <= scale <= SCALE_BOUNDS[1]:
        return Reason.BAD_GEOMETRY
    if image_ppm and not ABSOLUTE_SCALE_BOUNDS[0] <= _centre_scale(H, layout) / image_ppm <= ABSOLUTE_SCALE_BOUNDS[1]:
        return Reason.BAD_GEOMETRY
    # k: the sheet corner (clockwise from the image's top-left) where the layout's top-left lies, i.e.
    # the sheet was turned k quarter-turns clockwise
    return Fit(H, 90 * k, ppm, residual, n, scale, rotation)


def _refine(H: np.ndarray, layout: BallotLayout, grey: np.ndarray, reg: np.ndarray, img: np.ndarray,
            inferred: int | None, trusted: bool = True) -> tuple[np.ndarray | None, float, int]:
    """Check H on printed box outlines and refit it: returns (H', RMS residual in mm, outlines used).

    For a sampled box at layout point p, a canonical patch around p is cut through H and the empty-box
    outline is located in it by template matching, at an offset d (mm). The box really is at image point
    H(p + d): (p, H(p + d)) is a correspondence. H' is fitted to the squares and all such pairs; the
    residuals of that fit say whether one projective model explains the whole sheet (a crease, a fold or
    a wrong square breaks it)."""
    boxes = layout.boxes
    idx = np.unique(np.linspace(0, len(boxes) - 1, min(FIDUCIAL_BOXES, len(boxes))).round().astype(int))
    k = 8.0  # px/mm of the canonical patches
    side = layout.box_mm + 3.0
    n_px = int(round(side * k))
    tmpl = _outline_template(layout.box_mm, k)
    layout_pts, image_pts = [], []
    for i in idx:
        r = boxes[i].rect
        # canonical patch (k px/mm, axis-aligned in layout space) -> image: H . T(x0, y0) . S(1/k)
        M = H @ np.array([[1 / k, 0, r.cx - side / 2], [0, 1 / k, r.cy - side / 2], [0, 0, 1]])
        patch = cv2.warpPerspective(grey, M, (n_px, n_px), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REPLICATE)
        res = cv2.matchTemplate(patch, tmpl, cv2.TM_CCOEFF_NORMED)
        _, score, _, (mx, my) = cv2.minMaxLoc(res)
        if score < 0.35:
            continue  # outline not seen (a heavy scribble, a stamp, a streak): no fiducial here
        dx = (mx - (n_px - tmpl.shape[1]) / 2) / k
        dy = (my - (n_px - tmpl.shape[0]) / 2) / k
        layout_pts.append((r.cx, r.cy))
        image_pts.append(_apply(H, [(r.cx + dx, r.cy + dy)])[0])
    if len(layout_pts) < 4:
        # Too few outlines to check against: the squares alone are trusted only when all four were seen
        # whole (none inferred, none placed from what the paper's edge left of it).
        return (H, 0.0, 0) if inferred is None and trusted else (None, float("inf"), len(layout_pts))
    seen = [i for i in range(4) if i != inferred]
    all_layout = np.vstack([reg[seen], np.array(layout_pts)])
    all_image = np.vstack([img[seen], np.array(image_pts)])
    H2, _ = cv2.findHomography(all_layout, all_image, 0)
    if H2 is None:
        return None, float("inf"), len(layout_pts)
    err_px = np.hypot(*(_apply(H2, all_layout) - all_image).T)
    ppm = _px_per_mm(H2, layout)
    return H2, float(np.sqrt(np.mean((err_px / ppm) ** 2))), len(layout_pts)


def _outline_template(box_mm: float, k: float) -> np.ndarray:
    size = int(round((box_mm + 1.0) * k))
    t = np.full((size, size), 255, np.uint8)
    o = int(round(0.5 * k))
    line = max(1, int(round(0.35 * k)))
    cv2.rectangle(t, (o, o), (o + int(round(box_mm * k)) - 1, o + int(round(box_mm * k)) - 1), 0, line)
    return t


def _centre_scale(H: np.ndarray, layout: BallotLayout) -> float:
    """Image px per layout mm at the sheet's centre (geometric mean of x and y): the camera's perspective
    scales the sheet's ends, not its centre."""
    c = (layout.width_mm / 2, layout.height_mm / 2)
    p = _apply(H, [c, (c[0] + 1, c[1]), (c[0], c[1] + 1)])
    return float(np.sqrt(np.hypot(*(p[1] - p[0])) * np.hypot(*(p[2] - p[0]))))


def _print_scale(H: np.ndarray, layout: BallotLayout, found: Found) -> float | None:
    """Layout width over the paper's width measured in layout mm (through H): 1.0 for a true print."""
    assert found.sheet is not None
    inv = np.linalg.inv(H)
    corners = _apply(inv, [tuple(p) for p in found.sheet])
    # the sheet corners come clockwise from the image; pair opposite sides
    s = [np.hypot(*(corners[(i + 1) % 4] - corners[i])) for i in range(4)]
    a, b = (s[0] + s[2]) / 2, (s[1] + s[3]) / 2
    w_meas, h_meas = (a, b) if abs(a - layout.width_mm) < abs(b - layout.width_mm) else (b, a)
    if w_meas <= 0 or h_meas <= 0:
        return None
    return float(np.sqrt((layout.width_mm / w_meas) * (layout.height_mm / h_meas)))


def _apply(H: np.ndarray, pts) -> np.ndarray:
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(arr, H).reshape(-1, 2)


def _px_per_mm(H: np.ndarray, layout: BallotLayout) -> float:
    """Mean image scale along the sheet's diagonal."""
    a, b = layout.registration[0], layout.registration[2]
    p = _apply(H, [(a.cx, a.cy), (b.cx, b.cy)])
    return float(np.hypot(*(p[1] - p[0])) / np.hypot(b.cx - a.cx, b.cy - a.cy))

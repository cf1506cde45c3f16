"""Two sheets fed at once, nearly in register: the lower sheet's registration squares show through.

A ballot is printed on one side, and nothing is printed behind or around its four registration squares
(the 15 mm margin columns stay blank on both sides). A second ballot under it puts its own squares, solid
black, a few millimetres off the top sheet's - and paper is not opaque: black print under a sheet of 80 g/m2
paper darkens it by 5-15 % (the same physics as a back page showing through). So beside each square of
the top sheet a faint copy of a square appears, displaced by the same offset at every corner (up to the
small turn of one sheet against the other). A single sheet has nothing there.

The test, per corner, on the thumbnail (no layout needed: it runs right after registration):
  darkness d = 1 - pixel / paper, with print (the square itself, the code, text, the bed) left out;
  for each offset o, the mean darkness of a square's area at o minus that at -o. The square's own blurred
  edge is point-symmetric about its centre and cancels, as do the paper level and a lighting gradient (to
  first order); a ghost at o does not. The best o and its contrast are kept.
Then the sheet is two sheets when at least three corners show a ghost of at least GHOST_MIN_CONTRAST, at
offsets that one rigid motion of a sheet (a shift and a turn of at most GHOST_MAX_TURN_DEG) explains to
within GHOST_FIT_MM. A ghost mostly hidden (under the square, cut by the sheet's edge) shows only a strip, and
its strongest offset can be a few millimetres off: when no motion fits, each corner is looked at again near
the offset that a loose motion through three of the corners predicts, and those offsets must fit as tightly.
The paper level is that of the top sheet: the lower sheet's bare margin sticking out beside it is brighter
(it is not under a sheet) and is left out.

What it cannot see: sheets in register to about half a millimetre (the ghost hides under the square) -
the feeder's double-sheet sensor is for those; and offsets over GHOST_MAX_OFFSET_MM, where the lower
sheet sticks out well beyond the top one and the outline check (corner gaps, print scale) refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import cv2
import numpy as np

from omr.layout import MARK_MM
from omr.registration import Found

GHOST_MAX_OFFSET_MM = 7.5  # searched each way from the top sheet's square
GHOST_MIN_CONTRAST = 0.035  # mean darkening of the ghost's visible part against its mirror image
GHOST_NOISE_FACTOR = 2.5  # times the sd of the paper's darkness around: the contrast needed on a noisy capture
GHOST_MIN_AREA_MM2 = 1.5  # visible part of the ghost's square (and of its mirror) to judge it at all
GHOST_MIN_OFFSET_MM = 0.75  # nearer than this the "ghost" is the square's own edge
GHOST_MIN_CORNERS = 3
GHOST_FIT_MM = 1.0  # RMS residual of the rigid motion over the corners' offsets
GHOST_MAX_TURN_DEG = 3.0
# A ghost mostly hidden (under the top sheet's square, cut by its edge, under the bed's halo) shows a strip;
# its strongest offset can then be 1-3 mm off the true one, and one rigid motion no longer fits the corners.
# So corners that do not fit are looked at again near the offset the others' motion predicts for them.
GHOST_LOOSE_FIT_MM = 2.5  # RMS residual of a first motion from the corners' strongest ghosts
GHOST_NEAR_MM = 1.25  # the second look: within this distance of the predicted offset
PRINT_DARKNESS = 0.30  # darker than this is print (or the bed), not a ghost: ghosts are 5-20 %
PRINT_HALO_MM = 0.75  # around other print, its blurred edge is left out too
SQUARE_EDGE_MAX_MM = 1.5  # the square's own blurred edge is measured out to this distance
EDGE_DARKNESS = 0.012  # darkness of the paper where the edge has faded out
# The paper level is the window's brightest tenth - unless that is another paper: the lower sheet's margin
# sticking out beside the top sheet (not under it, so brighter than the top sheet it darkens). When the
# brightest tenth is this much brighter than the window's typical paper, the level is taken from the typical
# paper alone and the brighter paper is left out, like print.
OTHER_PAPER_STEP = 0.025


@dataclass(frozen=True)
class Ghost:
    """A corner's best ghost: offset (thumb px, image axes) from the square, contrast, and where."""

    offset: tuple[float, float]
    contrast: float
    centre: tuple[float, float]  # the top sheet's square, thumb px
    noise: float = 0.0  # sd of the bare paper's darkness around


def corner_ghosts(thumb: np.ndarray, found: Found, enough_misses: int = 4) -> list[Ghost | None]:
    """Per corner square that was seen whole (not inferred, not cut by the paper's edge), the strongest ghost;
    None where none can be judged. Stops (the rest None) once `enough_misses` corners have shown no ghost:
    the verdict is then known."""
    ppm = found.mark_px * found.scale / MARK_MM  # thumb px per mm
    c = _constants(round(ppm * 8) / 8)
    half, size, side = c.half, 2 * c.half + 1, c.side
    out: list[Ghost | None] = [None] * len(found.corners)
    misses = 0
    h, w = thumb.shape
    for i, corner in enumerate(found.corners):
        if misses >= enough_misses:
            break
        cx, cy = float(corner[0] * found.scale), float(corner[1] * found.scale)
        if i == found.inferred or i in found.cut or cx - half < 0 or cy - half < 0 or cx + half + 1 > w \
                or cy + half + 1 > h:
            misses += 1  # inferred, cut by the paper's edge, or the window runs off the frame (a cropped corner)
            continue
        ghost = _ghost(cv2.getRectSubPix(thumb, (size, size), (cx, cy)), c)
        if ghost is None or ghost[2] < _threshold(ghost[3]):
            misses += 1
        if ghost is not None:
            out[i] = Ghost((ghost[0], ghost[1]), ghost[2], (cx, cy), ghost[3])
    return out


def _threshold(noise: float) -> float:
    """The contrast a ghost needs: GHOST_MIN_CONTRAST, more on a noisy capture (sensor noise, JPEG)."""
    return max(GHOST_MIN_CONTRAST, GHOST_NOISE_FACTOR * noise)


@dataclass(frozen=True)
class _Constants:
    half: int  # window: 2 * half + 1 px square, centred on the square
    side: int  # the square's side, px
    grid: np.ndarray  # offsets searched (window shape, bool)
    other_kernel: np.ndarray
    min_area: float
    max_edge: int
    band: int  # half-width of the strips across the square's sides that measure its edge
    near: float  # GHOST_NEAR_MM, px


@lru_cache(maxsize=8)
def _constants(ppm: float) -> _Constants:
    side = max(3, int(round(MARK_MM * ppm)))
    reach = int(round(GHOST_MAX_OFFSET_MM * ppm))
    half = reach + side // 2 + 2
    nearest = max(1, int(np.ceil(GHOST_MIN_OFFSET_MM * ppm)))
    yy, xx = np.ogrid[-half:half + 1, -half:half + 1]
    grid = (np.hypot(xx, yy) <= reach) & (np.maximum(np.abs(xx), np.abs(yy)) >= nearest)
    halo = max(1, int(round(PRINT_HALO_MM * ppm)))
    return _Constants(half, side, grid, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * halo + 1, 2 * halo + 1)),
                      GHOST_MIN_AREA_MM2 * ppm * ppm, max(2, int(round(SQUARE_EDGE_MAX_MM * ppm))), max(1, side // 4),
                      GHOST_NEAR_MM * ppm)


def _ghost(window: np.ndarray, c: _Constants, near: tuple[float, float] | None = None
           ) -> tuple[float, float, float, float] | None:
    """(dx, dy, contrast, paper noise) of the strongest ghost in a window centred on a square, or None.
    With `near` (dx, dy px), only offsets within GHOST_NEAR_MM of it are looked at."""
    half = c.half
    sample = window[::3, ::3].ravel()
    paper = _tenth(sample)
    if paper < 40:
        return None
    # this sheet's paper: the median of what is not print. A brightest tenth well above it is another sheet.
    typical = float(np.median(sample[sample >= (1.0 - PRINT_DARKNESS) * paper]))
    brighter = None
    if typical < (1.0 - OTHER_PAPER_STEP) * paper:
        limit = typical * (1.0 + OTHER_PAPER_STEP)
        paper = _tenth(sample[(sample >= (1.0 - PRINT_DARKNESS) * typical) & (sample <= limit)])
        brighter = window > limit
    d = 1.0 - window.astype(np.float32) * np.float32(1.0 / paper)
    dark = (d > PRINT_DARKNESS).view(np.uint8)
    # the square: the dark component at the centre
    _, labels = cv2.connectedComponents(dark, connectivity=4)
    label = labels[half, half]
    if label == 0:
        return None
    main = (labels == label).view(np.uint8)
    other = cv2.dilate(dark - main, c.other_kernel).view(bool)
    edge = _edge_width(d, half, c.band, c.max_edge)
    main = cv2.dilate(main, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * edge + 1, 2 * edge + 1)))
    valid = (main == 0) & ~other
    if brighter is not None:
        valid &= ~brighter
    bare = d[::2, ::2][valid[::2, ::2]]
    if len(bare) < 16:
        return None
    bare = np.partition(bare, (len(bare) // 4, len(bare) // 2, len(bare) * 3 // 4))
    d -= np.float32(bare[len(bare) // 2])  # darkness over the paper around
    noise = float(bare[len(bare) * 3 // 4] - bare[len(bare) // 4]) / 1.35  # sd of the paper's darkness
    v = valid.astype(np.float32)
    s = cv2.boxFilter(d * v, -1, (c.side, c.side), normalize=False, borderType=cv2.BORDER_CONSTANT)
    a = cv2.boxFilter(v, -1, (c.side, c.side), normalize=False, borderType=cv2.BORDER_CONSTANT)
    # a ghost at o against the same area at -o: the square, the paper level and the light cancel. Judged
    # as a matched filter's signal to noise (summed darkness over the root of the area): the best o then
    # covers all of a partly hidden ghost and little else.
    am, sm = a[::-1, ::-1], s[::-1, ::-1]
    ok = c.grid & (a >= c.min_area) & (am >= c.min_area)
    if near is not None:
        yy, xx = np.ogrid[-half:half + 1, -half:half + 1]
        ok &= np.hypot(xx - near[0], yy - near[1]) <= c.near
    if not ok.any():
        return None
    score = np.where(ok, (s - sm) / np.sqrt(np.maximum(a + am, 1.0)), -np.inf)
    gy, gx = divmod(int(np.argmax(score)), score.shape[1])
    contrast = s[gy, gx] / a[gy, gx] - sm[gy, gx] / am[gy, gx]
    return float(gx - half), float(gy - half), float(contrast), noise


def _tenth(values: np.ndarray) -> float:
    """The brightest tenth's level (the 90th percentile, by partition)."""
    return float(np.partition(values, len(values) * 9 // 10)[len(values) * 9 // 10])


def _edge_width(d: np.ndarray, half: int, band: int, max_edge: int) -> int:
    """How far (px) the square's blurred edge darkens the paper beyond where it reads as print: measured on
    strips across its four sides, and taken from the barer side of each opposite pair (a ghost darkens at
    most two adjacent sides, so one of each pair shows the bare edge)."""
    rows = d[half - band:half + band + 1]
    cols = d[:, half - band:half + band + 1]
    profiles = (rows[:, half::-1].mean(axis=0), rows[:, half:].mean(axis=0),
                cols[half::-1].mean(axis=1), cols[half:].mean(axis=1))
    widths = []
    for p in profiles:
        out = np.flatnonzero(p <= PRINT_DARKNESS)
        if not len(out):
            return max_edge
        tail = p[out[0]:out[0] + max_edge + 1]
        faded = np.flatnonzero(tail < EDGE_DARKNESS)
        widths.append(int(faded[0]) if len(faded) else max_edge)
    # one pixel more: where the edge falls within a pixel differs from side to side
    return max(min(widths[0], widths[1]), min(widths[2], widths[3])) + 1


def two_sheets(thumb: np.ndarray, found: Found) -> tuple[float, float] | None:
    """The lower sheet's offset (mm, image axes, at the sheet's centre) when the squares' ghosts say two
    sheets are stacked, else None."""
    ppm = found.mark_px * found.scale / MARK_MM
    misses = len(found.corners) - GHOST_MIN_CORNERS + 1
    ghosts = [g for g in corner_ghosts(thumb, found, misses) if g is not None and g.contrast >= _threshold(g.noise)]
    if len(ghosts) < GHOST_MIN_CORNERS:
        return None
    # The lower sheet moved as one piece: o_i = t + theta * J (p_i - centre), J the quarter turn, fitted by
    # least squares in (tx, ty, theta). All corners, else any GHOST_MIN_CORNERS of them: at one corner the
    # strongest ghost may be another piece of the lower sheet's print (its code beside the top-right square).
    for n in range(len(ghosts), GHOST_MIN_CORNERS - 1, -1):
        for subset in combinations(ghosts, n):
            fitted = _rigid(np.array([g.centre for g in subset]) / ppm, np.array([g.offset for g in subset]) / ppm)
            if fitted is not None:
                return fitted
    # No motion fits the strongest ghosts: a loose motion from any GHOST_MIN_CORNERS of them predicts each
    # seen corner's offset, and each corner is looked at again there; the corners whose ghost (at full
    # contrast) is found near its prediction must then fit one motion as tightly as above.
    return _second_look(thumb, found, ghosts, ppm)


def _second_look(thumb: np.ndarray, found: Found, ghosts: list[Ghost], ppm: float) -> tuple[float, float] | None:
    c = _constants(round(ppm * 8) / 8)
    size = 2 * c.half + 1
    h, w = thumb.shape
    seen = []
    for i, corner in enumerate(found.corners):
        cx, cy = float(corner[0] * found.scale), float(corner[1] * found.scale)
        if i != found.inferred and i not in found.cut and cx - c.half >= 0 and cy - c.half >= 0 \
                and cx + c.half + 1 <= w and cy + c.half + 1 <= h:
            seen.append((cx, cy))
    windows: dict[tuple[float, float], np.ndarray] = {}
    for subset in combinations(ghosts, GHOST_MIN_CORNERS):
        p, o = np.array([g.centre for g in subset]) / ppm, np.array([g.offset for g in subset]) / ppm
        motion = _motion(p, o, GHOST_LOOSE_FIT_MM)
        if motion is None:
            continue
        centres, offsets = [], []
        for q in seen:
            predicted = _predict(motion, p.mean(axis=0), np.array(q) / ppm) * ppm
            if q not in windows:
                windows[q] = cv2.getRectSubPix(thumb, (size, size), q)
            ghost = _ghost(windows[q], c, near=(float(predicted[0]), float(predicted[1])))
            if ghost is not None and ghost[2] >= _threshold(ghost[3]):
                centres.append(q)
                offsets.append(ghost[:2])
        if len(centres) >= GHOST_MIN_CORNERS:
            fitted = _rigid(np.array(centres) / ppm, np.array(offsets) / ppm)
            if fitted is not None:
                return fitted
    return None


def _motion(p: np.ndarray, o: np.ndarray, max_residual: float) -> np.ndarray | None:
    """(tx, ty, theta): one shift (mm, at the points' centre) and turn explaining offsets o at points p (mm),
    when its RMS residual is within max_residual and the turn within GHOST_MAX_TURN_DEG."""
    r = p - p.mean(axis=0)
    A = np.zeros((2 * len(p), 3))
    A[0::2, 0], A[1::2, 1] = 1.0, 1.0
    A[0::2, 2], A[1::2, 2] = -r[:, 1], r[:, 0]
    sol, *_ = np.linalg.lstsq(A, o.ravel(), rcond=None)
    residual = float(np.sqrt(np.mean((A @ sol - o.ravel()) ** 2) * 2))
    if residual > max_residual or abs(np.degrees(sol[2])) > GHOST_MAX_TURN_DEG:
        return None
    return sol


def _predict(motion: np.ndarray, centre: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The offset (mm) the motion gives at point q (mm)."""
    r = q - centre
    return np.array([motion[0] - motion[2] * r[1], motion[1] + motion[2] * r[0]])


def _rigid(p: np.ndarray, o: np.ndarray) -> tuple[float, float] | None:
    """The shift (mm) at the corners' centre when one shift and turn explain offsets o at points p (mm)."""
    motion = _motion(p, o, GHOST_FIT_MM)
    return None if motion is None else (float(motion[0]), float(motion[1]))

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
within GHOST_FIT_MM.

What it cannot see: sheets in register to about half a millimetre (the ghost hides under the square) -
the feeder's double-sheet sensor is for those; and offsets over GHOST_MAX_OFFSET_MM, where the lower
sheet sticks out well beyond the top one and the outline check (corner gaps, print scale) refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from omr.layout import MARK_MM
from omr.registration import Found

GHOST_MAX_OFFSET_MM = 7.5  # searched each way from the top sheet's square
GHOST_MIN_CONTRAST = 0.035  # mean darkening of the ghost's visible part against its mirror image
GHOST_MIN_AREA_MM2 = 1.5  # visible part of the ghost's square (and of its mirror) to judge it at all
GHOST_MIN_OFFSET_MM = 0.75  # nearer than this the "ghost" is the square's own edge
GHOST_MIN_CORNERS = 3
GHOST_FIT_MM = 1.0  # RMS residual of the rigid motion over the corners' offsets
GHOST_MAX_TURN_DEG = 3.0
PRINT_DARKNESS = 0.30  # darker than this is print (or the bed), not a ghost: ghosts are 5-20 %
PRINT_HALO_MM = 0.75  # around other print, its blurred edge is left out too
SQUARE_EDGE_MAX_MM = 1.5  # the square's own blurred edge is measured out to this distance
EDGE_DARKNESS = 0.012  # darkness of the paper where the edge has faded out


@dataclass(frozen=True)
class Ghost:
    """A corner's best ghost: offset (thumb px, image axes) from the square, contrast, and where."""

    offset: tuple[float, float]
    contrast: float
    centre: tuple[float, float]  # the top sheet's square, thumb px


def corner_ghosts(thumb: np.ndarray, found: Found) -> list[Ghost | None]:
    """Per corner square that was seen (not inferred), the strongest ghost; None where none can be judged."""
    ppm = found.mark_px * found.scale / MARK_MM  # thumb px per mm
    side = max(3, int(round(MARK_MM * ppm)))
    reach = int(round(GHOST_MAX_OFFSET_MM * ppm))
    half = reach + side // 2 + 2
    size = 2 * half + 1
    grid = _offset_grid(half, reach, max(1, int(np.ceil(GHOST_MIN_OFFSET_MM * ppm))))
    halo = max(1, int(round(PRINT_HALO_MM * ppm)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * halo + 1, 2 * halo + 1))
    min_area = GHOST_MIN_AREA_MM2 * ppm * ppm
    max_edge = max(2, int(round(SQUARE_EDGE_MAX_MM * ppm)))
    out: list[Ghost | None] = []
    h, w = thumb.shape
    for i, c in enumerate(found.corners):
        cx, cy = float(c[0] * found.scale), float(c[1] * found.scale)
        if i == found.inferred or cx - half < 0 or cy - half < 0 or cx + half + 1 > w or cy + half + 1 > h:
            out.append(None)  # inferred, or the window runs off the frame (a cropped corner)
            continue
        # centred on the square to a fraction of a pixel, so that the square is its own mirror image
        win = cv2.getRectSubPix(thumb, (size, size), (cx, cy)).astype(np.float32)
        paper = float(np.partition(win[::3, ::3].ravel(), -len(win[::3, ::3].ravel()) // 10)[-len(win[::3, ::3].ravel()) // 10])
        if paper < 40:
            out.append(None)
            continue
        d = 1.0 - win * (1.0 / paper)
        dark = (d > PRINT_DARKNESS).view(np.uint8)
        # the square: the dark component at the centre
        _, labels = cv2.connectedComponents(dark, connectivity=8)
        label = labels[half, half]
        if label == 0:
            out.append(None)
            continue
        main = labels == label
        other = cv2.dilate((dark.astype(bool) & ~main).view(np.uint8), kernel).astype(bool)
        # the square's own blurred edge: as far out as all four of its sides are darkened
        dist = cv2.distanceTransform((~main).view(np.uint8), cv2.DIST_L2, 3)
        edge = _edge_width(d, dist, other, half, max_edge)
        valid = ((dist > edge) & ~other).astype(np.float32)
        bare = d[::2, ::2][valid[::2, ::2] > 0]
        if len(bare) < 16:
            out.append(None)
            continue
        d -= float(np.median(bare))  # darkness over the paper around (one sheet's or two)
        s = cv2.boxFilter(d * valid, -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
        a = cv2.boxFilter(valid, -1, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
        # a ghost at o against the same area at -o: the square, the paper level and the light cancel. Judged
        # as a matched filter's signal to noise (summed darkness over the root of the area): the best o then
        # covers all of a partly hidden ghost and little else.
        am = a[::-1, ::-1]
        score = np.where(grid & (a >= min_area) & (am >= min_area), (s - s[::-1, ::-1]) / np.sqrt(a + am), -np.inf)
        j = int(np.argmax(score))
        gy, gx = divmod(j, size)
        if not np.isfinite(score[gy, gx]):
            out.append(None)
            continue
        contrast = s[gy, gx] / a[gy, gx] - s[-1 - gy, -1 - gx] / a[-1 - gy, -1 - gx]
        out.append(Ghost((float(gx - half), float(gy - half)), float(contrast), (cx, cy)))
    return out


def _edge_width(d: np.ndarray, dist: np.ndarray, other: np.ndarray, half: int, max_edge: int) -> int:
    """Distance (px) beyond which the square's blurred edge no longer darkens the paper: the first ring
    around it whose darkness is under EDGE_DARKNESS on at least one pair of opposite sides (a ghost darkens at
    most two adjacent sides, so one of each opposite pair shows the bare edge)."""
    yy, xx = np.ogrid[-half:half + 1, -half:half + 1]
    side = np.where(np.abs(xx) >= np.abs(yy), np.where(xx > 0, 1, 3), np.where(yy > 0, 2, 0))
    ring = np.ceil(dist).astype(np.int32)
    use = (ring >= 1) & (ring <= max_edge) & ~other
    key = (ring[use] - 1) * 4 + side[use]
    n = np.bincount(key, minlength=4 * max_edge).reshape(max_edge, 4)
    total = np.bincount(key, weights=d[use], minlength=4 * max_edge).reshape(max_edge, 4)
    m = np.where(n > 0, total / np.maximum(n, 1), 0.0)
    bare = np.maximum(np.minimum(m[:, 0], m[:, 2]), np.minimum(m[:, 1], m[:, 3]))
    below = np.flatnonzero(bare < EDGE_DARKNESS)
    return int(below[0]) if len(below) else max_edge


def _offset_grid(half: int, reach: int, nearest: int) -> np.ndarray:
    yy, xx = np.ogrid[-half:half + 1, -half:half + 1]
    r = np.hypot(xx, yy)
    return (r <= reach) & (np.maximum(np.abs(xx), np.abs(yy)) >= nearest)


def two_sheets(thumb: np.ndarray, found: Found) -> tuple[float, float] | None:
    """The lower sheet's offset (mm, image axes, at the sheet's centre) when the squares' ghosts say two
    sheets are stacked, else None."""
    ppm = found.mark_px * found.scale / MARK_MM
    ghosts = [g for g in corner_ghosts(thumb, found) if g is not None and g.contrast >= GHOST_MIN_CONTRAST]
    if len(ghosts) < GHOST_MIN_CORNERS:
        return None
    # one rigid motion: o_i = t + theta * J (p_i - centre), J the quarter turn; least squares in (tx, ty, theta)
    p = np.array([g.centre for g in ghosts]) / ppm
    o = np.array([g.offset for g in ghosts]) / ppm
    r = p - p.mean(axis=0)
    A = np.zeros((2 * len(ghosts), 3))
    A[0::2, 0], A[1::2, 1] = 1.0, 1.0
    A[0::2, 2], A[1::2, 2] = -r[:, 1], r[:, 0]
    sol, *_ = np.linalg.lstsq(A, o.ravel(), rcond=None)
    residual = float(np.sqrt(np.mean((A @ sol - o.ravel()) ** 2) * 2))
    if residual > GHOST_FIT_MM or abs(np.degrees(sol[2])) > GHOST_MAX_TURN_DEG:
        return None
    return float(sol[0]), float(sol[1])

"""The station's round stamp over boxes, found by its ring of lettering.

The committee stamps every ballot (Art. 21(3)) in the stamp zone; the 2024 pilot's lesson is that a
hurried member sometimes puts it over a box. Its lettering and rings then lie in boxes like a voter's
strokes, and a faint, unevenly inked impression leaves too little ink around one box to be told from
a voter's mark there (omr.interpret._surroundings looks at a few mm around the box only).

The stamp is round and of known size: a band 4 mm wide (rim, lettering, inner ring) on a 24 mm disc.
Averaged along its whole ~65 mm, even an impression whose ink barely shows stands well above the
paper's noise, while a voter's mark, a fold or a printed rule crosses the band in a few places at
most. Around a box read as inked, on the thumbnail (~FINE_PPM px/mm) taken into layout space, with
the ballot's own print (the style's reference), every box and its marks' overrun, and what lies off
the sheet or out of the frame weighted out:
  1. coarse, at COARSE_PPM: the band's mean darkness minus the paper's just outside it, for every
     centre from which the disc could reach the box (a normalised correlation, 4 small filters);
  2. fine, at the best centre, at FINE_PPM: the same contrast in 16 sectors. The stamp must show in
     most of the sectors that can be seen, so that one line across the circle is not a stamp.
The caller (omr.interpret._under_stamp) puts every inked box under the disc to the committee.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from omr.layout import BallotLayout, Rect
from omr.reference import FINE_PPM, StyleReference, canvas_to_layout

# The CEC's station stamp: one round die for every station, 24 mm across: a rim line 0.3 mm inside the
# edge, lettering around it, an inner ring 3.6 mm in. A physical constant of the equipment, like the
# paper size. The stamp's band - rim, lettering, inner ring - is what is looked for.
STAMP_DIAMETER_MM = 24.0
BAND_MM = (-4.0, 0.0)  # radii (from the edge) of the stamp's inked band
OUTSIDE_MM = (0.9, 2.4)  # the paper just outside the stamp: the band's background
BOX_MASK_MM = 2.5  # a box and its marks' overrun are a voter's, not the stamp's
COARSE_PPM = 1.0  # the search over centres: the band is 4 px wide here
SECTORS = 16
SEEN_SHARE = 0.25  # a sector is seen when this share of its band is off print, boxes and the sheet's edge
MIN_SECTORS_SEEN = 4
SECTOR_CONTRAST = 0.012  # band darkness over its background in a sector
SECTORS_INKED = 0.6  # share of the seen sectors that must show the stamp
COARSE_CONTRAST = 0.03  # the band's contrast at the best centre: below it, no stamp (L1 sheets without one:
# <= 0.022 over 200 mayor ballots; stamps over boxes at L2: >= 0.048)
BEYOND_MM = 3.0  # centres searched up to R + this from the box: a stamp just beside it is found where it is
TOUCH_MM = 0.5  # a box this close to the disc counts as under it (the rim's ink bleeds)


@dataclass(frozen=True)
class Stamp:
    centre_mm: tuple[float, float]  # layout mm
    radius_mm: float
    contrast: float  # mean darkness of the band over the paper outside it
    sectors_inked: int
    sectors_seen: int

    def touches(self, rect: Rect) -> bool:
        """Does the stamp's disc reach into this rectangle (layout mm)?"""
        cx, cy = self.centre_mm
        dx = max(rect.x - cx, 0.0, cx - (rect.x + rect.w))
        dy = max(rect.y - cy, 0.0, cy - (rect.y + rect.h))
        return float(np.hypot(dx, dy)) < self.radius_mm + TOUCH_MM


def _radii(k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    R = STAMP_DIAMETER_MM / 2
    reach = int(np.ceil((R + OUTSIDE_MM[1]) * k)) + 1
    yy, xx = np.mgrid[-reach:reach + 1, -reach:reach + 1].astype(np.float32)
    r = np.hypot(xx, yy) / k
    band = (r >= R + BAND_MM[0]) & (r <= R + BAND_MM[1])
    out = (r >= R + OUTSIDE_MM[0]) & (r <= R + OUTSIDE_MM[1])
    sector = ((np.arctan2(yy, xx) + np.pi) / (2 * np.pi) * SECTORS).astype(np.int64) % SECTORS
    return band, out, sector, reach


_COARSE = _radii(COARSE_PPM)
_FINE = _radii(FINE_PPM)


def find_stamp(thumb: np.ndarray, H: np.ndarray, layout: BallotLayout, index: int, paper_level: float,
               reference: StyleReference | None) -> Stamp | None:
    """The stamp whose disc touches box `index`, if there is one (see the module's text). `thumb` is the
    ink image (darkest channel) at about FINE_PPM, `H` maps layout mm to its pixels."""
    band_k, out_k = _COARSE_K
    reach = _COARSE[3]
    k = COARSE_PPM
    R = STAMP_DIAMETER_MM / 2
    b = layout.boxes[index].rect
    # window in layout mm: every centre near enough to the box, and the kernel's reach around it
    grow = R + BEYOND_MM + reach / k
    x0, y0 = b.x - grow, b.y - grow
    size = (int(round((b.w + 2 * grow) * k)), int(round((b.h + 2 * grow) * k)))
    dv, v = _window(thumb, H, layout, x0, y0, size, k, paper_level, reference)
    both = cv2.merge([v, dv])
    band_n, band_s = cv2.split(cv2.filter2D(both, -1, band_k, borderType=cv2.BORDER_CONSTANT))
    out_n, out_s = cv2.split(cv2.filter2D(both, -1, out_k, borderType=cv2.BORDER_CONSTANT))
    enough = (band_n >= SEEN_SHARE * _COARSE_SUMS[0]) & (out_n >= SEEN_SHARE * _COARSE_SUMS[1])
    contrast = np.where(enough, band_s / np.maximum(band_n, 1e-6) - out_s / np.maximum(out_n, 1e-6), -1.0)
    # only centres from which the disc reaches the box or nearly
    cy_ = (np.arange(size[1]) + 0.5) / k + y0
    cx_ = (np.arange(size[0]) + 0.5) / k + x0
    ddx = np.maximum(np.maximum(b.x - cx_, 0.0), cx_ - (b.x + b.w))
    ddy = np.maximum(np.maximum(b.y - cy_, 0.0), cy_ - (b.y + b.h))
    contrast[np.hypot(ddx[None, :], ddy[:, None]) >= R + BEYOND_MM] = -1.0
    iy, ix = np.unravel_index(int(np.argmax(contrast)), contrast.shape)
    best = float(contrast[iy, ix])
    if best < COARSE_CONTRAST:
        return None
    centre = (float(cx_[ix]), float(cy_[iy]))
    inked, seen = _sectors(thumb, H, layout, centre, paper_level, reference)
    if seen < MIN_SECTORS_SEEN or inked < SECTORS_INKED * seen:
        return None
    return Stamp(centre, R, round(best, 4), inked, seen)


_COARSE_K = (_COARSE[0].astype(np.float32), _COARSE[1].astype(np.float32))
_COARSE_SUMS = (float(_COARSE[0].sum()), float(_COARSE[1].sum()))


def _window(thumb: np.ndarray, H: np.ndarray, layout: BallotLayout, x0: float, y0: float, size: tuple[int, int],
            k: float, paper_level: float, reference: StyleReference | None) -> tuple[np.ndarray, np.ndarray]:
    """(darkness x weight, weight) of a layout window of `size` px at k px/mm from (x0, y0) mm: the ink
    darkness 0..1 seen at `wk` = min(FINE_PPM, 2k) px/mm where it tells something about a stamp (weight
    1: not the ballot's print, not a box and its marks' overrun, on the sheet and in the frame), pooled
    to k px/mm (weights become the share of each pixel that tells)."""
    wk = min(FINE_PPM, 2 * k)
    f = int(round(wk / k))
    fsize = (size[0] * f, size[1] * f)
    M = H @ canvas_to_layout(wk, x0, y0)
    ink = cv2.warpPerspective(thumb, M, fsize, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    dark = np.clip(1.0 - ink.astype(np.float32) * np.float32(1.0 / max(paper_level, 1.0)), 0.0, 1.0)
    fx0, fy0 = int(round(x0 * wk)), int(round(y0 * wk))
    valid = _tells(layout, reference, wk, fx0, fy0, fsize)
    # the part of the window on the sheet, in the frame?
    cx0, cy0 = max(0.0, -fx0), max(0.0, -fy0)
    cx1 = min(float(fsize[0]), layout.width_mm * wk - fx0)
    cy1 = min(float(fsize[1]), layout.height_mm * wk - fy0)
    corners = cv2.perspectiveTransform(np.array([[[cx0, cy0], [cx1, cy0], [cx0, cy1], [cx1, cy1]]], np.float64), M)[0]
    h, w = thumb.shape[:2]
    if corners.min() < 0 or corners[:, 0].max() >= w or corners[:, 1].max() >= h:
        # the window runs out of the frame: only what the camera saw tells
        seen = cv2.warpPerspective(np.full((h, w), 1, np.uint8), M, fsize, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        valid = valid & seen
    v = valid.astype(np.float32)
    dv = dark * v
    if f > 1:
        v = cv2.resize(v, size, interpolation=cv2.INTER_AREA)
        dv = cv2.resize(dv, size, interpolation=cv2.INTER_AREA)
    return dv, v


_TELLS: dict[tuple[int, int, float], tuple[BallotLayout, StyleReference | None, np.ndarray]] = {}


def _tells(layout: BallotLayout, reference: StyleReference | None, ppm: float, fx0: int, fy0: int,
           fsize: tuple[int, int]) -> np.ndarray:
    """The window (`ppm` px/mm, from (fx0, fy0) px) of the layout's map of where ink can only be foreign:
    off the print (the style's reference, +-0.25 mm for the fit's residual and blur), off every box and
    its marks' overrun, on the sheet. Made once per layout, reference and resolution: at FINE_PPM, and
    reduced from it (a pixel tells only if all it covers does)."""
    m = _tells_map(layout, reference)
    if ppm != FINE_PPM:
        key = (id(layout), id(reference), ppm)
        hit = _TELLS.get(key)
        if hit is None or hit[0] is not layout or hit[1] is not reference:
            f = int(round(FINE_PPM / ppm))
            h, w = m.shape[0] // f, m.shape[1] // f
            hit = _TELLS[key] = (layout, reference, m[:h * f, :w * f].reshape(h, f, w, f).min(axis=(1, 3)))
        m = hit[2]
    out = np.zeros(fsize[::-1], np.uint8)
    sy0, sx0 = max(0, fy0), max(0, fx0)
    sy1, sx1 = min(m.shape[0], fy0 + fsize[1]), min(m.shape[1], fx0 + fsize[0])
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - fy0:sy1 - fy0, sx0 - fx0:sx1 - fx0] = m[sy0:sy1, sx0:sx1]
    return out


def _tells_map(layout: BallotLayout, reference: StyleReference | None) -> np.ndarray:
    """The whole map at FINE_PPM (see _tells), made once per layout and reference."""
    key = (id(layout), id(reference), FINE_PPM)
    hit = _TELLS.get(key)
    if hit is None or hit[0] is not layout or hit[1] is not reference:
        W, Hh = int(round(layout.width_mm * FINE_PPM)), int(round(layout.height_mm * FINE_PPM))
        m = np.ones((Hh, W), np.uint8)
        if reference is not None and reference.fine.shape[0] > 0:
            ref = np.zeros((Hh, W), np.uint8)
            rh, rw = min(Hh, reference.fine.shape[0]), min(W, reference.fine.shape[1])
            ref[:rh, :rw] = reference.fine[:rh, :rw]
            m[cv2.dilate(ref, np.ones((3, 3), np.uint8)) > 0] = 0
        else:
            for t in layout.texts:
                _clear(m, t.rect, 0.5)
        for bx in layout.boxes:
            _clear(m, bx.rect, BOX_MASK_MM)
        # printed areas a light colour keeps out of the reference (the security band), and the stamp
        # zone: a stamp where it belongs is nobody's concern
        for r in (*layout.registration, layout.code):
            _clear(m, r, 2.0)
        for r in (layout.band, layout.note, layout.stamp):
            _clear(m, r, 1.0)
        e = int(round(1.0 * FINE_PPM))  # the sheet's edge
        m[:e, :] = m[-e:, :] = 0
        m[:, :e] = m[:, -e:] = 0
        if len(_TELLS) > 12:
            _TELLS.clear()
        hit = _TELLS[key] = (layout, reference, m)
    return hit[2]


def _clear(m: np.ndarray, r: Rect, grow: float) -> None:
    k = FINE_PPM
    m[max(0, int((r.y - grow) * k)):max(0, int(np.ceil((r.y + r.h + grow) * k))),
      max(0, int((r.x - grow) * k)):max(0, int(np.ceil((r.x + r.w + grow) * k)))] = 0


def _sectors(thumb: np.ndarray, H: np.ndarray, layout: BallotLayout, centre: tuple[float, float],
             paper_level: float, reference: StyleReference | None) -> tuple[int, int]:
    """(sectors showing the stamp's band, sectors seen) around a centre (layout mm), at FINE_PPM."""
    band, out, sector, reach = _FINE
    k = FINE_PPM
    side = 2 * reach + 1
    x0, y0 = centre[0] - (reach + 0.5) / k, centre[1] - (reach + 0.5) / k
    dv, v = _window(thumb, H, layout, x0, y0, (side, side), k, paper_level, reference)
    band_n = np.bincount(sector[band], weights=v[band], minlength=SECTORS)
    out_n = np.bincount(sector[out], weights=v[out], minlength=SECTORS)
    band_s = np.bincount(sector[band], weights=dv[band], minlength=SECTORS)
    out_s = np.bincount(sector[out], weights=dv[out], minlength=SECTORS)
    seen = (band_n >= SEEN_SHARE * _FINE_FULL[0]) & (out_n >= SEEN_SHARE * _FINE_FULL[1])
    c = band_s / np.maximum(band_n, 1) - out_s / np.maximum(out_n, 1)
    return int((seen & (c >= SECTOR_CONTRAST)).sum()), int(seen.sum())


_FINE_FULL = (np.bincount(_FINE[2][_FINE[0]], minlength=SECTORS), np.bincount(_FINE[2][_FINE[1]], minlength=SECTORS))

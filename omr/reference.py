"""The printed ballot as a reference, and ink found where the printed ballot has none.

Election Law 5.17: a ballot with names written on it, or signs that identify the voter, may be invalid.
The box cannot judge that, but it sees ink where the printed ballot has none, outside the boxes, and
flags the ballot for the committee with the place (mm from the top-left corner of the layout).

A `StyleReference` is the printed ballot's ink at REF_PPM px/mm. It is made from a rendered ballot
(firmware.cec.ballots.reference_for renders it once; rendering needs fonts from disk, which omr must not
touch). Without a reference, the layout's blank areas (between columns, margins, below the last row)
are checked and printed text areas are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from omr.layout import BallotLayout

REF_PPM = 2.0  # px/mm of the comparison canvas: 0.5 mm cells, finer than any handwriting stroke
FINE_PPM = 4.0  # px/mm of the reference used around a box (glyphs and the gaps between them)
PRINT_TOLERANCE_MM = 1.5  # printed ink is allowed this far from where the reference has it (registration)
BOX_MARGIN_MM = 3.0  # marks overrun their box: ink this close to a box is a mark, not writing
EDGE_MARGIN_MM = 4.0  # the sheet's edge, shadows and the feeder bed
STAMP_MARGIN_MM = 18.0  # the committee stamps and signs next to the stamp zone (Art. 21(3))
MIN_STRAY_MM2 = 3.0  # smaller specks are dust, toner or paper fibre
MIN_STRAY_LENGTH_MM = 5.0
INK_DARKNESS = 0.6  # of the local paper level: firm ink only (pencil traces and smudges are not writing)


@dataclass(frozen=True)
class StyleReference:
    style: str
    ink: np.ndarray  # bool, layout height x width at REF_PPM: printed ink, dilated by PRINT_TOLERANCE_MM
    fine: np.ndarray  # uint8 0/255, printed ink at FINE_PPM, undilated: what a box's surroundings should show


def build_reference(style: str, printed_rgb: np.ndarray, dpi: float) -> StyleReference:
    """The reference of a style from its clean printed rendering (any dpi >= 100)."""
    ink = printed_rgb if printed_rgb.ndim == 2 else printed_rgb.min(axis=2)
    mask = (ink < 160).astype(np.uint8) * 255
    w = round(mask.shape[1] * REF_PPM / (dpi / 25.4))
    h = round(mask.shape[0] * REF_PPM / (dpi / 25.4))
    small = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA) > 0  # any ink in a cell counts
    r = int(round(PRINT_TOLERANCE_MM * REF_PPM))
    grown = cv2.dilate(small.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    fw = round(mask.shape[1] * FINE_PPM / (dpi / 25.4))
    fh = round(mask.shape[0] * FINE_PPM / (dpi / 25.4))
    fine = ((cv2.resize(mask, (fw, fh), interpolation=cv2.INTER_AREA) > 48) * 255).astype(np.uint8)
    return StyleReference(style, grown.astype(bool), fine)


def canvas_to_layout(ppm: float, x0_mm: float = 0.0, y0_mm: float = 0.0) -> np.ndarray:
    """3 x 3: a canvas of layout space at `ppm` px/mm whose pixel (0, 0) covers the square mm from (x0, y0)
    -> layout mm. Pixel i covers [x0 + i / ppm, x0 + (i + 1) / ppm): its centre, where OpenCV samples it,
    is at x0 + (i + 0.5) / ppm. (The reference's cells are made so, by an area resize.)"""
    return np.array([[1 / ppm, 0, x0_mm + 0.5 / ppm], [0, 1 / ppm, y0_mm + 0.5 / ppm], [0, 0, 1]])


def image_to_thumb(scale: float) -> np.ndarray:
    """3 x 3: image px -> thumbnail px, for a thumbnail made by an area resize of `scale` (1/d, d whole)
    thumbnail px per image px. Thumbnail pixel j averages image pixels jd .. jd + d - 1: its centre is image
    x = jd + (d - 1) / 2, not jd. Scaling alone puts everything read off the thumbnail (d - 1) / 2 image px
    out along the image's axes - in layout space one way on a sheet fed upright and the other way on a
    sheet fed turned by 180 degrees (issue 13)."""
    t = (scale - 1.0) / 2
    return np.array([[scale, 0, t], [0, scale, t], [0, 0, 1]])


# Per paper level p, the smallest grey that is not ink: an integer x < INK_DARKNESS * p (float32, as the
# level is) exactly when x < ceil(INK_DARKNESS * p). A table lookup instead of two float images.
_INK_BELOW = np.ceil(np.float32(INK_DARKNESS) * np.arange(256, dtype=np.float32)).astype(np.uint8)


def outside_ink(thumb: np.ndarray, paper: np.ndarray, homography: np.ndarray, thumb_scale: float,
                layout: BallotLayout, reference: StyleReference | None, sheet: np.ndarray | None = None,
                edge_px: int = 0) -> list[tuple[float, float]]:
    """Centres (layout mm) of ink blobs outside the boxes where the printed ballot has no ink. With `sheet`
    (the paper's outline, thumb px) only ink on the paper, `edge_px` in from its blurred edge, counts: where
    the print runs to the paper's edge (a long ballot printed a little large) the layout's margin beyond it
    is the feeder bed, not ink."""
    W, H = int(round(layout.width_mm * REF_PPM)), int(round(layout.height_mm * REF_PPM))
    ink = cv2.compare(thumb, cv2.LUT(paper, _INK_BELOW), cv2.CMP_LT)  # thumb < INK_DARKNESS * paper: 255
    if sheet is not None:
        on_paper = np.zeros_like(ink)
        cv2.fillConvexPoly(on_paper, np.round(sheet * 16).astype(np.int32), 255, shift=4)
        if edge_px > 0:
            on_paper = cv2.erode(on_paper, np.ones((2 * edge_px + 1, 2 * edge_px + 1), np.uint8))
        ink = cv2.bitwise_and(ink, on_paper)
    # canvas (REF_PPM px/mm, layout space) -> thumbnail, pixel centres to pixel centres
    M = image_to_thumb(thumb_scale) @ homography @ canvas_to_layout(REF_PPM)
    seen = cv2.warpPerspective(ink, M, (W, H), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # seen > 96 where writing is not allowed (255 there, as uint8: the components are the same)
    stray = cv2.bitwise_and(cv2.compare(seen, 96, cv2.CMP_GT), _not_allowed(layout, reference, (H, W)))
    if not cv2.countNonZero(stray):
        return []  # the common case, a ballot with no writing on it: no components to label
    n, _, stats, centroids = cv2.connectedComponentsWithStats(stray, connectivity=8)
    out = []
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if area >= MIN_STRAY_MM2 * REF_PPM ** 2 or max(bw, bh) >= MIN_STRAY_LENGTH_MM * REF_PPM:
            out.append((float(centroids[i][0] / REF_PPM), float(centroids[i][1] / REF_PPM)))
    return sorted(out, key=lambda p: (p[1], p[0]))


_NOT_ALLOWED: dict[tuple[int, int], tuple[BallotLayout, StyleReference | None, np.ndarray]] = {}


def _not_allowed(layout: BallotLayout, reference: StyleReference | None, shape: tuple[int, int]) -> np.ndarray:
    """uint8 of `shape` (the canvas), 255 where ink is not allowed: not near a box, square, the code, band,
    stamp zone or note, not at the sheet's edge, not on the print (made once per layout and reference)."""
    key = (id(layout), id(reference))
    hit = _NOT_ALLOWED.get(key)
    if hit is not None and hit[0] is layout and hit[1] is reference:
        return hit[2]
    mask = np.zeros(shape, np.uint8)

    def fill(x: float, y: float, w: float, h: float, grow: float) -> None:
        cv2.rectangle(mask, (int((x - grow) * REF_PPM), int((y - grow) * REF_PPM)),
                      (int((x + w + grow) * REF_PPM), int((y + h + grow) * REF_PPM)), 1, -1)

    for b in layout.boxes:
        fill(b.rect.x, b.rect.y, b.rect.w, b.rect.h, BOX_MARGIN_MM)
    for r in layout.registration:
        fill(r.x, r.y, r.w, r.h, 2.0)
    fill(layout.code.x, layout.code.y, layout.code.w, layout.code.h, 2.0)
    fill(layout.band.x, layout.band.y, layout.band.w, layout.band.h, 1.5)
    s = layout.stamp
    fill(s.x, s.y, s.w, s.h, STAMP_MARGIN_MM)
    fill(layout.note.x, layout.note.y, layout.note.w, layout.note.h, 1.0)
    e = int(EDGE_MARGIN_MM * REF_PPM)
    mask[:e, :] = mask[-e:, :] = 1
    mask[:, :e] = mask[:, -e:] = 1
    if reference is not None and reference.ink.shape == shape:
        mask |= reference.ink.astype(np.uint8)
    else:
        for t in layout.texts:
            fill(t.rect.x, t.rect.y, t.rect.w, t.rect.h, 1.0)
    if len(_NOT_ALLOWED) > 16:
        _NOT_ALLOWED.clear()
    _NOT_ALLOWED[key] = (layout, reference, np.where(mask > 0, 0, 255).astype(np.uint8))
    return _NOT_ALLOWED[key][2]

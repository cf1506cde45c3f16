"""The ballot camera's view of a sheet held in the feeder: mild capture variation.

Rotation (the sheet is never perfectly square in the rollers), a slight scale error, sensor noise and a
little blur, on the dark feeder bed. Seeded; the harsh distortion levels (L1-L3 of BENCHMARKS.md) are
the OMR corpus generator's business.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CaptureProfile:
    max_rotation_deg: float = 2.0
    max_scale_error: float = 0.005
    max_shift_mm: float = 3.0
    noise_sigma: float = 2.0
    blur_sigma_px: float = 0.5
    bed_grey: int = 55  # the feeder bed behind the sheet
    bed_margin_mm: float = 8.0
    upside_down_rate: float = 0.0  # share of sheets fed rotated by 180 degrees


MILD = CaptureProfile()


Box = tuple[int, int, int, int]  # x, y, w, h in sheet px


def capture(sheet: np.ndarray, dpi: float, rng: random.Random, profile: CaptureProfile = MILD, *,
            blurred: bool = False, colour: Iterable[Box] | None = None) -> np.ndarray:
    """An RGB capture of the printed-and-marked `sheet` (RGB, rendered at the camera's dpi). `blurred`: the
    sheet already went through the lens (`lens_blur`), so only the pose and the sensor noise are added.
    `colour`: when known, the boxes outside which the (blurred) sheet is grey, R = G = B (see `colour_boxes`):
    the pose is then computed on one plane and only those boxes in three, a third of the work and the same
    bytes (OpenCV's warp of a grey plane is its warp of each of three equal planes, and a warp into a part
    of the frame is that part of the whole frame's warp: `tests/test_capture_twin.py`)."""
    k = dpi / 25.4
    h, w = sheet.shape[:2]
    margin = round(profile.bed_margin_mm * k)
    out_w, out_h = w + 2 * margin, h + 2 * margin
    angle = rng.uniform(-profile.max_rotation_deg, profile.max_rotation_deg)
    if rng.random() < profile.upside_down_rate:
        angle += 180.0
    scale = 1.0 + rng.uniform(-profile.max_scale_error, profile.max_scale_error)
    shift = (rng.uniform(-1, 1) * profile.max_shift_mm * k, rng.uniform(-1, 1) * profile.max_shift_mm * k)
    M = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    M[0, 2] += margin + shift[0]
    M[1, 2] += margin + shift[1]
    bed = (profile.bed_grey,) * 3
    if colour is not None and sheet.ndim == 3 and sheet.shape[2] == 3 and (blurred or profile.blur_sigma_px <= 0):
        return _pose_mostly_grey(sheet, M, (out_w, out_h), bed, colour, profile.noise_sigma, rng)
    img = cv2.warpAffine(sheet, M, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=bed)
    if profile.blur_sigma_px > 0 and not blurred:
        img = cv2.GaussianBlur(img, (0, 0), profile.blur_sigma_px)
    if profile.noise_sigma > 0:
        img = _add_noise(img, profile.noise_sigma, rng)
    return img


def _pose_mostly_grey(sheet: np.ndarray, M: np.ndarray, size: tuple[int, int], bed: tuple[int, int, int],
                      colour: Iterable[Box], noise_sigma: float, rng: random.Random) -> np.ndarray:
    """cv2.warpAffine(sheet, M, size) (INTER_LINEAR, constant `bed` border) of a sheet that is grey outside
    the `colour` boxes, with `_add_noise(., noise_sigma, rng)`: the green plane posed and its noise added
    (the noise is the same on every plane), spread to three planes, then each box's part of the frame posed
    in colour with its part of the noise. A part reaches every frame pixel whose 2 x 2 source neighbourhood
    touches its box."""
    out_w, out_h = size
    plane = cv2.warpAffine(cv2.extractChannel(sheet, 1), M, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=bed[1])
    noise = _noise_window(plane.shape, noise_sigma, rng) if noise_sigma > 0 else None
    if noise is not None:
        cv2.add(plane, noise[0], dst=plane)
        cv2.subtract(plane, noise[1], dst=plane)
    img = cv2.cvtColor(plane, cv2.COLOR_GRAY2RGB)
    for x, y, w, h in colour:
        corners = np.array([[x - 2, y - 2, 1], [x + w + 2, y - 2, 1], [x + w + 2, y + h + 2, 1], [x - 2, y + h + 2, 1]],
                           np.float64) @ M.T
        x0, y0 = max(0, int(np.floor(corners[:, 0].min())) - 1), max(0, int(np.floor(corners[:, 1].min())) - 1)
        x1, y1 = min(out_w, int(np.ceil(corners[:, 0].max())) + 2), min(out_h, int(np.ceil(corners[:, 1].max())) + 2)
        if x1 <= x0 or y1 <= y0:
            continue
        part = M.copy()
        part[0, 2] -= x0
        part[1, 2] -= y0
        posed = cv2.warpAffine(sheet, part, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=bed)
        if noise is not None:
            cv2.add(posed, cv2.merge([noise[0][y0:y1, x0:x1]] * 3), dst=posed)
            cv2.subtract(posed, cv2.merge([noise[1][y0:y1, x0:x1]] * 3), dst=posed)
        img[y0:y1, x0:x1] = posed
    return img


def colour_boxes(img: np.ndarray, grow: int = 2) -> list[Box]:
    """Boxes (x, y, w, h) holding every pixel of an RGB image that is not grey (R, G, B not all equal),
    one per cluster of such pixels (those within `grow` px of each other join); [] for a grey image."""
    if img.ndim != 3:
        return []
    r, g, b = cv2.split(img)
    tinted = cv2.bitwise_or(cv2.compare(r, g, cv2.CMP_NE), cv2.compare(g, b, cv2.CMP_NE))
    if not cv2.countNonZero(tinted):
        return []
    n, _, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(tinted, np.ones((2 * grow + 1,) * 2, np.uint8)))
    return [(int(x), int(y), int(bw), int(bh)) for x, y, bw, bh, _ in stats[1:n]]  # grown by `grow`: harmless


def lens_blur(sheet: np.ndarray, profile: CaptureProfile = MILD) -> np.ndarray:
    """The lens's blur of the sheet, before the pose: a small isotropic Gaussian, so blurring the flat
    sheet and then turning it by a degree or two is the same optics as the other way round."""
    return cv2.GaussianBlur(sheet, (0, 0), profile.blur_sigma_px) if profile.blur_sigma_px > 0 else sheet.copy()


def lens_blur_patched(blank: np.ndarray, blank_blurred: np.ndarray, marked: np.ndarray, windows: Iterable[Box],
                      profile: CaptureProfile = MILD) -> tuple[np.ndarray, list[Box] | None]:
    """`lens_blur(marked)` where `marked` is `blank` with ink added only inside `windows` (x, y, w, h):
    the blurred blank with each window's changed pixels blurred again locally. OpenCV's 8-bit Gaussian
    is bit-exact, so the result is byte for byte the whole sheet's blur at a few percent of its cost; a
    change that reaches a window's edge (ink outside it) falls back to blurring the whole sheet. With the
    sheet, the boxes written over the blurred blank, or None when the whole sheet was blurred again."""
    if profile.blur_sigma_px <= 0:
        return marked.copy(), None
    r = _kernel_radius(profile.blur_sigma_px)
    h, w = marked.shape[:2]
    out = blank_blurred.copy()
    written: list[Box] = []
    for x, y, ww, hh in _merged(windows):
        x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + ww), min(h, y + hh)
        if x1 <= x0 or y1 <= y0:
            continue
        changed = np.any(marked[y0:y1, x0:x1] != blank[y0:y1, x0:x1], axis=2) if marked.ndim == 3 \
            else marked[y0:y1, x0:x1] != blank[y0:y1, x0:x1]
        rows, cols = np.nonzero(changed.any(axis=1))[0], np.nonzero(changed.any(axis=0))[0]
        if not len(rows):
            continue
        if (rows[0] == 0 and y0 > 0) or (rows[-1] == y1 - y0 - 1 and y1 < h) \
                or (cols[0] == 0 and x0 > 0) or (cols[-1] == x1 - x0 - 1 and x1 < w):
            return lens_blur(marked, profile), None  # the ink may go on outside the window
        # the changed pixels' box, grown by the kernel (what they reach), and again (what reaches that)
        cy0, cy1 = max(0, y0 + rows[0] - r), min(h, y0 + rows[-1] + 1 + r)
        cx0, cx1 = max(0, x0 + cols[0] - r), min(w, x0 + cols[-1] + 1 + r)
        sy0, sy1, sx0, sx1 = max(0, cy0 - r), min(h, cy1 + r), max(0, cx0 - r), min(w, cx1 + r)
        local = cv2.GaussianBlur(marked[sy0:sy1, sx0:sx1], (0, 0), profile.blur_sigma_px)
        out[cy0:cy1, cx0:cx1] = local[cy0 - sy0:cy1 - sy0, cx0 - sx0:cx1 - sx0]
        written.append((int(cx0), int(cy0), int(cx1 - cx0), int(cy1 - cy0)))
    return out, written


def _merged(windows: Iterable[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Overlapping windows joined into their bounding box, until none overlap (a mark in a neighbouring
    box's window would otherwise look like ink running out of that window)."""
    boxes = [(x, y, x + w, y + h) for x, y, w, h in windows]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes]


def _kernel_radius(sigma: float) -> int:
    """Half of the kernel OpenCV picks for an 8-bit image and this sigma (ksize = round(6 sigma + 1) | 1)."""
    return (round(sigma * 3 * 2 + 1) | 1) // 2


_NOISE_PAD = 97
_noise_cache: dict[tuple[tuple[int, ...], float], tuple[np.ndarray, np.ndarray]] = {}  # (h, w[, planes]), sigma
_noise_lock = threading.Lock()  # the camera's thread drawing ahead and the firmware's capture: one field, drawn once


def _add_noise(img: np.ndarray, sigma: float, rng: random.Random) -> np.ndarray:
    """Gaussian sensor noise, added to `img` in place (the capture's own frame: no second and third frame
    to allocate). Drawing millions of normals per frame costs more than the whole OMR, so a field is drawn
    once per frame size and each capture takes it at a random offset (seeded): the noise still differs from
    frame to frame and pixel to pixel."""
    pos, neg = _noise_window(img.shape, sigma, rng)
    cv2.add(img, pos, dst=img)
    cv2.subtract(img, neg, dst=img)
    return img


def _noise_window(shape: tuple[int, ...], sigma: float, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """This capture's positive and negative noise for a frame of `shape`: the field at a random offset."""
    pos, neg = _noise_parts(shape, sigma)
    h, w = shape[:2]
    dy, dx = rng.randrange(_NOISE_PAD), rng.randrange(_NOISE_PAD)
    return pos[dy:dy + h, dx:dx + w], neg[dy:dy + h, dx:dx + w]


def _noise_parts(shape: tuple[int, ...], sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The positive and negative parts of the noise field for frames of `shape` (h, w[, planes]; uint8),
    drawn once: the same value on every plane, merged once rather than at every capture."""
    key = (tuple(shape), sigma)
    with _noise_lock:
        if key not in _noise_cache:
            if len(_noise_cache) >= 8:
                _noise_cache.clear()
            h, w = shape[:2]
            field = np.random.default_rng(12345).normal(0, sigma, (h + _NOISE_PAD, w + _NOISE_PAD))
            pos, neg = np.clip(field, 0, 255).astype(np.uint8), np.clip(-field, 0, 255).astype(np.uint8)
            if len(shape) == 3:
                pos, neg = cv2.merge([pos] * shape[2]), cv2.merge([neg] * shape[2])
            _noise_cache[key] = pos, neg
        return _noise_cache[key]

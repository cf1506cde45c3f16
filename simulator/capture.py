"""The ballot camera's view of a sheet held in the feeder: mild capture variation.

Rotation (the sheet is never perfectly square in the rollers), a slight scale error, sensor noise and a
little blur, on the dark feeder bed. Seeded; the harsh distortion levels (L1-L3 of BENCHMARKS.md) are
the OMR corpus generator's business.
"""

from __future__ import annotations

import random
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


def capture(sheet: np.ndarray, dpi: float, rng: random.Random, profile: CaptureProfile = MILD) -> np.ndarray:
    """An RGB capture of the printed-and-marked `sheet` (RGB, rendered at the camera's dpi)."""
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
    img = cv2.warpAffine(sheet, M, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=bed)
    if profile.blur_sigma_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), profile.blur_sigma_px)
    if profile.noise_sigma > 0:
        img = _add_noise(img, profile.noise_sigma, rng)
    return img


_NOISE_PAD = 97
_noise_cache: dict[tuple[tuple[int, ...], float], tuple[np.ndarray, np.ndarray]] = {}  # (h, w[, planes]), sigma


def _add_noise(img: np.ndarray, sigma: float, rng: random.Random) -> np.ndarray:
    """Gaussian sensor noise. Drawing millions of normals per frame costs more than the whole OMR, so a
    field is drawn once per frame size and each capture takes it at a random offset (seeded): the noise
    still differs from frame to frame and pixel to pixel."""
    h, w = img.shape[:2]
    key = (img.shape, sigma)
    if key not in _noise_cache:
        field = np.random.default_rng(12345).normal(0, sigma, (h + _NOISE_PAD, w + _NOISE_PAD))
        pos, neg = np.clip(field, 0, 255).astype(np.uint8), np.clip(-field, 0, 255).astype(np.uint8)
        if img.ndim == 3:  # the same value on every plane, merged once rather than at every capture
            pos, neg = cv2.merge([pos] * img.shape[2]), cv2.merge([neg] * img.shape[2])
        if len(_noise_cache) >= 8:
            _noise_cache.clear()
        _noise_cache[key] = (pos, neg)
    pos, neg = _noise_cache[key]
    dy, dx = rng.randrange(_NOISE_PAD), rng.randrange(_NOISE_PAD)
    return cv2.subtract(cv2.add(img, pos[dy:dy + h, dx:dx + w]), neg[dy:dy + h, dx:dx + w])

"""The extraction pipeline: named stages, their parameters in one frozen dataclass, a dump hook.

Every stage works on the image brought to 500 dpi (the scale the parameters are set for: FVC2002 DB2 is
569 dpi, our sensor 500); minutiae go back to the input's pixels at the end, and the template records the
input's resolution (ppcm = round(dpi / 2.54): 197 at 500 dpi, 224 at 569 dpi).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import scipy.fft
from skimage.morphology import skeletonize

from biometrics.extract import minutiae as minutiae_stage
from biometrics.extract.orientation import OrientationField
from biometrics.extract.quality import image_quality, percentile
from biometrics.template import FingerprintTemplate, Minutia, MinutiaKind

# The stages in the order they run: the names `dump` receives.
STAGES = (
    "normalisation",  # grey at 500 dpi, local mean removed and contrast equalised
    "segmentation",  # foreground mask (255 = finger)
    "orientation",  # ridge orientation (hue-free grey: 0..180 degrees -> 0..255), masked
    "coherence",  # orientation coherence 0..1 -> 0..255
    "frequency",  # ridge frequency (the image's period, one value) drawn as a flat image
    "enhancement",  # oriented Gabor response
    "binarisation",  # ridges 255
    "thinning",  # one-pixel ridge skeleton 255
    "minutiae",  # every crossing-number candidate (endings 255, bifurcations 128) on the skeleton
    "filtered_minutiae",  # what is left after false-minutia removal
)

REFERENCE_DPI = 500.0  # the scale every length below is measured in
RETRY_BELOW_QUALITY = 35  # capture loop: fewer than ~15 reliable minutiae or half a finger on the glass
GABOR_STRIP = 48  # rows per strip of the Gabor bank: 24-64 all cost ~0.42-0.45 of the whole-finger passes


@dataclass(frozen=True)
class ExtractionParams:
    """Every tunable of the pipeline, lengths in pixels at 500 dpi."""

    # segmentation: blocks of 16 px (1.6 ridge periods) whose grey spread is below a share of the image's
    # strong blocks are background (FVC's optical and capacitive sensors leave an even, bright background)
    block: int = 16
    segmentation_share: float = 0.3  # 0.35 (with sigma-6 normalisation): EER ours 2.86 -> 2.68 %, cross-vendor 2.84 -> 2.68 %
    segmentation_floor: float = 6.0  # grey levels; below it a block is flat whatever the rest of the image
    mask_erosion: int = 3  # off the segmentation's blocky edge (6 lost 3 % recall against the commercial records)
    # normalisation: local mean and spread over about one and a half ridges (sigma 2/3 of the 9 px period),
    # so a dry or wet patch is equalised on its own. EER ours/cross-vendor, FVC2002-B average
    # (scripts/extract_eer.py --matcher match): sigma 8 3.22/3.12 %, 7 3.07/2.86 %, 6 2.86/2.84 %, DB3 5.72 -> 4.65 %;
    # 5 and 4 are worse on DB3 (5.35, 5.63 %)
    normalisation_sigma: float = 6.0
    # orientation: gradient tensor averaged over ~2 ridge periods
    orientation_sigma: float = 10.0  # 7 and 13 both pair fewer minutiae with the commercial records
    # ridge period (pixels at 500 dpi): searched between these, default when the spectrum has no clear peak
    period_range: tuple[float, float] = (6.0, 14.0)
    default_period: float = 9.0
    # enhancement: isotropic Gabor, sigma = share of the ridge period, 16 orientations (11.25 deg apart)
    gabor_sigma_share: float = 0.45
    gabor_radius: int = 8
    orientation_bins: int = 16
    # local ridge period: 64 px tiles every 32 px; the Gabor bank can be built for several multiples of the
    # image's period, each pixel taking the one nearest its tile's period. Measured against the commercial
    # records (F1 on 80 FVC images): one period 0.752, (0.9, 1, 1.1) 0.751, (0.85, 1, 1.18) 0.749 at three
    # times the cost: one it is, the local map is only dumped.
    period_tile: int = 64
    period_bins: tuple[float, ...] = (1.0,)
    # minutiae and their false-minutia removal (see minutiae.py)
    filters: minutiae_stage.MinutiaFilters = field(default_factory=minutiae_stage.MinutiaFilters)


@dataclass(frozen=True)
class Extraction:
    template: FingerprintTemplate
    quality: int  # 0..100, higher is better
    retry: bool  # the capture loop should ask the voter to place the finger again
    remarks: tuple[str, ...] = ()  # why the quality is low, for the operator's panel


def extract(
    image: np.ndarray,
    dpi: float = 500.0,
    *,
    params: ExtractionParams | None = None,
    dump: Callable[[str, np.ndarray], None] | None = None,
) -> Extraction:
    """Minutiae and image quality of one grey fingerprint image (uint8 H x W, scanned at `dpi`)."""
    p = params or ExtractionParams()
    if image.ndim != 2:
        raise ValueError(f"a grey image has 2 dimensions, this one has shape {image.shape}")
    height, width = image.shape
    scale = REFERENCE_DPI / dpi  # input pixels -> 500 dpi pixels
    grey = image
    if abs(scale - 1.0) > 0.01:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    grey32 = grey.astype(np.float32)

    normalised = _normalise(grey32, p)
    _dump(dump, "normalisation", lambda: _to_byte(normalised, -2.5, 2.5))
    mask = _segment(grey32, p)
    _dump(dump, "segmentation", lambda: mask.astype(np.uint8) * 255)
    field = _orientation(normalised, p)
    _dump(dump, "orientation", lambda: (((field.normal() + math.pi / 2) % math.pi) * (255 / math.pi)).astype(np.uint8) * mask)
    _dump(dump, "coherence", lambda: _to_byte(field.coherence, 0.0, 1.0))
    period = _ridge_period(normalised, mask, p)
    local_period = _local_period(normalised, mask, period, p)
    _dump(dump, "frequency", lambda: _to_byte(local_period, 0.0, 25.5))
    enhanced = _enhance(normalised, field, mask, period, local_period, p)
    _dump(dump, "enhancement", lambda: _to_byte(enhanced, -enhanced.std() * 2.5, enhanced.std() * 2.5))
    ridges = (enhanced < 0) & mask  # ridges are dark: the Gabor response is negative on them
    _dump(dump, "binarisation", lambda: ridges.astype(np.uint8) * 255)
    skeleton = _thin(ridges)
    _dump(dump, "thinning", lambda: skeleton.astype(np.uint8) * 255)

    candidates = minutiae_stage.detect(skeleton, mask)
    _dump(dump, "minutiae", lambda: _draw(skeleton, candidates))
    found = minutiae_stage.filter_false(candidates, skeleton, mask, field, p.filters)
    _dump(dump, "filtered_minutiae", lambda: _draw(skeleton, found))

    quality, remarks = image_quality(mask, field.coherence, enhanced, len(found.x))
    minutiae = tuple(
        Minutia(
            x=float(x / scale),
            y=float(y / scale),
            angle=float(angle),
            kind=MinutiaKind(int(kind)),
            quality=int(q),
        )
        for x, y, angle, kind, q in zip(found.x, found.y, found.angle, found.kind, found.quality, strict=True)
    )
    ppcm = round(dpi / 2.54)
    template = FingerprintTemplate(
        width=width, height=height, x_res_ppcm=ppcm, y_res_ppcm=ppcm, minutiae=minutiae, quality=quality
    )
    return Extraction(template=template, quality=quality, retry=quality < RETRY_BELOW_QUALITY, remarks=remarks)


def _normalise(grey: np.ndarray, p: ExtractionParams) -> np.ndarray:
    """Zero local mean, unit local spread: the Gabor bank then sees the same contrast everywhere."""
    # (cv2's float32 arithmetic: the same IEEE operations as numpy's, about twice as fast on these sizes)
    mean = _smooth(grey, p.normalisation_sigma)
    centred = cv2.subtract(grey, mean)
    spread = cv2.sqrt(_smooth(cv2.multiply(centred, centred), p.normalisation_sigma))
    return cv2.divide(centred, cv2.max(spread, 4.0))  # 4 grey levels: flat background stays flat, not amplified noise


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a slowly varying field, done at a quarter of the size (sigma >= 4 px loses nothing)."""
    height, width = values.shape
    small = cv2.resize(values, (max(1, width // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 4)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _segment(grey: np.ndarray, p: ExtractionParams) -> np.ndarray:
    """Foreground: blocks with ridge contrast, closed, the largest piece kept, holes filled, edge eroded."""
    b = p.block
    mean = cv2.boxFilter(grey, -1, (b, b))
    spread = cv2.sqrt(cv2.max(cv2.subtract(cv2.boxFilter(cv2.multiply(grey, grey), -1, (b, b)), cv2.multiply(mean, mean)), 0.0))
    coarse = cv2.resize(spread, (max(1, grey.shape[1] // 4), max(1, grey.shape[0] // 4)), interpolation=cv2.INTER_AREA)
    strong = float(percentile(coarse.ravel(), 95))
    threshold = max(p.segmentation_floor, p.segmentation_share * strong)
    fore = (coarse > threshold).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    fore = cv2.morphologyEx(fore, cv2.MORPH_OPEN, kernel)
    fore = cv2.morphologyEx(fore, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fore, connectivity=4)
    if count <= 1:
        return np.zeros(grey.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    fore = (labels == largest).astype(np.uint8)
    # holes: background not reachable from the border
    padded = np.pad(fore, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    fore = (padded | (1 - flood))[1:-1, 1:-1]
    full = cv2.resize(fore, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_NEAREST)
    if p.mask_erosion > 0:
        e = 2 * p.mask_erosion + 1
        full = cv2.erode(full, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (e, e)))
    return full.astype(bool)


def _orientation(normalised: np.ndarray, p: ExtractionParams) -> OrientationField:
    """Ridge-normal orientation and its coherence from the smoothed gradient tensor."""
    gx = cv2.Sobel(normalised, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(normalised, cv2.CV_32F, 0, 1, ksize=3)
    gxx = _smooth(cv2.multiply(gx, gx), p.orientation_sigma)
    gyy = _smooth(cv2.multiply(gy, gy), p.orientation_sigma)
    gxy = _smooth(cv2.multiply(gx, gy), p.orientation_sigma)
    return OrientationField.from_tensor(gxx, gyy, gxy)


def _ridge_period(normalised: np.ndarray, mask: np.ndarray, p: ExtractionParams) -> float:
    """The image's ridge period in pixels: the peak of the radial power spectrum of the foreground."""
    if mask.sum() < 64 * 64:
        return p.default_period
    size = 256
    # the foreground's centroid (exact: integer sums over the rows and columns)
    count = int(mask.sum())
    cy = int(int(np.arange(mask.shape[0]) @ mask.sum(axis=1)) / count)
    cx = int(int(np.arange(mask.shape[1]) @ mask.sum(axis=0)) / count)
    y0 = min(max(0, cy - size // 2), max(0, normalised.shape[0] - size))
    x0 = min(max(0, cx - size // 2), max(0, normalised.shape[1] - size))
    patch = np.zeros((size, size), np.float32)
    window = normalised[y0 : y0 + size, x0 : x0 + size] * mask[y0 : y0 + size, x0 : x0 + size]
    patch[: window.shape[0], : window.shape[1]] = window
    spectrum = scipy.fft.rfft2(patch, workers=1)  # pocketfft as numpy's, ~4x faster here on float32
    power = spectrum.real**2 + spectrum.imag**2
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(fx * fx + fy * fy) * size  # cycles per patch
    low, high = size / p.period_range[1], size / p.period_range[0]
    bins = np.round(radius).astype(np.int32)
    band = (bins >= math.floor(low)) & (bins <= math.ceil(high))
    profile = np.bincount(bins[band], weights=power[band], minlength=math.ceil(high) + 1)
    profile = np.convolve(profile, np.ones(3) / 3, mode="same")
    peak = int(np.argmax(profile[math.floor(low) :])) + math.floor(low)
    if peak <= 0 or profile[peak] <= 0:
        return p.default_period
    return float(np.clip(size / peak, *p.period_range))


def _local_period(normalised: np.ndarray, mask: np.ndarray, period: float, p: ExtractionParams) -> np.ndarray:
    """Ridge period per pixel (px): the radial spectrum peak of each overlapping tile, smoothed, interpolated."""
    t = p.period_tile
    height, width = normalised.shape
    if height < t or width < t or len(p.period_bins) == 1:  # one period: nothing to choose between
        return np.full(normalised.shape, period, np.float32)
    step = t // 2
    tiles = np.lib.stride_tricks.sliding_window_view(normalised * mask, (t, t))[::step, ::step]
    covered = np.lib.stride_tricks.sliding_window_view(mask, (t, t))[::step, ::step].mean(axis=(2, 3))
    ny, nx = tiles.shape[:2]
    window = np.outer(np.hanning(t), np.hanning(t)).astype(np.float32)
    power = np.abs(np.fft.rfft2(tiles * window)) ** 2  # ny x nx x t x (t//2+1)
    fy = np.fft.fftfreq(t)[:, None]
    fx = np.fft.rfftfreq(t)[None, :]
    radius = np.round(np.sqrt(fx * fx + fy * fy) * t).astype(np.int32)  # cycles per tile
    low, high = math.ceil(t / p.period_range[1]), math.floor(t / p.period_range[0])
    onehot = (radius.ravel()[:, None] == np.arange(low, high + 1)[None, :]).astype(np.float32)
    onehot /= np.maximum(onehot.sum(axis=0, keepdims=True), 1)
    profile = power.reshape(ny * nx, -1).astype(np.float32) @ onehot  # tiles x radii
    peak = np.argmax(profile, axis=1)
    # parabolic refinement of the peak between its neighbours
    left = profile[np.arange(len(peak)), np.maximum(peak - 1, 0)]
    mid = profile[np.arange(len(peak)), peak]
    right = profile[np.arange(len(peak)), np.minimum(peak + 1, profile.shape[1] - 1)]
    curvature = left - 2 * mid + right  # negative at a peak
    shift = np.clip(0.5 * (left - right) / np.where(curvature < 0, curvature, -1e-9), -0.5, 0.5)
    tile_period = (t / (low + peak + shift)).reshape(ny, nx).astype(np.float32)
    tile_period = np.where(covered > 0.5, tile_period, period).astype(np.float32)
    tile_period = cv2.medianBlur(tile_period, 3)
    full = cv2.resize(tile_period, (nx * step, ny * step), interpolation=cv2.INTER_LINEAR)
    out = np.full(normalised.shape, period, np.float32)
    off = t // 2 - step // 2
    h, w = min(full.shape[0], height - off), min(full.shape[1], width - off)
    out[off : off + h, off : off + w] = full[:h, :w]
    return out


def _enhance(
    normalised: np.ndarray,
    field: OrientationField,
    mask: np.ndarray,
    period: float,
    local_period: np.ndarray,
    p: ExtractionParams,
) -> np.ndarray:
    """Oriented Gabor: each finger pixel takes the response of the bank member closest to its ridge orientation.

    An isotropic Gabor is separable as a complex filter: g(x)g(y)cos(kx x + ky y) = cx*cy - sx*sy with 1-D
    cosine and sine kernels, so each member costs two cv2.sepFilter2D passes; and the members at theta and
    pi - theta share the same four 1-D kernels up to the sine's sign, so 16 orientations need 9 pairs.
    The bank is run strip by strip, each pair only over the columns of the strip whose finger pixels need
    it (and the filter's reach around them): ~40 % of the work of filtering the whole finger with every
    pair, the same values (a pixel's response reads only its 17 x 17 neighbourhood). Pixels off the finger
    are left at 0.
    """
    n = p.orientation_bins
    r = p.gabor_radius
    out = np.zeros_like(normalised)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(rows) == 0:
        return out
    # only the finger's bounding box (and the filter's reach around it) is filtered
    y0, y1 = max(0, rows[0] - r), min(mask.shape[0], rows[-1] + r + 1)
    x0, x1 = max(0, cols[0] - r), min(mask.shape[1], cols[-1] + r + 1)
    region = normalised[y0:y1, x0:x1]
    bin_of = field.bins(slice(y0, y1), slice(x0, x1), n)
    periods = np.array(p.period_bins) * period
    pairs = n // 2 + 1  # orientation k and its mirror n - k share a pair of passes
    # each finger pixel's bank member: code = period index * n + orientation bin (255 off the finger); the
    # pair of passes it needs: period index * pairs + the orientation k <= n / 2 of its pair
    inside = mask[y0:y1, x0:x1]
    if len(periods) == 1:
        code = np.where(inside, bin_of, np.uint8(255))
    else:
        period_of = np.argmin(np.abs(local_period[y0:y1, x0:x1, None] - periods[None, None, :]), axis=2)
        code = np.where(inside, period_of.astype(np.uint8) * n + bin_of, np.uint8(255))
    off = len(periods) * pairs
    pair_table = np.full(256, off, np.uint8)
    members = np.arange(len(periods) * n)
    pair_table[members] = members // n * pairs + np.minimum(members % n, n - members % n)
    pair_of = cv2.LUT(code, pair_table)
    # which pairs each strip of rows needs, and over which columns
    height, width = region.shape
    strips = -(-height // GABOR_STRIP)
    padded = np.full((strips * GABOR_STRIP, width), off, np.uint8)
    padded[:height] = pair_of
    by_strip = padded.reshape(strips, GABOR_STRIP, width)
    needs = np.stack([(by_strip == m).any(axis=1) for m in range(off)], axis=1)  # strips x pairs x columns
    first = needs.argmax(axis=2)
    last = width - needs[:, :, ::-1].argmax(axis=2)
    kernels = [_gabor_pair(float(member_period), k, p) for member_period in periods for k in range(pairs)]
    picked = np.zeros_like(region)
    for strip, m in zip(*np.nonzero(needs.any(axis=2)), strict=True):
        top, bottom = int(strip) * GABOR_STRIP, min(height, (int(strip) + 1) * GABOR_STRIP)
        left, right = int(first[strip, m]), int(last[strip, m])
        ry0, ry1, rx0, rx1 = max(0, top - r), min(height, bottom + r), max(0, left - r), min(width, right + r)
        window = region[ry0:ry1, rx0:rx1]
        cos_x, sin_x, cos_y, sin_y = kernels[m]
        inner = (slice(top - ry0, bottom - ry0), slice(left - rx0, right - rx0))
        even = cv2.sepFilter2D(window, cv2.CV_32F, cos_x, cos_y)[inner]
        j, k = divmod(int(m), pairs)
        codes = code[top:bottom, left:right]
        target = picked[top:bottom, left:right]
        # theta = 0: the sine across rows is 0, so is the odd part; theta = pi / 2: the sine along the row is
        # below 1e-15, the odd part below float32's resolution of the even one (same records on all 320 images)
        if 2 * k in (0, n):
            np.copyto(target, even, where=codes == j * n + k)
            continue
        odd = cv2.sepFilter2D(window, cv2.CV_32F, sin_x, sin_y)[inner]
        # theta: cos(kx x + ky y); pi - theta: kx -> -kx, i.e. cos(-kx x + ky y) = even + odd
        np.copyto(target, even - odd, where=codes == j * n + k)
        if k != n - k:
            np.copyto(target, even + odd, where=codes == j * n + n - k)
    out[y0:y1, x0:x1] = picked
    return out


def _gabor_pair(member_period: float, k: int, p: ExtractionParams) -> tuple[np.ndarray, ...]:
    """The 1-D kernels (cos x, sin x, cos y, sin y) of the bank member at orientation pi k / n."""
    return _gabor_kernels(member_period, k, p.gabor_sigma_share, p.gabor_radius, p.orientation_bins)


@functools.lru_cache(maxsize=1024)  # the image's period takes few values (256 / an integer peak)
def _gabor_kernels(member_period: float, k: int, sigma_share: float, radius: int, bins: int) -> tuple[np.ndarray, ...]:
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    sigma = sigma_share * member_period
    envelope = np.exp(-(taps**2) / (2 * sigma * sigma))
    wavenumber = 2 * math.pi / member_period
    theta = math.pi * k / bins
    kx, ky = wavenumber * math.cos(theta), wavenumber * math.sin(theta)
    return tuple(
        (envelope * wave(kq * taps)).astype(np.float32)
        for wave, kq in ((np.cos, kx), (np.sin, kx), (np.cos, ky), (np.sin, ky))
    )


def _thin(ridges: np.ndarray) -> np.ndarray:
    """One-pixel skeleton (Zhang-Suen, skimage), thinned over the ridges' bounding box only: the same pixels."""
    x, y, w, h = cv2.boundingRect(ridges.view(np.uint8))
    skeleton = np.zeros_like(ridges)
    if w and h:
        skeleton[y : y + h, x : x + w] = skeletonize(ridges[y : y + h, x : x + w])
    return skeleton


def _dump(dump: Callable[[str, np.ndarray], None] | None, stage: str, render: Callable[[], np.ndarray]) -> None:
    if dump is not None:
        dump(stage, render())


def _to_byte(values: np.ndarray, low: float, high: float) -> np.ndarray:
    span = max(high - low, 1e-6)
    return np.clip((values - low) * (255.0 / span), 0, 255).astype(np.uint8)


def _draw(skeleton: np.ndarray, found: minutiae_stage.Candidates) -> np.ndarray:
    canvas = skeleton.astype(np.uint8) * 64
    for x, y, kind in zip(found.x, found.y, found.kind, strict=True):
        value = 255 if kind == MinutiaKind.RIDGE_ENDING else 160
        cv2.circle(canvas, (round(x), round(y)), 4, value, 1)
    return canvas

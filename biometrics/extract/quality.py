"""Image quality 0..100 (NFIQ-like) for the capture loop: is this capture worth matching, or ask again?

Four measures, each mapped to 0..1 by where it saturates on good FVC2002 captures, multiplied so that any one
of them near zero sinks the score (a sharp image of a fingertip's edge is as useless as a blurred full print):
- foreground area: the finger's footprint in mm^2 (a flat thumb-less finger on a 500 dpi optical reader
  covers ~250-300 mm^2; below ~60 mm^2 there are too few minutiae to match);
- orientation coherence over the foreground (clear, unbroken ridge flow is near 0.7; smudge or scars ~0.3);
- ridge clarity: the Gabor response's energy in the foreground against the background's;
- minutiae count (ISO/IEC 19794-2 matchers want 12+; 30+ is a full print).
"""

from __future__ import annotations

import math

import numpy as np

PIXEL_AREA_MM2 = (25.4 / 500.0) ** 2  # the pipeline works at 500 dpi
AREA_FULL_MM2 = 160.0  # score 1 from here
COHERENCE_FULL = 0.65
CLARITY_FULL = 0.55
MINUTIAE_FULL = 30
# percentile(): the order statistics are looked for among the values above the sample's quantile this
# much below the asked one (a sample of every SAMPLE_STEP-th value); if they are not all there, the whole array
SAMPLE_STEP = 16
SAMPLE_MARGIN = 0.05


def image_quality(
    mask: np.ndarray, coherence: np.ndarray, enhanced: np.ndarray, minutiae_count: int
) -> tuple[int, tuple[str, ...]]:
    """(score 0..100, remarks saying which measures pulled it down)."""
    area_mm2 = float(mask.sum()) * PIXEL_AREA_MM2
    area = min(1.0, area_mm2 / AREA_FULL_MM2)
    if area_mm2 == 0:
        return 0, ("no finger on the reader",)
    flow = min(1.0, float(coherence[mask].mean()) / COHERENCE_FULL)
    response = np.abs(enhanced[mask])
    clarity = min(1.0, float(np.mean(response > 0.5 * percentile(response, 90))) / CLARITY_FULL)
    count = min(1.0, minutiae_count / MINUTIAE_FULL)
    score = 100.0 * (area**0.5) * (flow**1.0) * (clarity**0.5) * (count**0.5)
    remarks = []
    if area < 0.6:
        remarks.append(f"finger covers only {area_mm2:.0f} mm^2: place more of it flat on the glass")
    if flow < 0.7:
        remarks.append("ridges are smudged or broken: wipe the finger and the glass")
    if count < 0.5:
        remarks.append(f"only {minutiae_count} minutiae found")
    return round(score), tuple(remarks)


def percentile(values: np.ndarray, q: float) -> np.floating:
    """np.percentile(values, q) (its default 'linear' method) of a 1-D float array without NaN, to the bit.

    np.percentile partitions the whole array; here only the values above a bound taken on a sample, which
    hold both order statistics the interpolation needs (checked by counting, else the whole array).
    """
    n = values.size
    quantile = q / 100
    virtual = n * quantile + (1 + quantile * (1 - 1 - 1)) - 1  # numpy's virtual index, alpha = beta = 1
    previous = min(max(math.floor(virtual), 0), n - 1)
    following = min(previous + 1, n - 1)
    if virtual >= n - 1:
        previous = following = n - 1
    pool, offset = values, 0
    if n > 64 * SAMPLE_STEP:
        sample = values[::SAMPLE_STEP]
        k = max(0, math.floor((quantile - SAMPLE_MARGIN) * (sample.size - 1)))
        bound = np.partition(sample, k)[k]
        above = values[values >= bound]
        if n - above.size <= previous:
            pool, offset = above, n - above.size
    ranked = np.partition(pool, [previous - offset, following - offset])
    low, high = ranked[previous - offset], ranked[following - offset]
    gamma = virtual - math.floor(virtual) if 0 <= virtual < n - 1 else 0.0
    diff = high - low
    return high - diff * (1 - gamma) if gamma >= 0.5 else low + diff * gamma

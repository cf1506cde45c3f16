"""The ridge orientation field, kept as the smoothed gradient tensor's doubled-angle vector.

The angle itself (np.arctan2, ~50 ns a pixel here: the largest single cost of the extraction when taken over
the whole image) is computed only where it is used: at the minutiae (`normal_at`), and, for the Gabor bank,
as the orientation bin of each pixel (`bins`), which takes cv2.phase (~0.5 ns a pixel, error under 2e-4 rad)
and redoes the exact np.arctan2 arithmetic only on the pixels whose bin cv2.phase leaves in doubt. Every
value is the one the whole-image np.arctan2 gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# A pixel whose cv2.phase bin position lies this close (in bins) to a bin edge gets the exact arithmetic:
# cv2.phase's error is < 2e-4 rad of doubled angle, i.e. < 6e-4 bins at 16 bins; 0.01 is a wide margin
# and costs the exact path on ~2 % of the pixels.
DOUBT = 0.01


@dataclass(frozen=True)
class OrientationField:
    """Ridge-normal orientation (radians, image axes, [-pi/2, pi/2]) and its coherence 0..1, per pixel."""

    cos2: np.ndarray  # gxx - gyy (float32): the doubled angle's cosine, times the tensor's anisotropy
    sin2: np.ndarray  # 2 gxy (float32)
    coherence: np.ndarray  # float32

    @classmethod
    def from_tensor(cls, gxx: np.ndarray, gyy: np.ndarray, gxy: np.ndarray) -> OrientationField:
        # sqrt(diff^2 + 4 gxy^2) / max(gxx + gyy, 1e-6) in cv2's float32 arithmetic (numpy's, to the bit:
        # (2 gxy)^2 is 4 gxy^2 exactly), about twice as fast as numpy's on these sizes
        diff = cv2.subtract(gxx, gyy)
        sin2 = cv2.add(gxy, gxy)
        anisotropy = cv2.sqrt(cv2.add(cv2.multiply(diff, diff), cv2.multiply(sin2, sin2)))
        coherence = cv2.divide(anisotropy, cv2.max(cv2.add(gxx, gyy), 1e-6))
        return cls(cos2=diff, sin2=sin2, coherence=coherence)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.cos2.shape

    def normal(self) -> np.ndarray:
        """The whole field (for dumps and tools: slow)."""
        return _normal(self.sin2, self.cos2)

    def normal_at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """The normal at the given pixels (float32), exactly as `normal()[ys, xs]`."""
        return _normal(self.sin2[ys, xs], self.cos2[ys, xs])

    def bins(self, rows: slice, cols: slice, count: int) -> np.ndarray:
        """uint8 orientation bin 0..count-1 of each pixel of the window: round((normal mod pi) / (pi / count))."""
        cos2, sin2 = self.cos2[rows, cols], self.sin2[rows, cols]
        position = cv2.multiply(cv2.phase(cos2, sin2), count / (2 * math.pi))  # doubled angle in [0, 2 pi) -> bins
        nearest = cv2.convertScaleAbs(position)  # rounded to 0..count (uint8)
        found = cv2.LUT(nearest, _wrap_table(count))  # count is bin 0
        doubt = cv2.absdiff(position, nearest.astype(np.float32)) > 0.5 - DOUBT
        if doubt.any():
            found[doubt] = _exact_bins(_normal(sin2[doubt], cos2[doubt]), count)
        return found


def _wrap_table(count: int) -> np.ndarray:
    return (np.arange(256) % count).astype(np.uint8)


def _normal(sin2: np.ndarray, cos2: np.ndarray) -> np.ndarray:
    return 0.5 * np.arctan2(sin2, cos2)


def _exact_bins(normal: np.ndarray, count: int) -> np.ndarray:
    return np.round((normal % math.pi) / (math.pi / count)).astype(np.uint8) % count

"""The fingerprint template every part of biometrics/ speaks: minutiae in the image's pixel frame.

Conventions (those of ISO/IEC 19794-2:2005, so a record read from another vendor and one we extract
mean the same thing without conversion):
- x to the right, y downwards, in pixels of the image the minutiae were found in; the resolution is
  kept beside them (pixels per centimetre, as the record stores it: 197 = 500 dpi).
- `angle` in radians in [0, 2*pi), measured counter-clockwise from the +x axis *as seen on screen*
  (that is, with y pointing down, a minutia pointing "up" has angle pi/2). ISO stores it in units of
  360/256 degrees; `biometrics.iso19794` converts.
- `quality` 0..100 (ISO: 0 = not reported).

Pure data: no disk, no clock.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np


class MinutiaKind(enum.IntEnum):
    """ISO/IEC 19794-2 minutia type (the two high bits of the x field)."""

    OTHER = 0
    RIDGE_ENDING = 1
    BIFURCATION = 2


@dataclass(frozen=True)
class Minutia:
    x: float
    y: float
    angle: float  # radians, [0, 2*pi), counter-clockwise on screen from +x
    kind: MinutiaKind = MinutiaKind.RIDGE_ENDING
    quality: int = 0  # 0..100, 0 = not reported


@dataclass(frozen=True)
class FingerprintTemplate:
    """One finger view: what an ISO/IEC 19794-2 record holds for one finger, as we use it."""

    width: int  # image size in pixels (the record's header)
    height: int
    x_res_ppcm: int = 197  # pixels per centimetre; 197 = 500 dpi
    y_res_ppcm: int = 197
    minutiae: tuple[Minutia, ...] = ()
    finger_position: int = 0  # ISO finger code, 0 = unknown
    impression_type: int = 0  # 0 = live-scan plain
    quality: int = 0  # finger quality 0..100
    capture_equipment_id: int = 0
    extras: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def dpi(self) -> float:
        return self.x_res_ppcm * 2.54

    def as_array(self) -> np.ndarray:
        """N x 5 float64: x, y, angle (rad), kind, quality — what the matcher vectorises over."""
        if not self.minutiae:
            return np.zeros((0, 5), dtype=np.float64)
        return np.array(
            [(m.x, m.y, m.angle % (2 * math.pi), int(m.kind), m.quality) for m in self.minutiae],
            dtype=np.float64,
        )

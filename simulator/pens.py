"""Voters' pens: realistic marks drawn into ballot boxes (X, filled box, check), in several inks.

Strokes are polylines with a wobble, tapering pressure and variable size, angle and offset, drawn
anti-aliased onto the printed ballot image - what a camera sees of a hand-made mark. The harsh
corpus (hesitation dots, erasures, pencil, ...) belongs to the OMR corpus generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np


class MarkStyle(StrEnum):
    X = "x"
    FILLED = "filled"
    CHECK = "check"


INKS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 30),
    "blue": (20, 40, 160),  # ballpoint blue
    "dark_blue": (15, 20, 90),
}


@dataclass(frozen=True)
class Pen:
    ink: tuple[int, int, int]
    width_mm: float  # 0.35 (fine ballpoint) .. 0.8 (felt tip)

    @staticmethod
    def random(rng: random.Random) -> "Pen":
        name = rng.choices(list(INKS), weights=[5, 4, 1])[0]
        return Pen(INKS[name], rng.uniform(0.4, 0.8))


def draw_mark(img: np.ndarray, rect_px: list[int] | tuple[int, int, int, int], style: MarkStyle, pen: Pen,
              dpi: float, rng: random.Random) -> None:
    """Draw one mark into the box at rect_px = (x, y, w, h) of an RGB uint8 image, in place."""
    x, y, w, h = rect_px
    k = dpi / 25.4
    cx, cy = x + w / 2 + rng.uniform(-0.08, 0.08) * w, y + h / 2 + rng.uniform(-0.08, 0.08) * h
    size = rng.uniform(0.75, 1.15) * min(w, h) / 2  # half-extent: some Xs overrun the box a little
    angle = np.deg2rad(rng.uniform(-12, 12))
    width = max(1, round(pen.width_mm * k))
    strokes: list[np.ndarray]
    if style == MarkStyle.X:
        strokes = [_line((-size, -size), (size, size)), _line((size, -size), (-size, size))]
    elif style == MarkStyle.CHECK:
        strokes = [np.vstack([_line((-size * 0.8, 0.0), (-size * 0.15, size * 0.8))[:-1],
                              _line((-size * 0.15, size * 0.8), (size * 0.9, -size * 0.95))])]
    else:  # FILLED: back-and-forth scribble covering most of the box
        strokes = []
        n = max(4, int(2 * size / (width * 0.8)))
        pts = []
        for i in range(n + 1):
            yy = -size * 0.85 + 1.7 * size * i / n
            xs = (-size * 0.85, size * 0.85) if i % 2 == 0 else (size * 0.85, -size * 0.85)
            pts += [(xs[0], yy), (xs[1], yy)]
        strokes.append(np.array(pts, dtype=np.float64))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    for stroke in strokes:
        wobble = np.array([[rng.gauss(0, 0.03 * size), rng.gauss(0, 0.03 * size)] for _ in range(len(stroke))])
        pts = (stroke + wobble) @ rot.T + (cx, cy)
        cv2.polylines(img, [np.round(pts * 16).astype(np.int32)], False, pen.ink, thickness=width,
                      lineType=cv2.LINE_AA, shift=4)


def _line(a: tuple[float, float], b: tuple[float, float], n: int = 6) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return np.array(a) * (1 - t) + np.array(b) * t

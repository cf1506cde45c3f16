"""Pens: realistic marks drawn into ballot boxes, in several inks, and the ink that is not a mark. The CEC's
test decks are marked with them (firmware.cec.test_deck), and the simulator's voters hold them.

Strokes are polylines with a wobble, tapering pressure and variable size, angle and offset, drawn
anti-aliased onto the printed ballot image - what a camera sees of a hand-made mark.

- `MarkStyle` (X, filled box, check) and `INKS` are the everyday marks and pens of the simulated day;
  their members and order are part of the day simulator's seeded draws, so they never change.
- `ExtraMarkStyle` (slash, crossed-then-filled) and `MORE_INKS` (light blue, red) plus the graphite pencil
  (`Pen(graphite=True)`: grey, lighter, grainy) are the harder marks of the OMR corpus (simulator.corpus).
- `NonMark` is ink a correct box must ignore: a hesitation dot (<= 0.8 mm), a smudge (a light grey blur
  patch) and an erasure (the very light remnant of an erased X).

Every draw function changes the image in place and takes all its randomness from the `rng` it is
given: the same rng state gives the same pixels.
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


class ExtraMarkStyle(StrEnum):
    """Marks of the OMR corpus beyond the everyday three (a separate enum so that `list(MarkStyle)`,
    which the day simulator draws from with fixed weights, keeps its three members)."""

    SLASH = "slash"  # one diagonal stroke across the box
    CROSSED_THEN_FILLED = "crossed_then_filled"  # an X, then scribbled over: still one mark


ALL_MARK_STYLES: tuple[MarkStyle | ExtraMarkStyle, ...] = (*MarkStyle, *ExtraMarkStyle)


class NonMark(StrEnum):
    """Ink in a box that is not a vote: the box must read it as empty."""

    HESITATION_DOT = "hesitation_dot"  # the pen rested on the paper: a dot of 0.3-0.8 mm
    SMUDGE = "smudge"  # a light grey blur patch (a dirty finger, graphite rubbed off a hand)
    ERASURE = "erasure"  # a pencil X rubbed out: a very light, grainy remnant


INKS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 30),
    "blue": (20, 40, 160),  # ballpoint blue
    "dark_blue": (15, 20, 90),
}
# Inks of the corpus beyond the day's three. Light blue is the hardest pen for a red-lit or
# single-channel camera: its darkest channel is red, at ~70 of 255.
MORE_INKS: dict[str, tuple[int, int, int]] = {
    "light_blue": (70, 150, 225),
    "red": (195, 35, 45),
}
# Graphite at full pressure; a lighter hand gives a lighter tone (Pen.ink of a pencil is its tone).
PENCIL_TONE: tuple[int, int, int] = (95, 95, 100)
ALL_INKS: dict[str, tuple[int, int, int]] = {**INKS, **MORE_INKS, "pencil": PENCIL_TONE}

HESITATION_DOT_MAX_MM = 0.8  # BENCHMARKS.md: a hesitation dot is at most 0.8 mm across
SMUDGE_GREY: tuple[int, int, int] = (120, 115, 110)


@dataclass(frozen=True)
class Pen:
    ink: tuple[int, int, int]
    width_mm: float  # 0.35 (fine ballpoint) .. 0.8 (felt tip)
    graphite: bool = False  # a pencil: its strokes are grainy and only partly cover the paper

    @staticmethod
    def random(rng: random.Random) -> Pen:
        name = rng.choices(list(INKS), weights=[5, 4, 1])[0]
        return Pen(INKS[name], rng.uniform(0.4, 0.8))

    @staticmethod
    def named(name: str, width_mm: float, tone: int | None = None) -> Pen:
        """A pen of one of ALL_INKS; for "pencil", `tone` (grey level 0-255 at full pressure) sets how
        hard the voter pressed."""
        if name not in ALL_INKS:
            raise KeyError(f"no ink '{name}' (inks: {', '.join(ALL_INKS)})")
        if name == "pencil":
            t = PENCIL_TONE[0] if tone is None else tone
            return Pen((t, t, min(255, t + 5)), width_mm, graphite=True)
        return Pen(ALL_INKS[name], width_mm)


def draw_mark(img: np.ndarray, rect_px: list[int] | tuple[int, int, int, int], style: MarkStyle | ExtraMarkStyle,
              pen: Pen, dpi: float, rng: random.Random, overrun: float = 0.0) -> None:
    """Draw one mark into the box at rect_px = (x, y, w, h) of an RGB uint8 image, in place.

    `overrun` > 0 draws a hurried voter's oversized mark: its strokes run past the box's corners by this
    share of the box's size along each axis (an X at 0.2 reaches 0.7 of the box from its centre). The
    rng is drawn from as for any mark, so the marks after it do not change."""
    x, y, w, h = rect_px
    k = dpi / 25.4
    cx, cy = x + w / 2 + rng.uniform(-0.08, 0.08) * w, y + h / 2 + rng.uniform(-0.08, 0.08) * h
    size = rng.uniform(0.75, 1.15) * min(w, h) / 2  # half-extent: some Xs overrun the box a little
    if overrun > 0:
        size = (0.5 + overrun) * min(w, h)
    angle = np.deg2rad(rng.uniform(-12, 12))
    width = max(1, round(pen.width_mm * k))
    strokes = _mark_strokes(style, size, width)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    placed = []
    for stroke in strokes:
        wobble = np.array([[rng.gauss(0, 0.03 * size), rng.gauss(0, 0.03 * size)] for _ in range(len(stroke))])
        placed.append((stroke + wobble) @ rot.T + (cx, cy))
    if pen.graphite:
        _draw_graphite(img, placed, pen.ink, width, strength=1.0, rng=rng)
        return
    for pts in placed:
        cv2.polylines(img, [np.round(pts * 16).astype(np.int32)], False, pen.ink, thickness=width,
                      lineType=cv2.LINE_AA, shift=4)


def draw_non_mark(img: np.ndarray, rect_px: list[int] | tuple[int, int, int, int], kind: NonMark, dpi: float,
                  rng: random.Random, pen: Pen | None = None) -> None:
    """Draw ink that is not a vote into (or over) the box at rect_px, in place.

    A hesitation dot is made with the voter's `pen` (black ballpoint if none); a smudge and an erasure
    are grey whatever the pen."""
    x, y, w, h = rect_px
    k = dpi / 25.4
    if kind == NonMark.HESITATION_DOT:
        pen = pen or Pen(INKS["black"], 0.5)
        diameter_mm = rng.uniform(0.3, HESITATION_DOT_MAX_MM)
        cx, cy = x + w * rng.uniform(0.25, 0.75), y + h * rng.uniform(0.25, 0.75)
        _draw_dot(img, cx, cy, diameter_mm * k / 2, pen, rng)
    elif kind == NonMark.SMUDGE:
        cx, cy = x + w * rng.uniform(0.2, 0.8), y + h * rng.uniform(0.2, 0.8)
        sx, sy = rng.uniform(0.8, 2.0) * k, rng.uniform(0.6, 1.6) * k  # Gaussian sigmas, px
        theta = rng.uniform(0, np.pi)
        peak = rng.uniform(0.10, 0.30)  # at its centre the paper loses 10-30 % of its brightness to grey
        _blend_blob(img, cx, cy, sx, sy, theta, peak, SMUDGE_GREY)
    elif kind == NonMark.ERASURE:
        cx, cy = x + w / 2 + rng.uniform(-0.08, 0.08) * w, y + h / 2 + rng.uniform(-0.08, 0.08) * h
        size = rng.uniform(0.75, 1.1) * min(w, h) / 2
        angle = np.deg2rad(rng.uniform(-12, 12))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        strokes = [_line((-size, -size), (size, size)), _line((size, -size), (-size, size))]
        placed = [(s + rng.gauss(0, 0.03 * size)) @ rot.T + (cx, cy) for s in strokes]
        # what the eraser leaves: graphite at 6-16 % of a pencil's full cover, grainy and rubbed wide
        _draw_graphite(img, placed, PENCIL_TONE, max(1, round(rng.uniform(0.5, 0.9) * k)),
                       strength=rng.uniform(0.06, 0.16), rng=rng, rubbed=True)
    else:  # pragma: no cover - exhaustive over NonMark
        raise ValueError(kind)


# -- helpers ------------------------------------------------------------------------------------
def _mark_strokes(style: MarkStyle | ExtraMarkStyle, size: float, width: int) -> list[np.ndarray]:
    """The polylines of a mark in box-centred coordinates (no randomness: the wobble comes after)."""
    x_strokes = [_line((-size, -size), (size, size)), _line((size, -size), (-size, size))]
    if style == MarkStyle.X:
        return x_strokes
    if style == MarkStyle.CHECK:
        return [np.vstack([_line((-size * 0.8, 0.0), (-size * 0.15, size * 0.8))[:-1],
                           _line((-size * 0.15, size * 0.8), (size * 0.9, -size * 0.95))])]
    if style == ExtraMarkStyle.SLASH:
        return [_line((-size * 0.9, size * 0.9), (size * 0.9, -size * 0.9))]
    if style in (MarkStyle.FILLED, ExtraMarkStyle.CROSSED_THEN_FILLED):
        # back-and-forth scribble covering most of the box
        n = max(4, int(2 * size / (width * 0.8)))
        pts = []
        for i in range(n + 1):
            yy = -size * 0.85 + 1.7 * size * i / n
            xs = (-size * 0.85, size * 0.85) if i % 2 == 0 else (size * 0.85, -size * 0.85)
            pts += [(xs[0], yy), (xs[1], yy)]
        scribble = np.array(pts, dtype=np.float64)
        return [scribble] if style == MarkStyle.FILLED else x_strokes + [scribble]
    raise ValueError(f"unknown mark style {style!r}")


def _line(a: tuple[float, float], b: tuple[float, float], n: int = 6) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return np.array(a) * (1 - t) + np.array(b) * t


def _draw_graphite(img: np.ndarray, polylines: list[np.ndarray], tone: tuple[int, int, int], width: int,
                   strength: float, rng: random.Random, rubbed: bool = False) -> None:
    """Pencil: the strokes' coverage times a per-pixel grain (graphite catches on the paper's tooth),
    blended towards `tone`. `rubbed` spreads it (an eraser smears what it leaves)."""
    h, w = img.shape[:2]
    allpts = np.vstack(polylines)
    pad = width * 2 + 4
    x0, y0 = max(0, int(allpts[:, 0].min()) - pad), max(0, int(allpts[:, 1].min()) - pad)
    x1, y1 = min(w, int(allpts[:, 0].max()) + pad + 1), min(h, int(allpts[:, 1].max()) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return
    cover = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for pts in polylines:
        cv2.polylines(cover, [np.round((pts - (x0, y0)) * 16).astype(np.int32)], False, 255, thickness=width,
                      lineType=cv2.LINE_AA, shift=4)
    grain_rng = np.random.default_rng(rng.getrandbits(64))
    grain = np.asarray(grain_rng.uniform(0.45, 1.0, cover.shape), np.float32)
    alpha: np.ndarray = cover.astype(np.float32) / 255.0 * grain * strength
    if rubbed:
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.6, width / 2))
    patch = img[y0:y1, x0:x1].astype(np.float32)
    patch += (np.array(tone, np.float32) - patch) * alpha[:, :, None]
    img[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def _draw_dot(img: np.ndarray, cx: float, cy: float, radius: float, pen: Pen, rng: random.Random) -> None:
    """A disc with an anti-aliased edge that stays inside `radius` (pixel centres at integer coordinates):
    a 0.8 mm dot never spreads past 0.8 mm."""
    h, w = img.shape[:2]
    x0, y0 = max(0, int(np.floor(cx - radius))), max(0, int(np.floor(cy - radius)))
    x1, y1 = min(w, int(np.ceil(cx + radius)) + 1), min(h, int(np.ceil(cy + radius)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    cover = np.clip(radius - np.hypot(xx - cx, yy - cy), 0.0, 1.0)
    if pen.graphite:
        cover *= np.asarray(np.random.default_rng(rng.getrandbits(64)).uniform(0.45, 1.0, cover.shape), np.float32)
    patch = img[y0:y1, x0:x1].astype(np.float32)
    patch += (np.array(pen.ink, np.float32) - patch) * cover[:, :, None]
    img[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def _blend_blob(img: np.ndarray, cx: float, cy: float, sx: float, sy: float, theta: float, peak: float,
                colour: tuple[int, int, int]) -> None:
    """An elliptical Gaussian patch of `colour` at opacity `peak` at its centre."""
    h, w = img.shape[:2]
    r = 3 * max(sx, sy)
    x0, y0, x1, y1 = max(0, int(cx - r)), max(0, int(cy - r)), min(w, int(cx + r) + 1), min(h, int(cy + r) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    c, s = np.cos(theta), np.sin(theta)
    u, v = (dx * c + dy * s) / sx, (-dx * s + dy * c) / sy
    alpha = peak * np.exp(-0.5 * (u * u + v * v))
    patch = img[y0:y1, x0:x1].astype(np.float32)
    patch += (np.array(colour, np.float32) - patch) * alpha[:, :, None]
    img[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)

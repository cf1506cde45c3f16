"""Seeded synthetic fingerprints in the manner of SFinGe (Cappelli, Maio, Maltoni): masters and their impressions.

A *master finger* is drawn from one integer seed:
  1. a fingerprint class (arch, tented arch, left loop, right loop, whorl, at their natural frequencies) and its
     core/delta singularities;
  2. the orientation field of the zero-pole (Sherlock-Monro) model for those singularities, plus a smooth random
     perturbation (single-valued, so it cannot create or remove a singularity);
  3. a ridge-period map around 9 px (500 dpi) varying slowly by about +-10 %;
  4. a fingertip silhouette (an ellipse over a rounded lower part);
  5. the ridge pattern grown from random noise by iterated oriented Gabor filtering with saturation until it is a
     clean two-level ridge/valley pattern: where the flow forces ridges to start, end or split, minutiae appear by
     themselves, as on a real finger.
An *impression* is what a sensor sees of that finger on one touch: dry or wet skin (ridges thinned or thickened,
broken where dry), a partial contact region, an elastic (non-linear) skin distortion, a rotation and translation of
the finger on the glass, the sensor's background, blur and noise. Output: uint8 grey, ridges dark on light, 500 dpi,
of the sensor's size (default 256 x 288, the R307 UART module's image).

For 1:N scale tests `synthetic_template` draws a plausible minutia template directly (no image), in microseconds.

Coordinates are those of biometrics.template: x right, y down, angles counter-clockwise on screen from +x.
Pure: no clock, no disk; every random draw comes from the seed or the generator passed in.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from biometrics.template import FingerprintTemplate, Minutia, MinutiaKind

DPI = 500.0
R307_SIZE = (256, 288)  # (width, height): the R307 / AS608 UART sensor's image
LARGE_SIZE = (300, 400)  # a larger optical reader's window

# Henry classes and their frequencies in the population (Wilson et al., NIST, as SFinGe uses them).
CLASS_FREQUENCIES = {"arch": 0.037, "tented_arch": 0.029, "left_loop": 0.338, "right_loop": 0.317, "whorl": 0.279}

MEAN_RIDGE_PERIOD_PX = 9.0  # 0.46 mm at 500 dpi: the adult average inter-ridge distance
RIDGE_PERIOD_SPREAD = 0.1  # the period varies by about +-10 % across a finger (finer near the tip)
_ORIENTATION_BINS = 12  # Gabor kernels per frequency: 15 degrees apart, blended linearly between neighbours
_PERIOD_BINS = 2  # two kernel periods bracket the period map; blended linearly
_GROW_SCALE = 0.5  # the pattern is grown at half resolution (4.5 px period) - four times cheaper - then upsampled
# The smooth random bend added to the class model's orientation. Tuned with the real extractor and matcher
# (scripts/fpgen_scores.py): with the class model alone (0.22 rad, waves <= 1 period) synthetic fingers were too
# alike - 20 % of impostor pairs scored over the FMR-0.1 % threshold; waves of ~1-2 periods of 0.5 rad give each
# finger its own flow and ~50 minutiae, and impostors over the threshold fall to ~2 %.
_PERTURBATION_RAD = 0.5  # sd of the bend
_PERTURBATION_CELLS = 4.0  # its waves: at most half this many periods across the image
_PERTURBATION_FREQ = 4.0  # wave frequencies drawn N(0, 1) times this, then clipped to the cells
_MIN_MINUTIA_SPACING_PX = 11.0  # two minutiae closer than ~1.2 ridge periods are rare on real fingers
# Saturated two-level ridges by 14 passes; later ones only slowly pair off minutiae (14 vs 18: 92 % of pixels agree).
_GROW_ITERATIONS = 14


class QualityHint(enum.StrEnum):
    """What kind of capture to draw when the conditions are not given one by one."""

    GOOD = "good"  # a careful touch: full contact, normal skin, little noise
    TYPICAL = "typical"  # the everyday spread of touches at a polling station
    POOR = "poor"  # a bad but usable touch: dry, partial, noisy
    FAILED = "failed"  # a deliberately bad capture: very dry, tiny contact, smeared - should fail the quality check


@dataclass(frozen=True)
class Singularity:
    x: float
    y: float
    kind: str  # "core" | "delta"


@dataclass(frozen=True)
class ImpressionConditions:
    """The conditions of one touch (all drawn, or given): what the sensor saw."""

    rotation_deg: float  # finger rotated counter-clockwise on screen, about the image centre
    dx: float  # then moved right by dx and down by dy pixels
    dy: float
    distortion: float  # peak elastic skin displacement in pixels (0 = rigid)
    contact: float  # fraction of the fingertip's area touching the glass, 0..1
    pressure: float  # -1 very dry (thin, broken ridges) .. 0 normal .. +1 very wet (thick, merged ridges)
    noise: float  # sensor noise, standard deviation in grey levels


class SyntheticFinger:
    """One master finger, fully determined by `seed`; `size` is the sensor image (width, height) in pixels."""

    def __init__(self, seed: int, size: tuple[int, int] = R307_SIZE) -> None:
        self.seed = int(seed)
        self.width, self.height = int(size[0]), int(size[1])
        rng = np.random.default_rng([self.seed, 0x5F1])
        self.finger_class = str(rng.choice(list(CLASS_FREQUENCIES), p=_class_probabilities()))
        self.singularities = _plant_singularities(self.finger_class, self.width, self.height, rng)
        self._arch_bulge = float(rng.uniform(1.0, 1.8))
        self._perturbation = _smooth_noise_params(rng)
        self._period_params = _smooth_noise_params(rng)
        self._silhouette_params = (
            float(rng.uniform(0.36, 0.43)),  # half width, of the image width
            float(rng.uniform(0.40, 0.47)),  # half height, of the image height
            float(rng.uniform(-0.04, 0.04)),  # centre offsets
            float(rng.uniform(-0.03, 0.03)),
        )
        self._grow_seed = int(rng.integers(2**31))
        # Creases: 0-3 thin white lines, mostly low and across the finger; part of the finger, in every impression.
        self._creases = [(float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.45, 0.95)), float(rng.normal(0, 0.35)),
                          float(rng.uniform(0.15, 0.5)), float(rng.uniform(1.0, 2.5)))
                         for _ in range(int(rng.choice(4, p=[0.35, 0.35, 0.2, 0.1])))]

    # -- the master ------------------------------------------------------------------------------------------------

    @cached_property
    def orientation(self) -> np.ndarray:
        """Ridge orientation per pixel (H x W float32, radians in [0, pi), CCW on screen from +x)."""
        ys, xs = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        return self.orientation_at(xs, ys)

    @cached_property
    def ridge_period(self) -> np.ndarray:
        """Ridge period per pixel (H x W float32, pixels at 500 dpi)."""
        ys, xs = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        return self.ridge_period_at(xs, ys)

    def orientation_at(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Ridge orientation (radians in [0, pi)) at image points."""
        return _orientation_at(self.finger_class, self.singularities, self._arch_bulge, self._perturbation,
                               self.width, self.height, xs, ys)

    def ridge_period_at(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Ridge period (pixels) at image points."""
        field = _smooth_field(self._period_params, self.width, self.height, cells=3, xs=xs, ys=ys)
        # Finer ridges toward the fingertip (top), coarser near the crease: SFinGe's frequency map shape.
        ramp = ys / np.float32(self.height) - np.float32(0.5)
        return (MEAN_RIDGE_PERIOD_PX * (1.0 + RIDGE_PERIOD_SPREAD * (0.6 * field + 0.6 * ramp))).astype(np.float32)

    @cached_property
    def silhouette(self) -> np.ndarray:
        """The fingertip's area (H x W float32, 1 inside, soft 0..1 border)."""
        return _silhouette(self._silhouette_params, self.width, self.height)

    @cached_property
    def ridges(self) -> np.ndarray:
        """The master ridge pattern before rendering (H x W float32 in [-1, 1], +1 = ridge crest)."""
        # Grown at a coarser scale (cheaper); the fields are evaluated on that grid's pixel centres directly.
        sw, sh = round(self.width * _GROW_SCALE), round(self.height * _GROW_SCALE)
        ys, xs = np.mgrid[0:sh, 0:sw].astype(np.float32)
        xs = (xs + 0.5) / np.float32(_GROW_SCALE) - 0.5
        ys = (ys + 0.5) / np.float32(_GROW_SCALE) - 0.5
        theta = self.orientation_at(xs, ys)
        period = self.ridge_period_at(xs, ys) * np.float32(_GROW_SCALE)
        grown = _grow_ridges(theta, period, self._grow_seed, (self.width, self.height))
        for cx, cy, tilt, length, width in self._creases:
            ux, uy = math.cos(tilt) * length * self.width, math.sin(tilt) * length * self.width
            x, y = self.width * cx, self.height * cy
            cv2.line(grown, (round(x - ux), round(y - uy)), (round(x + ux), round(y + uy)), -1.0,
                     max(1, round(width)), cv2.LINE_AA)
        return grown

    @cached_property
    def master(self) -> np.ndarray:
        """The master image: an ideal capture (full contact, normal skin, no pose change, no noise), uint8."""
        ink = _ridge_ink(self.ridges, pressure=0.0) * self.silhouette
        return np.clip(235.0 - 200.0 * ink, 0, 255).astype(np.uint8)

    # -- impressions -----------------------------------------------------------------------------------------------

    def impression(self, rng: np.random.Generator | int, *, rotation_deg: float | None = None, dx: float | None = None,
                   dy: float | None = None, distortion: float | None = None, contact: float | None = None,
                   pressure: float | None = None, noise: float | None = None,
                   quality_hint: QualityHint | str = QualityHint.TYPICAL) -> np.ndarray:
        """One touch of this finger on the sensor (uint8 H x W, ridges dark). None = drawn for `quality_hint`."""
        return self.impression_with_conditions(
            rng, rotation_deg=rotation_deg, dx=dx, dy=dy, distortion=distortion, contact=contact, pressure=pressure,
            noise=noise, quality_hint=quality_hint)[0]

    def impression_with_conditions(self, rng: np.random.Generator | int, *, rotation_deg: float | None = None,
                                   dx: float | None = None, dy: float | None = None, distortion: float | None = None,
                                   contact: float | None = None, pressure: float | None = None,
                                   noise: float | None = None, quality_hint: QualityHint | str = QualityHint.TYPICAL,
                                   ) -> tuple[np.ndarray, ImpressionConditions]:
        """As `impression`, and the conditions actually used (the simulator's ground truth)."""
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))
        drawn = _draw_conditions(QualityHint(quality_hint), gen)
        given = {"rotation_deg": rotation_deg, "dx": dx, "dy": dy, "distortion": distortion, "contact": contact,
                 "pressure": pressure, "noise": noise}
        cond = ImpressionConditions(**{k: float(v if v is not None else getattr(drawn, k)) for k, v in given.items()})
        return _render_impression(self, cond, gen), cond

    def pose_matrix(self, rotation_deg: float, dx: float, dy: float) -> np.ndarray:
        """The 2 x 3 affine map master pixel -> impression pixel of a rigid pose (cv2.warpAffine convention)."""
        return pose_matrix(rotation_deg, dx, dy, self.width, self.height)


def pose_matrix(rotation_deg: float, dx: float, dy: float, width: int, height: int) -> np.ndarray:
    """Rotation by `rotation_deg` CCW on screen about the image centre, then translation by (dx, dy)."""
    m = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), rotation_deg, 1.0)
    m[0, 2] += dx
    m[1, 2] += dy
    return m


def synthetic_template(seed: int, n_minutiae: int | None = None, size: tuple[int, int] = R307_SIZE) -> FingerprintTemplate:
    """A plausible minutia template without an image (for 1:N galleries of thousands): minutiae spaced like real ones
    (at least ~1.2 ridge periods apart) inside a fingertip silhouette, directions along a smooth class orientation
    field, ridge endings and bifurcations about half and half. Deterministic in `seed`."""
    rng = np.random.default_rng([int(seed), 0x7E3])
    width, height = size
    finger_class = str(rng.choice(list(CLASS_FREQUENCIES), p=_class_probabilities()))
    singularities = _plant_singularities(finger_class, width, height, rng)
    bulge = float(rng.uniform(1.0, 1.8))
    perturbation = _smooth_noise_params(rng)
    count = int(n_minutiae) if n_minutiae is not None else int(np.clip(rng.normal(38, 8), 18, 60))
    sx, sy = float(rng.uniform(0.36, 0.43)) * width, float(rng.uniform(0.40, 0.47)) * height
    points = _spaced_points_in_ellipse(rng, count, width / 2.0, height / 2.0, sx * 0.92, sy * 0.92,
                                       min_spacing=_MIN_MINUTIA_SPACING_PX)
    if len(points) == 0:
        return FingerprintTemplate(width=width, height=height, minutiae=())
    theta = _orientation_at(finger_class, singularities, bulge, perturbation, width, height, points[:, 0], points[:, 1])
    flip = rng.integers(0, 2, len(points)) * math.pi  # a ridge ending points either way along the ridge
    angle = np.mod(theta + flip, 2 * math.pi)
    kinds = np.where(rng.random(len(points)) < 0.5, MinutiaKind.RIDGE_ENDING, MinutiaKind.BIFURCATION)
    quality = rng.integers(40, 95, len(points))
    minutiae = tuple(Minutia(float(x), float(y), float(a), MinutiaKind(int(k)), int(q))
                     for (x, y), a, k, q in zip(points, angle, kinds, quality, strict=True))
    return FingerprintTemplate(width=width, height=height, minutiae=minutiae, quality=int(rng.integers(50, 90)))


def perturbed_template(template: FingerprintTemplate, rng: np.random.Generator | int, *, rotation_deg: float = 10.0,
                       shift_px: float = 15.0, jitter_px: float = 2.5, jitter_rad: float = 0.12, drop: float = 0.2,
                       spurious: float = 0.15) -> FingerprintTemplate:
    """Another 'impression' of a template at minutia level (genuine probes for 1:N scale tests): a random rigid pose
    up to `rotation_deg`/`shift_px`, per-minutia jitter, a fraction dropped and spurious ones added."""
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))
    arr = template.as_array()
    keep = gen.random(len(arr)) >= drop
    arr = arr[keep]
    a = math.radians(gen.uniform(-rotation_deg, rotation_deg))
    m = pose_matrix(math.degrees(a), gen.uniform(-shift_px, shift_px), gen.uniform(-shift_px, shift_px),
                    template.width, template.height)
    xy = arr[:, :2] @ m[:, :2].T + m[:, 2] + gen.normal(0, jitter_px, (len(arr), 2))
    ang = np.mod(arr[:, 2] + a + gen.normal(0, jitter_rad, len(arr)), 2 * math.pi)  # CCW on screen, like the pose
    n_extra = round(spurious * len(template.minutiae))
    extra_xy = np.column_stack([gen.uniform(0.15, 0.85, n_extra) * template.width,
                                gen.uniform(0.15, 0.85, n_extra) * template.height])
    extra_ang = gen.uniform(0, 2 * math.pi, n_extra)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < template.width) & (xy[:, 1] >= 0) & (xy[:, 1] < template.height)
    rows = [(x, y, t, int(k), int(q)) for (x, y), t, k, q in zip(xy[inside], ang[inside], arr[inside, 3],
                                                                   arr[inside, 4], strict=True)]
    rows += [(x, y, t, int(MinutiaKind.RIDGE_ENDING), 30) for (x, y), t in zip(extra_xy, extra_ang, strict=True)]
    minutiae = tuple(Minutia(float(x), float(y), float(t), MinutiaKind(k), q) for x, y, t, k, q in rows)
    return FingerprintTemplate(width=template.width, height=template.height, minutiae=minutiae,
                               quality=template.quality)


def poincare_indices(orientation: np.ndarray, step: int = 8, radius: int = 6) -> list[tuple[int, int, float]]:
    """Singular points of an orientation field (radians mod pi): (x, y, index) where the Poincaré index over a small
    square loop is +1/2 (core) or -1/2 (delta); neighbouring detections of one singularity are merged."""
    h, w = orientation.shape
    found: list[tuple[int, int, float]] = []
    # Counter-clockwise on screen (y down): along the bottom to the right, up the right side, back along the top.
    offsets = ([(dx, radius) for dx in range(-radius, radius)] + [(radius, dy) for dy in range(radius, -radius, -1)]
               + [(dx, -radius) for dx in range(radius, -radius, -1)] + [(-radius, dy) for dy in range(-radius, radius)])
    for y in range(radius, h - radius, step):
        for x in range(radius, w - radius, step):
            loop = np.array([orientation[y + oy, x + ox] for ox, oy in offsets])
            d = np.diff(np.append(loop, loop[0]))
            d = (d + math.pi / 2) % math.pi - math.pi / 2
            index = float(d.sum() / (2 * math.pi))
            if abs(abs(index) - 0.5) < 0.1 and not any(abs(fx - x) <= 1.5 * step and abs(fy - y) <= 1.5 * step
                                                       and fi * index > 0 for fx, fy, fi in found):
                found.append((x, y, round(index * 2) / 2))
    return found


# -- the class model ---------------------------------------------------------------------------------------------------

def _class_probabilities() -> np.ndarray:
    p = np.array(list(CLASS_FREQUENCIES.values()))
    return p / p.sum()


def _plant_singularities(finger_class: str, width: int, height: int, rng: np.random.Generator) -> tuple[Singularity, ...]:
    """Cores and deltas where they sit on real fingers of the class (image frame, y down)."""
    cx = width * (0.5 + rng.uniform(-0.06, 0.06))
    cy = height * (0.42 + rng.uniform(-0.06, 0.06))
    if finger_class == "arch":
        return ()
    if finger_class == "tented_arch":
        gap = height * rng.uniform(0.12, 0.18)
        return (Singularity(cx, cy, "core"), Singularity(cx + rng.uniform(-4, 4), cy + gap, "delta"))
    if finger_class in ("left_loop", "right_loop"):
        # Left loop (ridges enter and leave on the left): the delta lies to the right below the core.
        side = 1.0 if finger_class == "left_loop" else -1.0
        ddx = side * width * rng.uniform(0.22, 0.32)
        ddy = height * rng.uniform(0.25, 0.35)
        return (Singularity(cx, cy, "core"), Singularity(cx + ddx, min(cy + ddy, height * 0.9), "delta"))
    # whorl: two cores a little apart (a spiral or a circle), a delta low on each side
    tilt = rng.uniform(-0.5, 0.5)
    sep = height * rng.uniform(0.04, 0.08)  # half the distance between the two cores
    c1 = Singularity(cx - sep * math.sin(tilt), cy - sep * math.cos(tilt), "core")
    c2 = Singularity(cx + sep * math.sin(tilt), cy + sep * math.cos(tilt), "core")
    dy = cy + height * rng.uniform(0.24, 0.32)
    d1 = Singularity(cx - width * rng.uniform(0.28, 0.36), min(dy, height * 0.9), "delta")
    d2 = Singularity(cx + width * rng.uniform(0.28, 0.36), min(dy + rng.uniform(-10, 10), height * 0.9), "delta")
    return (c1, c2, d1, d2)


def _orientation_field(finger_class: str, singularities: tuple[Singularity, ...], bulge: float,
                       perturbation: np.ndarray, width: int, height: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return _orientation_at(finger_class, singularities, bulge, perturbation, width, height, xs, ys)


def _orientation_at(finger_class: str, singularities: tuple[Singularity, ...], bulge: float, perturbation: np.ndarray,
                    width: int, height: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Zero-pole model: theta = 1/2 (sum arg(z - delta) - sum arg(z - core)), in the maths frame (y up), which is the
    on-screen counter-clockwise frame; plus an arch's bulge and a smooth perturbation."""
    theta = np.zeros(np.shape(xs), dtype=np.float64)
    for s in singularities:
        arg = np.arctan2(-(ys - s.y), xs - s.x)  # y flipped: maths frame
        theta += 0.5 * arg if s.kind == "core" else -0.5 * arg
    if finger_class == "arch":
        # Ridges rising over the middle: the slope of y = b exp(-u^2), stronger toward the base.
        u = (xs - width * 0.5) / (width * 0.35)
        depth = np.clip((ys / height) * 1.2, 0.2, 1.0)
        theta += np.arctan(-bulge * 2.0 * u * np.exp(-u * u) * depth)  # slope of y_up = bulge * exp(-u^2)
    theta += _smooth_field(perturbation, width, height, cells=_PERTURBATION_CELLS, xs=xs, ys=ys,
                           freq=_PERTURBATION_FREQ) * _PERTURBATION_RAD
    return np.mod(theta, math.pi).astype(np.float32)


def _smooth_noise_params(rng: np.random.Generator) -> np.ndarray:
    """Random coefficients of a low-frequency field (a few cosine waves): smooth, single-valued."""
    return rng.normal(0.0, 1.0, (6, 4))  # per wave: amplitude, fx, fy, phase


def _smooth_field(params: np.ndarray, width: int, height: int, cells: float, xs: np.ndarray | None = None,
                  ys: np.ndarray | None = None, freq: float = 1.0) -> np.ndarray:
    """Sum of a few random cosine waves of at most `cells` periods across the image; roughly unit amplitude."""
    if xs is None or ys is None:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xs / width, ys / height
    out = np.zeros(np.shape(xs), dtype=np.float32)
    for amp, fx, fy, phase in params:
        out += np.float32(amp) * np.cos(2 * math.pi * (np.clip(fx * freq, -cells, cells) * 0.5 * u
                                                       + np.clip(fy * freq, -cells, cells) * 0.5 * v) + phase)
    return out / math.sqrt(len(params) / 2.0)


def _silhouette(params: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    """An ellipse for the fingertip, with a squarer lower part (toward the first crease), soft 3 px edge."""
    hw, hh, ox, oy = params
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u = (xs - width * (0.5 + ox)) / (width * hw)
    v = (ys - height * (0.5 + oy)) / (height * hh)
    power = np.where(v > 0, 4.0, 2.0)  # superellipse below the centre: the finger widens toward the crease
    r = np.abs(u) ** power + np.abs(v) ** power
    edge_px = 3.0
    return np.clip((1.0 - r) * min(width * hw, height * hh) / (2 * edge_px), 0.0, 1.0).astype(np.float32)


# -- growing the ridges ------------------------------------------------------------------------------------------------

def _grow_ridges(theta: np.ndarray, per: np.ndarray, seed: int, size: tuple[int, int]) -> np.ndarray:
    """Iterated oriented Gabor filtering of noise on the coarse grid, then upsampled to `size`: +1 ridges, -1
    valleys. The saturation (clip) after each pass is what turns the filtered noise into two-level ridges."""
    w, h = size
    sh, sw = theta.shape
    weights = _bin_weights(theta, per)
    bank = _gabor_bank(float(per.min()), float(per.max()))
    rng = np.random.default_rng(seed)
    img = rng.normal(0.0, 1.0, (sh, sw)).astype(np.float32)
    border = cv2.BORDER_REFLECT
    for _ in range(_GROW_ITERATIONS):
        acc = np.zeros((sh, sw), dtype=np.float32)
        for pb, (gauss, kernels) in enumerate(bank):
            blur = cv2.sepFilter2D(img, cv2.CV_32F, gauss, gauss, borderType=border)
            for b, (cx, cy, sx, sy, dc, gain) in enumerate(kernels):
                wmap = weights[pb * _ORIENTATION_BINS + b]
                if wmap is None:
                    continue
                even = cv2.sepFilter2D(img, cv2.CV_32F, cx, cy, borderType=border)
                even -= cv2.sepFilter2D(img, cv2.CV_32F, sx, sy, borderType=border)
                acc += wmap * ((even - np.float32(dc) * blur) * np.float32(gain))
        scale = np.float32(2.5 / (np.sqrt(np.mean(acc * acc)) + 1e-6))
        img = np.clip(acc * scale, -1.0, 1.0)
    big = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big * 1.5, -1.0, 1.0)


_SeparableGabor = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]


def _gabor_bank(period_min: float, period_max: float) -> list[tuple[np.ndarray, list[_SeparableGabor]]]:
    """Even Gabor kernels, _PERIOD_BINS periods x _ORIENTATION_BINS orientations, zero mean, unit gain, each as two
    separable passes: with an isotropic envelope G(x)G(y), cos(ax + by) = cos(ax)cos(by) - sin(ax)sin(by); the mean
    is removed with the envelope's own blur, shared by a period's kernels. Four 1-D passes instead of one 2-D one:
    measured 5x faster than cv2.filter2D at 15 x 15."""
    periods = np.linspace(period_min, period_max, _PERIOD_BINS) if _PERIOD_BINS > 1 else [period_min]
    bank = []
    for p in periods:
        sigma = 0.55 * p  # about one period of support each side of the centre: long enough to continue ridges
        half = math.ceil(2.2 * sigma)
        r = np.arange(-half, half + 1, dtype=np.float64)
        g = np.exp(-(r**2) / (2 * sigma**2))
        env = np.outer(g, g)
        kernels: list[_SeparableGabor] = []
        for b in range(_ORIENTATION_BINS):
            t = math.pi * b / _ORIENTATION_BINS
            a, c = 2 * math.pi * math.sin(t) / p, 2 * math.pi * math.cos(t) / p  # across = x sin t + y cos t
            dense = env * np.cos(a * r[None, :] + c * r[:, None])
            dc = dense.sum() / env.sum()
            gain = 2.0 / np.abs(dense - dc * env).sum()
            kernels.append(((g * np.cos(a * r)).astype(np.float32), (g * np.cos(c * r)).astype(np.float32),
                            (g * np.sin(a * r)).astype(np.float32), (g * np.sin(c * r)).astype(np.float32),
                            float(dc), float(gain)))
        bank.append((g.astype(np.float32), kernels))
    return bank


def _bin_weights(theta: np.ndarray, period: np.ndarray) -> list[np.ndarray | None]:
    """Per-pixel blend weights of the kernel bank (orientation and period linear interpolation); None = unused."""
    pos = theta / math.pi * _ORIENTATION_BINS
    lo = np.floor(pos).astype(np.int32) % _ORIENTATION_BINS
    frac = (pos - np.floor(pos)).astype(np.float32)
    hi = (lo + 1) % _ORIENTATION_BINS
    pmin, pmax = float(period.min()), float(period.max())
    pf = ((period - pmin) / max(pmax - pmin, 1e-6)).astype(np.float32) if _PERIOD_BINS > 1 else np.zeros_like(period)
    out: list[np.ndarray | None] = []
    for pb in range(_PERIOD_BINS):
        pw = pf if pb == 1 else 1.0 - pf
        for b in range(_ORIENTATION_BINS):
            w = (np.where(lo == b, 1.0 - frac, 0.0) + np.where(hi == b, frac, 0.0)).astype(np.float32) * pw
            out.append(w if w.any() else None)
    return out


# -- impressions -------------------------------------------------------------------------------------------------------

_CONDITION_RANGES: dict[QualityHint, dict[str, tuple[float, float]]] = {
    # (low, high) of a uniform draw; rotation and shifts are symmetric about 0.
    QualityHint.GOOD: {"rotation_deg": (-6, 6), "dx": (-8, 8), "dy": (-8, 8), "distortion": (0, 2.5),
                       "contact": (0.9, 1.0), "pressure": (-0.15, 0.15), "noise": (1, 4)},
    QualityHint.TYPICAL: {"rotation_deg": (-15, 15), "dx": (-20, 20), "dy": (-20, 20), "distortion": (0, 7),
                          "contact": (0.6, 1.0), "pressure": (-0.55, 0.55), "noise": (2, 9)},
    QualityHint.POOR: {"rotation_deg": (-25, 25), "dx": (-35, 35), "dy": (-35, 35), "distortion": (3, 8),
                       "contact": (0.45, 0.7), "pressure": (-0.8, 0.8), "noise": (6, 14)},
    QualityHint.FAILED: {"rotation_deg": (-30, 30), "dx": (-40, 40), "dy": (-40, 40), "distortion": (4, 10),
                         "contact": (0.08, 0.2), "pressure": (-1.0, -0.9), "noise": (14, 24)},
}


def _draw_conditions(hint: QualityHint, rng: np.random.Generator) -> ImpressionConditions:
    r = _CONDITION_RANGES[hint]
    return ImpressionConditions(**{k: float(rng.uniform(lo, hi)) for k, (lo, hi) in r.items()})


def _render_impression(finger: SyntheticFinger, c: ImpressionConditions, rng: np.random.Generator) -> np.ndarray:
    w, h = finger.width, finger.height
    ink = _ridge_ink(finger.ridges, c.pressure)
    if c.pressure < -0.3:  # dry skin: ridges break where the skin does not touch in small patches
        ink *= _dry_breaks(rng, w, h, strength=(-c.pressure - 0.3) / 0.7)
    foot = finger.silhouette * _contact_region(finger, c.contact, rng)
    ink *= foot
    # Geometry in one remap: for each impression pixel, where on the master it comes from.
    inv = cv2.invertAffineTransform(pose_matrix(c.rotation_deg, c.dx, c.dy, w, h))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    map_y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    if c.distortion > 0:
        ex, ey = _elastic_field(rng, w, h, c.distortion)
        map_x += ex
        map_y += ey
    ink = cv2.remap(ink.astype(np.float32), map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0.0)
    # Pressure is never even across a touch: a smooth field of 0.65..1 prints some parts paler.
    uneven = cv2.resize(rng.uniform(0.65, 1.0, (3, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    ink *= uneven
    ink = np.maximum(ink, _residue(rng, w, h))
    background = float(rng.uniform(215, 245))
    contrast = float(rng.uniform(150, 200)) * (1.0 - 0.25 * max(c.pressure, 0.0))  # wet: a greyer, smeared print
    img = background - contrast * ink
    img = cv2.GaussianBlur(img, (0, 0), 0.7 + 0.6 * max(c.pressure, 0.0))
    if c.noise > 0:
        img += rng.normal(0.0, c.noise, (h, w)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _residue(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Smudges on the glass (skin grease, dust): 0-4 soft grey spots of 4-12 px, in no impression alike."""
    out = np.zeros((h, w), dtype=np.float32)
    for _ in range(int(rng.integers(0, 5))):
        x, y, r = float(rng.uniform(0, w)), float(rng.uniform(0, h)), float(rng.uniform(4, 12))
        cv2.circle(out, (round(x), round(y)), round(r), float(rng.uniform(0.15, 0.45)), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(out, (0, 0), 2.0) if out.any() else out


def _ridge_ink(ridges: np.ndarray, pressure: float) -> np.ndarray:
    """How dark each pixel prints, 0..1. Pressure moves the threshold: dry thins the ridges, wet thickens them."""
    threshold = -0.55 * pressure  # dry (pressure < 0): only the crests print
    return (1.0 / (1.0 + np.exp(-4.0 * (ridges - threshold)))).astype(np.float32)


def _dry_breaks(rng: np.random.Generator, w: int, h: int, strength: float) -> np.ndarray:
    """A mask of small gaps (about half a ridge period) where dry skin fails to print."""
    small = rng.random((h // 4 + 1, w // 4 + 1)).astype(np.float32)
    blobs = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w]
    cut = 0.15 + 0.35 * float(np.clip(strength, 0, 1))
    return np.clip((blobs - cut) * 6.0 + 0.5, 0.0, 1.0)


def _contact_region(finger: SyntheticFinger, contact: float, rng: np.random.Generator) -> np.ndarray:
    """The part of the fingertip pressed on the glass: an ellipse of `contact` times the silhouette's area, placed
    at random inside it (a light or tilted touch prints one side of the finger)."""
    if contact >= 0.999:
        return np.ones((finger.height, finger.width), dtype=np.float32)
    hw, hh, ox, oy = finger._silhouette_params
    a, b = finger.width * hw, finger.height * hh
    k = math.sqrt(max(contact, 0.01))
    ca, cb = a * k, b * k
    cx = finger.width * (0.5 + ox) + rng.uniform(-1, 1) * (a - ca) * 0.8
    cy = finger.height * (0.5 + oy) + rng.uniform(-1, 1) * (b - cb) * 0.8
    ys, xs = np.mgrid[0:finger.height, 0:finger.width].astype(np.float32)
    r = ((xs - cx) / ca) ** 2 + ((ys - cy) / cb) ** 2
    return np.clip((1.0 - r) * min(ca, cb) / 6.0, 0.0, 1.0).astype(np.float32)


def _elastic_field(rng: np.random.Generator, w: int, h: int, peak_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random skin displacement, zero at a random contact centre and growing toward the border (Cappelli's
    distortion model: the centre of the touch holds, the skin around it stretches)."""
    grid = rng.normal(0.0, 1.0, (2, 4, 4)).astype(np.float32)
    ex = cv2.resize(grid[0], (w, h), interpolation=cv2.INTER_CUBIC)
    ey = cv2.resize(grid[1], (w, h), interpolation=cv2.INTER_CUBIC)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt(((xs - cx) / w) ** 2 + ((ys - cy) / h) ** 2) / 0.7
    gain = np.float32(peak_px / (max(float(np.abs(ex).max()), float(np.abs(ey).max())) + 1e-6))
    ramp = np.clip(d, 0.0, 1.0) ** 1.5
    return ex * gain * ramp, ey * gain * ramp


def _spaced_points_in_ellipse(rng: np.random.Generator, count: int, cx: float, cy: float, a: float, b: float,
                              min_spacing: float) -> np.ndarray:
    """Up to `count` points inside the ellipse, no two closer than `min_spacing`: a jittered square grid (spacing
    chosen so the ellipse holds about 1.6 x count nodes), jitter kept below (grid - min_spacing) / 2, then a random
    subset. Vectorised: a few microseconds."""
    grid = max(math.sqrt(math.pi * a * b / (1.6 * max(count, 1))), min_spacing + 2.0)
    gx = np.arange(cx - a, cx + a + 1e-9, grid)
    gy = np.arange(cy - b, cy + b + 1e-9, grid)
    pts = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2) + rng.uniform(0, grid, 2) - grid / 2
    pts = pts[((pts[:, 0] - cx) / a) ** 2 + ((pts[:, 1] - cy) / b) ** 2 <= 1.0]
    pts += rng.uniform(-1, 1, pts.shape) * (grid - min_spacing) / 2.0
    return pts[rng.permutation(len(pts))[:count]]

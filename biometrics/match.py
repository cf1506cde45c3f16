"""Fingerprint matching: 1:1 verification and 1:N identification over minutiae templates.

    from biometrics.match import prepare, similarity, verify, Gallery, THRESHOLD
    similarity(probe, enrolled)              # calibrated: -log10 of the false match rate at this score
    verify(probe, [enrolled, ...]).matched   # score >= THRESHOLD
    Gallery(templates, ids).identify(probe, top=5)

Design (after the Minutia Cylinder-Code of Cappelli, Ferrara and Maltoni, 2010, with a global consolidation):
1. Every template is brought to 500 dpi units from its own resolution (`x_res_ppcm`, `y_res_ppcm`), so a
   record from another vendor or at 569 dpi compares in the same physical distances.
2. Local descriptor per minutia (`_cylinders`): the neighbours within `CYLINDER_RADIUS` in the minutia's own
   frame (rotation and translation invariant), spread over a grid of cells and direction bins with Gaussians;
   L2-normalised, so the similarity of two minutiae is a dot product and the whole matrix one matmul.
3. Consolidation (`_consolidate`): the best local pairs each propose an alignment (rotation + translation);
   under each, minutiae pair up as mutual nearest neighbours within a tolerance that grows with the distance
   from the reference pair (elastic distortion); the best proposal is refined by a least-squares fit to its
   pairs and counted again. Raw score = pairs^2 / (minutiae of A in the overlap x those of B in the overlap),
   so partial contact is not punished for what the other impression never saw.
4. Calibration: the raw score maps to -log10(FMR) measured on real impostor scores (FVC2002, commercial and
   our templates; biometrics/data/match_calibration.json), so `THRESHOLD = 3.0` reads "FMR 0.1 %".

Pure: the calibration table is package data read once at import; no clock, no device.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

from biometrics.template import FingerprintTemplate

REFERENCE_PPCM = 197.0  # 500 dpi: the unit every distance below is in
CYLINDER_RADIUS = 70.0  # px at 500 dpi, MCC's R: about 8 ridge periods
CELLS_ACROSS = 8  # spatial cells across the cylinder's diameter (MCC uses 16; 8 keeps 1:N in budget)
DIRECTION_BINS = 6  # MCC's N_D
SIGMA_SPACE = 9.33  # px, MCC's sigma_S (28/3)
SIGMA_DIRECTION = 2 * math.pi / 9  # MCC's sigma_D
MIN_NEIGHBOURS = 2  # a cylinder with fewer neighbours says nothing (MCC's min_M)
PAIRS_MIN, PAIRS_MAX = 4, 12  # local pairs averaged for the local score (MCC's n_P range)
PROPOSALS = 10  # alignments tried in the consolidation
DISTANCE_TOLERANCE = 6.0  # px at the reference pair ... (chosen on FVC2002-B: 12 -> 6 px, ours EER 4.74 -> 4.12 %)
DISTORTION_PER_PX = 0.08  # ... growing by this much per px away from it (elastic skin)
DISTANCE_TOLERANCE_MAX = 28.0
ANGLE_TOLERANCE = math.pi / 6  # 30 deg: vendors place directions differently (sd ~6 deg measured)
OVERLAP_MARGIN = 20.0  # px: a minutia this close outside the other's bounding box still counts as seen
# minutiae: an overlap smaller than this is not trusted to be all of it (10 -> 12 chosen on FVC2002 DB1 and DB3
# for FNMR@FMR 0.1 %, 8.39 -> 5.90 %; held out, DB2 and DB4: 8.93 -> 8.22 %)
OVERLAP_FLOOR = 12
LIKENESS_WEIGHT = 0.5  # a pair counts half as one, half by its cylinders' likeness (FNMR@0.1 % 19.5 -> 14.6 %)
SHORTLIST = 25  # 1:N: templates consolidated after the screening pass
SCREEN_DIMENSIONS = 48  # 1:N screening: principal axes kept of the cylinders (most of their energy)

_CALIBRATION = json.loads(resources.files("biometrics.data").joinpath("match_calibration.json").read_text())
THRESHOLD: float = float(_CALIBRATION["threshold"])


@dataclass(frozen=True)
class MatchResult:
    score: float  # calibrated, the best over the enrolled templates
    matched: bool
    best_index: int  # which enrolled template gave the score (-1: none)


@dataclass(frozen=True)
class MatchTemplate:
    """A template prepared once for matching: 500-dpi points, directions, local descriptors."""

    points: np.ndarray  # N x 2 float32, px at 500 dpi
    angles: np.ndarray  # N float32, radians
    cylinders: np.ndarray  # N x D float32, unit rows (zero rows: too few neighbours)
    cos: np.ndarray  # cos and sin of the angles, once
    sin: np.ndarray
    x: np.ndarray  # the points' columns, contiguous (the consolidation broadcasts over them)
    y: np.ndarray
    low: np.ndarray  # the points' bounding box widened by OVERLAP_MARGIN: where the other finger is "seen"
    high: np.ndarray

    @property
    def size(self) -> int:
        return len(self.angles)


def similarity(a: FingerprintTemplate | MatchTemplate, b: FingerprintTemplate | MatchTemplate) -> float:
    """How alike two fingers are, calibrated: -log10 of the false match rate at this score (0 = no evidence)."""
    return calibrate(raw_similarity(_prepared(a), _prepared(b)))


def verify(
    probe: FingerprintTemplate | MatchTemplate, enrolled: Sequence[FingerprintTemplate | MatchTemplate]
) -> MatchResult:
    """1:1 (or 1:few, the voter's enrolled fingers): the best score against any of them, and the decision."""
    prepared = _prepared(probe)
    scores = [similarity(prepared, template) for template in enrolled]
    if not scores:
        return MatchResult(score=0.0, matched=False, best_index=-1)
    best = int(np.argmax(scores))
    return MatchResult(score=scores[best], matched=scores[best] >= THRESHOLD, best_index=best)


def prepare(template: FingerprintTemplate) -> MatchTemplate:
    """The matcher's view of a template, computed once (descriptors are the costly part)."""
    array = template.as_array()
    points = array[:, :2] * np.array(
        [REFERENCE_PPCM / max(template.x_res_ppcm, 1), REFERENCE_PPCM / max(template.y_res_ppcm, 1)]
    )
    angles = array[:, 2].copy()
    points, angles = points.astype(np.float32), angles.astype(np.float32)
    return MatchTemplate(
        points=points,
        angles=angles,
        cylinders=_cylinders(points.astype(np.float64), angles.astype(np.float64)),
        cos=np.cos(angles),
        sin=np.sin(angles),
        x=np.ascontiguousarray(points[:, 0]),
        y=np.ascontiguousarray(points[:, 1]),
        low=points.min(axis=0, initial=np.inf) - OVERLAP_MARGIN,
        high=points.max(axis=0, initial=-np.inf) + OVERLAP_MARGIN,
    )


def calibrate(raw: float | np.ndarray) -> float | np.ndarray:
    """Raw score -> -log10(FMR) by the shipped impostor table; beyond its end, extrapolated on its last slope."""
    knots_raw = np.asarray(_CALIBRATION["raw"], dtype=np.float64)
    knots_log = np.asarray(_CALIBRATION["minus_log10_fmr"], dtype=np.float64)
    values = np.interp(raw, knots_raw, knots_log)
    slope = (knots_log[-1] - knots_log[-2]) / max(knots_raw[-1] - knots_raw[-2], 1e-9)
    beyond = knots_log[-1] + slope * (np.asarray(raw) - knots_raw[-1])
    values = np.where(np.asarray(raw) > knots_raw[-1], np.minimum(beyond, 12.0), values)
    return float(values) if np.ndim(values) == 0 else values


def raw_similarity(a: MatchTemplate, b: MatchTemplate) -> float:
    """Uncalibrated score in [0, 1]: the consolidated pairing of two prepared templates."""
    if a.size < 2 or b.size < 2:
        return 0.0
    local = a.cylinders @ b.cylinders.T
    return _consolidate(a, b, local)


class Gallery:
    """1:N over many templates. A first pass ranks the whole gallery by a local score: every probe cylinder
    against every gallery cylinder in one matmul, in a `SCREEN_DIMENSIONS`-dimensional projection (principal
    axes of the gallery's own cylinders), each probe minutia's best per template, the best `n_P` of those
    averaged. The best `SHORTLIST` templates are then consolidated exactly as in 1:1."""

    def __init__(self, templates: Sequence[FingerprintTemplate | MatchTemplate], ids: Sequence[Hashable]) -> None:
        if len(templates) != len(ids):
            raise ValueError(f"{len(templates)} templates but {len(ids)} ids")
        self.ids = list(ids)
        self.templates = [_prepared(t) for t in templates]
        self._sizes = np.array([t.size for t in self.templates], dtype=np.int64)
        stacked = [t.cylinders for t in self.templates if t.size]
        cylinders = np.concatenate(stacked) if stacked else np.zeros((0, _descriptor_size()), np.float32)
        self._projection = _principal_axes(cylinders, SCREEN_DIMENSIONS)
        self._screen = np.ascontiguousarray((cylinders @ self._projection).T)  # D' x total minutiae
        self._starts = np.concatenate([[0], np.cumsum(self._sizes)[:-1]])
        self._present = self._sizes > 0

    def identify(self, probe: FingerprintTemplate | MatchTemplate, top: int = 5) -> list[tuple[Hashable, float]]:
        """The `top` best (id, calibrated score), best first."""
        prepared = _prepared(probe)
        if not self.templates or prepared.size < 2 or self._screen.shape[1] == 0:
            return [(identity, 0.0) for identity in self.ids[:top]]
        local = (prepared.cylinders @ self._projection) @ self._screen  # probe minutiae x gallery minutiae
        best = np.full((prepared.size, len(self.templates)), -1.0, dtype=np.float32)
        best[:, self._present] = np.maximum.reduceat(local, self._starts[self._present], axis=1)
        pairs = _pairs_averaged(np.minimum(prepared.size, self._sizes))
        keep = min(int(pairs.max()), prepared.size)
        ranked = -np.sort(-np.partition(best, prepared.size - keep, axis=0)[prepared.size - keep :], axis=0)
        local_score = (ranked * (np.arange(keep)[:, None] < pairs[None, :])).sum(axis=0) / pairs
        shortlist = np.argsort(-local_score)[: max(SHORTLIST, top)]
        scored = [(int(i), float(calibrate(raw_similarity(prepared, self.templates[i])))) for i in shortlist]
        scored.sort(key=lambda item: -item[1])
        return [(self.ids[i], score) for i, score in scored[:top]]


def _principal_axes(cylinders: np.ndarray, dimensions: int) -> np.ndarray:
    """D x d: the first principal axes of the cylinders (about the origin: dot products are what we keep)."""
    total = cylinders.shape[1]
    if len(cylinders) < dimensions:
        return np.eye(total, dtype=np.float32)
    sample = cylinders[:: max(1, len(cylinders) // 20000)].astype(np.float64)
    _, _, axes = np.linalg.svd(sample, full_matrices=False)
    return np.ascontiguousarray(axes[:dimensions].T.astype(np.float32))


def _prepared(template: FingerprintTemplate | MatchTemplate) -> MatchTemplate:
    return template if isinstance(template, MatchTemplate) else prepare(template)


def _cell_centres() -> np.ndarray:
    step = 2 * CYLINDER_RADIUS / CELLS_ACROSS
    ticks = (np.arange(CELLS_ACROSS) - (CELLS_ACROSS - 1) / 2) * step
    grid = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    return grid[np.hypot(grid[:, 0], grid[:, 1]) <= CYLINDER_RADIUS]


_CELLS = _cell_centres()
_BIN_CENTRES = -math.pi + (np.arange(DIRECTION_BINS) + 0.5) * 2 * math.pi / DIRECTION_BINS


def _descriptor_size() -> int:
    return len(_CELLS) * DIRECTION_BINS


def _cylinders(points: np.ndarray, angles: np.ndarray) -> np.ndarray:
    count = len(angles)
    if count == 0:
        return np.zeros((0, _descriptor_size()), dtype=np.float32)
    offsets = points[None, :, :] - points[:, None, :]  # [i, j] = p_j - p_i
    # the minutia's own frame: its direction on screen is (cos, -sin) with y down
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    along = offsets[..., 0] * cos - offsets[..., 1] * sin
    across = offsets[..., 0] * sin + offsets[..., 1] * cos
    distance = np.hypot(offsets[..., 0], offsets[..., 1])
    near = (distance <= CYLINDER_RADIUS + 3 * SIGMA_SPACE) & ~np.eye(count, dtype=bool)
    local = np.stack([along, across], axis=-1)  # N x N x 2
    spatial = np.exp(
        -((local[:, :, None, :] - _CELLS[None, None, :, :]) ** 2).sum(-1) / (2 * SIGMA_SPACE**2)
    )  # N x N x C
    spatial *= near[:, :, None]
    turn = _wrap(angles[None, :] - angles[:, None])
    directional = np.exp(-(_wrap(turn[:, :, None] - _BIN_CENTRES[None, None, :]) ** 2) / (2 * SIGMA_DIRECTION**2))
    cylinders = np.einsum("ijc,ijd->icd", spatial, directional).reshape(count, -1)
    norms = np.linalg.norm(cylinders, axis=1, keepdims=True)
    enough = ((distance <= CYLINDER_RADIUS) & near).sum(axis=1) >= MIN_NEIGHBOURS
    cylinders = np.where(enough[:, None] & (norms > 0), cylinders / np.maximum(norms, 1e-12), 0.0)
    return cylinders.astype(np.float32)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _pairs_averaged(smaller: np.ndarray | int) -> np.ndarray:
    """MCC's n_P: more local pairs averaged when both templates have more minutiae."""
    smaller = np.asarray(smaller, dtype=np.float64)
    weight = 1 / (1 + np.exp(-0.4 * (smaller - 20)))
    return np.maximum(np.rint(PAIRS_MIN + weight * (PAIRS_MAX - PAIRS_MIN)).astype(int), 1)


def _consolidate(a: MatchTemplate, b: MatchTemplate, local: np.ndarray) -> float:
    flat = np.argpartition(-local, min(PROPOSALS, local.size) - 1, axis=None)[:PROPOSALS]
    ref_a, ref_b = flat // local.shape[1], flat % local.shape[1]
    rotation = _wrap(b.angles[ref_b] - a.angles[ref_a])  # K
    x, y, moved_angles = _transform(a, rotation, a.x[ref_a], a.y[ref_a], b.x[ref_b], b.y[ref_b])
    radius = np.hypot(a.x[None, :] - a.x[ref_a, None], a.y[None, :] - a.y[ref_a, None])
    paired, partner = _mutual_pairs(x, y, moved_angles, b, radius)
    counts = np.add.reduce(paired, axis=1)
    best = int(np.argmax(counts))
    matched, placed_x, placed_y = int(counts[best]), x[best], y[best]
    chosen, chosen_partner = paired[best], partner[best]
    if matched >= 3:
        rotation_fit, centre_a, centre_b = _fit(a.points[chosen], b.points[chosen_partner[chosen]])
        refit_x, refit_y, refit_angles = _transform(
            a, rotation_fit[None], centre_a[None, 0], centre_a[None, 1], centre_b[None, 0], centre_b[None, 1]
        )
        spread = np.hypot(a.x - centre_a[0], a.y - centre_a[1])[None] * 0.5
        paired_refit, partner_refit = _mutual_pairs(refit_x, refit_y, refit_angles, b, spread)
        refit_matched = int(np.add.reduce(paired_refit, axis=None))
        if refit_matched > matched:
            matched, placed_x, placed_y = refit_matched, refit_x[0], refit_y[0]
            chosen, chosen_partner = paired_refit[0], partner_refit[0]
    seen_a = _inside(placed_x, placed_y, b.low, b.high)
    low = np.array([placed_x.min(), placed_y.min()]) - OVERLAP_MARGIN
    high = np.array([placed_x.max(), placed_y.max()]) + OVERLAP_MARGIN
    seen_b = _inside(b.x, b.y, low, high)
    overlap = max(seen_a, OVERLAP_FLOOR) * max(seen_b, OVERLAP_FLOOR)
    # each pair counts by how alike its two neighbourhoods are (a pair of lone look-alikes counts less)
    likeness = float(np.add.reduce(np.minimum(np.maximum(local[chosen, chosen_partner[chosen]], 0.0), 1.0))) if matched else 0.0
    evidence = matched * (LIKENESS_WEIGHT * likeness + (1 - LIKENESS_WEIGHT) * matched)
    return min(evidence / overlap, 1.0)


def _transform(
    a: MatchTemplate, rotation: np.ndarray, origin_x: np.ndarray, origin_y: np.ndarray, target_x: np.ndarray,
    target_y: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A's points rotated about each origin by its rotation (screen CCW, y down) and the origin moved onto its
    target: x, y and directions, K x N each."""
    cos, sin = np.cos(rotation)[:, None], np.sin(rotation)[:, None]
    dx = a.x[None, :] - origin_x[:, None]
    dy = a.y[None, :] - origin_y[:, None]
    x = cos * dx + sin * dy + target_x[:, None]
    y = -sin * dx + cos * dy + target_y[:, None]
    return x, y, a.angles[None, :] + rotation[:, None]


_COS_ANGLE_TOLERANCE = math.cos(ANGLE_TOLERANCE)


def _mutual_pairs(
    x: np.ndarray, y: np.ndarray, moved_angles: np.ndarray, b: MatchTemplate, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours within the distance and direction tolerances, per proposal:
    (K x Na paired?, K x Na index of the B minutia it pairs with)."""
    gap = x[:, :, None] - b.x
    gap *= gap
    dy = y[:, :, None] - b.y
    dy *= dy
    gap += dy
    tolerance = np.minimum(DISTANCE_TOLERANCE + DISTORTION_PER_PX * radius, DISTANCE_TOLERANCE_MAX) ** 2
    aligned = np.cos(moved_angles)[:, :, None] * b.cos
    dy = np.sin(moved_angles)[:, :, None] * b.sin  # reuses the name: the direction's second term
    aligned += dy
    near = gap <= tolerance[:, :, None]
    near &= aligned >= _COS_ANGLE_TOLERANCE
    gap = np.where(near, gap, np.inf)
    nearest_b = gap.argmin(axis=2)  # K x Na
    nearest_a = gap.argmin(axis=1)  # K x Nb
    k = np.arange(gap.shape[0])[:, None]
    paired = (nearest_a[k, nearest_b] == np.arange(gap.shape[1])) & np.logical_or.reduce(near, axis=2)
    return paired, nearest_b


def _fit(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares rigid fit (Kabsch in 2-D) of paired points: rotation, centre of A, centre of B."""
    ca, cb = np.add.reduce(pa, axis=0) / len(pa), np.add.reduce(pb, axis=0) / len(pb)  # the means, less overhead
    qa, qb = pa - ca, pb - cb
    # screen-CCW rotation r maps (dx, dy) to (cos dx + sin dy, -sin dx + cos dy)
    s = (qa[:, 1] * qb[:, 0] - qa[:, 0] * qb[:, 1]).sum()
    c = (qa * qb).sum()
    return np.array(math.atan2(s, c)), ca, cb


def _inside(x: np.ndarray, y: np.ndarray, low: np.ndarray, high: np.ndarray) -> int:
    """How many of the points lie in the box [low, high] (x, y)."""
    return int(np.count_nonzero((x >= low[0]) & (x <= high[0]) & (y >= low[1]) & (y <= high[1])))

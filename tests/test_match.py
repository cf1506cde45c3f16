"""Matcher: invariant to pose, tolerant of jitter and loss, calibrated, and the 1:N gallery finds the planted finger."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biometrics import match
from biometrics.template import FingerprintTemplate, Minutia, MinutiaKind


def _finger(seed: int, count: int = 40) -> FingerprintTemplate:
    """A random minutia set over a finger-sized area (260 x 360 px at 500 dpi)."""
    rng = np.random.default_rng(seed)
    minutiae = tuple(
        Minutia(float(x), float(y), float(a), MinutiaKind(int(k)))
        for x, y, a, k in zip(
            rng.uniform(20, 280, count), rng.uniform(20, 380, count), rng.uniform(0, 2 * math.pi, count),
            rng.integers(1, 3, count), strict=True,
        )
    )
    return FingerprintTemplate(300, 400, minutiae=minutiae)


def _another_impression(
    template: FingerprintTemplate, seed: int, turn: float = 0.4, shift: tuple[float, float] = (25.0, -30.0)
) -> FingerprintTemplate:
    """The same finger placed again: rotated, moved, each minutia jittered, a few lost and a few spurious."""
    rng = np.random.default_rng(seed)
    centre = np.array([150.0, 200.0])
    cos, sin = math.cos(turn), math.sin(turn)
    kept = []
    for m in template.minutiae:
        if rng.random() < 0.15:
            continue
        dx, dy = m.x - centre[0], m.y - centre[1]
        x = cos * dx + sin * dy + centre[0] + shift[0] + rng.normal(0, 2.0)
        y = -sin * dx + cos * dy + centre[1] + shift[1] + rng.normal(0, 2.0)
        angle = (m.angle + turn + rng.normal(0, 0.08)) % (2 * math.pi)
        kept.append(Minutia(float(x), float(y), float(angle), m.kind))
    for _ in range(5):
        kept.append(Minutia(float(rng.uniform(20, 280)), float(rng.uniform(20, 380)), float(rng.uniform(0, 6.28))))
    return FingerprintTemplate(600, 600, minutiae=tuple(kept))


def test_a_rotated_moved_jittered_impression_matches_above_the_threshold() -> None:
    finger = _finger(1)
    score = match.similarity(finger, _another_impression(finger, seed=2))
    assert score >= match.THRESHOLD


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_an_unrelated_finger_scores_below_the_threshold(seed: int) -> None:
    assert match.similarity(_finger(seed), _finger(seed + 100)) < match.THRESHOLD


def test_the_score_barely_depends_on_which_side_is_the_probe() -> None:
    a, b = _finger(7), _another_impression(_finger(7), seed=8)
    forward, backward = match.similarity(a, b), match.similarity(b, a)
    assert abs(forward - backward) <= 0.15 * max(forward, backward)


def test_a_template_matches_itself_best() -> None:
    finger = match.prepare(_finger(9))
    other = match.prepare(_another_impression(_finger(9), seed=10))
    assert match.raw_similarity(finger, finger) > 0.9 > match.raw_similarity(finger, other)


@pytest.mark.parametrize("count", [0, 1])
def test_an_empty_or_single_minutia_template_scores_zero_without_error(count: int) -> None:
    empty = _finger(11, count=count)
    assert match.similarity(empty, _finger(12)) == 0.0
    assert match.similarity(_finger(12), empty) == 0.0
    assert match.verify(empty, [_finger(12)]).matched is False


def test_distances_compare_in_physical_units_whatever_the_resolution() -> None:
    finger = _finger(13)
    impression = _another_impression(finger, seed=14)
    scale = 569 / 500  # the same finger scanned at 569 dpi: more pixels, and the record says so
    at_569 = FingerprintTemplate(
        700, 700, x_res_ppcm=224, y_res_ppcm=224,
        minutiae=tuple(Minutia(m.x * scale, m.y * scale, m.angle, m.kind) for m in impression.minutiae),
    )
    assert match.similarity(finger, at_569) == pytest.approx(match.similarity(finger, impression), abs=0.5)


def test_verify_reports_the_best_enrolled_template_and_the_decision() -> None:
    finger = _finger(15)
    result = match.verify(_another_impression(finger, seed=16), [_finger(17), finger])
    assert result.best_index == 1
    assert result.matched is True
    assert match.verify(finger, []) == match.MatchResult(score=0.0, matched=False, best_index=-1)


def test_the_gallery_finds_the_planted_finger_first() -> None:
    templates = [_finger(seed) for seed in range(100, 160)]
    ids = [f"voter-{seed}" for seed in range(100, 160)]
    found = match.Gallery(templates, ids).identify(_another_impression(templates[37], seed=18), top=3)
    assert found[0][0] == "voter-137"
    assert found[0][1] >= match.THRESHOLD
    assert len(found) == 3 and found[1][1] < match.THRESHOLD


def test_the_calibrated_score_grows_with_the_raw_score_and_the_threshold_reads_as_fmr() -> None:
    raw = np.linspace(0, 1, 50)
    assert np.all(np.diff(match.calibrate(raw)) >= 0)
    assert match.THRESHOLD >= 3.0  # FMR 0.1 % or stricter, set on real impostor scores


def test_a_gallery_needs_as_many_ids_as_templates() -> None:
    with pytest.raises(ValueError, match="2 templates but 1 ids"):
        match.Gallery([_finger(1), _finger(2)], ["only-one"])

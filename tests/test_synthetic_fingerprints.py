"""The synthetic fingerprint generator: determinism, ridge geometry, classes, impressions, templates."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import pytest

from simulator.fingerprints import (
    QualityHint,
    SyntheticFinger,
    perturbed_template,
    poincare_indices,
    synthetic_template,
)

_CLEAN = {"distortion": 0.0, "contact": 1.0, "pressure": 0.0, "noise": 0.0}


def _first_seed_of_class(name: str) -> int:
    return _seeds_of_class(name, 1)[0]


@functools.cache
def _seeds_of_class(name: str, count: int) -> list[int]:
    return [s for s in range(400) if SyntheticFinger(s).finger_class == name][:count]


def _ridge_period_px(img: np.ndarray) -> float:
    """Period at the peak of the radially summed power spectrum (frequencies between 1/20 and 1/5 per pixel)."""
    a = img.astype(np.float64) - img.mean()
    h, w = a.shape
    power = np.abs(np.fft.fft2(a * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    bins = np.linspace(1 / 20, 1 / 5, 61)
    sums = np.histogram(r, bins=bins, weights=power)[0]
    return float(1 / (0.5 * (bins[np.argmax(sums)] + bins[np.argmax(sums) + 1])))


def _foreground_px(img: np.ndarray) -> int:
    """Pixels inside the print: where the local grey level varies (ridges), not flat background."""
    f = img.astype(np.float32)
    var = cv2.blur(f * f, (15, 15)) - cv2.blur(f, (15, 15)) ** 2
    return int((var > 400).sum())


def test_same_seed_gives_the_same_master_and_impression_bytes() -> None:
    a, b = SyntheticFinger(7), SyntheticFinger(7)
    assert a.master.tobytes() == b.master.tobytes()
    assert a.impression(3).tobytes() == b.impression(np.random.default_rng(3)).tobytes()
    assert synthetic_template(11) == synthetic_template(11)


def test_different_seeds_give_different_masters() -> None:
    a, b = SyntheticFinger(1).master, SyntheticFinger(2).master
    assert a.shape == b.shape == (288, 256)
    assert a.dtype == np.uint8
    assert np.mean(a != b) > 0.3


def test_size_is_configurable_to_the_larger_reader() -> None:
    finger = SyntheticFinger(5, size=(300, 400))
    assert finger.master.shape == (400, 300)
    assert finger.impression(1).shape == (400, 300)


def test_impression_differs_from_master_but_matches_it_once_the_pose_is_undone() -> None:
    finger, other = SyntheticFinger(21), SyntheticFinger(22)
    imp = finger.impression(4, rotation_deg=12.0, dx=9.0, dy=-6.0, **_CLEAN)
    assert np.mean(np.abs(imp.astype(int) - finger.master.astype(int))) > 20
    back = cv2.warpAffine(imp, cv2.invertAffineTransform(finger.pose_matrix(12.0, 9.0, -6.0)), (256, 288),
                          borderValue=255)
    inside = (finger.silhouette > 0.99) & (cv2.warpAffine(np.ones_like(imp), cv2.invertAffineTransform(
        finger.pose_matrix(12.0, 9.0, -6.0)), (256, 288)) > 0)
    genuine = np.corrcoef(back[inside].astype(float), finger.master[inside].astype(float))[0, 1]
    impostor = np.corrcoef(back[inside].astype(float), other.master[inside].astype(float))[0, 1]
    assert genuine > 0.85
    assert abs(impostor) < 0.2


@pytest.mark.parametrize("seed", [0, 3, 8])
def test_ridge_period_of_master_and_impression_is_that_of_a_finger_at_500_dpi(seed: int) -> None:
    finger = SyntheticFinger(seed)
    assert 8.0 <= _ridge_period_px(finger.master) <= 11.0
    assert 8.0 <= _ridge_period_px(finger.impression(seed, **_CLEAN)) <= 11.0


@pytest.mark.parametrize(("name", "cores", "deltas"), [
    ("arch", 0, 0), ("tented_arch", 1, 1), ("left_loop", 1, 1), ("right_loop", 1, 1), ("whorl", 2, 2)])
def test_each_class_has_its_planted_singularities_in_the_orientation_field(name: str, cores: int, deltas: int) -> None:
    for seed in _seeds_of_class(name, 3):
        finger = SyntheticFinger(seed)
        found = poincare_indices(finger.orientation)
        assert sorted(i for _, _, i in found) == [-0.5] * deltas + [0.5] * cores, seed
        for s in finger.singularities:
            want = 0.5 if s.kind == "core" else -0.5
            assert any(i == want and math.hypot(x - s.x, y - s.y) < 16 for x, y, i in found), seed


def test_left_loop_delta_lies_right_of_its_core_and_right_loop_left() -> None:
    left = SyntheticFinger(_first_seed_of_class("left_loop")).singularities
    right = SyntheticFinger(_first_seed_of_class("right_loop")).singularities
    assert left[1].x > left[0].x
    assert right[1].x < right[0].x


def test_partial_contact_prints_a_smaller_foreground() -> None:
    finger = SyntheticFinger(33)
    full = finger.impression(1, rotation_deg=0, dx=0, dy=0, **_CLEAN)
    partial = finger.impression(1, rotation_deg=0, dx=0, dy=0, **{**_CLEAN, "contact": 0.3})
    assert _foreground_px(partial) < 0.5 * _foreground_px(full)


def test_failed_capture_hint_prints_a_tiny_dry_patch() -> None:
    finger = SyntheticFinger(34)
    img, cond = finger.impression_with_conditions(2, quality_hint=QualityHint.FAILED)
    assert cond.contact <= 0.2 and cond.pressure <= -0.9
    typical = finger.impression(2, quality_hint="typical")
    assert _foreground_px(img) < 0.35 * _foreground_px(typical)


def test_explicit_conditions_override_the_drawn_ones() -> None:
    _, cond = SyntheticFinger(3).impression_with_conditions(9, rotation_deg=-4.5, noise=0.0)
    assert cond.rotation_deg == -4.5
    assert cond.noise == 0.0


def test_wet_prints_darker_than_dry() -> None:
    finger = SyntheticFinger(40)
    pose = {"rotation_deg": 0.0, "dx": 0.0, "dy": 0.0, "distortion": 0.0, "contact": 1.0, "noise": 0.0}
    inside, outside = finger.silhouette > 0.99, finger.silhouette == 0

    def ridge_share(img: np.ndarray) -> float:  # pixels printed clearly darker than the sensor's background
        return float((img[inside] < np.median(img[outside]) - 60).mean())

    assert ridge_share(finger.impression(5, pressure=0.8, **pose)) > ridge_share(
        finger.impression(5, pressure=-0.8, **pose)) + 0.2


def test_synthetic_template_has_spaced_minutiae_inside_the_image() -> None:
    t = synthetic_template(5, n_minutiae=40)
    arr = t.as_array()
    assert len(arr) == 40
    assert (t.width, t.height) == (256, 288)
    assert ((arr[:, 0] >= 0) & (arr[:, 0] < 256) & (arr[:, 1] >= 0) & (arr[:, 1] < 288)).all()
    d = np.hypot(arr[:, None, 0] - arr[None, :, 0], arr[:, None, 1] - arr[None, :, 1])
    assert d[~np.eye(len(arr), dtype=bool)].min() >= 11.0
    assert ((arr[:, 2] >= 0) & (arr[:, 2] < 2 * math.pi)).all()


def test_perturbed_template_keeps_most_minutiae_near_their_posed_place() -> None:
    t = synthetic_template(6, n_minutiae=40)
    p = perturbed_template(t, 1, rotation_deg=0.0, shift_px=0.0, jitter_px=1.0, drop=0.0, spurious=0.0)
    a, b = t.as_array(), p.as_array()
    assert len(b) == 40
    assert np.abs(a[:, :2] - b[:, :2]).max() < 6.0


@pytest.mark.parametrize("seed", [0, 2, 15])
def test_grown_ridges_follow_the_planted_orientation_field(seed: int) -> None:
    finger = SyntheticFinger(seed)
    g = finger.master.astype(np.float32)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    sxx, syy, sxy = (cv2.GaussianBlur(v, (0, 0), 6) for v in (gx * gx, gy * gy, gx * gy))
    # Ridge direction is perpendicular to the dominant gradient; y down, so CCW on screen flips the sign of y.
    measured = np.mod(0.5 * np.arctan2(-2 * sxy, sxx - syy) + math.pi / 2, math.pi)
    diff = np.abs((measured - finger.orientation + math.pi / 2) % math.pi - math.pi / 2)
    inside = cv2.erode((finger.silhouette > 0.99).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    assert np.median(diff[inside]) < math.radians(8)

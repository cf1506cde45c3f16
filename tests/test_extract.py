"""The minutiae extractor on drawn ridge patterns whose minutiae are known (no FVC data needed)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from biometrics.extract import STAGES, ExtractionParams, extract
from biometrics.template import MinutiaKind

PERIOD = 9.0  # px at 500 dpi, a typical fingertip's ridge period
CENTRE = (150.0, 150.0)


def dislocated_ridges(dark_ending: bool, rotation: float = 0.0, size: int = 300) -> np.ndarray:
    """Parallel sinusoid ridges with one phase dislocation at CENTRE: one extra ridge begins there.

    With rotation 0 the ridges run vertically and the extra ridge runs up from CENTRE: dark_ending draws it
    as a dark ridge that ends at CENTRE (a ridge ending pointing up, 90 deg); otherwise the dark ridge below
    forks there into two going up (a bifurcation pointing up between its arms, 90 deg).
    """
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    across = (x - CENTRE[0]) * math.cos(rotation) + (y - CENTRE[1]) * math.sin(rotation)
    phase = 2 * math.pi * across / PERIOD + np.arctan2(y - CENTRE[1], x - CENTRE[0])
    sign = 1.0 if dark_ending else -1.0
    return np.clip(128 + sign * 100 * np.cos(phase), 0, 255).astype(np.uint8)


def angle_between_deg(a: float, b: float) -> float:
    return abs(math.degrees(math.atan2(math.sin(a - b), math.cos(a - b))))


def test_ridge_ending_is_found_where_the_ridge_stops_pointing_along_the_ridge() -> None:
    found = extract(dislocated_ridges(dark_ending=True)).template.minutiae
    assert len(found) == 1
    (ending,) = found
    assert ending.kind is MinutiaKind.RIDGE_ENDING
    assert math.hypot(ending.x - CENTRE[0], ending.y - CENTRE[1]) <= 3.0
    assert angle_between_deg(ending.angle, math.pi / 2) <= 12.0


def test_bifurcation_is_found_at_the_fork_pointing_between_its_arms() -> None:
    found = extract(dislocated_ridges(dark_ending=False)).template.minutiae
    assert len(found) == 1
    (fork,) = found
    assert fork.kind is MinutiaKind.BIFURCATION
    assert math.hypot(fork.x - CENTRE[0], fork.y - CENTRE[1]) <= 5.0
    assert angle_between_deg(fork.angle, math.pi / 2) <= 12.0


def test_minutia_direction_turns_with_the_ridges() -> None:
    # ridges turned 0.5 rad clockwise on screen (the across-ridge axis turns +0.5 rad in image axes, y down)
    found = extract(dislocated_ridges(dark_ending=False, rotation=0.5)).template.minutiae
    assert len(found) == 1
    assert math.hypot(found[0].x - CENTRE[0], found[0].y - CENTRE[1]) <= 5.0
    assert angle_between_deg(found[0].angle, math.pi / 2 - 0.5) <= 12.0


def test_blank_image_has_no_minutiae_and_asks_for_another_capture() -> None:
    extraction = extract(np.full((300, 300), 200, np.uint8))
    assert extraction.template.minutiae == ()
    assert extraction.quality == 0
    assert extraction.retry
    assert extraction.remarks == ("no finger on the reader",)


def test_noise_without_ridges_scores_low() -> None:
    noise = np.random.default_rng(7).normal(128, 30, (300, 300)).clip(0, 255).astype(np.uint8)
    extraction = extract(noise)
    assert extraction.quality < 20
    assert extraction.retry


def test_569_dpi_input_gives_coordinates_in_its_own_pixels_and_records_224_ppcm() -> None:
    factor = 569 / 500
    image = cv2.resize(dislocated_ridges(dark_ending=True), None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    template = extract(image, dpi=569.0).template
    assert (template.x_res_ppcm, template.y_res_ppcm) == (224, 224)
    assert (template.width, template.height) == (image.shape[1], image.shape[0])
    assert len(template.minutiae) == 1
    ending = template.minutiae[0]
    assert math.hypot(ending.x - CENTRE[0] * factor, ending.y - CENTRE[1] * factor) <= 4.0
    assert angle_between_deg(ending.angle, math.pi / 2) <= 12.0


def test_500_dpi_template_records_197_ppcm_and_the_image_size() -> None:
    template = extract(dislocated_ridges(dark_ending=True)[:, :280]).template
    assert (template.width, template.height, template.x_res_ppcm) == (280, 300, 197)


def test_dump_hook_sees_every_stage_in_order_as_a_grey_image() -> None:
    seen: list[tuple[str, tuple[int, ...], np.dtype]] = []
    extract(dislocated_ridges(dark_ending=True), dump=lambda stage, image: seen.append((stage, image.shape, image.dtype)))
    assert [stage for stage, _, _ in seen] == list(STAGES)
    assert all(shape == (300, 300) and dtype == np.uint8 for _, shape, dtype in seen)


def test_parameters_are_frozen_and_change_the_result() -> None:
    params = ExtractionParams()
    with pytest.raises(AttributeError):
        params.block = 8  # type: ignore[misc]
    wide_border = ExtractionParams(filters=type(params.filters)(border=200.0))
    assert extract(dislocated_ridges(dark_ending=True), params=wide_border).template.minutiae == ()


def test_colour_array_is_refused_with_its_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(10, 10, 3\)"):
        extract(np.zeros((10, 10, 3), np.uint8))

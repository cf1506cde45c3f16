"""Loading fingerprint images: resolution from the file, clear errors naming the file for bad ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from biometrics.errors import BiometricInputError
from biometrics.images import load_fingerprint_image


def ridges(width: int = 120, height: int = 100) -> np.ndarray:
    x = np.arange(width)[None, :].repeat(height, axis=0)
    return (128 + 100 * np.sin(x * 0.7)).astype(np.uint8)


def test_tiff_resolution_comes_from_its_metadata(tmp_path: Path) -> None:
    path = tmp_path / "db2.tif"
    Image.fromarray(ridges()).save(path, dpi=(569, 569))
    pixels, dpi = load_fingerprint_image(path, dpi=500)
    assert dpi == 569.0
    assert pixels.shape == (100, 120) and pixels.dtype == np.uint8
    assert np.array_equal(pixels, ridges())


def test_png_and_bmp_resolution_come_from_phys_and_pixels_per_metre(tmp_path: Path) -> None:
    Image.fromarray(ridges()).save(tmp_path / "a.png", dpi=(500, 500))
    Image.fromarray(ridges()).save(tmp_path / "a.bmp", dpi=(1000, 1000))
    assert load_fingerprint_image(tmp_path / "a.png")[1] == pytest.approx(500.0, abs=0.1)
    assert load_fingerprint_image(tmp_path / "a.bmp")[1] == pytest.approx(1000.0, abs=0.2)


def test_without_metadata_the_given_dpi_then_500(tmp_path: Path) -> None:
    path = tmp_path / "fvc.tif"
    Image.fromarray(ridges()).save(path)  # like FVC2002's files: no XResolution
    assert load_fingerprint_image(path, dpi=569)[1] == 569.0
    assert load_fingerprint_image(path)[1] == 500.0


def test_placeholder_resolution_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "screen.png"
    Image.fromarray(ridges()).save(path, dpi=(72, 72))
    assert load_fingerprint_image(path, dpi=569)[1] == 569.0


def test_colour_image_is_converted_to_grey(tmp_path: Path) -> None:
    path = tmp_path / "colour.png"
    grey = ridges()
    Image.fromarray(np.stack([grey] * 3, axis=2)).save(path)
    pixels, _ = load_fingerprint_image(path)
    assert pixels.ndim == 2
    assert np.abs(pixels.astype(int) - grey).max() <= 1


def test_sixteen_bit_grey_is_scaled_to_eight(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(ridges().astype(np.uint16) * 257).save(path)
    pixels, _ = load_fingerprint_image(path)
    assert pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - ridges()).max() <= 1


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        ("empty.tif", b"", "empty"),
        ("notes.tif", b"this is not an image\n" * 10, "not a TIFF, PNG or BMP"),
    ],
)
def test_unusable_files_name_the_file_and_the_fault(tmp_path: Path, name: str, content: bytes, what: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BiometricInputError, match=what) as caught:
        load_fingerprint_image(path)
    assert str(path) in str(caught.value)


def test_truncated_tiff_names_the_file(tmp_path: Path) -> None:
    whole = tmp_path / "whole.tif"
    Image.fromarray(ridges()).save(whole)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(BiometricInputError, match="cut.tif") as caught:
        load_fingerprint_image(cut)
    assert caught.value.path == str(cut)


def test_one_pixel_image_is_too_small(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(path)
    with pytest.raises(BiometricInputError, match=r"dot.png: 1x1 px is too small"):
        load_fingerprint_image(path)


def test_huge_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "poster.png"
    Image.fromarray(np.zeros((100, 3000), np.uint8)).save(path)
    with pytest.raises(BiometricInputError, match=r"poster.png: 3000x100 px is too large"):
        load_fingerprint_image(path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(BiometricInputError, match="nowhere.tif: cannot be read"):
        load_fingerprint_image(tmp_path / "nowhere.tif")


def test_implausible_dpi_argument_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.tif"
    Image.fromarray(ridges()).save(path)
    with pytest.raises(BiometricInputError, match="--dpi 50 is not"):
        load_fingerprint_image(path, dpi=50)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=600), st.sampled_from(["x.tif", "x.png", "x.bmp"]))
def test_any_bytes_give_an_image_or_a_named_error(tmp_path: Path, data: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    try:
        pixels, dpi = load_fingerprint_image(path)
    except BiometricInputError as error:
        assert error.path == str(path)
    else:
        assert pixels.ndim == 2 and dpi > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=1, max_value=4000))
def test_any_cut_of_a_real_tiff_gives_an_image_or_a_named_error(tmp_path: Path, keep: int) -> None:
    whole = tmp_path / "whole.tif"
    if not whole.exists():
        Image.fromarray(ridges(200, 150)).save(whole)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[:keep])
    try:
        load_fingerprint_image(cut)
    except BiometricInputError as error:
        assert error.path == str(cut)

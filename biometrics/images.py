"""Reading fingerprint images from disk (TIFF, PNG, BMP) with their scanning resolution.

The I/O side of biometrics/: the pipelines themselves (biometrics/extract) take a numpy array and a dpi.
Resolution comes from the file (TIFF XResolution/ResolutionUnit, PNG pHYs, BMP pixels per metre), else
from the caller's `dpi`, else 500 (the ISO/IEC 19794-4 reference resolution). Colour is converted to grey
rather than refused. Anything that cannot be a fingerprint image raises `BiometricInputError` naming the
file and what is wrong.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from biometrics.errors import BiometricInputError

DEFAULT_DPI = 500.0  # ISO/IEC 19794-4 reference resolution; FVC2002 DB1, DB3 and DB4 are scanned at 500 dpi

# A finger is about 2 cm wide: below 64 px at 500 dpi (3 mm) there is no ridge pattern to read.
MIN_SIDE_PX = 64
# The largest flat single-finger capture (ISO 19794-4: 1 inch square at 1000 dpi is 1000 px) with margin;
# anything larger is not one fingerprint and would only cost memory.
MAX_SIDE_PX = 2048
# Resolutions a fingerprint reader can have; a file claiming 1 or 72 dpi carries a placeholder, not a scan.
PLAUSIBLE_DPI = (250.0, 1500.0)

# TIFF tags (TIFF 6.0 section 8)
_X_RESOLUTION = 282
_RESOLUTION_UNIT = 296  # 1 none, 2 inch, 3 centimetre


def load_fingerprint_image(path: str | os.PathLike[str], dpi: float | None = None) -> tuple[np.ndarray, float]:
    """Grey uint8 H x W pixels and the scanning resolution in dpi (file metadata, else `dpi`, else 500)."""
    name = str(path)
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise BiometricInputError(name, f"cannot be read ({exc.strerror or exc}); check the path") from None
    if size == 0:
        raise BiometricInputError(name, "the file is empty (0 bytes); capture or copy the image again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                file_dpi = _resolution_from_metadata(image)
                pixels = _grey(image, name)
    except BiometricInputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BiometricInputError(name, "not a TIFF, PNG or BMP image (or its header is damaged)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BiometricInputError(name, f"the image data is damaged or truncated ({exc}); copy the file again") from None
    height, width = pixels.shape
    if min(height, width) < MIN_SIDE_PX:
        raise BiometricInputError(
            name, f"{width}x{height} px is too small for a fingerprint (at least {MIN_SIDE_PX} px each side)"
        )
    if max(height, width) > MAX_SIDE_PX:
        raise BiometricInputError(
            name, f"{width}x{height} px is too large for one fingerprint (at most {MAX_SIDE_PX} px each side)"
        )
    if file_dpi is not None:
        return pixels, file_dpi
    if dpi is not None:
        if not PLAUSIBLE_DPI[0] <= dpi <= PLAUSIBLE_DPI[1]:
            raise BiometricInputError(
                name, f"--dpi {dpi:g} is not a fingerprint reader's resolution ({PLAUSIBLE_DPI[0]:g}-{PLAUSIBLE_DPI[1]:g})"
            )
        return pixels, float(dpi)
    return pixels, DEFAULT_DPI


def _grey(image: Image.Image, name: str) -> np.ndarray:
    """8-bit grey pixels: colour is converted (ITU-R 601 luma), 16-bit grey scaled down, palette resolved."""
    if image.width == 0 or image.height == 0:
        raise BiometricInputError(name, "the image has no pixels")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.float64)
        # 16-bit readers use the full range; some write 12-bit values (up to 4095) into 16-bit files
        full = 65535.0 if wide.max() > 4095 else 4095.0 if wide.max() > 255 else 255.0
        return np.clip(np.round(wide * (255.0 / full)), 0, 255).astype(np.uint8)
    if image.mode == "1":
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        backdrop = Image.new("RGBA", image.size, (255, 255, 255, 255))  # transparent = paper, not ridge
        image = Image.alpha_composite(backdrop, image)
    return np.ascontiguousarray(np.asarray(image.convert("L"), dtype=np.uint8))


def _resolution_from_metadata(image: Image.Image) -> float | None:
    """dpi the file states, or None when it states none (or a placeholder such as 1 or 72 dpi)."""
    dpi: float | None = None
    tags = getattr(image, "tag_v2", None)
    if tags is not None:
        if _X_RESOLUTION in tags:
            value = float(tags[_X_RESOLUTION])
            unit = int(tags.get(_RESOLUTION_UNIT, 2))
            dpi = value * 2.54 if unit == 3 else value if unit == 2 else None
    else:
        stated = image.info.get("dpi")  # PNG pHYs and BMP pixels per metre, converted by Pillow
        if stated:
            dpi = float(stated[0])
    if dpi is None or not PLAUSIBLE_DPI[0] <= dpi <= PLAUSIBLE_DPI[1]:
        return None
    return round(dpi, 1)

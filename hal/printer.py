"""Thermal printer: reports are printed as raster images (so both scripts and any layout print the
same on every printer, no code pages)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image

from hal.errors import DeviceStatus, HalError


class PrinterError(HalError):
    code = "printer_error"


class PaperOut(PrinterError):
    code = "paper_out"


@runtime_checkable
class Printer(Protocol):
    @property
    def width_px(self) -> int:
        """Printable width in dots (384 for 58 mm, 576 for 80 mm at 203 dpi)."""
        ...

    def print_image(self, image: Image.Image) -> None:
        """Print a 1-bit (or greyscale, dithered by the driver) image no wider than width_px, then feed
        and cut. Raises PaperOut, PrinterError."""
        ...

    def self_test(self) -> DeviceStatus: ...

    def close(self) -> None: ...

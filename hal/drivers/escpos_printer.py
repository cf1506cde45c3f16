"""The thermal printer: an ESC/POS printer on a serial port, printing every report as a raster image.

The few ESC/POS commands needed are written here rather than through python-escpos: raster printing
is one command (GS v 0) and its bytes are easy to check, while python-escpos would bring a dozen
packages (USB, QR, barcode, YAML profiles) onto a sealed device for nothing we use.

Commands sent:
    DLE EOT 4        real-time roll paper sensor status, answered with one byte, before each report
    ESC @            initialise the printer (forget any mode a previous print left set)
    GS v 0 m x y d   raster bit image, sent in bands of at most RASTER_BAND_ROWS rows
    LF x FEED_LINES  feed the printed end past the cutter
    GS V 1           partial cut
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from config.device import PrinterSettings
from hal.drivers.serial_port import open_serial
from hal.errors import DeviceStatus
from hal.printer import PaperOut, PrinterError

if TYPE_CHECKING:
    import serial

DLE_EOT_PAPER_STATUS = b"\x10\x04\x04"
ESC_INIT = b"\x1b\x40"
GS_RASTER = b"\x1d\x76\x30"
LINE_FEED = b"\x0a"
# A partial cut leaves a small tab holding the report, so it hangs at the slot for the committee to
# tear off instead of dropping inside the printer bay.
GS_PARTIAL_CUT = b"\x1d\x56\x01"

# Bands of at most 255 rows (18 kB at 576 dots): each band is one serial write, so the write timeout
# applies per band (a band takes ~1.6 s at 115200 baud; a whole long report would take far longer
# than any sensible timeout), and a printer that stops mid-report is noticed within one band.
RASTER_BAND_ROWS = 255

# Lines fed after the image: the cutter sits ~15 mm past the print head on common 58/80 mm
# mechanisms, and at the default 1/6-inch line spacing 4 lines (~17 mm) bring the last row past it.
FEED_LINES = 4

# The roll paper sensor status byte (answer to DLE EOT 4): bits 1 and 4 always set, 0 and 7 clear;
# bits 2-3 = paper near its end, bits 5-6 = paper end (out).
_STATUS_FIXED_MASK = 0x93
_STATUS_FIXED_BITS = 0x12
_STATUS_NEAR_END = 0x0C
_STATUS_PAPER_END = 0x60


class EscPosPrinter:
    """hal.printer.Printer on a serial port (pyserial), speaking ESC/POS raster graphics."""

    def __init__(self, settings: PrinterSettings) -> None:
        self._settings = settings
        self._port: serial.Serial | None
        self._port, self._serial_errors = open_serial(
            settings.port, baudrate=settings.baudrate, timeout=settings.timeout_s, write_timeout=settings.timeout_s,
            device="printer",
            remedy="check the printer cable, and that printer.port in the device settings names its serial device")
        import serial  # imported by open_serial: only its exception type is needed here

        self._write_timeout_error: type[Exception] = serial.SerialTimeoutException

    @property
    def width_px(self) -> int:
        return self._settings.width_px

    def print_image(self, image: Image.Image) -> None:
        raster = prepare_raster_image(image, self.width_px)
        status = self._paper_status()
        if status & _STATUS_PAPER_END:
            raise PaperOut(
                f"the printer on {self._settings.port} is out of paper; nothing was printed",
                "load a new paper roll and close the printer cover, then print the report again",
            )
        self._write(ESC_INIT)
        for band in raster_commands(raster):
            self._write(band)
        # No flush(): tcdrain has no timeout and would hang on a printer that stopped reading, while
        # write() has already handed every byte to the port within write_timeout.
        self._write(LINE_FEED * FEED_LINES + GS_PARTIAL_CUT)

    def self_test(self) -> DeviceStatus:
        try:
            status = self._paper_status()
        except PrinterError as exc:
            return DeviceStatus("printer", False, exc.message)
        if status & _STATUS_PAPER_END:
            return DeviceStatus("printer", False, "paper out")
        if status & _STATUS_NEAR_END:
            return DeviceStatus("printer", True, "paper near its end: fit a new roll before the polls close")
        return DeviceStatus("printer", True, f"answering on {self._settings.port}, paper loaded")

    def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def _paper_status(self) -> int:
        """Ask the roll paper sensor status (DLE EOT 4) and return the status byte."""
        port = self._open_port()
        port_name = self._settings.port
        try:
            port.reset_input_buffer()  # a stale byte must not pass for the answer
            port.write(DLE_EOT_PAPER_STATUS)
            answer = port.read(1)
        except self._serial_errors as exc:
            raise PrinterError(f"lost the printer on {port_name}: {exc}", "check the printer cable and power") from exc
        if not answer:
            raise PrinterError(
                f"the printer on {port_name} did not answer the paper status query (DLE EOT 4) "
                f"within {self._settings.timeout_s:g} s",
                "check that the printer is switched on and its cable plugged in, and that the device settings "
                "name the right port (printer.port) and baud rate (printer.baudrate)",
            )
        status = int(answer[0])
        if status & _STATUS_FIXED_MASK != _STATUS_FIXED_BITS:
            raise PrinterError(
                f"the printer on {port_name} answered the paper status query with 0x{status:02x}, "
                "which is not an ESC/POS status byte",
                "check that printer.baudrate in the device settings matches the printer's setting",
            )
        return status

    def _write(self, data: bytes) -> None:
        port = self._open_port()
        try:
            port.write(data)
        except self._write_timeout_error as exc:
            raise PrinterError(
                f"the printer on {self._settings.port} stopped accepting data for {self._settings.timeout_s:g} s "
                "in the middle of a report",
                "check the paper and the printer cover, then print the report again",
            ) from exc
        except self._serial_errors as exc:
            raise PrinterError(
                f"lost the printer on {self._settings.port}: {exc}",
                "check the printer cable and power, then print the report again",
            ) from exc

    def _open_port(self) -> serial.Serial:
        if self._port is None:
            raise PrinterError(f"the printer on {self._settings.port} was closed", "restart the ballotbox service")
        return self._port


def prepare_raster_image(image: Image.Image, width_px: int) -> Image.Image:
    """The 1-bit image the printer will print: transparency flattened onto white paper, scaled down
    (keeping proportions) if wider than `width_px`, greyscale dithered Floyd-Steinberg. A 1-bit image
    that fits is printed exactly as it is."""
    if image.width == 0 or image.height == 0:
        raise ValueError(f"cannot print an empty image ({image.width} x {image.height})")
    if image.mode == "1" and image.width <= width_px:
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    grey = image.convert("L")
    if grey.width > width_px:
        height = max(1, round(grey.height * width_px / grey.width))
        grey = grey.resize((width_px, height), Image.Resampling.LANCZOS)
    return grey.convert("1", dither=Image.Dither.FLOYDSTEINBERG)


def raster_commands(image: Image.Image) -> Iterator[bytes]:
    """GS v 0 commands for a 1-bit image, one per band of at most RASTER_BAND_ROWS rows.

    In a raster byte the most significant bit is the leftmost dot and 1 burns a dot (black); in a
    Pillow "1" image 0 is black. Rows are padded with white to whole bytes.
    """
    if image.mode != "1":
        raise ValueError(f"raster_commands needs a 1-bit ('1') image, got mode {image.mode!r}")
    black = ~np.asarray(image, dtype=bool)
    packed = np.packbits(black, axis=1)  # pads each row with 0 (no dot) to a whole byte
    row_bytes = packed.shape[1]
    for top in range(0, packed.shape[0], RASTER_BAND_ROWS):
        band = packed[top : top + RASTER_BAND_ROWS]
        rows = band.shape[0]
        header = GS_RASTER + bytes([0, row_bytes & 0xFF, row_bytes >> 8, rows & 0xFF, rows >> 8])
        yield header + band.tobytes()

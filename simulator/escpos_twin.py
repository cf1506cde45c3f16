"""A thermal printer twin that speaks ESC/POS: it decodes the bytes a driver sends back into the
images that would come out on paper, and answers real-time status queries over a pseudo-terminal,
so the real EscPosPrinter driver runs unchanged against it (it opens `twin.port` with pyserial).

It understands exactly what ballotbox prints with and rejects anything else with an error that names
the byte offset and the command, so a driver change that sends something a real printer might
misread is caught here:

    ESC @            initialise
    GS v 0 m x y d   raster bit image (normal density, m = 0 or 48)
    GS V m [n]       cut (full or partial, with or without feed); ends a document
    DLE EOT n        real-time status, n = 1..4
    LF               feed one line

    with EscPosPrinterTwin() as printer:
        driver = EscPosPrinter(PrinterSettings(port=printer.port))
        driver.print_image(report)
        printer.wait_for_documents(1)
        printer.documents[0].image      # the 1-bit image as printed
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, NoReturn

import numpy as np
from PIL import Image

from config.device import PrinterSettings
from hal.drivers.escpos_printer import EscPosPrinter
from simulator.pty_twin import ServedPtyTwin

DLE = 0x10
EOT = 0x04
ESC = 0x1B
GS = 0x1D
LF = 0x0A

# Status bytes: bits 1 and 4 are always set in every DLE EOT answer.
_STATUS_FIXED = 0x12
_STATUS_OFFLINE = 0x08  # n=1: printer offline
_STATUS_COVER_OPEN = 0x04  # n=2: cover open
_STATUS_STOPPED_PAPER_END = 0x20  # n=2: printing stopped because the paper ran out
_STATUS_NEAR_END = 0x0C  # n=4: paper near its end
_STATUS_PAPER_END = 0x60  # n=4: paper out

_UNDERSTOOD = "ESC @, GS v 0, GS V, DLE EOT n, LF"


class EscPosProtocolError(ValueError):
    """Bytes the twin does not accept as the ESC/POS ballotbox uses."""


# -- decoding ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Initialize:
    """ESC @"""


@dataclass(frozen=True)
class RasterImage:
    """GS v 0: one band of raster rows as a 1-bit image (0 = burnt dot / black, like Pillow's "1")."""

    image: Image.Image


@dataclass(frozen=True)
class LineFeed:
    """LF"""


@dataclass(frozen=True)
class Cut:
    """GS V: `partial` leaves a tab; `feed_units` is the feed before the cut (function B), else 0."""

    partial: bool
    feed_units: int = 0


@dataclass(frozen=True)
class StatusQuery:
    """DLE EOT n: real-time status request, n = 1 printer, 2 offline cause, 3 error, 4 paper."""

    n: int


EscPosCommand = Initialize | RasterImage | LineFeed | Cut | StatusQuery


class EscPosDecoder:
    """Turns a stream of ESC/POS bytes into commands. Bytes may arrive in any chunks: an incomplete
    command waits for the rest. Raises EscPosProtocolError on a byte it does not understand."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._offset = 0  # stream offset of the first byte in _buffer, for error messages

    @property
    def pending_bytes(self) -> int:
        """Bytes received that do not yet make a whole command."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[EscPosCommand]:
        self._buffer.extend(data)
        commands: list[EscPosCommand] = []
        while self._buffer:
            parsed = self._parse_one()
            if parsed is None:
                break
            command, length = parsed
            commands.append(command)
            del self._buffer[:length]
            self._offset += length
        return commands

    def _parse_one(self) -> tuple[EscPosCommand, int] | None:
        """The first command in the buffer and its length, or None while it is incomplete."""
        buf = self._buffer
        first = buf[0]
        if first == LF:
            return LineFeed(), 1
        if len(buf) < 2:
            return None if first in (ESC, GS, DLE) else self._reject(1)
        second = buf[1]
        if first == ESC and second == 0x40:
            return Initialize(), 2
        if first == DLE and second == EOT:
            if len(buf) < 3:
                return None
            if not 1 <= buf[2] <= 4:
                self._reject(3, f"DLE EOT n needs n = 1..4, got {buf[2]}")
            return StatusQuery(buf[2]), 3
        if first == GS and second == 0x56:
            return self._parse_cut()
        if first == GS and second == 0x76:
            return self._parse_raster()
        return self._reject(2)

    def _parse_cut(self) -> tuple[EscPosCommand, int] | None:
        buf = self._buffer
        if len(buf) < 3:
            return None
        m = buf[2]
        if m in (0, 48):
            return Cut(partial=False), 3
        if m in (1, 49):
            return Cut(partial=True), 3
        if m in (65, 66):
            if len(buf) < 4:
                return None
            return Cut(partial=m == 66, feed_units=buf[3]), 4
        return self._reject(3, f"GS V m needs m = 0, 1, 48, 49, 65 or 66, got {m}")

    def _parse_raster(self) -> tuple[EscPosCommand, int] | None:
        buf = self._buffer
        if len(buf) < 8:
            return None
        if buf[2] != 0x30:
            return self._reject(3, "only GS v 0 (raster bit image) is understood in the GS v family")
        mode = buf[3]
        if mode not in (0, 48):
            return self._reject(4, f"raster mode m = {mode} (double width/height) is not used by ballotbox")
        row_bytes = buf[4] | buf[5] << 8
        rows = buf[6] | buf[7] << 8
        if row_bytes == 0 or rows == 0:
            return self._reject(8, f"raster image of {row_bytes} bytes x {rows} rows is empty")
        length = 8 + row_bytes * rows
        if len(buf) < length:
            return None
        bits = np.unpackbits(np.frombuffer(bytes(buf[8:length]), dtype=np.uint8).reshape(rows, row_bytes), axis=1)
        white = bits == 0  # a set bit burns a dot
        return RasterImage(Image.fromarray(white)), length

    def _reject(self, length: int, reason: str = "") -> NoReturn:
        shown = " ".join(f"{b:02x}" for b in self._buffer[: max(length, 1)])
        detail = f": {reason}" if reason else ""
        raise EscPosProtocolError(
            f"byte offset {self._offset}: unknown ESC/POS command {shown}{detail} "
            f"(the printer twin understands {_UNDERSTOOD})"
        )


# -- what comes out on paper -----------------------------------------------------------------------


@dataclass
class PrintedDocument:
    """One piece of paper, from one cut to the next: the raster rows as printed (a 1-bit image as
    wide as the widest band), the lines fed and how it was cut."""

    image: Image.Image
    feed_lines: int
    partial_cut: bool


@dataclass
class PaperOutput:
    """Assembles decoded commands into documents, as the paper would come out."""

    documents: list[PrintedDocument] = field(default_factory=list)
    _bands: list[Image.Image] = field(default_factory=list)
    _feed_lines: int = 0

    def apply(self, command: EscPosCommand) -> None:
        if isinstance(command, RasterImage):
            self._bands.append(command.image)
        elif isinstance(command, LineFeed):
            self._feed_lines += 1
        elif isinstance(command, Cut):
            self.documents.append(PrintedDocument(self._stack(), self._feed_lines, command.partial))
            self._bands = []
            self._feed_lines = 0

    @property
    def uncut(self) -> Image.Image | None:
        """What has been printed since the last cut, or None."""
        return self._stack() if self._bands else None

    def _stack(self) -> Image.Image:
        if not self._bands:
            return Image.new("1", (0, 0), 1)
        width = max(band.width for band in self._bands)
        page = Image.new("1", (width, sum(band.height for band in self._bands)), 1)
        top = 0
        for band in self._bands:
            page.paste(band, (0, top))
            top += band.height
        return page


def decode_documents(data: bytes) -> list[PrintedDocument]:
    """Decode a whole ESC/POS byte string into the documents it prints (status queries ignored)."""
    output = PaperOutput()
    for command in EscPosDecoder().feed(data):
        output.apply(command)
    return output.documents


# -- the printer on a pseudo-terminal ----------------------------------------------------------------


class EscPosPrinterTwin(ServedPtyTwin):
    """A printer behind a pseudo-terminal. `port` is the path a driver opens as its serial port; a
    thread reads what the driver sends, answers DLE EOT status queries and collects the documents.

    Faults a technician can set at any time: `paper_out`, `paper_near_end`, `cover_open`, and
    `silent` (the printer is off or unplugged: no answers). While the paper is out or the cover open
    the printer is offline and print data is lost, as on a real printer.
    """

    name = "escpos printer twin"

    def __init__(self) -> None:
        super().__init__()
        self.paper_out = False
        self.paper_near_end = False
        self.cover_open = False
        self.silent = False
        self.status_queries: list[int] = []
        self.errors: list[EscPosProtocolError] = []
        self.discarded_commands = 0
        self._output = PaperOutput()
        self._decoder = EscPosDecoder()
        self._changed = threading.Condition()

    @property
    def documents(self) -> list[PrintedDocument]:
        with self._changed:
            return list(self._output.documents)

    def wait_for_documents(self, count: int, timeout_s: float = 5.0) -> list[PrintedDocument]:
        """Wait until `count` documents have been cut (real time: the driver writes from another
        thread). Raises the protocol error if the driver sent bytes the twin rejected."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._output.documents) >= count or bool(self.errors), timeout_s)
            if self.errors:
                raise self.errors[0]
            if len(self._output.documents) < count:
                raise TimeoutError(
                    f"the printer twin has {len(self._output.documents)} documents after {timeout_s:g} s, "
                    f"expected {count}"
                )
            return list(self._output.documents)

    def status_byte(self, n: int) -> int:
        """The answer to DLE EOT n for the twin's current state."""
        offline = self.paper_out or self.cover_open
        if n == 1:
            return _STATUS_FIXED | (_STATUS_OFFLINE if offline else 0)
        if n == 2:
            return (
                _STATUS_FIXED
                | (_STATUS_COVER_OPEN if self.cover_open else 0)
                | (_STATUS_STOPPED_PAPER_END if self.paper_out else 0)
            )
        if n == 3:
            return _STATUS_FIXED
        if n == 4:
            return (
                _STATUS_FIXED
                | (_STATUS_PAPER_END if self.paper_out else 0)
                | (_STATUS_NEAR_END if self.paper_near_end or self.paper_out else 0)
            )
        raise ValueError(f"DLE EOT n needs n = 1..4, got {n}")

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return  # the pty was closed under us: stop serving
            if self.errors:
                continue  # after a protocol error the stream cannot be trusted: swallow the rest
            try:
                commands = self._decoder.feed(data)
            except EscPosProtocolError as exc:
                with self._changed:
                    self.errors.append(exc)
                    self._changed.notify_all()
                continue
            for command in commands:
                self._handle(command)

    def _handle(self, command: EscPosCommand) -> None:
        if isinstance(command, StatusQuery):
            # Real-time commands are answered at once, even while the printer is offline.
            self.status_queries.append(command.n)
            if not self.silent:
                os.write(self._master, bytes([self.status_byte(command.n)]))
            return
        with self._changed:
            if self.paper_out or self.cover_open:
                self.discarded_commands += 1
            else:
                self._output.apply(command)
            self._changed.notify_all()


@contextmanager
def twin_printer(width_px: Literal[384, 576] = 576) -> Iterator[tuple[EscPosPrinter, EscPosPrinterTwin]]:
    """The box's real ESC/POS driver on a printer twin: `printer` prints, `twin` shows what came out."""
    with EscPosPrinterTwin() as twin:
        printer = EscPosPrinter(PrinterSettings(port=twin.port, width_px=width_px))
        try:
            yield printer, twin
        finally:
            printer.close()

"""The document reader on a serial port (USB-CDC, /dev/ttyACM0 on the Pi): a 2D reader in serial mode
sends each scan as bytes, ended by a suffix it is configured with, or simply followed by silence.

Framing, because readers differ:
- A frame ends at `settings.suffix` when that is not a line ending (e.g. ETX b"\\x03", or TAB), at
  once; whatever follows in the same read starts the next frame.
- CR, LF and CRLF do NOT end a frame by themselves: an MRZ's own lines are separated by them. A frame
  ends when the line has been quiet for `settings.inter_char_timeout_s` after its last byte (a reader
  sends one scan back to back, a few ms between bytes at 9600 baud; the next scan comes seconds later).
- Frames that are only NUL bytes or whitespace (a reader's wake-up noise) are dropped.
- A frame longer than MAX_FRAME_BYTES, or not UTF-8, is an error naming the port (scan again).
pyserial is imported in the constructor, so importing this module needs no hardware library.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hal.document_reader import DocumentReaderDisconnected, DocumentReaderError
from hal.drivers.serial_port import open_serial
from hal.errors import DeviceStatus

if TYPE_CHECKING:
    import serial

# Longest frame kept: a TD1 MRZ is ~95 bytes and a barcode record a few hundred; more is a reader
# stuck sending, refused rather than buffered without end.
MAX_FRAME_BYTES = 4096
# How long one serial read waits: short, so the inter-character timeout is measured to ~10 ms.
_POLL_S = 0.01
_LINE_ENDINGS = (b"\r", b"\n", b"\r\n")


@dataclass(frozen=True)
class DocumentReaderSettings:
    port: str = "/dev/ttyACM0"
    # USB-CDC ignores the baud rate; an RS-232 reader's default is 9600 8N1 on most models.
    baudrate: int = 9600
    # The reader's configured suffix; None or a line ending: frames end by silence only.
    suffix: bytes | None = b"\r\n"
    # Silence that ends a frame: several character times at 9600 baud (1 ms each) and well under the
    # seconds between two scans.
    inter_char_timeout_s: float = 0.08


class SerialDocumentReader:
    """hal.document_reader.DocumentReader on a serial port (pyserial)."""

    def __init__(self, settings: DocumentReaderSettings) -> None:
        self._settings = settings
        self._port: serial.Serial | None
        self._port, self._serial_errors = open_serial(
            settings.port, baudrate=settings.baudrate, timeout=_POLL_S, device="document reader",
            remedy="check the reader's USB cable, and that document_reader.port in the device settings names it")
        suffix = settings.suffix
        self._frame_suffix = suffix if suffix and suffix not in _LINE_ENDINGS else None
        self._pending = bytearray()  # bytes after a suffix, for the next frame

    def read(self, timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        frame = bytearray()
        last_byte_at = 0.0
        while True:
            if self._pending:
                chunk, self._pending = bytes(self._pending), bytearray()
            else:
                chunk = self._read_chunk()
            now = time.monotonic()
            if chunk:
                frame.extend(chunk)
                last_byte_at = now
                ended = self._split_at_suffix(frame)
                if ended is not None:
                    text = self._decode(ended)
                    if text is not None:
                        return text
                    frame.clear()
                    continue
                if len(frame) > MAX_FRAME_BYTES:
                    self._drain()
                    raise DocumentReaderError(
                        f"the document reader on {self._settings.port} sent more than {MAX_FRAME_BYTES} bytes "
                        "without ending the scan",
                        "scan the document again; check document_reader.suffix in the device settings",
                    )
            elif frame and now - last_byte_at >= self._settings.inter_char_timeout_s:
                text = self._decode(bytes(frame))
                if text is not None:
                    return text
                frame.clear()
            elif not frame and now >= deadline:
                return None

    def self_test(self) -> DeviceStatus:
        if self._port is None:
            return DeviceStatus("document_reader", False, "closed")
        try:
            self._port.in_waiting  # noqa: B018  (a disconnected port raises here)
        except self._serial_errors as exc:
            return DeviceStatus("document_reader", False, f"lost on {self._settings.port}: {exc}")
        return DeviceStatus("document_reader", True, f"listening on {self._settings.port}")

    def close(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def _split_at_suffix(self, frame: bytearray) -> bytes | None:
        """The frame up to the configured suffix (the rest kept for the next read), or None."""
        if self._frame_suffix is None:
            return None
        at = frame.find(self._frame_suffix)
        if at < 0:
            return None
        self._pending.extend(frame[at + len(self._frame_suffix) :])
        return bytes(frame[:at])

    def _decode(self, frame: bytes) -> str | None:
        try:
            text = frame.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentReaderError(
                f"the document reader on {self._settings.port} sent bytes that are not UTF-8 text "
                f"(0x{frame[exc.start]:02x} at byte {exc.start} of {len(frame)})",
                "scan the document again; if it repeats, set the reader's output to UTF-8 (or ASCII)",
            ) from None
        if not text.strip("\x00 \t\r\n"):
            return None
        return text

    def _read_chunk(self) -> bytes:
        port = self._open_port()
        try:
            return port.read(max(1, port.in_waiting))
        except self._serial_errors as exc:
            raise DocumentReaderDisconnected(
                f"lost the document reader on {self._settings.port}: {exc}",
                "check the reader's USB cable; plug it back in and scan again",
            ) from exc

    def _drain(self) -> None:
        """Drop what the reader is still sending, so the next scan starts clean."""
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < self._settings.inter_char_timeout_s:
            if self._read_chunk():
                quiet_since = time.monotonic()

    def _open_port(self) -> serial.Serial:
        if self._port is None:
            raise DocumentReaderError(
                f"the document reader on {self._settings.port} was closed", "restart the ballotbox service"
            )
        return self._port

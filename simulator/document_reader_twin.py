"""Document reader twins.

DocumentReaderTwin opens a pseudo-terminal and writes scans to it as a serial 2D reader does (the
configured suffix, bytes in chunks with delays between them, noise, a pulled cable), so the real
SerialDocumentReader runs unchanged against `twin.port`:

    with DocumentReaderTwin() as reader:
        driver = SerialDocumentReader(DocumentReaderSettings(port=reader.port))
        reader.scan(document.text, suffix=b"\\r\\n", chunk_size=7, delay_s=0.005)
        driver.read(timeout_s=1.0)

SimulatedDocumentReader implements hal.document_reader.DocumentReader in-process, for the fast day.
"""

from __future__ import annotations

import collections
import os
import time

from hal.document_reader import DocumentReaderDisconnected
from hal.errors import DeviceStatus
from simulator.pty_twin import PtyTwin


class DocumentReaderTwin(PtyTwin):
    name = "document reader twin"  # a reader only sends: no thread answers the driver

    def scan(self, text: str | bytes, suffix: bytes = b"\r\n", prefix: bytes = b"", chunk_size: int | None = None,
             delay_s: float = 0.0) -> None:
        """Send one scan: prefix + text (UTF-8) + suffix, in chunks of `chunk_size` bytes with
        `delay_s` between them (a slow or buffering reader)."""
        data = prefix + (text.encode("utf-8") if isinstance(text, str) else text) + suffix
        self.send_raw(data, chunk_size, delay_s)

    def send_raw(self, data: bytes, chunk_size: int | None = None, delay_s: float = 0.0) -> None:
        """Write bytes as they are (garbage, non-UTF-8, partial frames)."""
        step = chunk_size or len(data) or 1
        for start in range(0, len(data), step):
            if start and delay_s:
                time.sleep(delay_s)
            os.write(self._master, data[start : start + step])

    def unplug(self) -> None:
        """The cable is pulled: both pty ends close and the driver's port reports an error."""
        self.stop()


class SimulatedDocumentReader:
    """hal.document_reader.DocumentReader in-process: scans queued by the simulator come out in order."""

    def __init__(self) -> None:
        self._scans: collections.deque[str] = collections.deque()
        self._connected = True
        self.closed = False

    def present(self, text: str) -> None:
        """The operator scans a document with this text."""
        self._scans.append(text)

    def unplug(self) -> None:
        self._connected = False

    def read(self, timeout_s: float) -> str | None:
        if not self._connected:
            raise DocumentReaderDisconnected("lost the simulated document reader", "plug the reader back in")
        return self._scans.popleft() if self._scans else None

    def self_test(self) -> DeviceStatus:
        return DeviceStatus("document_reader", self._connected, "simulated" if self._connected else "unplugged")

    def close(self) -> None:
        self.closed = True

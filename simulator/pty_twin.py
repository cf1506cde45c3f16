"""A device twin behind a pseudo-terminal: the real driver opens `port` as it would the device's serial
port, and the twin speaks the device's protocol on the other end. The ESC/POS printer, the fingerprint
module and the document reader twins are all one of these.

`PtyTwin` opens and closes the pty; `ServedPtyTwin` also runs `_serve` in a thread, for a device that
answers what the driver sends.
"""

from __future__ import annotations

import abc
import os
import threading
import tty
from typing import Self


class PtyTwin:
    name = "device twin"  # for messages and the thread's name

    def __init__(self) -> None:
        self._master = self._slave = -1
        self.port = ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._master >= 0

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"the {self.name} is already running")
        self._master, self._slave = os.openpty()
        # Raw mode from the start: no echo, no line editing, no CR/LF translation of the data.
        tty.setraw(self._slave)
        # The twin keeps the slave end open too, so the pty stays alive while a driver closes and
        # reopens the port.
        self.port = os.ttyname(self._slave)

    def stop(self) -> None:
        if not self.running:
            return
        for fd in (self._master, self._slave):
            os.close(fd)
        self._master = self._slave = -1


class ServedPtyTwin(PtyTwin, abc.ABC):
    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=self.name.replace(" ", "-"), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2.0)
            self._thread = None
        super().stop()

    @abc.abstractmethod
    def _serve(self) -> None:
        """Read what the driver writes to the master end and answer, until `self._stop` is set."""

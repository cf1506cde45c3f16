"""The uploader as a service (`ballotbox service run uploader`, its own systemd unit).

    service = UploadService(Uploader(RemoteOutbox(scanner_socket), endpoint, messages, receipt_key=key, ...),
                            notifier)
    service.loop(stop)      # until `stop` is set (SIGTERM)

Each turn asks the scanner service for the unsent documents (the outbox is the scanner's store,
firmware.common.transmission.remote_outbox), sends them in order with the Uploader (its backoff with
full jitter, the receiver's idempotency: a document sent twice is stored once), and sleeps while nothing
is pending. A dead network or a receiver that refuses is the outbox's business, not a failure of the
service: the watchdog is fed as long as the loop turns, and STATUS= shows the committee's status line
(what is sent, what waits and why). A scanner service that does not answer (stopped, restarting) is
waited for. The service keeps no state of its own: after a restart it carries on from the outbox.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

from firmware.common.control import ControlError
from firmware.common.transmission.remote_outbox import RemoteOutbox
from firmware.common.transmission.uploader import Uploader
from firmware.trust.watchdog import Notifier

IDLE_S = 5.0  # wall seconds between two looks at the outbox while nothing is pending
FEED_EVERY_S = 5.0  # the longest wait between two WATCHDOG=1 (WatchdogSec=30)


class UploadService:
    def __init__(self, uploader: Uploader, notifier: Notifier, *, idle_s: float = IDLE_S,
                 say: Callable[[str], None] = print, rng: random.Random | None = None) -> None:
        if not isinstance(uploader.outbox, RemoteOutbox):
            raise TypeError("the upload service sends the scanner service's outbox (RemoteOutbox)")
        self.uploader = uploader
        self.outbox: RemoteOutbox = uploader.outbox
        self.notify = notifier
        self.idle_s = idle_s
        self.say = say
        self.rng = rng or random.SystemRandom()
        self.failures = 0  # passes in a row that ended on a transient failure: the backoff's count
        self.status = "uploader: starting"

    def loop(self, stop: threading.Event) -> None:
        self.notify.notify("READY=1")
        while not stop.is_set():
            self._wait(stop, self.step())

    def step(self) -> float:
        """One turn: a pass over the unsent documents; returns how long to wait before the next."""
        try:
            pending = self.outbox.unsent()
            if not pending:
                self.failures = 0
                self._status(self._summary() or "uploader: nothing to send")
                return self.idle_s
            result = self.uploader.send_pending()
        except ControlError as exc:
            self._status(f"uploader: waiting for the scanner service ({exc})")
            return self.idle_s
        for doc_hash in result.acknowledged:
            self.say(f"{doc_hash[:12]} acknowledged")
        for doc_hash in result.refused:
            self.say(f"{doc_hash[:12]} REFUSED by the receiver: a person must look (outbox status)")
        if result.failed is None:
            self.failures = 0
            try:
                self.outbox.unsent()  # the status line as it now is
            except ControlError:
                pass
            self._status(self._summary())
            return 0.0
        self.failures += 1
        self.say(f"{result.failed.fault}: {result.failed.error} (pass {self.failures} in a row)")
        self._status(f"{self._summary()}; {result.failed.error}")
        return self.uploader.policy.delay(self.failures, self.rng)

    def _summary(self) -> str:
        lines = self.outbox.summary  # the unsent documents' lines, then "sent N of M"
        if not lines:
            return ""
        return lines[-1] + (f" - {lines[0]}" if len(lines) > 1 else "")

    def _status(self, text: str) -> None:
        text = text[:300]
        if text != self.status:
            self.notify.notify(f"STATUS={text}")
            self.status = text

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        """Sleep `seconds` (or until stopped), feeding the watchdog at least every FEED_EVERY_S."""
        self.notify.notify("WATCHDOG=1")
        remaining = seconds
        while remaining > 0 and not stop.is_set():
            step = min(remaining, FEED_EVERY_S)
            if stop.wait(step):
                return
            remaining -= step
            self.notify.notify("WATCHDOG=1")

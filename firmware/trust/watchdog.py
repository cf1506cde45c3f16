"""The systemd side of a service: READY once its devices answer, the watchdog fed only while they do.

The units (firmware/trust/release.py) say ``Type=notify`` and ``WatchdogSec``: a service that stops
feeding the watchdog is restarted by systemd. The feeding is tied to the devices' health, not to the
process being alive, so a hung camera or a sensor gone quiet is a restart, with the reason in the unit's
STATUS. Outside systemd (no NOTIFY_SOCKET: the simulator, tests, a technician's shell) every notification
is a no-op, and nothing else changes.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hal.errors import DeviceStatus

DEFAULT_INTERVAL_S = 10.0  # a third of WatchdogSec (30 s): two missed probes in a row still leave margin


class Notifier(Protocol):
    def notify(self, state: str) -> None: ...


class SystemdNotifier:
    """sd_notify(3): datagrams to $NOTIFY_SOCKET (a path, or "@" for the abstract namespace), in UTF-8 as
    systemd reads them - a station's name or a status in Cyrillic or with č must not be lost (the sdnotify
    package encodes Latin-1 and drops what does not fit, silently). Without NOTIFY_SOCKET, or when the
    socket is gone, every call is a no-op: a service never fails for want of systemd. A send waits at
    most SEND_TIMEOUT_S for a full queue."""

    SEND_TIMEOUT_S = 1.0

    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self._sock: socket.socket | None = None
        if not address:
            return
        if address.startswith("@"):
            address = "\0" + address[1:]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(self.SEND_TIMEOUT_S)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            return
        self._sock = sock

    def notify(self, state: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.send(state.encode("utf-8"))
        except OSError:
            pass  # systemd gone or its queue full for a second: the next beat tries again


@dataclass
class Beat:
    healthy: bool
    status: str  # what systemd shows (`systemctl status`): the failing devices, or all well


def health_loop(service: str, probe: Callable[[], Sequence[DeviceStatus]], *, interval_s: float = DEFAULT_INTERVAL_S,
                cycles: int | None = None, notifier: Notifier | None = None,
                sleep: Callable[[float], None] = time.sleep) -> list[Beat]:
    """Probe the devices every interval; READY=1 at the first healthy probe, WATCHDOG=1 after each healthy
    one, never after a failing one. Runs `cycles` times (None: until stopped); returns what it did."""
    notify = notifier or SystemdNotifier()
    beats: list[Beat] = []
    ready = False
    n = 0
    while cycles is None or n < cycles:
        beat = probe_once(service, probe)
        if beat.healthy:
            if not ready:
                notify.notify("READY=1")
                ready = True
            notify.notify("WATCHDOG=1")
        notify.notify(f"STATUS={beat.status}")
        beats.append(beat)
        n += 1
        if cycles is None or n < cycles:
            sleep(interval_s)
    return beats


def probe_once(service: str, probe: Callable[[], Sequence[DeviceStatus]]) -> Beat:
    try:
        statuses = list(probe())
    except Exception as exc:  # noqa: BLE001 - a driver that raises is a device that does not answer: no feeding
        return Beat(False, f"{service}: device probe failed: {type(exc).__name__}: {exc}"[:200])
    failing = [s for s in statuses if not s.ok]
    if failing:
        return Beat(False, f"{service}: " + "; ".join(f"{s.device}: {s.detail}" for s in failing)[:200])
    return Beat(True, f"{service}: {len(statuses)} devices ok")

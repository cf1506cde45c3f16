"""The day's checks beside the devices' own self-tests (Art. 11, 20(1)): the clock, the storage the day's
video needs, the network to the CEC, and the installed software against its signed release. Each gives a DeviceStatus for the self-test and zero reports.

The clock and the storage block opening when they fail; the network is reported and never blocks (results
wait in the outbox until the network is back, Art. 26). `day_video_bytes` is a plain estimate (bitrate x
hours); the video service may replace it with its own figure.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from config.election import Election
from firmware.common.i18n import Messages
from hal.clock import station_time
from hal.errors import DeviceStatus

if TYPE_CHECKING:
    from firmware.trust.release import SlotCheck

# The video is kept from an hour before opening (the committee sets up) to two hours after closing (the
# manual count, Art. 24); a room camera at 1080p H.264 records about 2 Mbit/s (config: video_bitrate_kbps).
VIDEO_BEFORE_OPENING = timedelta(hours=1)
VIDEO_AFTER_CLOSING = timedelta(hours=2)
# 10 % spare: the file system's own overhead and segments in flight.
STORAGE_MARGIN = 1.10
# Installation is at least 12 h before opening (Art. 9, 18): a clock up to 2 days before the election day
# is sane, one before that (an RTC-less Pi boots in 1970) or after the closing is not.
CLOCK_DAYS_BEFORE = 2
NETWORK_TIMEOUT_S = 3.0


class _Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True)
class DayCheckSettings:
    """What the day's checks look at (from the device settings)."""

    video_dir: Path | None = None  # where the day's video goes; None: no video pilot on this box
    video_bitrate_kbps: int = 2000
    endpoint: str | None = None  # the CEC receiver the results go to (reported, never blocking)


def day_checks(clock: _Clock, election: Election, msg: Messages, settings: DayCheckSettings) -> list[DeviceStatus]:
    """The clock, then the video storage (when the box records video), then the network."""
    checks = [clock_status(clock, election, msg)]
    if settings.video_dir is not None:
        checks.append(video_storage_status(settings.video_dir, settings.video_bitrate_kbps, election, msg))
    checks.append(network_status(settings.endpoint, msg))
    return checks


def clock_status(clock: _Clock, election: Election, msg: Messages) -> DeviceStatus:
    now = clock.now()
    closing = station_time(election.date, election.polls.closing)
    earliest = station_time(election.date, "00:00") - timedelta(days=CLOCK_DAYS_BEFORE)
    detail = {"time": now.strftime(msg.t("format.datetime")), "date": election.date}
    if earliest <= now <= closing:
        return DeviceStatus("clock", True, msg.t("selftest.clock.ok", **detail))
    return DeviceStatus("clock", False, msg.t("selftest.clock.wrong", **detail))


def day_video_bytes(bitrate_kbps: int, election: Election) -> int:
    """The bytes a day's video takes at `bitrate_kbps`, from before opening to after the count."""
    start = station_time(election.date, election.polls.opening) - VIDEO_BEFORE_OPENING
    end = station_time(election.date, election.polls.closing) + VIDEO_AFTER_CLOSING
    return int(bitrate_kbps * 1000 / 8 * (end - start).total_seconds())


def video_storage_status(video_dir: Path, bitrate_kbps: int, election: Election, msg: Messages,
                         free_bytes: int | None = None) -> DeviceStatus:
    """Free space where the video goes against the day's video (`free_bytes` given: tests)."""
    need = day_video_bytes(bitrate_kbps, election) * STORAGE_MARGIN
    if free_bytes is None:
        here = Path(video_dir)
        while not here.exists() and here != here.parent:
            here = here.parent
        free_bytes = shutil.disk_usage(here).free
    words = {"free": _gb(free_bytes, msg), "need": _gb(need, msg)}
    if free_bytes >= need:
        return DeviceStatus("storage", True, msg.t("selftest.storage.ok", **words))
    return DeviceStatus("storage", False, msg.t("selftest.storage.short", **words))


def software_status(check: SlotCheck, msg: Messages) -> DeviceStatus:
    """The boot check of the running code (firmware.trust.release.check_running_release) as a self-test line.
    From a source tree (simulation, development) there is no signed release to check: said, not failed."""
    if check.slot is None:
        return DeviceStatus("software", True, msg.t("selftest.software.not_installed"))
    if check.ok:
        return DeviceStatus("software", True, msg.t("selftest.software.ok", version=check.version, files=check.files))
    return DeviceStatus("software", False, msg.t("selftest.software.mismatch", count=len(check.problems),
                                                 files=", ".join(check.mismatched[:3]) or check.problems[0]))


def network_status(endpoint: str | None, msg: Messages, timeout_s: float = NETWORK_TIMEOUT_S) -> DeviceStatus:
    """A TCP connection to the receiver's host and port. Always ok=True: a box with no network still opens
    and counts; the detail says whether the CEC is reachable now."""
    if not endpoint:
        return DeviceStatus("network", True, msg.t("selftest.network.none"))
    parts = urlsplit(endpoint)
    host = parts.hostname or endpoint
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        return DeviceStatus("network", True, msg.t("selftest.network.down", host=f"{host}:{port}",
                                                   reason=exc.strerror or type(exc).__name__))
    return DeviceStatus("network", True, msg.t("selftest.network.ok", host=f"{host}:{port}"))


def _gb(n: float, msg: Messages) -> str:
    return f"{n / 1e9:.1f}".replace(".", msg.t("format.decimal_separator"))

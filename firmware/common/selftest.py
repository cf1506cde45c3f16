"""The day's checks beside the devices' own self-tests (Art. 11, 20(1)): the clock, the storage the day's
video needs, the network to the CEC, and the installed software against its signed release. Each gives a
DeviceStatus for the self-test and zero reports.

The clock and the storage block opening when they fail; the network is reported and never blocks (results
wait in the outbox until the network is back, Art. 26). The storage is judged as the video recorder's own
storage guard judges it (video/storage.py), from the same settings (`video` in the device settings).
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from config.device import DeviceSettings
from config.election import Election
from firmware.common.i18n import Messages
from hal.clock import station_time
from hal.errors import DeviceStatus
from video.storage import LADDER, STOP_RESERVE_BYTES, plan_day

if TYPE_CHECKING:
    from firmware.trust.release import SlotCheck

# Installation is at least 12 h before opening (Art. 9, 18): a clock up to 2 days before the election day
# is sane, one before that (an RTC-less Pi boots in 1970) or after the closing is not.
CLOCK_DAYS_BEFORE = 2
NETWORK_TIMEOUT_S = 3.0


class _Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True)
class DayCheckSettings:
    """What the day's checks look at: for the video storage, the recorder's own settings (where it
    records, its peak bitrate, the hours its storage guard checks for), so the self-test and the recorder
    decide alike; the CEC receiver's address."""

    video_dir: Path | None = None  # where the day's video goes; None: no video pilot on this box
    video_bitrate_kbps: int = 1200
    video_hours: float = 14.0
    endpoint: str | None = None  # the CEC receiver the results go to (reported, never blocking)

    @classmethod
    def from_device(cls, settings: DeviceSettings, state_dir: Path | None = None) -> DayCheckSettings:
        """From the device settings: `video` as the recorder reads it (RecordingProfile.from_settings, and the
        video service's folder STATE/device/video.directory, STATE the settings' data_dir unless given),
        `self_test.endpoint`."""
        video = settings.video
        folder = Path(state_dir or settings.data_dir) / "device" / video.directory
        return cls(folder if video.enabled else None, video.bitrate_kbps, video.hours, settings.self_test.endpoint)


def day_checks(clock: _Clock, election: Election, msg: Messages, settings: DayCheckSettings) -> list[DeviceStatus]:
    """The clock, then the video storage (when the box records video), then the network."""
    checks = [clock_status(clock, election, msg)]
    if settings.video_dir is not None:
        checks.append(video_storage_status(settings.video_dir, settings.video_bitrate_kbps, settings.video_hours,
                                           msg))
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


def video_storage_status(video_dir: Path, bitrate_kbps: int, hours: float, msg: Messages,
                         free_bytes: int | None = None) -> DeviceStatus:
    """Free space where the video goes against the day, decided as the recorder's storage guard decides at
    its start (video.storage.plan_day): full quality fits (ok); only a lower rung fits (ok, and the detail says
    the recording will be reduced); not even the lowest (failed: the recorder would refuse). `free_bytes`
    given: tests."""
    if free_bytes is None:
        here = Path(video_dir)
        while not here.exists() and here != here.parent:
            here = here.parent
        free_bytes = shutil.disk_usage(here).free
    plan = plan_day(free_bytes, bitrate_kbps, hours)
    words = {"free": _gb(free_bytes, msg), "need": _gb(plan.needed_bytes + STOP_RESERVE_BYTES, msg),
             "hours": f"{hours:g}".replace(".", msg.t("format.decimal_separator")), "kbps": bitrate_kbps}
    if plan.verdict == "ok":
        return DeviceStatus("storage", True, msg.t("selftest.storage.ok", **words))
    if plan.verdict == "warn":
        div, share = LADDER[plan.rung]
        return DeviceStatus("storage", True, msg.t("selftest.storage.reduced", **words, div=div,
                                                   share=round(share * 100)))
    return DeviceStatus("storage", False, msg.t("selftest.storage.short", **words,
                                                lowest=_gb(plan.needed_at_rung_bytes + STOP_RESERVE_BYTES, msg)))


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

"""Storage guard: will the footage of the whole day fit, and what to do when it will not.

Footage is never deleted to make room. Before recording: free space against the whole day at the
configured peak bitrate: refuse (with the numbers) if even the lowest rung of the ladder cannot hold the
day, warn and start lower if the configured rate cannot. While recording, at every segment switch: if the
rest of the day no longer fits, step down the ladder (lower frame rate and bitrate); on the last rung,
alarm; below the stop reserve, stop cleanly (the open segment is closed and signed first).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# (frame-rate divisor, share of the peak bitrate): 15 fps -> 15, 15, 7.5, 5 fps
LADDER = ((1, 1.0), (1, 0.7), (2, 0.5), (3, 0.35))
CONTAINER_OVERHEAD = 1.06  # MPEG-TS: 4 bytes of header per 184 of payload, PAT/PMT/PCR packets (measured 1.04-1.05)
STOP_RESERVE_BYTES = 64 * 1024 * 1024  # left free for the stores, the logs and the closing manifest


@dataclass(frozen=True)
class StoragePlan:
    verdict: str  # "ok" | "warn" | "refuse"
    rung: int  # ladder rung to start on
    free_bytes: int
    needed_bytes: int  # the whole day at the configured peak rate
    needed_at_rung_bytes: int
    hours: float
    message: str


def bytes_per_hour(bitrate_kbps: float, rung: int = 0) -> int:
    return round(bitrate_kbps * LADDER[rung][1] * 1000 / 8 * 3600 * CONTAINER_OVERHEAD)


def plan_day(free_bytes: int, bitrate_kbps: float, hours: float) -> StoragePlan:
    need = [bytes_per_hour(bitrate_kbps, r) * hours for r in range(len(LADDER))]
    usable = free_bytes - STOP_RESERVE_BYTES
    gb = 1e9
    head = (f"free {free_bytes / gb:.2f} GB; the day ({hours:g} h at {bitrate_kbps:g} kbit/s peak) needs "
            f"{need[0] / gb:.2f} GB + {STOP_RESERVE_BYTES / gb:.2f} GB reserve")
    if usable >= need[0]:
        return StoragePlan("ok", 0, free_bytes, round(need[0]), round(need[0]), hours, head)
    for rung in range(1, len(LADDER)):
        if usable >= need[rung]:
            div, share = LADDER[rung]
            return StoragePlan("warn", rung, free_bytes, round(need[0]), round(need[rung]), hours,
                               f"{head}: recording at 1/{div} of the frame rate and {share:.0%} of the bitrate "
                               f"({need[rung] / gb:.2f} GB); free space on the card to record at full quality")
    return StoragePlan("refuse", len(LADDER) - 1, free_bytes, round(need[0]), round(need[-1]), hours,
                       f"{head}; even the lowest rate needs {need[-1] / gb:.2f} GB: recording refused. Give the "
                       "box a larger card (footage is never deleted to make room)")


class StorageRefused(RuntimeError):
    """Free space cannot hold the day even at the lowest rung: the message has the numbers."""


def disk_free(directory: Path) -> Callable[[], int]:
    def free() -> int:
        return shutil.disk_usage(directory).free
    return free

"""Clocks. firmware/ owns time and always takes a Clock, so the simulator can run a day in seconds."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

SARAJEVO = ZoneInfo("Europe/Sarajevo")


def station_time(date: str, hhmm: str) -> datetime:
    """'2024-10-06', '07:00' -> that moment in the station's time zone."""
    y, m, d = map(int, date.split("-"))
    hh, mm = map(int, hhmm.split(":"))
    return datetime(y, m, d, hh, mm, tzinfo=SARAJEVO)


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """Aware local time of the station."""
        ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc).astimezone(SARAJEVO)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

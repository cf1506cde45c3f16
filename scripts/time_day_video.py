"""The video service's cost in a simulated day, alone: DayVideo over 07:00-19:00 with 300 catch-ups (a
300-voter day calls it once per voter). Prints the final manifest hash, wall and CPU seconds.

    PYTHONPATH=. python scripts/time_day_video.py
"""
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.common.identity import DeviceIdentity
from hal.clock import station_time
from simulator.day_video import DayVideo
from simulator.devices import AcceleratedClock

ident = DeviceIdentity("BB-SIM-0001", Ed25519PrivateKey.generate())
clock = AcceleratedClock(station_time("2024-10-06", "05:30"))
d = Path(tempfile.mkdtemp())
w = time.perf_counter(); c = time.process_time()
v = DayVideo(d, clock, ident, "089A012", 7, 0)
clock.advance_to(station_time("2024-10-06", "07:00"))
v.open(station_time("2024-10-06", "19:00"))
for i in range(300):
    clock.sleep(144); v.catch_up(clock.now())
clock.advance_to(station_time("2024-10-06", "19:00")); v.catch_up(clock.now())
print(v.close())
print("wall", round(time.perf_counter()-w,2), "cpu", round(time.process_time()-c,2))

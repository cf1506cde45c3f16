"""Write sample synthetic fingerprints for a look: masters of a few seeds and impressions of each.

    PYTHONPATH=. .venv/bin/python scripts/fpgen_gallery.py --out /tmp/fpgen --seeds 0-7 [--size 256x288]

One PNG per finger: the master, then GOOD, TYPICAL, POOR and FAILED impressions side by side; plus timings
(median master and impression time; --one-core for OpenCV on one thread).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from simulator.fingerprints import QualityHint, SyntheticFinger


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", default="0-7", help="a range a-b or a comma list")
    ap.add_argument("--size", default="256x288", help="WIDTHxHEIGHT")
    ap.add_argument("--one-core", action="store_true", help="OpenCV on one thread (the timing the brief asks)")
    args = ap.parse_args(argv)
    if args.one_core:
        cv2.setNumThreads(1)
    seeds = _seeds(args.seeds)
    w, h = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    t_master: list[float] = []
    t_imp: list[float] = []
    for seed in seeds:
        finger = SyntheticFinger(seed, size=(w, h))
        t0 = time.perf_counter()
        master = finger.master
        t_master.append(time.perf_counter() - t0)
        row = [master]
        for i, hint in enumerate(QualityHint):
            t0 = time.perf_counter()
            row.append(finger.impression(seed * 10 + i, quality_hint=hint))
            t_imp.append(time.perf_counter() - t0)
        sheet = np.hstack([np.pad(im, 4, constant_values=255) for im in row])
        cv2.imwrite(str(args.out / f"finger_{seed:04d}_{finger.finger_class}.png"), sheet)
    print(f"{len(seeds)} fingers at {w}x{h}: master median {1000 * float(np.median(t_master)):.1f} ms, "
          f"impression median {1000 * float(np.median(t_imp)):.1f} ms -> {args.out}")
    return 0


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


if __name__ == "__main__":
    raise SystemExit(main())

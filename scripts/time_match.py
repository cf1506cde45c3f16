"""1:1 and 1:N timings of the matcher: prepared FVC2002 commercial templates, and a 3,000-template gallery
(the 320 FVC records plus random distractors, 40 minutiae each).

    PYTHONPATH=. python scripts/time_match.py /work/shared/data/fvc2002
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

from biometrics import match
from biometrics.template import FingerprintTemplate, Minutia
from simulator.bench_fingerprints import DATABASES, FVC2002_DPI, load_fvc_record

GALLERY = 3000


def main(data_dir: str) -> None:
    from PIL import Image

    records = []
    for name in DATABASES:
        for path in sorted((Path(data_dir) / name).glob("*.iso")):
            width, height = Image.open(path.with_suffix(".tif")).size
            records.append(load_fvc_record(path, (width, height), FVC2002_DPI[name]))
    prepared = [match.prepare(r) for r in records]
    one = []
    for a, b in itertools.islice(itertools.combinations(prepared[:80], 2), 2000):
        start = time.perf_counter()
        match.raw_similarity(a, b)
        one.append((time.perf_counter() - start) * 1000)
    print(f"1:1 prepared, {len(one)} pairs: median {np.median(one):.3f} ms, p95 {np.percentile(one, 95):.3f} ms")
    rng = np.random.default_rng(0)
    distractors = [
        FingerprintTemplate(300, 400, minutiae=tuple(
            Minutia(float(x), float(y), float(a))
            for x, y, a in zip(rng.uniform(20, 280, 40), rng.uniform(20, 380, 40), rng.uniform(0, 2 * math.pi, 40),
                               strict=True)
        ))
        for _ in range(GALLERY - len(records))
    ]
    start = time.perf_counter()
    gallery = match.Gallery(prepared + [match.prepare(t) for t in distractors], list(range(GALLERY)))
    print(f"gallery of {GALLERY} built in {time.perf_counter() - start:.1f} s")
    times, hits = [], 0
    for index in range(0, len(prepared), 8):  # probe: impression 1 of each finger; its mates are in the gallery
        probe = prepared[index]
        start = time.perf_counter()
        found = gallery.identify(probe, top=5)
        times.append((time.perf_counter() - start) * 1000)
        hits += found[0][0] != index and found[0][0] // 8 == index // 8 or found[1][0] // 8 == index // 8
    print(f"1:N over {GALLERY}: median {np.median(times):.1f} ms, p95 {np.percentile(times, 95):.1f} ms, "
          f"mate ranked first or second (after itself) {hits}/{len(times)}")


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    from biometrics.threads import MATCH_BLAS_THREADS

    with threadpool_limits(limits=MATCH_BLAS_THREADS, user_api="blas"):  # as the bench and the device run it
        main(sys.argv[1])

"""Extraction time per image, ours against NBIS mindtct (nbis-py), interleaved image by image in one process.

    PYTHONPATH=. python scripts/time_extract.py /work/shared/data/fvc2002 [--every 2]

As `ballotbox bench fingerprints` times them: ours is `biometrics.extract.extract` on the decoded image (one
OpenCV thread, as the auth service runs it), NBIS is `extract_minutiae_from_image_file` (it reads the file
itself); ours with the file's decoding is printed too. Each image is done by both before the next, so a
machine shared with other jobs slows both alike. A quick check (~2 x 160 images, ~10 s), not the bench.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from biometrics.extract import extract
from biometrics.images import load_fingerprint_image
from biometrics.threads import opencv_on_one_thread
from simulator.bench_fingerprints import DATABASES, FVC2002_DPI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder holding DB1_B .. DB4_B")
    parser.add_argument("--every", type=int, default=2, help="every N-th image of each database (default 2)")
    args = parser.parse_args()
    import nbis  # the dev extra: nbis-py

    ours, ours_with_read, theirs = [], [], []
    with opencv_on_one_thread():
        for name in DATABASES:
            dpi = FVC2002_DPI[name]
            settings = nbis.NbisExtractorSettings(
                min_quality=0.0, get_center=False, check_fingerprint=False, compute_nfiq2=False, ppi=dpi
            )
            extractor = nbis.new_nbis_extractor(settings)
            for path in sorted((args.data / name).glob("*.tif"))[:: args.every]:
                start = time.perf_counter()
                pixels, image_dpi = load_fingerprint_image(path, dpi)
                decoded = time.perf_counter()
                extract(pixels, image_dpi)
                done = time.perf_counter()
                extractor.extract_minutiae_from_image_file(str(path))
                theirs.append((time.perf_counter() - done) * 1000)
                ours.append((done - decoded) * 1000)
                ours_with_read.append((done - start) * 1000)
    for label, values in (("ours", ours), ("ours with the file's decoding", ours_with_read), ("NBIS mindtct", theirs)):
        print(f"{label:30s} median {np.median(values):6.2f} ms, p95 {np.percentile(values, 95):6.2f} ms "
              f"({len(values)} images)")


if __name__ == "__main__":
    sys.exit(main())

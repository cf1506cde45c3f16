"""Genuine and impostor scores of synthetic fingers with the real extractor and matcher, and minutia repeatability.

    PYTHONPATH=. .venv/bin/python scripts/fpgen_scores.py --fingers 40 --impressions 4 [--hint typical] [--seed 0]

For each finger: its master and `--impressions` impressions (conditions drawn for `--hint`), each extracted once.
Genuine pairs: every two impressions of one finger (and master vs impression: the enrolment case); impostor pairs: the
first impression of each finger against the master of every other. Prints the score distributions, the EER, and the
genuine/impostor rates at the matcher's THRESHOLD. Repeatability (needs no matcher): the share of the master's
minutiae that, carried through the impression's known pose, find an extracted minutia within 10 px and 30 degrees.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np

from biometrics.extract import extract
from simulator.fingerprints import QualityHint, SyntheticFinger


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fingers", type=int, default=40)
    ap.add_argument("--impressions", type=int, default=4)
    ap.add_argument("--hint", default="typical", choices=[h.value for h in QualityHint])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-match", action="store_true", help="repeatability only (no matcher needed)")
    args = ap.parse_args(argv)
    masters, probes, repeat, qualities, counts = [], [], [], [], []
    t0 = time.perf_counter()
    for f in range(args.fingers):
        finger = SyntheticFinger(args.seed * 100_000 + f)
        master = extract(finger.master).template
        masters.append(master)
        rng = np.random.default_rng([args.seed, f])
        row = []
        for _ in range(args.impressions):
            img, cond = finger.impression_with_conditions(rng, quality_hint=args.hint)
            ex = extract(img)
            row.append(ex.template)
            qualities.append(ex.quality)
            counts.append(len(ex.template.minutiae))
            repeat.append(_repeatability(master.as_array(), ex.template.as_array(), finger.pose_matrix(
                cond.rotation_deg, cond.dx, cond.dy), math.radians(cond.rotation_deg)))
        probes.append(row)
    print(f"{args.fingers} fingers x {args.impressions} '{args.hint}' impressions extracted in "
          f"{time.perf_counter() - t0:.1f} s; minutiae per impression median {np.median(counts):.0f}, "
          f"quality median {np.median(qualities):.0f}; master minutiae found again: median "
          f"{100 * np.median(repeat):.0f} % (p10 {100 * np.percentile(repeat, 10):.0f} %)")
    if args.no_match:
        return 0
    from biometrics.match import THRESHOLD, prepare, similarity

    enrolled = [prepare(t) for t in masters]  # cylinders once per template, not once per pair
    touches = [[prepare(t) for t in row] for row in probes]
    genuine = [similarity(a, b) for row in touches for a, b in itertools.combinations(row, 2)]
    enrol = [similarity(p, enrolled[f]) for f, row in enumerate(touches) for p in row]
    impostor = [similarity(touches[i][0], enrolled[j]) for i in range(args.fingers) for j in range(args.fingers)
                if i != j]
    for name, s in (("genuine impression-impression", genuine), ("genuine impression-master", enrol),
                    ("impostor impression-master", impostor)):
        a = np.asarray(s)
        print(f"{name:32s} n={len(a):5d} p5 {np.percentile(a, 5):7.2f} p50 {np.median(a):7.2f} "
              f"p95 {np.percentile(a, 95):7.2f}; >= THRESHOLD {THRESHOLD}: {100 * np.mean(a >= THRESHOLD):5.1f} %")
    print(f"EER (impression-impression vs impostor) {100 * _eer(np.asarray(genuine), np.asarray(impostor)):.2f} %; "
          f"(impression-master) {100 * _eer(np.asarray(enrol), np.asarray(impostor)):.2f} %")
    return 0


def _repeatability(master: np.ndarray, probe: np.ndarray, pose: np.ndarray, rotation: float) -> float:
    """Share of master minutiae landing (after the pose) within 10 px and 30 degrees of a probe minutia, among those
    that land inside the probe's print (within 20 px of some probe minutia)."""
    if len(master) == 0 or len(probe) == 0:
        return 0.0
    xy = master[:, :2] @ pose[:, :2].T + pose[:, 2]
    ang = master[:, 2] + rotation
    d = np.hypot(xy[:, None, 0] - probe[None, :, 0], xy[:, None, 1] - probe[None, :, 1])
    da = np.abs((ang[:, None] - probe[None, :, 2] + math.pi) % (2 * math.pi) - math.pi)
    inside = d.min(1) < 20
    if not inside.any():
        return 0.0
    return float(((d < 10) & (da < math.radians(30))).any(1)[inside].mean())


def _eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    fnmr = np.array([np.mean(genuine < t) for t in thresholds])
    fmr = np.array([np.mean(impostor >= t) for t in thresholds])
    i = int(np.argmin(np.abs(fnmr - fmr)))
    return float((fnmr[i] + fmr[i]) / 2)


if __name__ == "__main__":
    raise SystemExit(main())

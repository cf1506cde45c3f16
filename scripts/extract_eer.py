"""EER of our minutiae on FVC2002-B with a stand-in matcher (until branch `match` has biometrics/match.py).

    python scripts/extract_eer.py [--db 1 2 3 4]

The matcher here is a plain Hough alignment (rotation, translation votes over minutia pairs) and a count of
minutiae paired after it, score = paired^2 / (n_a * n_b): a floor for what a real matcher gets from the
same minutiae, not the product's matcher. Rows: ours vs ours, and ours (probe) vs the commercial record of
the other impression (cross-vendor), the commercial records un-stretched to the image's pixels
(biometrics/fvc_geometry.md). Genuine: all 28 pairs of the 8 impressions x 10 fingers (280); impostor:
every impression of different fingers (45 x 64 = 2,880), or with --first-only the first impressions (45).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from extract_eval import DATA, DPI, RECORD_SIZE, read_iso

from biometrics.extract import extract
from biometrics.images import load_fingerprint_image
from biometrics.template import FingerprintTemplate, Minutia

PAIR_DISTANCE = 12.0  # px at 500 dpi
PAIR_ANGLE = math.radians(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument(
        "--matcher", choices=["stand-in", "match"], default="stand-in",
        help="match: biometrics.match.similarity (branch match) instead of the stand-in Hough count",
    )
    parser.add_argument("--first-only", action="store_true", help="impostors: first impressions only (45 pairs)")
    args = parser.parse_args()
    rows = []
    for db in args.db:
        ours: dict[tuple[int, int], np.ndarray] = {}
        theirs: dict[tuple[int, int], np.ndarray] = {}
        for path in sorted((DATA / f"DB{db}_B").glob("*.tif")):
            finger, impression = (int(v) for v in path.stem.split("_"))
            pixels, dpi = load_fingerprint_image(path, DPI[db])
            k = 500.0 / dpi  # compare at 500 dpi scale
            a = extract(pixels, dpi).template.as_array()[:, :3].copy()
            a[:, :2] *= k
            ours[finger, impression] = a
            b = read_iso(path.with_suffix(".iso").read_bytes())[:, :3].copy()
            sx, sy = RECORD_SIZE[0] / pixels.shape[1], RECORD_SIZE[1] / pixels.shape[0]
            b[:, 0] /= sx
            b[:, 1] /= sy
            b[:, 2] = np.mod(np.arctan2(np.sin(b[:, 2]) / sy, np.cos(b[:, 2]) / sx), 2 * math.pi)
            b[:, :2] *= k
            theirs[finger, impression] = b
        fingers = sorted({f for f, _ in ours})
        impressions = sorted({i for _, i in ours})
        genuine = [((f, i), (f, j)) for f in fingers for i, j in itertools.combinations(impressions, 2)]
        firsts = impressions[:1] if args.first_only else impressions
        impostor = [
            ((f, i), (g, j)) for f, g in itertools.combinations(fingers, 2) for i in firsts for j in firsts
        ]
        score = similarity
        if args.matcher == "match":
            from biometrics import match

            prepared = {}
            for key, arr in itertools.chain(
                ((("o",) + k, v) for k, v in ours.items()), ((("c",) + k, v) for k, v in theirs.items())
            ):
                prepared[key] = match.prepare(_as_template(arr))
            ours = {k[1:]: prepared[k] for k in prepared if k[0] == "o"}
            theirs = {k[1:]: prepared[k] for k in prepared if k[0] == "c"}
            score = match.similarity
        for label, gallery in (("ours vs ours", ours), ("ours vs commercial", theirs), ("commercial vs commercial", None)):
            probe = theirs if gallery is None else ours
            gal = theirs if gallery is None else gallery
            g_scores = np.array([score(probe[a], gal[b]) for a, b in genuine])
            i_scores = np.array([score(probe[a], gal[b]) for a, b in impostor])
            eer = equal_error_rate(g_scores, i_scores)
            rows.append((db, label, eer))
            print(f"DB{db} {label:26s} EER {100 * eer:5.2f} %  (genuine {len(g_scores)}, impostor {len(i_scores)})", flush=True)
    for label in ("ours vs ours", "ours vs commercial", "commercial vs commercial"):
        values = [e for _, lab, e in rows if lab == label]
        print(f"average {label:26s} EER {100 * float(np.mean(values)):5.2f} %")


def _as_template(minutiae: np.ndarray) -> FingerprintTemplate:
    """x, y (px at 500 dpi), angle rows as a template (kind unknown to the matcher's use here)."""
    size = int(max(minutiae[:, :2].max(initial=1), 1)) + 1
    return FingerprintTemplate(
        width=size,
        height=size,
        minutiae=tuple(Minutia(float(x), float(y), float(a) % (2 * math.pi)) for x, y, a in minutiae[:, :3]),
    )


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Hough-aligned paired-minutiae score in [0, 1]."""
    if len(a) < 3 or len(b) < 3:
        return 0.0
    dtheta = np.mod(b[None, :, 2] - a[:, None, 2], 2 * math.pi)  # rotation taking a_i onto b_j
    rot_bins = np.round(dtheta / math.radians(10)).astype(int) % 36
    best = 0.0
    # votes over (rotation, translation) for every minutia pair
    cos, sin = np.cos(dtheta), np.sin(dtheta)
    # screen angles are CCW with y down: rotating a point by +t on screen is x' = x cos + y sin, y' = -x sin + y cos
    ax, ay = a[:, None, 0], a[:, None, 1]
    tx = b[None, :, 0] - (ax * cos + ay * sin)
    ty = b[None, :, 1] - (-ax * sin + ay * cos)
    keys = rot_bins * 10_000 + (np.round(tx / 16).astype(int) + 50) * 100 + (np.round(ty / 16).astype(int) + 50)
    values, counts = np.unique(keys, return_counts=True)
    for key in values[np.argsort(counts)[-4:]]:
        sel = keys == key
        angle = float(np.angle(np.mean(np.exp(1j * dtheta[sel]))))
        c, s = math.cos(angle), math.sin(angle)
        mx = float(np.median(tx[sel]))
        my = float(np.median(ty[sel]))
        x = a[:, 0] * c + a[:, 1] * s + mx
        y = -a[:, 0] * s + a[:, 1] * c + my
        th = a[:, 2] + angle
        d = np.hypot(x[:, None] - b[None, :, 0], y[:, None] - b[None, :, 1])
        da = np.abs(np.angle(np.exp(1j * (th[:, None] - b[None, :, 2]))))
        ok = (d < PAIR_DISTANCE) & (da < PAIR_ANGLE)
        paired = min(int(ok.any(axis=1).sum()), int(ok.any(axis=0).sum()))
        best = max(best, paired * paired / (len(a) * len(b)))
    return best


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> float:
    thresholds = np.unique(np.concatenate([genuine, impostor, [np.inf]]))
    fnmr = np.array([(genuine < t).mean() for t in thresholds])
    fmr = np.array([(impostor >= t).mean() for t in thresholds])
    i = int(np.argmin(np.abs(fnmr - fmr)))
    return float((fnmr[i] + fmr[i]) / 2)


if __name__ == "__main__":
    main()

"""Development measures of biometrics/extract on FVC2002-B (reads /work/shared; not a test).

    python scripts/extract_eval.py geometry            # fit the commercial records' coordinate mapping per DB
    python scripts/extract_eval.py compare [--db N]    # precision/recall of our minutiae against the commercial ones
    python scripts/extract_eval.py profile             # per-stage milliseconds (median over the images)

The commercial records (.iso beside each .tif) describe the same images; see biometrics/fvc_geometry.md for
how their coordinates map onto the image's pixels.
"""

from __future__ import annotations

import argparse
import math
import statistics
import struct
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from biometrics.extract import extract
from biometrics.extract import minutiae as mn
from biometrics.extract import pipeline as pl
from biometrics.images import load_fingerprint_image

DATA = Path("/work/shared/data/fvc2002")
DPI = {1: 500.0, 2: 569.0, 3: 500.0, 4: 500.0}  # FVC2002: DB2 is 569 dpi, the others 500
# the commercial records are each image stretched to 300 x 400 per axis (biometrics/fvc_geometry.md)
RECORD_SIZE = (300, 400)


def to_record_frame(minutiae: np.ndarray, width: int, height: int) -> np.ndarray:
    """Our minutiae (x, y, angle, kind in image pixels) in the commercial record's stretched frame."""
    sx, sy = RECORD_SIZE[0] / width, RECORD_SIZE[1] / height
    out = minutiae.copy()
    out[:, 0] *= sx
    out[:, 1] *= sy
    out[:, 2] = np.mod(np.arctan2(sy * np.sin(minutiae[:, 2]), sx * np.cos(minutiae[:, 2])), 2 * math.pi)
    return out


def read_iso(data: bytes) -> np.ndarray:
    """N x 4 (x, y, angle rad CCW on screen, kind) of the first finger view of an ISO 19794-2:2005 record."""
    assert data[:8] == b"FMR\x00 20\x00", data[:8]
    count = data[27]
    rows = []
    for i in range(count):
        a, b, angle, _q = struct.unpack_from(">HHBB", data, 28 + 6 * i)
        rows.append((a & 0x3FFF, b & 0x3FFF, angle * 2 * math.pi / 256, a >> 14))
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def ours(db: int, path: Path, frame: str = "image") -> np.ndarray:
    pixels, dpi = load_fingerprint_image(path, DPI[db])
    found = extract(pixels, dpi).template.as_array()[:, :4]
    return to_record_frame(found, pixels.shape[1], pixels.shape[0]) if frame == "record" else found


def images(db: int, limit: int | None = None) -> list[Path]:
    found = sorted((DATA / f"DB{db}_B").glob("*.tif"))
    return found[:limit] if limit else found


def geometry(args: argparse.Namespace) -> None:
    for db in args.db:
        pairs = [(ours(db, p), read_iso(p.with_suffix(".iso").read_bytes())) for p in images(db, args.limit)]
        theirs_all = np.concatenate([t for _, t in pairs])
        print(f"DB{db}: commercial x {theirs_all[:, 0].min():.0f}..{theirs_all[:, 0].max():.0f}"
              f" y {theirs_all[:, 1].min():.0f}..{theirs_all[:, 1].max():.0f}")
        best = None
        for scale in np.arange(0.70, 1.201, 0.01):
            votes = np.zeros((401, 401))
            for mine, theirs in pairs:
                if len(mine) == 0 or len(theirs) == 0:
                    continue
                d = theirs[None, :, :2] - scale * mine[:, None, :2]
                tx = np.round(d[..., 0]).astype(int) + 200
                ty = np.round(d[..., 1]).astype(int) + 200
                ok = (tx >= 0) & (tx <= 400) & (ty >= 0) & (ty <= 400)
                np.add.at(votes, (ty[ok], tx[ok]), 1)
            votes = cv2.GaussianBlur(votes, (0, 0), 1.5)
            peak = np.unravel_index(int(np.argmax(votes)), votes.shape)
            if best is None or votes[peak] > best[0]:
                best = (votes[peak], scale, peak[1] - 200, peak[0] - 200)
        assert best is not None
        _, scale, tx, ty = best
        # refine by least squares on the pairs within 8 px under the voted mapping
        src, dst = [], []
        for mine, theirs in pairs:
            if len(mine) == 0 or len(theirs) == 0:
                continue
            mapped = scale * mine[:, :2] + (tx, ty)
            dist = np.hypot(*(mapped[:, None, :] - theirs[None, :, :2]).transpose(2, 0, 1))
            i, j = np.nonzero((dist < 8) & (dist == dist.min(axis=1, keepdims=True)))
            src.append(mine[i, :2])
            dst.append(theirs[j, :2])
        s, d = np.concatenate(src), np.concatenate(dst)
        a = np.column_stack([s.ravel(), np.tile([1, 0], len(s)), np.tile([0, 1], len(s))])
        (k, ox, oy), *_ = np.linalg.lstsq(a, d.ravel(), rcond=None)
        sx = np.polyfit(s[:, 0], d[:, 0], 1)
        sy = np.polyfit(s[:, 1], d[:, 1], 1)
        print(f"DB{db}: voted scale {scale:.2f} offset ({tx}, {ty}); least squares on {len(s)} pairs: "
              f"scale {k:.4f} offset ({ox:.2f}, {oy:.2f}); per axis x {sx[0]:.4f}*x+{sx[1]:.2f}, y {sy[0]:.4f}*y+{sy[1]:.2f}")


def compare(args: argparse.Namespace) -> None:
    for db in args.db:
        tp = n_ours = n_theirs = 0
        angle_diffs: list[float] = []
        kind_same = 0
        by_kind: dict[int, list[bool]] = {}
        for path in images(db, args.limit):
            mine = ours(db, path, "record")
            theirs = read_iso(path.with_suffix(".iso").read_bytes())
            n_ours += len(mine)
            n_theirs += len(theirs)
            if len(mine) == 0 or len(theirs) == 0:
                continue
            dist = np.hypot(*(mine[:, None, :2] - theirs[None, :, :2]).transpose(2, 0, 1))
            dang = np.abs(np.angle(np.exp(1j * (mine[:, None, 2] - theirs[None, :, 2]))))
            ok = (dist <= args.radius) & (dang <= math.radians(args.angle) if not args.any_angle else dist <= args.radius)
            # greedy one-to-one pairing by distance
            cost = np.where(ok, dist, np.inf)
            used_i, used_j = set(), set()
            for flat in np.argsort(cost, axis=None):
                i, j = divmod(int(flat), cost.shape[1])
                if not np.isfinite(cost[i, j]):
                    break
                if i in used_i or j in used_j:
                    continue
                used_i.add(i)
                used_j.add(j)
                tp += 1
                angle_diffs.append(math.degrees(float(np.angle(np.exp(1j * (mine[i, 2] - theirs[j, 2]))))))
                by_kind.setdefault(int(mine[i, 3]), []).append(abs(angle_diffs[-1]) > 90)
                kind_same += int(mine[i, 3] == theirs[j, 3])
        precision = tp / max(n_ours, 1)
        recall = tp / max(n_theirs, 1)
        med = statistics.median(angle_diffs) if angle_diffs else float("nan")
        hist = np.histogram(angle_diffs, bins=12, range=(-180, 180))[0] if angle_diffs else []
        print(f"DB{db}: ours {n_ours} theirs {n_theirs} paired {tp}: precision {precision:.3f} recall {recall:.3f} "
              f"F1 {2 * precision * recall / max(precision + recall, 1e-9):.3f}; same kind {kind_same / max(tp, 1):.2f}; "
              f"angle diff median {med:.1f} deg sd {float(np.std(angle_diffs)):.1f}; hist {[int(h) for h in hist]}; "
              f"share reversed by our kind {({k: round(float(np.mean(v)), 2) for k, v in by_kind.items()})}")


def profile(args: argparse.Namespace) -> None:
    cv2.setNumThreads(1)
    p = pl.ExtractionParams()
    per_stage: dict[str, list[float]] = {}
    totals = []
    for db in args.db:
        for path in images(db, args.limit):
            image, dpi = load_fingerprint_image(path, DPI[db])
            marks = [("start", time.perf_counter())]
            scale = pl.REFERENCE_DPI / dpi
            grey = image
            if abs(scale - 1) > 0.01:
                grey = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                                  interpolation=cv2.INTER_AREA)
            grey32 = grey.astype(np.float32)
            marks.append(("resize", time.perf_counter()))
            normalised = pl._normalise(grey32, p)
            marks.append(("normalisation", time.perf_counter()))
            mask = pl._segment(grey32, p)
            marks.append(("segmentation", time.perf_counter()))
            field = pl._orientation(normalised, p)
            marks.append(("orientation", time.perf_counter()))
            period = pl._ridge_period(normalised, mask, p)
            local_period = pl._local_period(normalised, mask, period, p)
            marks.append(("frequency", time.perf_counter()))
            enhanced = pl._enhance(normalised, field, mask, period, local_period, p)
            marks.append(("enhancement", time.perf_counter()))
            ridges = (enhanced < 0) & mask
            marks.append(("binarisation", time.perf_counter()))
            skeleton = pl._thin(ridges)
            marks.append(("thinning", time.perf_counter()))
            cands = mn.detect(skeleton, mask)
            marks.append(("minutiae", time.perf_counter()))
            found = mn.filter_false(cands, skeleton, mask, field, p.filters)
            marks.append(("filtered_minutiae", time.perf_counter()))
            pl.image_quality(mask, field.coherence, enhanced, len(found.x))
            marks.append(("quality", time.perf_counter()))
            for (_, a), (name, b) in itertools.pairwise(marks):
                per_stage.setdefault(name, []).append((b - a) * 1000)
            t0 = time.perf_counter()
            extract(image, dpi)
            totals.append((time.perf_counter() - t0) * 1000)
    for name, values in per_stage.items():
        print(f"{name:18s} median {statistics.median(values):6.2f} ms")
    print(f"extract() total median {statistics.median(totals):.2f} ms, p95 {np.percentile(totals, 95):.2f} ms over {len(totals)} images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["geometry", "compare", "profile"])
    parser.add_argument("--db", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--radius", type=float, default=10.0)
    parser.add_argument("--angle", type=float, default=30.0)
    parser.add_argument("--any-angle", action="store_true")
    args = parser.parse_args()
    {"geometry": geometry, "compare": compare, "profile": profile}[args.command](args)


if __name__ == "__main__":
    main()

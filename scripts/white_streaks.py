"""White streaks in the corpus: found by omr.interpret._streaks, and what they spoil when read through.

    PYTHONPATH=. .venv/bin/python scripts/white_streaks.py LEVEL KIND N SEED [-v]

Generates the items of `bench omr --level LEVEL --kind KIND --ballots N --seed SEED` (same corpus) and,
for each one with a white streak (distortions["streak"], polarity "white"):
  - whether _streaks fires, and whether the column it returns lies on a white streak (+-6 px; at L3
    streaks cluster in the box column, so a dark streak beside a white one counts as "on white" too -
    an upper bound for the white check);
  - interpret() with _streaks disabled, judged by simulator.bench_omr.judge: the boxes read wrong
    (missed / phantom / marginal) that a white streak crosses and no dark one does, and the category.
Prints one JSON line of totals (and -v: one line per item). One core, in process, no files written.
"""

from __future__ import annotations

import json
import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import cv2

import omr.interpret as oi
from simulator.bench_omr import _safe_interpret, judge
from simulator.corpus import generate


def main(level: str, kind: str, n: int, seed: int, verbose: bool) -> dict[str, int]:
    from omr.second_opinion import MarkClassifier

    cv2.setNumThreads(1)
    model = MarkClassifier.load()  # as the bench runs (--second-opinion on), when installed
    streaks = oi._streaks
    keys = ("items", "fired", "fired_on_white", "missed_white", "white_through_boxes", "missed_white_through_boxes",
            "box_error_items", "box_errors", "box_errors_missed", "box_errors_phantom", "box_errors_marginal",
            "silent_misread_if_read")
    tot = dict.fromkeys(keys, 0)
    for item in generate(level, kind, n, seed):
        st = item.distortions.get("streaks") or []
        whites = [s for s in st if s["polarity"] == "white"]
        if not whites:
            continue
        tot["items"] += 1
        found = oi._find(item.image, item.election, item.dpi)[0]
        col = None if isinstance(found, oi.Reason) else streaks(cv2.extractChannel(item.image, 1), found)
        on_white = col is not None and any(s["x_px"] - 6 <= col <= s["x_px"] + s["width_px"] + 6 for s in whites)
        white_boxes = {b for s in whites for b in s["boxes_crossed"]}
        dark_boxes = {b for s in st if s["polarity"] == "dark" for b in s["boxes_crossed"]}
        oi._streaks = lambda grey, found: None  # read through it
        try:
            result, error = _safe_interpret(oi.interpret, item, model)
        finally:
            oi._streaks = streaks
        rec = judge(item, result, 0.0, error=error)
        errs = [(kind_, e["box"], e["fill"]) for kind_ in ("missed", "phantom", "marginal") for e in getattr(rec, kind_)
                if e["box"] in white_boxes and e["box"] not in dark_boxes]
        tot["fired"] += col is not None
        tot["fired_on_white"] += on_white
        tot["missed_white"] += not on_white
        tot["white_through_boxes"] += bool(white_boxes)
        tot["missed_white_through_boxes"] += (not on_white) and bool(white_boxes)
        tot["box_error_items"] += bool(errs)
        tot["box_errors"] += len(errs)
        for kind_, _, _ in errs:
            tot[f"box_errors_{kind_}"] += 1
        tot["silent_misread_if_read"] += rec.category == "silent_misread"
        if verbose:
            print(item.name, col, [(s["x_px"], s["width_px"], s["opacity"], len(s["boxes_crossed"])) for s in whites],
                  on_white, rec.category, errs)
    return tot


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "-v"]
    totals = main(args[0], args[1], int(args[2]), int(args[3]), "-v" in sys.argv)
    print(json.dumps({"level": args[0], "kind": args[1], "ballots": int(args[2]), "seed": int(args[3]), **totals}))

"""interpret() alone and with a pool, reading by reading and trace by trace, over corpus sheets.

    PYTHONPATH=. python scripts/omr_pool_ab.py [N per level and kind] [levels] [seed]
    PYTHONPATH=. python scripts/omr_pool_ab.py 8 L1,L2,L3,foreign 4242

Exits 1 if any reading or trace differs. Times are per sheet, one after the other on the same machine."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

from firmware.cec.ballots import references_for
from omr.interpret import interpret
from omr.second_opinion import MarkClassifier
from simulator.bench_omr import CALIBRATED_WHITE
from simulator.corpus import generate


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 8
    levels = argv[1].split(",") if len(argv) > 1 else ["L1", "L2", "L3", "foreign"]
    seed = int(argv[2]) if len(argv) > 2 else 4242
    model, references = MarkClassifier.load(), {}
    differ = total = 0
    alone_s = pooled_s = 0.0
    with ThreadPoolExecutor(max_workers=1) as pool:
        for level in levels:
            for kind in ("mayor", "council", "council-sample"):
                for item in generate(level, kind, n, seed):
                    digest = item.election.digest()
                    if digest not in references:
                        references[digest] = references_for(item.election)
                    kw = {"dpi": item.dpi, "references": references[digest], "white": CALIBRATED_WHITE,
                          "second_opinion": model}
                    ta: list[tuple[str, str]] = []
                    tb: list[tuple[str, str]] = []
                    t0 = time.perf_counter()
                    a = interpret(item.image, item.election, trace=lambda s, v, ta=ta: ta.append((s, repr(v))), **kw)
                    t1 = time.perf_counter()
                    b = interpret(item.image, item.election, trace=lambda s, v, tb=tb: tb.append((s, repr(v))), pool=pool,
                                  **kw)
                    t2 = time.perf_counter()
                    alone_s, pooled_s, total = alone_s + t1 - t0, pooled_s + t2 - t1, total + 1
                    if a != b or ta != tb:
                        differ += 1
                        print(f"DIFFERS {item.name}: {a.verdict} / {b.verdict}")
    print(f"{total} sheets, {differ} differ; alone {alone_s / total * 1000:.1f} ms, with the pool "
          f"{pooled_s / total * 1000:.1f} ms per sheet")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

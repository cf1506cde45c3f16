"""Every reading and trace of interpret() over corpus sheets and the simulated day's own captures, dumped to
JSON, so that two versions of omr/ can be compared reading by reading, bit for bit.

    PYTHONPATH=TREE python scripts/omr_ab.py dump OUT.json [N per level and kind] [levels] [seed] [day voters]
    python scripts/omr_ab.py compare A.json B.json

    # a change in omr/ against the commit it starts from (a worktree of it at ../omrbase):
    PYTHONPATH=../omrbase python scripts/omr_ab.py dump /tmp/base.json 24 L1,L2,L3,foreign 4242 40
    PYTHONPATH=.          python scripts/omr_ab.py dump /tmp/new.json 24 L1,L2,L3,foreign 4242 40
    python scripts/omr_ab.py compare /tmp/base.json /tmp/new.json

`dump` reads N sheets of each level (L1, L2, L3, foreign) and kind (mayor, council, council-sample) of the
corpus (simulator.corpus, `seed`), and the first captures of the ballots of `day voters` voters of the
simulated day (seed 3, the day's camera: what the scanner reads all day), each twice: in the one-thread
order and with a pool (`interpret(pool=)`, as the scanner service runs it), with the printed references,
the calibrated white and the second opinion, as the box reads. Per sheet it keeps the interpretation's
repr and every trace stage's (name, repr of the value). Floats are printed exactly: Python's repr, and
NumPy's shortest unique repr of every element (`floatmode="unique"`, no summarising of long arrays), so
an array that differs in its last bit differs here. `compare` prints each sheet that differs and exits 1
if any does, 0 if every reading and trace is identical (and the two dumps hold the same sheets)."""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

KINDS = ("mayor", "council", "council-sample")


def _sheets(n: int, levels: list[str], seed: int, day_voters: int) -> Iterator[tuple[str, np.ndarray, Any, float]]:
    """(name, image, election, dpi) of every sheet to read."""
    from simulator.corpus import generate

    for level in levels:
        for kind in KINDS:
            for item in generate(level, kind, n, seed):
                yield item.name, item.image, item.election, item.dpi
    if day_voters:
        from config.election import SAMPLE_ELECTION, load_election
        from simulator.day import sheet_for
        from simulator.devices import build_sim_station
        from simulator.voters import make_population

        election = load_election(SAMPLE_ELECTION)
        camera = build_sim_station(election, random.Random("3:camera:0")).camera  # the day's, seed 3, first boot
        population = make_population(election, day_voters, random.Random("3:population"))
        cache: dict[str, Any] = {}
        for i in range(day_voters):
            for b in range(len(population[i].ballots)):
                sheet = sheet_for(population, 3, f"v{i}.b{b}.f0", cache)
                yield f"day-s3-{sheet.key}", camera._draw_capture(sheet, 0), election, camera.dpi
                cache.clear()


def dump(out: str, n: int, levels: list[str], seed: int, day_voters: int) -> int:
    from firmware.cec.ballots import references_for
    from omr.interpret import interpret
    from omr.second_opinion import MarkClassifier
    from simulator.bench_omr import CALIBRATED_WHITE

    np.set_printoptions(floatmode="unique", threshold=sys.maxsize)
    model, references = MarkClassifier.load(), {}
    sheets: dict[str, Any] = {}
    spent = {"alone": 0.0, "pool": 0.0}
    with ThreadPoolExecutor(max_workers=1) as pool:
        for name, image, election, dpi in _sheets(n, levels, seed, day_voters):
            digest = election.digest()
            if digest not in references:
                references[digest] = references_for(election)
            kw = {"dpi": dpi, "references": references[digest], "white": CALIBRATED_WHITE, "second_opinion": model}
            readings = {}
            for mode, p in (("alone", None), ("pool", pool)):
                trace: list[list[str]] = []
                t0 = time.perf_counter()
                result = interpret(image, election, trace=lambda s, v, trace=trace: trace.append([s, repr(v)]),
                                   pool=p, **kw)
                spent[mode] += time.perf_counter() - t0
                readings[mode] = {"reading": repr(result), "trace": trace}
            sheets[name] = readings
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"n": n, "levels": levels, "seed": seed, "day_voters": day_voters, "sheets": sheets}, f, indent=0)
    count = max(1, len(sheets))
    print(f"{len(sheets)} sheets read twice (alone, with a pool) into {out}; alone {spent['alone'] / count * 1000:.1f} ms, "
          f"with the pool {spent['pool'] / count * 1000:.1f} ms per sheet")
    return 0


def compare(a_path: str, b_path: str) -> int:
    with open(a_path, encoding="utf-8") as f:
        a = json.load(f)["sheets"]
    with open(b_path, encoding="utf-8") as f:
        b = json.load(f)["sheets"]
    differ = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            differ += 1
            print(f"ONLY IN {'the first' if name in a else 'the second'}: {name}")
            continue
        for mode in ("alone", "pool"):
            ra, rb = a[name][mode], b[name][mode]
            if ra == rb:
                continue
            differ += 1
            stages = [sa[0] for sa, sb in zip(ra["trace"], rb["trace"]) if sa != sb]
            if len(ra["trace"]) != len(rb["trace"]):
                stages.append(f"trace length {len(ra['trace'])} / {len(rb['trace'])}")
            print(f"DIFFERS {name} ({mode}): reading {'same' if ra['reading'] == rb['reading'] else 'differs'}, "
                  f"stages {', '.join(stages) or 'none'}")
    print(f"{len(set(a) | set(b))} sheets, each read alone and with a pool: {differ} readings differ")
    return 1 if differ else 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "compare":
        return compare(argv[1], argv[2])
    if 2 <= len(argv) <= 6 and argv[0] == "dump":
        n = int(argv[2]) if len(argv) > 2 else 8
        levels = argv[3].split(",") if len(argv) > 3 else ["L1", "L2", "L3", "foreign"]
        seed = int(argv[4]) if len(argv) > 4 else 4242
        day_voters = int(argv[5]) if len(argv) > 5 else 20
        return dump(argv[1], n, levels, seed, day_voters)
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`ballotbox bench omr` with the sheet on a wider dark bed (18-20 mm each side instead of 4-12 mm), as the
independent corpus of issue 13 was captured; everything else as the corpus's levels.

    usage: python scripts/bench_omr_wide_bed.py TREE bench omr --level L1 --kind council-sample \
               --ballots 300 --seed 1313

TREE: the source tree to run (its modules win over the installed ones), e.g. `.` or an older checkout.
"""

from __future__ import annotations

import sys

WIDE_BED_MM = (18.0, 20.0)  # issue 13: "the sheet on a dark bed with ~19 mm margin"

if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    from simulator import corpus

    corpus.FRAME_MARGIN_MM = WIDE_BED_MM
    from ballotbox.cli import main

    sys.exit(main(sys.argv[2:]))

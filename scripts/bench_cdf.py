"""Time the NIST exports of a close: build + validate + sign, write OUT/cdf, verify, for N ballots.

    python scripts/bench_cdf.py [--ballots 2000]     (1,000 voters x 2 ballot papers by default)

Synthetic cast-vote records of the sample election (tests/cdf_support.py); prints seconds and sizes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cdf_support import CLOSED_AT, SOFTWARE, counts_of, identity, synthetic_records

from config.election import SAMPLE_ELECTION, load_election
from firmware.scanner.cdf.export import (
    build_cdf_exports,
    verify_cdf_exports,
    write_cdf_exports,
)
from firmware.scanner.tally import tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ballots", type=int, default=2000)
    args = parser.parse_args()
    election = load_election(SAMPLE_ELECTION)
    records = synthetic_records(election, args.ballots, seed=1)
    who = identity()
    started = time.perf_counter()
    exports = build_cdf_exports(election, tally(election, records), counts_of(election, records), records,
                                identity=who, generated=CLOSED_AT, **SOFTWARE)
    built = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        write_cdf_exports(Path(out), exports, who)
        written = time.perf_counter()
        problems = verify_cdf_exports(Path(out), who.key.public_key())
        verified = time.perf_counter()
    print(f"{args.ballots} CVRs: build+validate+sign {built - started:.2f} s, write {written - built:.2f} s, "
          f"verify {verified - written:.2f} s; election report {len(exports.election_report.body) / 1e3:.0f} kB, "
          f"CVR report {len(exports.cvr_report.body) / 1e6:.2f} MB; problems {len(problems)}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

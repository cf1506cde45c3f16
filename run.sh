#!/usr/bin/env bash
# ballotbox: the two README commands.
#   bash run.sh day     set up what is missing, then run a simulated polling-station day (300 voters)
#   bash run.sh test    set up what is missing, then run the test suite
# Extra arguments after "day" go to `ballotbox simulate` (e.g. bash run.sh day --voters 1000 --seed 3).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
case "${1:-day}" in
  day)
    shift || true
    # a new directory each time: simulate never overwrites a day (resume one with --resume --out DIR)
    if [ $# -eq 0 ]; then set -- --voters 300 --seed 7 --out "out/day-$(date +%Y%m%d-%H%M%S)"; fi
    exec .venv/bin/ballotbox simulate "$@"
    ;;
  test)
    shift || true
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: bash run.sh day [simulate options] | bash run.sh test [pytest options]" >&2
    exit 2
    ;;
esac

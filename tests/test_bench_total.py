"""`ballotbox bench omr-total`: runs add up against the bars, and what cannot be added is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ballotbox.cli import UserError
from simulator.bench_omr import VVSG_VOLUME, total


def run_json(tmp: Path, level: str, kind: str, seed: int, *, boxes: int, ballots: int = 10, silent: int = 0,
             flags: int = 0, accepts: int = 0, opinion: str = "ai-edge-litert", counted: int | None = None,
             p50: float = 20.0) -> Path:
    figures = {"ballots": ballots, "box_positions": boxes, "silent_misreads": silent, "correct_verdicts": ballots - flags,
               "returns": 0, "flags": flags, "foreign_false_accepts": accepts, "errors": 0, "phantom_votes": 0,
               "missed_votes": 0, "box_positions_counted": boxes if counted is None else counted}
    doc = {"corpus": {"level": level, "kind": kind, "seed": seed}, "figures": figures, "second_opinion": opinion,
           "latency_ms": {"p50": p50, "p99": 40.0, "by_kind": {kind: {"p50": p50}}}}
    path = tmp / f"omr-{level}-{kind}-{seed}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_volume_over_l1_and_l2_meets_the_bar_only_when_it_is_all_there(tmp_path: Path) -> None:
    half = VVSG_VOLUME // 2 + 1
    a = run_json(tmp_path, "L1", "council", 3, boxes=half, ballots=1000, flags=10)
    b = run_json(tmp_path, "L2", "council", 3, boxes=half)
    out = tmp_path / "total.json"
    assert total([a, b], out) == 0
    doc = json.loads(out.read_text())
    assert doc["l1_l2_box_positions"] == 2 * half and doc["bar"]["met"]
    assert total([a]) == 1  # half the volume


@pytest.mark.parametrize("change", [{"silent": 1}, {"flags": 11}])
def test_one_silent_misread_or_too_many_l1_flags_fail_the_total(tmp_path: Path, change: dict[str, int]) -> None:
    a = run_json(tmp_path, "L1", "council", 3, boxes=VVSG_VOLUME, ballots=1000, **change)
    assert total([a]) == 1


def test_foreign_accept_fails_and_classical_runs_or_doubles_are_refused(tmp_path: Path) -> None:
    a = run_json(tmp_path, "L1", "council", 3, boxes=VVSG_VOLUME, ballots=1000)
    f = run_json(tmp_path, "foreign", "mayor", 3, boxes=0, accepts=1)
    assert total([a, f]) == 1
    off = run_json(tmp_path, "L2", "mayor", 4, boxes=8, opinion="off")
    with pytest.raises(UserError, match="second opinion off"):
        total([a, off])
    with pytest.raises(UserError, match="given twice"):
        total([a, a])
    bad = tmp_path / "x.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(UserError, match="not an OMR benchmark JSON"):
        total([bad])


def test_the_volume_is_of_positions_on_counted_sheets(tmp_path: Path) -> None:
    """Positions on sheets returned or flagged were never trusted: they cannot carry a silent misread."""
    a = run_json(tmp_path, "L1", "council", 3, boxes=VVSG_VOLUME, ballots=1000)
    b = run_json(tmp_path, "L2", "council", 3, boxes=VVSG_VOLUME, counted=0)
    c = run_json(tmp_path, "L1", "council", 4, boxes=VVSG_VOLUME, ballots=1000, counted=VVSG_VOLUME // 2)
    assert total([a, b]) == 0
    assert total([b, c]) == 1


def test_the_a4_latency_bar_is_judged_on_the_l1_mayor_runs(tmp_path: Path) -> None:
    a = run_json(tmp_path, "L1", "council", 3, boxes=VVSG_VOLUME, ballots=1000, p50=400.0)
    fast = run_json(tmp_path, "L1", "mayor", 3, boxes=8000, ballots=1000, p50=24.0)
    slow = run_json(tmp_path, "L1", "mayor", 4, boxes=8000, ballots=1000, p50=25.5)
    out = tmp_path / "t.json"
    assert total([a, fast], out) == 0
    assert total([a, fast, slow], out) == 1
    rule = next(r for r in json.loads(out.read_text())["bar"]["rules"] if r["rule"].startswith("p50"))
    assert rule == {"rule": "p50 <= 25 ms per L1 A4 (mayor) ballot, one core", "value": 25.5, "met": False}

"""interpret() with a pool reads exactly what it reads alone: the same interpretation, the same trace."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from firmware.cec.ballots import references_for
from omr.interpret import interpret
from simulator.bench_omr import CALIBRATED_WHITE
from simulator.corpus import make_item

CASES = [("L1", "mayor", 0), ("L1", "council", 1), ("L2", "council-sample", 2), ("L3", "mayor", 3),
         ("L3", "council", 5), ("foreign", "mayor", 0), ("foreign", "council-sample", 1)]


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


@pytest.mark.parametrize(("level", "kind", "index"), CASES)
def test_the_pool_changes_nothing_but_when_the_checks_run(pool, level: str, kind: str, index: int) -> None:
    item = make_item(level, kind, index, 4242)
    references = references_for(item.election)
    alone: list[tuple[str, str]] = []
    pooled: list[tuple[str, str]] = []
    a = interpret(item.image, item.election, dpi=item.dpi, references=references, white=CALIBRATED_WHITE,
                  trace=lambda stage, value: alone.append((stage, repr(value))))
    b = interpret(item.image, item.election, dpi=item.dpi, references=references, white=CALIBRATED_WHITE,
                  trace=lambda stage, value: pooled.append((stage, repr(value))), pool=pool)
    assert a == b
    assert alone == pooled
    assert len(alone) >= 2


def test_a_streak_returns_first_with_or_without_the_pool(pool) -> None:
    item = make_item("L1", "mayor", 4, 4242)
    image = item.image.copy()
    h, w = image.shape[:2]
    image[:, w // 2: w // 2 + 3] = 0  # a dead sensor column along the whole frame
    a = interpret(image, item.election, dpi=item.dpi)
    b = interpret(image, item.election, dpi=item.dpi, pool=pool)
    assert a == b
    assert a.reasons and str(a.reasons[0]).startswith("scan_streak")

"""Hand-marked ballots: rendered by `ballots render`, marked by a "voter" with independent drawing
code (freehand ballpoint X's, ticks, scribble fills, a stray mark beside a name), then "scanned"
imperfectly (0.5-2 degree skew, one upside down, blur, JPEG q85, darker background margin,
grayscale scans). `omr interpret` must read each exactly as written in expected.json.

See data/handmarked/README.md for how each image was made.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ballotbox.cli import main

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "handmarked"
ELECTION = HERE.parent / "config" / "elections" / "municipal-2024-sample.json"
EXPECTED: dict = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))


def test_data_set_is_complete() -> None:
    images = sorted(p.name for p in DATA.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    assert images == sorted(EXPECTED), "every image has an expectation and vice versa"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_handmarked_ballot_is_read_as_marked(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["omr", "interpret", "--election", str(ELECTION), str(DATA / name)])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    got = json.loads(lines[0])
    want = EXPECTED[name]

    assert got["verdict"] == want["verdict"], got
    for code in want.get("reasons_include", []):  # ballot-level reasons, e.g. ink outside the boxes
        assert any(r.split(":")[0] == code for r in got["reasons"]), got
    assert set(got["contests"]) == set(want["contests"]), got
    for contest_id, exp in want["contests"].items():
        res = got["contests"][contest_id]
        assert res["outcome"] == exp["outcome"], (contest_id, got)
        assert res["list"] == exp["list"], (contest_id, got)
        assert sorted(res["candidates"]) == sorted(exp["candidates"]), (contest_id, got)
        for reason in exp.get("reasons", []):
            assert reason in res.get("reasons", []), (contest_id, reason, got)

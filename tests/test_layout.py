"""Ballot layout: every box inside the paper, none overlapping, the render contract, 30 x 35."""

from __future__ import annotations

import itertools

import pytest

from config.election import Election, parse_election
from omr.layout import LayoutError, layout_ballot


def _overlap(a, b) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


@pytest.mark.parametrize("which, style", [("sample", "N"), ("sample", "V"), ("large", "V")])
def test_boxes_inside_paper_and_apart(which: str, style: str, election: Election, large_election: Election) -> None:
    e = election if which == "sample" else large_election
    lay = layout_ballot(e, style)
    contests = e.contests_of(style)
    expected = sum(len(c.candidates) + sum(1 + len(pl.candidates) for pl in c.lists) for c in contests)
    assert len(lay.boxes) == expected
    for b in lay.boxes:
        r = b.rect
        assert 0 < r.x and r.x + r.w < lay.width_mm and 0 < r.y and r.y + r.h < lay.height_mm
        for m in lay.registration:
            assert not _overlap(r, m)
        assert not _overlap(r, lay.code) and not _overlap(r, lay.stamp)
    by_row = sorted(lay.boxes, key=lambda b: (b.rect.x, b.rect.y))
    for a, b in itertools.pairwise(by_row):
        assert not _overlap(a.rect, b.rect)
    assert len({b.box_id for b in lay.boxes}) == len(lay.boxes)


def test_30_lists_of_35_fit_on_long_paper(large_election: Election) -> None:
    lay = layout_ballot(large_election, "V")
    assert len(lay.boxes) == 30 * 36
    assert lay.width_mm == 420 and lay.height_mm <= 1200


def test_candidates_sit_under_their_list_in_order(election: Election) -> None:
    lay = layout_ballot(election, "V")
    l3 = [b for b in lay.boxes if b.list == "l3"]
    assert l3[0].kind == "list" and [b.candidate for b in l3[1:]] == [f"l3c{i}" for i in range(1, 21)]
    ys = [b.rect.y for b in l3]
    assert ys == sorted(ys)
    assert all(b.rect.x > l3[0].rect.x for b in l3[1:])  # indented


def test_layout_json_contract(election: Election) -> None:
    data = layout_ballot(election, "N").to_json(200)
    assert data["image"] == {"width": 1654, "height": 2339, "dpi": 200}
    assert data["style"] == "N" and len(data["registration"]) == 4
    box = data["boxes"][0]
    assert set(box) == {"contest", "kind", "list", "candidate", "rect"}
    assert box["contest"] == "nacelnik" and box["kind"] == "candidate" and box["candidate"] == "m1" and box["list"] is None
    assert len(box["rect"]) == 4 and all(isinstance(v, int) for v in box["rect"])


def test_fixed_paper_too_short_names_the_style(election: Election) -> None:
    raw = election.model_dump(mode="json")
    raw["ballot_styles"][1]["paper"] = {"width_mm": 210, "height_mm": 297}
    e = parse_election(raw)
    with pytest.raises(LayoutError, match="ballot style V: contests need .* mm but the paper is 297 mm high"):
        layout_ballot(e, "V")


def test_unknown_style_lists_the_known_ones(election: Election) -> None:
    with pytest.raises(LayoutError, match=r"no ballot style 'X' \(styles: N, V\)"):
        layout_ballot(election, "X")

"""Ballot layout: where everything sits on a ballot of a given style, in millimetres.

Pure geometry from the election definition. The printer (firmware.cec.ballots) draws it, the simulator
marks it, and the interpreter reads it; all three take their coordinates from here, so a printed
ballot and its interpretation cannot disagree about where a box is.

Sheet anatomy (y grows downwards, origin at the top-left corner of the paper):

    [R]  title (Latin / Cyrillic), election, station        [QR] [R]
         instructions
         contest area: one square box per candidate, and per list on open-list ballots
    [R]  "Uputstvo za glasanje" + stamp zone (Art. 21(3))        [R]

[R] are four solid registration squares; the QR is the authenticated ballot code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from config.election import BallotStyle, Contest, ContestKind, Election

MARK_MM = 7.0  # registration square side
MARK_INSET_MM = 5.0  # from the paper edge: survives the feeder's ±2 mm side play and paper cutting tolerance
MARGIN_MM = 15.0  # text and boxes keep off the registration columns
# ballot code side incl. its 4-module quiet zone: a version-5 QR (37 + 8 modules, omr.ballot_code) at
# 1.2 mm per module, which a 100 dpi capture blurred by 2 px still resolves (BENCHMARKS L3)
CODE_MM = 54.0
HEADER_MM = 72.0  # the code hangs 2 mm below the top-right square and reaches down to 68 mm
BAND_Y_MM, BAND_H_MM = 68.5, 2.0  # the security band under the header, margin to margin
FOOTER_MM = 44.0
STAMP_W_MM, STAMP_H_MM = 50.0, 26.0
BLOCK_GAP_ROWS = 0.8  # blank space after each list block, in rows


class LayoutError(ValueError):
    """The definition cannot be laid out on its paper; the message names the style and what to change."""


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def px(self, dpi: float) -> list[int]:
        k = dpi / 25.4
        x0, y0 = round(self.x * k), round(self.y * k)
        return [x0, y0, round((self.x + self.w) * k) - x0, round((self.y + self.h) * k) - y0]


@dataclass(frozen=True)
class BoxSpec:
    contest: str
    kind: str  # "list" | "candidate"
    list: str | None
    candidate: str | None
    rect: Rect

    @property
    def box_id(self) -> str:
        return f"{self.contest}/{self.candidate or self.list}"


@dataclass(frozen=True)
class TextSpec:
    """A line of printed text: `role` chooses the font; `latn`/`cyrl` are the two scripts' renderings."""

    role: str  # title | subtitle | station | instructions | contest | list | candidate | footer
    rect: Rect
    latn: str
    cyrl: str


@dataclass(frozen=True)
class BallotLayout:
    election_id: str
    style: str
    width_mm: float
    height_mm: float
    registration: tuple[Rect, Rect, Rect, Rect]  # top-left, top-right, bottom-right, bottom-left
    code: Rect
    band: Rect  # the security band (style.security_colour)
    note: Rect  # beside the stamp zone: printed notices ("PROBNI LISTIĆ" on specimens), never a box
    stamp: Rect
    boxes: tuple[BoxSpec, ...]
    texts: tuple[TextSpec, ...]
    box_mm: float

    def size_px(self, dpi: float) -> tuple[int, int]:
        k = dpi / 25.4
        return round(self.width_mm * k), round(self.height_mm * k)

    def to_json(self, dpi: float) -> dict[str, Any]:
        """The `--layout-json` contract of `ballotbox ballots render`, in pixels of that render."""
        w, h = self.size_px(dpi)
        return {
            "image": {"width": w, "height": h, "dpi": dpi},
            "style": self.style,
            "boxes": [
                {"contest": b.contest, "kind": b.kind, "list": b.list, "candidate": b.candidate, "rect": b.rect.px(dpi)}
                for b in self.boxes
            ],
            "registration": [r.px(dpi) for r in self.registration],
            "code": self.code.px(dpi),
            "band": self.band.px(dpi),
            "stamp": self.stamp.px(dpi),
        }


def layout_ballot(election: Election, style_id: str) -> BallotLayout:
    """The layout of one ballot style. Raises LayoutError when it does not fit its paper."""
    return _layout_cached(election.digest(), style_id, _Box(election))


class _Box:
    """Carries the election through lru_cache without hashing it (the digest is the key)."""

    def __init__(self, election: Election) -> None:
        self.election = election

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return True


@lru_cache(maxsize=32)
def _layout_cached(digest: str, style_id: str, box: _Box) -> BallotLayout:
    election = box.election
    try:
        style = election.style(style_id)
    except KeyError:
        known = ", ".join(s.id for s in election.ballot_styles)
        raise LayoutError(f"election {election.id}: no ballot style '{style_id}' (styles: {known})") from None
    return _Layouter(election, style).run()


class _Layouter:
    def __init__(self, election: Election, style: BallotStyle) -> None:
        self.e = election
        self.s = style
        self.g = style.boxes
        self.w = style.paper.width_mm
        self.texts: list[TextSpec] = []
        self.boxes: list[BoxSpec] = []

    def run(self) -> BallotLayout:
        contests = self.e.contests_of(self.s.id)
        content_w = self.w - 2 * MARGIN_MM
        # Contest area: each contest is a sequence of blocks packed into columns.
        plans = [self._blocks(c, content_w) for c in contests]
        body_h = sum(p.height for p in plans)
        height = self.s.paper.height_mm
        needed = HEADER_MM + body_h + FOOTER_MM
        if height is None:
            if needed > self.s.paper.max_height_mm:
                raise LayoutError(
                    f"ballot style {self.s.id}: needs {needed:.0f} mm of paper, max_height_mm is "
                    f"{self.s.paper.max_height_mm:.0f}; use wider paper (paper.width_mm) or smaller rows (boxes.row_mm)"
                )
            height = math.ceil(needed)
        elif needed > height:
            raise LayoutError(
                f"ballot style {self.s.id}: contests need {needed:.0f} mm but the paper is {height:.0f} mm high; "
                "set paper.height_mm to null for long paper, or use wider paper"
            )
        self._header(contests)
        y = HEADER_MM
        for plan in plans:
            plan.place(self, y)
            y += plan.height
        self._footer(height)
        stamp_y = _stamp_y(height)
        return BallotLayout(
            election_id=self.e.id,
            style=self.s.id,
            width_mm=self.w,
            height_mm=height,
            registration=_registration(self.w, height),
            code=Rect(self.w - MARGIN_MM - CODE_MM + 3, MARK_INSET_MM + MARK_MM + 2, CODE_MM, CODE_MM),
            band=Rect(MARGIN_MM, BAND_Y_MM, self.w - 2 * MARGIN_MM, BAND_H_MM),
            stamp=Rect(MARGIN_MM, stamp_y, STAMP_W_MM, STAMP_H_MM),
            note=Rect(MARGIN_MM + STAMP_W_MM + 8, stamp_y, min(90.0, self.w - 2 * MARGIN_MM - STAMP_W_MM - 10), STAMP_H_MM),
            boxes=tuple(self.boxes),
            texts=tuple(self.texts),
            box_mm=self.g.box_mm,
        )

    # -- header and footer ------------------------------------------------------------------
    def _text(self, role: str, x: float, y: float, w: float, h: float, latn: str, cyrl: str) -> None:
        self.texts.append(TextSpec(role, Rect(x, y, w, h), latn, cyrl))

    def _header(self, contests: list[Contest]) -> None:
        x, w = MARGIN_MM + 2, self.w - 2 * MARGIN_MM - CODE_MM - 4
        st = self.e.station
        self._text("title", x, 7, w, 7, self.s.title.latn, self.s.title.cyrl or "")
        self._text("subtitle", x, 15, w, 5, self.s.title.cyrl or "", "")
        self._text("station", x, 22, w, 4.5, f"{self.e.title.latn} · {self.e.date}", self.e.title.cyrl or "")
        self._text("station", x, 27.5, w, 4.5, f"Biračko mjesto {st.code} · {st.name.latn} · {st.municipality.latn}",
                   f"Бирачко мјесто {st.code} · {st.name.cyrl} · {st.municipality.cyrl}")
        instr = [c.instructions for c in contests if c.instructions]
        if instr:
            self._text("instructions", x, 34, w, 5, instr[0].latn, "")
            self._text("instructions", x, 40, w, 5, instr[0].cyrl or "", "")

    def _footer(self, height: float) -> None:
        stamp_y = _stamp_y(height)
        self._text("footer", MARGIN_MM, stamp_y - 11, 90, 4.5, "Uputstvo za glasanje: na poleđini listića", "")
        self._text("footer", MARGIN_MM, stamp_y - 6, 90, 4.5, "Упутство за гласање: на полеђини листића", "")
        self._text("stamp", MARGIN_MM + 2, stamp_y + 2, STAMP_W_MM - 4, 4, "Pečat biračkog mjesta", "Печат")

    # -- contest blocks ---------------------------------------------------------------------
    def _blocks(self, contest: Contest, content_w: float) -> "_ContestPlan":
        row = self.g.row_mm
        ncols = max(1, int(content_w // self.g.column_min_mm))
        blocks: list[_Block] = []
        if contest.kind == ContestKind.SINGLE_CHOICE:
            for cand in contest.candidates:
                blocks.append(_Block(rows=1.0, entries=[("candidate", None, cand.id, f"{cand.number}. {cand.name.latn}",
                                                         cand.name.cyrl or "")]))
        else:
            for pl in contest.lists:
                entries = [("list", pl.id, None, f"{pl.number}. {pl.name.latn}", pl.name.cyrl or "")]
                entries += [("candidate", pl.id, c.id, f"{c.number}. {c.name.latn}", c.name.cyrl or "")
                            for c in pl.candidates]
                blocks.append(_Block(rows=len(entries) + BLOCK_GAP_ROWS, entries=entries))
        title_h = 9.0
        col_h = _pack_height([b.rows * row for b in blocks], ncols)
        return _ContestPlan(contest, blocks, ncols, content_w / ncols, title_h, col_h)


@dataclass
class _Block:
    rows: float
    entries: list[tuple[str, str | None, str | None, str, str]]


@dataclass
class _ContestPlan:
    contest: Contest
    blocks: list[_Block]
    ncols: int
    col_w: float
    title_h: float
    col_h: float

    @property
    def height(self) -> float:
        return self.title_h + self.col_h + 4.0

    def place(self, lay: _Layouter, top: float) -> None:
        c = self.contest
        lay._text("contest", MARGIN_MM + 2, top, lay.w - 2 * MARGIN_MM, 6, c.title.latn, c.title.cyrl or "")
        row, box = lay.g.row_mm, lay.g.box_mm
        heights = [b.rows * row for b in self.blocks]
        columns = _pack(heights, self.ncols, self.col_h)
        assert columns is not None, "col_h was computed by _pack_height for these blocks"
        for col, indices in enumerate(columns):
            x0 = MARGIN_MM + col * self.col_w + 2
            y = top + self.title_h
            for i in indices:
                for j, (kind, list_id, cand_id, latn, cyrl) in enumerate(self.blocks[i].entries):
                    # candidates of a list are indented under its list box
                    indent = 0.0 if kind == "list" or list_id is None else box + 2.0
                    bx = x0 + indent
                    by = y + j * row + (row - box) / 2
                    lay.boxes.append(BoxSpec(c.id, kind, list_id, cand_id, Rect(bx, by, box, box)))
                    role = "list" if kind == "list" else "candidate"
                    tx = bx + box + 2.0
                    lay._text(role, tx, y + j * row, x0 + self.col_w - 3 - tx, row, latn, cyrl)
                y += heights[i]


def _pack(heights: list[float], ncols: int, col_h: float) -> list[list[int]] | None:
    """Greedy column-major packing of blocks, in order (voters read list 1, 2, 3 ... down the columns);
    None when they need more than ncols columns of height col_h."""
    columns: list[list[int]] = [[]]
    used = 0.0
    for i, h in enumerate(heights):
        if columns[-1] and used + h > col_h + 1e-6:
            columns.append([])
            used = 0.0
        columns[-1].append(i)
        used += h
    return columns if len(columns) <= ncols else None


def _pack_height(heights: list[float], ncols: int) -> float:
    """The least column height in which the blocks, in order, fit into ncols columns."""
    lo, hi = max(heights), sum(heights)
    for _ in range(40):
        mid = (lo + hi) / 2
        if _pack(heights, ncols, mid) is None:
            lo = mid
        else:
            hi = mid
    return hi


def _stamp_y(height: float) -> float:
    """Top of the stamp zone: above the bottom registration squares, with 4 mm to spare."""
    return height - MARK_INSET_MM - MARK_MM - STAMP_H_MM - 4


def _registration(w: float, h: float) -> tuple[Rect, Rect, Rect, Rect]:
    a, m = MARK_INSET_MM, MARK_MM
    return (Rect(a, a, m, m), Rect(w - a - m, a, m, m), Rect(w - a - m, h - a - m, m, m), Rect(a, h - a - m, m, m))

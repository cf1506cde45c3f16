"""What an interpretation is: the verdict, per-contest outcomes and the reasons, as data.

Reasons are codes (an enum), never free text: the firmware turns them into words of the station's
language through the message catalogue, and tallies count them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    VALID = "valid"  # važeći: every contest valid
    INVALID = "invalid"  # nevažeći: a contest is blank, over-voted or marked on several lists
    AMBIGUOUS = "ambiguous"  # a mark the box cannot call with certainty: returned or flagged, never guessed
    FOREIGN = "foreign"  # not a ballot of this election / station / mode (Art. 21(10)): never counted
    UNREADABLE = "unreadable"  # marks or code not found: reinsert


class Outcome(StrEnum):
    VALID = "valid"
    BLANK = "blank"  # nothing marked -> invalid
    OVERVOTE = "overvote"  # single choice: more than vote_for marks -> invalid
    MULTIPLE_LISTS = "multiple_lists"  # open list: marks on more than one list -> invalid
    AMBIGUOUS = "ambiguous"  # a marginal mark decides the outcome -> for the committee


INVALID_OUTCOMES = frozenset({Outcome.BLANK, Outcome.OVERVOTE, Outcome.MULTIPLE_LISTS})


class Reason(StrEnum):
    # contest level
    BLANK = "blank"
    OVERVOTE = "overvote"
    MULTIPLE_LISTS = "multiple_lists"
    PREFERENCES_VOID = "preferences_void"  # open list: > max_preferences candidates -> list vote only
    MARGINAL_MARK = "marginal_mark"  # a box's ink is between marginal and definite
    INK_ACROSS_BOX = "ink_across_box"  # a stamp or writing runs across the box: it cannot be read
    # ballot level
    NO_REGISTRATION = "no_registration"  # registration marks not found
    BAD_GEOMETRY = "bad_geometry"  # marks found but they do not fit the layout (scale, skew, crop)
    NO_CODE = "no_code"  # ballot code missing or unreadable
    CODE_FORGED = "code_forged"  # code present but its signature does not verify
    OTHER_ELECTION = "other_election"
    OTHER_STATION = "other_station"
    UNKNOWN_STYLE = "unknown_style"
    TEST_BALLOT = "test_ballot"  # specimen / test ballot on an official day (or the reverse)
    NOT_ORIGINAL = "not_original"  # the security band is missing or grey: a photocopy (Art. 21(10))
    WRONG_PAPER = "wrong_paper"  # paper of another colour than the genuine ballots (Art. 21(10))
    IMAGE_INVALID = "image_invalid"  # not an image we can read at all
    SCAN_STREAK = "scan_streak"  # a line along the feed (dust on the glass): maintenance, "code:column"
    DOUBLE_SHEET = "double_sheet"  # two sheets fed at once (their outline shows it): fed one by one
    BLANK_SHEET = "blank_sheet"  # a sheet with no print: blank paper, or a ballot fed face down
    INK_OUTSIDE_BOXES = "ink_outside_boxes"  # writing or signs outside the boxes (Election Law 5.17), "code:x,y" mm


@dataclass(frozen=True)
class ContestResult:
    contest: str
    outcome: Outcome
    list: str | None = None  # open list: the list that gets the vote
    candidates: tuple[str, ...] = ()  # single choice: the chosen; open list: counted preferences
    reasons: tuple[str, ...] = ()  # Reason codes, optionally "code:box" for a named box

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "list": self.list, "candidates": list(self.candidates),
                "reasons": list(self.reasons)}

    @classmethod
    def from_json(cls, contest: str, data: dict[str, Any]) -> "ContestResult":
        return cls(contest=contest, outcome=Outcome(data["outcome"]), list=data.get("list"),
                   candidates=tuple(data.get("candidates", ())), reasons=tuple(data.get("reasons", ())))


@dataclass(frozen=True)
class BoxScore:
    contest: str
    kind: str  # "list" | "candidate"
    list: str | None
    candidate: str | None
    fill: float  # fraction of the inner box covered by ink, 0..1
    mark: str  # "mark" | "marginal" | "empty"
    why: str = ""  # for a marginal box: the Reason code (default marginal_mark)
    opinion: float | None = None  # the learned second opinion's P(mark), for the boxes it was asked about

    @property
    def box_id(self) -> str:
        return f"{self.contest}/{self.candidate or self.list}"


@dataclass(frozen=True)
class Interpretation:
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    style: str | None = None
    contests: dict[str, ContestResult] = field(default_factory=dict)
    scores: tuple[BoxScore, ...] = ()
    orientation: int = 0  # degrees the image was turned to read it (0 or 180)

    @property
    def castable(self) -> bool:
        """Foreign and unreadable sheets can never go into the box (Art. 21(10))."""
        return self.verdict not in (Verdict.FOREIGN, Verdict.UNREADABLE)

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "reasons": list(self.reasons), "style": self.style,
                "contests": {cid: r.to_json() for cid, r in self.contests.items()}}

    def cast_vote_record(self) -> dict[str, Any]:
        """The record kept for a cast ballot: the style and per-contest outcomes. No id, time, image,
        scores or anything else that could tie it to a moment or a voter."""
        return {"style": self.style,
                "contests": {cid: {"outcome": r.outcome.value, "list": r.list, "candidates": sorted(r.candidates)}
                             for cid, r in sorted(self.contests.items())}}

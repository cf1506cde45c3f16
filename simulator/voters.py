"""A voter population with ground-truth intentions, and the paper sheets they mark.

Each voter gets one ballot of every style. For every contest the voter intends something: a valid
vote (list only, list with preferences, preferences only), a blank ballot, an over-vote, marks on two
lists, or too many preferences. Some spoil a ballot on purpose and ask for a new one; some who made an
accidental mistake see "nevažeći" and take the ballot back.

The expected outcome of each intention is written here from DOMAIN.md, independently of omr.rules, so
that the day's final check compares the box against a second reading of the rules, not against itself.
"""

from __future__ import annotations

import itertools
import random
import zlib
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from config.election import Contest, ContestKind, Election
from firmware.cec.pens import MarkStyle, Pen


class Intent(StrEnum):
    VALID = "valid"
    BLANK = "blank"
    OVERVOTE = "overvote"  # single choice: two or three candidates
    MULTIPLE_LISTS = "multiple_lists"  # open list: marks on two lists
    OVER_PREFERENCED = "over_preferenced"  # open list: more candidates than max_preferences


@dataclass(frozen=True)
class Expected:
    """What a correct box must record for one contest of a cast ballot."""

    outcome: str  # valid | blank | overvote | multiple_lists
    list: str | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContestIntent:
    contest: str
    intent: Intent
    boxes: frozenset[str]  # ids of the boxes to mark (list ids and candidate ids)
    expected: Expected


@dataclass
class Sheet:
    """A paper ballot: its style and the voter's marks. Sim-internal id only.

    The camera draws the sheet when it is in the feeder, with `ink_seed` fixing the strokes, so a
    reinserted sheet looks the same; `image` is set only for sheets made elsewhere (a foreign ballot,
    a photocopy) and is then used as it is."""

    sheet_id: int
    style: str
    contests: tuple[ContestIntent, ...] = ()
    marks: dict[str, tuple[MarkStyle, Pen]] = field(default_factory=dict)
    image: np.ndarray | None = None  # a pre-made sheet (RGB at the camera's dpi); None: drawn from the marks
    foreign: bool = False
    ink_seed: int = 0
    key: str = ""  # the simulator's name for this sheet (e.g. "v12.b1.f0"), for the world journal

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"sheet{self.sheet_id}"

    @property
    def marked_boxes(self) -> frozenset[str]:
        return frozenset(b for c in self.contests for b in c.boxes)


@dataclass(frozen=True)
class BallotPlan:
    """One style's ballot for one voter: the final intention, and what happens before it."""

    style: str
    final: tuple[ContestIntent, ...]
    spoiled_first: tuple[ContestIntent, ...] | None  # marked, then returned on purpose ("I made a mistake")
    casts_invalid: bool  # an invalid final intention is deliberate (cast anyway) rather than accidental
    corrected: tuple[ContestIntent, ...] | None  # after an accidental invalid, the intention on the new ballot


@dataclass(frozen=True)
class Voter:
    number: int
    ballots: tuple[BallotPlan, ...]


@dataclass(frozen=True)
class PopulationMix:
    """Shares of intentions per contest, and of behaviours per ballot (sum of intents is 1)."""

    valid: float = 0.86
    blank: float = 0.04
    overvote_or_multiple: float = 0.05
    over_preferenced: float = 0.05  # open list only; for single choice it counts as valid
    spoil_rate: float = 0.03  # voters who spoil one ballot and ask for a new one
    deliberate_invalid: float = 0.5  # of invalid intentions, share cast knowingly


def make_population(election: Election, n: int, rng: random.Random, mix: PopulationMix = PopulationMix()) -> list[Voter]:
    voters = []
    for i in range(n):
        plans = []
        for style in election.ballot_styles:
            final = tuple(_intend(c, rng, mix) for c in election.contests_of(style.id))
            invalid = any(ci.expected.outcome != "valid" for ci in final)
            deliberate = (not invalid) or rng.random() < mix.deliberate_invalid or all(
                ci.intent == Intent.BLANK for ci in final if ci.expected.outcome != "valid")
            corrected = None
            if not deliberate:
                corrected = tuple(_intend(c, rng, mix, force=Intent.VALID) for c in election.contests_of(style.id))
            spoiled = None
            if rng.random() < mix.spoil_rate:
                spoiled = tuple(_intend(c, rng, mix, force=Intent.VALID) for c in election.contests_of(style.id))
            plans.append(BallotPlan(style.id, final, spoiled, deliberate, corrected))
        voters.append(Voter(i + 1, tuple(plans)))
    return voters


def _intend(contest: Contest, rng: random.Random, mix: PopulationMix, force: Intent | None = None) -> ContestIntent:
    r = rng.random()
    if force is not None:
        intent = force
    elif r < mix.blank:
        intent = Intent.BLANK
    elif r < mix.blank + mix.overvote_or_multiple:
        intent = Intent.OVERVOTE if contest.kind == ContestKind.SINGLE_CHOICE else Intent.MULTIPLE_LISTS
    elif r < mix.blank + mix.overvote_or_multiple + mix.over_preferenced and contest.kind == ContestKind.OPEN_LIST:
        intent = Intent.OVER_PREFERENCED
    else:
        intent = Intent.VALID
    if contest.kind == ContestKind.SINGLE_CHOICE:
        return _single(contest, intent, rng)
    return _open_list(contest, intent, rng)


def _single(contest: Contest, intent: Intent, rng: random.Random) -> ContestIntent:
    ids = [c.id for c in contest.candidates]
    if intent == Intent.BLANK:
        return ContestIntent(contest.id, intent, frozenset(), Expected("blank"))
    if intent == Intent.OVERVOTE and len(ids) > contest.vote_for:
        picks = rng.sample(ids, rng.randint(contest.vote_for + 1, min(len(ids), contest.vote_for + 2)))
        return ContestIntent(contest.id, intent, frozenset(picks), Expected("overvote"))
    picks = rng.sample(ids, contest.vote_for)
    ordered = tuple(i for i in ids if i in picks)
    return ContestIntent(contest.id, Intent.VALID, frozenset(picks), Expected("valid", None, ordered))


def _open_list(contest: Contest, intent: Intent, rng: random.Random) -> ContestIntent:
    if intent == Intent.BLANK:
        return ContestIntent(contest.id, intent, frozenset(), Expected("blank"))
    if intent == Intent.MULTIPLE_LISTS and len(contest.lists) > 1:
        a, b = rng.sample(contest.lists, 2)
        # two list boxes, or a list box and a candidate of another list, or candidates of two lists
        how = rng.randrange(3)
        boxes = {a.id, b.id} if how == 0 else {a.id, rng.choice(b.candidates).id} if how == 1 else {
            rng.choice(a.candidates).id, rng.choice(b.candidates).id}
        return ContestIntent(contest.id, intent, frozenset(boxes), Expected("multiple_lists"))
    pl = rng.choice(contest.lists)
    cands = [c.id for c in pl.candidates]
    if intent == Intent.OVER_PREFERENCED and len(cands) > contest.max_preferences:
        n = rng.randint(contest.max_preferences + 1, min(len(cands), contest.max_preferences + 3))
        boxes = set(rng.sample(cands, n)) | ({pl.id} if rng.random() < 0.7 else set())
        return ContestIntent(contest.id, intent, frozenset(boxes), Expected("valid", pl.id, ()))
    how = rng.random()
    if how < 0.35:  # list only
        return ContestIntent(contest.id, Intent.VALID, frozenset({pl.id}), Expected("valid", pl.id, ()))
    n = rng.randint(1, min(contest.max_preferences, len(cands))) if contest.max_preferences else 0
    prefs = rng.sample(cands, n)
    ordered = tuple(c for c in cands if c in prefs)
    boxes = set(prefs) | ({pl.id} if how < 0.8 or not prefs else set())  # 20 %: preferences only, list box unmarked
    return ContestIntent(contest.id, Intent.VALID, frozenset(boxes), Expected("valid", pl.id, ordered))


def mark_sheet(sheet: Sheet, rng: random.Random) -> None:
    """Choose how each intended box is marked (a voter keeps one pen and mostly one style)."""
    pen = Pen.random(rng)
    habit = rng.choices(list(MarkStyle), weights=[6, 2, 2])[0]
    for box in sorted(sheet.marked_boxes):
        style = habit if rng.random() < 0.85 else rng.choice(list(MarkStyle))
        sheet.marks[box] = (style, pen)


_ids = itertools.count(1)


def new_sheet(style: str, contests: tuple[ContestIntent, ...], rng: random.Random, key: str = "") -> Sheet:
    """A marked sheet. With a `key`, the sheet is a function of the key and the rng's seed alone (the
    same sheet is made again after a restart); without, it gets the next sim-internal id."""
    sheet_id = (zlib.crc32(key.encode()) | 1 << 32) if key else next(_ids)
    sheet = Sheet(sheet_id, style, contests, ink_seed=rng.getrandbits(32), key=key)
    mark_sheet(sheet, rng)
    return sheet

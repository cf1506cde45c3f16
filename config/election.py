"""The election definition: what a polling station votes on, and the rules that make a ballot valid.

An election definition is a JSON document (see config/elections/*.json). `load_election()` reads and
validates it; every error names the file, the field path and the value, and says what to do.

The validity rules of DOMAIN.md are data here, per contest (`vote_for`, `max_preferences`, ...), so a
rule change by the CEC is a change of the package, not of the code.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from config.script import latin_to_cyrillic

SAMPLE_ELECTION = Path(__file__).parent / "elections" / "municipal-2024-sample.json"
LARGE_ELECTION = Path(__file__).parent / "elections" / "council-30x35.json"

# What the ballot layout engine is built and tested for (DOMAIN.md: large municipalities reach ~30 x 35).
MAX_LISTS = 30
MAX_CANDIDATES_PER_LIST = 35

STATION_CODE = re.compile(r"^\d{3}[A-Z]\d{3}$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class ElectionError(ValueError):
    """An election definition that cannot be used. The message names the file, field and value."""


class Language(StrEnum):
    BS = "bs"
    HR = "hr"
    SR_LATN = "sr-Latn"
    SR_CYRL = "sr-Cyrl"
    EN = "en"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Name(_Strict):
    """A name in both official scripts. `cyrl` defaults to the transliteration of `latn`."""

    latn: Annotated[str, Field(min_length=1, max_length=120)]
    cyrl: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"latn": value}
        return value

    @model_validator(mode="after")
    def _fill_cyrillic(self) -> "Name":
        if self.cyrl is None:
            object.__setattr__(self, "cyrl", latin_to_cyrillic(self.latn))
        return self

    def render(self, script: str) -> str:
        return (self.cyrl or self.latn) if script == "cyrl" else self.latn


class Candidate(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    number: Annotated[int, Field(ge=1, le=99)]
    name: Name


class PartyList(_Strict):
    """A list on an open-list ballot: a party, coalition, list of independents or an independent."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    number: Annotated[int, Field(ge=1, le=99)]
    name: Name
    candidates: list[Candidate] = Field(default_factory=list)


class ContestKind(StrEnum):
    SINGLE_CHOICE = "single_choice"  # e.g. mayor (načelnik): mark exactly `vote_for` candidates
    OPEN_LIST = "open_list"  # e.g. municipal council: one list, up to `max_preferences` of its candidates


class Contest(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    kind: ContestKind
    title: Name
    instructions: Name | None = None
    # single_choice
    vote_for: Annotated[int, Field(ge=1, le=10)] = 1
    candidates: list[Candidate] = Field(default_factory=list)
    # open_list (Election Law 2024 amendments: at most 3 preferences, on the chosen list only)
    max_preferences: Annotated[int, Field(ge=0, le=35)] = 3
    lists: list[PartyList] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> "Contest":
        if self.kind == ContestKind.SINGLE_CHOICE:
            if not self.candidates:
                raise ValueError(f"contest '{self.id}': a single_choice contest needs 'candidates'")
            if self.lists:
                raise ValueError(f"contest '{self.id}': a single_choice contest has no 'lists'")
            if self.vote_for > len(self.candidates):
                raise ValueError(
                    f"contest '{self.id}': vote_for={self.vote_for} but only {len(self.candidates)} candidates"
                )
            _unique(self.id, "candidate number", [c.number for c in self.candidates])
            _unique(self.id, "candidate id", [c.id for c in self.candidates])
        else:
            if not self.lists:
                raise ValueError(f"contest '{self.id}': an open_list contest needs 'lists'")
            if self.candidates:
                raise ValueError(f"contest '{self.id}': put candidates of an open_list contest inside their list")
            _unique(self.id, "list number", [pl.number for pl in self.lists])
            _unique(self.id, "list id", [pl.id for pl in self.lists])
            if len(self.lists) > MAX_LISTS:
                raise ValueError(f"contest '{self.id}': {len(self.lists)} lists, layout allows {MAX_LISTS}")
            for pl in self.lists:
                if not pl.candidates:
                    raise ValueError(f"contest '{self.id}', list {pl.number} ({pl.id}): no candidates")
                if len(pl.candidates) > MAX_CANDIDATES_PER_LIST:
                    raise ValueError(
                        f"contest '{self.id}', list {pl.number} ({pl.id}): {len(pl.candidates)} candidates, "
                        f"layout allows {MAX_CANDIDATES_PER_LIST}"
                    )
                _unique(f"{self.id}/{pl.id}", "candidate number", [c.number for c in pl.candidates])
            # Preferential votes, box ids and tallies are keyed by candidate id: unique in the whole contest,
            # and never equal to a list id (a box id names one or the other).
            _unique(self.id, "candidate or list id",
                    [pl.id for pl in self.lists] + [c.id for pl in self.lists for c in pl.candidates])
        return self

    def list_by_id(self, list_id: str) -> PartyList:
        for pl in self.lists:
            if pl.id == list_id:
                return pl
        raise KeyError(list_id)


class Paper(_Strict):
    """Paper size in millimetres. `height_mm: null` means long paper cut to fit (up to max_height_mm)."""

    width_mm: Annotated[float, Field(ge=100, le=420)] = 210
    height_mm: Annotated[float, Field(ge=140, le=1200)] | None = 297
    max_height_mm: Annotated[float, Field(ge=140, le=1200)] = 1000


class BoxGeometry(_Strict):
    """Sizes of the voting boxes and rows (mm). Small enough for 30 x 35 on long paper, large enough
    that a 100-dpi capture still has 16 px across a box."""

    box_mm: Annotated[float, Field(ge=4, le=12)] = 5.0
    row_mm: Annotated[float, Field(ge=5, le=20)] = 6.5
    column_min_mm: Annotated[float, Field(ge=40, le=200)] = 64.0

    @model_validator(mode="after")
    def _fits(self) -> "BoxGeometry":
        if self.row_mm < self.box_mm + 1.0:
            raise ValueError(f"row_mm {self.row_mm} leaves under 1 mm between boxes of {self.box_mm} mm")
        return self


class BallotStyle(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,4}$")]
    title: Name
    contests: Annotated[list[str], Field(min_length=1)]
    paper: Paper = Paper()
    boxes: BoxGeometry = BoxGeometry()
    colour: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#ffffff"  # paper colour
    # The security band printed under the header in a spot colour: a black-and-white copy loses it, so
    # the scanner can tell an original from a photocopy (Art. 21(10)). Saturated colours only.
    security_colour: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#1f5fa8"

    @field_validator("security_colour")
    @classmethod
    def _saturated(cls, value: str) -> str:
        rgb = [int(value[i:i + 2], 16) for i in (1, 3, 5)]
        if max(rgb) == 0 or (max(rgb) - min(rgb)) / max(rgb) < 0.5:
            raise ValueError(f"security_colour {value} is too grey to tell an original from a copy: "
                             "give a saturated colour (e.g. #1f5fa8)")
        return value


class Station(_Strict):
    code: str
    name: Name
    municipality: Name
    registered_voters: Annotated[int, Field(ge=1, le=5000)]
    language: Language = Language.BS

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not STATION_CODE.match(value):
            raise ValueError(
                f"polling station code '{value}' is not of the form 089A012 "
                "(3-digit municipality, letter, 3-digit station)"
            )
        return value


class Polls(_Strict):
    opening: str = "07:00"
    closing: str = "19:00"
    turnout_reports: list[str] = Field(default_factory=lambda: ["11:00", "15:00", "19:00"])

    @model_validator(mode="after")
    def _times(self) -> "Polls":
        for label, value in [("opening", self.opening), ("closing", self.closing)] + [
            ("turnout_reports", t) for t in self.turnout_reports
        ]:
            if not HHMM.match(value):
                raise ValueError(f"polls.{label}: '{value}' is not a time HH:MM")
        if self.closing <= self.opening:
            raise ValueError(f"polls: closing {self.closing} is not after opening {self.opening}")
        for t in self.turnout_reports:
            if not self.opening <= t <= self.closing:
                raise ValueError(f"polls.turnout_reports: {t} is outside {self.opening}-{self.closing}")
        return self


class OmrThresholds(_Strict):
    """Fraction of a box's inner area covered by ink.

    definite 0.08: an X of two 0.4 mm strokes across a 5 mm box covers ~0.20; a check ~0.12; the lightest
    deliberate mark we accept as certain still covers 0.08. marginal 0.03: a hesitation dot of 1 mm covers
    ~0.03 and must not count, yet anything above it is too much ink to ignore silently -> ambiguous, named.
    """

    definite: Annotated[float, Field(gt=0, lt=1)] = 0.08
    marginal: Annotated[float, Field(gt=0, lt=1)] = 0.03
    ink_level: Annotated[int, Field(ge=1, le=254)] = 150  # dark ink: below this share (of 255) of the paper level
    # light ink (pencil, faint pens; also smudges and erasures, which the stroke analysis then rejects)
    light_level: Annotated[int, Field(ge=1, le=254)] = 205

    @model_validator(mode="after")
    def _order(self) -> "OmrThresholds":
        if self.marginal >= self.definite:
            raise ValueError(f"omr: marginal {self.marginal} must be below definite {self.definite}")
        if self.light_level <= self.ink_level:
            raise ValueError(f"omr: light_level {self.light_level} must be above ink_level {self.ink_level}")
        return self


class BallotCodeKey(_Strict):
    """The CEC's Ed25519 public key that authenticates ballot codes (raw 32 bytes, hex)."""

    key_id: Annotated[str, Field(min_length=1, max_length=16)]
    public_key_hex: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Election(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$")]
    title: Name
    date: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    mode: Literal["official", "test"] = "official"
    station: Station
    polls: Polls = Polls()
    contests: Annotated[list[Contest], Field(min_length=1)]
    ballot_styles: Annotated[list[BallotStyle], Field(min_length=1)]
    omr: OmrThresholds = OmrThresholds()
    ballot_code_key: BallotCodeKey

    @model_validator(mode="after")
    def _cross_refs(self) -> "Election":
        _unique("election", "contest id", [c.id for c in self.contests])
        _unique("election", "ballot style id", [s.id for s in self.ballot_styles])
        known = {c.id for c in self.contests}
        placed: dict[str, str] = {}
        for style in self.ballot_styles:
            for cid in style.contests:
                if cid not in known:
                    raise ValueError(f"ballot style '{style.id}': contest '{cid}' is not defined in 'contests'")
                if cid in placed:
                    raise ValueError(f"contest '{cid}' is on ballot styles '{placed[cid]}' and '{style.id}'")
                placed[cid] = style.id
        missing = known - placed.keys()
        if missing:
            raise ValueError(f"contests {sorted(missing)} are on no ballot style")
        return self

    # -- lookups -----------------------------------------------------------------------------
    def contest(self, contest_id: str) -> Contest:
        for c in self.contests:
            if c.id == contest_id:
                return c
        raise KeyError(contest_id)

    def style(self, style_id: str) -> BallotStyle:
        for s in self.ballot_styles:
            if s.id == style_id:
                return s
        raise KeyError(style_id)

    def contests_of(self, style_id: str) -> list[Contest]:
        return [self.contest(cid) for cid in self.style(style_id).contests]

    @property
    def script(self) -> str:
        """Primary script of the station's language ('latn' or 'cyrl')."""
        return "cyrl" if self.station.language == Language.SR_CYRL else "latn"

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> "Election":
        """A copy with changes; the cached digests are NOT carried over (pydantic copies __dict__, where
        cached_property keeps them: a copy with another station or date must not keep the old digest)."""
        copy = super().model_copy(update=update, deep=deep)
        for cached in ("_digest", "_content_digest"):
            copy.__dict__.pop(cached, None)
        return copy

    @cached_property
    def _content_digest(self) -> str:
        content = {"id": self.id, "date": self.date, "contests": [c.model_dump(mode="json") for c in self.contests],
                   "ballot_styles": [s.model_dump(mode="json") for s in self.ballot_styles]}
        canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @cached_property
    def _digest(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def content_digest(self) -> str:
        """SHA-256 over what is printed on the ballots (election, contests, styles), station excluded:
        the same election at another station has the same content digest, so a ballot from there is
        told apart by its station code, not mistaken for another election. Computed once (the model is frozen)."""
        return self._content_digest

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the definition: printed on reports. Computed once (frozen model)."""
        return self._digest


def _unique(where: str, what: str, values: list[Any]) -> None:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{where}: duplicate {what} {v!r}")
        seen.add(v)


def parse_election(data: Any, source: str = "election") -> Election:
    """Validate a decoded election definition; errors name `source`, the field path and the value.

    Strictly typed, as JSON: a number is a JSON number and a switch a JSON boolean - "3" is not
    max_preferences 3, "0.08" not a threshold, true not vote_for 1 (a package that a tool wrote wrong is
    refused, never guessed at). Whole numbers are accepted where a decimal is asked for."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ElectionError(f"{source}: not JSON data ({exc})") from None
    try:
        return Election.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise ElectionError(_describe(source, data, exc)) from None


def load_election(path: str | Path) -> Election:
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ElectionError(f"{path}: no such file; give the path of an election definition (.json)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ElectionError(f"{path}: cannot be read ({exc}); copy the election package again") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ElectionError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); "
            "the package is corrupt: copy it again from the CEC medium"
        ) from None
    return parse_election(data, source=path.name)


def _describe(source: str, data: Any, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors()[:10]:
        loc = err.get("loc", ())
        path = _format_loc(data, loc)
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "missing":
            lines.append(f"{source}: {path}: required field is missing")
        elif err.get("type") == "extra_forbidden":
            lines.append(f"{source}: {path}: unknown field (misspelt?)")
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            hint = _TYPE_HINTS.get(str(err.get("type")), "")
            lines.append(f"{source}: {path}: {err['input']!r}: {msg}{hint}")
        else:
            lines.append(f"{source}: {path or '(top level)'}: {msg}")
    more = len(exc.errors()) - 10
    if more > 0:
        lines.append(f"... and {more} more errors")
    return "\n".join(lines)


# What to write instead, for the strict types' refusals (the value as given is already in the line).
_TYPE_HINTS = {
    "int_type": "; write a whole number without quotes, e.g. 3",
    "int_from_float": "; write a whole number, e.g. 3",
    "float_type": "; write a number without quotes, e.g. 0.08",
    "string_type": "; write it as text in quotes",
    "bool_type": "; write true or false without quotes",
}


def _format_loc(data: Any, loc: tuple[Any, ...]) -> str:
    """contests.1.lists.6 -> contests[1](vijece).lists[6](sda), using ids where the data has them."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            try:
                node = node[key]
                if isinstance(node, dict) and isinstance(node.get("id"), str):
                    label += f"({node['id']})"
            except (IndexError, KeyError, TypeError):
                node = None
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts)

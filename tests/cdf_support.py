"""Cast-vote records for the NIST export tests: a realistic synthetic mix, and records that each tell
their position in the order of casting (to show the export forgets it)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.election import ContestKind, Election
from firmware.common.identity import DeviceIdentity
from firmware.scanner.store import BallotCounts

CLOSED_AT = datetime(2024, 10, 6, 19, 4, 31, tzinfo=UTC)
SOFTWARE = {"software_version": "1.0.0-test", "software_hash": "5" * 64}


def identity(seed: int = 7) -> DeviceIdentity:
    return DeviceIdentity("bbx-test-0001", Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def synthetic_records(election: Election, n: int, seed: int) -> list[dict[str, Any]]:
    """`n` ballots split over the styles, about 1 in 12 invalid or ambiguous, preferences 0..max."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        style = rng.choice(election.ballot_styles)
        contests = {cid: _result(election, cid, rng) for cid in style.contests}
        records.append({"style": style.id, "contests": contests})
    return records


def counts_of(election: Election, records: list[dict[str, Any]], returned: dict[str, int] | None = None) -> BallotCounts:
    per_style = Counter(r["style"] for r in records)
    styles = [s.id for s in election.ballot_styles]
    return BallotCounts(cast={s: per_style.get(s, 0) for s in styles},
                        returned={s: (returned or {}).get(s, 0) for s in styles}, pending=0)


def labelled_records(election: Election, n: int) -> list[dict[str, Any]]:
    """`n` council ballots, record k different from every other (list and preference set enumerate k):
    a CVR found in the export names the position its ballot had in the order of casting."""
    contest = next(c for c in election.contests if c.kind == ContestKind.OPEN_LIST)
    style = next(s.id for s in election.ballot_styles if contest.id in s.contests)
    combos = [(pl.id, [c.id]) for pl in contest.lists for c in pl.candidates]
    combos += [(pl.id, [a.id, b.id]) for pl in contest.lists for a, b in zip(pl.candidates, pl.candidates[1:])]
    combos += [(pl.id, []) for pl in contest.lists]
    if n > len(combos):
        raise ValueError(f"only {len(combos)} distinct labelled records in this election")
    return [{"style": style, "contests": {contest.id: {"outcome": "valid", "list": lid, "candidates": sorted(cands)}}}
            for lid, cands in combos[:n]]


def _result(election: Election, contest_id: str, rng: random.Random) -> dict[str, Any]:
    contest = election.contest(contest_id)
    roll = rng.random()
    if contest.kind == ContestKind.SINGLE_CHOICE:
        if roll < 0.04:
            return {"outcome": "blank", "list": None, "candidates": []}
        if roll < 0.07:
            return {"outcome": "overvote", "list": None, "candidates": []}
        if roll < 0.08:
            return {"outcome": "ambiguous", "list": None, "candidates": []}
        chosen = rng.sample(contest.candidates, rng.randint(1, contest.vote_for))
        return {"outcome": "valid", "list": None, "candidates": sorted(c.id for c in chosen)}
    if roll < 0.04:
        return {"outcome": "blank", "list": None, "candidates": []}
    if roll < 0.07:
        return {"outcome": "multiple_lists", "list": None, "candidates": []}
    if roll < 0.08:
        return {"outcome": "ambiguous", "list": None, "candidates": []}
    pl = rng.choice(contest.lists)
    k = rng.randint(0, min(contest.max_preferences, len(pl.candidates)))
    return {"outcome": "valid", "list": pl.id, "candidates": sorted(c.id for c in rng.sample(pl.candidates, k))}

"""The @id of every object the two NIST reports share, derived from the election package's own ids.

Both reports name the same station, contests, lists, candidates and selections with the same @id, so
a cast-vote record's selection can be looked up in the results and the other way round. Package ids
are ``[a-z0-9_-]`` (config/election.py), so the derived ids need no escaping.

An open-list contest is two NIST contests: the list vote (a PartyContest, ``contest-<id>``) and the
preferential votes for candidates of the chosen list (a CandidateContest, ``contest-<id>-preferences``).
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def municipality(station_code: str) -> str:
    return f"gpu-municipality-{station_code[:3]}"


def station(station_code: str) -> str:
    return f"gpu-station-{station_code}"


def device(device_id: str) -> str:
    return f"device-{_UNSAFE.sub('_', device_id)}"


def election(election_id: str) -> str:
    return f"election-{election_id}"


def contest(contest_id: str) -> str:
    return f"contest-{contest_id}"


def preferences(contest_id: str) -> str:
    return f"contest-{contest_id}-preferences"


def party(contest_id: str, list_id: str) -> str:
    return f"party-{contest_id}-{list_id}"


def person(contest_id: str, candidate_id: str) -> str:
    return f"person-{contest_id}-{candidate_id}"


def candidate(contest_id: str, candidate_id: str) -> str:
    return f"candidate-{contest_id}-{candidate_id}"


def list_selection(contest_id: str, list_id: str) -> str:
    return f"selection-{contest_id}-{list_id}"


def candidate_selection(contest_id: str, candidate_id: str) -> str:
    return f"selection-{contest_id}-{candidate_id}"


def preference_selection(contest_id: str, candidate_id: str) -> str:
    return f"selection-{contest_id}-preferences-{candidate_id}"

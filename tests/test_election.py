"""The election definition: samples load, and every bad input names the field and value."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from config.election import (
    SAMPLE_ELECTION,
    Election,
    ElectionError,
    load_election,
    parse_election,
)
from config.script import latin_to_cyrillic


def _raw() -> dict:
    return json.loads(SAMPLE_ELECTION.read_text(encoding="utf-8"))


def test_sample_has_mayor_with_8_and_council_with_12_lists(election: Election) -> None:
    mayor, council = election.contest("nacelnik"), election.contest("vijece")
    assert len(mayor.candidates) == 8 and mayor.vote_for == 1
    assert len(council.lists) == 12 and max(len(pl.candidates) for pl in council.lists) == 20
    assert council.max_preferences == 3
    assert any(ch in c.name.latn for c in mayor.candidates for ch in "čćđšž")


def test_large_election_has_30_lists_of_35(large_election: Election) -> None:
    council = large_election.contests[0]
    assert len(council.lists) == 30 and {len(pl.candidates) for pl in council.lists} == {35}


def test_cyrillic_rendering_is_available_for_every_name(election: Election) -> None:
    assert election.contest("nacelnik").title.cyrl == "Начелник опћине"
    for pl in election.contest("vijece").lists:
        assert pl.name.cyrl and not any(ch in pl.name.cyrl for ch in "čćđšžČĆĐŠŽ")


@pytest.mark.parametrize("latin, cyrillic", [
    ("Džemal Bijedić", "Џемал Биједић"), ("Ljiljana Njegovan", "Љиљана Његован"), ("Đorđe Šarić", "Ђорђе Шарић"),
    ("LJUBUŠKI", "ЉУБУШКИ"), ("SDA 2024", "СДА 2024"),
])
def test_transliteration_handles_digraphs(latin: str, cyrillic: str) -> None:
    assert latin_to_cyrillic(latin) == cyrillic


def _error(mutate) -> str:
    raw = _raw()
    mutate(raw)
    with pytest.raises(ElectionError) as exc:
        parse_election(raw, source="sample.json")
    return str(exc.value)


def test_too_many_candidates_names_contest_list_and_limit() -> None:
    def add(raw: dict) -> None:
        pl = raw["contests"][1]["lists"][6]
        pl["candidates"] = [{"id": f"x{i}", "number": i + 1, "name": f"Ime Prezime {i}"} for i in range(36)]
    msg = _error(add)
    assert "sample.json" in msg and "contests[1](vijece)" in msg
    assert "list 7 (l7): 36 candidates, layout allows 35" in msg


def test_bad_station_code_names_the_value() -> None:
    msg = _error(lambda raw: raw["station"].__setitem__("code", "89-A-12"))
    assert "station.code" in msg and "'89-A-12'" in msg and "089A012" in msg


def test_unknown_contest_on_a_style_is_named() -> None:
    msg = _error(lambda raw: raw["ballot_styles"][0]["contests"].append("skupstina"))
    assert "ballot style 'N': contest 'skupstina' is not defined" in msg


def test_duplicate_candidate_id_across_lists_is_refused() -> None:
    def dup(raw: dict) -> None:
        raw["contests"][1]["lists"][1]["candidates"][0]["id"] = raw["contests"][1]["lists"][0]["candidates"][0]["id"]
    assert "duplicate candidate or list id 'l1c1'" in _error(dup)


def test_misspelt_field_is_reported_as_unknown() -> None:
    msg = _error(lambda raw: raw["contests"][1].__setitem__("max_preference", 3))
    assert "contests[1](vijece).max_preference: unknown field" in msg


def test_missing_field_is_reported() -> None:
    msg = _error(lambda raw: raw.pop("ballot_code_key"))
    assert "ballot_code_key: required field is missing" in msg


def test_marginal_threshold_must_be_below_definite() -> None:
    msg = _error(lambda raw: raw["omr"].update(definite=0.05, marginal=0.06))
    assert "marginal 0.06 must be below definite 0.05" in msg


def test_polls_times_are_checked() -> None:
    msg = _error(lambda raw: raw["polls"].update(turnout_reports=["11:00", "21:00"]))
    assert "21:00 is outside 07:00-19:00" in msg


def test_corrupt_json_says_copy_the_package_again(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"id": "LI2024", "title": ', encoding="utf-8")
    with pytest.raises(ElectionError, match=r"broken.json: not valid JSON at line 1.*copy it again"):
        load_election(bad)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ElectionError, match="no such file"):
        load_election(tmp_path / "nope.json")


def test_content_digest_ignores_station_but_digest_does_not(election: Election) -> None:
    other = election.model_copy(update={"station": election.station.model_copy(update={"code": "089A013"})})
    assert other.content_digest() == election.content_digest()
    assert other.digest() != election.digest()


def test_validity_numbers_are_data_per_contest() -> None:
    raw = _raw()
    raw["contests"][1]["max_preferences"] = 5
    e = parse_election(copy.deepcopy(raw))
    assert e.contest("vijece").max_preferences == 5


def test_a_modified_copy_never_keeps_the_original_digest(election: Election) -> None:
    election.digest(), election.content_digest()  # cached on the original
    later = election.model_copy(update={"date": "2028-10-01"})
    assert later.content_digest() != election.content_digest()
    assert later.digest() != election.digest()

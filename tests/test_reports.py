"""Reports: one model (zero, results, self-test), rendered as JSON and as thermal-printer rasters."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from config.election import (
    SAMPLE_ELECTION,
    ContestKind,
    Election,
    load_election,
    parse_election,
)
from firmware.common.fonts import FontError, find_fonts, font
from firmware.common.i18n import Messages
from firmware.common.reports import (
    ContestTally,
    Line,
    ReportError,
    ReportHeader,
    ResultsReport,
    StyleCounts,
    ZeroReport,
    build_header,
    build_results_report,
    build_self_test_report,
    build_zero_report,
    layout_report,
    render_png,
    render_raster,
    report_to_json,
    wrap_text,
)
from hal.errors import DeviceStatus
from hal.switches import SealState

TZ = timezone(timedelta(hours=2))
PREVIEW_DIR = Path(os.environ.get("BALLOTBOX_PREVIEW_DIR", "/tmp/reports-preview"))
CYRILLIC = re.compile(r"[\u0400-\u04FF]")

CHECKS = (
    DeviceStatus("ballot_camera", True, ""),
    DeviceStatus("feeder", True, "6 sensors answer"),
    DeviceStatus("panel", True, ""),
    DeviceStatus("printer", True, "80 mm, paper present"),
    DeviceStatus("switches", True, ""),
)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def election() -> Election:
    return load_election(SAMPLE_ELECTION)


def _variant(**changes: Any) -> Election:
    """The sample election with changed fields (station.language, mode, names...)."""
    data = json.loads(SAMPLE_ELECTION.read_text(encoding="utf-8"))
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        node[keys[-1]] = value
    return parse_election(data, source="test variant")


@pytest.fixture(scope="module")
def cyrillic_election() -> Election:
    return _variant(station__language="sr-Cyrl")


def header_for(election: Election, at: datetime = datetime(2024, 10, 6, 6, 15, tzinfo=TZ)) -> ReportHeader:
    return build_header(
        election,
        device_id="BB-SIM-0001",
        software_version="0.1.0",
        software_hash="3f9a" * 16,
        device_key_fingerprint="SHA256:" + "7c41" * 16,
        printed_at=at,
    )


def sample_counts(election: Election) -> list[StyleCounts]:
    return [StyleCounts(s.id, cast=600 + 7 * i, returned=3 + i) for i, s in enumerate(election.ballot_styles)]


def sample_tallies(election: Election, counts: list[StyleCounts]) -> list[ContestTally]:
    """Deterministic, consistent tallies: every candidate present, valid+invalid+ambiguous = cast."""
    cast = {c.style_id: c.cast for c in counts}
    out = []
    for contest in election.contests:
        style = next(s for s in election.ballot_styles if contest.id in s.contests)
        ballots = cast[style.id]
        if contest.kind == ContestKind.SINGLE_CHOICE:
            invalid = {"blank": 11, "overvote": 4, "multiple_lists": 0}
            ambiguous = 3
            valid = ballots - sum(invalid.values()) - ambiguous
            votes = {c.id: 0 for c in contest.candidates}
            for i in range(valid):
                votes[contest.candidates[(i * 7) % len(contest.candidates)].id] += 1
            out.append(ContestTally(contest.id, valid, invalid, ambiguous, {}, votes))
        else:
            invalid = {"blank": 9, "overvote": 0, "multiple_lists": 6}
            ambiguous = 2
            valid = ballots - sum(invalid.values()) - ambiguous
            list_votes = {pl.id: 0 for pl in contest.lists}
            prefs = {c.id: 0 for pl in contest.lists for c in pl.candidates}
            for i in range(valid):
                pl = contest.lists[(i * 5) % len(contest.lists)]
                list_votes[pl.id] += 1
                for j in range(min(i % 4, len(pl.candidates))):
                    prefs[pl.candidates[(i + j) % len(pl.candidates)].id] += 1
            out.append(ContestTally(contest.id, valid, invalid, ambiguous, list_votes, prefs))
    return out


def zero_report(election: Election, counts: dict[str, int] | None = None) -> ZeroReport:
    return build_zero_report(
        election,
        header_for(election),
        counts=counts if counts is not None else {s.id: 0 for s in election.ballot_styles},
        self_test=CHECKS,
        seal=SealState(seal_intact=True, lid_closed=True),
    )


def results_report(election: Election, **overrides: Any) -> ResultsReport:
    counts = sample_counts(election)
    kwargs: dict[str, Any] = dict(
        opened_at=datetime(2024, 10, 6, 7, 0, tzinfo=TZ),
        closed_at=datetime(2024, 10, 6, 19, 0, tzinfo=TZ),
        styles=counts,
        tallies=sample_tallies(election, counts),
        seconds_per_ballot=4.2,
        device_problems=["10:42 – listić zaglavljen u uvlakaču, otklonjeno za 3 minute"],
        internet_problems=[],
        remarks=[],
    )
    kwargs.update(overrides)
    return build_results_report(election, header_for(election, datetime(2024, 10, 6, 19, 20, tzinfo=TZ)), **kwargs)


def texts(lines: list[Line]) -> list[str]:
    return [t for line in lines for t in (line.text, line.right) if t]


# -- zero report ---------------------------------------------------------------------------------
def test_zero_report_json_shows_zero_for_every_style(election: Election) -> None:
    data = report_to_json(zero_report(election))
    assert data["report"] == "zero_report"
    assert [c["style_id"] for c in data["counts"]] == [s.id for s in election.ballot_styles]
    assert all(c["cast"] == 0 and c["returned"] == 0 for c in data["counts"])


def test_zero_report_prints_a_big_zero_per_style_and_the_statement(election: Election) -> None:
    report = zero_report(election)
    lines = layout_report(report, election, 576)
    big = [line for line in lines if line.kind == "big"]
    assert [line.text for line in big] == ["0"] * len(election.ballot_styles)
    assert all(line.size >= 3 * font("regular", 22).size for line in big)  # unmistakable: 3x body text
    statement = Messages.for_language("bs").t("report.zero.statement")
    assert any(line.text == statement for line in lines)
    assert not any(line.kind == "banner" for line in lines)


def test_zero_report_with_a_count_shows_it_and_warns_not_to_open(election: Election) -> None:
    report = zero_report(election, counts={"N": 0, "V": 2})
    assert not report.is_zero
    lines = layout_report(report, election, 576)
    assert [line.text for line in lines if line.kind == "big"] == ["0", "2"]
    banner = " ".join(line.text for line in lines if line.kind == "banner")
    assert banner.startswith("POČETNO STANJE NIJE 0")


def test_zero_report_has_signature_lines_for_president_members_and_operator(election: Election) -> None:
    lines = texts(layout_report(zero_report(election), election, 576))
    assert "Predsjednik biračkog odbora" in lines
    assert [f"Član biračkog odbora {i}" for i in range(1, 5)] == [t for t in lines if t.startswith("Član")]
    assert "Operater" in lines
    assert sum(1 for line in layout_report(zero_report(election), election, 576)
               if line.kind == "rule" and line.rule == "thin") == 6


def test_zero_report_needs_a_count_for_every_style(election: Election) -> None:
    with pytest.raises(ReportError, match=r"no count for ballot style\(s\) \['V'\]"):
        zero_report(election, counts={"N": 0})
    with pytest.raises(ReportError, match=r"ballot style 'X' is not in election"):
        zero_report(election, counts={"N": 0, "V": 0, "X": 0})


def test_zero_report_prints_a_failed_check_and_an_open_cover(election: Election) -> None:
    report = build_zero_report(election, header_for(election), counts={"N": 0, "V": 0},
                               self_test=CHECKS + (DeviceStatus("printer", False, "paper_out"),),
                               seal=SealState(seal_intact=True, lid_closed=False))
    lines = layout_report(report, election, 384)
    banners = [line.text for line in lines if line.kind == "banner"]
    assert "POKLOPAC OTVOREN" in banners
    assert any("Uređaji s greškom: 1" in b for b in banners)
    assert any(line.text == "Štampač" and line.right == "NEISPRAVNO" for line in lines)


# -- results report ------------------------------------------------------------------------------
def test_results_report_json_carries_exactly_the_tallies_given(election: Election) -> None:
    counts = sample_counts(election)
    tallies = sample_tallies(election, counts)
    data = report_to_json(results_report(election, styles=counts, tallies=tallies))
    assert data["report"] == "results_report"
    assert data["styles"] == [{"style_id": c.style_id, "cast": c.cast, "returned": c.returned} for c in counts]
    assert data["contests"] == [
        {"contest_id": t.contest_id, "valid": t.valid, "invalid_by_reason": dict(t.invalid_by_reason),
         "ambiguous": t.ambiguous, "list_votes": dict(t.list_votes), "candidate_votes": dict(t.candidate_votes)}
        for t in tallies
    ]
    assert data["registered_voters"] == election.station.registered_voters
    assert data["opened_at"] == "2024-10-06T07:00:00+02:00"
    assert re.fullmatch(r"[0-9a-f]{64}", data["results_digest"])
    assert json.loads(json.dumps(data)) == data  # JSON-safe


def test_results_report_json_has_a_stable_order_whatever_the_input_order(election: Election) -> None:
    counts = sample_counts(election)
    tallies = sample_tallies(election, counts)
    shuffled = [ContestTally(t.contest_id, t.valid, dict(reversed(list(t.invalid_by_reason.items()))), t.ambiguous,
                             dict(reversed(list(t.list_votes.items()))),
                             dict(reversed(list(t.candidate_votes.items())))) for t in reversed(tallies)]
    a = report_to_json(results_report(election, styles=counts, tallies=tallies))
    b = report_to_json(results_report(election, styles=list(reversed(counts)), tallies=shuffled))
    assert json.dumps(a, ensure_ascii=False) == json.dumps(b, ensure_ascii=False)
    vijece = election.contest("vijece")
    assert list(a["contests"][1]["list_votes"]) == [pl.id for pl in vijece.lists]


def test_lists_and_candidates_missing_from_a_tally_are_printed_with_zero(election: Election) -> None:
    counts = sample_counts(election)
    tallies = sample_tallies(election, counts)
    mayor = tallies[0]
    winner = max(mayor.candidate_votes, key=lambda c: mayor.candidate_votes[c])
    sparse = ContestTally(mayor.contest_id, mayor.valid, {"blank": 11, "overvote": 4}, mayor.ambiguous,
                          {}, {c: n for c, n in mayor.candidate_votes.items() if n})
    data = report_to_json(results_report(election, styles=counts, tallies=[sparse, tallies[1]]))
    assert data["contests"][0]["candidate_votes"] == dict(mayor.candidate_votes)
    assert data["contests"][0]["invalid_by_reason"] == {"blank": 11, "overvote": 4, "multiple_lists": 0}
    assert data["contests"][0]["candidate_votes"][winner] == mayor.candidate_votes[winner]


@dataclass
class _StoreTally:
    """The shape firmware.scanner.tally produces (mutable, with extra fields): accepted by attribute."""

    contest_id: str
    ballots: int
    valid: int
    invalid_by_reason: dict[str, int]
    ambiguous: int
    list_votes: dict[str, int] = field(default_factory=dict)
    candidate_votes: dict[str, int] = field(default_factory=dict)


def test_tallies_may_come_as_a_mapping_of_tally_like_objects(election: Election) -> None:
    counts = sample_counts(election)
    tallies = sample_tallies(election, counts)
    as_store = {t.contest_id: _StoreTally(t.contest_id, t.ballots, t.valid, dict(t.invalid_by_reason), t.ambiguous,
                                          dict(t.list_votes), dict(t.candidate_votes)) for t in tallies}
    assert report_to_json(results_report(election, styles=counts, tallies=as_store)) == report_to_json(
        results_report(election, styles=counts, tallies=tallies))


def test_tallies_that_do_not_add_up_to_the_ballots_cast_are_refused(election: Election) -> None:
    counts = sample_counts(election)
    tallies = sample_tallies(election, counts)
    t = tallies[0]
    off_by_one = ContestTally(t.contest_id, t.valid - 1, t.invalid_by_reason, t.ambiguous, {},
                              {**t.candidate_votes, election.contest(t.contest_id).candidates[0].id:
                               t.candidate_votes[election.contest(t.contest_id).candidates[0].id] - 1})
    with pytest.raises(ReportError, match=r"contest 'nacelnik'.* = 599, but ballot style 'N' has 600 ballots cast"):
        results_report(election, styles=counts, tallies=[off_by_one, tallies[1]])


def test_list_votes_that_differ_from_valid_ballots_are_refused(election: Election) -> None:
    counts = sample_counts(election)
    tallies = sample_tallies(election, counts)
    t = tallies[1]
    lists = dict(t.list_votes)
    lists["l1"] += 1
    with pytest.raises(ReportError, match=r"contest 'vijece': list votes add up to"):
        results_report(election, styles=counts,
                       tallies=[tallies[0], ContestTally(t.contest_id, t.valid, t.invalid_by_reason, t.ambiguous,
                                                         lists, t.candidate_votes)])


def test_unknown_candidate_or_contest_is_refused(election: Election) -> None:
    counts = sample_counts(election)
    tallies = sample_tallies(election, counts)
    t = tallies[0]
    with pytest.raises(ReportError, match=r"candidate_votes names \['zz'\]"):
        results_report(election, styles=counts, tallies=[
            ContestTally(t.contest_id, t.valid, t.invalid_by_reason, t.ambiguous, {}, {**t.candidate_votes, "zz": 0}),
            tallies[1]])
    with pytest.raises(ReportError, match=r"contest 'senat' is not in election"):
        results_report(election, styles=counts, tallies=[*tallies, ContestTally("senat", 0, {}, 0)])


def test_results_digest_changes_with_any_count(election: Election) -> None:
    counts = sample_counts(election)
    tallies = sample_tallies(election, counts)
    base = results_report(election, styles=counts, tallies=tallies).results_digest
    more_returned = [StyleCounts(c.style_id, c.cast, c.returned + 1) for c in counts]
    assert results_report(election, styles=more_returned, tallies=tallies).results_digest != base
    assert results_report(election, styles=counts, tallies=tallies).results_digest == base


def test_results_report_prints_turnout_votes_and_problems(election: Election) -> None:
    report = results_report(election)
    lines = layout_report(report, election, 576)
    rows = {(line.text, line.right) for line in lines if line.kind == "row"}
    n = report.styles[0]
    assert ("Ubačeno u glasačku kutiju", str(n.cast)) in rows
    assert ("Izlaznost", Messages.for_language("bs").format_decimal(100 * n.cast / 1200) + " %") in rows
    mayor = report.contests[0]
    first = election.contest("nacelnik").candidates[0]
    assert (f"1. {first.name.latn}", str(mayor.candidate_votes[first.id])) in rows
    # the mayor's ballot cannot mark several lists: that reason is left out when it is 0
    assert not any(line.text == "označeno više od jedne liste" for line in lines[:_index_of(lines, "OPĆINSKO VIJEĆE")])
    assert any("papir" in t or "zaglavljen" in t for t in texts(lines))
    assert any(line.text == "HASH REZULTATA:" or line.text == "Hash rezultata:" for line in lines)


def _index_of(lines: list[Line], text: str) -> int:
    return next(i for i, line in enumerate(lines) if line.text == text)


def test_results_report_refuses_unaware_or_reversed_times(election: Election) -> None:
    with pytest.raises(ReportError, match=r"opened_at .* has no time zone"):
        results_report(election, opened_at=datetime(2024, 10, 6, 7, 0))
    with pytest.raises(ReportError, match=r"closed_at .* is before opened_at"):
        results_report(election, closed_at=datetime(2024, 10, 6, 6, 0, tzinfo=TZ))


# -- header and self-test ------------------------------------------------------------------------
def test_header_carries_station_device_and_hashes(election: Election) -> None:
    h = header_for(election)
    assert (h.station_code, h.municipality, h.language) == ("089A012", "Novo Sarajevo", "bs")
    assert h.package_hash == election.digest()
    lines = texts(layout_report(zero_report(election), election, 576))
    assert "089A012" in lines and "BB-SIM-0001" in lines
    assert "3f9a 3f9a 3f9a 3f9a 3f9a 3f9a 3f9a 3f9a" in lines  # hashes print in groups of four


def test_header_needs_an_aware_print_time(election: Election) -> None:
    with pytest.raises(ReportError, match=r"printed_at .* has no time zone"):
        header_for(election, datetime(2024, 10, 6, 6, 0))


def test_report_and_election_must_be_the_same_package(election: Election) -> None:
    other = _variant(title="Drugi izbori")
    with pytest.raises(ReportError, match=r"same installed package"):
        render_raster(zero_report(election), other, 576)


def test_self_test_report_counts_failed_devices(election: Election) -> None:
    report = build_self_test_report(header_for(election), CHECKS + (DeviceStatus("modem", False, "no SIM"),))
    assert not report.ok
    lines = layout_report(report, election, 384)
    assert any(line.kind == "banner" and "1" in line.text for line in lines)
    assert report_to_json(report)["checks"][-1] == {"device": "modem", "ok": False, "detail": "no SIM"}


def test_a_test_election_says_so_on_every_report(election: Election) -> None:
    trial = _variant(mode="test")
    lines = layout_report(zero_report(trial), trial, 576)
    banner = " ".join(line.text for line in lines if line.kind == "banner")
    assert "PROBNI RAD" in banner


# -- rasters, scripts, wrapping ------------------------------------------------------------------
@pytest.mark.parametrize("width", [384, 576])
def test_raster_is_one_bit_and_as_wide_as_the_paper(election: Election, width: int) -> None:
    for report in (zero_report(election), results_report(election),
                   build_self_test_report(header_for(election), CHECKS)):
        image = render_raster(report, election, width)
        assert image.mode == "1"
        assert image.width == width
        assert image.height > 400


def test_raster_width_out_of_range_is_refused(election: Election) -> None:
    with pytest.raises(ReportError, match=r"width_px = 100"):
        render_raster(zero_report(election), election, 100)


def test_the_big_zero_is_black_ink_on_the_raster(election: Election) -> None:
    image = render_raster(zero_report(election), election, 576)
    lines = layout_report(zero_report(election), election, 576)
    y = 22  # top margin of _Sizes for 576 (body size)
    for line in lines:
        if line.kind == "big":
            band = image.crop((0, y, image.width, y + line.height)).convert("L")
            dark = band.histogram()[0]
            assert dark > 0.05 * band.width * band.height  # a glyph that fills its band, not a hairline
            break
        y += line.height
    else:
        pytest.fail("no big count on the zero report")


def test_serbian_cyrillic_station_prints_cyrillic_names(cyrillic_election: Election) -> None:
    report = results_report(cyrillic_election)
    lines = texts(layout_report(report, cyrillic_election, 576))
    mayor = cyrillic_election.contest("nacelnik").candidates[0]
    assert any(t.startswith(f"1. {mayor.name.render('cyrl')}") for t in lines)
    assert "ЗАВРШНИ ИЗВЈЕШТАЈ" in lines
    assert report.header.station_name == cyrillic_election.station.name.render("cyrl")
    names = [t for t in lines if re.match(r"^\d+\. ", t)]
    assert names and all(CYRILLIC.search(t) for t in names)
    assert report_to_json(report)["header"]["language"] == "sr-Cyrl"


def _assert_within(lines: list[Line], width: int) -> None:
    for line in lines:
        spans = line.spans()
        for start, end in spans:
            assert 0 <= start and end <= width, (line, start, end)
        if len(spans) == 2:
            assert spans[0][1] < spans[1][0], line  # a row's text never runs into its number


@pytest.mark.parametrize("width", [384, 576])
def test_long_names_wrap_inside_the_paper(width: int) -> None:
    long_list = ("Koalicija za pravednu, demokratsku, evropsku i prosperitetnu budućnost građana "
                 "Općine Novo Sarajevo i Kantona Sarajevo")
    election = _variant(
        station__name="Javna ustanova Osnovna škola \"Džemal Bijedić\" Čengić Vila – područno odjeljenje Hrasno",
        contests__1__lists__0__name=long_list,
        contests__1__lists__0__candidates__0__name="Aleksandra-Magdalena Ibrahimpašić-Hadžimuratović",
    )
    _assert_within(layout_report(zero_report(election), election, width), width)
    lines = layout_report(results_report(election), election, width)
    _assert_within(lines, width)
    joined = " ".join(texts(lines))
    assert "Hadžimuratović" in joined and "Kantona Sarajevo" in joined
    cyrillic = _variant(station__language="sr-Cyrl", contests__1__lists__0__name=long_list)
    _assert_within(layout_report(results_report(cyrillic), cyrillic, width), width)


def test_wrap_text_cuts_a_word_longer_than_the_line() -> None:
    face = font("mono", 19)
    pieces = wrap_text("x" * 200 + " kraj", face, 150)
    assert all(face.getlength(p) <= 150 for p in pieces)
    assert "".join(pieces[:-1]) + pieces[-1].removesuffix(" kraj") == "x" * 200 or pieces[-1] == "kraj"
    assert wrap_text("Ubacite glasački listić", face, 10_000) == ["Ubacite glasački listić"]


def test_wrap_text_keeps_no_break_spaces_together() -> None:
    face = font("regular", 22)
    text = "Glasački listić za izbor općinskog vijeća\u00a0(V)"
    assert all("(V)" not in p or p.endswith("vijeća\u00a0(V)") for p in wrap_text(text, face, 200))


def test_fonts_missing_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FontError, match=r"scripts/setup\.sh.*fonts-dejavu-core"):
        find_fonts((tmp_path,))


# -- previews (look at them: /tmp/reports-preview/*.png) -----------------------------------------
def test_sample_reports_render_to_png_previews(election: Election, cyrillic_election: Election) -> None:
    written = [
        render_png(zero_report(election), election, PREVIEW_DIR / "zero-bs-576.png", 576),
        render_png(zero_report(election), election, PREVIEW_DIR / "zero-bs-384.png", 384),
        render_png(results_report(election), election, PREVIEW_DIR / "results-bs-576.png", 576),
        render_png(results_report(election), election, PREVIEW_DIR / "results-bs-384.png", 384),
        render_png(zero_report(cyrillic_election), cyrillic_election, PREVIEW_DIR / "zero-sr-Cyrl-576.png", 576),
        render_png(results_report(cyrillic_election), cyrillic_election,
                   PREVIEW_DIR / "results-sr-Cyrl-576.png", 576),
        render_png(build_self_test_report(header_for(election), CHECKS, SealState(True, True)), election,
                   PREVIEW_DIR / "selftest-bs-384.png", 384),
    ]
    for path in written:
        with Image.open(path) as image:
            assert image.mode == "1" and image.width in (384, 576)

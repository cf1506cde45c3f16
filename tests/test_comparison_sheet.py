"""The Art. 24 comparison sheet: the automatic count of the results report beside empty cells for the
committee's manual count, in every language, printed and JSON."""

from __future__ import annotations

from typing import Any

import pytest
from cdf_support import CLOSED_AT, counts_of, synthetic_records

from config.election import Election, Language
from firmware.common.reports import (
    ResultsReport,
    StyleCounts,
    build_header,
    build_results_report,
    layout_report,
    render_raster,
    report_to_json,
)
from firmware.scanner.comparison import BLANK_CELL, comparison_sheet
from firmware.scanner.tally import tally


def results_for(election: Election, records: list[dict[str, Any]]) -> ResultsReport:
    counts = counts_of(election, records, {"N": 1, "V": 4})
    header = build_header(election, device_id="bbx-test-0001", software_version="1", software_hash="5" * 64,
                          device_key_fingerprint="ABCD EF01 2345 6789 ABCD", printed_at=CLOSED_AT)
    return build_results_report(election, header, opened_at=CLOSED_AT.replace(hour=7), closed_at=CLOSED_AT,
                                styles=[StyleCounts(s, counts.cast[s], counts.returned[s]) for s in counts.cast],
                                tallies=tally(election, records))


@pytest.fixture(scope="module")
def records(election: Election) -> list[dict[str, Any]]:
    return synthetic_records(election, 200, seed=4)


def test_every_figure_of_the_results_report_has_a_row_with_an_empty_manual_cell(
        election: Election, records: list[dict[str, Any]]) -> None:
    results = results_for(election, records)
    sheet = comparison_sheet(results, election)
    data = report_to_json(sheet)
    rows = {(r["style_id"] or r["contest_id"], r["item"]): r for r in data["rows"]}
    assert {r["manual"] for r in data["rows"]} == {None}
    council = tally(election, records)["vijece"]
    assert rows[("N", "ballots_returned")]["automatic"] == 1
    assert rows[("V", "ballots_cast")]["automatic"] == council.ballots
    assert rows[("vijece", "invalid:multiple_lists")]["automatic"] == council.invalid_by_reason["multiple_lists"]
    assert rows[("vijece", "list:l3")]["automatic"] == council.list_votes["l3"]
    assert rows[("vijece", "candidate:l3c2")]["automatic"] == council.candidate_votes["l3c2"]
    # every list and candidate, both reasons of each kind, valid/ambiguous/total, two lines per style
    council_def, mayor_def = election.contest("vijece"), election.contest("nacelnik")
    assert len(data["rows"]) == (2 * 2 + (1 + 2 + 1 + 1) * 2 + len(mayor_def.candidates) + len(council_def.lists)
                                 + sum(len(pl.candidates) for pl in council_def.lists))
    assert data["results_digest"] == results.results_digest


@pytest.mark.parametrize("language", list(Language))
def test_the_sheet_prints_in_every_language_with_blank_cells(election: Election, records: list[dict[str, Any]],
                                                              language: Language) -> None:
    station = election.station.model_copy(update={"language": language})
    local = election.model_copy(update={"station": station})
    sheet = comparison_sheet(results_for(local, records), local)
    lines = layout_report(sheet, local, 576)
    rows = [line for line in lines if line.kind == "row" and line.right.endswith(BLANK_CELL)]
    assert len(rows) == len(sheet.rows)
    assert rows[0].right == f"{sheet.rows[0].automatic} {BLANK_CELL}"
    image = render_raster(sheet, local, 384)
    assert image.width == 384 and image.height > 2000

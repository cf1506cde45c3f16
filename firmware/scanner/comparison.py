"""The comparison sheet (CEC instruction Art. 24): the automatic count beside empty columns where the
committee writes its manual count and the difference.

    sheet = comparison_sheet(results_report)     # from the ResultsReport the box printed at close
    render_png(sheet, election, path)            # firmware.common.reports, as every report of the box
    report_to_json(sheet)                        # rows with "manual": null, for the committee's entry

It is built from the results report itself, so the numbers on the two papers cannot differ, and it
carries the same results digest. One row per figure the committee counts by hand: per ballot paper
the ballots in the box and the ballots returned; per contest valid, invalid by reason, unclear and
total; every list's votes and every candidate's (preferential) votes, in ballot order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from config.election import ContestKind, Election
from firmware.common.reports import (
    REASONS_BY_KIND,
    ReceiptPage,
    ReportHeader,
    ResultsReport,
)

# The committee writes a number of up to four digits in each empty cell: five underscores leave room.
BLANK_CELL = "_____"


@dataclass(frozen=True)
class ComparisonRow:
    """One figure: `item` is ballots_cast | ballots_returned (of ballot style `style_id`), valid |
    invalid:<reason> | ambiguous | total | list:<id> | candidate:<id> (of contest `contest_id`)."""

    style_id: str | None
    contest_id: str | None
    item: str
    automatic: int
    manual: int | None = None  # written by the committee; null in the box's JSON


@dataclass(frozen=True)
class ComparisonSheet:
    kind: ClassVar[str] = "comparison_sheet"

    header: ReportHeader
    closed_at: datetime
    rows: tuple[ComparisonRow, ...]
    results_digest: str  # the results report's: both papers are of the same count

    def lay_out(self, page: ReceiptPage) -> None:
        msgs, election = page.msgs, page.election
        t = msgs.t
        page.title(t("comparison.title"), t("comparison.subtitle"), self.header)
        page.station_block(self.header, None)
        page.field(t("report.label.closed_at"), msgs.format_datetime(self.closed_at))
        page.text(t("comparison.instructions"), size=page.s.small)
        page.rule("double")
        page.row(t("comparison.column.item"), f"{t('comparison.column.automatic')} {t('comparison.column.manual')}",
                 bold=True, size=page.s.small)
        section = None
        for row in self.rows:
            heading = row.style_id or row.contest_id
            if heading != section:
                section = heading
                page.rule("dashed")
                page.text(_heading(election, page, row), style="bold")
            page.row(_label(election, page, row), f"{row.automatic} {BLANK_CELL}", leader=True,
                     indent=page.s.body if row.item.startswith("candidate:") else 0,
                     size=page.s.small if row.item.startswith("candidate:") else None,
                     bold=row.item in ("total", "ballots_cast"))
        page.rule("double")
        page.text(t("comparison.differences"), style="bold")
        for _ in range(3):  # room to explain every difference (Art. 24)
            page.space(page.s.body + page.s.small)
            page.rule("thin")
        page.rule()
        page.device_block(self.header)
        page.hash(t("report.label.results_digest"), self.results_digest, bold=True)
        page.rule("double")
        page.signatures(members=True)
        page.footer(t("comparison.footer"))


def comparison_sheet(results: ResultsReport, election: Election) -> ComparisonSheet:
    """The sheet of the results report `results` (built by firmware.common.reports, so already checked
    against `election`)."""
    rows: list[ComparisonRow] = []
    for counts in results.styles:
        rows.append(ComparisonRow(counts.style_id, None, "ballots_cast", counts.cast))
        rows.append(ComparisonRow(counts.style_id, None, "ballots_returned", counts.returned))
    for tally in results.contests:
        contest = election.contest(tally.contest_id)
        cid = contest.id
        rows.append(ComparisonRow(None, cid, "valid", tally.valid))
        for reason, n in tally.invalid_by_reason.items():
            if reason in REASONS_BY_KIND[contest.kind] or n:
                rows.append(ComparisonRow(None, cid, f"invalid:{reason}", n))
        rows.append(ComparisonRow(None, cid, "ambiguous", tally.ambiguous))
        rows.append(ComparisonRow(None, cid, "total", tally.ballots))
        if contest.kind == ContestKind.SINGLE_CHOICE:
            rows += [ComparisonRow(None, cid, f"candidate:{c.id}", tally.candidate_votes[c.id])
                     for c in contest.candidates]
            continue
        for pl in contest.lists:
            rows.append(ComparisonRow(None, cid, f"list:{pl.id}", tally.list_votes[pl.id]))
            rows += [ComparisonRow(None, cid, f"candidate:{c.id}", tally.candidate_votes[c.id])
                     for c in pl.candidates]
    return ComparisonSheet(header=results.header, closed_at=results.closed_at, rows=tuple(rows),
                           results_digest=results.results_digest)


def _heading(election: Election, page: ReceiptPage, row: ComparisonRow) -> str:
    if row.style_id is not None:
        return page.style_title(row.style_id)
    return election.contest(row.contest_id or "").title.render(page.script).upper()


def _label(election: Election, page: ReceiptPage, row: ComparisonRow) -> str:
    t = page.msgs.t
    kind, _, ident = row.item.partition(":")
    if kind in ("ballots_cast", "ballots_returned"):
        return t(f"report.label.{kind}")
    if kind == "invalid":
        return f"{t('report.label.invalid_ballots')}: {page.msgs.outcome(ident)}"
    if kind in ("valid", "ambiguous"):
        return t(f"report.label.{kind}_ballots")
    if kind == "total":
        return t("report.label.total_in_box")
    contest = election.contest(row.contest_id or "")
    if kind == "list":
        pl = contest.list_by_id(ident)
        return f"{pl.number}. {pl.name.render(page.script)}"
    people = contest.candidates if contest.kind == ContestKind.SINGLE_CHOICE else [
        c for pl in contest.lists for c in pl.candidates]
    candidate = next(c for c in people if c.id == ident)
    return f"{candidate.number}. {candidate.name.render(page.script)}"

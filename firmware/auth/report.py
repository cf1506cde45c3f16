"""The authentication report (CEC instruction Art. 14 and 34), printed at the close of the polls.

    report = build_auth_report(header, store, registered_voters=n, deletion=record, remarks=(...))
    render_png(report, election, path)          # firmware.common.reports, as every report of the box
    report_to_json(report)

Figures come from the auth store only (its counters, histograms and the two legal records); the
time per authentication is the median and 95th percentile of the duration histogram.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from firmware.auth.register import DeletionRecord
from firmware.auth.store import (
    AGE_GROUPS,
    DURATION_EDGES_S,
    MAX_ATTEMPTS_COUNTED,
    PROBLEMS,
    AuthStore,
    histogram_quantile,
)
from firmware.common.reports import ReceiptPage, ReportHeader


@dataclass(frozen=True)
class PersonRecord:
    """A line of the re-identification register or of the impersonation records."""

    at: datetime
    name: str
    register_number: int
    what: str = ""  # impersonation: "already_authenticated" | "finger_of_another_voter"
    finger_of: str = ""  # impersonation by finger: whose finger it was (name)


@dataclass(frozen=True)
class AuthReport:
    kind: ClassVar[str] = "auth_report"

    header: ReportHeader
    registered_voters: int
    opened_at: datetime | None
    closed_at: datetime | None
    authenticated: int  # by fingerprint
    reidentified: int  # by the committee (Art. 12(5))
    failures: int  # not matched or no usable capture after the allowed attempts
    refused: int  # the committee did not identify the voter
    not_in_register: int
    no_template: int
    impersonation_attempts: int
    attempts: dict[str, int]  # "1".."3": captures the successful authentications needed
    by_sex: dict[str, int]  # "M", "F": of those who were authenticated or re-identified
    by_age: dict[str, int]  # "18-29", ..., "65+"
    duration_median_s: float | None
    duration_p95_s: float | None
    problems: dict[str, int]  # document, sensor, application, network
    reidentifications: tuple[PersonRecord, ...]
    impersonations: tuple[PersonRecord, ...]
    remarks: tuple[str, ...]
    deletion: DeletionRecord | None

    @property
    def voters_admitted(self) -> int:
        return self.authenticated + self.reidentified

    @property
    def turnout_percent(self) -> float:
        return 100.0 * self.voters_admitted / self.registered_voters if self.registered_voters else 0.0

    def lay_out(self, page: ReceiptPage) -> None:
        msgs = page.msgs
        t = msgs.t
        page.title(t("auth.report.title"), t("auth.report.subtitle"), self.header)
        page.station_block(self.header, self.registered_voters)
        for label, at in (("report.label.opened_at", self.opened_at), ("report.label.closed_at", self.closed_at)):
            page.field(t(label), msgs.format_datetime(at) if at else "–")
        page.rule()
        page.heading(t("auth.report.section.turnout"))
        page.row(t("auth.report.label.admitted"), str(self.voters_admitted), bold=True)
        page.row(t("report.label.turnout"), f"{msgs.format_decimal(self.turnout_percent)} %")
        page.row(t("auth.report.label.authenticated"), str(self.authenticated), indent=page.s.body)
        for attempts, count in self.attempts.items():
            page.row(t("auth.report.label.attempts", attempts=attempts), str(count), indent=2 * page.s.body, size=page.s.small)
        page.row(t("auth.report.label.reidentified"), str(self.reidentified), indent=page.s.body)
        page.heading(t("auth.report.section.statistics"), size=page.s.body)
        for sex in ("M", "F"):
            page.row(t(f"auth.report.sex.{sex}"), str(self.by_sex.get(sex, 0)), indent=page.s.body)
        for group, count in self.by_age.items():
            page.row(t("auth.report.label.age_group", group=group), str(count), indent=page.s.body)
        page.rule("dashed")
        page.heading(t("auth.report.section.outcomes"))
        page.row(t("auth.report.label.failures"), str(self.failures), bold=True)
        page.row(t("auth.report.label.refused"), str(self.refused))
        page.row(t("auth.report.label.not_in_register"), str(self.not_in_register))
        page.row(t("auth.report.label.no_template"), str(self.no_template))
        page.row(t("auth.report.label.impersonation"), str(self.impersonation_attempts), bold=True)
        page.heading(t("auth.report.section.duration"), size=page.s.body)
        for label, value in (("auth.report.label.median", self.duration_median_s),
                             ("auth.report.label.p95", self.duration_p95_s)):
            page.row(t(label), "–" if value is None else f"{msgs.format_decimal(value)} s", indent=page.s.body)
        page.rule("dashed")
        page.items(t("auth.report.section.reidentified"),
                   tuple(f"{msgs.format_time(r.at)} {r.register_number}. {r.name}" for r in self.reidentifications))
        page.items(t("auth.report.section.impersonations"),
                   tuple(self._impersonation_line(page, r) for r in self.impersonations))
        page.heading(t("report.section.device_problems"), size=page.s.body)
        for problem, count in self.problems.items():
            page.row(t(f"auth.report.problem.{problem}"), str(count), indent=page.s.body)
        page.items(t("report.section.remarks"), self.remarks)
        if self.deletion is not None:
            d = self.deletion
            page.heading(t("auth.report.section.deletion"))
            page.field(t("auth.report.label.deleted_at"), msgs.format_datetime(d.deleted_at))
            page.row(t("auth.report.label.deleted_records"), str(d.records))
            page.row(t("auth.report.label.deleted_templates"), str(d.templates))
            page.row(t("auth.report.label.sensor_templates"), str(d.sensor_templates_after), bold=d.sensor_templates_after != 0)
            page.text(t("auth.report.label.key_destroyed") if d.key_destroyed else t("auth.report.label.key_kept"))
            page.hash(t("auth.report.label.register_hash"), d.register_sha256)
        page.rule()
        page.device_block(self.header)
        page.rule("double")
        page.signatures(members=True)
        page.footer(t("auth.report.footer"))

    @staticmethod
    def _impersonation_line(page: ReceiptPage, r: PersonRecord) -> str:
        t = page.msgs.t
        text = f"{page.msgs.format_time(r.at)} {r.register_number}. {r.name}: {t('auth.report.what.' + r.what)}"
        return text + (f" ({r.finger_of})" if r.finger_of else "")


def build_auth_report(header: ReportHeader, store: AuthStore, *, registered_voters: int,
                      deletion: DeletionRecord | None = None, remarks: tuple[str, ...] = ()) -> AuthReport:
    c = store.counters()
    durations = [c[f"duration.{i}"] for i in range(len(DURATION_EDGES_S) + 1)]
    ages = {}
    for lo, hi in AGE_GROUPS:
        ages[f"{lo}-{hi}" if hi < 200 else f"{lo}+"] = c[f"age.{lo}"]
    reid = tuple(PersonRecord(r.at, str(r.detail["name"]), int(r.detail["register_number"]))
                 for r in store.legal_records("reidentified"))
    imp = tuple(PersonRecord(r.at, str(r.detail["name"]), int(r.detail["register_number"]), str(r.detail["what"]),
                             str(r.detail.get("finger_of", {}).get("name", "")))
                for r in store.legal_records("impersonation"))
    return AuthReport(
        header=header, registered_voters=registered_voters, opened_at=store.polls("opened_at"),
        closed_at=store.polls("closed_at"), authenticated=c["authenticated"], reidentified=c["reidentified"],
        failures=c["failures"], refused=c["refused"], not_in_register=c["not_in_register"],
        no_template=c["no_template"], impersonation_attempts=c["impersonation"],
        attempts={str(n): c[f"attempts.{n}"] for n in range(1, MAX_ATTEMPTS_COUNTED + 1)},
        by_sex={"M": c["sex.M"], "F": c["sex.F"]}, by_age=ages,
        duration_median_s=_rounded(histogram_quantile(durations, 0.5)),
        duration_p95_s=_rounded(histogram_quantile(durations, 0.95)),
        problems={p: c[f"problem.{p}"] for p in PROBLEMS}, reidentifications=reid, impersonations=imp,
        remarks=remarks, deletion=deletion,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

"""From the scanner service's state to report models, and onto paper.

One model per report (firmware.common.reports), rendered for the thermal printer here; the CLI and the
simulator also save the same model as PNG and JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from config.election import Election
from firmware.common.i18n import Messages
from firmware.common.identity import DeviceIdentity, software_hash, software_version
from firmware.common.reports import (
    Report,
    ReportHeader,
    ResultsReport,
    SignedResults,
    StyleCounts,
    ZeroReport,
    build_header,
    build_results_report,
    build_zero_report,
    render_raster,
)
from firmware.scanner.store import ScannerStore
from hal.devices import DeviceSet
from hal.errors import DeviceStatus, HalError


class ScannerUsage(Protocol):
    cycles: int
    seconds: float
    faults: Mapping[str, int]


class ReportSource(Protocol):
    """What the reports read of the scanner service (firmware.scanner.service.ScannerService is one):
    named here so that this module does not import the service, which imports it."""

    election: Election
    identity: DeviceIdentity
    d: DeviceSet
    store: ScannerStore
    msg: Messages
    self_test_results: list[DeviceStatus]
    opened_at: datetime | None
    closed_at: datetime | None

    @property
    def usage(self) -> ScannerUsage: ...

    def tallies(self) -> Any: ...


class PrintFailed(RuntimeError):
    """The report model exists (and is saved) but the paper copy failed: reprint after fixing the printer."""


def header(svc: ReportSource) -> ReportHeader:
    return build_header(svc.election, device_id=svc.identity.device_id, software_version=software_version(),
                        software_hash=software_hash(), device_key_fingerprint=svc.identity.fingerprint,
                        printed_at=svc.d.clock.now())


def style_counts(svc: ReportSource) -> list[StyleCounts]:
    counts = svc.store.counts()
    return [StyleCounts(style_id=s.id, cast=counts.cast.get(s.id, 0), returned=counts.returned.get(s.id, 0))
            for s in svc.election.ballot_styles]


def zero_report(svc: ReportSource) -> ZeroReport:
    return build_zero_report(svc.election, header(svc), counts=style_counts(svc), self_test=svc.self_test_results,
                             seal=svc.d.switches.read())


def results_report(svc: ReportSource, signed_results: SignedResults | None = None) -> ResultsReport:
    """The closing report; `signed_results` (the signed NIST election report's hash and signature, see
    firmware.scanner.cdf) is printed as a QR code when given."""
    usage = svc.usage
    problems = [f"{svc.msg.t('error.' + fault) if svc.msg.has('error.' + fault) else fault}: {n}"
                for fault, n in sorted(usage.faults.items())]
    problems += power_cut_lines(svc)
    problems += tamper_lines(svc)
    assert svc.opened_at is not None and svc.closed_at is not None, "the polls table records both before this"
    return build_results_report(
        svc.election, header(svc), opened_at=svc.opened_at, closed_at=svc.closed_at, styles=style_counts(svc),
        tallies=svc.tallies(), seconds_per_ballot=(usage.seconds / usage.cycles) if usage.cycles else None,
        device_problems=problems, internet_problems=network_problem_lines(svc), signed_results=signed_results,
        video_manifest_sha256=getattr(svc, "video_manifest_sha256", None))  # set by the video service at close


def power_cut_lines(svc: ReportSource) -> list[str]:
    """Art. 26: each restart after a power cut and what the box decided at it, from its own event log."""
    lines = []
    fmt = svc.msg.t("format.time")
    for event in svc.store.events():
        if event.kind != "power_cut_recovery":
            continue
        words = [svc.msg.t(f"recovery.{code}", state="") if svc.msg.has(f"recovery.{code}") else code
                 for code in event.detail.get("decisions", []) if code != "polls_unchanged"]
        lines.append(svc.msg.t("report.power_cut_line", time=event.at.strftime(fmt), decisions="; ".join(words)))
    return lines


def tamper_lines(svc: ReportSource) -> list[str]:
    """The lid opened (and when it closed again) and the seal broken while the polls were open, from the
    box's own event log (firmware.scanner.service.ScannerService.watch_tamper)."""
    lines: list[str] = []
    fmt = svc.msg.t("format.time")
    lid_open_at: datetime | None = None
    for event in svc.store.events():
        if event.kind != "tamper":
            continue
        switch, state = event.detail.get("switch"), event.detail.get("state")
        if switch == "lid" and state == "open":
            lid_open_at = event.at
        elif switch == "lid" and state == "closed" and lid_open_at is not None:
            lines.append(svc.msg.t("report.tamper.lid", opened=lid_open_at.strftime(fmt),
                                   closed=event.at.strftime(fmt)))
            lid_open_at = None
        elif switch == "seal" and state == "broken":
            lines.append(svc.msg.t("report.tamper.seal", at=event.at.strftime(fmt)))
    if lid_open_at is not None:
        lines.append(svc.msg.t("report.tamper.lid_still_open", opened=lid_open_at.strftime(fmt)))
    return lines


def network_problem_lines(svc: ReportSource) -> list[str]:
    """Art. 26 "problems with the internet": each document whose sending failed so far, in the
    committee's words (firmware.common.transmission.uploader)."""
    from firmware.common.transmission.uploader import describe_entry

    return [describe_entry(e, svc.msg) for e in svc.store.entries() if e.last_error]


def print_report(svc: ReportSource, report: Report) -> None:
    image = render_raster(report, svc.election, svc.d.printer.width_px)
    try:
        svc.d.printer.print_image(image)
    except HalError as exc:
        raise PrintFailed(f"{report.kind}: not printed: {exc}") from exc

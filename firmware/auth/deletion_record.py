"""The deletion record (Art. 34): printed at the close once the biometric data is gone, and exported.

    record = build_deletion_record(header, service.deletion, register_path=..., key_path=...)
    record.ok                                        # nothing biometric is left
    save_deletion_record(record, election, reports_dir, printer)   # PNG, JSON, ESC/POS; printed

The wipe is the committee president's (or the technician's) action, with the PIN (AuthService.wipe); the
record names the role whose PIN allowed it, never the PIN. What is deleted and checked
(firmware.auth.register.RegisterExtract.wipe): the register extract's file and the authentication key
file (overwritten with zeros, fsynced, deleted: the pseudonyms in the auth store can no longer be linked
to a JMBG), the templates decrypted into memory and the 1:N gallery (dropped at close), and the
fingerprint reader's own template flash (cleared and counted: before and after; the
firmware never stores a template there, so "before" is 0 unless a technician's test enrolled one).
The record says each of these on paper, in the station's language, with the device block and the
committee's signatures. Its ESC/POS form is the byte stream the box's printer receives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from PIL import Image

from config.election import Election
from firmware.auth.register import DeletionRecord
from firmware.common.reports import (
    ReceiptPage,
    ReportHeader,
    render_png,
    render_raster,
    report_to_json,
)
from hal.drivers.escpos_printer import (
    ESC_INIT,
    FEED_LINES,
    GS_PARTIAL_CUT,
    LINE_FEED,
    prepare_raster_image,
    raster_commands,
)
from hal.printer import Printer

FILE_STEM = "deletion-record"


@dataclass(frozen=True)
class DeletionRecordReport:
    kind: ClassVar[str] = "deletion_record"

    header: ReportHeader
    deleted_at: datetime
    register_records: int
    templates: int
    register_sha256: str
    register_file_deleted: bool
    key_destroyed: bool
    sensor_templates_before: int
    sensor_templates_after: int
    authorized_by: str | None = None  # the role whose PIN allowed the wipe (president or technician), never a PIN

    @property
    def ok(self) -> bool:
        return self.register_file_deleted and self.key_destroyed and self.sensor_templates_after == 0

    def lay_out(self, page: ReceiptPage) -> None:
        msgs = page.msgs
        t = msgs.t
        page.title(t("deletion.title"), t("deletion.subtitle"), self.header)
        page.station_block(self.header, None)
        page.field(t("auth.report.label.deleted_at"), msgs.format_datetime(self.deleted_at))
        page.field(t("deletion.label.authorized_by"), t(f"role.{self.authorized_by}") if self.authorized_by
                   else t("deletion.label.authorized_none"))
        page.rule()
        page.heading(t("deletion.section.register"))
        page.row(t("auth.report.label.deleted_records"), str(self.register_records))
        page.row(t("auth.report.label.deleted_templates"), str(self.templates))
        page.text(t("deletion.label.file_deleted") if self.register_file_deleted else t("deletion.label.file_kept"),
                  style="regular" if self.register_file_deleted else "bold")
        page.text(t("auth.report.label.key_destroyed") if self.key_destroyed else t("auth.report.label.key_kept"),
                  style="regular" if self.key_destroyed else "bold")
        page.hash(t("auth.report.label.register_hash"), self.register_sha256)
        page.heading(t("deletion.section.sensor"))
        page.row(t("deletion.label.sensor_before"), str(self.sensor_templates_before))
        page.row(t("auth.report.label.sensor_templates"), str(self.sensor_templates_after),
                 bold=self.sensor_templates_after != 0)
        page.rule("double")
        if self.ok:
            page.text(t("deletion.ok"), style="bold", align="center")
        else:
            page.banner(t("deletion.not_ok"))
        page.rule()
        page.device_block(self.header)
        page.rule("double")
        page.signatures(members=True)
        page.footer(t("deletion.footer"))


def build_deletion_record(header: ReportHeader, deletion: DeletionRecord, *, register_path: Path,
                          key_path: Path | None = None) -> DeletionRecordReport:
    """The record of `deletion`, checking on disk that the register file (and key file) are gone."""
    key_gone = deletion.key_destroyed and (key_path is None or not Path(key_path).exists())
    return DeletionRecordReport(
        header=header, deleted_at=deletion.deleted_at, register_records=deletion.records,
        templates=deletion.templates, register_sha256=deletion.register_sha256,
        register_file_deleted=not Path(register_path).exists(), key_destroyed=key_gone,
        sensor_templates_before=deletion.sensor_templates_before,
        sensor_templates_after=deletion.sensor_templates_after, authorized_by=deletion.authorized_by)


def escpos_document(report: DeletionRecordReport, election: Election, width_px: int) -> bytes:
    """The bytes the thermal printer receives for the record (hal.drivers.escpos_printer's commands)."""
    return _escpos(render_raster(report, election, width_px), width_px)


def _escpos(raster: Image.Image, width_px: int) -> bytes:
    return ESC_INIT + b"".join(raster_commands(prepare_raster_image(raster, width_px))) + LINE_FEED * FEED_LINES \
        + GS_PARTIAL_CUT


def save_deletion_record(report: DeletionRecordReport, election: Election, directory: Path,
                         printer: Printer | None = None) -> list[Path]:
    """Write the record as PNG, JSON and ESC/POS into `directory`, then print it on `printer` (the same
    raster as the ESC/POS file: what the committee signs is what is filed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    width = printer.width_px if printer is not None else 576
    png = render_png(report, election, directory / f"{FILE_STEM}.png", width_px=width)
    data = directory / f"{FILE_STEM}.json"
    data.write_text(json.dumps(report_to_json(report), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    raster = render_raster(report, election, width)
    escpos = directory / f"{FILE_STEM}.escpos"
    escpos.write_bytes(_escpos(raster, width))
    if printer is not None:
        printer.print_image(raster)
    return [png, data, escpos]

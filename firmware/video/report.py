"""The video record (CEC instruction Art. 40: "all data on the device's operation, and remarks"), printed
at the close of the polls and saved as PNG and JSON, in the station's language.

    record = build_video_record(header, manifest, manifest_sha256, free_bytes=..., remarks=(...))
    render_png(record, election, path)     # firmware.common.reports, as every report of the box
    report_to_json(record)

Everything comes from the signed manifest: what the paper says is what `ballotbox video verify` checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from firmware.common.reports import ReceiptPage, ReportHeader


@dataclass(frozen=True)
class GapLine:
    start: datetime
    end: datetime
    cause: str  # video.manifest.GAP_CAUSES

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class ClockStep:
    """The clock found behind the recording (video.recorder: clock_backwards): at `at` (station time, the
    recording's last moment) the clock said `clock`; times after it are the clock's + `offset_s`."""

    at: datetime
    clock: datetime
    offset_s: float


@dataclass(frozen=True)
class VideoRecord:
    kind: ClassVar[str] = "video_record"

    header: ReportHeader
    started_at: datetime | None
    stopped_at: datetime | None
    width: int
    height: int
    fps: float
    segment_s: float
    segments: int
    cut_segments: int  # adopted after a power cut (they play up to the cut)
    frames: int
    seconds_recorded: float
    bytes_stored: int
    free_bytes: int | None
    gaps: tuple[GapLine, ...]
    restarts: int
    clock_steps: tuple[ClockStep, ...]
    storage_events: tuple[str, ...]  # lowered rate, alarm, warnings: in the manifest's words
    stopped_cause: str | None  # None: closed with the polls
    masks: int
    masks_sha256: str
    manifest_sha256: str
    head: str
    remarks: tuple[str, ...]

    def lay_out(self, page: ReceiptPage) -> None:
        msgs = page.msgs
        t = msgs.t
        page.title(t("video.record.title"), t("video.record.subtitle"), self.header)
        page.station_block(self.header, None)
        for label, at in (("video.record.label.started", self.started_at),
                          ("video.record.label.stopped", self.stopped_at)):
            page.field(t(label), msgs.format_datetime(at) if at else "–")
        page.field(t("video.record.label.format"), f"{self.width} × {self.height}, {msgs.format_decimal(self.fps, 1 if self.fps >= 1 else 3)} "
                   f"fps, H.264 / MPEG-TS")
        page.rule()
        page.heading(t("video.record.section.recording"))
        page.row(t("video.record.label.segments"), str(self.segments), bold=True)
        page.row(t("video.record.label.cut_segments"), str(self.cut_segments), indent=page.s.body)
        page.row(t("video.record.label.frames"), str(self.frames))
        page.row(t("video.record.label.duration"), _hms(self.seconds_recorded))
        page.row(t("video.record.label.stored"), f"{msgs.format_decimal(self.bytes_stored / 1e9, 2)} GB")
        if self.free_bytes is not None:
            page.row(t("video.record.label.free"), f"{msgs.format_decimal(self.free_bytes / 1e9, 2)} GB")
        page.rule("dashed")
        page.heading(t("video.record.section.gaps"))
        page.row(t("video.record.label.restarts"), str(self.restarts), bold=True)
        page.items(t("video.record.label.gap_list"), tuple(
            f"{msgs.format_time(g.start)}–{msgs.format_time(g.end)} ({_hms(g.seconds)}): "
            f"{t('video.record.cause.' + g.cause)}" for g in self.gaps))
        if self.clock_steps:
            page.items(t("video.record.label.clock_steps"), tuple(
                t("video.record.clock_step", at=msgs.format_time(c.at), clock=msgs.format_datetime(c.clock),
                  behind=_hms(c.offset_s)) for c in self.clock_steps))
        page.items(t("video.record.section.storage"), self.storage_events)
        if self.stopped_cause is not None:
            page.text(t("video.record.label.stopped_by", cause=t("video.record.cause." + self.stopped_cause)),
                      style="bold")
        page.rule("dashed")
        page.heading(t("video.record.section.privacy"))
        page.row(t("video.record.label.masks"), str(self.masks))
        page.hash(t("video.record.label.masks_hash"), self.masks_sha256)
        page.items(t("report.section.remarks"), self.remarks)
        page.rule()
        page.device_block(self.header)
        page.hash(t("video.record.label.manifest_hash"), self.manifest_sha256, bold=True)
        page.rule("double")
        page.signatures(members=False)
        page.footer(t("video.record.footer"))


def build_video_record(header: ReportHeader, manifest: Any, manifest_sha256: str, *, free_bytes: int | None = None,
                       remarks: tuple[str, ...] = ()) -> VideoRecord:
    """From a video.manifest.Manifest (closed, as it was signed)."""
    segments = manifest.segments()
    with_time = [s for s in segments if s["start"] and s["end"]]
    seconds = sum((datetime.fromisoformat(s["end"]) - datetime.fromisoformat(s["start"])).total_seconds()
                  for s in with_time)
    events = manifest.events()
    started = next((datetime.fromisoformat(e["at"]) for e in events if e["what"] == "started"), None)
    stopped = next((datetime.fromisoformat(e["at"]) for e in reversed(events) if e["what"] == "stopped"), None)
    gaps = tuple(GapLine(datetime.fromisoformat(g["start"]), datetime.fromisoformat(g["end"]), g["cause"])
                 for g in manifest.gaps())
    storage = tuple(e["detail"] for e in events if e["what"].startswith("storage_"))
    clock = tuple(ClockStep(datetime.fromisoformat(e["at"]), datetime.fromisoformat(e["clock"]), float(e["offset_s"]))
                  for e in events if e["what"] == "clock_backwards")
    return VideoRecord(
        header=header, started_at=started, stopped_at=stopped, width=manifest.width, height=manifest.height,
        fps=manifest.fps, segment_s=manifest.segment_s, segments=len(segments),
        cut_segments=sum(1 for s in segments if s.get("cut")), frames=sum(s["frames"] for s in segments),
        seconds_recorded=round(seconds, 1), bytes_stored=sum(s["bytes"] for s in segments), free_bytes=free_bytes,
        gaps=gaps, restarts=sum(1 for g in gaps if g.cause in ("power_cut", "restart")), clock_steps=clock,
        storage_events=storage,
        stopped_cause=(manifest.stopped or {}).get("cause"), masks=len(manifest.masks),
        masks_sha256=manifest.masks_sha256, manifest_sha256=manifest_sha256, head=manifest.head, remarks=remarks)


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

"""The chained, signed manifest of a recording: manifest.json beside the segments.

    {"body": {"format": "ballotbox-video/1", "device_id", "station", "epoch", "width", "height", "fps",
              "segment_s", "masks": [...], "masks_sha256", "genesis", "entries": [...], "head", "closed",
              "stopped"},
     "signature": {"algorithm": "Ed25519", "public_key": hex, "key_fingerprint", "value": base64}}

Entries, in recording order, each chained to the one before: `index`, `kind` ("segment", "gap" or
"event"), its fields, `prev` (the hash of the entry before; the first's is `genesis`, the hash of the
recording's settings and masks) and `hash` = SHA-256 of the entry's canonical JSON (RFC 8785) without
`hash`. A segment entry: `segment` (its number), `file`, `sha256`, `bytes`, `start`, `end`, `frames`,
`first_pts`, `last_pts`, `cut` (true for the segment a power cut left open, adopted at the restart).
A gap: `start`, `end`, `cause`, `detail`. The signature covers the canonical JSON of `body`; the file is
replaced atomically (write, fsync, rename, fsync the directory) after every segment, so what is on disk
is always a whole, signed manifest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785

from firmware.common.durable import fsync_path
from video.segments import ClosedSegment

MANIFEST = "manifest.json"
PUBLIC_KEY = "device-key.pub.pem"
FORMAT = "ballotbox-video/1"
GAP_CAUSES = ("power_cut", "restart", "camera_disconnected", "frame_stall", "encoder_error", "storage_full",
              "mask_unusable", "rate_change")


class ManifestError(ValueError):
    """manifest.json cannot be read: the message names the file and what is wrong."""


def canonical(value: Any) -> bytes:
    return rfc8785.dumps(value)


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Manifest:
    device_id: str
    station: str
    epoch: str  # ISO time of pts 0
    width: int
    height: int
    fps: float
    segment_s: float
    masks: list[dict[str, Any]]
    masks_sha256: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    stopped: dict[str, Any] | None = None  # {"at", "cause", "detail"} when recording stopped for a reason

    @property
    def genesis(self) -> str:
        return hashlib.sha256(canonical(self._settings())).hexdigest()

    @property
    def head(self) -> str:
        return self.entries[-1]["hash"] if self.entries else self.genesis

    @property
    def epoch_time(self) -> datetime:
        return datetime.fromisoformat(self.epoch)

    def segments(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] == "segment"]

    def gaps(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] == "gap"]

    def events(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] == "event"]

    def last_number(self) -> int:
        return max((e["segment"] for e in self.segments()), default=0)

    def last_end(self) -> datetime | None:
        ends = [e["end"] for e in self.entries if e["kind"] in ("segment", "gap") and e.get("end")]
        return datetime.fromisoformat(ends[-1]) if ends else None

    def add_segment(self, seg: ClosedSegment, *, cut: bool = False) -> dict[str, Any]:
        start = end = None
        if seg.first_pts is not None and seg.last_pts is not None:
            start = self.time_of(seg.first_pts).isoformat()
            end = self.time_of(seg.last_pts + round(90_000 / self.fps)).isoformat()  # the last frame's period
        return self._append({"kind": "segment", "segment": seg.number, "file": seg.path.name,
                             "sha256": file_sha256(seg.path), "bytes": seg.path.stat().st_size, "start": start,
                             "end": end, "frames": seg.frames, "first_pts": seg.first_pts,
                             "last_pts": seg.last_pts, "cut": cut})

    def add_gap(self, start: datetime, end: datetime, cause: str, detail: str = "") -> dict[str, Any]:
        assert cause in GAP_CAUSES, cause
        return self._append({"kind": "gap", "start": start.isoformat(), "end": end.isoformat(), "cause": cause,
                             "detail": detail})

    def add_event(self, at: datetime, what: str, detail: str = "", **fields: Any) -> dict[str, Any]:
        """An event; `fields` are its own (clock_backwards: `clock`, the clock's time, and `offset_s`)."""
        return self._append({"kind": "event", "at": at.isoformat(), "what": what, "detail": detail, **fields})

    def time_of(self, pts: int) -> datetime:
        return self.epoch_time + timedelta(microseconds=pts * 100 // 9)  # 1/90000 s -> µs

    def pts_of(self, at: datetime) -> int:
        return round((at - self.epoch_time).total_seconds() * 90_000)

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {"index": len(self.entries), **entry, "prev": self.head}
        entry["hash"] = entry_hash(entry)
        self.entries.append(entry)
        return entry

    def _settings(self) -> dict[str, Any]:
        return {"format": FORMAT, "device_id": self.device_id, "station": self.station, "epoch": self.epoch,
                "width": self.width, "height": self.height, "fps": self.fps, "segment_s": self.segment_s,
                "masks": self.masks, "masks_sha256": self.masks_sha256}

    def body(self) -> dict[str, Any]:
        return {**self._settings(), "genesis": self.genesis, "entries": self.entries, "head": self.head,
                "closed": self.closed, "stopped": self.stopped}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Manifest:
        try:
            m = cls(device_id=body["device_id"], station=body["station"], epoch=body["epoch"], width=body["width"],
                    height=body["height"], fps=body["fps"], segment_s=body["segment_s"], masks=body["masks"],
                    masks_sha256=body["masks_sha256"], entries=list(body["entries"]), closed=body["closed"],
                    stopped=body.get("stopped"))
            datetime.fromisoformat(m.epoch)
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{MANIFEST}: field {exc} missing or malformed; this is not a ballotbox video "
                                "manifest") from None
        return m


def write_signed(directory: Path, manifest: Manifest, sign: Callable[[bytes], bytes], public_key_raw: bytes,
                 key_fingerprint: str) -> str:
    body = manifest.body()
    signature = {"algorithm": "Ed25519", "public_key": public_key_raw.hex(), "key_fingerprint": key_fingerprint,
                 "value": base64.b64encode(sign(canonical(body))).decode()}
    data = (json.dumps({"body": body, "signature": signature}, ensure_ascii=False, indent=1) + "\n").encode()
    tmp = directory / (MANIFEST + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / MANIFEST)
    fsync_path(directory)
    return hashlib.sha256(data).hexdigest()


def read_manifest(directory: Path) -> tuple[Manifest, dict[str, Any], bytes]:
    """The manifest, its signature block and the file's bytes. Raises ManifestError."""
    path = directory / MANIFEST
    try:
        data = path.read_bytes()
        doc = json.loads(data)
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest.json; give a recording directory (segments + manifest.json)") \
            from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("body"), dict) or not isinstance(doc.get("signature"), dict):
        raise ManifestError(f"{path}: needs a \"body\" and a \"signature\" object; not a ballotbox video manifest")
    return Manifest.from_body(doc["body"]), doc["signature"], data

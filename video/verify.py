"""`ballotbox video verify DIR`: is a recording whole? Needs the directory alone (and, to tie it to a
box, the device's public key or its fingerprint from the paper report).

Each problem names the segment and what happened to it: missing, altered, reordered, inserted; or the
manifest itself altered (its signature or its chain). An optional decode pass plays every segment and
checks that every masked pixel is blank in every frame.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.common.identity import fingerprint_of
from hal.room_camera import i420_planes
from video.manifest import (
    MANIFEST,
    PUBLIC_KEY,
    Manifest,
    canonical,
    entry_hash,
    file_sha256,
    read_manifest,
)
from video.masks import PrivacyMask
from video.segments import segment_number

# A decoded masked pixel counts as blank up to this many levels from black luma / neutral chroma. The mask
# is burnt into whole macroblocks around the polygons (video.masks), so H.264 codes them flat: measured 0
# levels on the synthetic scene and 2 on a scene drowned in noise (README "Video").
BLANK_TOLERANCE = 4


@dataclass(frozen=True)
class Problem:
    what: str  # missing | altered | reordered | inserted | manifest | chain | time | frames | mask
    segment: int | None
    detail: str

    def __str__(self) -> str:
        where = f"segment {self.segment}" if self.segment is not None else "recording"
        return f"{where}: {self.what}: {self.detail}"


@dataclass(frozen=True)
class Verification:
    manifest: Manifest
    key_fingerprint: str
    problems: list[Problem]
    frames_decoded: int | None = None
    masked_pixels_checked: int | None = None
    worst_masked_deviation: int | None = None
    open_segment: str | None = None  # a recording cut off (not closed): the segment it left open, not yet signed

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_recording(directory: Path, public_key_raw: bytes | None = None, *, decode: bool = False) -> Verification:
    """Check DIR. `public_key_raw`: the device's key to hold the signature to (default: the key the
    manifest names, which only proves the recording is whole, not whose it is: compare the fingerprint).
    Raises video.manifest.ManifestError when DIR holds no readable manifest (bad input)."""
    manifest, signature, data = read_manifest(directory)
    problems: list[Problem] = []
    if canonical(json.loads(data)["body"]) != canonical(manifest.body()):
        problems.append(Problem("manifest", None, f"{MANIFEST}: its head, genesis or other fields are not what its "
                                "entries give: the manifest was edited"))
    key_raw = _signature_problems(manifest, signature, public_key_raw, directory, problems)
    _chain_problems(manifest, problems)
    open_segment = _file_problems(directory, manifest, problems)
    result = Verification(manifest, fingerprint_of(key_raw) if key_raw else "?", problems, open_segment=open_segment)
    if decode:
        result = _decode_check(directory, result)
    return result


def _signature_problems(manifest: Manifest, signature: dict, given: bytes | None, directory: Path,
                        problems: list[Problem]) -> bytes | None:
    try:
        named = bytes.fromhex(str(signature.get("public_key", "")))
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
    except ValueError:
        problems.append(Problem("manifest", None, "the signature block is malformed"))
        return given
    key_raw = given or named
    if given is not None and named != given:
        problems.append(Problem("manifest", None, "signed by another key than the one given: not this box's "
                                "recording, or re-signed after a change"))
    try:
        Ed25519PublicKey.from_public_bytes(key_raw).verify(value, canonical(manifest.body()))
    except (InvalidSignature, ValueError):
        problems.append(Problem("manifest", None, f"{MANIFEST}: the signature does not verify: the manifest "
                                "was altered after the box signed it"))
    pub = directory / PUBLIC_KEY
    if pub.exists() and given is None:
        from cryptography.hazmat.primitives import serialization
        try:
            loaded = serialization.load_pem_public_key(pub.read_bytes())
            if not isinstance(loaded, Ed25519PublicKey) or loaded.public_bytes_raw() != named:
                problems.append(Problem("manifest", None, f"{PUBLIC_KEY} is not the key that signed {MANIFEST}"))
        except ValueError:
            problems.append(Problem("manifest", None, f"{PUBLIC_KEY}: not a PEM public key"))
    return key_raw


def _chain_problems(manifest: Manifest, problems: list[Problem]) -> None:
    prev = manifest.genesis
    expected_number = 1
    recorded_until: datetime | None = None
    jitter = timedelta(seconds=0.5 / manifest.fps)  # sensor timestamps are not exactly a period apart
    for i, entry in enumerate(manifest.entries):
        number = entry.get("segment")
        start, end = _when(entry.get("start")), _when(entry.get("end"))
        if entry.get("kind") in ("segment", "gap") and start is not None and end is not None:
            if recorded_until is not None and start < recorded_until - jitter:
                problems.append(Problem("time", number, f"entry {i} ({entry['kind']}) starts at {start.isoformat()}, "
                                        f"before the entry before it ended ({recorded_until.isoformat()}): the "
                                        "recording is not in time order (a clock that went back, or entries moved)"))
            recorded_until = max(end, recorded_until) if recorded_until is not None else end
        if entry.get("index") != i or entry.get("prev") != prev or entry.get("hash") != entry_hash(entry):
            problems.append(Problem("chain", number, f"entry {i} does not chain to the one before it (index "
                                    f"{entry.get('index')}, prev {str(entry.get('prev'))[:12]}...): entries were "
                                    "inserted, removed or edited"))
        prev = entry.get("hash")
        if entry.get("kind") == "segment":
            if number != expected_number:
                problems.append(Problem("chain", number, f"entry {i} is segment {number}, segment "
                                        f"{expected_number} was due"))
            expected_number = (number or expected_number) + 1
    if manifest.entries and manifest.body()["head"] != prev:
        problems.append(Problem("chain", None, "the head is not the last entry's hash"))


def _when(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _file_problems(directory: Path, manifest: Manifest, problems: list[Problem]) -> str | None:
    """Problems of the segment files; returns the note on the open segment of a cut-off recording: the
    one file after the last listed segment, while the manifest is not closed, is the segment being
    written when the box went off (the recorder adopts and signs it when it starts again)."""
    segments = manifest.segments()
    by_hash = {e["sha256"]: e["segment"] for e in segments}
    listed = {e["file"] for e in segments}
    for entry in segments:
        path = directory / entry["file"]
        number = entry["segment"]
        if not path.is_file():
            problems.append(Problem("missing", number, f"{entry['file']} is not in the directory "
                                    f"({entry['frames']} frames from {entry['start']} to {entry['end']})"))
            continue
        digest = file_sha256(path)
        if digest == entry["sha256"]:
            continue
        other = by_hash.get(digest)
        if other is not None and other != number:
            problems.append(Problem("reordered", number, f"{entry['file']} holds the bytes of segment {other}: "
                                    "segments were swapped or renamed"))
        else:
            problems.append(Problem("altered", number, f"{entry['file']}: SHA-256 {digest[:16]}... is not the "
                                    f"manifest's {entry['sha256'][:16]}... ({path.stat().st_size} bytes, manifest "
                                    f"{entry['bytes']})"))
    note = None
    for path in sorted(directory.iterdir()):
        if path.name in listed or path.name in (MANIFEST, PUBLIC_KEY):
            continue
        if not manifest.closed and path.name == MANIFEST + ".tmp":
            continue  # the next manifest, being written when the box went off: replaced at the restart
        number = segment_number(path.name)
        if not manifest.closed and note is None and number == manifest.last_number() + 1 and path.is_file():
            from video.segments import probe_segment
            seg = probe_segment(path)
            note = (f"{path.name}: the segment open when the recording was cut off; it plays {seg.frames} "
                    "frames up to the cut and is signed when the recorder starts again")
            continue
        digest = file_sha256(path) if path.is_file() else ""
        copy = f" (a copy of segment {by_hash[digest]})" if digest in by_hash else ""
        problems.append(Problem("inserted", number, f"{path.name} is not in the manifest{copy}"))
    return note


def _decode_check(directory: Path, result: Verification) -> Verification:
    """Play every listed segment: its frame count must be the manifest's and every masked pixel blank."""
    import av
    import numpy as np

    m = result.manifest
    problems = list(result.problems)
    try:
        mask = PrivacyMask.from_settings(m.masks, m.width, m.height)
    except ValueError as exc:
        problems.append(Problem("mask", None, f"the manifest's masks cannot be drawn: {exc}"))
        return Verification(m, result.key_fingerprint, problems, open_segment=result.open_segment)
    luma, chroma = mask.luma_blank, mask.chroma_blank
    frames = worst = 0
    for entry in m.segments():
        path = directory / entry["file"]
        if not path.is_file():
            continue
        count = 0
        try:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    count += 1
                    y, u, v = i420_planes(np.ascontiguousarray(frame.to_ndarray(format="yuv420p")), m.width,
                                          m.height)
                    if luma.any():
                        dev = max(int(y[luma].max()) - 16, int(np.abs(u[chroma].astype(int) - 128).max()),
                                  int(np.abs(v[chroma].astype(int) - 128).max()))
                        worst = max(worst, dev)
                        if dev > BLANK_TOLERANCE:
                            problems.append(Problem("mask", entry["segment"], f"frame {count}: a masked pixel "
                                                    f"is {dev} levels from blank"))
        except av.error.FFmpegError as exc:
            if not entry.get("cut"):
                problems.append(Problem("frames", entry["segment"], f"{entry['file']} does not play: {exc}"))
        frames += count
        if count != entry["frames"]:
            problems.append(Problem("frames", entry["segment"], f"{entry['file']} plays {count} frames, the "
                                    f"manifest says {entry['frames']}"))
    return Verification(m, result.key_fingerprint, problems, frames, int(luma.sum()) * frames, worst,
                        result.open_segment)

"""The export at close: what the committee's USB drive gets, with a signed index of every file.

    write_export(out / "export", parts, identity, at=clock.now())   # at the end of the day
    check = verify_export(directory, public_key)                     # with the device's public key alone

Layout (a part that does not exist is left out):

    cdf/          results (NIST ElectionReport) and cast-vote records with their signatures (OUT/cdf)
    logs/         each service's event log, `<service>-events.jsonl` (firmware.common.eventlog)
    video/        whatever the video service left for the export (manifest.json and its signature, ...)
    reports/      the printed reports as PNG, JSON and ESC/POS (zero, results, comparison, authentication,
                  deletion record)
    device-key.pub.pem
    index.json    RFC 8785 JSON: format, station, election, device id, key id and fingerprint, and per
                  file its path, SHA-256 and size, in path order
    index.json.sig  base64 of the Ed25519 signature by the device key over index.json's exact bytes

Secrecy (VVSG 2.0 10.2.2-B): the files are copied in order of their path (the CVR files' names are
random ids, so that order is random) and every file and folder gets one mtime, the export's; the index
lists paths in sorted order. Nothing of the casting order survives the copy.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.common.eventlog import Signer, verify_log
from firmware.common.identity import fingerprint_of
from firmware.errors import UserError

FORMAT = "ballotbox-export/1"
INDEX, INDEX_SIG, PUBLIC_KEY = "index.json", "index.json.sig", "device-key.pub.pem"
SIGNED_BY_INDEX_ITSELF = frozenset({INDEX, INDEX_SIG})


class ExportError(UserError):
    """The export cannot be written or read as asked (bad input: exit 2); the message says why."""


@dataclass(frozen=True)
class ExportParts:
    """Where the parts of the export come from on the box."""

    cdf: Path | None = None
    logs: tuple[Path, ...] = ()
    video: Path | None = None
    reports: Path | None = None
    station: str = ""
    election: str = ""


class _IdentityWithKey(Signer, Protocol):
    @property
    def public_key_raw(self) -> bytes: ...


def write_export(target: Path, parts: ExportParts, identity: _IdentityWithKey, *, at: datetime) -> Path:
    """Write the export into `target` (made anew: an existing one is moved aside to `target.N`) and
    return it. Built in `target.partial` and renamed, so a half-written export never looks finished."""
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # a half-written export of this box: never finished, never handed out
    partial.mkdir(parents=True)
    files: dict[str, Path] = {}
    if parts.cdf is not None and parts.cdf.is_dir():
        files |= _tree(parts.cdf, "cdf")
    for log in parts.logs:
        if log.is_file():
            files[f"logs/{log.name}"] = log
    if parts.video is not None and parts.video.is_dir():
        files |= _tree(parts.video, "video")
    if parts.reports is not None and parts.reports.is_dir():
        files |= _tree(parts.reports, "reports")
    for relative in sorted(files):
        destination = partial / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files[relative], destination)
    public = Ed25519PublicKey.from_public_bytes(identity.public_key_raw)
    (partial / PUBLIC_KEY).write_bytes(public.public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    index = build_index(partial, parts, identity, at)
    body = rfc8785.dumps(index)
    (partial / INDEX).write_bytes(body)
    (partial / INDEX_SIG).write_text(base64.b64encode(identity.sign(body)).decode("ascii") + "\n", encoding="ascii")
    _one_mtime(partial, at.timestamp())
    _sync_tree(partial)
    if target.exists():
        n = 1
        while target.with_name(f"{target.name}.{n}").exists():
            n += 1
        target.rename(target.with_name(f"{target.name}.{n}"))
    partial.rename(target)
    return target


def build_index(directory: Path, parts: ExportParts, identity: _IdentityWithKey, at: datetime) -> dict[str, Any]:
    entries = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative in SIGNED_BY_INDEX_ITSELF:
            continue
        entries.append({"path": relative, "sha256": _sha256(path), "bytes": path.stat().st_size})
    return {"format": FORMAT, "station": parts.station, "election": parts.election, "device_id": identity.device_id,
            "key_id": hashlib.sha256(identity.public_key_raw).hexdigest(), "key_fingerprint": identity.fingerprint,
            "written_at": at.isoformat(), "files": entries}


# ================================================================================================
# Verification
# ================================================================================================
@dataclass
class ExportCheck:
    directory: Path
    key_fingerprint: str = ""
    key_source: str = ""
    files: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    index: Mapping[str, Any] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_export(directory: Path, key: Ed25519PublicKey | None = None) -> ExportCheck:
    """Check an export with the device's public key alone: the index's signature, every file it lists
    (missing, altered), every file it does not list (extra), and each event log's chain and signed heads.
    Without `key` the export's own device-key.pub.pem is used (its fingerprint must then be compared with
    the paper report's). Raises ExportError when `directory` is not an export at all."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportError(f"{directory}: no such directory; give the export folder (OUT/export, or the USB drive's)")
    if not (directory / INDEX).is_file():
        raise ExportError(f"{directory}: no {INDEX} here, so this is not a ballotbox export (or its index was "
                          "deleted): give the folder that holds index.json")
    check = ExportCheck(directory)
    key = _key(directory, key, check)
    body = (directory / INDEX).read_bytes()
    _check_signature(directory, body, key, check)
    index = _parse_index(body, check)
    check.index = index
    listed: dict[str, Mapping[str, Any]] = {}
    for entry in index.get("files", []) if isinstance(index.get("files"), list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("path"), str):
            listed[entry["path"]] = entry
    check.files = len(listed)
    if index and index.get("key_id") != hashlib.sha256(key.public_bytes_raw()).hexdigest():
        check.problems.append(f"{INDEX}: made for the key {index.get('key_fingerprint')!r}, not the key given "
                              f"({check.key_fingerprint}): the export is another device's, or was altered")
    for relative, entry in sorted(listed.items()):
        path = directory / relative
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            check.problems.append(f"{relative}: a path outside the export in the index (altered)")
        elif not path.is_file():
            check.problems.append(f"{relative}: missing (listed in the signed index)")
        elif _sha256(path) != entry.get("sha256"):
            check.problems.append(f"{relative}: altered (its SHA-256 is not the one in the signed index)")
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative not in listed and relative not in SIGNED_BY_INDEX_ITSELF:
            check.problems.append(f"{relative}: extra (not in the signed index)")
    logs = {*directory.glob("logs/*.jsonl"), *directory.rglob("*-events.jsonl")}
    for log in sorted(logs):
        name = log.relative_to(directory).as_posix()
        found = verify_log(log, key)
        check.problems += [f"{name}: {p}" for p in found.problems]
        check.notes += [f"{name}: {t}" for t in found.torn]
        if not found.closed:
            check.notes.append(f"{name}: not closed (the service did not reach the end of the day)")
    return check


def _key(directory: Path, key: Ed25519PublicKey | None, check: ExportCheck) -> Ed25519PublicKey:
    inside = directory / PUBLIC_KEY
    own: Ed25519PublicKey | None = None
    if inside.is_file():
        try:
            loaded = serialization.load_pem_public_key(inside.read_bytes())
            own = loaded if isinstance(loaded, Ed25519PublicKey) else None
        except ValueError:
            own = None
        if own is None:
            check.problems.append(f"{PUBLIC_KEY}: not an Ed25519 public key (altered)")
    if key is None:
        if own is None:
            raise ExportError(f"{directory}: no usable {PUBLIC_KEY} in the export; give the device's public key "
                              "with --key")
        key, check.key_source = own, f"{PUBLIC_KEY} inside the export (compare its fingerprint with the paper report)"
    else:
        check.key_source = "--key"
        if own is not None and own.public_bytes_raw() != key.public_bytes_raw():
            check.problems.append(f"{PUBLIC_KEY}: not the key given with --key (replaced: trust --key)")
    check.key_fingerprint = fingerprint_of(key.public_bytes_raw())
    return key


def _check_signature(directory: Path, body: bytes, key: Ed25519PublicKey, check: ExportCheck) -> None:
    try:
        signature = base64.b64decode((directory / INDEX_SIG).read_text(encoding="ascii").strip(), validate=True)
    except FileNotFoundError:
        check.problems.append(f"{INDEX_SIG}: missing: the index is not signed")
        return
    except (ValueError, UnicodeDecodeError):
        check.problems.append(f"{INDEX_SIG}: not a base64 signature (altered)")
        return
    try:
        key.verify(signature, body)
    except InvalidSignature:
        check.problems.append(f"{INDEX}: altered (its signature does not verify with the device key): no file's "
                              "hash in it can be trusted")


def _parse_index(body: bytes, check: ExportCheck) -> dict[str, Any]:
    import json

    try:
        index = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        check.problems.append(f"{INDEX}: not JSON (altered)")
        return {}
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("files"), list):
        check.problems.append(f"{INDEX}: not a {FORMAT} index (altered)")
        return {}
    return index


def _tree(root: Path, prefix: str, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and path.relative_to(root).as_posix() not in skip:
            out[f"{prefix}/{path.relative_to(root).as_posix()}"] = path
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one_mtime(root: Path, stamp: float) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (stamp, stamp))
    os.utime(root, (stamp, stamp))


def _sync_tree(root: Path) -> None:
    for path in [*sorted(root.rglob("*")), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

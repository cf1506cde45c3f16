"""Releases on the box: verify a signed bundle, install it into an A/B slot, switch, health-check, roll back;
and the boot check of the installed files against their signed manifest.

A bundle (built by firmware/cec/packaging.py) is a tar.gz holding ``manifest.json``, a signed envelope
(firmware/trust/signing.py) whose payload lists every code file with its SHA-256, then ``files/<path>``
for each of them. Under ROOT:

    ROOT/slots/a/, ROOT/slots/b/      the code of two releases (each with .release/manifest.json)
    ROOT/current -> slots/X           what the services run (a symbolic link, switched by rename(2))
    ROOT/previous -> slots/Y          what a rollback goes back to
    ROOT/systemd/ballotbox-*.service  the units (Type=notify, WatchdogSec), to link into /etc/systemd/system

`install_release` writes the new release into the slot not running, switches ``current`` to it, and runs
the *installed* code's own health check (``ballotbox boot-check --health`` from the slot); if that fails,
``current`` goes back to the release that ran before. Every member of the bundle is checked against the
signed manifest before a byte is written, and a member not in the manifest, a missing one or a path that
leaves the slot refuses the whole bundle.

The boot check trusts the release keys of the code that runs it. On a box without secure boot a person
who can rewrite the card can rewrite that folder too: the check finds a corrupted or half-written card
and a changed file, not an attacker with the card in hand (that needs the Pi's signed boot, not done).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firmware.common.identity import CODE_PACKAGES
from firmware.common.identity import ROOT as CODE_ROOT
from firmware.trust.signing import (
    TRUSTED_RELEASE_KEYS,
    TrustedKey,
    TrustError,
    canonical_sha256,
    open_envelope,
    trusted_keys,
)

MANIFEST_SCHEMA = "ballotbox.release-manifest/1"
MANIFEST_MEMBER = "manifest.json"
RELEASE_FILES_PREFIX = "files/"
SLOT_MANIFEST = PurePosixPath(".release") / "manifest.json"
SLOTS = ("a", "b")
TOP_LEVEL_FILES = ("pyproject.toml",)
# Private signing keys (packages, releases) stay with the CEC and the release manager: never on a box.
NEVER_SHIPPED_SUFFIX = ".signing.pem"
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # the largest code file (the OMR model) is well under 1 MB
HEALTH_TIMEOUT_S = 120.0  # importing the services cold on a Pi 4 takes a few seconds; a hang is a failure
SERVICES = {  # service -> what it does, for the unit's Description
    "scanner": "ballot scanner (feeder, camera, OMR, tally)",
    "auth": "voter authentication desk (document reader, fingerprint sensor)",
    "video": "video surveillance of the ballot box",
    "uploader": "uploader of signed documents to the CEC",
}
WATCHDOG_SEC = 30  # systemd restarts a service whose devices stopped answering for this long


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ReleaseManifest(_Strict):
    schema_version: Annotated[Literal["ballotbox.release-manifest/1"], Field(alias="schema")]
    version: Annotated[str, Field(pattern=r"^[0-9A-Za-z.+_-]{1,40}$")]
    built_at: str
    files: Annotated[dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]], Field(min_length=1)]


@dataclass(frozen=True)
class Release:
    manifest: ReleaseManifest
    envelope: bytes
    signer: TrustedKey
    sha256: str  # of the manifest's canonical bytes: the release's one hash


@dataclass(frozen=True)
class InstallResult:
    version: str
    slot: str
    healthy: bool
    rolled_back_to: str | None  # the slot running again after a failed health check
    detail: str


def release_files(source: Path) -> list[str]:
    """Every code and data file of the firmware's packages under source (POSIX paths, sorted), without
    caches and private signing keys."""
    files = [name for name in TOP_LEVEL_FILES if (source / name).is_file()]
    for pkg in CODE_PACKAGES:
        for path in sorted((source / pkg).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc" \
                    and not path.name.endswith(NEVER_SHIPPED_SUFFIX):
                files.append(path.relative_to(source).as_posix())
    if not any(f.startswith("ballotbox/") for f in files):
        raise TrustError("no_code", f"{source}: no ballotbox/ package inside; give the source tree's root")
    return sorted(files)


def read_bundle(bundle: Path, trust: Path = TRUSTED_RELEASE_KEYS) -> tuple[Release, dict[str, bytes]]:
    """The release and its files, every file checked against the signed manifest, or TrustError."""
    try:
        tar = tarfile.open(bundle, "r:gz")  # noqa: SIM115 - closed by the `with tar` below
    except FileNotFoundError:
        raise TrustError("no_file", f"{bundle}: no such file; give the release bundle (.tar.gz)") from None
    except (tarfile.TarError, OSError) as exc:
        raise TrustError("not_bundle", f"{bundle}: not a release bundle (tar.gz: {exc})") from None
    with tar:
        try:
            members = tar.getmembers()
            if not members or members[0].name != MANIFEST_MEMBER or not members[0].isfile():
                raise TrustError("not_bundle", f"{bundle}: the first member is not {MANIFEST_MEMBER}; build "
                                               "the bundle with `ballotbox release build`")
            release = _release(bundle.name, _read(tar, members[0]), trust)
            files: dict[str, bytes] = {}
            for member in members[1:]:
                rel = member.name.removeprefix(RELEASE_FILES_PREFIX)
                if not member.name.startswith(RELEASE_FILES_PREFIX) or rel not in release.manifest.files \
                        or not member.isfile() or rel in files:
                    raise TrustError("tampered", f"{bundle.name}: member {member.name!r} is not a file of the "
                                                 "signed manifest: the bundle was altered; do not install it")
                data = _read(tar, member)
                if canonical_file_hash(data) != release.manifest.files[rel]:
                    raise TrustError("tampered", f"{bundle.name}: {rel}: its SHA-256 is not the one in the "
                                                 "signed manifest: the bundle was altered; do not install it")
                files[rel] = data
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise TrustError("not_bundle", f"{bundle}: damaged tar.gz ({exc}); copy it again") from None
    missing = sorted(set(release.manifest.files) - set(files))
    if missing:
        raise TrustError("tampered", f"{bundle.name}: {missing[0]} (and {len(missing) - 1} more) listed in the "
                                     "signed manifest but not in the bundle; do not install it")
    return release, files


def install_release(bundle: Path, root: Path, *, trust: Path = TRUSTED_RELEASE_KEYS,
                    python: str = sys.executable) -> InstallResult:
    """Verify, write into the slot not running, switch `current`, health-check, roll back on failure."""
    release, files = read_bundle(bundle, trust)
    root = root.resolve()  # the units and the health check need absolute paths
    running = _slot_of(root / "current")
    slot = next(s for s in SLOTS if s != running)
    slots = root / "slots"
    slots.mkdir(parents=True, exist_ok=True)
    for stale in slots.glob(".staging-*"):  # an install cut short by a power cut
        shutil.rmtree(stale, ignore_errors=True)
    staging = slots / f".staging-{secrets.token_hex(4)}"
    for rel, data in files.items():
        _write(staging / rel, data)
    _write(staging / SLOT_MANIFEST, release.envelope)
    shutil.rmtree(slots / slot, ignore_errors=True)  # the release before the one running: the spare slot
    os.rename(staging, slots / slot)
    write_units(root, python)
    _switch(root, "current", slot)
    if running is not None:
        _switch(root, "previous", running)
    ok, detail = health_check(root, trust=trust, python=python)
    if ok:
        return InstallResult(release.manifest.version, slot, True, None, detail)
    if running is not None:
        _switch(root, "current", running)
        _switch(root, "previous", slot)
    else:
        (root / "current").unlink()
    return InstallResult(release.manifest.version, slot, False, running, detail)


def rollback(root: Path, *, trust: Path = TRUSTED_RELEASE_KEYS, python: str = sys.executable) -> InstallResult:
    """Go back to the previous release (the technician's choice), health-checked like an install."""
    root = root.resolve()
    running, previous = _slot_of(root / "current"), _slot_of(root / "previous")
    if previous is None or running is None:
        raise TrustError("no_previous", f"{root}: no previous release to go back to (ROOT/previous)")
    _switch(root, "current", previous)
    _switch(root, "previous", running)
    ok, detail = health_check(root, trust=trust, python=python)
    version = _version_of(root / "current")
    if not ok:
        _switch(root, "current", running)
        _switch(root, "previous", previous)
        return InstallResult(version, previous, False, running, detail)
    return InstallResult(version, previous, True, None, detail)


def health_check(root: Path, *, trust: Path = TRUSTED_RELEASE_KEYS, python: str = sys.executable) -> tuple[bool, str]:
    """Run the installed code's own check (`ballotbox boot-check --health`, from ROOT/current): ok and its words."""
    current = root.resolve() / "current"
    env = {**os.environ, "PYTHONPATH": str(current), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [python, "-m", "ballotbox", "boot-check", "--root", str(root), "--health", "--trust", str(trust)]
    try:
        done = subprocess.run(command, cwd=current, env=env, capture_output=True, text=True,
                              timeout=HEALTH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return False, f"the installed code's health check did not answer within {HEALTH_TIMEOUT_S:g} s"
    words = (done.stdout + done.stderr).strip()
    lines = words.splitlines()
    return done.returncode == 0, "\n".join(lines[-12:]) if lines else f"exit {done.returncode}"


def boot_check(root: Path, *, trust: Path = TRUSTED_RELEASE_KEYS) -> tuple[str | None, list[str]]:
    """The installed release's version and every problem with its files: each file of the signed manifest
    present with its SHA-256, and no code file that the manifest does not list."""
    current = root / "current"
    if not (current / SLOT_MANIFEST).is_file():
        return None, [(f"{root}: no release installed (ROOT/current/{SLOT_MANIFEST} missing): flash the box "
                       "with `ballotbox install BUNDLE --root ROOT`")]
    check = check_slot(current, trust=trust)
    return check.version, list(check.problems)


@dataclass(frozen=True)
class SlotCheck:
    """The boot check of one slot: `slot` None when the code does not run from an installed release."""

    slot: Path | None
    version: str | None = None
    files: int = 0  # in the signed manifest
    problems: tuple[str, ...] = ()  # one line each, as boot-check prints them
    mismatched: tuple[str, ...] = ()  # the files named by the problems (none when the manifest itself fails)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_slot(slot: Path, *, trust: Path = TRUSTED_RELEASE_KEYS) -> SlotCheck:
    """The files of the slot against its signed manifest (what `boot-check` does to ROOT/current)."""
    manifest_path = slot / SLOT_MANIFEST
    try:
        release = _release(str(manifest_path), manifest_path.read_bytes(), trust)
    except OSError as exc:
        return SlotCheck(slot, problems=(f"{manifest_path}: unreadable ({exc.strerror or exc}): flash the box again",))
    except TrustError as exc:
        return SlotCheck(slot, problems=(str(exc),))
    problems: dict[str, str] = {}
    for rel, digest in release.manifest.files.items():
        path = slot / rel
        if not path.is_file():
            problems[rel] = "missing (listed in the signed manifest)"
        elif canonical_file_hash(path.read_bytes()) != digest:
            problems[rel] = "altered (its SHA-256 is not the signed manifest's)"
    for path in sorted(slot.rglob("*")):
        rel = path.relative_to(slot).as_posix()
        if path.is_file() and not rel.startswith(".release/") and "__pycache__" not in path.parts \
                and path.suffix != ".pyc" and rel not in release.manifest.files:
            problems[rel] = "not in the signed manifest (a file added after install)"
    return SlotCheck(slot, release.manifest.version, len(release.manifest.files),
                     tuple(f"{rel}: {what}" for rel, what in problems.items()), tuple(problems))


def check_running_release(code_root: Path | None = None, *, trust: Path = TRUSTED_RELEASE_KEYS) -> SlotCheck:
    """The boot check of the code that runs now (CODE_ROOT), when it runs from an installed slot (its root
    holds .release/manifest.json: ROOT/current resolves there); SlotCheck(None) from a source tree
    (simulation, development), where there is no signed manifest to check against."""
    code_root = code_root or CODE_ROOT
    if not (code_root / SLOT_MANIFEST).is_file():
        return SlotCheck(None)
    return check_slot(code_root, trust=trust)


def write_units(root: Path, python: str) -> list[Path]:
    """ROOT/systemd/ballotbox-<service>.service for each service: Type=notify, the watchdog, the boot check
    before start. The paths go through ROOT/current, so a switch of slot needs no new units."""
    folder = root / "systemd"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for service, what in SERVICES.items():
        unit = UNIT_TEMPLATE.format(service=service, what=what, root=root, python=python, watchdog=WATCHDOG_SEC)
        path = folder / f"ballotbox-{service}.service"
        path.write_text(unit, encoding="utf-8")
        written.append(path)
    return written


UNIT_TEMPLATE = """\
# Written by `ballotbox install`. Link into /etc/systemd/system (systemctl link {root}/systemd/ballotbox-{service}.service)
[Unit]
Description=ballotbox {what}
After=local-fs.target time-sync.target
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
WorkingDirectory={root}/current
Environment=PYTHONPATH={root}/current PYTHONDONTWRITEBYTECODE=1
# The installed files are checked against the signed manifest first: a mismatch keeps the service down.
ExecStartPre={python} -m ballotbox boot-check --root {root}
# The reference box's wiring and data directory, signed with the release (config/device-pi.json).
ExecStart={python} -m ballotbox service run {service} --settings {root}/current/config/device-pi.json
# Fed only while the service's devices answer (firmware/trust/watchdog.py): silence means a restart.
WatchdogSec={watchdog}
# SIGTERM stops the scanner at a ballot boundary: a cycle takes about a second.
TimeoutStopSec=30
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def canonical_file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _release(source: str, raw: bytes, trust: Path) -> Release:
    payload, signer = open_envelope(source, raw, trusted_keys(trust))
    try:
        manifest = ReleaseManifest.model_validate(payload)
    except ValidationError as exc:
        raise TrustError("schema", f"{source}: not a release manifest of schema {MANIFEST_SCHEMA!r}: "
                                   f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    for rel in manifest.files:
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or rel != p.as_posix() or rel.startswith(".release"):
            raise TrustError("tampered", f"{source}: file {rel!r} would be written outside the slot; refused")
    return Release(manifest, raw, signer, canonical_sha256(payload))


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > MAX_MEMBER_BYTES:
        raise TrustError("not_bundle", f"member {member.name}: {member.size} bytes, more than any code file")
    f = tar.extractfile(member)
    if f is None:
        raise TrustError("not_bundle", f"member {member.name}: not a regular file")
    return f.read()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _switch(root: Path, link: str, slot: str) -> None:
    tmp = root / f".{link}.{secrets.token_hex(4)}"
    os.symlink(f"slots/{slot}", tmp)
    os.replace(tmp, root / link)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _slot_of(link: Path) -> str | None:
    if not link.is_symlink():
        return None
    name = Path(os.readlink(link)).name
    return name if name in SLOTS else None


def _version_of(current: Path) -> str:
    try:
        return str(json.loads((current / SLOT_MANIFEST).read_text())["payload"]["version"])
    except (OSError, ValueError, KeyError):
        return "?"

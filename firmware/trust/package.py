"""The election package, as the box checks and installs it (the CEC builds and signs it: firmware/cec/packaging.py).

A package is one signed envelope (firmware/trust/signing.py) whose payload is an ``ElectionPackage``: the
election definition, the stations it is valid for, the CEC receiver's endpoint and certificate pin (what
the uploader sends to), a reference to the register extract when the authentication pilot needs one, and
the schema version. The ballot-code verification key travels inside the election definition
(``ballot_code_key``). Nothing is installed until every check holds, in this order: the signer is a
trusted key, the signature verifies, the payload has this schema (strictly typed: pydantic, strict mode,
no unknown field), the election definition is valid, and the package is for this station and election.

Installed into the device part of the state directory (DEVICE/package is what the box reads):

    DEVICE/packages/<hash[:16]>/package.json    the signed file, byte for byte as delivered
    DEVICE/packages/<hash[:16]>/election.json   the election definition with this box's station
    DEVICE/packages/<hash[:16]>/installed.json  station, election, package hash, receiver, signer
    DEVICE/package -> packages/<hash[:16]>      a symbolic link, switched atomically

A folder is staged under a temporary name, synced and renamed, and the link is replaced by rename(2): a
power cut leaves the old package or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.election import Election, ElectionError, Station, parse_election
from firmware.common.durable import fsync_path
from firmware.common.transmission.receipts import public_key_from_b64
from firmware.common.transmission.uploader import EndpointError, parse_endpoint
from firmware.trust.signing import (
    TRUSTED_PACKAGE_KEYS,
    TrustedKey,
    TrustError,
    canonical_sha256,
    open_envelope,
    trusted_keys,
)

PACKAGE_SCHEMA = "ballotbox.election-package/1"
PACKAGE_LINK = "package"
PACKAGES_DIR = "packages"
HEX64 = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Receiver(_Strict):
    """Where the uploader sends the box's documents, the pin of the CEC's certificate (SHA-256, hex), and
    the receiver's Ed25519 public key that signs its receipts (raw 32 bytes, base64): a receipt that does
    not verify with it is not an acknowledgement."""

    endpoint: Annotated[str, Field(min_length=8, max_length=300)]
    pin_sha256: Annotated[str, Field(pattern=HEX64)] | None = None  # checked with the endpoint (parse_endpoint)
    receipt_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=$")]


class RegisterExtract(_Strict):
    """The register extract the authentication desk loads (delivered apart, encrypted): its name and hash."""

    file: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,80}$")]
    sha256: Annotated[str, Field(pattern=HEX64)]


class ElectionPackage(_Strict):
    schema_version: Annotated[Literal["ballotbox.election-package/1"], Field(alias="schema")]
    built_at: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")]
    election: dict[str, Any]  # validated by config.election (its own rules and messages) in verify_package
    stations: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=10000)]
    receiver: Receiver
    register_extract: RegisterExtract | None = None


@dataclass(frozen=True)
class VerifiedPackage:
    """A package whose signature, schema and station all hold, ready to install."""

    raw: bytes
    payload: dict[str, Any]
    package: ElectionPackage
    election: Election  # with the station this box serves
    signer: TrustedKey
    sha256: str  # over the payload's canonical bytes

    @property
    def station(self) -> str:
        return self.election.station.code


@dataclass(frozen=True)
class InstalledPackage:
    folder: Path
    station: str
    election_id: str
    sha256: str
    endpoint: str
    pin_sha256: str | None
    signer: str
    receipt_key: str | None  # base64; None only in a package installed before receipts were checked

    @property
    def election_path(self) -> Path:
        return self.folder / "election.json"

    def receiver_public_key(self) -> Ed25519PublicKey:
        """The key the CEC receiver signs its receipts with, or TrustError saying to provision again."""
        try:
            return public_key_from_b64(self.receipt_key or "")
        except ValueError:
            raise TrustError("schema", f"{self.folder}: the installed package has no usable receiver key for "
                                       "receipts; provision the box again with a current package") from None


def verify_package(path: Path, *, station: str | None, election_id: str | None = None,
                   trust: Path = TRUSTED_PACKAGE_KEYS) -> VerifiedPackage:
    """The package at path, every check passed, or TrustError saying which check failed and why.

    station None (only for `package verify` at the CEC) checks everything but the station and keeps the
    definition's own station."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TrustError("no_file", f"{path}: no such file; give the election package (.json) from the CEC "
                                    "medium") from None
    except OSError as exc:
        raise TrustError("no_file", f"{path}: cannot be read ({exc})") from None
    payload, signer = open_envelope(path.name, raw, trusted_keys(trust))
    if payload.get("schema") != PACKAGE_SCHEMA:
        raise TrustError("schema", f"{path.name}: schema {str(payload.get('schema'))[:60]!r}: this box reads "
                                   f"{PACKAGE_SCHEMA!r}; ask the CEC for a package of that version, or update "
                                   "the box's software")
    try:
        package = ElectionPackage.model_validate(payload)
    except ValidationError as exc:
        raise TrustError("schema", f"{path.name}: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()[:5])) from None
    try:
        election = parse_election(package.election, source=f"{path.name}: election")
        stations = [Station.model_validate(s) for s in package.stations]
    except ElectionError as exc:
        raise TrustError("schema", str(exc)) from None
    except ValidationError as exc:
        raise TrustError("schema", f"{path.name}: stations: {exc.errors()[0]['msg']}") from None
    try:
        parse_endpoint(package.receiver.endpoint, package.receiver.pin_sha256)
    except EndpointError as exc:
        raise TrustError("schema", f"{path.name}: receiver: {exc}") from None
    try:
        public_key_from_b64(package.receiver.receipt_key)
    except ValueError as exc:
        raise TrustError("schema", f"{path.name}: receiver.receipt_key: {exc}") from None
    if election_id is not None and election.id != election_id:
        raise TrustError("wrong_election", f"{path.name}: the package is for election {election.id!r}, not "
                                           f"{election_id!r}; take the package of election {election_id}")
    if station is not None:
        chosen = next((s for s in stations if s.code == station), None)
        if chosen is None:
            codes = ", ".join(s.code for s in stations[:5]) + (" …" if len(stations) > 5 else "")
            raise TrustError("wrong_station", f"{path.name}: the package is for station(s) {codes}, not "
                                              f"{station}; take the package of the municipality of {station}")
        election = election.model_copy(update={"station": chosen})
    return VerifiedPackage(raw, payload, package, election, signer, canonical_sha256(payload))


def install_package(verified: VerifiedPackage, device_dir: Path) -> InstalledPackage:
    """Install into device_dir (staged, synced, renamed; the link switched atomically). A box that holds a
    package for another station or election refuses: it must be wiped first."""
    current = installed_package(device_dir)
    if current is not None and (current.station, current.election_id) != (verified.station, verified.election.id):
        raise TrustError("wrong_station" if current.station != verified.station else "wrong_election",
                         f"{device_dir}: this box is provisioned for station {current.station}, election "
                         f"{current.election_id}; the package is for station {verified.station}, election "
                         f"{verified.election.id}. Wipe the box before provisioning it for another")
    packages = device_dir / PACKAGES_DIR
    packages.mkdir(parents=True, exist_ok=True)
    name = verified.sha256[:16]
    final = packages / name
    if not final.is_dir():
        staging = packages / f".staging-{secrets.token_hex(4)}"
        staging.mkdir()
        receiver = verified.package.receiver
        installed = {"station": verified.station, "election": verified.election.id, "package_sha256":
                     verified.sha256, "endpoint": receiver.endpoint, "pin_sha256": receiver.pin_sha256,
                     "receipt_key": receiver.receipt_key, "signer": verified.signer.source, "installed_at": _now()}
        _write_synced(staging / "package.json", verified.raw)
        _write_synced(staging / "election.json", json.dumps(
            verified.election.model_dump(mode="json"), ensure_ascii=False, indent=1).encode() + b"\n")
        _write_synced(staging / "installed.json", json.dumps(installed, indent=1).encode() + b"\n")
        fsync_path(staging)
        os.rename(staging, final)
        fsync_path(packages)
    link_tmp = device_dir / f".{PACKAGE_LINK}.{secrets.token_hex(4)}"
    os.symlink(f"{PACKAGES_DIR}/{name}", link_tmp)
    os.replace(link_tmp, device_dir / PACKAGE_LINK)
    fsync_path(device_dir)
    for old in packages.iterdir():  # earlier packages of the same station and election, and dead stagings
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    found = installed_package(device_dir)
    assert found is not None
    return found


def installed_package(device_dir: Path) -> InstalledPackage | None:
    """The package this box runs (DEVICE/package), or None when it has none yet."""
    folder = device_dir / PACKAGE_LINK
    meta = folder / "installed.json"
    if not meta.is_file():
        return None
    try:
        d = json.loads(meta.read_text(encoding="utf-8"))
        return InstalledPackage(folder, d["station"], d["election"], d["package_sha256"], d["endpoint"],
                                d.get("pin_sha256"), d["signer"], d.get("receipt_key"))
    except (ValueError, KeyError, TypeError) as exc:
        raise TrustError("schema", f"{meta}: unreadable ({exc}); provision the box again") from None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())

"""The CEC's side of the trust chain: build and sign an election package, build and sign a release bundle.

The box's side (verify, install) is firmware/trust/. The keys given here stay at the CEC (package) and
with the release manager (release); the TEST-ONLY keys in config/keys are for tests and training only.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.election import Station, load_election
from firmware.common.transmission.receipts import load_public_key_pem, public_key_b64
from firmware.common.transmission.uploader import EndpointError, parse_endpoint
from firmware.errors import UserError
from firmware.trust.package import PACKAGE_SCHEMA, ElectionPackage
from firmware.trust.release import (
    MANIFEST_MEMBER,
    MANIFEST_SCHEMA,
    RELEASE_FILES_PREFIX,
    release_files,
)
from firmware.trust.signing import (
    TEST_ONLY_MARK,
    TEST_RECEIVER_PUBLIC_KEY,
    load_private_key,
    sign_envelope,
)

# A tar member carries a fixed mode and time, not the build machine's owners, modes or times.
MEMBER_MODE, MEMBER_MTIME = 0o644, 0


def build_package(election_path: Path, *, endpoint: str, pin: str | None, stations_file: Path | None = None,
                  register_extract: Path | None = None, receipt_key: Path = TEST_RECEIVER_PUBLIC_KEY) -> dict[str, Any]:
    """The unsigned package payload: the definition, its stations (the definition's own unless a JSON list
    of stations is given), the receiver (endpoint, pin, the public key its receipts are signed with), the
    register extract's name and hash."""
    election = load_election(election_path)
    stations = [election.station.model_dump(mode="json")]
    if stations_file is not None:
        stations = _stations(stations_file)
    try:
        parsed = parse_endpoint(endpoint, pin)
    except EndpointError as exc:
        raise UserError(f"--endpoint {endpoint}: {exc}") from None
    try:
        receiver_key = load_public_key_pem(receipt_key.read_bytes(), f"--receipt-key {receipt_key}")
    except FileNotFoundError:
        raise UserError(f"--receipt-key {receipt_key}: no such file; give the receiver's public key "
                        "(STORE/receiver-key.pub.pem of `ballotbox receiver`)") from None
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    payload: dict[str, Any] = {
        "schema": PACKAGE_SCHEMA, "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "election": json.loads(election_path.read_text(encoding="utf-8")), "stations": stations,
        "receiver": {"endpoint": endpoint, "pin_sha256": parsed.pin.hex() if parsed.pin else None,
                     "receipt_key": public_key_b64(receiver_key)}}
    if register_extract is not None:
        if not register_extract.is_file():
            raise UserError(f"--register-extract {register_extract}: no such file")
        payload["register_extract"] = {"file": register_extract.name,
                                       "sha256": hashlib.sha256(register_extract.read_bytes()).hexdigest()}
    ElectionPackage.model_validate(payload)
    return payload


def sign_package(payload_path: Path, key_path: Path) -> tuple[dict[str, Any], bool]:
    """The signed envelope of an unsigned package (checked first: nothing malformed is signed), and whether
    the key is a TEST-ONLY one."""
    from pydantic import ValidationError

    try:
        payload = json.loads(payload_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{payload_path}: no such file; build it with `ballotbox package build`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{payload_path}: not JSON ({exc})") from None
    if isinstance(payload, dict) and set(payload) == {"payload", "signature"}:
        raise UserError(f"{payload_path}: is signed already; sign the unsigned file `package build` wrote")
    try:
        ElectionPackage.model_validate(payload)
    except ValidationError as exc:
        raise UserError(f"{payload_path}: not a package to sign: {exc.errors()[0]['loc']}: "
                        f"{exc.errors()[0]['msg']}") from None
    return sign_envelope(payload, load_private_key(key_path)), TEST_ONLY_MARK in key_path.name


def build_release(source: Path, out: Path, key_path: Path, version: str) -> dict[str, Any]:
    """Write the release bundle out (tar.gz: the signed manifest, then files/<path> for every code file)
    and return the manifest."""
    files = release_files(source)
    manifest = {"schema": MANIFEST_SCHEMA, "version": version,
                "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "files": {rel: hashlib.sha256((source / rel).read_bytes()).hexdigest() for rel in files}}
    envelope = sign_envelope(manifest, load_private_key(key_path))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST_MEMBER, json.dumps(envelope, indent=1, sort_keys=True).encode() + b"\n")
        for rel in files:
            _add(tar, RELEASE_FILES_PREFIX + rel, (source / rel).read_bytes())
    tmp.replace(out)
    return manifest


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), MEMBER_MODE, MEMBER_MTIME
    tar.addfile(info, io.BytesIO(data))


def _stations(path: Path) -> list[dict[str, Any]]:
    from pydantic import ValidationError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"--stations {path}: cannot read a JSON list of stations ({exc})") from None
    if not isinstance(data, list) or not data:
        raise UserError(f"--stations {path}: give a JSON list of stations (code, name, municipality, "
                        "registered_voters, language)")
    try:
        return [Station.model_validate(s).model_dump(mode="json") for s in data]
    except ValidationError as exc:
        raise UserError(f"--stations {path}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None

"""Provisioning a box for its station: install the election package, make the device key, write the receipt.

The receipt is what the technician hands to the CEC (ARCHITECTURE "Trust"): device id, station,
election, the device's public key and fingerprint, the software hash and the package hash, signed by the
device key itself (it proves the box holds the private half). The CEC's receiver learns device keys from
receipts (firmware/cec/receiver/keys.py) and binds each key to its station: a key can post documents for
that station only.

On a box with a TPM 2.0 (/dev/tpmrm0) the key is sealed to it (firmware/trust/tpm.py): the card holds
only the sealed blob, which no other TPM opens. Without one the key is a file (PKCS#8, mode 0600). The
receipt's ``key_storage`` says which, and a key kept from before says how it is kept.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import serialization

from firmware.common.identity import (
    SEALED_KEY_FILE,
    DeviceIdentity,
    has_device_key,
    load_or_provision,
    software_hash,
    software_version,
)
from firmware.trust.package import InstalledPackage, VerifiedPackage, install_package
from firmware.trust.signing import key_id
from firmware.trust.tpm import Tpm

RECEIPT_SCHEMA = "ballotbox.provisioning-receipt/1"
RECEIPT_FILE = "provisioning-receipt.json"


@dataclass(frozen=True)
class Provisioned:
    receipt: dict[str, Any]
    receipt_path: Path
    package: InstalledPackage
    key_made: bool  # False: the box had its key already (re-provisioned with a corrected package)


def provision(verified: VerifiedPackage, device_dir: Path, device_id: str, *, tpm: Tpm | None) -> Provisioned:
    """Make (or keep) the device key, sealed to `tpm` when there is one, then install the verified package,
    then sign and write the receipt. Nothing is touched before the package has passed every check
    (verify_package), and a TPM that fails leaves the package uninstalled."""
    key_made = not has_device_key(device_dir)
    identity = load_or_provision(device_dir, device_id, tpm=tpm)  # first: a TPM that fails installs nothing
    package = install_package(verified, device_dir)
    public = identity.key.public_key()
    body: dict[str, Any] = {
        "schema": RECEIPT_SCHEMA,
        "device_id": device_id,
        "station": verified.station,
        "election": verified.election.id,
        "key_id": key_id(public),
        "key_fingerprint": identity.fingerprint,
        "public_key_pem": public.public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "key_storage": key_storage(identity, tpm),
        "software_version": software_version(),
        "software_hash": software_hash(),
        "package_sha256": verified.sha256,
        "package_signer": verified.signer.source,
        "package_signer_test_only": verified.signer.test_only,
        "election_digest": verified.election.digest(),
        "provisioned_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    receipt = body | {"signature": base64.b64encode(identity.sign(rfc8785.dumps(body))).decode()}
    path = device_dir / RECEIPT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(receipt, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return Provisioned(receipt, path, package, key_made)


def key_storage(identity: DeviceIdentity, tpm: Tpm | None) -> str:
    """How the key is kept, as the receipt says it."""
    if identity.storage == "tpm":
        return (f"sealed to the TPM 2.0{f' ({tpm.tcti})' if tpm else ''}: the card holds only the sealed blob "
                f"{SEALED_KEY_FILE}, unsealed into memory when a service starts")
    if tpm is not None:
        return f"file (mode 0600), kept from before this box used its TPM ({tpm.tcti})"
    return "file (mode 0600); no TPM used"


def receipt_text(receipt: dict[str, Any], path: Path) -> list[str]:
    """The receipt as the technician reads it (and copies onto the handover form)."""
    lines = [
        f"device {receipt['device_id']} provisioned for station {receipt['station']}, election {receipt['election']}",
        f"  key fingerprint  {receipt['key_fingerprint']}",
        f"  key storage      {receipt['key_storage']}",
        f"  software         {receipt['software_version']} sha256 {receipt['software_hash']}",
        f"  package          sha256 {receipt['package_sha256']} (signed by {receipt['package_signer']})",
        f"  receipt          {path} (give it to the CEC: their receiver's --devices folder)",
    ]
    if receipt["package_signer_test_only"]:
        lines.append("  WARNING: the package is signed with a TEST ONLY key: for tests and training, never for "
                     "an election")
    return lines

"""Provisioning a box for its station: install the election package, make the device key, write the receipt.

The receipt is what the technician hands to the CEC (ARCHITECTURE "Trust"): device id, station,
election, the device's public key and fingerprint, the software hash and the package hash, signed by the
device key itself (it proves the box holds the private half). The CEC's receiver learns device keys from
receipts (firmware/cec/receiver/keys.py) and binds each key to its station: a key can post documents for
that station only.

The key is a file (PKCS#8, mode 0600) in the device's storage. A TPM 2.0 (/dev/tpmrm0) would keep it
from being copied off the card; the box says when one is present and that it is not used yet, rather than
pretend (``key_storage`` in the receipt).
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

from firmware.common.identity import load_or_provision, software_hash, software_version
from firmware.trust.package import InstalledPackage, VerifiedPackage, install_package
from firmware.trust.signing import key_id

RECEIPT_SCHEMA = "ballotbox.provisioning-receipt/1"
RECEIPT_FILE = "provisioning-receipt.json"
TPM_DEVICE = Path("/dev/tpmrm0")  # the kernel's TPM 2.0 resource manager


@dataclass(frozen=True)
class Provisioned:
    receipt: dict[str, Any]
    receipt_path: Path
    package: InstalledPackage
    key_made: bool  # False: the box had its key already (re-provisioned with a corrected package)


def provision(verified: VerifiedPackage, device_dir: Path, device_id: str, *,
              tpm_device: Path = TPM_DEVICE) -> Provisioned:
    """Install the verified package, then make (or keep) the device key, then sign and write the receipt.
    Nothing is touched before the package has passed every check (verify_package)."""
    package = install_package(verified, device_dir)
    key_made = not (device_dir / "device-key.pem").exists()
    identity = load_or_provision(device_dir, device_id)
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
        "key_storage": key_storage(tpm_device),
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


def key_storage(tpm_device: Path = TPM_DEVICE) -> str:
    if tpm_device.exists():
        return f"file (mode 0600); a TPM is present at {tpm_device} but not used yet"
    return "file (mode 0600); no TPM found"


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

"""The NIST exports at close: built, validated against NIST's schemas, signed, written; and checked again
by anyone who holds only the device's public key.

    build_cdf_exports(...)            -> CdfExports (two SignedDocuments: what the outbox stores and sends)
    exports_from_documents(er, cvr)   -> CdfExports again from the outbox's documents (after a power cut)
    write_cdf_exports(OUT, exports)   -> OUT/cdf/ (below)
    verify_cdf_exports(OUT/cdf, key)  -> [] or the problems found

OUT/cdf/ holds

- ``election-report.json``, ``cvr-report.json``: the signed bodies exactly (RFC 8785 canonical JSON, the
  bytes the outbox sends; firmware/common/transmission/documents.py);
- ``election-report.json.sig``, ``cvr-report.json.sig``: standard base64 of the Ed25519 signature over
  the exact bytes of the file beside it, one line;
- ``device-key.pub.pem`` and ``signing.json`` (algorithm, device id, key id, the fingerprint printed on
  every report, each file's SHA-256 and the CVRs' Merkle root): where an observer finds the key, which
  they compare with the fingerprint on the paper report before trusting it;
- ``cvr-records/<UniqueId>.json``: each CVR again on its own, as the leaf bytes of the Merkle tree
  (firmware/scanner/cdf/merkle.py), so one ballot's record can be shown to be in the signed set.

Nothing in the directory tells the order of casting (VVSG 2.0 10.2.2-B): the records are shuffled and
under random ids (firmware/scanner/cdf/cvr.py); their files are written in a second, independent random
order (so inode numbers and creation order follow neither the ballots nor the report); and every file
and directory gets one modification and access time, the CVR report's GeneratedDate (the election day,
00:00 UTC). The directory is made under a temporary name and renamed into place in one step: an
``OUT/cdf`` exists whole or not at all.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import random
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from config.election import Election
from firmware.common.durable import fsync_path
from firmware.common.identity import DeviceIdentity
from firmware.common.transmission.documents import (
    CVR_REPORT,
    ELECTION_REPORT,
    SignedDocument,
    canonical_json,
    claimed_station,
    document_hash,
    key_id,
    sign_document,
    verify_signature,
)
from firmware.scanner.cdf.cvr import cvr_merkle_root, cvr_report, noted_merkle_root
from firmware.scanner.cdf.merkle import RULE, leaf_hash
from firmware.scanner.cdf.results import CdfError, StyleCountsSource, election_report
from firmware.scanner.cdf.schema import reference_problems, schema_problems, validate

CDF_DIR = "cdf"
FILES = {ELECTION_REPORT: "election-report.json", CVR_REPORT: "cvr-report.json"}
SIGNATURE_SUFFIX = ".sig"
RECORDS_DIR = "cvr-records"
PUBLIC_KEY_FILE = "device-key.pub.pem"
SIGNING_FILE = "signing.json"


@dataclass(frozen=True)
class CdfExports:
    """The two signed NIST documents of a close, and the CVRs' Merkle root (also inside both)."""

    election_report: SignedDocument
    cvr_report: SignedDocument
    merkle_root: str

    def documents(self) -> tuple[SignedDocument, SignedDocument]:
        return self.election_report, self.cvr_report


@dataclass(frozen=True)
class CdfPaths:
    directory: Path
    election_report: Path
    cvr_report: Path
    records: Path
    public_key: Path


def build_cdf_exports(
    election: Election,
    tallies: Mapping[str, Any],
    counts: StyleCountsSource,
    records: Iterable[Mapping[str, Any]],
    *,
    identity: DeviceIdentity,
    generated: datetime,
    software_version: str,
    software_hash: str,
    voters_participated: int | None = None,
    is_test: bool | None = None,
    test_type: str | None = None,
    rng: random.Random | None = None,
) -> CdfExports:
    """Both reports of a close, validated against NIST's schemas, then signed with the device key.

    `records` are the store's cast_vote_records(), `tallies` firmware.scanner.tally.tally() of them,
    `counts` the store's counts(). Pure: no clock, no disk. Raises CdfError (inputs that disagree:
    a tally for a contest the election lacks, CVRs per style that differ from the counters...) or
    SchemaError (a builder bug: the document NIST's schema refuses, by JSON path)."""
    records = list(records)
    per_style = Counter(str(r.get("style")) if isinstance(r, Mapping) else "?" for r in records)
    cast = dict(getattr(counts, "cast", {}) or {})
    if any(per_style.get(sid, 0) != cast.get(sid, 0) for sid in set(per_style) | set(cast)):
        raise CdfError(f"cast-vote records per ballot style {dict(sorted(per_style.items()))} differ from the "
                       f"counters {dict(sorted(cast.items()))}; the store is inconsistent: do not publish, keep it "
                       "as evidence and call the operator")
    cvrs = cvr_report(election, records, device_id=identity.device_id, software_version=software_version, rng=rng)
    validate(CVR_REPORT, cvrs)
    noted = noted_merkle_root(cvrs)
    assert noted is not None, "cvr_report always notes its Merkle root"
    results = election_report(election, tallies, counts, device_id=identity.device_id, generated=generated,
                              software_version=software_version, software_hash=software_hash,
                              voters_participated=voters_participated, is_test=is_test, test_type=test_type,
                              cvr_merkle_root=noted[0])
    validate(ELECTION_REPORT, results)
    sign = {"device_id": identity.device_id, "key": identity.key}
    return CdfExports(sign_document(ELECTION_REPORT, results, **sign), sign_document(CVR_REPORT, cvrs, **sign),
                      noted[0])


def exports_from_documents(election_report: SignedDocument, cvr_report: SignedDocument) -> CdfExports:
    """The exports again from the two signed documents the outbox keeps (after a power cut between the
    close and the writing of OUT/cdf): never build them anew, which would shuffle and number the CVRs
    differently from what was signed and sent."""
    if (election_report.kind, cvr_report.kind) != (ELECTION_REPORT, CVR_REPORT):
        raise CdfError(f"expected an {ELECTION_REPORT} and a {CVR_REPORT}, got {election_report.kind} and "
                       f"{cvr_report.kind}")
    noted = noted_merkle_root(cvr_report.content())
    if noted is None:
        raise CdfError("the CVR report notes no Merkle root: it was not made by build_cdf_exports")
    return CdfExports(election_report, cvr_report, noted[0])


def write_cdf_exports(out_dir: Path, exports: CdfExports, identity: DeviceIdentity | Ed25519PublicKey, *,
                      rng: random.Random | None = None) -> CdfPaths:
    """Write OUT/cdf/ (module docstring) from the signed documents, byte for byte.

    Writing the same documents again (after a power cut, from the outbox) leaves an existing OUT/cdf/
    as it is; OUT/cdf/ holding other documents is refused (CdfError): exports are never overwritten."""
    out_dir = Path(out_dir)
    target = out_dir / CDF_DIR
    public_key = identity.key.public_key() if isinstance(identity, DeviceIdentity) else identity
    for doc in exports.documents():
        if doc.key_id != key_id(public_key):
            raise CdfError(f"the {doc.kind} is signed by key {doc.key_id[:16]}..., not by this device's key "
                           f"{key_id(public_key)[:16]}...; export the documents this box signed")
    paths = _paths(target)
    if target.exists():
        same = all((target / FILES[d.kind]).is_file() and (target / FILES[d.kind]).read_bytes() == d.body
                   for d in exports.documents())
        if same:
            return paths
        raise CdfError(f"{target}: holds exports of other documents; they are never overwritten: give another "
                       "output directory")
    if out_dir.exists() and not out_dir.is_dir():
        raise CdfError(f"{out_dir}: is a file, not a directory; give a directory for the exports")
    out_dir.mkdir(parents=True, exist_ok=True)
    chance = rng if rng is not None else secrets.SystemRandom()
    cvr_content = exports.cvr_report.content()
    stamp = datetime.fromisoformat(cvr_content["GeneratedDate"]).timestamp()
    work = Path(tempfile.mkdtemp(prefix=".cdf-", dir=out_dir))
    os.chmod(work, 0o755)  # mkdtemp makes it private; the export is for observers
    try:
        for doc in exports.documents():
            _write(work / FILES[doc.kind], doc.body)
            _write(work / (FILES[doc.kind] + SIGNATURE_SUFFIX), (doc.signature_b64 + "\n").encode("ascii"))
        pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        _write(work / PUBLIC_KEY_FILE, pem)
        _write(work / SIGNING_FILE, _signing(exports, public_key, identity))
        records = work / RECORDS_DIR
        records.mkdir()
        cvrs = list(cvr_content.get("CVR") or ())
        chance.shuffle(cvrs)  # a write order unrelated to the report's order (and to the ballots')
        for cvr in cvrs:
            _write(records / f"{cvr['UniqueId']}.json", canonical_json(cvr), sync=False)
        for path in [*records.iterdir(), records, *work.iterdir(), work]:
            os.utime(path, (stamp, stamp))
        os.sync()  # one flush for the thousands of record files (an fsync each costs seconds on a card)
        fsync_path(records)
        fsync_path(work)
        os.rename(work, target)
        fsync_path(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return paths


def verify_cdf_exports(directory: Path, public_key: Ed25519PublicKey) -> list[str]:
    """Everything an observer checks with the device's public key alone; [] when all holds.

    Each file's detached signature over its exact bytes; that the bytes are canonical JSON; NIST's
    schema; that both reports name the same station; the Merkle root recomputed from the CVRs against
    the one the CVR report notes and the one the election report carries; every file of cvr-records/
    a CVR of the report (none missing, none added, none altered); the ballots per style in the election
    report equal to the CVRs per style."""
    directory = Path(directory)
    if (directory / CDF_DIR).is_dir() and not (directory / FILES[ELECTION_REPORT]).exists():
        directory = directory / CDF_DIR
    problems: list[str] = []
    content: dict[str, Any] = {}
    for kind, name in FILES.items():
        doc = _verified(directory, kind, name, public_key, problems)
        if doc is not None:
            content[kind] = doc
    results, cvrs = content.get(ELECTION_REPORT), content.get(CVR_REPORT)
    if results is not None and cvrs is not None:
        a, b = claimed_station(ELECTION_REPORT, results), claimed_station(CVR_REPORT, cvrs)
        if a != b:
            problems.append(f"the election report is of station {a!r}, the CVR report of {b!r}")
    if cvrs is not None:
        problems += _check_cvrs(directory, cvrs, results)
    return problems


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (e.g. the state directory's device-key.pub.pem)."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise CdfError(f"{path}: not a readable PEM public key ({exc}); give the device's device-key.pub.pem") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CdfError(f"{path}: not an Ed25519 public key; give the device's device-key.pub.pem")
    return key


# -- verification ---------------------------------------------------------------------------------
def _verified(directory: Path, kind: str, name: str, public_key: Ed25519PublicKey,
              problems: list[str]) -> dict[str, Any] | None:
    path, sig_path = directory / name, directory / (name + SIGNATURE_SUFFIX)
    try:
        body = path.read_bytes()
        signature = base64.b64decode(sig_path.read_text(encoding="ascii").strip(), validate=True)
    except FileNotFoundError as exc:
        problems.append(f"{exc.filename}: missing")
        return None
    except (OSError, UnicodeDecodeError, binascii.Error) as exc:
        problems.append(f"{sig_path}: not a base64 signature ({exc})")
        return None
    if not verify_signature(public_key, body, signature):
        problems.append(f"{path}: the signature in {sig_path.name} does not verify with this public key "
                        f"(key id {key_id(public_key)[:16]}...): the file was altered or signed by another key")
        return None
    try:
        document = json.loads(body)
    except ValueError as exc:
        problems.append(f"{path}: signed but not JSON ({exc})")
        return None
    if canonical_json(document) != body:
        problems.append(f"{path}: not in RFC 8785 canonical form")
    problems += [f"{path}: {p}" for p in schema_problems(kind, document) or reference_problems(kind, document)]
    return document


def _check_cvrs(directory: Path, cvrs: Mapping[str, Any], results: Mapping[str, Any] | None) -> list[str]:
    problems: list[str] = []
    name = directory / FILES[CVR_REPORT]
    records = list(cvrs.get("CVR") or ())
    root = cvr_merkle_root(cvrs)
    noted = noted_merkle_root(cvrs)
    if noted is None:
        problems.append(f"{name}: its Notes state no Merkle root")
    elif noted != (root, len(records)):
        problems.append(f"{name}: the Merkle root recomputed from its {len(records)} CVRs is {root}, the report "
                        f"notes {noted[0]} over {noted[1]}")
    if results is not None:
        carried = [e.get("Value") for e in results.get("ExternalIdentifier", ())
                   if e.get("OtherType") == "cvr-merkle-root-sha256"]
        if carried != [root]:
            problems.append(f"{directory / FILES[ELECTION_REPORT]}: carries the CVRs' Merkle root {carried}, the CVRs "
                            f"give {root}")
        problems += _check_style_counts(results, records, directory)
    expected = Counter(leaf_hash(canonical_json(c)) for c in records)
    by_id = {str(c.get("UniqueId")): leaf_hash(canonical_json(c)) for c in records}
    folder = directory / RECORDS_DIR
    if not folder.is_dir():
        return [*problems, f"{folder}: missing"]
    found: Counter[bytes] = Counter()
    for path in sorted(folder.iterdir()):
        digest = leaf_hash(path.read_bytes())
        found[digest] += 1
        if digest not in expected:
            problems.append(f"{path}: not a CVR of the signed report (altered or added)")
        elif by_id.get(path.stem) != digest:
            problems.append(f"{path}: its name is not the UniqueId of the CVR it holds")
    missing = sum((expected - found).values())
    extra = sum((found - expected).values())
    if missing:
        problems.append(f"{folder}: {missing} CVR(s) of the signed report have no file (removed or altered)")
    if extra and not any("altered or added" in p for p in problems):
        problems.append(f"{folder}: {extra} file(s) more than the signed report's CVRs (duplicated)")
    return problems


def _check_style_counts(results: Mapping[str, Any], records: list[Any], directory: Path) -> list[str]:
    reported = {}
    for election in results.get("Election", ()):
        for counts in election.get("BallotCounts", ()):
            other = str(counts.get("OtherType", ""))
            if other.startswith("ballot-style:"):
                reported[other.removeprefix("ballot-style:")] = counts.get("BallotsCast")
    actual = Counter(str(c.get("BallotStyleId")) for c in records)
    if {s: n for s, n in reported.items() if n} != dict(actual):
        return [(f"{directory}: ballots cast per style in the election report {reported} differ from the CVRs "
                 f"per style {dict(actual)}")]
    return []


# -- writing --------------------------------------------------------------------------------------
def _paths(target: Path) -> CdfPaths:
    return CdfPaths(target, target / FILES[ELECTION_REPORT], target / FILES[CVR_REPORT], target / RECORDS_DIR,
                    target / PUBLIC_KEY_FILE)


def _signing(exports: CdfExports, public_key: Ed25519PublicKey, identity: Any) -> bytes:
    raw = public_key.public_bytes_raw()
    info = {
        "algorithm": "Ed25519",
        "signed": "the exact bytes of each file (RFC 8785 canonical JSON); NAME.sig = base64 of the signature",
        "device_id": exports.election_report.device_id,
        "station": exports.election_report.station,
        "key_id": key_id(raw),
        "public_key_hex": raw.hex(),
        "fingerprint": identity.fingerprint if isinstance(identity, DeviceIdentity) else None,
        "documents": {FILES[d.kind]: {"kind": d.kind, "sha256": document_hash(d.body), "signature": d.signature_b64}
                      for d in exports.documents()},
        "cvr_records": {"directory": RECORDS_DIR, "merkle_root_sha256": exports.merkle_root, "rule": RULE},
    }
    return (json.dumps(info, ensure_ascii=False, indent=1) + "\n").encode()


def _write(path: Path, data: bytes, sync: bool = True) -> None:
    with open(path, "xb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())

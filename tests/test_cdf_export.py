"""OUT/cdf/: signed NIST exports that verify with the device's public key alone, catch one altered byte,
a removed or an added CVR, and reveal nothing of the casting order on disk (VVSG 10.2.2-B)."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from cdf_support import (
    CLOSED_AT,
    SOFTWARE,
    counts_of,
    identity,
    labelled_records,
    synthetic_records,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from pyzbar.pyzbar import ZBarSymbol, decode

from config.election import Election
from firmware.common.identity import DeviceIdentity
from firmware.common.reports import (
    SignedResults,
    StyleCounts,
    build_header,
    build_results_report,
    render_raster,
)
from firmware.common.transmission.documents import (
    canonical_json,
    document_hash,
    key_id,
    sign_document,
    verify_signature,
)
from firmware.scanner.cdf.cvr import cast_vote_records_of
from firmware.scanner.cdf.export import (
    CdfExports,
    build_cdf_exports,
    exports_from_documents,
    verify_cdf_exports,
    write_cdf_exports,
)
from firmware.scanner.cdf.results import CdfError
from firmware.scanner.tally import tally

ELECTION_DAY = 1728172800  # 2024-10-06T00:00:00Z: the CVR report's GeneratedDate, every file's mtime


def exports_of(election: Election, records: list[dict[str, Any]], who: DeviceIdentity | None = None) -> CdfExports:
    return build_cdf_exports(election, tally(election, records), counts_of(election, records, {"N": 2}), records,
                             identity=who or identity(), generated=CLOSED_AT, voters_participated=160, **SOFTWARE)


@pytest.fixture(scope="module")
def exports(election: Election) -> CdfExports:
    return exports_of(election, synthetic_records(election, 120, seed=9))


@pytest.fixture
def written(exports: CdfExports, tmpfs_path: Path) -> Path:
    write_cdf_exports(tmpfs_path, exports, identity())
    return tmpfs_path / "cdf"


def test_the_export_directory_holds_the_signed_bodies_their_signatures_and_the_key(
        exports: CdfExports, written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == [
        "cvr-records", "cvr-report.json", "cvr-report.json.sig", "device-key.pub.pem", "election-report.json",
        "election-report.json.sig", "signing.json"]
    public_key = identity().key.public_key()
    for name, doc in (("election-report.json", exports.election_report), ("cvr-report.json", exports.cvr_report)):
        body = (written / name).read_bytes()
        assert body == doc.body  # the bytes the outbox sends, not a re-serialisation
        signature = base64.b64decode((written / f"{name}.sig").read_text())
        assert verify_signature(public_key, body, signature)
    signing = json.loads((written / "signing.json").read_text())
    assert signing["fingerprint"] == identity().fingerprint
    assert signing["documents"]["election-report.json"]["sha256"] == exports.election_report.hash
    assert signing["cvr_records"]["merkle_root_sha256"] == exports.merkle_root
    assert len(list((written / "cvr-records").iterdir())) == 120


def test_the_exports_verify_with_the_public_key_alone(written: Path) -> None:
    assert verify_cdf_exports(written, identity().key.public_key()) == []
    assert verify_cdf_exports(written.parent, identity().key.public_key()) == []  # OUT or OUT/cdf


def test_another_key_does_not_verify(written: Path) -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes([99]) * 32).public_key()
    problems = verify_cdf_exports(written, other)
    assert len(problems) == 2
    assert all("does not verify with this public key" in p for p in problems)


@pytest.mark.parametrize("name", ["election-report.json", "cvr-report.json"])
def test_a_single_altered_byte_of_a_report_is_found(written: Path, name: str) -> None:
    path = written / name
    data = bytearray(path.read_bytes())
    at = data.index(b'"Count":') + 8 if name.startswith("election") else data.index(b'"BallotStyleId":"') + 17
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    path.write_bytes(bytes(data))
    problems = verify_cdf_exports(written, identity().key.public_key())
    assert problems == [(f"{path}: the signature in {name}.sig does not verify with this public key (key id "
                         f"{exports_key_id()[:16]}...): the file was altered or signed by another key")]


def test_a_single_altered_byte_of_a_record_file_is_found(written: Path) -> None:
    path = sorted((written / "cvr-records").iterdir())[17]
    data = bytearray(path.read_bytes())
    at = data.index(b'"NumberVotes":1') + 14 if b'"NumberVotes":1' in data else data.index(b'"Selections":0') + 13
    data[at] = ord("2")
    path.write_bytes(bytes(data))
    assert verify_cdf_exports(written, identity().key.public_key()) == [
        f"{path}: not a CVR of the signed report (altered or added)",
        f"{written / 'cvr-records'}: 1 CVR(s) of the signed report have no file (removed or altered)"]


def test_a_removed_cvr_is_found(written: Path) -> None:
    victim = sorted((written / "cvr-records").iterdir())[3]
    victim.unlink()
    assert verify_cdf_exports(written, identity().key.public_key()) == [
        f"{written / 'cvr-records'}: 1 CVR(s) of the signed report have no file (removed or altered)"]


def test_an_added_cvr_is_found(election: Election, written: Path) -> None:
    records = written / "cvr-records"
    one = json.loads(min(records.iterdir()).read_bytes())
    forged = {**one, "UniqueId": "0f0e0d0c-0b0a-4998-8776-655443322110",
              "CurrentSnapshotId": "snapshot-0f0e0d0c-0b0a-4998-8776-655443322110"}
    forged["CVRSnapshot"] = [{**one["CVRSnapshot"][0], "@id": forged["CurrentSnapshotId"]}]
    (records / f"{forged['UniqueId']}.json").write_bytes(canonical_json(forged))
    copy = records / "11111111-2222-4333-8444-555555555555.json"
    shutil.copy(sorted(records.iterdir())[1], copy)  # a second copy of a real record: a ballot counted twice
    problems = verify_cdf_exports(written, identity().key.public_key())
    assert problems == [f"{records / (forged['UniqueId'] + '.json')}: not a CVR of the signed report (altered or added)",
                        f"{copy}: its name is not the UniqueId of the CVR it holds"]
    (records / f"{forged['UniqueId']}.json").unlink()
    assert verify_cdf_exports(written, identity().key.public_key()) == [
        f"{copy}: its name is not the UniqueId of the CVR it holds",
        f"{records}: 1 file(s) more than the signed report's CVRs (duplicated)"]


def test_a_cvr_removed_from_the_report_itself_breaks_its_signature_and_root(exports: CdfExports,
                                                                            tmpfs_path: Path) -> None:
    """Re-signing a shortened report takes another key: the box will not write it, and an observer's
    check with the device's key refuses it (and with the other key, the election report)."""
    content = exports.cvr_report.content()
    content["CVR"] = content["CVR"][1:]
    thief = DeviceIdentity("bbx-test-0001", Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32))
    forged = CdfExports(exports.election_report, sign_document("cvr-report", content, device_id="x", key=thief.key),
                        exports.merkle_root)
    with pytest.raises(CdfError, match="is signed by key"):
        write_cdf_exports(tmpfs_path, forged, identity())
    write_cdf_exports(tmpfs_path, exports, identity())
    target = tmpfs_path / "cdf"
    (target / "cvr-report.json").write_bytes(forged.cvr_report.body)
    (target / "cvr-report.json.sig").write_text(forged.cvr_report.signature_b64 + "\n")
    problems = verify_cdf_exports(target, identity().key.public_key())
    assert problems[0].endswith("cvr-report.json.sig does not verify with this public key (key id "
                                f"{exports_key_id()[:16]}...): the file was altered or signed by another key")
    problems = verify_cdf_exports(target, thief.key.public_key())
    assert problems[0].endswith("election-report.json.sig does not verify with this public key (key id "
                                f"{key_id(thief.key.public_key())[:16]}...): the file was altered or signed by "
                                "another key")


def test_the_files_reveal_nothing_of_the_casting_order(election: Election, tmpfs_path: Path) -> None:
    """Record k of a known casting order, recognised by its content: over 6 exports of 300 records,
    neither the file names, nor the directory listing order (on tmpfs it is the creation order
    reversed), nor the inode numbers, nor the report's array order follow k (|rho| < 0.3, 5 sigma for
    n = 300), and every file has one and the same mtime and atime."""
    records = labelled_records(election, 300)
    position_of = {canonical_json(r): k for k, r in enumerate(records)}
    rhos: dict[str, list[float]] = {"names": [], "listing": [], "inodes": [], "array": [], "array_vs_inodes": []}
    for run in range(6):
        out = tmpfs_path / f"run{run}"
        write_cdf_exports(out, exports_of(election, records), identity())
        folder = out / "cdf" / "cvr-records"
        # times first: listing a directory and reading a file update their atime (to the reader's clock)
        files = [Path(e.path) for d in (out / "cdf", folder) for e in os.scandir(d) if e.is_file()]
        stamps = {(s.st_mtime, s.st_atime) for s in map(os.stat, files)}
        assert len(files) == 306
        assert stamps == {(ELECTION_DAY, ELECTION_DAY)}
        assert {os.stat(p).st_mtime for p in (folder, out / "cdf")} == {ELECTION_DAY}
        listing = os.listdir(folder)
        contents = [json.loads((folder / name).read_bytes()) for name in listing]
        again = cast_vote_records_of(election, {"CVR": contents})
        k_of = {name: position_of[canonical_json(r)] for name, r in zip(listing, again)}
        inode = {name: os.stat(folder / name).st_ino for name in listing}
        report = json.loads((out / "cdf" / "cvr-report.json").read_bytes())
        array = [f"{cvr['UniqueId']}.json" for cvr in report["CVR"]]
        rhos["names"].append(_spearman([k_of[n] for n in sorted(listing)]))
        rhos["listing"].append(_spearman([k_of[n] for n in listing]))
        rhos["inodes"].append(_spearman([k_of[n] for n in sorted(listing, key=inode.get)]))
        rhos["array"].append(_spearman([k_of[n] for n in array]))
        rhos["array_vs_inodes"].append(_spearman([array.index(n) for n in sorted(listing, key=inode.get)]))
    for what, values in rhos.items():
        assert max(map(abs, values)) < 0.3, what


def test_writing_the_same_documents_again_keeps_the_export_and_other_documents_are_refused(
        election: Election, exports: CdfExports, written: Path) -> None:
    before = {p: p.read_bytes() for p in written.rglob("*") if p.is_file()}
    write_cdf_exports(written.parent, exports, identity())  # e.g. after a power cut, from the outbox
    assert {p: p.read_bytes() for p in written.rglob("*") if p.is_file()} == before
    other = exports_of(election, synthetic_records(election, 20, seed=1))
    with pytest.raises(CdfError, match="holds exports of other documents; they are never overwritten"):
        write_cdf_exports(written.parent, other, identity())
    a_file = written.parent / "plain-file"
    a_file.write_text("x")
    with pytest.raises(CdfError, match="is a file, not a directory"):
        write_cdf_exports(a_file, exports, identity())


def test_the_exports_are_rebuilt_from_the_outboxs_documents_byte_for_byte(exports: CdfExports, written: Path,
                                                                         tmpfs_path: Path) -> None:
    again = exports_from_documents(exports.election_report, exports.cvr_report)
    assert again == exports
    write_cdf_exports(tmpfs_path / "second", again, identity())
    first = {p.relative_to(written): p.read_bytes() for p in written.rglob("*") if p.is_file()}
    second_dir = tmpfs_path / "second" / "cdf"
    assert {p.relative_to(second_dir): p.read_bytes() for p in second_dir.rglob("*") if p.is_file()} == first
    with pytest.raises(CdfError, match="expected an election-report and a cvr-report"):
        exports_from_documents(exports.cvr_report, exports.election_report)


def test_records_that_disagree_with_the_counters_are_refused(election: Election) -> None:
    records = synthetic_records(election, 30, seed=2)
    with pytest.raises(CdfError, match=r"cast-vote records per ballot style .* differ from the counters"):
        build_cdf_exports(election, tally(election, records), counts_of(election, records[1:]), records,
                          identity=identity(), generated=CLOSED_AT, **SOFTWARE)


def test_the_printed_results_report_carries_a_qr_code_of_the_signed_hash_and_signature(
        election: Election, exports: CdfExports) -> None:
    doc = exports.election_report
    signed = SignedResults(station_code=doc.station, sha256=doc.hash, signature=doc.signature_b64)
    records = cast_vote_records_of(election, exports.cvr_report.content())
    header = build_header(election, device_id="bbx-test-0001", software_version="1", software_hash="5" * 64,
                          device_key_fingerprint=identity().fingerprint, printed_at=CLOSED_AT)
    counts = counts_of(election, records, {"N": 2})
    report = build_results_report(election, header, opened_at=CLOSED_AT.replace(hour=7), closed_at=CLOSED_AT,
                                  styles=[StyleCounts(s, counts.cast[s], counts.returned[s]) for s in counts.cast],
                                  tallies=tally(election, records), signed_results=signed)
    payload = _qr_codes(render_raster(report, election, 576))
    assert payload == [f"BALLOTBOX-ER1:089A012:{doc.hash}:{doc.signature_b64}"]
    prefix, station, sha256, signature = payload[0].split(":")
    assert (prefix, station, sha256) == ("BALLOTBOX-ER1", "089A012", document_hash(doc.body))
    assert verify_signature(identity().key.public_key(), doc.body, base64.b64decode(signature))
    assert _qr_codes(render_raster(report, election, 384)) == payload  # 58 mm paper too


def test_signed_results_refuse_what_is_not_a_hash_and_a_signature() -> None:
    with pytest.raises(ValueError, match="is not 64 lower-case hex digits"):
        SignedResults("089A012", "abc", base64.b64encode(bytes(64)).decode())
    with pytest.raises(ValueError, match="is not base64 of a 64-byte Ed25519 signature"):
        SignedResults("089A012", "a" * 64, "bm90IGEgc2lnbmF0dXJl")


def exports_key_id() -> str:
    return key_id(identity().key.public_key())


def _qr_codes(image: Image.Image) -> list[str]:
    return [code.data.decode() for code in decode(image.convert("L"), symbols=[ZBarSymbol.QRCODE])]


def _spearman(ranks: list[int]) -> float:
    """Spearman's rho between 0..n-1 and `ranks` (a permutation of 0..n-1)."""
    n = len(ranks)
    return 1 - 6 * sum((i - r) ** 2 for i, r in enumerate(ranks)) / (n * (n * n - 1))

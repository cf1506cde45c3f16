"""A simulated day exported at close as the lead wires it (store, service, device key), and the
observer's check `ballotbox cdf verify` with the public key alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from ballotbox.cli import main
from config.election import Election
from firmware.common.i18n import Messages
from firmware.common.reports import SignedResults, report_to_json
from firmware.scanner.cdf.cvr import cast_vote_records_of
from firmware.scanner.cdf.export import (
    exports_from_documents,
    verify_cdf_exports,
    write_cdf_exports,
)
from firmware.scanner.reporting import results_report
from firmware.scanner.store import ScannerStore
from firmware.scanner.tally import tally
from simulator.day import run_day


@pytest.fixture(scope="module")
def closed_day(election: Election, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("state")
    day = run_day(election, 10, 5, state, Messages.for_language(election.station.language))
    svc = day.service
    store = ScannerStore.for_election(state / "device" / "scanner.sqlite", election)  # run_day released it
    svc.store = store
    # the exports are the documents the closing transaction signed into the outbox, not built again
    docs = {e.document.kind: e.document for e in store.entries()}
    exports = exports_from_documents(docs["election-report"], docs["cvr-report"])
    records = store.cast_vote_records()
    assert len(exports.cvr_report.content()["CVR"]) == len(records)
    out = tmp_path_factory.mktemp("out")
    write_cdf_exports(out, exports, svc.identity)
    key = out / "device-key.pub.pem"
    key.write_bytes(svc.identity.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    yield {"day": day, "exports": exports, "out": out, "key": key}
    store.close()


def test_a_simulated_day_exports_what_the_box_counted(election: Election, closed_day: dict[str, Any]) -> None:
    day, exports = closed_day["day"], closed_day["exports"]
    assert day.agree
    results = exports.election_report.content()
    assert (results["IsTest"], results["TestType"]) == (True, "simulation")
    cast = {b["OtherType"]: b["BallotsCast"] for b in results["Election"][0]["BallotCounts"] if "OtherType" in b}
    assert (cast["ballot-style:N"], cast["ballot-style:V"]) == (10, 10)
    again = cast_vote_records_of(election, exports.cvr_report.content())
    assert tally(election, again) == day.service.tallies()
    assert verify_cdf_exports(closed_day["out"], day.service.identity.key.public_key()) == []


def test_the_results_report_of_the_day_carries_the_signed_hash(closed_day: dict[str, Any]) -> None:
    doc = closed_day["exports"].election_report
    signed = SignedResults(doc.station, doc.hash, doc.signature_b64)
    data = report_to_json(results_report(closed_day["day"].service, signed_results=signed))
    assert data["signed_results"] == {"station_code": "089A012", "sha256": doc.hash, "signature": doc.signature_b64}


def test_cdf_verify_exits_0_on_a_good_export_and_1_on_an_altered_one(
        closed_day: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out, key = closed_day["out"], closed_day["key"]
    assert main(["cdf", "verify", str(out), "--key", str(key)]) == 0
    printed = capsys.readouterr().out
    assert f"key fingerprint {closed_day['day'].service.identity.fingerprint}" in printed
    assert "exports verified" in printed
    victim = min((out / "cdf" / "cvr-records").iterdir())
    kept = victim.read_bytes()
    victim.unlink()
    try:
        assert main(["cdf", "verify", str(out / "cdf"), "--key", str(key)]) == 1
        assert "1 CVR(s) of the signed report have no file" in capsys.readouterr().out
    finally:
        victim.write_bytes(kept)


def test_cdf_verify_names_a_missing_directory_or_a_bad_key(closed_day: dict[str, Any], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdf", "verify", str(tmp_path / "nothing"), "--key", str(closed_day["key"])]) == 2
    assert "nothing: no such directory" in capsys.readouterr().err
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    assert main(["cdf", "verify", str(closed_day["out"]), "--key", str(bad)]) == 2
    assert "not a readable PEM public key" in capsys.readouterr().err

"""The NIST SP 1500-103 CastVoteRecordReport: valid against NIST's schema, the same ballots the tally
counted, random ids, no time, shuffled; and the RFC 6962 Merkle root over the records."""

from __future__ import annotations

import hashlib
import random
import re
import uuid
from typing import Any

import pytest
from cdf_support import labelled_records, synthetic_records

from config.election import Election
from firmware.common.transmission.documents import (
    CVR_REPORT,
    canonical_json,
    claimed_station,
)
from firmware.scanner.cdf.cvr import (
    cast_vote_records_of,
    cvr_merkle_root,
    cvr_report,
    noted_merkle_root,
)
from firmware.scanner.cdf.merkle import merkle_root
from firmware.scanner.cdf.results import CdfError
from firmware.scanner.cdf.schema import reference_problems, schema_problems
from firmware.scanner.tally import tally

CVR_KEYS = {"@type", "UniqueId", "ElectionId", "BallotStyleId", "BallotStyleUnitId", "CreatingDeviceId",
            "CurrentSnapshotId", "CVRSnapshot"}
ISO_TIME = re.compile(r"\d{2}:\d{2}(:\d{2})?")


@pytest.fixture(scope="module")
def records(election: Election) -> list[dict[str, Any]]:
    return synthetic_records(election, 400, seed=5)


@pytest.fixture(scope="module")
def report(election: Election, records: list[dict[str, Any]]) -> dict[str, Any]:
    return cvr_report(election, records, device_id="bbx-test-0001", software_version="1.0.0-test")


def test_the_cvr_report_of_a_realistic_day_validates_against_nists_schema(report: dict[str, Any]) -> None:
    assert schema_problems(CVR_REPORT, report) == []
    assert reference_problems(CVR_REPORT, report) == []
    assert len(report["CVR"]) == 400


def test_the_cvrs_are_the_ballots_the_tally_counted(election: Election, records: list[dict[str, Any]],
                                                    report: dict[str, Any]) -> None:
    again = cast_vote_records_of(election, report)
    assert sorted(map(canonical_json, again)) == sorted(map(canonical_json, records))
    assert tally(election, again) == tally(election, records)


def test_each_outcome_has_its_nist_status(election: Election) -> None:
    def entries(outcome: str, style: str = "N") -> list[dict[str, Any]]:
        cid = "nacelnik" if style == "N" else "vijece"
        record = {"style": style, "contests": {cid: {"outcome": outcome, "list": None, "candidates": []}}}
        cvr = cvr_report(election, [record], device_id="d", software_version="1")["CVR"][0]
        return [{k: v for k, v in e.items() if k != "@type"} for e in cvr["CVRSnapshot"][0]["CVRContest"]]

    assert entries("blank") == [{"ContestId": "contest-nacelnik", "Selections": 0, "Status": ["undervoted", "other"],
                                 "OtherStatus": "blank"}]
    assert entries("overvote")[0]["Status"] == ["overvoted", "invalidated-rules", "other"]
    assert entries("multiple_lists", "V") == [
        {"ContestId": "contest-vijece", "Selections": 0, "Status": ["overvoted", "invalidated-rules", "other"],
         "OtherStatus": "multiple_lists"},
        {"ContestId": "contest-vijece-preferences", "Selections": 0, "Status": ["invalidated-rules", "other"],
         "OtherStatus": "multiple_lists"}]
    record = {"style": "N", "contests": {"nacelnik": {"outcome": "ambiguous", "list": None, "candidates": []}}}
    snapshot = cvr_report(election, [record], device_id="d", software_version="1")["CVR"][0]["CVRSnapshot"][0]
    assert snapshot["Status"] == ["needs-adjudication"]


def test_the_station_is_the_polling_place_gpunit_with_its_code(election: Election, report: dict[str, Any]) -> None:
    assert claimed_station(CVR_REPORT, report) == "089A012"


def test_a_cvr_holds_no_time_sequence_or_batch(report: dict[str, Any]) -> None:
    for cvr in report["CVR"]:
        assert set(cvr) == CVR_KEYS
        assert not ISO_TIME.search(canonical_json(cvr).decode())
    assert report["GeneratedDate"] == "2024-10-06T00:00:00Z"  # the election day, not the time of the export


def test_ids_are_random_uuid4_and_unique(report: dict[str, Any]) -> None:
    ids = [cvr["UniqueId"] for cvr in report["CVR"]]
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids} == {4}
    assert all(cvr["CurrentSnapshotId"] == f"snapshot-{cvr['UniqueId']}" for cvr in report["CVR"])


def test_the_array_order_and_the_ids_carry_nothing_of_the_casting_order(election: Election) -> None:
    """Ballot k of a known order is recognised by its content; over many exports neither its position
    in the array nor the rank of its id follows k. For n = 300 a Spearman rho has a standard deviation
    of 1/sqrt(299) = 0.058: |rho| < 0.3 each time (5 sigma) and a mean under 0.05 over 30 exports (a
    stable leak of 0.05 would already be 5 sigma off). The same statistic on the records as given is 1."""
    records = labelled_records(election, 300)
    position_of = {canonical_json(r): k for k, r in enumerate(records)}
    assert _spearman(list(range(300)), [position_of[canonical_json(r)] for r in records]) == pytest.approx(1.0)
    by_position, by_id = [], []
    for _ in range(30):
        report = cvr_report(election, records, device_id="d", software_version="1")
        order = [position_of[canonical_json(r)] for r in cast_vote_records_of(election, report)]
        ids = [cvr["UniqueId"] for cvr in report["CVR"]]
        id_rank = {i: r for r, i in enumerate(sorted(ids))}
        by_position.append(_spearman(list(range(300)), order))
        by_id.append(_spearman(order, [id_rank[i] for i in ids]))
    for rhos in (by_position, by_id):
        assert max(map(abs, rhos)) < 0.3
        assert abs(sum(rhos) / len(rhos)) < 0.05


def test_the_shuffle_is_the_rng_given_and_otherwise_the_systems(election: Election) -> None:
    records = labelled_records(election, 50)
    a = cvr_report(election, records, device_id="d", software_version="1", rng=random.Random(4))
    b = cvr_report(election, records, device_id="d", software_version="1", rng=random.Random(4))
    c = cvr_report(election, records, device_id="d", software_version="1")
    assert a == b  # tests can pin it
    assert a["CVR"] != c["CVR"]


def test_a_record_the_election_cannot_hold_is_a_clear_error(election: Election) -> None:
    bad = {"style": "X", "contests": {"nacelnik": {"outcome": "valid", "list": None, "candidates": ["m1"]}}}
    with pytest.raises(CdfError, match=r"record #1 .*: ballot style 'X' is not in election LI2024"):
        cvr_report(election, [bad], device_id="d", software_version="1")
    bad = {"style": "N", "contests": {"nacelnik": {"outcome": "valid", "list": None, "candidates": ["z9"]}}}
    with pytest.raises(CdfError, match=r"contest 'nacelnik': candidates \['z9'\] are not in the contest"):
        cvr_report(election, [bad], device_id="d", software_version="1")
    bad = {"style": "V", "contests": {"vijece": {"outcome": "valid", "list": "l1", "candidates": ["l2c1"]}}}
    with pytest.raises(CdfError, match=r"one list of the contest and at most 3 of its candidates"):
        cvr_report(election, [bad], device_id="d", software_version="1")


# -- the Merkle root ------------------------------------------------------------------------------
def test_the_merkle_root_follows_rfc_6962() -> None:
    def h(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    a, b, c = b"a", b"b", b"c"
    leaf = {x: h(b"\x00" + x) for x in (a, b, c)}
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()
    assert merkle_root([a]) == leaf[a].hex()
    assert merkle_root([a, b]) == h(b"\x01" + leaf[a] + leaf[b]).hex()
    # three leaves split 2 + 1 (the largest power of two below 3)
    assert merkle_root([a, b, c]) == h(b"\x01" + h(b"\x01" + leaf[a] + leaf[b]) + leaf[c]).hex()
    assert merkle_root([b, a]) != merkle_root([a, b])


def test_the_report_notes_the_root_of_its_cvrs_in_their_order(report: dict[str, Any]) -> None:
    root, leaves = noted_merkle_root(report) or ("", 0)
    assert (root, leaves) == (cvr_merkle_root(report), 400)
    assert root == merkle_root(canonical_json(c) for c in report["CVR"])
    altered = {**report, "CVR": report["CVR"][1:]}
    assert cvr_merkle_root(altered) != root


def _spearman(x: list[int], y: list[int]) -> float:
    """Spearman's rho of two rankings without ties (both are permutations of 0..n-1 here)."""
    n = len(x)
    rank_x = {v: r for r, v in enumerate(sorted(x))}
    rank_y = {v: r for r, v in enumerate(sorted(y))}
    d2 = sum((rank_x[a] - rank_y[b]) ** 2 for a, b in zip(x, y))
    return 1 - 6 * d2 / (n * (n * n - 1))

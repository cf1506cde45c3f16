"""The NIST SP 1500-100 ElectionReport of a station: valid against NIST's schema, every count equal to the
tally, the station where the transmission contract looks for it, every @id reference resolved."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest
from cdf_support import CLOSED_AT, SOFTWARE, counts_of, synthetic_records

from config.election import Election
from firmware.common.transmission.documents import ELECTION_REPORT, claimed_station
from firmware.scanner.cdf.results import CdfError, election_report
from firmware.scanner.cdf.schema import reference_problems, schema_problems
from firmware.scanner.tally import tally


@pytest.fixture(scope="module")
def day(election: Election) -> dict[str, Any]:
    records = synthetic_records(election, 400, seed=11)
    tallies = tally(election, records)
    counts = counts_of(election, records, returned={"N": 3, "V": 5})
    report = election_report(election, tallies, counts, device_id="bbx-test-0001", generated=CLOSED_AT,
                             voters_participated=215, cvr_merkle_root="ab" * 32, **SOFTWARE)
    return {"records": records, "tallies": tallies, "counts": counts, "report": report}


def test_the_election_report_of_a_realistic_day_validates_against_nists_schema(day: dict[str, Any]) -> None:
    assert schema_problems(ELECTION_REPORT, day["report"]) == []


def test_the_large_council_election_validates_too(large_election: Election) -> None:
    records = synthetic_records(large_election, 120, seed=3)
    report = election_report(large_election, tally(large_election, records), counts_of(large_election, records),
                             device_id="bbx-test-0001", generated=CLOSED_AT, **SOFTWARE)
    assert schema_problems(ELECTION_REPORT, report) == []


def test_the_station_is_the_polling_place_gpunit_the_transmission_contract_reads(
        election: Election, day: dict[str, Any]) -> None:
    assert claimed_station(ELECTION_REPORT, day["report"]) == election.station.code == "089A012"
    station = _by_id(day["report"])["gpu-station-089A012"]
    assert station["Type"] == "polling-place"
    assert station["VotersRegistered"] == 1200
    assert station["VotersParticipated"] == 215


def test_every_vote_count_equals_the_tally(election: Election, day: dict[str, Any]) -> None:
    contests = {c["@id"]: c for c in day["report"]["Election"][0]["Contest"]}
    mayor, council = day["tallies"]["nacelnik"], day["tallies"]["vijece"]
    assert _counts(contests["contest-nacelnik"]) == {f"selection-nacelnik-{cid}": n
                                                     for cid, n in mayor.candidate_votes.items()}
    assert _counts(contests["contest-vijece"]) == {f"selection-vijece-{lid}": n for lid, n in council.list_votes.items()}
    assert _counts(contests["contest-vijece-preferences"]) == {
        f"selection-vijece-preferences-{cid}": n for cid, n in council.candidate_votes.items()}
    assert sum(council.list_votes.values()) == council.valid > 0
    assert sum(council.candidate_votes.values()) > 0


def test_invalid_ballots_by_reason_ambiguous_turnout_and_returned_ballots_equal_the_counts(
        election: Election, day: dict[str, Any]) -> None:
    ballot_counts = {(b["Type"], b.get("OtherType")): b for b in day["report"]["Election"][0]["BallotCounts"]}
    counts = day["counts"]
    assert ballot_counts[("total", None)]["BallotsCast"] == counts.total_cast == 400
    assert ballot_counts[("total", None)]["BallotsRejected"] == 8
    for style in ("N", "V"):
        entry = ballot_counts[("other", f"ballot-style:{style}")]
        assert (entry["BallotsCast"], entry["BallotsRejected"]) == (counts.cast[style], counts.returned[style])
    for cid, t in day["tallies"].items():
        named = {name: ballot_counts[("other", f"contest:{cid}:{name}")]["BallotsCast"]
                 for name in ("ballots", "valid", "invalid:blank", "invalid:overvote", "invalid:multiple_lists",
                              "ambiguous")}
        assert named == {"ballots": t.ballots, "valid": t.valid, "invalid:blank": t.invalid_by_reason["blank"],
                         "invalid:overvote": t.invalid_by_reason["overvote"],
                         "invalid:multiple_lists": t.invalid_by_reason["multiple_lists"], "ambiguous": t.ambiguous}
    contests = {c["@id"]: c for c in day["report"]["Election"][0]["Contest"]}
    mayor, council = day["tallies"]["nacelnik"], day["tallies"]["vijece"]
    assert mayor.invalid_by_reason["overvote"] > 0 and council.invalid_by_reason["multiple_lists"] > 0
    other = contests["contest-nacelnik"]["OtherCounts"][0]
    assert (other["Undervotes"], other["Overvotes"]) == (mayor.invalid_by_reason["blank"],
                                                         mayor.invalid_by_reason["overvote"])
    other = contests["contest-vijece"]["OtherCounts"][0]
    assert (other["Undervotes"], other["Overvotes"]) == (council.invalid_by_reason["blank"],
                                                         council.invalid_by_reason["multiple_lists"])


def test_lists_are_parties_and_candidates_are_persons_on_their_list(election: Election, day: dict[str, Any]) -> None:
    objects = _by_id(day["report"])
    council = election.contest("vijece")
    assert len(day["report"]["Party"]) == len(council.lists) == 12
    first = council.lists[0].candidates[0]
    candidate = objects[f"candidate-vijece-{first.id}"]
    assert candidate["PartyId"] == "party-vijece-l1"
    assert objects[candidate["PersonId"]]["FullName"]["Text"][0]["Content"] == first.name.latn
    assert objects["party-vijece-l1"]["Name"]["Text"][1] == {"@type": "ElectionResults.LanguageString",
                                                             "Language": "und-Cyrl", "Content": council.lists[0].name.cyrl}


def test_every_id_is_unique_and_every_reference_names_an_object_of_an_allowed_type(day: dict[str, Any]) -> None:
    assert reference_problems(ELECTION_REPORT, day["report"]) == []
    broken = copy.deepcopy(day["report"])
    broken["Election"][0]["Candidate"][0]["PersonId"] = "party-vijece-l1"
    broken["Election"][0]["Contest"][1]["ContestSelection"][0]["PartyIds"] = ["party-vijece-l99"]
    broken["Person"][1]["@id"] = broken["Person"][0]["@id"]
    assert reference_problems(ELECTION_REPORT, broken) == [
        "$.Person[1].@id: 'person-nacelnik-m1' is the @id of another object too",
        "$.Election[0].Contest[1].ContestSelection[0].PartyIds[0]: 'party-vijece-l99' is the @id of nothing",
        ("$.Election[0].Candidate[0].PersonId: 'party-vijece-l1' is a ElectionResults.Party, the schema allows "
         "['ElectionResults.Person'] here"),
        "$.Election[0].Candidate[1].PersonId: 'person-nacelnik-m2' is the @id of nothing",
    ]


def test_the_report_says_what_kind_of_results_it_is(election: Election, day: dict[str, Any]) -> None:
    report = day["report"]
    assert (report["Format"], report["Status"], report["IsTest"]) == ("summary-contest", "unofficial-partial", False)
    assert report["GeneratedDate"] == "2024-10-06T19:04:31Z"
    identifiers = {e["OtherType"]: e["Value"] for e in report["ExternalIdentifier"]}
    assert identifiers == {"software-hash-sha256": "5" * 64, "election-package-hash-sha256": election.digest(),
                           "cvr-merkle-root-sha256": "ab" * 32}


def test_a_simulated_day_is_marked_as_a_test(election: Election, day: dict[str, Any]) -> None:
    report = election_report(election, day["tallies"], day["counts"], device_id="sim", generated=CLOSED_AT,
                             is_test=True, test_type="simulation", **SOFTWARE)
    assert (report["IsTest"], report["TestType"]) == (True, "simulation")
    test_package = election.model_copy(update={"mode": "test"})
    assert election_report(test_package, day["tallies"], day["counts"], device_id="sim", generated=CLOSED_AT,
                           **SOFTWARE)["IsTest"] is True


def test_a_tally_for_a_contest_the_election_lacks_is_a_clear_error(election: Election, day: dict[str, Any]) -> None:
    tallies = dict(day["tallies"]) | {"senat": day["tallies"]["nacelnik"]}
    with pytest.raises(CdfError, match=r"tallies for contest\(s\) \['senat'\], which election LI2024 lacks"):
        election_report(election, tallies, day["counts"], device_id="d", generated=CLOSED_AT, **SOFTWARE)


def test_a_missing_tally_and_counts_that_disagree_are_refused(election: Election, day: dict[str, Any]) -> None:
    with pytest.raises(CdfError, match=r"no tally for contest\(s\) \['vijece'\]"):
        election_report(election, {"nacelnik": day["tallies"]["nacelnik"]}, day["counts"], device_id="d",
                        generated=CLOSED_AT, **SOFTWARE)
    short = counts_of(election, day["records"][1:])
    with pytest.raises(CdfError, match=r"contest '(nacelnik|vijece)': valid .* but ballot style '[NV]' has \d+ ballots"):
        election_report(election, day["tallies"], short, device_id="d", generated=CLOSED_AT, **SOFTWARE)
    with pytest.raises(CdfError, match="has no time zone"):
        election_report(election, day["tallies"], day["counts"], device_id="d", generated=datetime(2024, 10, 6, 19),
                        **SOFTWARE)


def _counts(contest: dict[str, Any]) -> dict[str, int]:
    return {s["@id"]: s["VoteCounts"][0]["Count"] for s in contest["ContestSelection"]}


def _by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "@id" in node:
                found[node["@id"]] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report)
    return found

"""NIST's schemas in the project are NIST's, unchanged; what they refuse is named by JSON path."""

from __future__ import annotations

import hashlib

import pytest

from firmware.common.transmission.documents import CVR_REPORT, ELECTION_REPORT
from firmware.scanner.cdf.schema import (
    SCHEMA_DIR,
    SchemaError,
    schema_problems,
    validate,
)

# The SHA-256 of the files as NIST publishes them (config/nist_cdf/README.md).
UNCHANGED = {
    "NIST_V2_election_results_reporting.json": "55c1c6382bf5ba369ae05d58c3f4bab6b487a2e8c01720ee87209b9a85e5d3db",
    "NIST_V0_cast_vote_records.json": "f1b037e6303450b451dcf5c7a0db2ab025c5869376242ed772cb4f05b1944e89",
    "LICENSE-NIST.md": "2f5fb7d6ef06462896505a462120187f21a4b3c10e12ad31acc1b9e92ae00618",
}


@pytest.mark.parametrize("name", sorted(UNCHANGED))
def test_the_nist_files_are_unchanged_copies_with_their_notice(name: str) -> None:
    assert hashlib.sha256((SCHEMA_DIR / name).read_bytes()).hexdigest() == UNCHANGED[name]
    assert name in (SCHEMA_DIR / "README.md").read_text()


def test_a_refused_value_is_named_by_its_json_path_inside_a_one_of() -> None:
    report = {"@type": "CVR.CastVoteRecordReport", "Version": "1.0.0", "GeneratedDate": "2024-10-06T00:00:00Z",
              "ReportGeneratingDeviceIds": ["d"], "ReportingDevice": [{"@type": "CVR.ReportingDevice", "@id": "d"}],
              "GpUnit": [{"@type": "CVR.GpUnit", "@id": "g", "Type": "polling-station"}],
              "Election": [{"@type": "CVR.Election", "@id": "e", "ElectionScopeId": "g", "Contest": [
                  {"@type": "CVR.CandidateContest", "@id": "c", "VotesAllowed": "one",
                   "ContestSelection": [{"@type": "CVR.CandidateSelection", "@id": "s"}]}]}]}
    assert schema_problems(CVR_REPORT, report) == [
        "$.Election[0].Contest[0].VotesAllowed: 'one' is not of type 'integer'",
        ("$.GpUnit[0].Type: 'polling-station' is not one of ['combined-precinct', 'other', 'polling-place', "
        "'precinct', 'split-precinct', 'vote-center']"),
    ]
    with pytest.raises(SchemaError, match=r"does not validate against NIST's schema NIST_V0_cast_vote_records.json:"
                                          r"\n  \$\.Election\[0\]\.Contest\[0\]\.VotesAllowed"):
        validate(CVR_REPORT, report)


def test_a_missing_required_field_is_named() -> None:
    problems = schema_problems(ELECTION_REPORT, {"@type": "ElectionResults.ElectionReport"})
    assert problems[:2] == ["$: 'Format' is a required property", "$: 'GeneratedDate' is a required property"]
    assert len(problems) == 8


def test_there_is_no_schema_for_other_kinds() -> None:
    with pytest.raises(SchemaError, match="no NIST schema for document kind 'turnout'"):
        validate("turnout", {})


def test_the_compiled_validator_is_installed_so_closing_does_not_spend_seconds_on_the_schema():
    from firmware.scanner.cdf.schema import _fast_validator

    assert _fast_validator(ELECTION_REPORT) is not None
    assert _fast_validator(CVR_REPORT) is not None

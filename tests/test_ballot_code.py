"""The ballot code is authenticated: forged, copied-from-elsewhere and test codes are told apart."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.election import Election
from firmware.ballots import load_signing_key
from omr.ballot_code import make_code, verify_code
from omr.types import Reason


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return load_signing_key()


def test_genuine_code_verifies(election: Election, key: Ed25519PrivateKey) -> None:
    code, reasons = verify_code(make_code(election, "V", key), election)
    assert reasons == [] and code is not None
    assert (code.election_id, code.station, code.style, code.mode) == ("LI2024", "089A012", "V", "official")


def test_code_of_another_station_is_detected(election: Election, key: Ed25519PrivateKey) -> None:
    other = election.model_copy(update={"station": election.station.model_copy(update={"code": "089A013"})})
    assert verify_code(make_code(other, "N", key), election)[1] == [Reason.OTHER_STATION]


def test_code_of_another_election_is_detected(election: Election, key: Ed25519PrivateKey) -> None:
    other = election.model_copy(update={"date": "2028-10-01"})
    assert verify_code(make_code(other, "N", key), election)[1] == [Reason.OTHER_ELECTION]


def test_test_ballot_on_official_day_is_detected(election: Election, key: Ed25519PrivateKey) -> None:
    assert verify_code(make_code(election, "N", key, mode="test"), election)[1] == [Reason.TEST_BALLOT]


def test_edited_code_fails_the_signature(election: Election, key: Ed25519PrivateKey) -> None:
    payload = make_code(election, "N", key).replace(":N:", ":V:")
    assert verify_code(payload, election) == (None, [Reason.CODE_FORGED])


def test_code_signed_with_another_key_is_forged(election: Election) -> None:
    assert verify_code(make_code(election, "N", Ed25519PrivateKey.generate()), election) == (None, [Reason.CODE_FORGED])


@pytest.mark.parametrize("payload", ["", "hello", "BB1:LI2024:089A012:N:O:0000", "https://example.org/x", "BB1:" + ":" * 6])
def test_other_payloads_are_not_ballot_codes(payload: str, election: Election) -> None:
    code, reasons = verify_code(payload, election)
    assert code is None and reasons in ([Reason.NO_CODE], [Reason.CODE_FORGED])

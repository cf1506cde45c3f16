"""Signed documents declare their own kind and station, so both are covered by the signature."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.common.transmission.documents import (
    ELECTION_REPORT,
    TURNOUT,
    DocumentError,
    claimed_kind,
    sign_document,
    verify_signature,
)
from simulator.bench_receiver import station_documents


def test_a_document_that_does_not_declare_its_kind_is_not_signed() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(DocumentError, match="a top-level \"kind\": 'turnout'"):
        sign_document(TURNOUT, {"station": "001A001"}, device_id="box-1", key=key)
    with pytest.raises(DocumentError, match="ElectionResults.ElectionReport"):
        sign_document(ELECTION_REPORT, {"@type": "CVR.CastVoteRecordReport"}, device_id="box-1", key=key)
    assert claimed_kind(TURNOUT, {"kind": "polls-closed"}) is None


def test_a_stations_six_documents_name_it_and_verify_with_the_public_key_alone() -> None:
    key = Ed25519PrivateKey.generate()
    docs = station_documents("001A001", "box-1", key)
    assert [d.kind for d in docs] == ["polls-opened", "turnout", "turnout", "turnout", "polls-closed",
                                      "election-report"]
    assert {d.station for d in docs} == {"001A001"}
    assert all(verify_signature(key.public_key(), d.body, d.signature) for d in docs)
    assert not verify_signature(key.public_key(), docs[0].body + b" ", docs[0].signature)

"""The ballot code is authenticated: forged, copied-from-elsewhere and test codes are told apart."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.election import Election
from firmware.cec.ballots import load_signing_key
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


def test_code_fits_a_version_5_qr(election: Election, large_election: Election, key: Ed25519PrivateKey) -> None:
    """The content digest is signed, not printed: the payload stays a version-5 QR (1.2 mm modules)."""
    import segno

    for e in (election, large_election):
        for style in e.ballot_styles:
            payload = make_code(e, style.id, key)
            assert len(payload) <= 122 and segno.make(payload, error="m").version <= 5


def test_signature_encoding_round_trips() -> None:
    from omr.ballot_code import SIG_LEN, decode_signature, encode_signature

    for raw in (bytes(64), b"\xff" * 64, bytes(range(64))):
        text = encode_signature(raw)
        assert len(text) == SIG_LEN and decode_signature(text) == raw
    with pytest.raises(ValueError):
        decode_signature("Z" * SIG_LEN)  # over 512 bits
    with pytest.raises(ValueError):
        decode_signature("a" * SIG_LEN)  # not in the alphabet


def test_edited_signature_or_tag_is_rejected(election: Election, key: Ed25519PrivateKey) -> None:
    payload = make_code(election, "N", key)
    head, sig = payload[:-94], payload[-94:]
    flipped = head + ("1" if sig[0] != "1" else "2") + sig[1:]
    assert verify_code(flipped, election) == (None, [Reason.CODE_FORGED])
    parts = payload.split(":", 6)
    parts[5] = f"{(int(parts[5], 16) + 1) % 4096:03X}"  # the tag of other content: another election's code
    assert verify_code(":".join(parts), election) == (None, [Reason.OTHER_ELECTION])
    parts = payload.split(":", 6)
    parts[1] = "XX2030"
    assert verify_code(":".join(parts), election) == (None, [Reason.OTHER_ELECTION])

"""The ballot code: a QR on every ballot naming election, polling station, ballot style and mode,
authenticated by the CEC's Ed25519 signature.

    BB1:<ELECTION>:<STATION>:<STYLE>:<O|T>:<CONTENT16>:<SIGNATURE, base32 without padding>

CONTENT16 is the first 16 hex digits of the election's content digest (contests and styles as printed),
so a code lifted from another election's ballots - or from a reprint with other candidates - fails even
when its signature is genuine. There is deliberately no serial number: a per-ballot number would let
anyone who saw a voter's ballot find it in the cast-vote records.

Verification is pure (no clock, no disk): the public key comes from the election definition.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from config.election import Election
from omr.types import Reason

PREFIX = "BB1"
MODES = {"official": "O", "test": "T"}


@dataclass(frozen=True)
class BallotCode:
    election_id: str
    station: str
    style: str
    mode: str  # "official" | "test"
    content: str  # 16 hex digits


def make_code(election: Election, style_id: str, private_key: Ed25519PrivateKey, mode: str | None = None) -> str:
    """The payload printed on ballots of `style_id` for the election's station (needs the CEC's key)."""
    election.style(style_id)  # KeyError for an unknown style, before signing anything
    mode = mode or election.mode
    body = ":".join([PREFIX, election.id.upper(), election.station.code, style_id, MODES[mode],
                     election.content_digest()[:16].upper()])
    signature = private_key.sign(body.encode("ascii"))
    return body + ":" + base64.b32encode(signature).decode("ascii").rstrip("=")


def verify_code(payload: str, election: Election) -> tuple[BallotCode | None, list[Reason]]:
    """Parse and check a scanned payload against this station's election.

    Returns the code and an empty list when it is a genuine ballot of this station, election and mode;
    otherwise the reasons it is foreign. The signature is checked first: an unsigned claim proves nothing.
    """
    parts = payload.strip().split(":")
    if len(parts) != 7 or parts[0] != PREFIX:
        return None, [Reason.NO_CODE]
    _, election_id, station, style, mode_letter, content, sig_b32 = parts
    try:
        signature = base64.b32decode(sig_b32 + "=" * (-len(sig_b32) % 8))
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(election.ballot_code_key.public_key_hex))
        key.verify(signature, ":".join(parts[:6]).encode("ascii"))
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        return None, [Reason.CODE_FORGED]
    mode = {v: k for k, v in MODES.items()}.get(mode_letter)
    if mode is None:
        return None, [Reason.CODE_FORGED]
    code = BallotCode(election_id, station, style, mode, content)
    reasons: list[Reason] = []
    if election_id != election.id.upper() or content != election.content_digest()[:16].upper():
        reasons.append(Reason.OTHER_ELECTION)
    if station != election.station.code:
        reasons.append(Reason.OTHER_STATION)
    if mode != election.mode:
        reasons.append(Reason.TEST_BALLOT)
    if style not in {s.id for s in election.ballot_styles}:
        reasons.append(Reason.UNKNOWN_STYLE)
    return code, reasons

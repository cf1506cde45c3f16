"""The ballot code: a QR on every ballot naming election, polling station, ballot style and mode,
authenticated by the CEC's Ed25519 signature.

    printed:  BB2:<ELECTION>:<STATION>:<STYLE>:<O|T>:<TAG>:<SIGNATURE>
    signed:   BB2:<ELECTION>:<STATION>:<STYLE>:<O|T>:<CONTENT16>

CONTENT16 is the first 16 hex digits of the election's content digest (contests and styles as printed).
It is signed but not printed: the verifier knows its own election's digest and recomputes it, so a code
lifted from another election's ballots - or from a reprint with other candidates - fails the signature
even when the signature is genuine. Leaving it out keeps the code small enough - a version-5 QR, level M,
up to 122 alphanumeric characters (election ids up to 7 characters) - for modules of 1.2 mm, which a
100 dpi, blurred capture still resolves.

TAG is the first 3 hex digits of CONTENT16, printed only to tell "a ballot of another election" (tag or
election id not ours: that election's digest is unknown here, so its signature cannot be checked - the
sheet is foreign either way) from "forged" (ours, but the signature fails). A reprint of this election
with other content whose tag collides (1 in 4096) reads as forged: still rejected.

SIGNATURE is the 64-byte signature as one base-44 number, 94 characters of the QR alphanumeric set
without space (it may hold ':': it is the last field, split off after the sixth colon). There is deliberately no serial number: a per-ballot number would let anyone
who saw a voter's ballot find it in the cast-vote records.

Verification is pure (no clock, no disk): the public key comes from the election definition.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from config.election import Election
from omr.types import Reason

PREFIX = "BB2"
MODES = {"official": "O", "test": "T"}
TAG_LEN = 3
SIG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%*+-./:"  # QR alphanumeric without space
SIG_LEN = 94  # 44 ** 94 > 2 ** 512
_SIG_INDEX = {c: i for i, c in enumerate(SIG_ALPHABET)}


@dataclass(frozen=True)
class BallotCode:
    election_id: str
    station: str
    style: str
    mode: str  # "official" | "test"
    content: str  # 16 hex digits: this election's, which the signature proved


def _content16(election: Election) -> str:
    return election.content_digest()[:16].upper()


def encode_signature(signature: bytes) -> str:
    n = int.from_bytes(signature, "big")
    out = []
    for _ in range(SIG_LEN):
        n, r = divmod(n, len(SIG_ALPHABET))
        out.append(SIG_ALPHABET[r])
    return "".join(reversed(out))


def decode_signature(text: str) -> bytes:
    """ValueError for a wrong length, a character outside the alphabet or a number over 512 bits."""
    if len(text) != SIG_LEN:
        raise ValueError("signature length")
    n = 0
    for c in text:
        if c not in _SIG_INDEX:
            raise ValueError(f"character {c!r} in signature")
        n = n * len(SIG_ALPHABET) + _SIG_INDEX[c]
    if n >> 512:
        raise ValueError("signature over 512 bits")
    return n.to_bytes(64, "big")


def _body(election_id: str, station: str, style: str, mode_letter: str, content16: str) -> bytes:
    return ":".join([PREFIX, election_id, station, style, mode_letter, content16]).encode("ascii")


def make_code(election: Election, style_id: str, private_key: Ed25519PrivateKey, mode: str | None = None) -> str:
    """The payload printed on ballots of `style_id` for the election's station (needs the CEC's key)."""
    election.style(style_id)  # KeyError for an unknown style, before signing anything
    mode = mode or election.mode
    fields = [election.id.upper(), election.station.code, style_id, MODES[mode]]
    content = _content16(election)
    signature = private_key.sign(_body(*fields, content))
    return ":".join([PREFIX, *fields, content[:TAG_LEN], encode_signature(signature)])


def verify_code(payload: str, election: Election) -> tuple[BallotCode | None, list[Reason]]:
    """Parse and check a scanned payload against this station's election.

    Returns the code and an empty list when it is a genuine ballot of this station, election and mode;
    otherwise the reasons it is foreign. The signature is checked first wherever it can be: a code of
    this election (id and tag ours) is signed over our own content digest, so a failed signature is
    CODE_FORGED; a code naming another election (or whose tag shows other content) cannot be checked
    without that election's digest and is OTHER_ELECTION, unverified - rejected either way.
    """
    parts = payload.strip().split(":", 6)
    if len(parts) != 7 or parts[0] != PREFIX:
        return None, [Reason.NO_CODE]
    _, election_id, station, style, mode_letter, tag, sig_text = parts
    mode = {v: k for k, v in MODES.items()}.get(mode_letter)
    try:
        signature = decode_signature(sig_text)
        int(tag, 16)
        (election_id + station + style).encode("ascii")
    except (ValueError, UnicodeEncodeError):
        return None, [Reason.CODE_FORGED]
    if mode is None or len(tag) != TAG_LEN or not all(c in "0123456789ABCDEF" for c in tag):
        return None, [Reason.CODE_FORGED]
    content = _content16(election)
    if election_id != election.id.upper() or tag != content[:TAG_LEN]:
        return None, [Reason.OTHER_ELECTION]
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(election.ballot_code_key.public_key_hex))
        key.verify(signature, _body(election_id, station, style, mode_letter, content))
    except (InvalidSignature, ValueError):
        return None, [Reason.CODE_FORGED]
    code = BallotCode(election_id, station, style, mode, content)
    reasons: list[Reason] = []
    if station != election.station.code:
        reasons.append(Reason.OTHER_STATION)
    if mode != election.mode:
        reasons.append(Reason.TEST_BALLOT)
    if style not in {s.id for s in election.ballot_styles}:
        reasons.append(Reason.UNKNOWN_STYLE)
    return code, reasons

"""A Merkle tree over the cast-vote records, so that one record can be shown to belong to the signed set.

The rule is RFC 6962 (Certificate Transparency) section 2.1, with SHA-256:

- a leaf is the RFC 8785 canonical JSON of one CVR object of the CastVoteRecordReport, in the order of
  the report's ``CVR`` array (itself a cryptographic shuffle), and its hash is SHA-256(0x00 || leaf);
- an inner node is SHA-256(0x01 || left || right);
- a tree of n > 1 leaves splits at k, the largest power of two below n: root = node(tree(first k),
  tree(the rest)); a single leaf's tree is its leaf hash; the empty tree is SHA-256 of nothing.

The root is lower-case hex. Anyone can recompute it from the exported records with these few lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
RULE = "RFC 6962 section 2.1, SHA-256; leaf = RFC 8785 canonical JSON of one CVR, in the report's CVR order"


def merkle_root(leaves: Iterable[bytes]) -> str:
    """The RFC 6962 Merkle tree hash (hex) of `leaves` in the order given."""
    return _root([leaf_hash(leaf) for leaf in leaves]).hex()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def _root(hashes: Sequence[bytes]) -> bytes:
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two strictly below n
    return hashlib.sha256(NODE_PREFIX + _root(hashes[:k]) + _root(hashes[k:])).digest()

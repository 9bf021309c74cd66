"""Merkle tree hashing and proofs exactly as RFC 9162, section 2.1.

The audit log is a list of entries; its tree head commits to all of them. This
module knows nothing of entries, only of their leaf hashes:

* ``leaf_hash(d) = SHA-256(0x00 || d)`` and ``node_hash(l, r) = SHA-256(0x01 || l || r)``;
* the root of ``n > 1`` leaves splits them at ``k``, the largest power of two
  smaller than ``n``; the empty tree's root is ``SHA-256("")``;
* inclusion proofs are RFC 9162 2.1.3.1 ``PATH`` and are checked with the
  2.1.3.2 algorithm; consistency proofs are 2.1.4.1 ``PROOF``/``SUBPROOF``,
  checked with 2.1.4.2.

:class:`MerkleTree` keeps the leaf hashes and the root of every *complete*
subtree (2^h leaves starting at a multiple of 2^h); every subtree the RFC
recursion visits is a run of such complete subtrees, so roots and proofs of
any earlier size cost O(log n) hashes and appending costs O(1) amortised.

Assumes SHA-256 collision resistance. A proof only means something against a
root and size taken from a *signed* tree head, never from the proof's sender.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1)


class MerkleTree:
    """An append-only RFC 9162 tree over leaf hashes, with cached complete subtrees.

    ``_levels[h][i]`` is the root of leaves ``[i * 2^h, (i + 1) * 2^h)``; level 0
    holds the leaf hashes themselves.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for value in leaf_hashes:
            self.append(value)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def leaf_hash(self, index: int) -> bytes:
        self._check_index(index, self.size)
        return self._levels[0][index]

    def append(self, value: bytes) -> int:
        """Add one leaf hash; return its index."""
        if len(value) != HASH_SIZE:
            raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(value)}")
        index = self.size
        self._levels[0].append(value)
        level, position = 0, index
        while position & 1:  # this append completed a pair: its parent is complete too
            parent = node_hash(self._levels[level][position - 1], self._levels[level][position])
            level += 1
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(parent)
            position >>= 1
        return index

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        size = self._check_size(size)
        return self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.3.1 ``PATH(index, D[size])``, leaf-side first."""
        size = self._check_size(size)
        self._check_index(index, size)
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _largest_power_of_two_at_most(hi - lo - 1)
            if index < lo + k:
                path.append(self._range_hash(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._range_hash(lo, lo + k))
                lo += k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.4.1 ``PROOF(old_size, D[new_size])``; empty if nothing is to prove."""
        new_size = self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(f"old size {old_size} is not between 0 and the new size {new_size}")
        if old_size in (0, new_size):
            return []
        top_down: list[bytes] = []
        lo, hi, complete = 0, new_size, True
        while old_size != hi:  # SUBPROOF(m, D[lo:hi], complete), m = old_size - lo
            k = _largest_power_of_two_at_most(hi - lo - 1)
            if old_size <= lo + k:
                top_down.append(self._range_hash(lo + k, hi))
                hi = lo + k
            else:
                top_down.append(self._range_hash(lo, lo + k))
                lo, complete = lo + k, False
        bottom = [] if complete else [self._range_hash(lo, hi)]
        return bottom + top_down[::-1]

    def _range_hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range the RFC recursion visits (lo aligned to its largest part)."""
        if lo == hi:
            return EMPTY_ROOT
        parts: list[bytes] = []
        while lo < hi:
            width = _largest_power_of_two_at_most(hi - lo)
            if lo % width:
                raise ValueError(f"range [{lo}, {hi}) is not a subtree of the RFC 9162 tree")
            level = width.bit_length() - 1
            parts.append(self._levels[level][lo >> level])
            lo += width
        result = parts.pop()
        while parts:
            result = node_hash(parts.pop(), result)
        return result

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is not between 0 and the current size {self.size}")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise IndexError(f"leaf index {index} is outside a tree of size {size}")


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over ``leaf_hashes``; ``SHA-256("")`` for none."""
    return MerkleTree(leaf_hashes).root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """``PATH(index, D[n])`` for the tree of all ``leaf_hashes``."""
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """``PROOF(old_size, D[n])`` from the first ``old_size`` leaves to all of ``leaf_hashes``."""
    return MerkleTree(leaf_hashes).consistency_proof(old_size)


def _all_hashes(values: Sequence[bytes]) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` put ``leaf`` at ``index`` of the tree ``(size, root)``?"""
    if not _all_hashes([leaf, root, *proof]) or not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: does ``(new_size, new_root)`` extend ``(old_size, old_root)``?

    The RFC algorithm covers ``0 < old_size < new_size``. The trivial cases are
    decided fail-closed: equal sizes need equal roots and an empty proof; an
    empty old tree needs the empty root and an empty proof.
    """
    if not _all_hashes([old_root, new_root, *proof]) or not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    return _verify_consistency_path(old_size, new_size, old_root, new_root, list(proof))


def _verify_consistency_path(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]
) -> bool:
    if not path:
        return False
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0

"""RFC 9162 Merkle tree: published vectors, an independent reference, and pymerkle.

The 8-leaf test tree and its expected values come from transparency-dev/merkle
(the successor of the Certificate Transparency reference code once in
certificate-transparency-go and google/trillian), copied verbatim:

* ``testonly/constants.go`` @ 582a6ad190b6848f1d26f8bf08ddef29955d9db1:
  ``LeafInputs``, ``NodeHashes``, ``RootHashes``;
* ``proof/verify_test.go`` @ 02194e9afb6c1d95b5381350007963aa70fff472:
  ``inclusionProofs`` (leaf numbers there are 1-based), ``consistencyProofs`` and
  the corruption probes of ``corruptInclusionProof``/``corruptConsistencyProof``.
"""

from __future__ import annotations

import hashlib
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc_gateway.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

# testonly/constants.go: LeafInputs()
LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
# testonly/constants.go: RootHashes(), indexed by tree size 0..8
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
# testonly/constants.go: NodeHashes(), [level][index] of every complete subtree
NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]
# proof/verify_test.go: inclusionProofs as (1-based leaf, size, proof); {0, 0, nil} is
# the invalid path there and is covered by test_inclusion_rejects_impossible_positions.
INCLUSION_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (3, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        2,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
# proof/verify_test.go: consistencyProofs as (size1, size2, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]
# proof/verify_test.go: sha256SomeHash
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH written straight from RFC 9162 2.1.1, recursion and all, as an independent check."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def flip(value: bytes, mask: int) -> bytes:
    return bytes([value[0] ^ mask]) + value[1:]


def test_hashes_are_domain_separated_as_in_rfc_9162() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        node_hash(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()
    )
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == root_hash([])


@pytest.mark.parametrize("size", range(9))
def test_root_matches_reference_vector(size: int) -> None:
    assert root_hash(LEAVES[:size]) == ROOTS[size]
    assert MerkleTree(LEAVES).root(size) == ROOTS[size]


def test_every_complete_subtree_matches_reference_node_hashes() -> None:
    for level, row in enumerate(NODE_HASHES):
        width = 1 << level
        for index, expected in enumerate(row):
            assert root_hash(LEAVES[index * width : (index + 1) * width]) == expected


def inclusion_probes(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes):
    """corruptInclusionProof from proof/verify_test.go: every probe must fail."""
    probes = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, [*proof, b""]),
        (index, size, root, leaf, [*proof, root]),
        (index, size, root, leaf, [b"", *proof]),
        (index, size, root, leaf, [root, *proof]),
    ]
    for i in range(len(proof)):
        probes.append((index, size, root, leaf, [*proof[:i], flip(proof[i], 8), *proof[i + 1 :]]))
    if proof:
        probes.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


@pytest.mark.parametrize(("leaf_number", "size", "expected"), INCLUSION_VECTORS)
def test_inclusion_proof_matches_reference_vector(
    leaf_number: int, size: int, expected: list[bytes]
) -> None:
    index = leaf_number - 1
    assert MerkleTree(LEAVES).inclusion_proof(index, size) == expected
    assert inclusion_proof(LEAVES[:size], index) == expected
    assert verify_inclusion(LEAVES[index], index, size, expected, ROOTS[size])
    for probe in inclusion_probes(index, size, expected, ROOTS[size], LEAVES[index]):
        p_index, p_size, p_root, p_leaf, p_proof = probe
        assert not verify_inclusion(p_leaf, p_index, p_size, p_proof, p_root), probe


def consistency_probes(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]):
    """corruptConsistencyProof from proof/verify_test.go: every probe must fail."""
    probes = [
        (size1 - 1, size2, root1, root2, proof),
        (size1 + 1, size2, root1, root2, proof),
        (size1 ^ 2, size2, root1, root2, proof),
        (size1, size2 * 2, root1, root2, proof),
        (size1, size2 // 2, root1, root2, proof),
        (size1, size2, b"WrongRoot", root2, proof),
        (size1, size2, root1, b"WrongRoot", proof),
        (size1, size2, root2, root1, proof),
        (size1, size2, root1, root2, []),
        (size1, size2, root1, root2, [*proof, b""]),
        (size1, size2, root1, root2, [*proof, root1]),
        (size1, size2, root1, root2, [*proof, root2]),
        (size1, size2, root1, root2, [b"", *proof]),
        (size1, size2, root1, root2, [root1, *proof]),
        (size1, size2, root1, root2, [root2, *proof]),
        (size1, size2, root1, root2, [proof[0], *proof]),
        (size1, size2, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        probes.append(
            (size1, size2, root1, root2, [*proof[:i], flip(proof[i], 16), *proof[i + 1 :]])
        )
    return probes


@pytest.mark.parametrize(("size1", "size2", "expected"), CONSISTENCY_VECTORS)
def test_consistency_proof_matches_reference_vector(
    size1: int, size2: int, expected: list[bytes]
) -> None:
    assert MerkleTree(LEAVES).consistency_proof(size1, size2) == expected
    assert consistency_proof(LEAVES[:size2], size1) == expected
    assert verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], expected)
    if not expected:  # verify_test.go probes only non-trivial proofs
        return
    for probe in consistency_probes(size1, size2, ROOTS[size1], ROOTS[size2], expected):
        assert not verify_consistency(*probe), probe


def test_inclusion_rejects_impossible_positions() -> None:
    # After TestVerifyInclusion's probes {0,0} {0,1} {1,0} {2,1} in proof/verify_test.go.
    for index, size in [(0, 0), (1, 0), (2, 1), (1, 1)]:
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    assert not verify_inclusion(SOME_HASH, -1, 1, [], SOME_HASH)
    assert verify_inclusion(SOME_HASH, 0, 1, [], SOME_HASH)


def test_trivial_consistency_cases_fail_closed() -> None:
    root_a, root_b = leaf_hash(b"a"), leaf_hash(b"b")
    assert verify_consistency(3, 3, root_a, root_a, [])
    assert not verify_consistency(3, 3, root_a, root_b, [])
    assert not verify_consistency(3, 3, root_a, root_a, [EMPTY_ROOT])
    assert verify_consistency(0, 5, EMPTY_ROOT, root_b, [])
    assert not verify_consistency(0, 5, root_a, root_b, [])  # an empty tree has one root
    assert not verify_consistency(0, 5, EMPTY_ROOT, root_b, [EMPTY_ROOT])
    assert not verify_consistency(2, 1, root_a, root_b, [root_a])
    assert not verify_consistency(1, 2, root_a, root_b, [])


def test_bad_arguments_raise() -> None:
    tree = MerkleTree(LEAVES[:5])
    with pytest.raises(IndexError):
        tree.inclusion_proof(5)
    with pytest.raises(ValueError, match="tree size 6"):
        tree.root(6)
    with pytest.raises(ValueError, match="old size 4"):
        tree.consistency_proof(4, 3)
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")


def test_all_small_trees_agree_with_the_rfc_definition() -> None:
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(40)]
    tree = MerkleTree(leaves)
    for size in range(len(leaves) + 1):
        root = reference_root(leaves[:size])
        assert tree.root(size) == root
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert verify_inclusion(leaves[index], index, size, proof, root)
        for old in range(size + 1):
            proof = tree.consistency_proof(old, size)
            assert verify_consistency(old, size, tree.root(old), root, proof), (old, size)


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True),
    pick=st.integers(min_value=0),
    old_pick=st.integers(min_value=0),
)
def test_proofs_bind_index_size_and_root(data: list[bytes], pick: int, old_pick: int) -> None:
    leaves = [leaf_hash(d) for d in data]
    tree, size = MerkleTree(leaves), len(leaves)
    index, old = pick % size, old_pick % size + 1
    proof = tree.inclusion_proof(index)
    assert verify_inclusion(leaves[index], index, size, proof, tree.root())
    assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, tree.root())
    if size > 1:
        assert not verify_inclusion(leaves[index], (index + 1) % size, size, proof, tree.root())
    cproof = tree.consistency_proof(old)
    assert verify_consistency(old, size, tree.root(old), tree.root(), cproof)
    if old < size:
        assert not verify_consistency(old, size, leaf_hash(b"x"), tree.root(), cproof)


def test_independent_oracle_pymerkle_agrees_on_random_trees() -> None:
    pymerkle = pytest.importorskip("pymerkle")
    rng = random.Random(9162)
    for _ in range(5):
        count = rng.randint(1, 150)
        data = [rng.randbytes(rng.randint(0, 12)) for _ in range(count)]
        oracle = pymerkle.InmemoryTree(algorithm="sha256")
        for item in data:
            oracle.append_entry(item)
        tree = MerkleTree(leaf_hash(d) for d in data)
        for size in range(1, count + 1):
            assert tree.root(size) == oracle.get_root(size)
        for index in rng.sample(range(count), min(count, 10)):
            # pymerkle numbers leaves from 1 and puts the leaf itself first in its path.
            path = oracle.prove_inclusion(index + 1, count).serialize()["path"]
            assert [p.hex() for p in tree.inclusion_proof(index)] == path[1:]


def test_hundred_thousand_leaves_stay_fast() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(100_000)]
    started = time.perf_counter()
    tree = MerkleTree(leaves)
    root = tree.root()
    for index in (0, 4_095, 65_536, 99_999):
        assert verify_inclusion(
            leaves[index], index, len(leaves), tree.inclusion_proof(index), root
        )
    for old in (1, 65_536, 77_777, 99_999):
        proof = tree.consistency_proof(old)
        assert verify_consistency(old, len(leaves), tree.root(old), root, proof)
    assert time.perf_counter() - started < 3.0
    assert root == reference_root(leaves)

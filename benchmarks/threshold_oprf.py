"""A threshold oblivious PRF for persons' pseudonyms (2HashDH over edwards25519), to cost it.

Today every node holds the 32-byte pseudonym key (:mod:`mpc_gateway.pseudonym`),
so any one member can compute the pseudonym of any national id, offline. With a
threshold OPRF no member holds the key: it is Shamir-shared among the m nodes
(threshold t, any t + 1 of them evaluate), and

    pseudonym(x) = SHA-256("mpcgw-oprf" ‖ x ‖ H(x)^k),    H: hash to the prime-order group

is computed by whoever holds ``x`` (a node pseudonymising its own rows, an analyst
screening a person) without anyone else learning ``x`` or the pseudonym:

1. the requester draws r, sends the blinded point B = H(x)^r (uniform in the group,
   so it says nothing of x) to t + 1 nodes;
2. node i checks B is a valid point of the prime-order subgroup and answers B^(k_i),
   its key share (and can count and log every evaluation: the only way to learn a
   pseudonym is to ask t + 1 nodes, online, once per guessed id);
3. the requester combines Π (B^(k_i))^(λ_i) = B^k (Lagrange coefficients at 0) and
   unblinds with r⁻¹: H(x)^k.

Security (passive nodes, as for the MPC): t or fewer colluding nodes learn nothing
of k, x or the pseudonym. This module is the protocol's arithmetic only, for the
benchmark (benchmarks/oprf_bench.py) and its test; the product does not use it yet.
Points and scalars are libsodium's (PyNaCl's bindings), scalars mod the group order L.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nacl.bindings import (
    crypto_core_ed25519_add,
    crypto_core_ed25519_from_uniform,
    crypto_core_ed25519_is_valid_point,
    crypto_scalarmult_ed25519_noclamp,
)

__all__ = ["L", "KeyShares", "deal", "blind", "evaluate", "finish", "pseudonym_with_key"]

L = 2**252 + 27742317777372353535851937790883648493
"""The order of edwards25519's prime-order subgroup."""

_DOMAIN = b"mpcgw-oprf"


def _bytes(scalar: int) -> bytes:
    return (scalar % L).to_bytes(32, "little")


def _hash_to_group(national_id: str) -> bytes:
    """H(x): SHA-512 of the id, reduced to 32 uniform bytes, mapped by Elligator 2."""
    uniform = hashlib.sha512(_DOMAIN + b"/h2c/" + national_id.encode()).digest()[:32]
    return bytes(crypto_core_ed25519_from_uniform(uniform))


def _power(point: bytes, scalar: int) -> bytes:
    return bytes(crypto_scalarmult_ed25519_noclamp(_bytes(scalar), point))


def _output(national_id: str, point: bytes) -> str:
    return hashlib.sha256(_DOMAIN + b"/out/" + national_id.encode() + point).hexdigest()


@dataclass(frozen=True)
class KeyShares:
    """Shamir shares ``k_i = f(i)`` of the key ``f(0)``, at threshold ``t`` (t + 1 evaluate)."""

    t: int
    shares: Mapping[int, int]  # party number (1..m) -> k_i


def deal(m: int, t: int) -> tuple[int, KeyShares]:
    """A random key and its shares (a dealer: the benchmark's stand-in for a key ceremony)."""
    coefficients = [secrets.randbelow(L - 1) + 1 for _ in range(t + 1)]
    shares = {i: sum(c * i**j for j, c in enumerate(coefficients)) % L for i in range(1, m + 1)}
    return coefficients[0], KeyShares(t, shares)


def blind(national_id: str) -> tuple[int, bytes]:
    """The requester's step 1: its secret r and the blinded point H(x)^r."""
    r = secrets.randbelow(L - 1) + 1
    return r, _power(_hash_to_group(national_id), r)


def evaluate(key_share: int, blinded: bytes) -> bytes:
    """A node's step 2: ``blinded`` raised to its key share, after checking the point."""
    if len(blinded) != 32 or not crypto_core_ed25519_is_valid_point(blinded):
        raise ValueError("not a point of the prime-order subgroup")
    return _power(blinded, key_share)


def _lagrange_at_zero(parties: Sequence[int]) -> dict[int, int]:
    coefficients = {}
    for i in parties:
        numerator, denominator = 1, 1
        for j in parties:
            if j != i:
                numerator = numerator * j % L
                denominator = denominator * (j - i) % L
        coefficients[i] = numerator * pow(denominator, -1, L) % L
    return coefficients


def finish(national_id: str, r: int, answers: Mapping[int, bytes], t: int) -> str:
    """The requester's step 3: combine t + 1 nodes' answers, unblind, hash: the pseudonym."""
    if len(answers) < t + 1:
        raise ValueError(f"{len(answers)} answers; the key needs t + 1 = {t + 1}")
    lam = _lagrange_at_zero(sorted(answers))
    combined = None
    for i, answer in answers.items():
        if not crypto_core_ed25519_is_valid_point(answer):
            raise ValueError(f"node {i} answered with an invalid point")
        term = _power(answer, lam[i] * pow(r, -1, L))  # unblinding folded into each term
        combined = term if combined is None else bytes(crypto_core_ed25519_add(combined, term))
    assert combined is not None
    return _output(national_id, combined)


def pseudonym_with_key(national_id: str, key: int) -> str:
    """What the protocol computes, by whoever holds the whole key (the tests' oracle)."""
    return _output(national_id, _power(_hash_to_group(national_id), key))

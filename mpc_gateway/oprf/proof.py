"""A node proves each answer is raised to its own key share: a batched Chaum-Pedersen proof.

With its answers ``A_j = B_j^(k_i)`` a node sends a proof that the discrete log of
``A_j`` to the base ``B_j`` is the one of its public key share ``g^(k_i)`` to the base
``g``. The points are folded into one pair first, with coefficients hashed from the
whole request (``M = Σ c_j B_j``, ``Z = Σ c_j A_j``), so one proof covers a request
of any size. The public shares come from the ceremony's commitments, and every node
signs them once (:func:`key_statement`). So the requester checks every answer against
the key itself: a node that answered with a wrong share, or a gateway that replaced
the answers, is caught, even when only t + 1 nodes answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from nacl.exceptions import RuntimeError as NaclRuntimeError

from mpc_gateway.canonical import canonical_bytes, from_canonical
from mpc_gateway.errors import IntegrityError
from mpc_gateway.oprf import group as g

__all__ = ["PublicKey", "prove", "verify", "key_statement", "read_key_statement"]

_STATEMENT = "mpc-gateway pseudonym key share v1"


@dataclass(frozen=True)
class PublicKey:
    """The key's public values: ``g^k`` and every node's ``g^(k_x)``, x = 1..m."""

    threshold: int
    key: bytes
    shares: tuple[bytes, ...]

    def check(self) -> None:
        """IntegrityError unless the public shares lie on one polynomial of degree t through g^k."""
        xs = list(range(1, len(self.shares) + 1))
        first = xs[: self.threshold + 1]
        if not all(g.is_point(p) for p in (self.key, *self.shares)) or len(first) <= self.threshold:
            raise IntegrityError("the pseudonym key's public values are not group points")
        rest = ((x, self.shares[x - 1]) for x in xs[self.threshold + 1 :])
        for at, expected in [(0, self.key), *rest]:
            coefficients = g.lagrange(first, at)
            try:
                got = g.add([g.power(self.shares[x - 1], c) for x, c in zip(first, coefficients)])
            except NaclRuntimeError:  # an identity on the way: not shares of a random key
                got = b""
            if got != expected:
                raise IntegrityError(
                    "the nodes' public key shares are not shares of the public key"
                )


def _folded(public_share: bytes, points: Sequence[bytes], answers: Sequence[bytes]) -> list[int]:
    if len(points) == 1:
        return [1]
    seed = hashlib.sha512(public_share + b"".join(points) + b"".join(answers)).digest()
    return [g.hash_to_scalar(b"dleq batch", seed, j.to_bytes(4, "big")) for j in range(len(points))]


def _fold(points: Sequence[bytes], coefficients: Sequence[int]) -> bytes:
    if len(points) == 1:
        return points[0]
    return g.add([g.power(p, c) for p, c in zip(points, coefficients, strict=True)])


def _challenge(public_share: bytes, m: bytes, z: bytes, t1: bytes, t2: bytes) -> int:
    return g.hash_to_scalar(b"dleq", g.base(1), public_share, m, z, t1, t2)


def prove(share: int, points: Sequence[bytes], answers: Sequence[bytes]) -> bytes:
    """The proof that every ``answers[j]`` is ``points[j]`` raised to ``share``: 64 bytes."""
    public_share = g.base(share)
    m = _fold(points, _folded(public_share, points, answers))
    r = g.random_scalar()
    e = _challenge(public_share, m, g.power(m, share), g.base(r), g.power(m, r))
    return g.scalar_bytes(e) + g.scalar_bytes(r - e * share)


def verify(
    public_share: bytes, points: Sequence[bytes], answers: Sequence[bytes], proof: bytes
) -> bool:
    """Whether ``proof`` shows ``answers`` are ``points`` raised to ``public_share``'s exponent."""
    if len(proof) != 64 or len(points) != len(answers) or not points:
        return False
    e, s = (int.from_bytes(proof[i : i + 32], "little") for i in (0, 32))
    coefficients = _folded(public_share, points, answers)
    m, z = _fold(points, coefficients), _fold(answers, coefficients)
    try:
        t1 = g.add([g.base(s), g.power(public_share, e)])
        t2 = g.add([g.power(m, s), g.power(z, e)])
    except NaclRuntimeError:  # a degenerate proof (an identity on the way)
        return False
    return e < g.L and s < g.L and _challenge(public_share, m, z, t1, t2) == e


def key_statement(node: str, party: int, public: PublicKey) -> bytes:
    """What a node signs about the key it holds a share of (canonical JSON)."""
    return canonical_bytes(
        {
            "label": _STATEMENT,
            "node": node,
            "party": party,
            "threshold": public.threshold,
            "public_key": public.key.hex(),
            "public_shares": [p.hex() for p in public.shares],
        }
    )


def read_key_statement(data: bytes) -> tuple[str, int, PublicKey]:
    """(node, party, public key) of a statement; IntegrityError if it is not one."""
    try:
        value = from_canonical(data)
        if value["label"] != _STATEMENT:
            raise ValueError(value["label"])
        public = PublicKey(
            int(value["threshold"]),
            bytes.fromhex(value["public_key"]),
            tuple(bytes.fromhex(p) for p in value["public_shares"]),
        )
        return str(value["node"]), int(value["party"]), public
    except (KeyError, TypeError, ValueError) as err:
        raise IntegrityError(f"a node's key statement is malformed: {err}") from None

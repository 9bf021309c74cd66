"""edwards25519's prime-order group, as the pseudonym protocol uses it (libsodium, via PyNaCl)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from nacl.bindings import (
    crypto_core_ed25519_add,
    crypto_core_ed25519_from_uniform,
    crypto_core_ed25519_is_valid_point,
    crypto_scalarmult_ed25519_base_noclamp,
    crypto_scalarmult_ed25519_noclamp,
)

__all__ = [
    "L",
    "POINT_BYTES",
    "DOMAIN",
    "scalar_bytes",
    "power",
    "base",
    "add",
    "is_point",
    "hash_to_group",
    "random_scalar",
    "lagrange",
    "hash_to_scalar",
]

L = 2**252 + 27742317777372353535851937790883648493
"""The order of edwards25519's prime-order subgroup."""

POINT_BYTES = 32
DOMAIN = b"mpc-gateway person pseudonym v2 (threshold OPRF)\x00"


def scalar_bytes(value: int) -> bytes:
    return (value % L).to_bytes(32, "little")


def power(point: bytes, scalar: int) -> bytes:
    return bytes(crypto_scalarmult_ed25519_noclamp(scalar_bytes(scalar), point))


def base(scalar: int) -> bytes:
    return bytes(crypto_scalarmult_ed25519_base_noclamp(scalar_bytes(scalar)))


def add(points: Sequence[bytes]) -> bytes:
    total = points[0]
    for point in points[1:]:
        total = bytes(crypto_core_ed25519_add(total, point))
    return total


def is_point(data: bytes) -> bool:
    return len(data) == POINT_BYTES and bool(crypto_core_ed25519_is_valid_point(data))


def hash_to_group(normal_id: str) -> bytes:
    """H(x): 32 uniform bytes of SHA-512, mapped into the group by Elligator 2."""
    uniform = hashlib.sha512(DOMAIN + b"h2c\x00" + normal_id.encode()).digest()[:32]
    return bytes(crypto_core_ed25519_from_uniform(uniform))


def hash_to_scalar(label: bytes, *parts: bytes) -> int:
    """A scalar from SHA-512 of the domain, ``label`` and length-prefixed ``parts``."""
    digest = hashlib.sha512(DOMAIN + label + b"\x00")
    for part in parts:
        digest.update(len(part).to_bytes(4, "big") + part)
    return int.from_bytes(digest.digest(), "little") % L


def random_scalar() -> int:
    return secrets.randbelow(L - 1) + 1


def lagrange(xs: Sequence[int], at: int) -> list[int]:
    """The Lagrange coefficients of the points ``xs``, evaluated at ``at``, modulo L."""
    out = []
    for i in xs:
        num = den = 1
        for j in xs:
            if j != i:
                num = num * (at - j) % L
                den = den * (i - j) % L
        out.append(num * pow(den, -1, L) % L)
    return out

"""Recombining the re-randomised Shamir shares the nodes hand to a receiver.

Each node returns, per named block, its share of every element over the
program's prime field. Whoever holds all m shares of a block recombines it by
Lagrange interpolation at 0 and maps the field element to a signed integer.
"""

from __future__ import annotations

from collections.abc import Sequence

from mpc_gateway.errors import IntegrityError

__all__ = ["recombine_shares", "signed", "recombine_block"]


def recombine_shares(points: list[tuple[int, int]], modulus: int) -> int:
    """Lagrange interpolation at 0 over GF(modulus) of (x, share) points."""
    total = 0
    for i, (x_i, y_i) in enumerate(points):
        num, den = 1, 1
        for j, (x_j, _) in enumerate(points):
            if i != j:
                num = num * -x_j % modulus
                den = den * (x_i - x_j) % modulus
        total = (total + y_i * num * pow(den, -1, modulus)) % modulus
    return total


def signed(value: int, modulus: int) -> int:
    """Map a field element to the integer in (-modulus/2, modulus/2]."""
    return value - modulus if value > modulus // 2 else value


def recombine_block(
    name: str, shares: Sequence[tuple[int, int, Sequence[int]]], parties: int
) -> list[int]:
    """The signed integers of block ``name`` from ``(x, modulus, values)`` of every party."""
    moduli = {modulus for _, modulus, _ in shares}
    lengths = {len(values) for _, _, values in shares}
    if len(shares) != parties or len(moduli) != 1 or len(lengths) != 1:
        raise IntegrityError(f"nodes returned inconsistent shares for block {name!r}")
    modulus = moduli.pop()
    xs = [x for x, _, _ in shares]
    columns = [[int(v) for v in values] for _, _, values in shares]
    return [
        signed(recombine_shares(list(zip(xs, element)), modulus), modulus)
        for element in zip(*columns)
    ]

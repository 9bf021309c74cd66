"""One round of the batched quantile search: the grid bracket that holds each quantile.

Parties: all m nodes; every party inputs its cumulative counts at the round's
grid points and its total. Output: the bracket indices, opened to the parties
only (every node derives the next round's grid from them); in the last round the
values found (and an interpolation's weights), sealed to the receiver.
Leakage: the bracket indices, to the nodes; no count is opened, nor which parties
hold values (a quantile over too few values or institutions answers exactly like
one over no values).
Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import at_least, input_all, total
from mpc_gateway.mpc.programs.output import (
    ReceiverShares,
    open_to_parties,
    shares_for_receiver,
)

__all__ = ["quantile_round"]


def _withheld(size: Any, sizes: list[Any], bits: int, min_count: int, min_institutions: int) -> Any:
    """Per quantile, a secure 1 where its population fails a rule; None without any rule.

    ``sizes`` are the parties' value counts [Q], ``size`` their sum: fewer than
    ``min_count`` values, or fewer than ``min_institutions`` parties with at least
    one, withhold the quantile.
    """
    failed = []
    if min_count > 1:
        # N < 2**(bits-2) (the plan's bound): a larger minimum suppresses everything either
        # way, and the clamp keeps N - min_count inside the comparison's range
        failed.append(size < min(min_count, 1 << (bits - 1)))
    if min_institutions > 1:
        # 0 <= present <= m and the clamped minimum is at most m + 1, so a comparison of
        # bitlen(m + 1) + 1 bits holds present - need
        present = total([at_least(part, 1, bits) for part in sizes])
        parties = len(sizes)
        need = min(min_institutions, parties + 1)
        failed.append(1 - at_least(present, need, (parties + 1).bit_length() + 1))
    if not failed:
        return None
    if len(failed) == 1:
        return failed[0]
    small, few = failed
    return small + few - small * few  # either rule: one meaning, "withheld"


async def quantile_round(
    counts: np.ndarray,
    totals: np.ndarray,
    targets: Sequence[tuple[int, int, int]],
    bits: int,
    min_count: int = 0,
    min_institutions: int = 0,
    weights: Sequence[tuple[int, int]] = (),
    grids: Sequence[Sequence[int]] = (),
    value_bits: int = 0,
) -> dict[str, ReceiverShares]:
    """One round of the batched quantile search: which grid bracket holds each search's value.

    Inputs: ``counts`` [S, G], this party's number of values ``<= g_{s,j}`` at each
    of the round's G increasing grid points per search s; ``totals`` [S], its
    number of values; ``targets[s] = (num, den, offset)``. With C and N the joint
    counts, search s looks for the smallest value x with
    ``C(x) * den >= num * N + offset``; the round opens to the parties only, per
    search, the number of grid points below it (``bracket`` [S], in 0..G; G also
    when N = 0, i.e. no values): every node derives the next round's grid from it
    (see :mod:`mpc_gateway.computations.quantile_search`); no count is opened. With
    ``min_count > 1``, fewer than ``min_count`` joint values answer G as well (the
    quantile is suppressed, exactly as if there were no values); with
    ``min_institutions > 1``, so do values from fewer than ``min_institutions``
    parties (a party holds values when its total is positive, compared in secret).
    The last round's ``grids`` (its G grid points per search, public to the
    parties) add what the receiver gets, sealed: ``found`` [S] (1 unless the
    bracket is G) and ``value`` [S] (the bracket's grid point, 0 if none;
    ``value_bits`` bound it). ``weights[i] = (num, den)`` (an interpolation) adds
    ``weight`` [I]: ``(N - 1) * num mod den`` per level, 0 where withheld or empty.
    """
    secint = mpc.SecInt(bits)
    q, g = counts.shape
    joint = total(input_all(secint, counts))
    sizes = input_all(secint, totals)
    size = total(sizes)
    nums = np.array([int(num) for num, _, _ in targets], dtype=object)
    dens = np.array([[int(den)] for _, den, _ in targets], dtype=object)
    offsets = np.array([int(offset) for _, _, offset in targets], dtype=object)
    empty = size == 0  # with no values no count reaches the target: the bracket is G
    target = mpc.np_reshape(size * nums + offsets + empty * (1 - offsets), (q, 1))
    below = mpc.np_sgn(joint * dens - target, l=bits, LT=True)
    bracket = mpc.np_sum(below, axis=1)
    withheld = _withheld(size, sizes, bits, min_count, min_institutions)
    if withheld is not None:  # a withheld quantile: every bracket becomes G
        bracket = bracket + withheld * (g - bracket)
    sealed = {}
    if weights:  # every search counts the same values: its first N stands for all
        n, none = size[0], empty[0]
        kept = 1 - none if withheld is None else (1 - none) * (1 - withheld[0])
        rests = [(n + none - 1) * int(num) % int(den) * kept for num, den in weights]
        sealed["weight"] = mpc.np_fromlist(rests)
    opened = await open_to_parties(bracket)
    if grids:  # the last round: what the brackets found, public to the parties, sealed
        found = [int(k < g) for k in opened.values]
        values = [int(row[k]) if k < g else 0 for row, k in zip(grids, opened.values)]
        found_type = mpc.SecInt(max(bits, value_bits + 2))
        sealed["found"] = found_type.array(np.array(found, dtype=object))
        sealed["value"] = found_type.array(np.array(values, dtype=object))
    return {"bracket": opened, **await shares_for_receiver(sealed)}

"""One round of the batched quantile search: the grid bracket that holds each quantile.

Parties: all m nodes; every party inputs its cumulative counts at the round's
grid points and its total. Output: the bracket indices only, as re-randomised
shares for the receiver (who drives the next round with them). Leakage: the
bracket indices; no count is opened. Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import input_all, total
from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["quantile_round"]


async def quantile_round(
    counts: np.ndarray,
    totals: np.ndarray,
    fractions: Sequence[tuple[int, int]],
    bits: int,
    min_count: int = 0,
) -> dict[str, ReceiverShares]:
    """One round of the batched quantile search: which grid bracket holds each quantile.

    Inputs: ``counts`` [Q, G], this party's number of values ``<= g_{q,j}`` at each
    of the round's G increasing grid points per quantile q; ``totals`` [Q], its
    number of values; ``fractions[q] = (num, den)``, the quantile level q in (0, 1].
    With C and N the joint counts, the quantile is the smallest value x with
    ``C(x) * den >= num * N``; the round releases, per quantile, the number of grid
    points below it (``bracket`` [Q], in 0..G; G also when N = 0, i.e. no values).
    Leakage: exactly the bracket indices (the receiver drives the next round with
    them, see :mod:`mpc_gateway.computations.quantile_search`); no count is opened. With
    ``min_count > 1``, fewer than ``min_count`` joint values answer G as well (the
    quantile is suppressed, exactly as if there were no values).
    """
    secint = mpc.SecInt(bits)
    q, g = counts.shape
    joint = total(input_all(secint, counts))
    size = total(input_all(secint, totals))
    nums = np.array([int(num) for num, _ in fractions], dtype=object)
    dens = np.array([[int(den)] for _, den in fractions], dtype=object)
    empty = size == 0  # with no values no count reaches the target: the bracket is G
    target = mpc.np_reshape(size * nums + empty, (q, 1))
    below = mpc.np_sgn(joint * dens - target, l=bits, LT=True)
    bracket = mpc.np_sum(below, axis=1)
    if min_count > 1:  # too few values: every bracket becomes G
        # N < 2**(bits-2) (the plan's bound): a larger minimum suppresses everything either
        # way, and the clamp keeps N - min_count inside the comparison's range
        small = size < min(min_count, 1 << (bits - 1))
        bracket = bracket + small * (g - bracket)
    return await shares_for_receiver({"bracket": bracket})

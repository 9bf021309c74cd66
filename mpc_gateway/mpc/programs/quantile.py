"""One round of the batched quantile search: the grid bracket that holds each quantile.

Parties: all m nodes; every party inputs its cumulative counts at the round's
grid points and its total. Output: the bracket indices only, as re-randomised
shares for the receiver (who drives the next round with them). Leakage: the
bracket indices; no count is opened, nor which parties hold values (a quantile
over too few values or institutions answers exactly like one over no values).
Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import at_least, input_all, total
from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

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
    fractions: Sequence[tuple[int, int]],
    bits: int,
    min_count: int = 0,
    min_institutions: int = 0,
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
    quantile is suppressed, exactly as if there were no values); with
    ``min_institutions > 1``, so do values from fewer than ``min_institutions``
    parties (a party holds values when its total is positive, compared in secret).
    """
    secint = mpc.SecInt(bits)
    q, g = counts.shape
    joint = total(input_all(secint, counts))
    sizes = input_all(secint, totals)
    size = total(sizes)
    nums = np.array([int(num) for num, _ in fractions], dtype=object)
    dens = np.array([[int(den)] for _, den in fractions], dtype=object)
    empty = size == 0  # with no values no count reaches the target: the bracket is G
    target = mpc.np_reshape(size * nums + empty, (q, 1))
    below = mpc.np_sgn(joint * dens - target, l=bits, LT=True)
    bracket = mpc.np_sum(below, axis=1)
    withheld = _withheld(size, sizes, bits, min_count, min_institutions)
    if withheld is not None:  # a withheld quantile: every bracket becomes G
        bracket = bracket + withheld * (g - bracket)
    return await shares_for_receiver({"bracket": bracket})

"""Joint histogram counts: the sum of every party's local bin counts.

Parties: all m nodes; every party inputs one count per bin (its own noise
added under DP) and one presence bit per bin. Output: the joint counts (with a
minimum count or a minimum number of institutions: 0 for a bin that fails
either, and a ``suppressed`` bit per bin), as re-randomised shares for the
receiver. Leakage: the released counts and bits only; no party's count or
presence is opened. Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import at_least, input_all, rounded, total
from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["histogram"]


async def histogram(
    counts: np.ndarray,
    bits: int,
    min_count: int = 0,
    min_institutions: int = 1,
    presence: np.ndarray | None = None,
    round_to: int = 1,
) -> dict[str, ReceiverShares]:
    """Joint counts per declared bin: the sum of every party's local bin counts.

    Inputs: ``counts`` [B], this party's count per bin; ``presence`` [B], whether
    it counts as present in each bin (needed with ``min_institutions > 1``).
    Output: ``counts`` [B]; with ``min_count > 1`` or ``min_institutions > 1`` a
    bin that fails either is released as 0, and ``suppressed`` [B] says which
    (one comparison per bin and rule). With ``round_to`` the released counts are
    rounded to its nearest multiple. Leakage: the (released) joint counts only.
    """
    secint = mpc.SecInt(bits)
    joint = total(input_all(secint, counts))
    rules = []
    if min_count > 1:
        # joint counts < 2**(bits-2) (the plan's bound): a larger minimum suppresses every bin
        # either way, and the clamp keeps joint - min_count inside the comparison's range
        rules.append(at_least(joint, min(min_count, 1 << (bits - 2)), bits))
    if min_institutions > 1:
        if presence is None:
            raise ValueError("a minimum number of institutions needs every party's presence")
        present = total(input_all(secint, presence))
        rules.append(at_least(present, min_institutions, bits))
    if not rules:
        return await shares_for_receiver({"counts": rounded(joint, round_to, False)})
    enough = rules[0] if len(rules) == 1 else rules[0] * rules[1]
    released = rounded(joint * enough, round_to, False)
    return await shares_for_receiver({"counts": released, "suppressed": 1 - enough})

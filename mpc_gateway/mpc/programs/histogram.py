"""Joint histogram counts: the sum of every party's local bin counts.

Parties: all m nodes; every party inputs one count per bin. Output: the joint
counts (with a minimum count: 0 for a bin below it, and a ``suppressed`` bit per
bin), as re-randomised shares for the receiver. Leakage: the released counts
only. Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import at_least, input_all, total
from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["histogram"]


async def histogram(counts: np.ndarray, bits: int, min_count: int = 0) -> dict[str, ReceiverShares]:
    """Joint counts per declared bin: the sum of every party's local bin counts.

    Inputs: ``counts`` [B], this party's count per bin. Output: ``counts`` [B];
    with ``min_count > 1`` a bin below it is released as 0, and ``suppressed`` [B]
    says which (one comparison per bin). Leakage: the (released) joint counts only.
    """
    secint = mpc.SecInt(bits)
    joint = total(input_all(secint, counts))
    if min_count <= 1:
        return await shares_for_receiver({"counts": joint})
    # joint counts < 2**(bits-1) (the plan's bound): a larger minimum suppresses every bin
    # either way, and the clamp keeps joint - min_count inside the comparison's range
    enough = at_least(joint, min(min_count, 1 << (bits - 1)), bits)
    return await shares_for_receiver({"counts": joint * enough, "suppressed": 1 - enough})

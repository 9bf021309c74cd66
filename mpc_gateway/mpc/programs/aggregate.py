"""Joint aggregate statistics from every party's local fixed-shape aggregates.

Parties: all m nodes, each an MPyC party. Inputs: per group, this node's exact
integer aggregates (counts, sums, sums of squares) and its local minima and
maxima, in the shapes of the query's AggregateLayout; every party inputs arrays
of the same shape and type. Output: secret-shared joint counts/sums and the
joint minima/maxima, handed to the receiver as re-randomised shares; no party
opens anything. Leakage: none to the parties; the receiver learns exactly the
joint integers of the layout (not any party's local value, local minimum or
local maximum). Threshold: t = (m-1)//2, passive (honest majority).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["joint_aggregates"]


def _input_all(secint: Any, local: np.ndarray) -> list[Any]:
    return mpc.input(secint.array(local), senders=list(range(len(mpc.parties))))


def _reduce(parts: list[Any], how: str) -> Any:
    if how == "sum":
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total
    stacked = mpc.np_stack(parts)
    return mpc.np_amin(stacked, axis=0) if how == "min" else mpc.np_amax(stacked, axis=0)


async def joint_aggregates(
    additive: np.ndarray,
    minima: np.ndarray,
    maxima: np.ndarray,
    sum_bits: int,
    cmp_bits: int,
) -> dict[str, ReceiverShares]:
    """Sum the additive block, reduce minima/maxima; shares for an outside receiver."""
    secure = {}
    for name, local, bits, how in (
        ("additive", additive, sum_bits, "sum"),
        ("minima", minima, cmp_bits, "min"),
        ("maxima", maxima, cmp_bits, "max"),
    ):
        if local.size:
            secure[name] = _reduce(_input_all(mpc.SecInt(bits), local), how)
    return await shares_for_receiver(secure)

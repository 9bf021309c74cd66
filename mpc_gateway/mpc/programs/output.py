"""Hand results to a receiver outside the MPC: re-randomised Shamir shares.

``mpc.output`` only reaches MPyC parties. For an outside receiver each party
sends its share of the result; before that, every party adds its share of a
fresh pseudorandom sharing of zero (PRSS, degree 2t), so the share vector the
receiver collects is a uniformly random sharing of the value: it reveals the
value and nothing about how it was computed. The receiver recombines all m
shares by Lagrange interpolation at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mpyc import thresha
from mpyc.runtime import mpc

from mpc_gateway.mpc.wire import NODES_ONLY

__all__ = ["ReceiverShares", "shares_for_receiver", "open_to_parties"]


@dataclass(frozen=True)
class ReceiverShares:
    modulus: int  # NODES_ONLY: ``values`` are plain, the same at every party
    values: list[int]  # this party's share of each element, row-major


def _zero_sharing(field: Any, count: int) -> Any:
    # NB: _prss_uci advances the program counter; called synchronously, in the
    # same order at every party, before any await.
    prfs = mpc.prfs(field.order)
    return thresha.np_pseudorandom_share_0(
        field, len(mpc.parties), mpc.pid, prfs, mpc._prss_uci(), count
    )


async def shares_for_receiver(secure: dict[str, Any]) -> dict[str, ReceiverShares]:
    """This party's re-randomised shares of each secure array in ``secure``."""
    masks = {name: _zero_sharing(arr.sectype.field, arr.size) for name, arr in secure.items()}
    result = {}
    for name, arr in secure.items():
        field = arr.sectype.field
        share = await mpc.gather(arr)
        masked = share.reshape(-1) + masks[name]
        result[name] = ReceiverShares(field.modulus, [int(v) for v in masked.value])
    return result


async def open_to_parties(arr: Any) -> ReceiverShares:
    """Open a secure array to the MPC's parties only (a search step every node must steer).

    The node keeps the values for the query's next step; they are neither returned
    to the driver nor sealed to the receiver.
    """
    opened = await mpc.output(arr)
    return ReceiverShares(NODES_ONLY, [int(v) for v in opened])

"""Real-time entity checks: per key, how many members know it, or whether any does.

Parties: all m nodes; every party inputs a 0/1 vector over the request's distinct
keys, 1 where it holds at least one row of the key (an alert, under the plan's
filter, e.g. raised in the last 30 days). Output (to the receiver only, sealed):
per key the number of parties holding it (``members`` [n]) or only the bit "at
least one does" (``flagged`` [n]), or for a watchlist only how many of its keys
some party holds (``overlap`` [1], the intersection's cardinality), with
``amount`` also the parties' rows' amounts summed over the watchlist's keys
(``amount`` [1]: each party inputs its own total, one number). Leakage: exactly
those blocks; never which parties hold a key, nor any party's total. With
``known_local``, the minimum-batch bit of :mod:`mpc_gateway.mpc.programs.known`
gates the blocks and is released with them.
Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import input_all, total
from mpc_gateway.mpc.programs.known import ENOUGH_KNOWN, enough_known
from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["entity_check"]


async def entity_check(
    presence: np.ndarray,
    question: str,
    bits: int,
    known_local: np.ndarray | None = None,
    min_entities: int = 1,
    known_bits: int = 2,
    amount: int | None = None,
    amount_bits: int = 0,
) -> dict[str, ReceiverShares]:
    """Per key ``members`` (the number of parties with a row of it) or ``flagged`` (any), or
    for the whole batch only ``overlap`` [1]: how many of its keys some party holds.

    ``bits`` bounds the count (m parties at most). The OR takes m - 1 secure
    products per key and no comparison (a 100,000-key batch: about a second).
    """
    if question not in ("members", "flagged", "overlap"):
        raise ValueError(f"unknown check {question!r}")
    if (amount is not None) != (question == "overlap" and amount_bits > 0):
        raise ValueError("an amount goes with a watchlist's overlap and its bit length")
    secint = mpc.SecInt(max(bits, known_bits, amount_bits))
    parts = input_all(secint, presence)
    if question == "members":
        secure: dict[str, Any] = {"members": total(parts)}
    else:  # OR = 1 - prod(1 - p_i): m - 1 vectorised products, cheaper than a comparison
        unknown = 1 - parts[0]
        for part in parts[1:]:
            unknown = unknown * (1 - part)
        flagged = 1 - unknown
        overlap = mpc.np_sum(flagged, keepdims=True)
        secure = {"flagged": flagged} if question == "flagged" else {"overlap": overlap}
    if amount is not None:
        secure["amount"] = total(input_all(secint, np.array([amount], dtype=object)))
    if known_local is not None:
        ok = enough_known(secint, known_local, min_entities, known_bits)
        secure = {name: value * ok for name, value in secure.items()}
        secure[ENOUGH_KNOWN] = ok
    return await shares_for_receiver(secure)

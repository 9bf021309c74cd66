"""Real-time entity checks: per key, how many members know it, or whether any does.

Parties: all m nodes; every party inputs a 0/1 vector over the request's distinct
keys, 1 where it holds at least one row of the key (an alert, under the plan's
filter, e.g. raised in the last 30 days). Output (to the receiver only, sealed):
per key the number of parties holding it (``members`` [n]) or only the bit "at
least one does" (``flagged`` [n]). Leakage: exactly that block; never which
parties hold a key. With ``known_local``, the minimum-batch bit of
:mod:`mpc_gateway.mpc.programs.known` gates the block and is released with it.
Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import at_least, input_all, total
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
) -> dict[str, ReceiverShares]:
    """Per key: ``members`` (the number of parties with a row of it) or ``flagged`` (any).

    ``bits`` bounds ``members - 1`` (m parties at most); the OR is one comparison
    of that many bits per key.
    """
    if question not in ("members", "flagged"):
        raise ValueError(f"unknown check {question!r}")
    secint = mpc.SecInt(max(bits, known_bits))
    members = total(input_all(secint, presence))
    secure: dict[str, Any] = {
        question: members if question == "members" else at_least(members, 1, bits)
    }
    if known_local is not None:
        ok = enough_known(secint, known_local, min_entities, known_bits)
        secure = {name: value * ok for name, value in secure.items()}
        secure[ENOUGH_KNOWN] = ok
    return await shares_for_receiver(secure)

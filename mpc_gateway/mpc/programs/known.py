"""The minimum batch inside the MPC: how many of a batch's entities any party knows.

Parties: all m nodes; every party inputs a 0/1 vector over the batch's distinct
entities, 1 where it holds at least one row of the entity. Output: nothing on
its own; the programs over a key batch (scores, concentration) multiply every
output by the bit computed here and release the bit with them. Leakage: that
one bit (noisy under DP); never which entities are known, nor by whom, nor how
many. Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import at_least, input_all

__all__ = ["ENOUGH_KNOWN", "enough_known"]

ENOUGH_KNOWN = "enough_known"
"""The name of the released block: [1] the bit "enough of the batch's entities are known"."""


def enough_known(
    secint: Any, known_local: np.ndarray, min_entities: int, bits: int, noise: Any = None
) -> Any:
    """Secure [1]: whether at least ``min_entities`` entities are known to at least one party.

    An entity is known when any party's bit is 1: ``1 - prod_i (1 - k_ij)``, an OR
    without comparisons (m - 1 vectorised products). The count of known entities
    plus ``noise`` (a secure [1], the sum of every party's noise sample, under
    DP) is compared with ``min_entities``; ``bits`` bounds their difference.
    """
    parts = input_all(secint, known_local)
    unknown = 1 - parts[0]
    for part in parts[1:]:
        unknown = unknown * (1 - part)
    known = len(known_local) - mpc.np_sum(unknown, keepdims=True)
    if noise is not None:
        known = known + noise
    return at_least(known, min_entities, bits)

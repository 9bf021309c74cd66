"""Concentration: large-exposure flags and the HHI of joint exposures per unit.

Parties: all m nodes; every party inputs one exposure per unit (a counterparty
of the batch, or a sector), and for counterparties a 0/1 vector (1: it holds a
row of the counterparty). Output: only the declared blocks, as re-randomised
shares for the receiver; for counterparties every block is multiplied by the
bit "at least min_entities of them are known to some party", which is released
too. Leakage: exactly those blocks; the joint exposures themselves are never
opened. Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import at_least, input_all, total
from mpc_gateway.mpc.programs.known import ENOUGH_KNOWN, enough_known
from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["concentration"]


async def concentration(
    exposures: np.ndarray,
    bits: int,
    exposure_bits: int,
    limit: int | None = None,
    hhi: str = "none",
    hhi_limit: int = 0,
    known_local: np.ndarray | None = None,
    min_entities: int = 1,
    known_bits: int = 2,
) -> dict[str, ReceiverShares]:
    """Large-exposure flags and the Herfindahl-Hirschman index of joint exposures.

    Inputs: ``exposures`` [n], this party's exposure per unit (a counterparty of
    the batch, or a sector), integer encoded. With s_i the joint exposure of unit
    i: ``over_limit`` [n] bits ``s_i > limit`` (when a limit is given); ``hhi``
    [2] = (sum s_i**2, (sum s_i)**2) when ``hhi="fraction"``; ``hhi_over_limit``
    [1] = ``10000 * sum s_i**2 > hhi_limit * (sum s_i)**2`` when ``hhi="flag"``
    (``hhi_limit`` in HHI points, 0..10000). Leakage: exactly those blocks; the
    joint exposures themselves are never opened. ``bits`` bounds
    ``10000 * (sum s_i)**2``; ``exposure_bits`` bounds ``|s_i - limit|``.

    With ``known_local`` (units are entities: this party's bit per unit, 1 if it
    holds a row of it) every block is multiplied by ``enough_known`` [1], the bit
    "at least ``min_entities`` units are known to some party" (``known_bits``
    bounds that comparison), which is released too.
    """
    if hhi not in ("none", "fraction", "flag"):
        raise ValueError(f"unknown HHI output {hhi!r}")
    secint = mpc.SecInt(max(bits, known_bits))
    joint = total(input_all(secint, exposures))
    secure: dict[str, Any] = {}
    if limit is not None:  # s > limit  <=>  s >= limit + 1
        secure["over_limit"] = at_least(joint, limit + 1, exposure_bits)
    if hhi != "none":
        numerator = mpc.np_fromlist([joint @ joint])  # an inner product: one resharing
        overall = mpc.np_sum(joint, keepdims=True)
        denominator = overall * overall
        if hhi == "fraction":
            secure["hhi"] = mpc.np_concatenate([numerator, denominator])
        else:  # 10000 * num > limit * den  <=>  10000 * num >= limit * den + 1
            secure["hhi_over_limit"] = at_least(
                numerator * 10000, denominator * hhi_limit + 1, bits
            )
    if known_local is not None:
        ok = enough_known(secint, known_local, min_entities, known_bits)
        secure = {name: value * ok for name, value in secure.items()}
        secure[ENOUGH_KNOWN] = ok
    return await shares_for_receiver(secure)

"""Entity scores from every party's local features of a batch of entities.

Parties: all m nodes, each an MPyC party; every party inputs an [n, k] matrix
(zeros for entities it does not know). Output: only the declared block
(scores, decisions or a count), as re-randomised shares for the outside
receiver; no party opens anything. Threshold: t = (m-1)//2, passive.
Leakage: none beyond that block. Bit lengths come from public declared bounds
(:mod:`mpc_gateway.computations.scoring`); everything is vectorised over secure
integer arrays (no loop over entities).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import at_least, input_all, maximum, total
from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["entity_scores"]


def _combined_max(local: list[Any], bits: int) -> Any:
    if bits == 1:  # 0/1 values: the maximum is an OR, 1 - prod(1 - a_i), without comparisons
        rest = 1 - local[0]
        for part in local[1:]:
            rest = rest * (1 - part)
        return 1 - rest
    return maximum(local, bits)


def _cross_features(
    parts: list[Any], combine: Sequence[str], max_bits: Sequence[int]
) -> list[tuple[list[int], Any]]:
    """The combined feature columns, grouped: ``[(columns, secure matrix), ...]``.

    Sums in one group; maxima grouped by their comparison bit length, so each
    column's comparisons cost only its own declared bound.
    """
    groups = []
    sums = [j for j, how in enumerate(combine) if how == "sum"]
    if sums:
        groups.append((sums, total([part[:, sums] for part in parts])))
    for bits in sorted({max_bits[j] for j, how in enumerate(combine) if how == "max"}):
        columns = [j for j, how in enumerate(combine) if how == "max" and max_bits[j] == bits]
        groups.append((columns, _combined_max([part[:, columns] for part in parts], bits)))
    return groups


async def entity_scores(
    features_local: np.ndarray,
    combine: Sequence[str],
    bits: int,
    score_bits: int,
    max_bits: Sequence[int],
    threshold: int,
    output: str,
    public_weights: Sequence[int] | None = None,
    weight_parts: Sequence[int] | None = None,
) -> dict[str, ReceiverShares]:
    """Per entity: combine local features, score, and release scores, decisions or a count.

    Inputs: ``features_local`` [n, k] (this party's local features of n entities,
    zeros for entities it does not know); ``combine[j]`` is "sum" or "max";
    ``max_bits[j]`` the comparison bit length of a max column (1: a 0/1 column,
    combined by OR);
    either ``public_weights`` (k effective weights, then the intercept; the same
    at every party) or ``weight_parts`` (this party's additive share of them,
    secret-shared as an input, summed inside the MPC). Output (one block):
    ``scores`` [n] integer scores, or ``decisions`` [n] bits ``score >= threshold``,
    or ``count`` [1] the number of such entities. Leakage: none beyond that block;
    in particular no party's local features, no combined feature and (with secret
    weights) no weight is opened to anyone.
    """
    if output not in ("scores", "decisions", "count"):
        raise ValueError(f"unknown output {output!r}")
    secint = mpc.SecInt(bits)
    k = features_local.shape[1]
    parts = input_all(secint, features_local)
    if weight_parts is not None:
        modulus = secint.field.modulus
        shares = np.array([int(w) % modulus for w in weight_parts], dtype=object)
        weights = total(input_all(secint, shares))
    else:
        weights = np.array([int(w) for w in public_weights or ()], dtype=object)
    if len(weights) != k + 1:
        raise ValueError("weights must have one entry per feature plus the intercept")
    score = None
    for columns, matrix in _cross_features(parts, combine, max_bits):
        term = matrix @ weights[columns]
        score = term if score is None else score + term
    score = score + weights[k]
    if output == "scores":
        return await shares_for_receiver({"scores": score})
    decisions = at_least(score, threshold, score_bits)
    if output == "decisions":
        return await shares_for_receiver({"decisions": decisions})
    return await shares_for_receiver({"count": mpc.np_sum(decisions, keepdims=True)})

"""Entity scores from every party's local features of a batch of entities.

Parties: all m nodes, each an MPyC party; every party inputs an [n, k] matrix
(zeros for entities it does not know) and a 0/1 vector over the batch's
distinct entities (1: it holds a row of the entity); under DP for a count also
its own noise samples. Output: only the declared block (scores, decisions or
a count), multiplied by the bit "at least min_entities of the batch are known
to some party", and that bit, as re-randomised shares for the outside
receiver; no party opens anything. Threshold: t = (m-1)//2, passive.
Leakage: none beyond those blocks (a batch that fails releases zeros and the
bit). Bit lengths come from public declared bounds
(:mod:`mpc_gateway.computations.scoring`); everything is vectorised over secure
integer arrays (no loop over entities).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import at_least, input_all, maximum, rounded, total
from mpc_gateway.mpc.programs.known import ENOUGH_KNOWN, enough_known
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


def _weights(
    secint: Any, k: int, public: Sequence[int] | None, parts: Sequence[int] | None
) -> np.ndarray:
    """The k weights and the intercept: public, or summed from every party's secret share."""
    if parts is not None:
        modulus = secint.field.modulus
        shares = np.array([int(w) % modulus for w in parts], dtype=object)
        weights: np.ndarray = total(input_all(secint, shares))
    else:
        weights = np.array([int(w) for w in public or ()], dtype=object)
    if len(weights) != k + 1:
        raise ValueError("weights must have one entry per feature plus the intercept")
    return weights


def _block(
    score: Any, output: str, threshold: int, bits: int, noise: Any, round_to: int = 1
) -> dict[str, Any]:
    """The declared block: the scores, their decisions, or the count (plus ``noise``, if any).

    An exact count is rounded to a multiple of ``round_to``; a noisy one is left to the client.
    """
    if output == "scores":
        return {"scores": score}
    decisions = at_least(score, threshold, bits)
    if output == "decisions":
        return {"decisions": decisions}
    count = mpc.np_sum(decisions, keepdims=True)
    return {"count": rounded(count, round_to, False) if noise is None else count + noise}


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
    known_local: np.ndarray | None = None,
    min_entities: int = 1,
    known_bits: int = 2,
    noise_local: np.ndarray | None = None,
    round_to: int = 1,
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

    With ``known_local`` (this party's 0/1 bit per distinct entity of the batch:
    it holds a row of it) the block is multiplied by ``enough_known`` [1], the bit
    "at least ``min_entities`` entities are known to some party" (``known_bits``
    bounds that comparison), which is released too. ``noise_local`` (under DP,
    count only) is this party's [count noise, known-count noise]: the sums over
    every party are added to the count and to the count of known entities.
    """
    if output not in ("scores", "decisions", "count"):
        raise ValueError(f"unknown output {output!r}")
    if noise_local is not None and (output != "count" or known_local is None):
        raise ValueError("noise is added only to a count checked for its known entities")
    secint = mpc.SecInt(max(bits, known_bits))
    k = features_local.shape[1]
    parts = input_all(secint, features_local)
    weights = _weights(secint, k, public_weights, weight_parts)
    score = None
    for columns, matrix in _cross_features(parts, combine, max_bits):
        term = matrix @ weights[columns]
        score = term if score is None else score + term
    score = score + weights[k]
    noise = None if noise_local is None else total(input_all(secint, noise_local))
    released = _block(
        score, output, threshold, score_bits, None if noise is None else noise[:1], round_to
    )
    if known_local is not None:
        known_noise = None if noise is None else noise[1:]
        ok = enough_known(secint, known_local, min_entities, known_bits, known_noise)
        released = {name: value * ok for name, value in released.items()}
        released[ENOUGH_KNOWN] = ok
    return await shares_for_receiver(released)

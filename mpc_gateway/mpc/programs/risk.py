"""Joint risk computations over every party's fixed-shape local inputs.

All programs: Parties: all m nodes, each an MPyC party, every party inputs
arrays of the same shape (zeros for what it does not know). Output: only the
declared blocks, as re-randomised shares for the outside receiver
(:func:`~mpc_gateway.mpc.programs.output.shares_for_receiver`); no party opens
anything, except where a program says so. Threshold: t = (m-1)//2, passive.
The bit lengths come from public declared bounds (see
:mod:`mpc_gateway.risk.model` and :mod:`mpc_gateway.risk.portfolio`);
everything is vectorised over secure integer arrays (no loop over entities).

* :func:`entity_scores` -- per entity, cross-institution features (sums and
  secure maxima of the parties' local features), a linear score with public or
  secret-shared weights, and either the scores, the decisions ``score >= T``,
  or only the number of positive decisions. Leakage: none beyond that output.
* :func:`concentration` -- per unit (counterparty or sector), the joint exposure
  compared with a limit (only the flags), and the Herfindahl-Hirschman index as
  its numerator and denominator (or only the flag ``HHI > limit``).
* :func:`quantile_round` -- one round of the batched quantile search: the index
  of the grid bracket that holds each quantile (and nothing else).
* :func:`histogram` -- joint counts per declared bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["entity_scores", "concentration", "quantile_round", "histogram"]


def _input_all(secint: Any, local: np.ndarray) -> list[Any]:
    return mpc.input(
        secint.array(np.asarray(local, dtype=object)), senders=list(range(len(mpc.parties)))
    )


def _total(parts: list[Any]) -> Any:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _maximum(parts: list[Any], bits: int) -> Any:
    """Elementwise secure maximum over the parties' arrays, a tree of ceil(log2 m) layers.

    Each comparison is told the declared bound (``|a - b| < 2**(bits-1)``), so it
    costs ``bits``, not the full bit length of the score's secure type.
    """
    while len(parts) > 1:
        merged = []
        for a, b in zip(parts[0::2], parts[1::2]):
            below = mpc.np_sgn(a - b, l=bits, LT=True)  # 1 where a < b
            merged.append(a + below * (b - a))
        parts = merged + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0]


def _at_least(value: Any, bound: Any, bits: int) -> Any:
    """Secure bits ``value >= bound`` elementwise, for ``|value - bound| < 2**(bits-1)``."""
    return 1 - mpc.np_sgn(value - bound, l=bits, LT=True)


def _combined_max(local: list[Any], bits: int) -> Any:
    if bits == 1:  # 0/1 values: the maximum is an OR, 1 - prod(1 - a_i), without comparisons
        rest = 1 - local[0]
        for part in local[1:]:
            rest = rest * (1 - part)
        return 1 - rest
    return _maximum(local, bits)


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
        groups.append((sums, _total([part[:, sums] for part in parts])))
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
    parts = _input_all(secint, features_local)
    if weight_parts is not None:
        modulus = secint.field.modulus
        shares = np.array([int(w) % modulus for w in weight_parts], dtype=object)
        weights = _total(_input_all(secint, shares))
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
    decisions = _at_least(score, threshold, score_bits)
    if output == "decisions":
        return await shares_for_receiver({"decisions": decisions})
    return await shares_for_receiver({"count": mpc.np_sum(decisions, keepdims=True)})


async def concentration(
    exposures: np.ndarray,
    bits: int,
    exposure_bits: int,
    limit: int | None = None,
    hhi: str = "none",
    hhi_limit: int = 0,
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
    """
    if hhi not in ("none", "fraction", "flag"):
        raise ValueError(f"unknown HHI output {hhi!r}")
    secint = mpc.SecInt(bits)
    joint = _total(_input_all(secint, exposures))
    secure: dict[str, Any] = {}
    if limit is not None:  # s > limit  <=>  s >= limit + 1
        secure["over_limit"] = _at_least(joint, limit + 1, exposure_bits)
    if hhi != "none":
        numerator = mpc.np_fromlist([joint @ joint])  # an inner product: one resharing
        total = mpc.np_sum(joint, keepdims=True)
        denominator = total * total
        if hhi == "fraction":
            secure["hhi"] = mpc.np_concatenate([numerator, denominator])
        else:  # 10000 * num > limit * den  <=>  10000 * num >= limit * den + 1
            secure["hhi_over_limit"] = _at_least(
                numerator * 10000, denominator * hhi_limit + 1, bits
            )
    return await shares_for_receiver(secure)


async def quantile_round(
    counts: np.ndarray,
    totals: np.ndarray,
    fractions: Sequence[tuple[int, int]],
    bits: int,
    min_count: int = 0,
) -> dict[str, ReceiverShares]:
    """One round of the batched quantile search: which grid bracket holds each quantile.

    Inputs: ``counts`` [Q, G], this party's number of values ``<= g_{q,j}`` at each
    of the round's G increasing grid points per quantile q; ``totals`` [Q], its
    number of values; ``fractions[q] = (num, den)``, the quantile level q in (0, 1].
    With C and N the joint counts, the quantile is the smallest value x with
    ``C(x) * den >= num * N``; the round releases, per quantile, the number of grid
    points below it (``bracket`` [Q], in 0..G; G also when N = 0, i.e. no values).
    Leakage: exactly the bracket indices (the receiver drives the next round with
    them, see :mod:`mpc_gateway.risk.quantile`); no count is opened. With
    ``min_count > 1``, fewer than ``min_count`` joint values answer G as well (the
    quantile is suppressed, exactly as if there were no values).
    """
    secint = mpc.SecInt(bits)
    q, g = counts.shape
    joint = _total(_input_all(secint, counts))
    size = _total(_input_all(secint, totals))
    nums = np.array([int(num) for num, _ in fractions], dtype=object)
    dens = np.array([[int(den)] for _, den in fractions], dtype=object)
    empty = size == 0  # with no values no count reaches the target: the bracket is G
    target = mpc.np_reshape(size * nums + empty, (q, 1))
    below = mpc.np_sgn(joint * dens - target, l=bits, LT=True)
    bracket = mpc.np_sum(below, axis=1)
    if min_count > 1:  # too few values: every bracket becomes G
        # N < 2**(bits-2) (the plan's bound): a larger minimum suppresses everything either
        # way, and the clamp keeps N - min_count inside the comparison's range
        small = size < min(min_count, 1 << (bits - 1))
        bracket = bracket + small * (g - bracket)
    return await shares_for_receiver({"bracket": bracket})


async def histogram(counts: np.ndarray, bits: int, min_count: int = 0) -> dict[str, ReceiverShares]:
    """Joint counts per declared bin: the sum of every party's local bin counts.

    Inputs: ``counts`` [B], this party's count per bin. Output: ``counts`` [B];
    with ``min_count > 1`` a bin below it is released as 0, and ``suppressed`` [B]
    says which (one comparison per bin). Leakage: the (released) joint counts only.
    """
    secint = mpc.SecInt(bits)
    joint = _total(_input_all(secint, counts))
    if min_count <= 1:
        return await shares_for_receiver({"counts": joint})
    # joint counts < 2**(bits-1) (the plan's bound): a larger minimum suppresses every bin
    # either way, and the clamp keeps joint - min_count inside the comparison's range
    enough = _at_least(joint, min(min_count, 1 << (bits - 1)), bits)
    return await shares_for_receiver({"counts": joint * enough, "suppressed": 1 - enough})

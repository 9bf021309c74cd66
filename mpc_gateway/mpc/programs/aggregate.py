"""Joint aggregate statistics from every party's local fixed-shape aggregates.

Parties: all m nodes, each an MPyC party. Inputs: per group, this node's exact
integer aggregates (counts, sums, sums of squares) and its local minima and
maxima, in the shapes of the query's AggregateLayout; every party inputs arrays
of the same shape and type. Output: secret-shared joint counts/sums and the
joint minima/maxima, handed to the receiver as re-randomised shares; no party
opens anything. Output controls, when given, are evaluated inside the MPC: a
cell that fails a rule is released as zeros (extremes as the empty sentinel),
so its figures are never opened to anyone; only one bit per cell says that it
was withheld (or, where every policy opts in, which rule it failed first).
Counts and sums the policies round are rounded here too, after the controls.
Leakage: none to the parties; the receiver learns exactly the (rounded) joint
integers of the released cells and which cells were withheld (not any party's local
value, local minimum or local maximum). Threshold: t = (m-1)//2, passive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

from mpc_gateway.mpc.programs.common import input_all, round_columns, total
from mpc_gateway.mpc.programs.output import ReceiverShares, shares_for_receiver

__all__ = ["joint_aggregates"]


def _rule_bits(parts: list[Any], joint: Any, presence: Any, controls: dict[str, Any]) -> Any:
    """Per group, one secure bit per rule (1 = passes): min count, min institutions, dominance.

    Every comparison is independent of the others, so they all run in one layer.
    """
    count = joint[:, controls["count_column"]]
    rules = [count >= controls["min_count"], presence >= controls["min_institutions"]]
    columns = list(controls.get("dominance_columns", ()))
    if columns:  # no party's share of a released sum above k%: 100 * s_i <= k * total, for all i
        shares = mpc.np_stack([part[:, columns] for part in parts])
        bounds = mpc.np_stack([joint[:, columns] * controls["dominance_percent"]] * len(parts))
        fine = shares * 100 <= bounds
        rules.append(mpc.np_prod(fine.reshape(len(parts), -1, len(columns)), axis=(0, 2)))
    else:
        rules.append(count * 0 + 1)
    return mpc.np_stack(rules, axis=1)


def _first_failures(rules: Any) -> Any:
    """Per cell, 1 for the first rule it fails only (an empty and a small cell look alike)."""
    passed = [rules[:, k] for k in range(rules.shape[1])]
    failed, all_before = [], passed[0] * 0 + 1
    for bit in passed:
        failed.append(all_before * (1 - bit))
        all_before = all_before * bit
    return mpc.np_stack(failed, axis=1)


async def joint_aggregates(
    additive: np.ndarray,
    minima: np.ndarray,
    maxima: np.ndarray,
    bits: int,
    sentinel: int,
    controls: dict[str, Any] | None = None,
    presence: np.ndarray | None = None,
    rounding: list[tuple[int, int, bool]] | None = None,
) -> dict[str, ReceiverShares]:
    """Sum the additive block, reduce minima/maxima, apply output controls: receiver shares.

    ``rounding`` rounds additive columns, ``(column, step, half_even)``, after the
    controls decided on the exact figures: the receiver opens only rounded ones.
    """
    secint = mpc.SecInt(bits)
    parts = input_all(secint, additive)
    joint = total(parts)
    secure: dict[str, Any] = {"additive": joint}
    extremes = {
        name: mpc.np_amin(mpc.np_stack(input_all(secint, local)), axis=0)
        if name == "minima"
        else mpc.np_amax(mpc.np_stack(input_all(secint, local)), axis=0)
        for name, local in (("minima", minima), ("maxima", maxima))
        if local.size
    }
    if controls:
        contributors = total(input_all(secint, presence)) if presence is not None else None
        rules = _rule_bits(parts, joint, contributors, controls)
        keep = mpc.np_prod(rules, axis=1).reshape(-1, 1)  # 1 iff the cell passes every rule
        secure["additive"] = joint * keep
        for name, value in extremes.items():
            empty = sentinel if name == "minima" else -sentinel
            extremes[name] = (value - empty) * keep + empty
        if controls.get("report_rules"):
            secure["failed"] = _first_failures(rules)
        else:  # only that a cell was withheld, never why: the rules tell empty from small
            secure["withheld"] = 1 - keep
    secure.update(extremes)
    steps = [(int(c), int(s), bool(e)) for c, s, e in rounding or ()]
    secure["additive"] = round_columns(secure["additive"], steps)
    return await shares_for_receiver(secure)

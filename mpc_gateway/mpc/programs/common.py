"""What every MPC program shares: inputs from every party, sums, comparisons, maxima.

Every party calls these in the same order with arrays of the same shape (MPyC
matches messages by program counter). Comparisons are told the declared bound
of their operands, so each costs only the bits it needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpyc.runtime import mpc

__all__ = ["input_all", "total", "at_least", "maximum", "rounded", "round_columns"]


def input_all(secint: Any, local: np.ndarray) -> list[Any]:
    """Every party's array of ``local``'s shape, secret-shared (one input round)."""
    shared: list[Any] = mpc.input(
        secint.array(np.asarray(local, dtype=object)), senders=list(range(len(mpc.parties)))
    )
    return shared


def total(parts: list[Any]) -> Any:
    """The elementwise sum of the parties' arrays."""
    result = parts[0]
    for part in parts[1:]:
        result = result + part
    return result


def maximum(parts: list[Any], bits: int) -> Any:
    """Elementwise secure maximum over the parties' arrays, a tree of ceil(log2 m) layers.

    Each comparison is told the declared bound (``|a - b| < 2**(bits-1)``), so it
    costs ``bits``, not the full bit length of the secure type.
    """
    while len(parts) > 1:
        merged = []
        for a, b in zip(parts[0::2], parts[1::2]):
            below = mpc.np_sgn(a - b, l=bits, LT=True)  # 1 where a < b
            merged.append(a + below * (b - a))
        parts = merged + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0]


def at_least(value: Any, bound: Any, bits: int) -> Any:
    """Secure bits ``value >= bound`` elementwise, for ``|value - bound| < 2**(bits-1)``."""
    return 1 - mpc.np_sgn(value - bound, l=bits, LT=True)


def rounded(values: Any, step: int, half_even: bool) -> Any:
    """``values`` (1-D) rounded to the nearest multiple of ``step``, inside the MPC.

    Halves go up (counts) or to the even multiple (sums, as ``Decimal.quantize``
    with ROUND_HALF_EVEN): so the receiver opens the rounded figure only, never the
    exact one. One secure modulo reduction per element (two comparisons more for
    half-even).
    """
    if step == 1:
        return values
    out = []
    for x in mpc.np_tolist(values):
        if not half_even:
            m = x + step // 2
            out.append(m - m % step)
            continue
        pair = x % (2 * step)  # in [0, 2 step): the remainder and the quotient's parity
        odd = pair >= step
        rest = pair - odd * step
        up = (rest > step // 2) + odd * (rest == step // 2)
        out.append(x - rest + up * step)
    return mpc.np_fromlist(out)


def round_columns(table: Any, steps: list[tuple[int, int, bool]]) -> Any:
    """Columns of a 2-D array rounded: ``(column, step, half_even)`` each (see :func:`rounded`)."""
    if not steps:
        return table
    columns = [table[:, c] for c in range(table.shape[1])]
    for column, step, half_even in steps:
        columns[column] = rounded(columns[column], step, half_even)
    return mpc.np_stack(columns, axis=1)

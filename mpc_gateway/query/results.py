"""Turn reconstructed joint integers into the statistics the analyst asked for.

The receiver gets, per group, the exact joint integers of the layout (count,
sums, sums of squares in the schema's integer encoding; minima and maxima).
Means and deviations are computed here in exact rational arithmetic and only
rounded once, to the nearest float, so they are exact to float precision even
on ill-conditioned data (large values that differ little), where the usual
``E[x²] - E[x]²`` in floating point loses every digit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any

from mpc_gateway.query.plan import AggregateLayout, OutputControls, QueryPlan
from mpc_gateway.query.schema import DatasetSchema

__all__ = [
    "RULES",
    "ResultTable",
    "decode_result",
    "records",
    "recombine_shares",
    "rounded",
    "signed",
]

Scalar = int | Decimal | float | None


@dataclass(frozen=True)
class ResultTable:
    """A released result: one row per group, one value per aggregate."""

    group_by: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Scalar, ...]], ...]
    suppressed: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (group, rules it failed)

    def as_records(self) -> list[dict[str, Any]]:
        return records(self.group_by, self.columns, self.rows)


def records(
    group_by: str | None, columns: Sequence[str], rows: Sequence[tuple[str, Sequence[Scalar]]]
) -> list[dict[str, Any]]:
    """One dict per group: the group-by column (or "group") and each labelled value."""
    key = group_by or "group"
    return [{key: group, **dict(zip(columns, values))} for group, values in rows]


def recombine_shares(points: list[tuple[int, int]], modulus: int) -> int:
    """Lagrange interpolation at 0 over GF(modulus) of (x, share) points."""
    total = 0
    for i, (x_i, y_i) in enumerate(points):
        num, den = 1, 1
        for j, (x_j, _) in enumerate(points):
            if i != j:
                num = num * -x_j % modulus
                den = den * (x_i - x_j) % modulus
        total = (total + y_i * num * pow(den, -1, modulus)) % modulus
    return total


def signed(value: int, modulus: int) -> int:
    """Map a field element to the integer in (-modulus/2, modulus/2]."""
    return value - modulus if value > modulus // 2 else value


def _sqrt(value: Fraction) -> float:
    with localcontext() as ctx:
        ctx.prec = 40
        return float((Decimal(value.numerator) / Decimal(value.denominator)).sqrt())


def _statistic(func: str, count: int, s1: int, s2: int, factor: int) -> Scalar:
    if func == "count":
        return count
    if func == "sum":
        return Decimal(s1) / factor
    if func == "mean":
        return float(Fraction(s1, count * factor)) if count else None
    if count < 2:
        return None
    variance = Fraction(count * s2 - s1 * s1, count * (count - 1) * factor * factor)
    return float(variance) if func == "var" else _sqrt(variance)


def _cell(
    plan_agg: Any, layout: AggregateLayout, schema: DatasetSchema, row: dict[str, list[int]]
) -> Scalar:
    func, column = plan_agg.func, plan_agg.column
    add = row["additive"]
    count = (
        add[layout.additive_index("count", None)] if ("count", None) in layout.additive else None
    )
    if func in ("min", "max"):
        values = row["minima"] if func == "min" else row["maxima"]
        names = layout.minima if func == "min" else layout.maxima
        value = values[names.index(column)]
        if abs(value) >= layout.sentinel:
            return None
        return Decimal(value) / schema.numeric(column).factor
    factor = 1 if column is None else schema.numeric(column).factor
    s1 = add[layout.additive_index("sum", column)] if func != "count" else 0
    s2 = add[layout.additive_index("sumsq", column)] if func in ("var", "stddev") else 0
    if func == "sum":
        return _statistic(func, 0, s1, 0, factor)
    assert count is not None
    return _statistic(func, count, s1, s2, factor)


RULES = ("min_cell_count", "min_institutions", "dominance")


def rounded(value: Scalar, func: str, controls: OutputControls) -> Scalar:
    """A released value after the controls' rounding (counts to a multiple, sums to decimals)."""
    if func == "count" and isinstance(value, int) and controls.round_counts_to > 1:
        step = controls.round_counts_to
        return ((2 * value + step) // (2 * step)) * step  # to the nearest multiple, halves up
    if func == "sum" and isinstance(value, Decimal) and controls.sum_decimals is not None:
        return value.quantize(Decimal(1).scaleb(-controls.sum_decimals), rounding=ROUND_HALF_EVEN)
    return value


def decode_result(
    plan: QueryPlan,
    layout: AggregateLayout,
    schema: DatasetSchema,
    blocks: dict[str, list[int]],
) -> ResultTable:
    """Build the result table from the joint (signed) integers of each block.

    A cell the MPC withheld (its rule bits in the ``controls`` block) has no values,
    and the table's suppression report says which rules it failed.
    """
    widths = {
        "additive": len(layout.additive),
        "minima": len(layout.minima),
        "maxima": len(layout.maxima),
        "controls": len(RULES) if "controls" in blocks else 0,
    }
    rows, suppressed = [], []
    for g, group in enumerate(plan.groups):
        row = {name: blocks.get(name, [])[g * w : (g + 1) * w] for name, w in widths.items()}
        failed = tuple(rule for rule, bit in zip(RULES, row["controls"]) if bit == 0)
        if failed:
            suppressed.append((group, failed))
            values: tuple[Scalar, ...] = tuple(None for _ in plan.aggregates)
        else:
            values = tuple(
                rounded(_cell(agg, layout, schema, row), agg.func, plan.controls)
                for agg in plan.aggregates
            )
        rows.append((group, values))
    return ResultTable(
        group_by=plan.group_by,
        columns=tuple(agg.label for agg in plan.aggregates),
        rows=tuple(rows),
        suppressed=tuple(suppressed),
    )


def is_close(a: Scalar, b: Scalar, rel: float = 1e-9) -> bool:
    """Equality for released values: exact for ints and decimals, relative for floats."""
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)
    return Decimal(a) == Decimal(b)

"""Turn the released joint integers of an aggregate query into the statistics asked for.

The receiver gets, per group, the exact joint integers of the layout (count,
sums, sums of squares in the schema's integer encoding; minima and maxima).
Means and deviations are computed here in exact rational arithmetic and only
rounded once, to the nearest float, so they are exact to float precision even
on ill-conditioned data (large values that differ little), where the usual
``E[x²] - E[x]²`` in floating point loses every digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from mpc_gateway.computations.aggregate_layout import AggregateLayout
from mpc_gateway.computations.base import Display, Outcome, Request, format_value
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.schema import DatasetSchema

if TYPE_CHECKING:
    import pandas as pd

    from mpc_gateway.computations.aggregate import Aggregate, AggregatePlan

__all__ = [
    "RULES",
    "Scalar",
    "AggregateOutcome",
    "decode_result",
    "rounded",
    "is_close",
    "outcome_to_proto",
    "outcome_from_proto",
]

Scalar = int | Decimal | float | None
RULES = ("min_cell_count", "min_institutions", "dominance")


def _text(value: Scalar) -> Any:
    return str(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True)
class AggregateOutcome(Outcome):
    """A released table: one row per group of the declared domain, one value per aggregate."""

    kind = "aggregate"

    group_by: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Scalar, ...]], ...]
    suppressed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> rules failed

    def released(self) -> dict[str, Any]:
        rows = [[g, [None if v is None else str(v) for v in values]] for g, values in self.rows]
        return {
            "columns": list(self.columns),
            "rows": rows,
            "suppressed": [[g, list(rules)] for g, rules in self.suppressed.items()],
        }

    def withheld(self) -> list[dict[str, Any]]:
        return [{"group": g, "rules": list(rules)} for g, rules in self.suppressed.items()]

    def records(self) -> list[dict[str, Any]]:
        key = self.group_by or "group"
        return [{key: group, **dict(zip(self.columns, values))} for group, values in self.rows]

    def to_pandas(self) -> pd.DataFrame:
        frame: pd.DataFrame = super().to_pandas().set_index(self.group_by or "group")
        return frame

    def to_json(self, request: Request | None = None) -> dict[str, Any]:
        return {
            "group_by": self.group_by,
            "columns": list(self.columns),
            "rows": [{k: _text(v) for k, v in record.items()} for record in self.records()],
            "suppressed": {g: list(rules) for g, rules in self.suppressed.items()},
        }

    def display(self, request: Request | None = None) -> Display:
        withheld = ("withheld by",) if self.suppressed else ()
        rows = []
        for group, values in self.rows:
            rules = (", ".join(self.suppressed.get(group, ())),) if self.suppressed else ()
            rows.append((group, *(format_value(v) for v in values), *rules))
        return Display(
            columns=(self.group_by or "group", *self.columns, *withheld), rows=tuple(rows)
        )


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
    agg: Aggregate, layout: AggregateLayout, schema: DatasetSchema, row: dict[str, list[int]]
) -> Scalar:
    func, column = agg.func, agg.column
    add = row["additive"]
    if func in ("min", "max"):
        values = row["minima"] if func == "min" else row["maxima"]
        names = layout.minima if func == "min" else layout.maxima
        value = values[names.index(str(column))]
        if abs(value) >= layout.sentinel:
            return None
        return Decimal(value) / schema.numeric(str(column)).factor
    factor = 1 if column is None else schema.numeric(column).factor
    s1 = add[layout.additive_index("sum", column)] if func != "count" else 0
    s2 = add[layout.additive_index("sumsq", column)] if func in ("var", "stddev") else 0
    if func == "sum":
        return _statistic(func, 0, s1, 0, factor)
    count = add[layout.additive_index("count", None)]
    return _statistic(func, count, s1, s2, factor)


def rounded(value: Scalar, func: str, controls: OutputControls) -> Scalar:
    """A released value after the controls' rounding (counts to a multiple, sums to decimals)."""
    if func == "count" and isinstance(value, int) and controls.round_counts_to > 1:
        step = controls.round_counts_to
        return ((2 * value + step) // (2 * step)) * step  # to the nearest multiple, halves up
    if func == "sum" and isinstance(value, Decimal) and controls.sum_decimals is not None:
        return value.quantize(Decimal(1).scaleb(-controls.sum_decimals), rounding=ROUND_HALF_EVEN)
    return value


def decode_result(
    plan: AggregatePlan,
    layout: AggregateLayout,
    schema: DatasetSchema,
    blocks: dict[str, list[int]],
) -> AggregateOutcome:
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
    rows, suppressed = [], {}
    for g, group in enumerate(plan.groups):
        row = {name: blocks.get(name, [])[g * w : (g + 1) * w] for name, w in widths.items()}
        failed = tuple(rule for rule, bit in zip(RULES, row["controls"]) if bit == 0)
        if failed:
            suppressed[group] = failed
            values: tuple[Scalar, ...] = tuple(None for _ in plan.aggregates)
        else:
            values = tuple(
                rounded(_cell(agg, layout, schema, row), agg.func, plan.controls)
                for agg in plan.aggregates
            )
        rows.append((group, values))
    return AggregateOutcome(
        group_by=plan.group_by,
        columns=tuple(agg.label for agg in plan.aggregates),
        rows=tuple(rows),
        suppressed=suppressed,
    )


def is_close(a: Scalar, b: Scalar, rel: float = 1e-9) -> bool:
    """Equality for released values: exact for ints and decimals, relative for floats."""
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)
    return Decimal(a) == Decimal(b)


def _value_to_proto(value: Scalar) -> gateway_pb2.Value:
    if value is None:
        return gateway_pb2.Value(null=True)
    if isinstance(value, int):
        return gateway_pb2.Value(int_value=int(value))
    if isinstance(value, Decimal):
        return gateway_pb2.Value(decimal_value=str(value))
    return gateway_pb2.Value(float_value=float(value))


def _value_from_proto(value: gateway_pb2.Value) -> Scalar:
    kind = value.WhichOneof("kind")
    if kind == "int_value":
        return value.int_value
    if kind == "decimal_value":
        return Decimal(value.decimal_value)
    if kind == "float_value":
        return value.float_value
    return None


def outcome_to_proto(outcome: AggregateOutcome) -> gateway_pb2.AggregateOutcome:
    rows = [
        gateway_pb2.ResultRow(
            group=group,
            values=[_value_to_proto(v) for v in values],
            suppressed_by=outcome.suppressed.get(group, ()),
        )
        for group, values in outcome.rows
    ]
    return gateway_pb2.AggregateOutcome(
        group_by=outcome.group_by or "", columns=outcome.columns, rows=rows
    )


def outcome_from_proto(message: gateway_pb2.AggregateOutcome) -> AggregateOutcome:
    return AggregateOutcome(
        group_by=message.group_by or None,
        columns=tuple(message.columns),
        rows=tuple((r.group, tuple(_value_from_proto(v) for v in r.values)) for r in message.rows),
        suppressed={r.group: tuple(r.suppressed_by) for r in message.rows if r.suppressed_by},
    )

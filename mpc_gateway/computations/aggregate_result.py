"""Turn the released joint integers of an aggregate query into the statistics asked for.

The receiver gets, per group, the joint integers of the layout (count, sums,
sums of squares in the schema's integer encoding, exact or noisy; minima and
maxima). Counts and sums are released after the controls' rounding; means and
deviations are computed from those released figures (so no value undoes the
rounding or the noise of another), in exact rational arithmetic, and only
rounded once, to the nearest float: exact to float precision even on
ill-conditioned data (large values that differ little), where the usual
``E[x²] - E[x]²`` in floating point loses every digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from mpc_gateway.computations.aggregate_layout import AggregateLayout, Stat
from mpc_gateway.computations.base import Display, Outcome, Request, format_value
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.query.schema import DatasetSchema

if TYPE_CHECKING:
    import pandas as pd

    from mpc_gateway.computations.aggregate import Aggregate, AggregatePlan

__all__ = [
    "RULES",
    "WITHHELD",
    "Scalar",
    "AggregateOutcome",
    "decode_result",
    "rounded",
    "is_close",
]

Scalar = int | Decimal | float | None
RULES = ("min_cell_count", "min_institutions", "dominance")
WITHHELD = "withheld"
"""A withheld cell's only reason, unless every policy lets the first rule it failed be named."""


def _text(value: Scalar) -> Any:
    return str(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True)
class AggregateOutcome(Outcome):
    """A released table: one row per cell of the declared domain(s), one value per aggregate.

    A row's group is its cell's label: the group-by value, ``*`` without a group-by,
    or, for a cross tab (``group_columns``, more than one column), the cell's values
    joined by ``", "``, with the values themselves in ``cells`` (one per row).
    """

    kind = "aggregate"

    group_by: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Scalar, ...]], ...]
    suppressed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> rules failed
    group_columns: tuple[str, ...] = ()
    cells: tuple[tuple[str, ...], ...] = ()

    def released(self) -> dict[str, Any]:
        rows = [[g, [None if v is None else str(v) for v in values]] for g, values in self.rows]
        released: dict[str, Any] = {
            "columns": list(self.columns),
            "rows": rows,
            "suppressed": [[g, list(rules)] for g, rules in self.suppressed.items()],
        }
        if self.group_columns:
            released["group_columns"] = list(self.group_columns)
            released["cells"] = [list(cell) for cell in self.cells]
        return released

    def withheld(self) -> list[dict[str, Any]]:
        return [{"group": g, "rules": list(rules)} for g, rules in self.suppressed.items()]

    def keys(self) -> tuple[str, ...]:
        """The names of the columns that identify a row (the group-by columns, or ``group``)."""
        return self.group_columns or (self.group_by or "group",)

    def _key_values(self) -> list[tuple[str, ...]]:
        return list(self.cells) if self.group_columns else [(g,) for g, _ in self.rows]

    def records(self) -> list[dict[str, Any]]:
        return [
            {**dict(zip(self.keys(), key)), **dict(zip(self.columns, values))}
            for key, (_, values) in zip(self._key_values(), self.rows)
        ]

    def to_pandas(self) -> pd.DataFrame:
        frame: pd.DataFrame = super().to_pandas().set_index(list(self.keys()))
        return frame

    def to_json(self, request: Request | None = None) -> dict[str, Any]:
        return {
            "group_by": list(self.group_columns) if self.group_columns else self.group_by,
            "columns": list(self.columns),
            "rows": [{k: _text(v) for k, v in record.items()} for record in self.records()],
            "suppressed": {g: list(rules) for g, rules in self.suppressed.items()},
        }

    def display(self, request: Request | None = None) -> Display:
        withheld = ("withheld by",) if self.suppressed else ()
        rows = []
        for key, (group, values) in zip(self._key_values(), self.rows):
            rules = (", ".join(self.suppressed.get(group, ())),) if self.suppressed else ()
            rows.append((*key, *(format_value(v) for v in values), *rules))
        return Display(columns=(*self.keys(), *self.columns, *withheld), rows=tuple(rows))


def _sqrt(value: Fraction) -> float:
    with localcontext() as ctx:
        ctx.prec = 40
        return float((Decimal(value.numerator) / Decimal(value.denominator)).sqrt())


class _Cell:
    """One cell's released figures: its count and sums as released (rounded, or noisy),
    and everything else computed from those, never from exact values kept back."""

    def __init__(self, layout: AggregateLayout, schema: DatasetSchema, row: dict[str, list[int]]):
        self.layout, self.schema, self.row = layout, schema, row
        self.controls = layout.controls

    def _raw(self, stat: Stat, column: str | None) -> int:
        """The joint value of an additive column, in the schema's encoding."""
        index = self.layout.additive_index(stat, column)
        return self.row["additive"][index] * self.layout.unit(stat, column)

    def count(self) -> int:
        released = rounded(max(self._raw("count", None), 0), "count", self.controls)
        assert isinstance(released, int)
        return released

    def sum(self, column: str) -> Decimal:
        value = Decimal(self._raw("sum", column)) / self.schema.numeric(column).factor
        released = rounded(value, "sum", self.controls)
        assert isinstance(released, Decimal)
        return released

    def value(self, agg: Aggregate) -> Scalar:
        func, column = agg.func, agg.column
        if func == "count":
            return self.count()
        assert column is not None
        if func in ("min", "max"):
            return self._extreme(func, column)
        if func == "sum":
            return self.sum(column)
        n = self.count()
        if func == "mean":
            return (
                _within(float(Fraction(self.sum(column)) / n), self.schema, column) if n else None
            )
        if n < 2:
            return None
        factor = self.schema.numeric(column).factor
        total = Fraction(self.sum(column))
        squares = Fraction(self._raw("sumsq", column), factor * factor)
        variance = max((squares - total * total / n) / (n - 1), Fraction(0))
        return float(variance) if func == "var" else _sqrt(variance)

    def _extreme(self, func: str, column: str) -> Scalar:
        values = self.row["minima"] if func == "min" else self.row["maxima"]
        names = self.layout.minima if func == "min" else self.layout.maxima
        value = values[names.index(column)]
        if abs(value) >= self.layout.sentinel:
            return None
        return Decimal(value) / self.schema.numeric(column).factor


def _within(mean: float, schema: DatasetSchema, column: str) -> float:
    """A mean clamped to the column's declared bounds (noise can push it past them)."""
    spec = schema.numeric(column)
    return min(max(mean, float(spec.min)), float(spec.max))


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

    A cell the MPC withheld has no values; the table's suppression report says
    that it was withheld (block ``withheld``) or, where every policy opts in, the
    first rule it failed (block ``failed``, one bit per rule).
    """
    widths = {
        "additive": len(layout.additive),
        "minima": len(layout.minima),
        "maxima": len(layout.maxima),
        "failed": len(RULES) if "failed" in blocks else 0,
        "withheld": 1 if "withheld" in blocks else 0,
    }
    rows, suppressed = [], {}
    for g, key in enumerate(plan.groups):
        group = ", ".join(key)
        row = {name: blocks.get(name, [])[g * w : (g + 1) * w] for name, w in widths.items()}
        failed = tuple(rule for rule, bit in zip(RULES, row["failed"]) if bit == 1)
        if row["withheld"] == [1]:
            failed = (WITHHELD,)
        if failed:
            suppressed[group] = failed
            values: tuple[Scalar, ...] = tuple(None for _ in plan.aggregates)
        else:
            cell = _Cell(layout, schema, row)
            values = tuple(cell.value(agg) for agg in plan.aggregates)
        rows.append((group, values))
    cross = len(plan.group_by) > 1
    return AggregateOutcome(
        group_by=None if cross else next(iter(plan.group_by), None),
        columns=tuple(agg.label for agg in plan.aggregates),
        rows=tuple(rows),
        suppressed=suppressed,
        group_columns=plan.group_by if cross else (),
        cells=plan.groups if cross else (),
    )


def is_close(a: Scalar, b: Scalar, rel: float = 1e-9) -> bool:
    """Equality for released values: exact for ints and decimals, relative for floats."""
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)
    return Decimal(a) == Decimal(b)

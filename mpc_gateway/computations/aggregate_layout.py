"""The fixed shape of an aggregate query's secure inputs, and a node's local pre-aggregates.

:func:`layout_for` turns a plan into its :class:`AggregateLayout`: which exact
integer aggregates each node secret-shares per group, and the bit lengths that
make the secure computation exact for the schema's declared bounds.
:func:`local_aggregates` is a node's side: one parameterised ``GROUP BY`` over
its table ``data``, returning the layout's fixed-shape integer arrays; the rows
themselves never leave it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import numpy as np

from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.query.schema import DatasetSchema
from mpc_gateway.query.sql import Where, ident

if TYPE_CHECKING:
    from mpc_gateway.computations.aggregate import AggregatePlan

__all__ = ["ALL_ROWS", "Stat", "AggregateLayout", "layout_for", "local_aggregates"]

ALL_ROWS = "*"
"""The one group of a query without a group-by."""

Stat = Literal["count", "sum", "sumsq"]


@dataclass(frozen=True)
class AggregateLayout:
    """Per group, the exact integers each node contributes, and how the MPC treats them.

    ``additive`` columns are summed across nodes; ``minima``/``maxima`` columns
    are reduced with secure comparisons. Values are the schema's integer
    encoding (value x 10**scale); an empty cell contributes ``sentinel`` to
    minima and ``-sentinel`` to maxima, which the joint count exposes as empty.
    ``bits`` is the secure integer size that keeps every sum, square sum,
    comparison and dominance product exact for the schema's declared bounds.
    """

    additive: tuple[tuple[Stat, str | None], ...]
    minima: tuple[str, ...]
    maxima: tuple[str, ...]
    bits: int
    sentinel: int
    controls: OutputControls

    def additive_index(self, stat: Stat, column: str | None) -> int:
        return self.additive.index((stat, column))

    def mpc_controls(self) -> dict[str, object] | None:
        """The output controls as the MPC program takes them (None: nothing to evaluate)."""
        if not self.controls.evaluated_in_mpc:
            return None
        sums = [i for i, (stat, _) in enumerate(self.additive) if stat == "sum"]
        return {
            "count_column": self.additive_index("count", None),
            "min_count": self.controls.min_cell_count,
            "min_institutions": self.controls.min_institutions,
            "dominance_percent": self.controls.dominance_percent,
            "dominance_columns": sums if self.controls.dominance_percent is not None else [],
        }


_NEEDS: dict[str, tuple[Stat, ...]] = {
    "count": ("count",),
    "sum": ("sum",),
    "mean": ("count", "sum"),
    "var": ("count", "sum", "sumsq"),
    "stddev": ("count", "sum", "sumsq"),
}


def layout_for(plan: AggregatePlan, schema: DatasetSchema, parties: int) -> AggregateLayout:
    """The fixed shape and bit lengths of the secure inputs for ``plan``."""
    additive: list[tuple[Stat, str | None]] = []
    minima: list[str] = []
    maxima: list[str] = []
    for agg in plan.aggregates:
        if agg.func in ("min", "max"):
            (minima if agg.func == "min" else maxima).append(str(agg.column))
            continue
        for stat in _NEEDS[agg.func]:
            key: tuple[Stat, str | None] = (stat, None if stat == "count" else agg.column)
            if key not in additive:
                additive.append(key)
    if plan.controls.evaluated_in_mpc and ("count", None) not in additive:
        additive.insert(0, ("count", None))
    rows = schema.max_rows_per_node * parties
    bound = rows
    for stat, column in additive:
        if column is not None:
            magnitude = schema.numeric(column).magnitude
            power = 2 if stat == "sumsq" else 1
            bound = max(bound, rows * magnitude**power * (100 if power == 1 else 1))
    sentinel = 1 + max([schema.numeric(c).magnitude for c in minima + maxima], default=0)
    return AggregateLayout(
        additive=tuple(additive),
        minima=tuple(minima),
        maxima=tuple(maxima),
        bits=max(bound, 2 * sentinel).bit_length() + 2,
        sentinel=sentinel,
        controls=plan.controls,
    )


def local_aggregates(
    cursor: duckdb.DuckDBPyConnection,
    plan: AggregatePlan,
    layout: AggregateLayout,
    where: Where = ("TRUE", []),
) -> dict[str, np.ndarray]:
    """This node's fixed-shape integer aggregates for ``plan``, one row per group."""
    exprs = ["count(*)"]
    for stat, column in layout.additive:
        if stat == "sum":
            exprs.append(f"sum({ident(str(column))})")
        elif stat == "sumsq":
            exprs.append(f"sum(CAST({ident(str(column))} AS HUGEINT) * {ident(str(column))})")
    exprs += [f"min({ident(c)})" for c in layout.minima]
    exprs += [f"max({ident(c)})" for c in layout.maxima]
    group = ident(plan.group_by) if plan.group_by else f"'{ALL_ROWS}'"
    condition, params = where
    sql = f"SELECT {group}, {', '.join(exprs)} FROM data WHERE {condition} GROUP BY 1"
    # fetchall: a cursor reused by the node must not keep a pending result
    return _shape(plan, layout, cursor.execute(sql, params).fetchall())


def _shape(
    plan: AggregatePlan, layout: AggregateLayout, rows: list[tuple[Any, ...]]
) -> dict[str, np.ndarray]:
    groups = {g: i for i, g in enumerate(plan.groups)}
    n_add, n_min = len(layout.additive), len(layout.minima)
    additive = np.zeros((len(groups), n_add), dtype=object)
    minima = np.full((len(groups), n_min), layout.sentinel, dtype=object)
    maxima = np.full((len(groups), len(layout.maxima)), -layout.sentinel, dtype=object)
    for group, count, *values in rows:
        g = groups[group]
        sums = iter(values)
        for k, (stat, _) in enumerate(layout.additive):
            additive[g, k] = int(count) if stat == "count" else int(next(sums) or 0)
        extremes = list(sums)
        minima[g, :] = [int(v) for v in extremes[:n_min]]
        maxima[g, :] = [int(v) for v in extremes[n_min:]]
    shaped = {"additive": additive, "minima": minima, "maxima": maxima}
    if layout.mpc_controls():  # whether this institution has records in each cell
        counts = additive[:, layout.additive_index("count", None)]
        shaped["presence"] = np.array([1 if c > 0 else 0 for c in counts], dtype=object)
    return shaped

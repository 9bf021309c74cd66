"""The fixed shape of an aggregate query's secure inputs, and a node's local pre-aggregates.

:func:`layout_for` turns a plan into its :class:`AggregateLayout`: which exact
integer aggregates each node secret-shares per group, and the bit lengths that
make the secure computation exact for the schema's declared bounds.
:func:`local_aggregates` is a node's side: one parameterised ``GROUP BY`` over
its table ``data``, returning the layout's fixed-shape integer arrays; the rows
themselves never leave it.

Under differential privacy (``controls.dp_rho``) every additive column is a
noisy release: one record moves a cell's count by 1 and a sum (of squares) by at
most the column's declared magnitude (squared), so those are the sensitivities;
:func:`~mpc_gateway.privacy.calibrate` gives each column its noise scale, and a
column whose scale would be too large for exact 64-bit sampling is released in a
coarser ``unit`` (each node rounds its sum to it, which adds 1 to the
sensitivity). Each node adds its noise to its own inputs (:func:`add_noise`), so
the sum the MPC opens is noisy, and every output control inside the MPC decides
on noisy figures: the minimum count on the noisy joint count, dominance on each
institution's noisy sums, and an institution's presence on its noisy count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.privacy import MAX_SCALE, NoisyRelease, calibrate, sample
from mpc_gateway.privacy.noise import TAIL
from mpc_gateway.query.schema import DatasetSchema
from mpc_gateway.query.sql import QueryCursor, Where, ident

if TYPE_CHECKING:
    from mpc_gateway.computations.aggregate import AggregatePlan

__all__ = ["ALL_ROWS", "Stat", "AggregateLayout", "layout_for", "local_aggregates", "add_noise"]

ALL_ROWS = "*"
"""The one group of a query without a group-by."""

Stat = Literal["count", "sum", "sumsq"]


@dataclass(frozen=True)
class AggregateLayout:
    """Per cell, the exact integers each node contributes, and how the MPC treats them.

    A cell is one combination of the group-by columns' values (the product of their
    domains, in the plan's order), so every output control and every noise draw
    applies per cell.

    ``additive`` columns are summed across nodes; ``minima``/``maxima`` columns
    are reduced with secure comparisons. Values are the schema's integer
    encoding (value x 10**scale); an empty cell contributes ``sentinel`` to
    minima and ``-sentinel`` to maxima, which the joint count exposes as empty.
    ``bits`` is the secure integer size that keeps every sum, square sum,
    comparison and dominance product exact for the schema's declared bounds.
    Under DP, ``noise`` holds each additive column's release (sensitivity and
    scale in its ``units``); without, every unit is 1 and ``noise`` is empty.
    """

    additive: tuple[tuple[Stat, str | None], ...]
    minima: tuple[str, ...]
    maxima: tuple[str, ...]
    bits: int
    sentinel: int
    controls: OutputControls
    units: tuple[int, ...] = ()
    noise: tuple[NoisyRelease, ...] = ()
    rounding: tuple[tuple[int, int, bool], ...] = ()  # (additive column, step, half-even)

    def unit(self, stat: Stat, column: str | None) -> int:
        return self.units[self.additive_index(stat, column)] if self.units else 1

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
            "report_rules": self.controls.report_rules,
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
    needs_count = plan.controls.evaluated_in_mpc or plan.controls.dp_rho is not None
    if needs_count and ("count", None) not in additive:
        additive.insert(0, ("count", None))
    magnitudes = [_magnitude(schema, stat, column) for stat, column in additive]
    units, noise = _noise(plan.controls, additive, magnitudes)
    rows = schema.max_rows_per_node * parties
    bound = rows
    for k, (stat, _) in enumerate(additive):
        unit = units[k] if units else 1
        headroom = parties * TAIL * int(noise[k].scale) if noise else 0  # every node's noise
        exact = rows * -(-magnitudes[k] // unit) * (100 if stat == "sum" else 1)
        bound = max(bound, exact + 100 * headroom)
    sentinel = 1 + max([schema.numeric(c).magnitude for c in minima + maxima], default=0)
    return AggregateLayout(
        additive=tuple(additive),
        minima=tuple(minima),
        maxima=tuple(maxima),
        bits=max(bound, 2 * sentinel).bit_length() + 2,
        sentinel=sentinel,
        controls=plan.controls,
        units=units,
        noise=noise,
        rounding=() if noise else _rounding(plan.controls, additive, schema),
    )


def _rounding(
    controls: OutputControls, additive: list[tuple[Stat, str | None]], schema: DatasetSchema
) -> tuple[tuple[int, int, bool], ...]:
    """The rounding the MPC applies to an exact release (under DP, noise protects instead).

    Counts to a multiple of ``round_counts_to`` (halves up), sums to ``sum_decimals``
    places (half-even): in the column's integer units, a multiple of 10^(scale - d).
    """
    steps = []
    for k, (stat, column) in enumerate(additive):
        if stat == "count" and controls.round_counts_to > 1:
            steps.append((k, controls.round_counts_to, False))
        elif stat == "sum" and column is not None and controls.sum_decimals is not None:
            scale = schema.numeric(column).scale
            if controls.sum_decimals < scale:
                steps.append((k, 10 ** (scale - controls.sum_decimals), True))
    return tuple(steps)


def _magnitude(schema: DatasetSchema, stat: Stat, column: str | None) -> int:
    """The most one record adds to the column: 1 to a count, |x| or x² at most to a sum."""
    if column is None:
        return 1
    return int(schema.numeric(column).magnitude ** (2 if stat == "sumsq" else 1))


def _noise(
    controls: OutputControls, additive: list[tuple[Stat, str | None]], magnitudes: list[int]
) -> tuple[tuple[int, ...], tuple[NoisyRelease, ...]]:
    """Each column's unit and noisy release under ``controls.dp_rho`` (nothing without DP)."""
    if controls.dp_rho is None:
        return (), ()
    names = [stat if column is None else f"{stat}({column})" for stat, column in additive]
    # one common multiplier s for every column (sigma_k = s * sensitivity_k): find s, then
    # count each column in the smallest unit that keeps s * sensitivity within exact sampling
    step = max(
        r.scale / r.sensitivity
        for r in calibrate(controls.dp_rho, dict.fromkeys(names, 1)).values()
    )
    units = []
    for magnitude in magnitudes:
        unit = 1
        while step * -(-magnitude // unit) > MAX_SCALE / 10:
            unit *= 10
        units.append(unit)
    # a node rounds its sum to the unit once: one record moves it by at most ceil(m/u) + 1
    sensitivities = {
        n: m if u == 1 else -(-m // u) + 1 for n, m, u in zip(names, magnitudes, units)
    }
    releases = calibrate(controls.dp_rho, sensitivities)
    return tuple(units), tuple(releases[n] for n in names)


PRESENCE_SCALES = 3
"""Under DP, an institution counts towards ``min_institutions`` in a cell when its noisy
count reaches this many noise scales (an empty one does so with probability ~0.1%)."""


def add_noise(layout: AggregateLayout, local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This node's inputs with its own noise added to every additive value (under DP).

    Whether the institution is present in a cell is then decided on its noisy
    count too, so no released bit depends on an exact figure.
    """
    if not layout.noise:
        return local
    additive = local["additive"].copy()
    groups = additive.shape[0]
    for k, release in enumerate(layout.noise):
        additive[:, k] = additive[:, k] + sample(release.scale, groups)
    noisy = {**local, "additive": additive}
    if "presence" in local:
        count = layout.additive_index("count", None)
        floor = math.ceil(PRESENCE_SCALES * layout.noise[count].scale)
        noisy["presence"] = np.array([int(c >= floor) for c in additive[:, count]], dtype=object)
    return noisy


def local_aggregates(
    cursor: QueryCursor,
    plan: AggregatePlan,
    layout: AggregateLayout,
    where: Where = ("TRUE", []),
) -> dict[str, np.ndarray]:
    """This node's fixed-shape integer aggregates for ``plan``, one row per group."""
    exprs = ["count(*)"]
    for stat, column in layout.additive:
        value = ident(str(column))
        if stat == "count":
            continue
        term = value if stat == "sum" else f"CAST({value} AS HUGEINT) * {value}"
        exprs.append(f"sum({term})")
    exprs += [f"min({ident(c)})" for c in layout.minima]
    exprs += [f"max({ident(c)})" for c in layout.maxima]
    groups = [ident(c) for c in plan.group_by] or [f"'{ALL_ROWS}'"]
    keys = ", ".join(str(i + 1) for i in range(len(groups)))
    condition, params = where
    sql = (
        f"SELECT {', '.join(groups)}, {', '.join(exprs)} FROM data WHERE {condition} "
        f"GROUP BY {keys}"
    )
    # fetchall: a cursor reused by the node must not keep a pending result
    return _shape(plan, layout, cursor.execute(sql, params).fetchall())


def _shape(
    plan: AggregatePlan, layout: AggregateLayout, rows: list[tuple[Any, ...]]
) -> dict[str, np.ndarray]:
    groups = {g: i for i, g in enumerate(plan.groups)}
    width = len(plan.groups[0])  # the cell key: one value per group-by column
    n_add, n_min = len(layout.additive), len(layout.minima)
    additive = np.zeros((len(groups), n_add), dtype=object)
    minima = np.full((len(groups), n_min), layout.sentinel, dtype=object)
    maxima = np.full((len(groups), len(layout.maxima)), -layout.sentinel, dtype=object)
    for row in rows:
        g = groups[tuple(str(v) for v in row[:width])]
        count, *values = row[width:]
        sums = iter(values)
        for k, (stat, _) in enumerate(layout.additive):
            additive[g, k] = int(count) if stat == "count" else int(next(sums) or 0)
        extremes = list(sums)
        minima[g, :] = [int(v) for v in extremes[:n_min]]
        maxima[g, :] = [int(v) for v in extremes[n_min:]]
    for k, unit in enumerate(layout.units):
        if unit > 1:  # under DP: this node's sum in units of the noise's resolution
            additive[:, k] = [(int(v) + unit // 2) // unit for v in additive[:, k]]
    shaped = {"additive": additive, "minima": minima, "maxima": maxima}
    if layout.mpc_controls():  # whether this institution has records in each cell
        counts = additive[:, layout.additive_index("count", None)]
        shaped["presence"] = np.array([1 if c > 0 else 0 for c in counts], dtype=object)
    return shaped

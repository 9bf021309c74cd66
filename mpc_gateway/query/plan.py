"""The canonical query plan and the fixed-shape layout every node derives from it.

A :class:`QueryPlan` is the validated query with everything the nodes need to
agree on: the dataset's schema hash, the group domain, the analyst and the
purpose. Its canonical JSON bytes are what the gateway signs and what approvals
and audit entries refer to; :attr:`QueryPlan.plan_hash` identifies that exact
query.

:func:`layout_for` turns a plan into the :class:`AggregateLayout`: which exact
integer aggregates each node secret-shares per group, and the bit lengths that
make the secure computation exact for the schema's declared bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mpc_gateway.canonical import canonical_bytes, canonical_hash
from mpc_gateway.query.models import Aggregate, Filter, QuerySpec, validate_spec
from mpc_gateway.query.schema import DatasetSchema

__all__ = [
    "ALL_ROWS",
    "OutputControls",
    "SignedPlan",
    "QueryPlan",
    "AggregateLayout",
    "build_plan",
    "layout_for",
]

ALL_ROWS = "*"


class OutputControls(BaseModel):
    """Disclosure controls applied to every released cell (inside the MPC where they decide).

    A cell is released only if it has at least ``min_cell_count`` records, records
    from at least ``min_institutions`` institutions, and (with ``dominance_percent``)
    no institution holds more than that share of any released sum. Released counts
    are rounded to a multiple of ``round_counts_to``, released sums to ``sum_decimals``
    places (both after the MPC, by the gateway, which sees the exact values).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_cell_count: int = Field(default=0, ge=0)
    min_institutions: int = Field(default=0, ge=0)
    dominance_percent: int | None = Field(default=None, ge=1, le=100)
    round_counts_to: int = Field(default=1, ge=1)
    sum_decimals: int | None = Field(default=None, ge=0, le=6)

    @property
    def evaluated_in_mpc(self) -> bool:
        return (
            self.min_cell_count > 1
            or self.min_institutions > 1
            or self.dominance_percent is not None
        )

    def stricter(self, other: OutputControls) -> OutputControls:
        """The strictest of both, rule by rule."""

        def lowest(a: int | None, b: int | None) -> int | None:
            present = [v for v in (a, b) if v is not None]
            return min(present) if present else None

        return OutputControls(
            min_cell_count=max(self.min_cell_count, other.min_cell_count),
            min_institutions=max(self.min_institutions, other.min_institutions),
            dominance_percent=lowest(self.dominance_percent, other.dominance_percent),
            round_counts_to=max(self.round_counts_to, other.round_counts_to),
            sum_decimals=lowest(self.sum_decimals, other.sum_decimals),
        )

    def at_least_as_strict_as(self, other: OutputControls) -> bool:
        return self.stricter(other) == self


class SignedPlan(BaseModel):
    """A plan as nodes execute it and approvers sign it: canonical bytes, and their hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def canonical(self) -> bytes:
        return canonical_bytes(self.model_dump(mode="json"))

    @cached_property
    def plan_hash(self) -> str:
        return canonical_hash(self.model_dump(mode="json"))


class QueryPlan(SignedPlan):
    """A validated query in the form nodes execute and approvers sign."""

    version: Literal[1] = 1
    analyst: str
    dataset: str
    schema_hash: str
    aggregates: tuple[Aggregate, ...] = Field(min_length=1)
    filter: Filter | None = None
    group_by: str | None = None
    groups: tuple[str, ...] = Field(min_length=1)
    purpose: str = ""
    controls: OutputControls = OutputControls()


def build_plan(
    spec: QuerySpec,
    schema: DatasetSchema,
    analyst: str,
    controls: OutputControls | None = None,
) -> QueryPlan:
    """Validate ``spec`` against ``schema`` and fix everything nodes must agree on."""
    validate_spec(spec, schema)
    groups = schema.categorical(spec.group_by).domain if spec.group_by else (ALL_ROWS,)
    return QueryPlan(
        analyst=analyst,
        dataset=schema.name,
        schema_hash=schema.schema_hash,
        aggregates=spec.aggregates,
        filter=spec.filter,
        group_by=spec.group_by,
        groups=groups,
        purpose=spec.purpose,
        controls=controls or OutputControls(),
    )


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


def layout_for(plan: QueryPlan, schema: DatasetSchema, parties: int) -> AggregateLayout:
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

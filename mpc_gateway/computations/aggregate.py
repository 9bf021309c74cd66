"""Joint aggregate tables: count, sum, mean, variance, deviation, minimum, maximum per group.

The analyst's :class:`AggregateRequest` names aggregates, an optional filter and
an ordered tuple of categorical group-by columns (none, one, or a cross tab of
several); :func:`build_plan` checks it against the dataset's schema and fixes
everything nodes must agree on (the cells: the product of the columns' declared
domains, the analyst, the purpose) in an :class:`AggregatePlan`. A cross tab
whose product domain has more cells than the schema's ``max_group_cells`` is
refused with its size. Nodes
pre-aggregate locally (:mod:`~mpc_gateway.computations.aggregate_layout`), the
MPC program (``aggregate:joint_aggregates``) adds the exact integers up and
applies the output controls, and the receiver decodes the released integers
(:mod:`~mpc_gateway.computations.aggregate_result`).

Disclosure: the receiver learns the released cells (after the output controls
and rounding, both inside the MPC); the gateway relays them sealed to the
receiver and learns none of them; nodes learn the query, never the result.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mpc_gateway.computations.aggregate_layout import (
    ALL_ROWS,
    add_noise,
    layout_for,
    local_aggregates,
)
from mpc_gateway.computations.aggregate_result import (
    AggregateOutcome,
    decode_result,
)
from mpc_gateway.computations.base import (
    Blocks,
    Computation,
    LocalData,
    Plan,
    Planning,
    ProgramCall,
    Request,
)
from mpc_gateway.computations.disclosure import gateway_relays
from mpc_gateway.errors import IntegrityError, InvalidQueryError
from mpc_gateway.policy.controls import OutputControls
from mpc_gateway.policy.declaration import ColumnUse, Declaration
from mpc_gateway.privacy import NoisyRelease
from mpc_gateway.proto.v1 import gateway_pb2
from mpc_gateway.query.filters import usable_column, validate_filter
from mpc_gateway.query.schema import CategoricalColumn, ColumnName, DatasetSchema, NumericColumn

__all__ = [
    "AGGREGATES",
    "ALL_ROWS",
    "Aggregate",
    "AggregateRequest",
    "AggregatePlan",
    "Aggregates",
    "GroupBy",
    "build_plan",
    "check_cells",
    "group_columns",
    "parse_aggregate",
    "validate_spec",
]

AggFunc = Literal["count", "sum", "mean", "var", "stddev", "min", "max"]
AGGREGATES: tuple[str, ...] = ("count", "sum", "mean", "var", "stddev", "min", "max")


class Aggregate(BaseModel):
    """One aggregate of a query: a function and (except for count) a numeric column."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    func: AggFunc
    column: ColumnName | None = None

    @property
    def label(self) -> str:
        return self.func if self.column is None else f"{self.func}({self.column})"


def _split(text: str) -> tuple[str, str]:
    """``"count"``, ``"mean:exposure"`` or ``"mean(exposure)"`` as (function, column)."""
    text = text.strip()
    if text.endswith(")") and "(" in text:
        func, column = text[:-1].split("(", 1)
    else:
        func, _, column = text.partition(":")
    return func.strip().lower(), column.strip()


def parse_aggregate(text: str) -> Aggregate:
    """``"count"`` or ``"mean:exposure"`` (also ``"mean(exposure)"``) as an :class:`Aggregate`."""
    func, column = _split(text)
    if func not in AGGREGATES:
        supported = ", ".join(AGGREGATES)
        raise InvalidQueryError(f"unsupported aggregate {func[:40]!r}; supported: {supported}")
    try:
        return Aggregate.model_validate({"func": func, "column": column or None})
    except ValidationError:
        raise InvalidQueryError(
            f"aggregate {func}: {ascii(column[:70])} is not a column name ([a-z_][a-z0-9_]{{0,62}})"
        ) from None


def group_columns(value: Any) -> Any:
    """Group-by columns as a tuple: None or "" for none, ``"a,b"`` or ``["a", "b"]`` for several.

    An empty name between commas (``","``, ``"a,,b"``) is refused, not dropped: the
    query would otherwise silently group by fewer columns than it names.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        return value
    parts = [
        part.strip() if isinstance(part, str) else part
        for item in items
        for part in (item.split(",") if isinstance(item, str) else [item])
    ]
    if any(part == "" for part in parts):
        raise ValueError("group_by names a column between every pair of commas")
    return tuple(parts)


GroupBy = tuple[ColumnName, ...]
"""The ordered group-by columns (empty: one cell over every matching row)."""


class AggregateRequest(Request):
    kind: Literal["aggregate"] = "aggregate"
    aggregates: tuple[Aggregate, ...] = Field(min_length=1, max_length=32)
    group_by: GroupBy = Field(default=(), max_length=8)

    _columns = field_validator("group_by", mode="before")(group_columns)

    @classmethod
    def of(
        cls, dataset: str, aggregates: list[str] | tuple[str, ...], **fields: Any
    ) -> AggregateRequest:
        """A request from aggregate texts such as ``["count", "mean:exposure"]``."""
        return cls(
            dataset=dataset, aggregates=tuple(parse_aggregate(a) for a in aggregates), **fields
        )


def _check_aggregate(schema: DatasetSchema, agg: Aggregate) -> None:
    if agg.func == "count":
        if agg.column is not None:
            raise InvalidQueryError("count takes no column: it counts the rows that match")
        return
    if agg.column is None:
        raise InvalidQueryError(f"{agg.func} needs a numeric column, e.g. {agg.func}:exposure")
    if not isinstance(usable_column(schema, agg.column, f"aggregate {agg.func}"), NumericColumn):
        raise InvalidQueryError(
            f"{agg.func}({agg.column}) needs a numeric column; {agg.column!r} is categorical"
        )


def check_cells(schema: DatasetSchema, group_by: Sequence[str]) -> None:
    """Refuse a cross tab whose product domain has more cells than the schema allows."""
    cells = math.prod(len(schema.categorical(c).domain) for c in group_by)
    if cells > schema.max_group_cells:
        sizes = " x ".join(str(len(schema.categorical(c).domain)) for c in group_by)
        raise InvalidQueryError(
            f"group by {', '.join(group_by)}: {cells:,} cells ({sizes}, the product of "
            f"the declared domains) is more than {schema.name!r} allows "
            f"(max_group_cells = {schema.max_group_cells:,})"
        )


def validate_spec(spec: AggregateRequest, schema: DatasetSchema) -> None:
    """Raise InvalidQueryError unless ``spec`` can run against ``schema``."""
    if spec.dataset != schema.name:
        raise InvalidQueryError(f"query is for {spec.dataset!r}, schema is {schema.name!r}")
    labels = [agg.label for agg in spec.aggregates]
    if len(set(labels)) != len(labels):
        raise InvalidQueryError("an aggregate is listed twice")
    for agg in spec.aggregates:
        _check_aggregate(schema, agg)
    if len(set(spec.group_by)) != len(spec.group_by):
        raise InvalidQueryError("a group-by column is listed twice")
    for column in spec.group_by:
        if not isinstance(usable_column(schema, column, "group by"), CategoricalColumn):
            raise InvalidQueryError(
                f"group by needs a categorical column with a declared domain; {column!r} is numeric"
            )
    check_cells(schema, spec.group_by)
    if spec.filter is not None:
        validate_filter(schema, spec.filter)


class AggregatePlan(Plan):
    """A validated aggregate query in the form nodes execute and approvers sign."""

    kind: Literal["aggregate"] = "aggregate"
    aggregates: tuple[Aggregate, ...] = Field(min_length=1)
    group_by: GroupBy = ()
    groups: tuple[tuple[str, ...], ...] = Field(min_length=1)
    """The cells, in order: the product of the group-by columns' domains (one cell without)."""

    _columns = field_validator("group_by", mode="before")(group_columns)

    def declaration(self) -> Declaration:
        uses = [ColumnUse(a.column, "aggregate", a.func) for a in self.aggregates if a.column]
        uses += [ColumnUse(column, "group_by") for column in self.group_by]
        extremes = sorted({a.label for a in self.aggregates if a.func in ("min", "max")})
        blocker = (
            f"{', '.join(extremes)} release single values, which noise cannot protect"
            if extremes
            else None
        )
        return Declaration(uses=tuple(uses), dp_blocker=blocker)

    def disclosure(self, institutions: list[str]) -> list[dict[str, str]]:
        output = self.controls
        labels = ", ".join(agg.label for agg in self.aggregates)
        cells = (
            f"per {' x '.join(self.group_by)}"
            if self.group_by
            else "over all matching rows (one cell)"
        )
        analyst = f"{self.analyst} receives {labels} {cells} {_conditions(output)}"
        analyst += _rounding(output)
        if output.dp_rho is not None:
            analyst += (
                "; every count and sum carries discrete Gaussian noise drawn inside the MPC, "
                f"and the query costs ρ {output.dp_rho} (zCDP) of the privacy budgets"
            )
        if output.evaluated_in_mpc:
            analyst += "; suppressed cells are reported as withheld, without values"
            if output.report_rules:
                analyst += ", with the rules they failed"
        nodes = ", ".join(institutions) or "the nodes"
        return [
            {"to": self.analyst, "text": analyst},
            gateway_relays(self.analyst),
            {
                "to": nodes,
                "text": f"{nodes} learn the query (it is in the signed order) and its timing, "
                "not the result nor each other's inputs",
            },
        ]


def _conditions(output: OutputControls) -> str:
    parts = []
    if output.min_cell_count > 1:
        parts.append(f"at least {output.min_cell_count} records")
    if output.min_institutions > 1:
        parts.append(f"{output.min_institutions} institutions")
    text = "for cells with " + " and ".join(parts) if parts else "for every cell"
    if output.dominance_percent is not None:
        text += f" where no institution makes up more than {output.dominance_percent}% of a sum"
    return text


def _rounding(output: OutputControls) -> str:
    parts = []
    if output.round_counts_to > 1:
        parts.append(f"counts rounded to a multiple of {output.round_counts_to}")
    if output.sum_decimals is not None:
        places = output.sum_decimals
        parts.append(
            "sums rounded to whole units" if places == 0 else f"sums rounded to {places} decimals"
        )
    return f" ({'; '.join(parts)})" if parts else ""


def build_plan(
    spec: AggregateRequest,
    schema: DatasetSchema,
    analyst: str,
    controls: OutputControls | None = None,
) -> AggregatePlan:
    """Validate ``spec`` against ``schema`` and fix everything nodes must agree on."""
    validate_spec(spec, schema)
    domains = [schema.categorical(c).domain for c in spec.group_by] or [(ALL_ROWS,)]
    groups = tuple(itertools.product(*domains))
    return AggregatePlan(
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


class Aggregates(Computation[AggregateRequest, AggregatePlan, AggregateOutcome]):
    """The aggregate computation, as the gateway, the nodes and the receiver use it."""

    kind = "aggregate"
    request_type = AggregateRequest
    plan_type = AggregatePlan
    outcome_type = AggregateOutcome

    def build(
        self, request: AggregateRequest, schema: DatasetSchema, planning: Planning
    ) -> AggregatePlan:
        return build_plan(request, schema, planning.analyst)

    def check(self, plan: AggregatePlan, schema: DatasetSchema, parties: int) -> None:
        spec = AggregateRequest(
            dataset=plan.dataset,
            aggregates=plan.aggregates,
            filter=plan.filter,
            group_by=plan.group_by,
            purpose=plan.purpose,
        )
        if build_plan(spec, schema, plan.analyst, plan.controls) != plan:
            raise IntegrityError("the order's plan differs from the one this node derives from it")

    def local_inputs(
        self, plan: AggregatePlan, step: dict[str, Any], data: LocalData
    ) -> ProgramCall:
        layout = layout_for(plan, data.schema, data.parties)
        local = local_aggregates(data.cursor, plan, layout, data.where)
        if data.holds_data:  # a helper's zeros stay exact: no presence, no noise
            local = add_noise(layout, local)
        args = {
            **local,
            "bits": layout.bits,
            "sentinel": layout.sentinel,
            "controls": layout.mpc_controls(),
            "rounding": [list(step) for step in layout.rounding],
        }
        return ProgramCall("aggregate:joint_aggregates", args)

    def noise(self, plan: AggregatePlan, schema: DatasetSchema, parties: int) -> list[NoisyRelease]:
        layout = layout_for(plan, schema, parties)
        shown = []
        for release, (stat, column), unit in zip(layout.noise, layout.additive, layout.units):
            factor = 1 if column is None else schema.numeric(column).factor
            shown.append(release.in_units(Decimal(unit) / factor ** (2 if stat == "sumsq" else 1)))
        return shown

    def decode(
        self, plan: AggregatePlan, blocks: Blocks, schema: DatasetSchema, parties: int
    ) -> AggregateOutcome:
        return decode_result(plan, layout_for(plan, schema, parties), schema, blocks)

    def request_from_proto(
        self, message: gateway_pb2.AggregateJob, common: dict[str, Any]
    ) -> AggregateRequest:
        aggregates = tuple(
            parse_aggregate(f"{a.func}:{a.column}" if a.column else a.func)
            for a in message.aggregates
        )
        if not aggregates:
            raise InvalidQueryError("a query needs at least one aggregate, e.g. count")
        return AggregateRequest.model_validate(
            {"aggregates": aggregates, "group_by": message.group_by, **common}
        )

    def job_message(
        self,
        aggregates: Sequence[str | Aggregate] = (),
        group_by: str | Sequence[str] | None = None,
    ) -> gateway_pb2.AggregateJob:
        """``aggregates`` like ``["count", "mean:exposure"]`` (or ``"mean(exposure)"``).

        ``group_by`` is one column, several (a cross tab), or ``"a,b"``.
        """
        specs = []
        for item in aggregates:
            func, column = (
                (str(item.func), item.column or "") if isinstance(item, Aggregate) else _split(item)
            )
            specs.append(gateway_pb2.AggregateSpec(func=func, column=column))
        text = group_by if isinstance(group_by, str) else ",".join(group_by or ())
        return gateway_pb2.AggregateJob(aggregates=specs, group_by=text)  # the gateway checks it

"""Query models: what an analyst asks, checked against a dataset schema.

A :class:`QuerySpec` is what arrives from a client; :func:`validate_spec` checks
it against the :class:`~mpc_gateway.query.schema.DatasetSchema` and raises
:class:`~mpc_gateway.errors.InvalidQueryError` with a message naming the
offending part. Filter literals are kept as text (decimal or category), so the
canonical plan built from them contains no floats.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, KeyColumn, NumericColumn

__all__ = [
    "AGGREGATES",
    "Aggregate",
    "Comparison",
    "InList",
    "BoolExpr",
    "Filter",
    "QuerySpec",
    "validate_spec",
    "validate_filter",
]

AggFunc = Literal["count", "sum", "mean", "var", "stddev", "min", "max"]
AGGREGATES: tuple[str, ...] = ("count", "sum", "mean", "var", "stddev", "min", "max")
CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Aggregate(_Frozen):
    func: AggFunc
    column: str | None = None

    @property
    def label(self) -> str:
        return self.func if self.column is None else f"{self.func}({self.column})"


class Comparison(_Frozen):
    kind: Literal["cmp"] = "cmp"
    column: str
    op: CompareOp
    value: str


class InList(_Frozen):
    kind: Literal["in"] = "in"
    column: str
    values: tuple[str, ...] = Field(min_length=1, max_length=1000)
    negate: bool = False


class BoolExpr(_Frozen):
    kind: Literal["and", "or"]
    items: tuple[Filter, ...] = Field(min_length=2)


Filter = Annotated[Comparison | InList | BoolExpr, Field(discriminator="kind")]
BoolExpr.model_rebuild()


class QuerySpec(_Frozen):
    dataset: str
    aggregates: tuple[Aggregate, ...] = Field(min_length=1, max_length=32)
    filter: Filter | None = None
    group_by: str | None = None
    purpose: str = Field(default="", max_length=500)


def _column(schema: DatasetSchema, name: str, role: str) -> NumericColumn | CategoricalColumn:
    if name not in schema.columns:
        known = ", ".join(
            sorted(n for n, c in schema.columns.items() if not isinstance(c, KeyColumn))
        )
        raise InvalidQueryError(
            f"unknown column {name!r} in {role}; dataset {schema.name!r} has: {known}"
        )
    column = schema.columns[name]
    if isinstance(column, KeyColumn):
        raise InvalidQueryError(
            f"{name!r} is an entity key: it only matches entities in risk computations "
            f"and cannot be used in {role}"
        )
    return column


def _check_aggregate(schema: DatasetSchema, agg: Aggregate) -> None:
    if agg.func == "count":
        if agg.column is not None:
            raise InvalidQueryError("count takes no column: it counts the rows that match")
        return
    if agg.column is None:
        raise InvalidQueryError(f"{agg.func} needs a numeric column, e.g. {agg.func}:exposure")
    if not isinstance(_column(schema, agg.column, f"aggregate {agg.func}"), NumericColumn):
        raise InvalidQueryError(
            f"{agg.func}({agg.column}) needs a numeric column; {agg.column!r} is categorical"
        )


def _check_numeric_literal(column: str, text: str) -> None:
    try:
        value = Decimal(text)
    except InvalidOperation as err:
        raise InvalidQueryError(f"{column!r} is numeric; {text!r} is not a number") from err
    if not value.is_finite():
        raise InvalidQueryError(f"{column!r} is numeric; {text!r} is not a finite number")


def validate_filter(schema: DatasetSchema, node: Comparison | InList | BoolExpr) -> None:
    if isinstance(node, BoolExpr):
        for item in node.items:
            validate_filter(schema, item)
        return
    column = _column(schema, node.column, "filter")
    literals = (node.value,) if isinstance(node, Comparison) else node.values
    if isinstance(column, CategoricalColumn):
        if isinstance(node, Comparison) and node.op not in ("=", "!="):
            raise InvalidQueryError(
                f"{node.column!r} is categorical: use =, != or IN, not {node.op}"
            )
        for text in literals:
            if text not in column.domain:
                raise InvalidQueryError(
                    f"{text!r} is not in the declared domain of {node.column!r}"
                )
    else:
        for text in literals:
            _check_numeric_literal(node.column, text)


def validate_spec(spec: QuerySpec, schema: DatasetSchema) -> None:
    """Raise InvalidQueryError unless ``spec`` can run against ``schema``."""
    if spec.dataset != schema.name:
        raise InvalidQueryError(f"query is for {spec.dataset!r}, schema is {schema.name!r}")
    labels = [agg.label for agg in spec.aggregates]
    if len(set(labels)) != len(labels):
        raise InvalidQueryError("an aggregate is listed twice")
    for agg in spec.aggregates:
        _check_aggregate(schema, agg)
    if spec.group_by is not None and not isinstance(
        _column(schema, spec.group_by, "group by"), CategoricalColumn
    ):
        raise InvalidQueryError(
            f"group by needs a categorical column with a declared domain; "
            f"{spec.group_by!r} is numeric"
        )
    if spec.filter is not None:
        validate_filter(schema, spec.filter)

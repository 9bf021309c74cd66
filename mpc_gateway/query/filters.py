"""Row filters every computation shares: the tree an analyst's WHERE becomes, and its checks.

A filter is a tree of :class:`Comparison` and :class:`InList` leaves joined by
:class:`BoolExpr`. Literals are kept as text (decimal or category), so a plan
that contains a filter has a canonical form without floats.
:func:`validate_filter` checks a tree against a
:class:`~mpc_gateway.query.schema.DatasetSchema` and raises
:class:`~mpc_gateway.errors.InvalidQueryError` naming the offending part.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.query.schema import (
    CategoricalColumn,
    ColumnName,
    DatasetSchema,
    KeyColumn,
    NumericColumn,
)

__all__ = [
    "MAX_LITERAL_CHARS",
    "Comparison",
    "InList",
    "BoolExpr",
    "Filter",
    "FilterNode",
    "filter_leaves",
    "usable_column",
    "validate_filter",
]

CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]

MAX_LITERAL_CHARS = 200
"""The longest literal a filter may hold (a category value or a number, as text)."""

FilterLiteral = Annotated[str, Field(max_length=MAX_LITERAL_CHARS)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Comparison(_Frozen):
    kind: Literal["cmp"] = "cmp"
    column: ColumnName
    op: CompareOp
    value: FilterLiteral


class InList(_Frozen):
    kind: Literal["in"] = "in"
    column: ColumnName
    values: tuple[FilterLiteral, ...] = Field(min_length=1, max_length=1000)
    negate: bool = False


class BoolExpr(_Frozen):
    kind: Literal["and", "or"]
    items: tuple[Filter, ...] = Field(min_length=2, max_length=1000)


Filter = Annotated[Comparison | InList | BoolExpr, Field(discriminator="kind")]
FilterNode = Comparison | InList | BoolExpr
BoolExpr.model_rebuild()


def filter_leaves(node: FilterNode | None) -> Iterator[Comparison | InList]:
    """Every comparison and list test of the tree, left to right."""
    if node is None:
        return
    if isinstance(node, BoolExpr):
        for item in node.items:
            yield from filter_leaves(item)
    else:
        yield node


def usable_column(schema: DatasetSchema, name: str, role: str) -> NumericColumn | CategoricalColumn:
    """The numeric or categorical column ``name``; an InvalidQueryError saying why not."""
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


def _check_numeric_literal(name: str, column: NumericColumn, text: str) -> None:
    """A finite number within the column's declared bounds (nodes encode nothing else)."""
    try:
        value = Decimal(text)
    except InvalidOperation as err:
        raise InvalidQueryError(f"{name!r} is numeric; {text!r} is not a number") from err
    if not value.is_finite():
        raise InvalidQueryError(f"{name!r} is numeric; {text!r} is not a finite number")
    if not column.min <= value <= column.max:
        raise InvalidQueryError(
            f"{text!r} is outside the declared bounds of {name!r} "
            f"[{column.min}, {column.max}]: no row can have that value"
        )


def validate_filter(schema: DatasetSchema, node: FilterNode) -> None:
    """Raise InvalidQueryError unless every leaf of ``node`` fits ``schema``."""
    for leaf in filter_leaves(node):
        column = usable_column(schema, leaf.column, "filter")
        literals = (leaf.value,) if isinstance(leaf, Comparison) else leaf.values
        if isinstance(column, CategoricalColumn):
            if isinstance(leaf, Comparison) and leaf.op not in ("=", "!="):
                raise InvalidQueryError(
                    f"{leaf.column!r} is categorical: use =, != or IN, not {leaf.op}"
                )
            for text in literals:
                if text not in column.domain:
                    raise InvalidQueryError(
                        f"{text!r} is not in the declared domain of {leaf.column!r}"
                    )
        else:
            for text in literals:
                _check_numeric_literal(leaf.column, column, text)

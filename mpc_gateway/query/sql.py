"""The SQL a node runs for any computation: quoted names and a filter over encoded values.

A node's table ``data`` holds every numeric column in its exact integer
encoding (value x 10**scale) and every categorical column as an ENUM of its
domain. :func:`filter_sql` turns a validated filter tree into a parameterised
``WHERE`` condition over that table whose meaning is exactly the filter's on
the decimal values, whatever the literals' precision.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Protocol

from mpc_gateway.query.filters import BoolExpr, Comparison, FilterNode
from mpc_gateway.query.schema import DatasetSchema, NumericColumn, scaled_exactly

__all__ = ["Where", "QueryCursor", "QueryResult", "ident", "filter_sql", "where_sql"]

Where = tuple[str, list[Any]]
"""A condition's SQL text and its parameters."""


class QueryResult(Protocol):
    def fetchall(self) -> list[Any]: ...


class QueryCursor(Protocol):
    """What a computation's local SQL runs on: a DuckDB cursor, or a source that speaks it.

    Statements are in DuckDB's dialect over the table ``data``; ``?`` marks each
    parameter. ``register`` makes a data frame joinable under a name until
    ``unregister`` (a batch of entity keys).
    """

    def execute(self, query: str, parameters: Any = ..., /) -> QueryResult: ...

    def register(self, name: str, frame: Any, /) -> object: ...

    def unregister(self, name: str, /) -> object: ...


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _encoded_literal(schema: DatasetSchema, column: str, text: str) -> int | str | None:
    """A literal in the column's integer encoding; None for a number no encoded value equals."""
    spec = schema.columns[column]
    if not isinstance(spec, NumericColumn):
        return text
    return _integral(scaled_exactly(Decimal(text), spec.scale))


def _integral(value: Decimal) -> int | None:
    return int(value) if value == value.to_integral_value() else None


# Comparing an integer column with a non-integral bound: round the bound the way that keeps
# the comparison's meaning exact (x > 2.5 is x > 2; x < 2.5 is x < 3; x = 2.5 never holds).
_ROUNDED = {">": ROUND_FLOOR, ">=": ROUND_CEILING, "<": ROUND_CEILING, "<=": ROUND_FLOOR}


def _comparison_sql(schema: DatasetSchema, node: Comparison) -> Where:
    column = ident(node.column)
    spec = schema.columns[node.column]
    if not isinstance(spec, NumericColumn):
        return f"({column} {node.op} ?)", [node.value]
    scaled = scaled_exactly(Decimal(node.value), spec.scale)
    if (literal := _integral(scaled)) is not None:
        return f"({column} {node.op} ?)", [literal]
    if node.op in ("=", "!="):
        return ("(FALSE)" if node.op == "=" else "(TRUE)"), []
    return f"({column} {node.op} ?)", [int(scaled.to_integral_value(rounding=_ROUNDED[node.op]))]


def filter_sql(schema: DatasetSchema, node: FilterNode) -> Where:
    """SQL text and parameters for a validated filter tree (over encoded values)."""
    if isinstance(node, BoolExpr):
        parts = [filter_sql(schema, item) for item in node.items]
        joiner = " AND " if node.kind == "and" else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [p for _, ps in parts for p in ps]
    if isinstance(node, Comparison):
        return _comparison_sql(schema, node)
    values = [
        v for v in (_encoded_literal(schema, node.column, t) for t in node.values) if v is not None
    ]
    if not values:
        return ("(TRUE)" if node.negate else "(FALSE)"), []
    marks = ", ".join("?" for _ in values)
    negation = "NOT " if node.negate else ""
    return f"({ident(node.column)} {negation}IN ({marks}))", values


def where_sql(schema: DatasetSchema, node: FilterNode | None) -> Where:
    """The condition for an optional filter: ``TRUE`` without one."""
    return filter_sql(schema, node) if node is not None else ("TRUE", [])

"""A statement's SELECT list and ORDER BY: which aggregates, which group columns, which order.

Every supported function maps onto an aggregate the flag query has (or onto a
quantile level), under the spellings PostgreSQL, DuckDB and MySQL share:

=====================================================  =======================
SQL                                                    aggregate
=====================================================  =======================
``COUNT(*)``, ``COUNT(col)`` (columns hold no nulls)   ``count``
``SUM(col)``                                           ``sum:col``
``AVG(col)``                                           ``mean:col``
``VAR_SAMP(col)``, ``VARIANCE(col)``                   ``var:col``
``STDDEV_SAMP(col)``, ``STDDEV(col)``                  ``stddev:col``
``MIN(col)``, ``MAX(col)``                             ``min:col``, ``max:col``
``PERCENTILE_DISC(q) WITHIN GROUP (ORDER BY col)``,    quantile of ``col`` at q
``QUANTILE_DISC(col, q)``, ``QUANTILE(col, q)``
``PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col)``,    interpolated quantile
``QUANTILE_CONT(col, q)``, ``MEDIAN(col)`` (q = 0.5)   (``linear``)
=====================================================  =======================

``VARIANCE`` and ``STDDEV`` are the sample statistics, as in PostgreSQL and DuckDB;
the population ones (``VAR_POP``, ``STDDEV_POP``, MySQL's ``STD``) have no joint
computation here and are refused with the spelling that has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlglot import exp

from mpc_gateway.computations.aggregate import Aggregate
from mpc_gateway.computations.quantile_search import Interpolation
from mpc_gateway.errors import InvalidQueryError

__all__ = ["Item", "OrderKey", "read_items", "read_order"]

_FUNCS: dict[type[exp.Expression], str] = {
    exp.Sum: "sum",
    exp.Avg: "mean",
    exp.Variance: "var",
    exp.StddevSamp: "stddev",
    exp.Stddev: "stddev",
    exp.Min: "min",
    exp.Max: "max",
}
_WITHIN_GROUP = "write {name}(q) WITHIN GROUP (ORDER BY col), or QUANTILE_{kind}(col, q)"
_POPULATION = (
    "{name} is the population statistic, which is not computed; "
    "VAR_SAMP and STDDEV_SAMP (sample statistics) are"
)


class Names(Protocol):
    """What reading the SELECT list needs from the statement's context."""

    def refuse(self, node: exp.Expression | None, reason: str) -> InvalidQueryError: ...

    def column(self, column: exp.Column, role: str = "filter") -> str: ...

    def numeric(self, column: exp.Column, func: str) -> str: ...


@dataclass(frozen=True)
class Item:
    """One entry of the SELECT list: a group column, an aggregate, or a quantile level."""

    node: exp.Expression
    output: str  # the released column's name: the group column, "mean(exposure)", "0.5"
    alias: str = ""
    aggregate: Aggregate | None = None
    level: str | None = None
    column: str | None = None
    interpolation: Interpolation = "discrete"


Percentile = tuple[str, str, Interpolation]
"""A percentile's column, level and interpolation."""


@dataclass(frozen=True)
class OrderKey:
    """Sort the released rows by ``column`` (a released column's name)."""

    column: str
    descending: bool = False


def _argument(ctx: Names, node: exp.Expression, arg: exp.Expression | None, func: str) -> str:
    if not isinstance(arg, exp.Column):
        raise ctx.refuse(
            arg if arg is not None else node,
            f"{func.upper()} takes a declared column, not an expression",
        )
    return ctx.numeric(arg, func)


def _level(ctx: Names, node: exp.Expression) -> str:
    if not isinstance(node, exp.Literal) or node.is_string:
        raise ctx.refuse(node, "a percentile's level is a number in (0, 1], e.g. 0.5")
    return str(node.this)


def _percentile(ctx: Names, node: exp.WithinGroup) -> Percentile:
    inner = node.this
    if not isinstance(inner, exp.PercentileDisc | exp.PercentileCont):
        raise ctx.refuse(node, "WITHIN GROUP is supported for PERCENTILE_DISC and _CONT only")
    name = "percentile_cont" if isinstance(inner, exp.PercentileCont) else "percentile_disc"
    order = node.expression.expressions if node.expression is not None else []
    if len(order) != 1 or order[0].args.get("desc"):
        raise ctx.refuse(node, f"{name.upper()} orders by one column, ascending")
    column, level = _argument(ctx, node, order[0].this, name), _level(ctx, inner.this)
    return column, level, "linear" if name == "percentile_cont" else "discrete"


def _anonymous(ctx: Names, node: exp.Anonymous) -> Percentile:
    name = str(node.name).lower()
    if name in ("quantile_disc", "quantile_cont") and len(node.expressions) == 2:
        column, level = node.expressions
        interpolation: Interpolation = "linear" if name == "quantile_cont" else "discrete"
        return _argument(ctx, node, column, name), _level(ctx, level), interpolation
    if name == "std":
        raise ctx.refuse(node, _POPULATION.format(name="STD"))
    raise ctx.refuse(
        node, f"unknown function {name.upper()}: see docs/sql.md for what is supported"
    )


def _function(ctx: Names, node: exp.Expression) -> Aggregate | Percentile:
    """An aggregate, or a percentile."""
    if isinstance(node, exp.Count):
        arg = node.this
        if isinstance(arg, exp.Distinct):
            raise ctx.refuse(node, "COUNT(DISTINCT ...) is not supported: it needs row values")
        if not isinstance(arg, exp.Star):
            if not isinstance(arg, exp.Column):
                raise ctx.refuse(node, "COUNT takes * or a declared column")
            ctx.column(arg, "aggregate count")
        return Aggregate(func="count")
    func = _FUNCS.get(type(node))
    if func is not None:
        column = _argument(ctx, node, node.this, func)
        return Aggregate.model_validate({"func": func, "column": column})
    if isinstance(node, exp.WithinGroup):
        return _percentile(ctx, node)
    if isinstance(node, exp.Anonymous):
        return _anonymous(ctx, node)
    if isinstance(node, exp.VariancePop | exp.StddevPop):
        name = "VAR_POP" if isinstance(node, exp.VariancePop) else "STDDEV_POP"
        raise ctx.refuse(node, _POPULATION.format(name=name))
    if isinstance(node, exp.Median):
        return _argument(ctx, node, node.this, "median"), "0.5", "linear"
    if isinstance(node, exp.Quantile):  # DuckDB's QUANTILE(col, q) is QUANTILE_DISC
        column = _argument(ctx, node, node.this, "quantile")
        return column, _level(ctx, node.args["quantile"]), "discrete"
    if isinstance(node, exp.PercentileCont | exp.PercentileDisc):
        cont = isinstance(node, exp.PercentileCont)
        name, kind = ("PERCENTILE_CONT", "CONT") if cont else ("PERCENTILE_DISC", "DISC")
        raise ctx.refuse(node, _WITHIN_GROUP.format(name=name, kind=kind))
    if isinstance(node, exp.Filter):
        raise ctx.refuse(node, "FILTER (WHERE ...) is not supported: put the condition in WHERE")
    if isinstance(node, exp.Star):
        raise ctx.refuse(node, "SELECT * would release individual rows")
    if isinstance(node, exp.AggFunc):
        raise ctx.refuse(node, f"{node.key.upper()} is not supported: see docs/sql.md")
    raise ctx.refuse(
        node, "a statement selects group columns and aggregates of declared columns only"
    )


def read_items(
    ctx: Names, expressions: list[exp.Expression], group_by: tuple[str, ...]
) -> list[Item]:
    """The SELECT list, checked: bare columns only when grouped by, aggregates as mapped."""
    items = []
    for entry in expressions:
        node, alias = (
            (entry.this, str(entry.alias)) if isinstance(entry, exp.Alias) else (entry, "")
        )
        if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
            name = ctx.column(node, "select")
            if name not in group_by:
                raise ctx.refuse(
                    node,
                    f"{name!r} outside GROUP BY would release individual rows: "
                    "select group columns and aggregates only",
                )
            items.append(Item(node, name, alias))
            continue
        found = _function(ctx, node)
        if isinstance(found, Aggregate):
            items.append(Item(node, found.label, alias, aggregate=found))
        else:
            column, level, interpolation = found
            if alias:
                raise ctx.refuse(entry, "a percentile is labelled by its level: no alias")
            items.append(Item(node, level, level=level, column=column, interpolation=interpolation))
    return items


def _ordered_column(ctx: Names, term: exp.Expression, items: list[Item]) -> str:
    if isinstance(term, exp.Literal) and not term.is_string and str(term.this).isdigit():
        index = int(term.this)
        if not 1 <= index <= len(items):
            raise ctx.refuse(term, f"ORDER BY {index}: the statement selects {len(items)} columns")
        return items[index - 1].output
    if isinstance(term, exp.Column) and not term.table:
        name = str(term.name)
        for item in items:
            grouped = item.aggregate is None and item.level is None
            if name == item.alias or (grouped and name == item.output):
                return item.output
    for item in items:
        if term == item.node:
            return item.output
    raise ctx.refuse(
        term,
        "ORDER BY sorts the released result: name a selected column, alias, aggregate or position",
    )


def read_order(ctx: Names, order: exp.Order | None, items: list[Item]) -> tuple[OrderKey, ...]:
    """ORDER BY as keys over the released columns (applied to released values only)."""
    if order is None:
        return ()
    keys = []
    for ordered in order.expressions:
        column = _ordered_column(ctx, ordered.this, items)
        keys.append(OrderKey(column, bool(ordered.args.get("desc"))))
    return tuple(keys)

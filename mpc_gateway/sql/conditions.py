"""A statement's WHERE clause as the filter tree every computation shares.

Only what :mod:`mpc_gateway.query.filters` can say is accepted: comparisons of a
column with a literal (either side), ``IN`` / ``NOT IN`` lists, ``BETWEEN``
(two comparisons), ``AND`` / ``OR`` / ``NOT`` and parentheses. ``NOT`` is pushed
down to the leaves (De Morgan; ``NOT a < 1`` is ``a >= 1``), since the filter tree
has no negation node. A chain of one operator becomes one node, as the flag
query's filter parser builds it, so a WHERE clause and the same ``--where`` text
give the same tree (and the same plan hash). Literals keep their text as written.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import ValidationError
from sqlglot import exp

from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.query.filters import BoolExpr, Comparison, Filter, InList
from mpc_gateway.sql.errors import problem

__all__ = ["filter_of"]


class Names(Protocol):
    """What reading a condition needs from the statement's context."""

    def refuse(self, node: exp.Expression | None, reason: str) -> InvalidQueryError: ...

    def column(self, column: exp.Column, role: str = "filter") -> str: ...

    def check(self, node: exp.Expression, leaf: Filter) -> None: ...


_OPS: dict[type[exp.Expression], str] = {
    exp.EQ: "=",
    exp.NEQ: "!=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NEGATED = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


class _Reader:
    def __init__(self, ctx: Names) -> None:
        self.ctx, self.column, self.refuse = ctx, ctx.column, ctx.refuse

    def literal(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
            if not node.this.is_string:
                return "-" + str(node.this.this)
        if isinstance(node, exp.Literal):
            return str(node.this)
        raise self.refuse(
            node, "a condition compares a column with a number or a 'text' literal, nothing else"
        )

    def read(self, node: exp.Expression, negate: bool = False) -> Filter:
        if isinstance(node, exp.Paren):
            return self.read(node.this, negate)
        if isinstance(node, exp.Not):
            return self.read(node.this, not negate)
        if isinstance(node, exp.And | exp.Or):
            conjunction = isinstance(node, exp.And) != negate  # De Morgan under NOT
            kind: Literal["and", "or"] = "and" if conjunction else "or"
            items: list[Filter] = []
            for part in (node.this, node.expression):
                item = self.read(part, negate)
                same = isinstance(item, BoolExpr) and item.kind == kind
                if same and not isinstance(part, exp.Paren) and isinstance(item, BoolExpr):
                    items.extend(item.items)
                else:
                    items.append(item)
            return BoolExpr(kind=kind, items=tuple(items))
        leaf: Filter
        try:
            if isinstance(node, exp.In):
                leaf = self.in_list(node, negate)
            elif isinstance(node, exp.Between):
                leaf = self.between(node, negate)
            elif type(node) in _OPS:
                leaf = self.comparison(node, negate)
            else:
                raise self.unsupported(node)
        except ValidationError as err:  # e.g. a literal longer than a filter value may be
            raise self.refuse(node, problem(err)) from None
        self.ctx.check(node, leaf)
        return leaf

    def unsupported(self, node: exp.Expression) -> InvalidQueryError:
        if isinstance(node, exp.Is):
            return self.refuse(node, "IS NULL never holds: a dataset's columns have no nulls")
        return self.refuse(
            node,
            "a condition is a comparison (=, !=, <>, <, <=, >, >=), IN, NOT IN or BETWEEN "
            "of a column with literals, joined by AND, OR and NOT",
        )

    def comparison(self, node: exp.Expression, negate: bool) -> Comparison:
        op = _OPS[type(node)]
        left, right = node.this, node.expression
        if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
            left, right, op = right, left, _FLIPPED[op]
        if not isinstance(left, exp.Column):
            raise self.refuse(node, "a comparison needs a column on one side")
        name = self.column(left)
        value = self.literal(right)
        return Comparison.model_validate(
            {"column": name, "op": _NEGATED[op] if negate else op, "value": value}
        )

    def in_list(self, node: exp.In, negate: bool) -> InList:
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise self.refuse(node, "subqueries are not supported: IN takes a list of literals")
        if not isinstance(node.this, exp.Column):
            raise self.refuse(node, "IN tests a column")
        name = self.column(node.this)
        values = tuple(self.literal(v) for v in node.expressions)
        if not values:
            raise self.refuse(node, "IN needs at least one value")
        return InList(column=name, values=values, negate=negate)

    def between(self, node: exp.Between, negate: bool) -> Filter:
        if not isinstance(node.this, exp.Column):
            raise self.refuse(node, "BETWEEN tests a column")
        name = self.column(node.this)
        low, high = self.literal(node.args["low"]), self.literal(node.args["high"])
        if negate:
            items = (
                Comparison(column=name, op="<", value=low),
                Comparison(column=name, op=">", value=high),
            )
            return BoolExpr(kind="or", items=items)
        items = (
            Comparison(column=name, op=">=", value=low),
            Comparison(column=name, op="<=", value=high),
        )
        return BoolExpr(kind="and", items=items)


def filter_of(where: exp.Expression, ctx: Names) -> Filter:
    """The filter tree of a WHERE condition; a refusal pointing at what it cannot say."""
    return _Reader(ctx).read(where)

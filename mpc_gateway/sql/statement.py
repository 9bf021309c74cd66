"""A SQL statement read into the request a flag query would make (docs/sql.md).

:func:`read_statement` parses one ``SELECT`` with sqlglot and maps its syntax tree
onto the existing request models, nothing else: aggregates and ``GROUP BY`` onto
an :class:`~mpc_gateway.computations.aggregate.AggregateRequest`,
``PERCENTILE_DISC(q)`` and ``PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col)`` onto a
:class:`~mpc_gateway.computations.quantile.QuantileRequest`, ``WHERE`` onto the
shared filter tree. The request is then planned and checked by policies exactly
like the flag query's, so both have the same canonical plan and plan hash; the
statement text rides along for the audit log only.

What the SQL adds beyond the request is presentation, applied by the receiver to
the released values only (:mod:`mpc_gateway.sql.present`): column aliases,
``ORDER BY`` and ``LIMIT``. Everything else is refused with its position and a
reason (:mod:`mpc_gateway.sql.errors`). With the datasets' schemas at hand (the
gateway), unknown datasets and columns are refused at their position too; without
(the receiver's own reading), planning refuses them later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from pydantic import ValidationError
from sqlglot import exp, tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from mpc_gateway.computations import Request
from mpc_gateway.computations.aggregate import AggregateRequest, check_cells
from mpc_gateway.computations.base import MAX_STATEMENT_CHARS
from mpc_gateway.computations.quantile import QuantileRequest
from mpc_gateway.errors import InvalidQueryError
from mpc_gateway.query.filters import Filter, usable_column, validate_filter
from mpc_gateway.query.schema import CategoricalColumn, DatasetSchema, NumericColumn
from mpc_gateway.query.where import MAX_FILTER_DEPTH
from mpc_gateway.sql.conditions import filter_of
from mpc_gateway.sql.errors import position, problem, refusal, refusal_at
from mpc_gateway.sql.select import Item, OrderKey, read_items, read_order

__all__ = ["MAX_STATEMENT_CHARS", "Statement", "OrderKey", "read_statement"]

# Clauses a statement may carry; any other (DISTINCT, HAVING, WINDOW, QUALIFY, OFFSET,
# joins, CTEs, ...) is refused with its own reason below or the generic one.
_ALLOWED = {"expressions", "from_", "where", "group", "order", "limit", "kind"}
_REASONS = {
    "joins": "joins across institutions are not supported: every node holds rows of the "
    "same dataset, so there is nothing to join",
    "with_": "WITH (common table expressions) is not supported: ask one SELECT over a dataset",
    "distinct": "SELECT DISTINCT would release individual values: ask aggregates per group",
    "having": "HAVING is not supported: a condition on a cell's values would have to be "
    "evaluated on secret values; the output controls decide which cells are released",
    "offset": "OFFSET is not supported: use ORDER BY with LIMIT",
    "qualify": "window functions are not supported: they work on individual rows",
    "windows": "window functions are not supported: they work on individual rows",
    "laterals": "LATERAL is not supported: ask one SELECT over a dataset",
}

# What may follow the dataset's name in FROM: an alias; nothing else changes which rows are read.
_TABLE_REASONS = {
    "sample": "TABLESAMPLE is not supported: a query reads every row its filter selects",
    "version": "time travel (FOR ... AS OF) is not supported: nodes hold their current rows",
    "when": "time travel (AT, BEFORE) is not supported: nodes hold their current rows",
    "pivots": "PIVOT and UNPIVOT are not supported: ask aggregates per group",
    "hints": "table hints are not supported",
}


class _Analyst(Dialect):
    """sqlglot's own dialect, with MySQL's backtick-quoted identifiers besides double quotes."""

    class Tokenizer(tokens.Tokenizer):
        IDENTIFIERS = ['"', "`"]


@dataclass(frozen=True)
class Statement:
    """A statement's request, and how the receiver presents what it releases."""

    text: str
    request: Request
    names: dict[str, str]  # released column (or group column) -> the alias asked for
    columns: tuple[str, ...]  # the selected columns' names as released, in SELECT order
    order: tuple[OrderKey, ...] = ()
    limit: int | None = None


class _Context:
    """The statement's text and, where known, the schemas its names are checked against."""

    def __init__(self, text: str, schemas: Mapping[str, DatasetSchema] | None) -> None:
        self.text = text
        self.schemas = schemas
        self.schema: DatasetSchema | None = None
        self.tokens: list[Token] = []  # as read by _parse
        self.dataset = ""
        self.qualifiers: set[str] = set()

    def refuse(self, node: exp.Expression | None, reason: str) -> InvalidQueryError:
        return refusal(self.text, node, reason)

    def refuse_after(self, node: exp.Expression, reason: str) -> InvalidQueryError:
        """Refuse what follows ``node``'s own token (e.g. the TABLESAMPLE after a name)."""
        end = node.meta.get("end", len(self.text))
        after = next((t.start for t in self.tokens if t.start > end), position(node))
        return refusal_at(self.text, after, reason)

    def name(self, column: exp.Column) -> str:
        """A column reference's name; refused if qualified by another table."""
        if column.table and column.table not in self.qualifiers:
            raise self.refuse(column, f"unknown table {column.table!r}: only {self.dataset!r}")
        if isinstance(column.this, exp.Star):
            raise self.refuse(column, "SELECT * would release individual rows")
        return str(column.name)

    def column(self, column: exp.Column, role: str = "filter") -> str:
        """A checked column name (against the schema, when known)."""
        name = self.name(column)
        if self.schema is not None:
            try:
                usable_column(self.schema, name, role)
            except InvalidQueryError as err:
                raise self.refuse(column, err.public_message) from None
        return name

    def check(self, node: exp.Expression, leaf: Filter) -> None:
        """A condition's literals fit its column (the domain, a number), where known."""
        if self.schema is not None:
            try:
                validate_filter(self.schema, leaf)
            except InvalidQueryError as err:
                raise self.refuse(node, err.public_message) from None

    def numeric(self, column: exp.Column, func: str) -> str:
        name = self.column(column, f"aggregate {func}")
        if self.schema is not None and not isinstance(self.schema.columns[name], NumericColumn):
            raise self.refuse(column, f"{func} needs a numeric column; {name!r} is categorical")
        return name

    def categorical(self, column: exp.Column) -> str:
        name = self.column(column, "group by")
        if self.schema is not None and not isinstance(self.schema.columns[name], CategoricalColumn):
            raise self.refuse(
                column,
                f"GROUP BY needs a categorical column with a declared domain; {name!r} is numeric",
            )
        return name


def _check_nesting(text: str, read: list[Token]) -> None:
    """Refuse parentheses and NOTs nested past MAX_FILTER_DEPTH before sqlglot recurses on them.

    sqlglot's parser takes some twenty Python frames per level: about 50 levels of
    parentheses reach the interpreter's recursion limit.
    """
    parens = pending = 0
    for token in read:
        if token.token_type is TokenType.L_PAREN:
            parens += 1
        elif token.token_type is TokenType.R_PAREN:
            parens -= 1
        if token.token_type is TokenType.NOT:
            pending += 1
        elif token.token_type is not TokenType.L_PAREN:
            pending = 0
        if parens + pending > MAX_FILTER_DEPTH:
            raise refusal_at(
                text, token.start, f"parentheses and NOT nest deeper than {MAX_FILTER_DEPTH}"
            )


def _parse(text: str) -> tuple[exp.Expression, list[Token]]:
    if len(text) > MAX_STATEMENT_CHARS:
        raise InvalidQueryError(
            f"SQL: the statement has {len(text):,} characters; "
            f"at most {MAX_STATEMENT_CHARS:,} are accepted"
        )
    dialect = _Analyst()
    try:
        read = dialect.tokenize(text)
        _check_nesting(text, read)
        trees = [t for t in dialect.parser().parse(read, text) if t is not None]
    except RecursionError:  # a backstop: _check_nesting bounds what sqlglot recurses on
        raise InvalidQueryError("SQL: the statement nests too deeply to be read") from None
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        what = first.get("description", str(err)).split(". Line")[0].split(" but got <")[0]
        if what.startswith("Required keyword"):
            what = "the statement is incomplete here"
        near = str(first.get("highlight", ""))
        # sqlglot's column is the token's last character: point at its first
        column = max(int(first.get("col", 1)) - len(near) + 1, 1)
        raise InvalidQueryError(
            f"SQL at line {first.get('line', 1)}, column {column}: "
            f"cannot read the statement near {near!r}: {what}"
        ) from None
    except TokenError as err:
        raise InvalidQueryError(f"SQL: cannot read the statement: {err}") from None
    if len(trees) > 1:
        raise refusal(text, cast(exp.Expression, trees[1]), "one statement at a time")
    if not trees:
        raise InvalidQueryError("SQL: no statement")
    return cast(exp.Expression, trees[0]), read


def _dataset(ctx: _Context, select: exp.Select) -> None:
    source = select.args.get("from_")
    if source is None:
        raise ctx.refuse(select, "a statement reads FROM one dataset, e.g. FROM loans")
    table = source.this
    if isinstance(table, exp.Subquery):
        raise ctx.refuse(table, "subqueries are not supported: ask one SELECT over a dataset")
    if (
        not isinstance(table, exp.Table)
        or not isinstance(table.this, exp.Identifier)
        or table.args.get("db")
        or not table.name
    ):
        raise ctx.refuse(table, "FROM names one dataset, e.g. FROM loans")
    for key, value in table.args.items():
        if value and key not in ("this", "alias"):
            raise ctx.refuse_after(
                table.this, _TABLE_REASONS.get(key, "FROM names one dataset, with an alias at most")
            )
    alias = table.args.get("alias")
    if alias is not None and alias.columns:
        raise ctx.refuse_after(alias.this, "a dataset's alias cannot rename its columns")
    ctx.dataset = str(table.name)
    ctx.qualifiers = {ctx.dataset, str(table.alias)} - {""}
    if ctx.schemas is not None:
        if ctx.dataset not in ctx.schemas:
            known = ", ".join(sorted(ctx.schemas)) or "none"
            raise ctx.refuse(table, f"unknown dataset {ctx.dataset!r}; datasets: {known}")
        ctx.schema = ctx.schemas[ctx.dataset]


def _refuse_unsupported(ctx: _Context, root: exp.Expression) -> exp.Select:
    if isinstance(root, exp.SetOperation):
        raise ctx.refuse(root, "UNION, INTERSECT and EXCEPT are not supported: one SELECT")
    if not isinstance(root, exp.Select):
        raise ctx.refuse(root, "only SELECT statements: the gateway never changes data")
    for key, value in root.args.items():
        if value and key not in _ALLOWED:
            first = value[0] if isinstance(value, list) and value else value
            located = isinstance(first, exp.Expression) and position(first) is not None
            raise ctx.refuse(
                first if located else root,
                _REASONS.get(key, f"{key.rstrip('_').upper()} is not supported"),
            )
    for node in root.walk():
        if isinstance(node, exp.Window):
            raise ctx.refuse(node, _REASONS["windows"])
        if node is not root and isinstance(node, exp.Select | exp.Subquery):
            raise ctx.refuse(node, "subqueries are not supported: ask one SELECT over a dataset")
    return root


def _group_by(ctx: _Context, select: exp.Select) -> tuple[str, ...]:
    group = select.args.get("group")
    if group is None:
        return ()
    columns = []
    for item in group.expressions:
        if not isinstance(item, exp.Column):
            raise ctx.refuse(item, "GROUP BY takes declared categorical columns by name")
        name = ctx.categorical(item)
        if name in columns:
            raise ctx.refuse(item, f"{name!r} is grouped by twice")
        columns.append(name)
    if ctx.schema is not None:
        try:
            check_cells(ctx.schema, columns)
        except InvalidQueryError as err:
            raise ctx.refuse(group, err.public_message) from None
    return tuple(columns)


def _limit(ctx: _Context, select: exp.Select) -> int | None:
    limit = select.args.get("limit")
    if limit is None:
        return None
    value = limit.expression
    if not isinstance(value, exp.Literal) or value.is_string or not str(value.this).isdigit():
        raise ctx.refuse(limit, "LIMIT takes a whole number of rows")
    return int(value.this)


def _request(ctx: _Context, items: list[Item], group_by: tuple[str, ...], **common: Any) -> Request:
    quantiles = [item for item in items if item.level is not None]
    if quantiles:
        others = [item for item in items if item.level is None]
        columns = {item.column for item in quantiles}
        if others or group_by or len(columns) > 1:
            node = (others[0] if others else quantiles[-1]).node
            raise ctx.refuse(
                node,
                "percentiles are their own computation (exact joint quantiles): ask the "
                "percentiles of one column in a statement of their own, without GROUP BY",
            )
        interpolation = quantiles[0].interpolation
        mixed = [item for item in quantiles if item.interpolation != interpolation]
        if mixed:
            raise ctx.refuse(
                mixed[0].node,
                "a statement asks either interpolated percentiles (PERCENTILE_CONT, MEDIAN) "
                "or discrete ones (PERCENTILE_DISC), not both",
            )
        levels = tuple(Decimal(str(item.level)) for item in quantiles)
        return QuantileRequest(
            column=str(quantiles[0].column),
            levels=levels,
            interpolation=interpolation,
            **common,
        )
    aggregates = []
    for item in items:
        if item.aggregate is None:
            continue
        if item.aggregate in aggregates:
            raise ctx.refuse(item.node, f"{item.aggregate.label} is asked twice")
        aggregates.append(item.aggregate)
    if not aggregates:
        raise ctx.refuse(None, "a statement asks at least one aggregate, e.g. COUNT(*)")
    return AggregateRequest(aggregates=tuple(aggregates), group_by=group_by, **common)


def read_statement(
    text: str, schemas: Mapping[str, DatasetSchema] | None = None, purpose: str = ""
) -> Statement:
    """The request ``text`` asks, and how its result is presented; a positioned refusal if not."""
    ctx = _Context(text, schemas)
    tree, ctx.tokens = _parse(text)
    select = _refuse_unsupported(ctx, tree)
    _dataset(ctx, select)
    group_by = _group_by(ctx, select)
    items = read_items(ctx, select.expressions, group_by)
    where = select.args.get("where")
    common: dict[str, Any] = {
        "dataset": ctx.dataset,
        "purpose": purpose,
        "statement": text,
        "filter": None if where is None else filter_of(where.this, ctx),
    }
    try:
        request = _request(ctx, items, group_by, **common)
    except ValidationError as err:
        raise InvalidQueryError(f"SQL: {problem(err)}") from None
    order = read_order(ctx, select.args.get("order"), items)
    if order and isinstance(request, QuantileRequest):
        raise ctx.refuse(select.args["order"], "ORDER BY is for grouped results")
    names = {item.output: item.alias for item in items if item.alias}
    columns = tuple(item.alias or item.output for item in items)
    return Statement(text, request, names, columns, order, _limit(ctx, select))

"""A node's dataset in PostgreSQL: checked in place, every computation's local SQL pushed down.

The node never copies the table. At start it checks, with one scan inside the
database, that the table (or view) has the schema's columns with exact types
(NUMERIC or integers for numbers: no float ever holds a value), and that every
value fits (no NULLs, within bounds unless the column clips, at the declared
precision, categories in their domain, keys non-empty), and counts the rows.

Per order, a computation's SQL over the table ``data`` (written once, in
DuckDB's dialect, over the schema's integer encoding; see
:mod:`mpc_gateway.computations`) runs inside PostgreSQL: ``data`` becomes a
common table expression that encodes the table's columns (value x 10**scale as
BIGINT, NUMERIC where that could overflow, in exact NUMERIC arithmetic; clamped
where the schema clips), a batch of entity keys becomes arrays bound as
parameters, and sqlglot transpiles the statement to PostgreSQL (HUGEINT becomes
NUMERIC). Values are always
parameters and identifiers quoted. Only the fixed-shape aggregates come back, except for
training, whose design rows come back to the node's MPC worker (and never leave it).

Every thread has its own connection, read-only (``default_transaction_read_only``).
A warehouse with another SQL dialect (Trino, Spark, Snowflake) plugs in the
same way: the same statements, transpiled to its dialect (docs/sources.md).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import sqlglot
from psycopg import sql
from sqlglot import exp

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.query.schema import (
    CategoricalColumn,
    Column,
    DatasetSchema,
    KeyColumn,
    NumericColumn,
)
from mpc_gateway.settings import PostgresSource

__all__ = ["PostgresDataset", "PostgresCursor", "to_postgres"]

_EXACT_NUMBERS = ("numeric", "smallint", "integer", "bigint")
_TEXT = ("text", "character varying", "character", "uuid")
_WIDE = exp.DataType.build("NUMERIC")


@functools.lru_cache(maxsize=1024)
def to_postgres(statement: str) -> str:
    """A statement in DuckDB's dialect, in PostgreSQL's (``?`` become ``%s``)."""
    tree = sqlglot.parse_one(statement, read="duckdb")
    for node in list(tree.find_all(exp.DataType)):
        if node.this in (exp.DataType.Type.INT128, exp.DataType.Type.UINT128):
            node.replace(_WIDE.copy())
    return tree.sql(dialect="postgres")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _encoded(name: str, column: Column) -> str:
    """The column in the schema's integer encoding, in PostgreSQL (exact NUMERIC arithmetic)."""
    value = f"CAST({_quoted(name)} AS NUMERIC)"
    if not isinstance(column, NumericColumn):
        return f"CAST({_quoted(name)} AS TEXT) AS {_quoted(name)}"
    if column.clip:
        value = f"LEAST(GREATEST({value}, {column.min:f}), {column.max:f})"
    kind = "BIGINT" if column.magnitude < 2**62 else "NUMERIC"
    # exact: checked at start to carry no more decimals than the scale (a cast rounds half
    # away from zero, should a finer value arrive later)
    return f"CAST({value} * {column.factor} AS {kind}) AS {_quoted(name)}"


class PostgresCursor:
    """What a computation's local SQL runs on: DuckDB's cursor, as far as computations use it."""

    def __init__(self, connection: psycopg.Connection[Any], data: str) -> None:
        self._connection = connection
        self._data = data
        self._batches: dict[str, pd.DataFrame] = {}
        self._rows: list[tuple[Any, ...]] = []

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """A batch (e.g. of entity keys) the next statements may join, bound as arrays."""
        self._batches[name] = frame

    def unregister(self, name: str) -> None:
        self._batches.pop(name, None)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> PostgresCursor:
        """Run a computation's statement over ``data`` (and any registered batch) in PostgreSQL."""
        tables, bound = [f"data AS ({self._data})"], []
        for name, frame in self._batches.items():
            columns = []
            for column in frame.columns:
                values = frame[column].tolist()
                integral = pd.api.types.is_integer_dtype(frame[column])
                columns.append(f"CAST(%s AS {'BIGINT' if integral else 'TEXT'}[])")
                bound.append([int(v) for v in values] if integral else [str(v) for v in values])
            names = ", ".join(_quoted(str(c)) for c in frame.columns)
            tables.append(
                f"{_quoted(name)} AS (SELECT * FROM UNNEST({', '.join(columns)}) AS t({names}))"
            )
        query = f"WITH {', '.join(tables)} {to_postgres(statement)}"
        with self._connection.cursor() as cursor:
            cursor.execute(query, [*bound, *(_plain(p) for p in params)])
            self._rows = cursor.fetchall()
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, np.integer) else value


class PostgresDataset:
    """One dataset of this node, in a PostgreSQL table or view, checked once at start."""

    def __init__(self, schema: DatasetSchema, config: PostgresSource) -> None:
        self.schema = schema
        self.source = f"PostgreSQL table {config.table}"
        self._dsn = config.dsn()
        self._table = sql.SQL(".").join(sql.Identifier(p) for p in config.table.split("."))
        self._relation = ".".join(_quoted(p) for p in config.table.split("."))
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._data = (
            "SELECT "
            + ", ".join(_encoded(n, c) for n, c in schema.columns.items())
            + f" FROM {self._relation}"
        )
        try:
            connection = self._connection()
            self._check_types(connection)
            self.rows = self._check_values(connection)
            if self.rows > schema.max_rows_per_node:
                raise ConfigurationError(
                    f"{self.source}: {self.rows} rows exceed the schema's max_rows_per_node "
                    f"({schema.max_rows_per_node})"
                )
        except BaseException:
            self.close()
            raise

    def _connection(self) -> psycopg.Connection[Any]:
        connection: psycopg.Connection[Any] | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            try:
                connection = psycopg.connect(self._dsn, autocommit=True)
            except psycopg.Error as err:
                raise ConfigurationError(
                    f"cannot connect to PostgreSQL for {self.schema.name!r}: {_first_line(err)}"
                ) from None
            connection.execute("SET default_transaction_read_only = on")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def cursor(self) -> PostgresCursor:
        """This thread's cursor, over ``data`` in the schema's integer encoding."""
        return PostgresCursor(self._connection(), self._data)

    def _check_types(self, connection: psycopg.Connection[Any]) -> None:
        rows = connection.execute(
            "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
            [self._relation],
        ).fetchall()
        if not rows:
            raise ConfigurationError(f"{self.source} does not exist or has no columns")
        present = {str(name): str(kind) for name, kind in rows}
        missing = sorted(set(self.schema.columns) - set(present))
        if missing:
            raise ConfigurationError(f"{self.source} lacks column(s): {', '.join(missing)}")
        for name, column in self.schema.columns.items():
            kind = present[name]
            if isinstance(column, NumericColumn) and kind not in _EXACT_NUMBERS:
                raise ConfigurationError(
                    f"{self.source}: column {name!r} is {kind}; a numeric column needs NUMERIC "
                    "or an integer type (floating point cannot hold exact values)"
                )
            if kind not in _EXACT_NUMBERS + _TEXT:
                raise ConfigurationError(
                    f"{self.source}: column {name!r} is {kind}; a {column.kind} column needs "
                    "text or integers"
                )

    def _problems(self, name: str, column: Column) -> tuple[sql.Composable, list[Any], str]:
        """The condition a bad value meets, its parameters, and what it means."""
        col = sql.Identifier(name)
        if isinstance(column, NumericColumn):
            scaled = sql.SQL("{} * {}").format(col, sql.Literal(column.factor))
            parts = [sql.SQL("{} IS NULL").format(col)]
            parts.append(sql.SQL("{} <> trunc({})").format(scaled, scaled))
            params: list[Any] = []
            if not column.clip:
                parts.append(sql.SQL("{} < %s OR {} > %s").format(col, col))
                params += [column.min, column.max]
            where = "" if column.clip else f"outside [{column.min}, {column.max}], "
            meaning = f"null, {where}or finer than {column.scale} decimals"
            return sql.SQL(" OR ").join(parts), params, meaning
        if isinstance(column, CategoricalColumn):
            condition = sql.SQL("{} IS NULL OR CAST({} AS TEXT) <> ALL(%s)").format(col, col)
            return condition, [list(column.domain)], "null or outside its declared domain"
        assert isinstance(column, KeyColumn)
        condition = sql.SQL("{} IS NULL OR CAST({} AS TEXT) = ''").format(col, col)
        return condition, [], "empty or null entity keys"

    def _check_values(self, connection: psycopg.Connection[Any]) -> int:
        """One scan: the row count, and per column how many values do not fit, with one of them."""
        exprs: list[sql.Composable] = [sql.SQL("count(*)")]
        params: list[Any] = []
        meanings = []
        for name, column in self.schema.columns.items():
            condition, bound, meaning = self._problems(name, column)
            exprs.append(sql.SQL("count(*) FILTER (WHERE {})").format(condition))
            exprs.append(
                sql.SQL("left(CAST((array_agg({}) FILTER (WHERE {}))[1] AS TEXT), 80)").format(
                    sql.Identifier(name), condition
                )
            )
            params += bound + bound
            meanings.append((name, meaning))
        query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(exprs), self._table)
        row = connection.execute(query, params).fetchone()
        assert row is not None
        for k, (name, meaning) in enumerate(meanings):
            bad, example = row[1 + 2 * k], row[2 + 2 * k]
            if bad:
                raise ConfigurationError(
                    f"{self.source}: column {name!r} has {bad} value(s) that are {meaning}, "
                    f"e.g. {example!r}"
                )
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__

"""A node's local data: DuckDB over the institution's CSV, TSV or Parquet file.

The file is loaded once at start-up into an in-memory DuckDB table ``data`` in
the schema's exact integer encoding (value x 10**scale) and checked against the
schema: declared columns present (names are case-sensitive), no nulls, numbers
within bounds (or clamped to them where the column clips) and at the declared
precision, categories within their domain, keys non-empty. No value ever passes
through binary floating point on its way in: CSV and TSV are read as text and
parsed as decimals; Parquet integers and DECIMALs are cast exactly; a Parquet
FLOAT or DOUBLE is accepted only where it is exactly one decimal at the scale
(docs/schema.md has the rules). A file that does not fit is refused with a
:class:`ConfigurationError` naming the file, the column, the first offending
data row (1-based, a header not counted) and its value, before the node serves
anything. A file with no rows, or no file at all, is an empty dataset.

Per order, a computation runs its own SQL over the table ``data`` through
:meth:`LocalDataset.cursor` (see :mod:`mpc_gateway.computations`) and returns
fixed-shape integer arrays; the rows themselves never leave the node.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from mpc_gateway.errors import ConfigurationError
from mpc_gateway.query.schema import (
    CategoricalColumn,
    Column,
    DatasetSchema,
    NumericColumn,
)
from mpc_gateway.query.sql import ident

__all__ = ["LocalDataset", "SHOWN_CHARS"]

SHOWN_CHARS = 40
"""How much of an offending value a refusal shows."""

_NUMBER = r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,4})?"
_EXACT_TYPES = frozenset(
    "BOOLEAN TINYINT SMALLINT INTEGER BIGINT HUGEINT "
    "UTINYINT USMALLINT UINTEGER UBIGINT UHUGEINT".split()
)
# a binary float is exact at a scale while its spacing is finer than 10**-scale: for
# |value| * 10**scale below 2**(fraction bits), no two decimals share one float
_FLOAT_BITS = {"FLOAT": 23, "DOUBLE": 52}
# every field as text (parsed exactly below); the first line is the header (DuckDB would
# otherwise guess which leading lines to skip)
_CSV = "header = true, all_varchar = true, skip = 0"


DATABASE_SUFFIXES = (".duckdb", ".db")


def _reader(source: Path, table: str) -> tuple[str, list[Any]]:
    """The relation to read ``source`` as, and its parameters (a database is attached first)."""
    suffix = source.suffix.lower()
    if suffix == ".parquet":
        return "read_parquet(?)", [str(source)]
    if suffix == ".csv":
        return f"read_csv(?, {_CSV})", [str(source)]
    if suffix == ".tsv":
        return f"read_csv(?, {_CSV}, delim = '\t')", [str(source)]
    if suffix in DATABASE_SUFFIXES:
        return f"source_db.{ident(table)}", []
    raise ConfigurationError(
        f"data source {source}: use a .csv, .tsv or .parquet file, or a DuckDB database "
        f"({', '.join(DATABASE_SUFFIXES)})"
    )


def _storage(name: str, spec: Column) -> str:
    """The column's type in the table ``data``."""
    if isinstance(spec, NumericColumn):
        return "BIGINT" if spec.magnitude < 2**62 else "HUGEINT"
    if isinstance(spec, CategoricalColumn):
        return ident("domain_" + name)  # an ENUM groups and filters ~3x faster than text
    return "VARCHAR"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Reading:
    """How one stored column becomes its encoding, and why a value may not (SQL).

    ``value`` never fails: it is NULL where a number cannot be read (or is too large
    to). ``plain`` marks values that need no check but the bounds; ``checks`` are
    (condition, reason) pairs for the others, in order; ``negative`` tells a
    clipping column which bound an unreadably large number is clamped to.
    """

    value: str
    plain: str = "FALSE"
    checks: tuple[tuple[str, str], ...] = ()
    negative: str = "FALSE"


def _decimal(sql: str, spec: NumericColumn) -> str:
    """``sql`` (text or an exact number) in the integer encoding, exactly; NULL if too large."""
    s = spec.scale
    # (width - s) integer digits, times 10**s, must fit the width: DECIMAL(18 - s) is a
    # 64-bit integer underneath (~3x faster than 128 bits), where the bounds allow it
    width, kind = (18 - s, "BIGINT") if spec.magnitude < 10 ** (18 - s) else (38 - s, "HUGEINT")
    return f"CAST(TRY_CAST({sql} AS DECIMAL({width}, {s})) * {spec.factor} AS {kind})"


def _text_number(raw: str, spec: NumericColumn) -> _Reading:
    """Decimal text (CSV, or numbers a Parquet file keeps as text), parsed exactly."""
    s, text = spec.scale, f"trim(CAST({raw} AS VARCHAR))"
    # digits past the scale must be zeros; with an exponent, count what remains after it
    digits = rf"replace(regexp_extract({text}, '^[+-]?([\d.]*)', 1), '.', '')"
    places = (
        rf"length(regexp_extract({text}, '\.(\d*)', 1))"
        rf" - coalesce(TRY_CAST(regexp_extract({text}, '[eE]([+-]?\d+)$', 1) AS INTEGER), 0)"
        rf" - (length({digits}) - length(rtrim({digits}, '0')))"
    )
    return _Reading(
        value=_decimal(text, spec),
        plain=rf"regexp_full_match(CAST({raw} AS VARCHAR), ' *[+-]?\d+(\.\d{{0,{s}}}0*)? *')",
        checks=(
            (f"NOT regexp_full_match({text}, '{_NUMBER}')", "is not a number"),
            (f"rtrim({digits}, '0') <> '' AND {places} > {s}", f"has more than {s} decimals"),
        ),
        negative=f"starts_with({text}, '-')",
    )


def _float_number(raw: str, kind: str, spec: NumericColumn) -> _Reading:
    """A Parquet FLOAT or DOUBLE: accepted only where it is exactly one decimal at the scale."""
    s, bits = spec.scale, _FLOAT_BITS[kind]
    nearest = f"round(CAST({raw} AS DOUBLE) * {spec.factor})"
    largest = f"{Decimal(2**bits).scaleb(-s):f}"
    return _Reading(
        value=f"TRY_CAST({nearest} AS HUGEINT)",
        checks=(
            (f"NOT isfinite({raw})", "is not a number"),
            (
                f"abs({nearest}) >= {2**bits}",
                f"is a {kind} too large to be exact at scale {s} (below +-{largest} only: "
                "store the column as DECIMAL or text)",
            ),
            (
                f"CAST({nearest} / {spec.factor} AS {kind}) <> {raw}",
                f"is a {kind} with more than {s} decimals",
            ),
        ),
    )


def _number(raw: str, kind: str, spec: NumericColumn) -> _Reading:
    decimal = re.fullmatch(r"DECIMAL\(\d+, ?(\d+)\)", kind)
    if kind in _EXACT_TYPES or (decimal and int(decimal[1]) <= spec.scale):
        # a Parquet integer, BOOLEAN (0/1) or DECIMAL of at most the scale: cast exactly
        base = f"CAST({raw} AS INTEGER)" if kind == "BOOLEAN" else raw
        return _Reading(_decimal(base, spec), plain="TRUE", negative=f"{base} < 0")
    if kind in _FLOAT_BITS:
        return _float_number(raw, kind, spec)
    return _text_number(raw, spec)  # text, a DECIMAL finer than the scale (exact as text), ...


class _Column:
    """One schema column as the load reads it: stored value, reading, problem, sample."""

    def __init__(self, name: str, spec: Column, kind: str) -> None:
        self.name, self.spec = name, spec
        # names no schema column can take (schema names are [a-z0-9_])
        self.raw, self.v = ident(f"{name}:raw"), ident(f"{name}:v")
        self.why, self.sample = ident(f"{name}:why"), ident(f"{name}:sample")
        if isinstance(spec, NumericColumn):
            self.reading = _number(self.raw, kind, spec)
        elif isinstance(spec, CategoricalColumn):
            domain = f"is not in its domain ({len(spec.domain)} values, case-sensitive)"
            value = f"TRY_CAST(CAST({self.raw} AS VARCHAR) AS {_storage(name, spec)})"
            self.reading = _Reading(value, checks=((f"{self.v} IS NULL", domain),))
        else:
            value = f"CAST({self.raw} AS VARCHAR)"
            self.reading = _Reading(value, checks=((f"{self.v} = ''", "is an empty key"),))

    def problem(self) -> str:
        """SQL: why the stored value does not fit (NULL where it does)."""
        reading, spec, v = self.reading, self.spec, self.v
        checks = "".join(f" WHEN {when} THEN {_literal(why)}" for when, why in reading.checks)
        bounds = "NULL"
        if isinstance(spec, NumericColumn) and not spec.clip:
            outside = f"{v} IS NULL OR {v} NOT BETWEEN {spec.encoded_min} AND {spec.encoded_max}"
            why = _literal(f"is outside [{spec.min:f}, {spec.max:f}]")
            bounds = f"CASE WHEN {outside} THEN {why} END"
        return (
            f"CASE WHEN {self.raw} IS NULL THEN 'is empty (null)' "
            f"WHEN {reading.plain} THEN {bounds}{checks} ELSE {bounds} END"
        )

    def kept(self) -> str:
        """SQL: the column as ``data`` keeps it (clamped where it clips), its problem, a sample."""
        value, spec = self.v, self.spec
        if isinstance(spec, NumericColumn) and spec.clip:
            low, high = spec.encoded_min, spec.encoded_max
            huge = f"CASE WHEN {self.reading.negative} THEN {low} ELSE {high} END"
            within = f"least(greatest({value}, {low}), {high})"
            value = f"CASE WHEN {value} IS NULL THEN {huge} ELSE {within} END"
        sample = f"left(CAST({self.raw} AS VARCHAR), {SHOWN_CHARS + 1})"
        return (
            f"TRY_CAST({value} AS {_storage(self.name, spec)}) AS {ident(self.name)}, {self.why}, "
            f"CASE WHEN {self.why} IS NOT NULL THEN {sample} END AS {self.sample}"
        )


def _one_pass(reader: str, columns: list[_Column]) -> str:
    """SQL: the file read once, each value read once, with its problem (if any) beside it."""
    stored = ", ".join(f"{ident(c.name)} AS {c.raw}" for c in columns)
    read = ", ".join(f"{c.reading.value} AS {c.v}" for c in columns)
    checked = ", ".join(f"{c.problem()} AS {c.why}" for c in columns)
    kept = ", ".join(c.kept() for c in columns)
    return (
        f"SELECT {kept} FROM (SELECT *, {checked} FROM "
        f"(SELECT *, {read} FROM (SELECT {stored} FROM {reader})))"
    )


def _shown(value: str | None) -> str:
    if value is None:
        return "the value"
    return repr(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "...")


class LocalDataset:
    """One dataset of this node, loaded and validated once (``source`` None: no rows)."""

    def __init__(
        self,
        schema: DatasetSchema,
        source: Path | None,
        threads: int = 1,
        table: str | None = None,
    ) -> None:
        """``table``: the table (or view) to read from a DuckDB database; default: the dataset."""
        self.schema = schema
        self.source = source
        self._table = table or schema.name
        self._local = threading.local()
        # one scan thread by default: several nodes often share a host's cores, and a
        # per-query GROUP BY over fixed groups gains little from more threads
        self._con = duckdb.connect(":memory:", config={"threads": threads})
        for name, spec in schema.columns.items():
            if isinstance(spec, CategoricalColumn):
                values = ", ".join(_literal(v) for v in spec.domain)
                self._con.execute(f"CREATE TYPE {_storage(name, spec)} AS ENUM ({values})")
        if source is None:
            columns = ", ".join(f"{ident(n)} {_storage(n, c)}" for n, c in schema.columns.items())
            self._con.execute(f"CREATE TABLE data ({columns})")
        else:
            self._load(source)
        self.rows = int(self._query("SELECT count(*) FROM data")[0][0])

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the table ``data`` (the schema's integer encoding)."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._con.cursor()
        return cursor

    def _query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.cursor().execute(sql, params or []).fetchall()

    def _load(self, source: Path) -> None:
        if not source.exists():
            raise ConfigurationError(f"data source {source} does not exist")
        reader, params = _reader(source, self._table)
        try:
            if not params:  # a DuckDB database: read its table in place, never written to
                path = str(source).replace("'", "''")
                self._con.execute(f"ATTACH '{path}' AS source_db (READ_ONLY)")
            described = self._con.execute(f"SELECT * FROM {reader} LIMIT 0", params)
            kinds = {d[0]: str(d[1]) for d in described.description}
            missing = sorted(set(self.schema.columns) - set(kinds))
            if missing:
                has = ", ".join(_shown(n) for n in list(kinds)[:20])
                raise ConfigurationError(
                    f"data source {source} lacks column(s): {', '.join(missing)} "
                    f"(names are case-sensitive; it has {has}{', ...' if len(kinds) > 20 else ''})"
                )
            columns = [_Column(n, c, kinds[n]) for n, c in self.schema.columns.items()]
            self._con.execute(f"CREATE TABLE data AS {_one_pass(reader, columns)}", params)
            self._check(source, columns)
            for c in columns:
                self._con.execute(f"ALTER TABLE data DROP COLUMN {c.why}")
                self._con.execute(f"ALTER TABLE data DROP COLUMN {c.sample}")
            if not params:
                self._con.execute("DETACH source_db")
        except duckdb.Error as err:
            raise ConfigurationError(f"data source {source} cannot be read: {err}") from err

    def _check(self, source: Path, columns: list[_Column]) -> None:
        """Refuse the file if it has too many rows or any value does not fit, naming the first."""
        counts = ", ".join(f"count({c.why})" for c in columns)
        rows, *found = self._con.execute(f"SELECT count(*), {counts} FROM data").fetchall()[0]
        if rows > self.schema.max_rows_per_node:
            raise ConfigurationError(
                f"{source}: {rows} rows exceed the schema's max_rows_per_node "
                f"({self.schema.max_rows_per_node})"
            )
        bad = [(c, int(n)) for c, n in zip(columns, found) if n]
        if not bad:
            return
        (first, count), others = bad[0], bad[1:]
        row, value, why = self._con.execute(
            f"SELECT rowid + 1, {first.sample}, {first.why} FROM data "
            f"WHERE {first.why} IS NOT NULL ORDER BY rowid LIMIT 1"
        ).fetchall()[0]
        also = "; ".join(f"column {c.name!r}: {n}" for c, n in others)
        raise ConfigurationError(
            f"data source {source}: column {first.name!r} has {count} value(s) that do not fit "
            f"the schema; the first, in data row {row} (1-based, header not counted): "
            f"{_shown(value)} {why}" + (f" (other columns refused too: {also})" if also else "")
        )

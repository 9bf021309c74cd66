"""The demo: a local consortium answers example joint queries, each checked in the clear.

For the demo only, every secure result is compared with the same query run by
DuckDB over the pooled rows of all institutions (what a fully trusted third
party would compute). Nothing in the secure path uses that pooled view.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import duckdb

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations import Released
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.computations.aggregate_result import (
    WITHHELD,
    AggregateOutcome,
    Scalar,
    is_close,
    rounded,
)
from mpc_gateway.devnet.localnet import ConsortiumFiles
from mpc_gateway.policy import OutputControls
from mpc_gateway.query.schema import NumericColumn
from mpc_gateway.query.sql import ident

__all__ = ["ExampleQuery", "EXAMPLE_QUERIES", "Checked", "run_checked", "plaintext_result"]


@dataclass(frozen=True)
class ExampleQuery:
    title: str
    aggregates: tuple[str, ...]
    where: str = ""
    group_by: str | None = None  # one column, or several comma-separated (a cross tab)
    purpose: str = "risk monitoring"
    dataset: str = "loans"
    sql: str = ""  # asked as this SQL statement instead (the fields above say the same)

    def as_dict(self) -> dict[str, Any]:
        shown = {
            "dataset": self.dataset,
            "aggregates": list(self.aggregates),
            "where": self.where,
            "group_by": self.group_by,
            "purpose": self.purpose,
        }
        return {**shown, "sql": self.sql} if self.sql else shown


EXAMPLE_QUERIES: tuple[ExampleQuery, ...] = (
    ExampleQuery(
        "Market-wide exposure", ("count", "sum:exposure", "mean:exposure", "stddev:exposure")
    ),
    ExampleQuery(
        "Exposure by sector", ("count", "mean:exposure", "stddev:exposure"), group_by="sector"
    ),
    ExampleQuery(
        "Large energy loans by rating (small cells are suppressed)",
        ("count", "mean:exposure", "mean:lgd"),
        where="sector = 'energy' AND exposure > 3000000",
        group_by="rating",
    ),
    ExampleQuery(
        "Defaults among large loans by rating",
        ("count", "sum:defaulted", "mean:defaulted"),
        where="exposure > 1000000 OR rating IN ('B', 'CCC')",
        group_by="rating",
    ),
    ExampleQuery(
        "Large BB and B loans by sector and rating, asked in SQL (a cross tab: 10 x 7 cells)",
        ("count", "mean:exposure", "stddev:exposure"),
        where="exposure > 100000 AND rating IN ('BB','B')",
        group_by="sector,rating",
        sql="SELECT sector, rating, COUNT(*), AVG(exposure), STDDEV_SAMP(exposure) FROM loans "
        "WHERE exposure > 100000 AND rating IN ('BB','B') GROUP BY sector, rating",
    ),
)


def _figures(query: ExampleQuery, schema_columns: dict[str, Any]) -> tuple[list[str], str]:
    """The columns summed, and SQL for per-group count, sums, sums of squares, minima, maxima."""
    specs = [parse_aggregate(a) for a in query.aggregates]
    summed = list(dict.fromkeys(str(a.column) for a in specs if a.func not in ("count",)))
    exprs = ["count(*)"]
    for name in summed:
        column = schema_columns[name]
        scale = column.scale if isinstance(column, NumericColumn) else 0
        value = f'CAST("{name}" AS DECIMAL(38, {scale}))'
        if isinstance(column, NumericColumn) and column.clip:  # as the nodes load it
            value = f"least(greatest({value}, {column.min:f}), {column.max:f})"
        exprs += [f"sum({value})", f"sum({value} * {value})", f"min({value})", f"max({value})"]
    columns = [c.strip() for c in (query.group_by or "").split(",") if c.strip()]
    # a cell's label, as the released table names it: its values joined by ", "
    group = f"concat_ws(', ', {', '.join(ident(c) for c in columns)})" if columns else "'*'"
    where = query.where or "TRUE"
    sql = f"SELECT {group}, {', '.join(exprs)} FROM read_parquet(?) WHERE {where} GROUP BY 1"
    return summed, sql


def _grouped(sql: str, paths: list[str]) -> dict[str, tuple[Any, ...]]:
    return {row[0]: tuple(row[1:]) for row in duckdb.connect().execute(sql, [paths]).fetchall()}


def plaintext_suppression(
    files: ConsortiumFiles,
    query: ExampleQuery,
    controls: OutputControls,
    groups: list[str],
    schema_columns: dict[str, Any],
) -> dict[str, tuple[str, ...]]:
    """Which groups the output controls withhold, computed in the clear from every node's rows.

    A withheld group is reported as ``("withheld",)``, or, where the controls let
    the rules be named, by the first rule it fails.
    """
    if not controls.evaluated_in_mpc:
        return {}
    summed, sql = _figures(query, schema_columns)
    dominated = {  # the columns of released sums (and of the means and deviations made of them)
        str(a.column)
        for a in map(parse_aggregate, query.aggregates)
        if a.func in ("sum", "mean", "var", "stddev")
    }
    per_node = [_grouped(sql, [str(files.data_file(n))]) for n in files.institutions]
    empty = (0, *(0 for _ in range(4 * len(summed))))
    failed: dict[str, tuple[str, ...]] = {}
    for group in groups:
        rows = [found.get(group, empty) for found in per_node]
        totals = [[r[1 + 4 * i] or 0 for r in rows] for i, c in enumerate(summed) if c in dominated]
        k = controls.dominance_percent
        fails = [
            rule
            for rule, failing in (
                ("min_cell_count", sum(r[0] for r in rows) < controls.min_cell_count),
                ("min_institutions", sum(1 for r in rows if r[0]) < controls.min_institutions),
                (
                    "dominance",
                    k is not None and any(100 * x > k * sum(t) for t in totals for x in t),
                ),
            )
            if failing
        ]
        if fails:
            failed[group] = (fails[0],) if controls.report_rules else (WITHHELD,)
    return failed


def _released(
    func: str, column: str | None, figures: dict[str, Any], controls: OutputControls, columns: Any
) -> Scalar:
    """One statistic as released: counts and sums rounded first, the rest derived from those."""
    n = rounded(figures["count"], "count", controls)
    assert isinstance(n, int)
    if func == "count":
        return n
    total, squares, low, high = figures[str(column)]
    if func in ("min", "max"):
        extreme: Decimal | None = low if func == "min" else high
        return extreme
    released_sum = rounded(Decimal(total or 0), "sum", controls)
    assert isinstance(released_sum, Decimal)
    if func == "sum":
        return released_sum
    if func == "mean":
        if n == 0:
            return None
        spec = columns[str(column)]
        return min(max(float(released_sum / n), float(spec.min)), float(spec.max))
    if n < 2:
        return None
    s1 = Fraction(released_sum)
    variance = max((Fraction(squares) - s1 * s1 / n) / (n - 1), Fraction(0))
    return float(variance) if func == "var" else math.sqrt(variance)


def plaintext_result(
    files: ConsortiumFiles,
    query: ExampleQuery,
    groups: list[str],
    schema_columns: dict[str, Any],
    controls: OutputControls | None = None,
) -> list[tuple[str, tuple[Scalar, ...]]]:
    """The query over the pooled rows of every node, in DuckDB, in the clear, with the same
    suppression and rounding the released result must show."""
    controls = controls or OutputControls()
    summed, sql = _figures(query, schema_columns)
    found = _grouped(sql, [str(files.data_file(n)) for n in files.institutions])
    withheld = plaintext_suppression(files, query, controls, groups, schema_columns)
    specs = [parse_aggregate(a) for a in query.aggregates]
    rows: list[tuple[str, tuple[Scalar, ...]]] = []
    for g in groups:
        if g in withheld:
            rows.append((g, tuple(None for _ in specs)))
            continue
        raw = found.get(g, (0, *(None for _ in range(4 * len(summed)))))
        figures: dict[str, Any] = {"count": raw[0]}
        for i, name in enumerate(summed):
            figures[name] = raw[1 + 4 * i : 5 + 4 * i]
        values = tuple(
            _released(a.func, a.column, figures, controls, schema_columns) for a in specs
        )
        rows.append((g, values))
    return rows


@dataclass(frozen=True)
class Checked:
    query: ExampleQuery
    released: Released
    plaintext: list[tuple[str, tuple[Scalar, ...]]]
    seconds: float
    withheld: dict[str, tuple[str, ...]] = field(default_factory=dict)  # in the clear

    @property
    def secure(self) -> AggregateOutcome:
        outcome = self.released.outcome
        assert isinstance(outcome, AggregateOutcome)
        return outcome

    @property
    def matches(self) -> bool:
        if [g for g, _ in self.secure.rows] != [g for g, _ in self.plaintext]:
            return False
        if self.secure.suppressed != self.withheld:
            return False
        return all(
            is_close(a, b)
            for (_, sv), (_, pv) in zip(self.secure.rows, self.plaintext)
            for a, b in zip(sv, pv)
        )

    def as_json(self) -> dict[str, Any]:
        def rec(rows: Any) -> list[dict[str, Any]]:
            key = self.query.group_by or "group"
            return [
                {key: g, **{c: _jsonable(v) for c, v in zip(self.secure.columns, vals)}}
                for g, vals in rows
            ]

        return {
            "title": self.query.title,
            "query": self.query.as_dict(),
            "secure": rec(self.secure.rows),
            "plaintext": rec(self.plaintext),
            "suppressed": {g: list(r) for g, r in self.secure.suppressed.items()},
            "match": self.matches,
            "query_id": self.released.query_id,
            "sequence": self.released.sequence,
            "latency_ms": round(self.seconds * 1000, 2),
        }


def _jsonable(value: Scalar) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def run_checked(
    client: GatewayClient,
    files: ConsortiumFiles,
    query: ExampleQuery,
    schema_columns: dict[str, Any],
) -> Checked:
    started = time.perf_counter()
    secure = (
        client.sql(query.sql, purpose=query.purpose)
        if query.sql
        else client.query(
            query.dataset,
            query.aggregates,
            where=query.where,
            group_by=query.group_by,
            purpose=query.purpose,
        )
    )
    seconds = time.perf_counter() - started
    outcome = secure.outcome
    assert isinstance(outcome, AggregateOutcome)
    groups = [g for g, _ in outcome.rows]
    controls = secure.controls
    plain = plaintext_result(files, query, groups, schema_columns, controls)
    return Checked(
        query,
        secure,
        plain,
        seconds,
        plaintext_suppression(files, query, controls, groups, schema_columns),
    )

"""The demo: a local consortium answers example joint queries, each checked in the clear.

For the demo only, every secure result is compared with the same query run by
DuckDB over the pooled rows of all institutions (what a fully trusted third
party would compute). Nothing in the secure path uses that pooled view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from mpc_gateway.client import GatewayClient, QueryResult, parse_aggregate
from mpc_gateway.localnet import ConsortiumFiles
from mpc_gateway.query.results import Scalar, is_close
from mpc_gateway.query.schema import NumericColumn

__all__ = ["ExampleQuery", "EXAMPLE_QUERIES", "Checked", "run_checked", "plaintext_result"]


@dataclass(frozen=True)
class ExampleQuery:
    title: str
    aggregates: tuple[str, ...]
    where: str = ""
    group_by: str | None = None
    purpose: str = "risk monitoring"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": "loans",
            "aggregates": list(self.aggregates),
            "where": self.where,
            "group_by": self.group_by,
            "purpose": self.purpose,
        }


EXAMPLE_QUERIES: tuple[ExampleQuery, ...] = (
    ExampleQuery(
        "Market-wide exposure", ("count", "sum:exposure", "mean:exposure", "stddev:exposure")
    ),
    ExampleQuery(
        "Exposure by sector", ("count", "mean:exposure", "stddev:exposure"), group_by="sector"
    ),
    ExampleQuery(
        "Large energy and manufacturing loans by rating",
        ("count", "mean:lgd", "var:lgd", "min:exposure", "max:exposure"),
        where="sector IN ('energy', 'manufacturing') AND exposure > 100000",
        group_by="rating",
    ),
    ExampleQuery(
        "Defaults among weak or overdue loans by region",
        ("count", "sum:defaulted", "mean:defaulted"),
        where="rating = 'CCC' OR days_past_due >= 90",
        group_by="region",
    ),
    ExampleQuery(
        "Days past due of defaulted loans",
        ("count", "min:days_past_due", "max:days_past_due"),
        where="defaulted = 1",
    ),
)

_SQL = {
    "count": "count(*)",
    "sum": "sum(CAST({c} AS DECIMAL(38, {s})))",
    "mean": "avg(CAST({c} AS DOUBLE))",
    "var": "var_samp(CAST({c} AS DOUBLE))",
    "stddev": "stddev_samp(CAST({c} AS DOUBLE))",
    "min": "min(CAST({c} AS DECIMAL(38, {s})))",
    "max": "max(CAST({c} AS DECIMAL(38, {s})))",
}


def plaintext_result(
    files: ConsortiumFiles, query: ExampleQuery, groups: list[str], schema_columns: dict[str, Any]
) -> list[tuple[str, tuple[Scalar, ...]]]:
    """The query over the pooled rows of every node, in DuckDB, in the clear."""
    exprs = []
    for text in query.aggregates:
        spec = parse_aggregate(text)
        column = schema_columns.get(spec.column)
        scale = column.scale if isinstance(column, NumericColumn) else 0
        exprs.append(_SQL[spec.func].format(c=f'"{spec.column}"', s=scale))
    group = f'"{query.group_by}"' if query.group_by else "'*'"
    paths = [str(files.data_file(n)) for n in files.nodes]
    sql = (
        f"SELECT {group}, {', '.join(exprs)} FROM read_parquet(?) "
        f"WHERE {query.where or 'TRUE'} GROUP BY 1"
    )
    found = {row[0]: tuple(row[1:]) for row in duckdb.connect().execute(sql, [paths]).fetchall()}
    empty = tuple(0 if a == "count" or a.startswith("sum") else None for a in query.aggregates)
    rows = []
    for g in groups:
        values = found.get(g, empty)
        rows.append(
            (
                g,
                tuple(
                    Decimal(0) if v is None and a.startswith("sum") else v
                    for a, v in zip(query.aggregates, values)
                ),
            )
        )
    return rows


@dataclass(frozen=True)
class Checked:
    query: ExampleQuery
    secure: QueryResult
    plaintext: list[tuple[str, tuple[Scalar, ...]]]
    seconds: float

    @property
    def matches(self) -> bool:
        if [g for g, _ in self.secure.rows] != [g for g, _ in self.plaintext]:
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
            "match": self.matches,
            "query_id": self.secure.query_id,
            "sequence": self.secure.sequence,
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
    secure = client.query(
        "loans", query.aggregates, where=query.where, group_by=query.group_by, purpose=query.purpose
    )
    seconds = time.perf_counter() - started
    groups = [g for g, _ in secure.rows]
    return Checked(query, secure, plaintext_result(files, query, groups, schema_columns), seconds)


def default_workdir() -> Path:
    return Path("var") / "demo"

"""The demo: a local consortium answers example joint queries, each checked in the clear.

For the demo only, every secure result is compared with the same query run by
DuckDB over the pooled rows of all institutions (what a fully trusted third
party would compute). Nothing in the secure path uses that pooled view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations import Released
from mpc_gateway.computations.aggregate import parse_aggregate
from mpc_gateway.computations.aggregate_result import AggregateOutcome, Scalar, is_close, rounded
from mpc_gateway.devnet.localnet import ConsortiumFiles
from mpc_gateway.policy import OutputControls
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


def _select(query: ExampleQuery, schema_columns: dict[str, Any]) -> str:
    exprs = []
    for text in query.aggregates:
        spec = parse_aggregate(text)
        column = schema_columns.get(str(spec.column))
        scale = column.scale if isinstance(column, NumericColumn) else 0
        exprs.append(_SQL[spec.func].format(c=f'"{spec.column}"', s=scale))
    group = f'"{query.group_by}"' if query.group_by else "'*'"
    where = query.where or "TRUE"
    return f"SELECT {group}, {', '.join(exprs)} FROM read_parquet(?) WHERE {where} GROUP BY 1"


def _grouped(sql: str, paths: list[str]) -> dict[str, tuple[Any, ...]]:
    return {row[0]: tuple(row[1:]) for row in duckdb.connect().execute(sql, [paths]).fetchall()}


def plaintext_suppression(
    files: ConsortiumFiles,
    query: ExampleQuery,
    controls: OutputControls,
    groups: list[str],
    schema_columns: dict[str, Any],
) -> dict[str, tuple[str, ...]]:
    """Which groups the output controls withhold, computed in the clear from every node's rows."""
    sums = list(
        dict.fromkeys(
            str(parse_aggregate(a).column)
            for a in query.aggregates
            if parse_aggregate(a).func in ("sum", "mean", "var", "stddev")
        )
    )
    probe = ExampleQuery("", ("count", *(f"sum:{c}" for c in sums)), query.where, query.group_by)
    per_node = [
        _grouped(_select(probe, schema_columns), [str(files.data_file(n))]) for n in files.nodes
    ]
    failed: dict[str, tuple[str, ...]] = {}
    if not controls.evaluated_in_mpc:
        return {}
    for group in groups:
        rows = [found.get(group, (0, *(0 for _ in sums))) for found in per_node]
        count = sum(r[0] for r in rows)
        fails = []
        if count < controls.min_cell_count:
            fails.append("min_cell_count")
        if sum(1 for r in rows if r[0]) < controls.min_institutions:
            fails.append("min_institutions")
        k = controls.dominance_percent
        if k is not None and any(
            100 * (r[i] or 0) > k * sum(x[i] or 0 for x in rows)
            for r in rows
            for i in range(1, len(sums) + 1)
        ):
            fails.append("dominance")
        if fails:
            failed[group] = tuple(fails)
    return failed


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
    found = _grouped(_select(query, schema_columns), [str(files.data_file(n)) for n in files.nodes])
    withheld = plaintext_suppression(files, query, controls, groups, schema_columns)
    funcs = [parse_aggregate(a).func for a in query.aggregates]
    rows: list[tuple[str, tuple[Scalar, ...]]] = []
    for g in groups:
        if g in withheld:
            rows.append((g, tuple(None for _ in funcs)))
            continue
        values = found.get(g, tuple(0 if f in ("count", "sum") else None for f in funcs))
        values = tuple(Decimal(0) if v is None and f == "sum" else v for f, v in zip(funcs, values))
        rows.append((g, tuple(rounded(v, f, controls) for f, v in zip(funcs, values))))
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
    secure = client.query(
        "loans", query.aggregates, where=query.where, group_by=query.group_by, purpose=query.purpose
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

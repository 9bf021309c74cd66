"""The benchmark query, its plaintext answers, and the two DuckDB baselines.

The query: count, mean(exposure) and stddev(exposure) per sector (10 groups)
over the loans that pass a filter. The secure answer is checked against DuckDB
over the pooled rows of every node (``mpc_gateway.demo.plaintext_result``).

Baselines, timed on the same files:

* :func:`time_pooled_duckdb`: the same query by DuckDB in one process over an
  in-memory table of every node's rows (a trusted third party holding all data,
  no privacy floor), DuckDB's default thread count.
* :func:`time_local_scan`: one node's local pre-aggregation, exactly as the node
  runs it (:class:`mpc_gateway.node.data.LocalDataset`, one DuckDB thread, the
  node's default), over that node's rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import duckdb

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations import Released
from mpc_gateway.computations.aggregate import AggregateRequest, build_plan
from mpc_gateway.computations.aggregate_layout import layout_for, local_aggregates
from mpc_gateway.devnet.demo import Checked, ExampleQuery, plaintext_result
from mpc_gateway.devnet.localnet import ConsortiumFiles, schema_path
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.query.schema import DatasetSchema, load_schema
from mpc_gateway.query.sql import where_sql
from mpc_gateway.query.where import parse_where

__all__ = [
    "AGGREGATES",
    "BENCH_QUERY",
    "BENCH_DP_QUERY",
    "THROUGHPUT_FILTERS",
    "throughput_queries",
    "Reference",
    "run_query",
    "time_local_scan",
    "time_pooled_duckdb",
    "timed",
]

AGGREGATES = ("count", "mean:exposure", "stddev:exposure")
BENCH_QUERY = ExampleQuery(
    "bench", AGGREGATES, where="exposure > 1000", group_by="sector", purpose="benchmark"
)
BENCH_DP_QUERY = replace(BENCH_QUERY, dataset="loans_dp")
"""The same query on the same rows under differential privacy (noise drawn inside the MPC)."""
# distinct queries for the throughput run, so concurrent analysts do not all ask the same thing
THROUGHPUT_FILTERS = (
    "exposure > 1000",
    "exposure > 100000",
    "rating IN ('A', 'BBB') AND exposure > 1000",
    "region = 'north' OR defaulted = 1",
)


def timed(action: Callable[[], Any], repeats: int) -> list[float]:
    """Wall time of ``repeats`` calls of ``action``, in milliseconds."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def run_query(client: GatewayClient, query: ExampleQuery) -> Released:
    return client.query(
        query.dataset,
        query.aggregates,
        where=query.where,
        group_by=query.group_by,
        purpose=query.purpose,
    )


@dataclass
class Reference:
    """Plaintext answers over the pooled rows, computed once per distinct query."""

    files: ConsortiumFiles
    schema: DatasetSchema
    _answers: dict[ExampleQuery, list[Any]]

    @classmethod
    def for_files(cls, files: ConsortiumFiles) -> Reference:
        return cls(files, load_schema(schema_path()), {})

    def answer(self, query: ExampleQuery) -> list[Any]:
        if query not in self._answers:
            groups = list(self.schema.categorical(str(query.group_by)).domain)
            columns = dict(self.schema.columns)
            self._answers[query] = plaintext_result(self.files, query, groups, columns)
        return self._answers[query]

    def matches(self, query: ExampleQuery, result: Released) -> bool:
        return Checked(query, result, self.answer(query), 0.0).matches


def _pooled_sql(query: ExampleQuery) -> str:
    exprs = {
        "count": "count(*)",
        "mean:exposure": "avg(exposure)",
        "stddev:exposure": "stddev_samp(exposure)",
    }
    select = ", ".join(exprs[a] for a in query.aggregates)
    return f"SELECT {query.group_by}, {select} FROM pooled WHERE {query.where} GROUP BY 1"


def time_pooled_duckdb(
    files: ConsortiumFiles, query: ExampleQuery, repeats: int
) -> tuple[list[float], dict[str, Any]]:
    """The query over every node's rows in one DuckDB table: timings and setup facts."""
    con = duckdb.connect(":memory:")
    try:
        paths = [str(files.data_file(n)) for n in files.nodes]
        con.execute("CREATE TABLE pooled AS SELECT * FROM read_parquet(?)", [paths])
        sql = _pooled_sql(query)
        con.execute(sql).fetchall()  # warm-up
        samples = timed(lambda: con.execute(sql).fetchall(), repeats)
        threads = con.execute("SELECT current_setting('threads')").fetchone()
        return samples, {"threads": threads[0] if threads else None, "sql": sql}
    finally:
        con.close()


def _plan_for(query: ExampleQuery, schema: DatasetSchema, parties: int) -> tuple[Any, Any]:
    aggregates = []
    for text in query.aggregates:
        func, _, column = text.partition(":")
        aggregates.append({"func": func, "column": column or None})
    spec = AggregateRequest(
        dataset="loans",
        aggregates=tuple(aggregates),
        filter=parse_where(query.where),
        group_by=query.group_by,
        purpose=query.purpose,
    )
    plan = build_plan(spec, schema, "spiffe://mpcgw.local/analyst/bench")
    return plan, layout_for(plan, schema, parties)


def time_local_scan(
    files: ConsortiumFiles, query: ExampleQuery, repeats: int, threads: int = 1
) -> list[float]:
    """One node's local pre-aggregation for ``query``, as the node runs it."""
    schema = load_schema(schema_path())
    dataset = LocalDataset(schema, files.data_file(files.nodes[0]), threads)
    plan, layout = _plan_for(query, schema, len(files.nodes))
    where = where_sql(schema, plan.filter)

    def scan() -> None:
        local_aggregates(dataset.cursor(), plan, layout, where)

    scan()  # warm-up
    return timed(scan, repeats)


def throughput_queries(filters: Sequence[str] = THROUGHPUT_FILTERS) -> list[ExampleQuery]:
    return [replace(BENCH_QUERY, where=where) for where in filters]

"""Scenario 6 (opt-in): one node's local work with its rows in PostgreSQL, beside Parquet.

For each ``--source-rows`` count, one institution's loan book is written as
Parquet and loaded into a throwaway PostgreSQL server. In a fresh process per
source (so its memory is its own), the node opens the dataset as it does at
start (Parquet: loaded into DuckDB and checked; PostgreSQL: checked in place)
and then answers the benchmark query's local pre-aggregation ``--repeats``
times: the time to open, the median and p95 per query, and the process's
resident memory after opening and at the end. The PostgreSQL server's own
memory is not the node's and is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import note
from benchmarks.stats import ratio, summary
from benchmarks.workload import BENCH_QUERY
from mpc_gateway.devnet.localnet import free_port, schema_path
from mpc_gateway.devnet.postgres import load_table, postgres_server
from mpc_gateway.devnet.synth import loan_book, write_loan_book
from mpc_gateway.query.schema import load_schema

__all__ = ["sources_scenario", "measure"]


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(kind: str, where: str, repeats: int) -> dict[str, Any]:
    """In this process: open the dataset as a node does, then time the query's local inputs."""
    from mpc_gateway.computations import AggregateRequest, LocalData, build, computation_of
    from mpc_gateway.computations.aggregate import parse_aggregate
    from mpc_gateway.node.data import LocalDataset
    from mpc_gateway.node.postgres import PostgresDataset
    from mpc_gateway.query.sql import where_sql
    from mpc_gateway.query.where import parse_where
    from mpc_gateway.settings import PostgresSource

    schema = load_schema(schema_path())
    before = _rss_mb()
    started = time.perf_counter()
    dataset: LocalDataset | PostgresDataset = (
        LocalDataset(schema, Path(where))
        if kind == "parquet"
        else PostgresDataset(schema, PostgresSource(table="loans", dsn_env="MPCGW_BENCH_DSN"))
    )
    open_s = time.perf_counter() - started
    opened = _rss_mb()
    request = AggregateRequest(
        dataset="loans",
        aggregates=tuple(parse_aggregate(a) for a in BENCH_QUERY.aggregates),
        group_by=BENCH_QUERY.group_by,
        filter=parse_where(BENCH_QUERY.where),
        purpose="benchmark",
    )
    plan = build(request, schema, "analyst/alice", 3)
    data = LocalData(
        cursor=dataset.cursor(),
        schema=schema,
        where=where_sql(schema, plan.filter),
        parties=3,
        node="bank-a",
        node_key_pem=b"",
    )
    samples = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        computation_of(plan).local_inputs(plan, {}, data)
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "open_s": round(open_s, 3),
        "local_inputs": summary(samples[1:]),  # the first warms caches
        "rss_mb_before": round(before, 1),
        "rss_mb_opened": round(opened, 1),
        "rss_mb_end": round(_rss_mb(), 1),
    }


def _in_fresh_process(kind: str, where: str, repeats: int, dsn: str) -> dict[str, Any]:
    code = (
        "import json, sys; from benchmarks.sources import measure; "
        "print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, kind, where, str(repeats)],
        capture_output=True,
        text=True,
        env={**os.environ, "MPCGW_BENCH_DSN": dsn},
        timeout=3600,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def sources_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One entry per --source-rows count: Parquet and PostgreSQL side by side."""
    entries = []
    with postgres_server(free_port()) as server, tempfile.TemporaryDirectory() as tmp:
        for rows in sorted(args.source_rows):
            note(f"sources, {rows:,} rows: writing Parquet and loading PostgreSQL")
            parquet = Path(tmp) / f"loans-{rows}.parquet"
            write_loan_book(parquet, loan_book("bank-a", rows, args.seed))
            started = time.perf_counter()
            load_table(server.dsn, "loans", load_schema(schema_path()), parquet)
            load_s = time.perf_counter() - started
            note(f"sources, {rows:,} rows: {args.repeats} local pre-aggregations per source")
            parquet_run = _in_fresh_process("parquet", str(parquet), args.repeats, server.dsn)
            postgres_run = _in_fresh_process("postgres", "", args.repeats, server.dsn)
            entries.append(
                {
                    "rows": rows,
                    "postgres_load_s": round(load_s, 2),
                    "parquet": parquet_run,
                    "postgres": postgres_run,
                    "postgres_over_parquet": ratio(
                        postgres_run["local_inputs"], parquet_run["local_inputs"]
                    ),
                }
            )
    return entries

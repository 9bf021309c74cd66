"""Scenario 1 (aggregate query latency against its baselines) and 3 (scaling with parties).

Each scenario returns plain dicts (what ends up in the JSON), one per row of its
table. Every consortium is prepared afresh under ``--workdir`` and stopped in a
``finally``; the baselines run after it is stopped, so they do not share the
cores with idle node processes.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import traceback
from collections.abc import Callable
from typing import Any

from benchmarks.consortium import client_for, first_answer, running_consortium
from benchmarks.naive import NaiveFailed, NaiveRun, max_relative_error, run_naive
from benchmarks.report import note
from benchmarks.sealing import sealing_cost
from benchmarks.stats import ratio, summary
from benchmarks.workload import (
    BENCH_DP_QUERY,
    BENCH_QUERY,
    Reference,
    run_query,
    time_local_scan,
    time_pooled_duckdb,
)
from mpc_gateway.devnet.localnet import DEFAULT_NODES, ConsortiumFiles

__all__ = ["each", "latency_scenario", "measured", "parties_scenario"]


def full_path(files: ConsortiumFiles, repeats: int, warmup: int) -> dict[str, Any]:
    """Analyst client -> gateway (with audit) -> nodes -> MPC, timed at the client.

    The first answer (retried if the consortium fails it) and ``warmup`` more
    queries are not timed; the next ``repeats`` are, and every answer is checked.
    """
    reference = Reference.for_files(files)
    reference.answer(BENCH_QUERY)
    samples, gateway_ms, mpc_ms, local_ms, wrong = [], [], [], [], 0
    with client_for(files) as client:
        first = first_answer(client, BENCH_QUERY)
        wrong += not reference.matches(BENCH_QUERY, first.result)
        for _ in range(warmup):
            run_query(client, BENCH_QUERY)
        for _ in range(repeats):
            started = time.perf_counter()
            result = run_query(client, BENCH_QUERY)
            samples.append((time.perf_counter() - started) * 1000)
            gateway_ms.append(result.total_ms)
            mpc_ms.append(result.mpc_ms)
            if getattr(result, "local_ms", None) is not None:  # once the client exposes it
                local_ms.append(result.local_ms)  # type: ignore[attr-defined]
            wrong += not reference.matches(BENCH_QUERY, result)
    return {
        "first_query_ms": round(first.ms, 3),  # may wait for the MPC session to open
        "startup_failures": first.failures,
        "full_path": summary(samples),
        "gateway_reported": summary(gateway_ms),
        "mpc_reported": summary(mpc_ms),
        "local_scan_reported": summary(local_ms),  # the slowest node's scan, in the path
        "wrong_results": wrong,
    }


def dp_cost(files: ConsortiumFiles, repeats: int) -> dict[str, Any]:
    """What differential privacy adds: the query exact and under DP, in alternating pairs.

    Same rows, same query, same warm session; each pair runs back to back, so drift in
    the machine's load affects both alike. Only the noise (drawn at every node, added
    to its inputs) and the dataset's larger secure integers differ.
    """
    exact, private, added = [], [], []
    with client_for(files) as client:
        run_query(client, BENCH_DP_QUERY)  # untimed: the DP plan's first run
        for _ in range(repeats):
            started = time.perf_counter()
            run_query(client, BENCH_QUERY)
            middle = time.perf_counter()
            run_query(client, BENCH_DP_QUERY)
            done = time.perf_counter()
            exact.append((middle - started) * 1000)
            private.append((done - middle) * 1000)
            added.append(private[-1] - exact[-1])
    return {
        "exact": summary(exact),
        "dp": summary(private),
        "dp_added_median_ms": round(statistics.median(added), 3),
        "dp_over_exact": ratio(summary(private), summary(exact)),
    }


def _naive_summary(runs: list[NaiveRun], reference: list[Any]) -> dict[str, Any]:
    worst = max(max_relative_error(r, reference) for r in runs)
    phases = {key: statistics.median(r.timings[key] for r in runs) for key in runs[0].timings}
    return {
        **summary([r.wall_ms for r in runs]),
        "party0_phases_median_s": {k: round(v, 4) for k, v in phases.items()},
        "max_relative_error": worst if math.isfinite(worst) else "a value missing",
        "transport": "plain TCP on loopback, no TLS",
    }


def naive_baseline(files: ConsortiumFiles, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    """The naive MPyC script, launched once per query; skipped above --naive-max-rows."""
    if args.naive_repeats <= 0:
        return {"skipped": "--naive-repeats 0"}
    if rows > args.naive_max_rows:
        return {"skipped": f"{rows:,} rows/node > --naive-max-rows {args.naive_max_rows:,}"}
    reference = Reference.for_files(files)
    expected = reference.answer(BENCH_QUERY)
    groups = [group for group, _ in expected]
    log = files.root / "logs" / "naive.log"
    runs = []
    try:
        for _ in range(args.naive_repeats):
            runs.append(run_naive(files, BENCH_QUERY, groups, args.naive_timeout, log))
    except NaiveFailed as err:
        if not runs:
            return {"skipped": f"failed: {err}"}
        return {**_naive_summary(runs, expected), "incomplete": str(err)}
    return _naive_summary(runs, expected)


def each(
    key: str, configs: list[Any], measure: Callable[[Any], dict[str, Any]]
) -> list[dict[str, Any]]:
    """``measure`` every configuration; a failure is recorded as an entry, the rest still run."""
    entries = []
    for config in configs:
        try:
            entries.append(measure(config))
        except Exception as err:  # noqa: BLE001 - reported in the output and the JSON
            error = "".join(traceback.format_exception_only(err)).strip()
            entries.append({key: config, "error": error})
            note(f"[red]{key} {config} failed[/]: {error}")
    return entries


def measured(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries that did not fail."""
    return [entry for entry in entries if "error" not in entry]


def _ratios(entry: dict[str, Any]) -> dict[str, float | None]:
    naive = entry["naive"] if "median_ms" in entry["naive"] else None
    return {
        "naive_over_full": ratio(naive, entry["full_path"]),
        "full_over_duckdb": ratio(entry["full_path"], entry["duckdb"]),
        "full_over_local_scan": ratio(entry["full_path"], entry["local_scan"]),
    }


def _latency_for(rows: int, args: argparse.Namespace) -> dict[str, Any]:
    entry: dict[str, Any] = {"rows_per_node": rows, "nodes": len(DEFAULT_NODES)}
    root = args.workdir / f"latency-{rows}"
    note(f"latency, {rows:,} rows/node: preparing and starting the consortium")
    with running_consortium(root, DEFAULT_NODES, rows, args.seed) as run:
        entry["prepare_s"], entry["start_s"] = round(run.prepare_s, 2), round(run.start_s, 2)
        note(f"latency, {rows:,} rows/node: full path, {args.repeats} queries")
        entry.update(full_path(run.files, args.repeats, args.warmup))
        note(f"latency, {rows:,} rows/node: the same query under DP, {args.repeats} pairs")
        entry["dp_cost"] = dp_cost(run.files, args.repeats)
        note(f"latency, {rows:,} rows/node: sealing and witnessing, {args.repeats} queries")
        entry["sealing"] = sealing_cost(run.files, args.repeats)
    note(f"latency, {rows:,} rows/node: local scan and pooled DuckDB baselines")
    entry["local_scan"] = summary(time_local_scan(run.files, BENCH_QUERY, args.repeats))
    samples, facts = time_pooled_duckdb(run.files, BENCH_QUERY, args.repeats)
    entry["duckdb"] = {**summary(samples), **facts}
    note(f"latency, {rows:,} rows/node: naive MPyC baseline, {args.naive_repeats} runs")
    entry["naive"] = naive_baseline(run.files, rows, args)
    entry["ratios"] = _ratios(entry)
    return entry


def latency_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Scenario 1: one entry per --rows value, each with its growth over the smallest."""
    entries = each("rows_per_node", sorted(args.rows), lambda rows: _latency_for(rows, args))
    ok = measured(entries)
    for entry in ok:
        # the claim to check: the full path grows with rows only as fast as the local scan
        entry["growth_vs_smallest_ms"] = {
            part: round(entry[part]["median_ms"] - ok[0][part]["median_ms"], 3)
            for part in ("full_path", "local_scan")
        }
    return entries


def _with_parties(parties: int, args: argparse.Namespace) -> dict[str, Any]:
    nodes = [f"inst-{i}" for i in range(parties)]
    root = args.workdir / f"parties-{parties}"
    note(f"parties: {parties} nodes, {args.parties_rows:,} rows each")
    with running_consortium(root, nodes, args.parties_rows, args.seed) as run:
        measured = full_path(run.files, args.parties_repeats, args.warmup)
    return {
        "parties": parties,
        "threshold": (parties - 1) // 2,
        "rows_per_node": args.parties_rows,
        "start_s": round(run.start_s, 2),
        **measured,
    }


def parties_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Scenario 3: the same query with 3, 5, 7, ... nodes."""
    entries = each("parties", args.parties, lambda parties: _with_parties(parties, args))
    ok = measured(entries)
    for entry in ok:
        entry["vs_first"] = ratio(entry["full_path"], ok[0]["full_path"])
    return entries

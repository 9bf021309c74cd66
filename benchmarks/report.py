"""The tables printed at the end of a run, progress notes, and the JSON file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.cells import figure, ms, times
from benchmarks.netns_table import netns_table
from benchmarks.screening_tables import oprf_gateway_table, oprf_table, watchlist_table

__all__ = ["note", "print_report", "write_json"]

# wide enough for every table when the output goes to a file or a pipe
console = Console(width=None if sys.stdout.isatty() else 150)
progress = Console(stderr=True)


def note(message: str) -> None:
    """A progress line on stderr (the tables go to stdout)."""
    progress.print(f"[dim]·[/] {message}")


def _latency_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="1. Aggregate query latency, ms (3 nodes)")
    for name in ("rows/node", "full p50", "full p95", "scan p50", "full−scan", "DuckDB p50"):
        table.add_column(name, justify="right")
    for name in ("DuckDB p95", "naive p50", "naive p95"):
        table.add_column(name, justify="right")
    for e in entries:
        fixed = e["full_path"]["median_ms"] - e["local_scan"]["median_ms"]
        table.add_row(
            f"{e['rows_per_node']:,}",
            figure(e["full_path"]),
            figure(e["full_path"], "p95_ms"),
            figure(e["local_scan"]),
            ms(fixed),
            figure(e["duckdb"]),
            figure(e["duckdb"], "p95_ms"),
            figure(e["naive"]),
            figure(e["naive"], "p95_ms"),
        )
    table.caption = (
        "count, mean(exposure), stddev(exposure) by sector where exposure > 1000. "
        "full: analyst client → gateway (audit) → nodes → MPC, warm session. "
        "scan: one node's local GROUP BY (1 DuckDB thread, as the node). "
        "DuckDB: the query over all nodes' rows pooled in one in-memory table, loaded from the "
        "Parquet files as they are, DuckDB's default threads. "
        "naive: plain MPyC script, 3 processes launched per query, TCP without TLS."
    )
    return table


def _first(entry: dict[str, Any]) -> str:
    failed = len(entry.get("startup_failures", ()))
    return ms(entry["first_query_ms"]) + (f" ({failed} failed)" if failed else "")


def _relative_error(naive: dict[str, Any]) -> str:
    value = naive.get("max_relative_error")
    return "–" if value is None else value if isinstance(value, str) else f"{value:.1e}"


def _ratio_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="1b. Ratios (of medians) and where the full path spends its time")
    columns = ("rows/node", "naive/full", "full/DuckDB", "full/scan", "Δfull", "Δscan")
    for name in (*columns, "gateway p50", "MPC p50", "scan in path p50"):
        table.add_column(name, justify="right")
    for name in ("1st query", "wrong", "naive rel. err"):
        table.add_column(name, justify="right")
    skipped = []
    for e in entries:
        r = e["ratios"]
        if "skipped" in e["naive"]:
            skipped.append(f"{e['rows_per_node']:,} rows/node: naive {e['naive']['skipped']}")
        table.add_row(
            f"{e['rows_per_node']:,}",
            times(r["naive_over_full"]),
            times(r["full_over_duckdb"]),
            times(r["full_over_local_scan"]),
            ms(e["growth_vs_smallest_ms"]["full_path"]),
            ms(e["growth_vs_smallest_ms"]["local_scan"]),
            figure(e["gateway_reported"]),
            figure(e["mpc_reported"]),
            figure(e.get("local_scan_reported")),
            _first(e),
            str(e["wrong_results"]),
            _relative_error(e["naive"]),
        )
    table.caption = (
        "Δfull, Δscan: growth of the medians over the smallest row count (the full path should "
        "grow no faster than the scan). gateway, MPC: as the gateway reports in each reply. "
        "scan in path: the slowest node's scan as the gateway reports it (– until the client "
        "exposes Timing.local_ms). naive rel. err: largest relative difference from plaintext. "
        + "; ".join(skipped)
    )
    return table


def _dp_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="1c. What differential privacy adds to the aggregate query, ms")
    for name in ("rows/node", "exact p50", "DP p50", "DP p95", "added (paired p50)", "DP/exact"):
        table.add_column(name, justify="right")
    for e in entries:
        dp = e.get("dp_cost")
        if not dp:
            continue
        table.add_row(
            f"{e['rows_per_node']:,}",
            figure(dp["exact"]),
            figure(dp["dp"]),
            figure(dp["dp"], "p95_ms"),
            ms(dp["dp_added_median_ms"]),
            times(dp["dp_over_exact"]),
        )
    table.caption = (
        "the same query on the same rows, exact (loans) and under DP (loans_dp, ρ 0.05: every "
        "node draws OpenDP discrete Gaussian noise for each count, sum and sum of squares and "
        "adds it to its inputs), run in alternating pairs in one warm session; added: the "
        "median of the pairs' differences"
    )
    return table


def _sealing_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="1d. What sealing results and witnessing releases cost per query, ms")
    names = (
        "rows/node",
        "release p50",
        "seal p50",
        "unseal p50",
        "added",
        "open p50",
        "full path p50",
        "share",
    )
    for name in names:
        table.add_column(name, justify="right")
    for e in entries:
        s = e.get("sealing")
        if not s:
            continue
        table.add_row(
            f"{e['rows_per_node']:,}",
            figure(s["release"]),
            figure(s["seal"]),
            figure(s["unseal"]),
            ms(s["added_median_ms"]),
            figure(s["open"]),
            figure(s["full_path"]),
            f"{100 * s['added_share_of_full_path']:.0f}%",
        )
    table.caption = (
        "release: every node cosigns the checkpoint logging the release (after a consistency "
        "proof), records it durably and hands over its sealed shares (as the gateway reports "
        "it); seal: one node's HPKE sealing of its shares; unseal: the client reading the "
        "relayed message, checking every signature and cosignature and decrypting; added: "
        "release + seal + unseal; open: unseal plus recombining and decoding (the gateway's "
        "work before results were sealed, now the client's)"
    )
    return table


def _sources_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="6. One node's local pre-aggregation: PostgreSQL (pushed down) vs Parquet")
    for name in ("rows", "source", "open s", "p50 ms", "p95 ms", "node RSS opened / end MB"):
        table.add_column(name, justify="right")
    for e in entries:
        for kind in ("parquet", "postgres"):
            run = e[kind]
            table.add_row(
                f"{e['rows']:,}",
                kind,
                f"{run['open_s']:.2f}",
                figure(run["local_inputs"]),
                figure(run["local_inputs"], "p95_ms"),
                f"{run['rss_mb_opened']:.0f} / {run['rss_mb_end']:.0f}",
            )
    table.caption = (
        "the benchmark query's local pre-aggregation (count, sum, sum of squares by sector "
        "where exposure > 1000) in a fresh process per source; Parquet: loaded into DuckDB at "
        "open; PostgreSQL: checked in place at open, then every statement pushed down "
        "(the server's memory is not the node's)"
    )
    return table


def _cpu(cpu: dict[str, float | None]) -> str:
    if not cpu:
        return "–"
    parts = [cpu.get(k) for k in ("gateway", "nodes", "mpc_workers", "analysts")]
    shown = " / ".join("?" if v is None else f"{v:.1f}" for v in parts)
    return f"{shown} = {cpu['total']:.1f}"


def _throughput_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="2. Throughput: concurrent analysts, each with its own client")
    for name in ("batch", "analysts", "qps", "p50 ms", "p95 ms", "requests", "replies", "correct"):
        table.add_column(name, justify="right")
    for name in ("wrong", "errors", "lost", "dup. ids", "conn. errors", "CPU ms/query"):
        table.add_column(name, justify="right")
    for e in entries:
        errors = ", ".join(f"{k}: {v}" for k, v in e["errors"].items()) or "0"
        table.add_row(
            str(e.get("batch_max", 1)),
            str(e["concurrency"]),
            f"{e['qps']:.1f}" if e["qps"] is not None else "–",
            figure(e["latency"]),
            figure(e["latency"], "p95_ms"),
            *(str(e[k]) for k in ("requests", "replies", "correct", "wrong")),
            errors,
            str(e["lost"] + e["hung_analysts"]),
            str(e["duplicate_query_ids"]),
            str(e["connect_errors"]),
            _cpu(e.get("cpu_ms_per_query") or {}),
        )
    if entries:
        table.caption = (
            f"{entries[0]['rows_per_node']:,} rows/node, 3 nodes, "
            f"{entries[0]['distinct_queries']} distinct filters; every reply checked against "
            "plaintext. Clients connect (untimed) before the clock starts; analyst threads "
            "share the cores with the consortium. CPU ms/query: gateway / all nodes / all "
            "MPC workers / analysts (this process) = total. batch: the most queries the "
            "gateway sends the nodes as one batch (1: each alone, the baseline)."
        )
    return table


def _parties_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="3. Scaling with parties (same query)")
    for name in ("nodes", "t", "rows/node", "full p50", "full p95", "vs first", "MPC p50"):
        table.add_column(name, justify="right")
    table.add_column("1st query", justify="right")
    table.add_column("wrong", justify="right")
    for e in entries:
        table.add_row(
            str(e["parties"]),
            str(e["threshold"]),
            f"{e['rows_per_node']:,}",
            figure(e["full_path"]),
            figure(e["full_path"], "p95_ms"),
            times(e["vs_first"]),
            figure(e["mpc_reported"]),
            _first(e),
            str(e["wrong_results"]),
        )
    return table


def _risk_mpc_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="4. Risk scoring MPC program (3 parties, 10 features, logistic decisions)")
    for name in ("entities", "public p50", "secret p50", "secret/public", "naive", "naive/public"):
        table.add_column(name, justify="right")
    table.add_column("wrong p/s/n", justify="right")
    for e in entries:
        approx = "~" if e["naive"]["extrapolated"] else ""
        wrong = "/".join(str(e[k].get("wrong", "-")) for k in ("public", "secret", "naive"))
        table.add_row(
            f"{e['entities']:,}",
            figure(e["public"]),
            figure(e["secret"]),
            times(e["secret_vs_public"]),
            approx + figure(e["naive"]),
            approx + times(e["naive_vs_public"]),
            wrong,
        )
    return table


def _risk_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="5. Risk queries through the full path")
    table.add_column("query")
    for name in ("full p50", "full p95", "MPC p50", "MPC share", "jobs", "wrong"):
        table.add_column(name, justify="right")
    for e in entries:
        full, mpc = e["full_path"]["median_ms"], e["mpc_reported"]["median_ms"]
        table.add_row(
            e["query"],
            figure(e["full_path"]),
            figure(e["full_path"], "p95_ms"),
            figure(e["mpc_reported"]),
            f"{100 * mpc / full:.0f}%" if full else "-",
            str(e["rounds"]),
            str(e["wrong_results"]),
        )
    return table


def _lanes_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="6. Short queries beside a long job (lanes)")
    table.add_column("case")
    for name in ("queries", "p50", "p99", "max", "long job ran", "wrong"):
        table.add_column(name, justify="right")
    for e in entries:
        short = e["short_query"]
        table.add_row(
            e["case"],
            str(short.get("n", 0)),
            figure(short),
            figure(short, "p99_ms"),
            figure(short, "max_ms"),
            ms(e.get("long_job_running_ms")),
            str(e["wrong_results"]),
        )
    return table


_TABLES = {
    "latency": (_latency_table, _ratio_table, _dp_table, _sealing_table),
    "throughput": (_throughput_table,),
    "parties": (_parties_table,),
    "risk_mpc": (_risk_mpc_table,),
    "risk": (_risk_table,),
    "lanes": (_lanes_table,),
    "watchlist": (watchlist_table,),
    "oprf": (oprf_table, oprf_gateway_table),
    "sources": (_sources_table,),
    "netns": (netns_table,),
}


def print_report(results: dict[str, Any]) -> None:
    m = results["machine"]
    console.print(
        f"[bold]mpc-gateway benchmarks[/] on {m['usable_cores']} of {m['cores']} cores, "
        f"{m['cpu_model']}, Python {m['python']}, mpyc {m['versions']['mpyc']}, "
        f"gmpy2 {'yes' if m['gmpy2_present'] else 'no'}; load average "
        f"{m['load_average_at_start']} at start, {results.get('load_average_at_end')} at end"
    )
    for name, tables in _TABLES.items():
        entries = [e for e in results["scenarios"].get(name, ()) if "error" not in e]
        for build in tables:
            if entries:
                console.print(build(entries))
    _print_problems(results)


def _print_problems(results: dict[str, Any]) -> None:
    """Scenarios that failed, and queries a fresh consortium failed before its first answer."""
    for name, error in results.get("failures", {}).items():
        console.print(f"[bold red]scenario {name} failed:[/] {error}")
    for name, entries in results["scenarios"].items():
        for entry in entries:
            if "error" in entry:
                key = next(iter(entry))
                console.print(f"[bold red]{name}, {key} {entry[key]} failed:[/] {entry['error']}")
            for failure in entry.get("startup_failures", ()):
                where = ", ".join(
                    f"{k} {entry[k]:,}" for k in ("rows_per_node", "parties") if k in entry
                )
                console.print(
                    f"[yellow]{name} ({where}): failed before its first answer:[/] {failure}"
                )


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")

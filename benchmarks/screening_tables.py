"""The screening scenarios' tables: a watchlist's overlap, and the threshold-OPRF pseudonyms."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from benchmarks.cells import figure, ms, times

__all__ = ["watchlist_table", "oprf_table", "oprf_gateway_table"]


def watchlist_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="7. A watchlist's overlap with every member's alerts")
    table.add_column("case")
    columns = ("overlap", "amount", "p50", "gateway", "nodes' join", "MPC", "hash join", "ratio")
    for name in (*columns, "wrong"):
        table.add_column(name, justify="right")
    for e in entries:
        table.add_row(
            e["case"],
            f"{e['overlap']:,}",
            "–" if e.get("amount") is None else f"{float(e['amount']):,.0f}",
            figure(e["secure"]),
            ms(e["gateway_ms"]),
            ms(e["local_ms"]),
            ms(e["mpc_ms"]),
            ms(e["hash_join_ms"]),
            times(e["secure_over_join"]),
            str(e["wrong_results"]),
        )
    return table


def oprf_table(entries: list[dict[str, Any]]) -> Table:
    title = "8. Persons' pseudonyms under the nodes' joint key (m = 3, t = 1), time per id (µs)"
    table = Table(title=title)
    table.add_column("case")
    columns = ("blind", "evaluate", "finish", "HMAC, one key", "OPRF/HMAC", "1M: requester, node")
    for name in (*columns, "wrong"):
        table.add_column(name, justify="right")
    for e in (e for e in entries if e["part"] == "arithmetic"):
        step = e["per_key_us"]
        table.add_row(
            e["case"],
            ms(step["blind"]),
            ms(step["evaluate"]),
            ms(step["finish"]),
            ms(step["hmac"]),
            times(e["oprf_over_hmac"]),
            # a million persons pseudonymised by their node: its own CPU, and each evaluator's
            # (µs per key times a million keys is that many seconds)
            f"{e['requester_us']:.1f} s, {step['evaluate']:.1f} s",
            str(e["wrong_results"]),
        )
    return table


def oprf_gateway_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="8b. Screening a person by national id, through the gateway (ms)")
    for name in (
        "case",
        "pseudonym p50",
        "p95",
        "check p50",
        "both p50",
        "both p95",
        "per id, in a request",
        "wrong",
    ):
        table.add_column(name, justify="left" if name == "case" else "right")
    for e in (e for e in entries if e["part"] == "gateway"):
        table.add_row(
            e["case"],
            ms(e["pseudonym"]["median_ms"]),
            ms(e["pseudonym"]["p95_ms"]),
            ms(e["check"]["median_ms"]),
            ms(e["both"]["median_ms"]),
            ms(e["both"]["p95_ms"]),
            f"{e['per_id_ms']:.2f} ({e['ids_per_request']:,} ids)",
            str(e["wrong_results"]),
        )
    return table

"""The screening scenarios' tables: a watchlist's overlap, and the threshold-OPRF pseudonyms."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from benchmarks.cells import figure, ms, times

__all__ = ["watchlist_table", "oprf_table"]


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
    table = Table(title="8. Persons' pseudonyms by a threshold OPRF, per key (µs)")
    table.add_column("case")
    columns = ("blind", "evaluate", "finish", "HMAC today", "OPRF/HMAC", "1M: requester, node")
    for name in (*columns, "wrong"):
        table.add_column(name, justify="right")
    for e in entries:
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

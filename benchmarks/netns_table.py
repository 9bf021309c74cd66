"""The ``netns`` scenario's table: latency, rounds and the target at each round-trip time."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from benchmarks.cells import figure, ms

__all__ = ["netns_table"]


def netns_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="9. Latency over a network: every node in its own namespace")
    for name in ("case", "RTT", "queries", "p50", "p99", "implied rounds", "hops", "rounds"):
        table.add_column(name, justify="left" if name == "case" else "right")
    for name in ("target", "met", "relay late", "wrong"):
        table.add_column(name, justify="right")
    paths: dict[str | None, list[str]] = {}
    for e in entries:
        lat, met = e.get("latency", {}), e.get("meets_target")
        paths.setdefault(e.get("path"), []).append(str(e["rtt_ms"]))
        table.add_row(
            e["case"] + (f" (skipped: {e['skipped']})" if "skipped" in e else ""),
            f"{e['rtt_ms']} ms",
            str(lat.get("n", 0)),
            figure(lat),
            figure(lat, "p99_ms"),
            str(e.get("implied_rounds", "–")),
            str(e.get("hops", "–")),
            str(e.get("counted_rounds", "–")),
            ms(e.get("target_ms")),
            "–" if met is None else "yes" if met else "no",
            ms(e.get("relay_late_ms")),
            str(e.get("wrong_results", "–")),
        )
    shown = "; ".join(f"{path} (at {', '.join(rtts)} ms)" for path, rtts in paths.items() if path)
    table.caption = (
        "implied rounds: (p50 − p50 through the relays at 0 ms) / RTT. hops: sequential one-way "
        "trips, the chain of relayed messages most queries had; rounds = hops / 2. target: "
        "rounds × RTT + 10 ms, met if p50 ≤ it. relay late: mean delivery after its due time. "
        f"Critical path: {shown or '–'}"
    )
    return table

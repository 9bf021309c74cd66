"""The benchmark suite: ``python -m benchmarks.run [options]`` (or ``make bench ARGS=...``).

Scenarios (``--scenarios``, all by default):

1. ``latency``: the aggregate query through the full path at each ``--rows``, against
   DuckDB over the pooled rows, one node's local scan, and a naive MPyC script.
2. ``throughput``: queries per second with each ``--concurrency`` of analysts.
3. ``parties``: the same query with each ``--parties`` count of nodes.
4. ``risk_mpc``: the scoring MPC program alone (3 party processes) at each
   ``--risk-sizes`` entity count, public and secret weights, against a plain MPyC
   script written the straightforward way (benchmarks/risk_bench.py).
5. ``risk``: risk queries through the full path: scoring at each ``--risk-sizes``,
   concentration, quantiles, a histogram (benchmarks/risk_gateway.py).
6. ``lanes``: the aggregate's latency (median, p99) while a ``--lanes-entities`` scoring
   batch runs in the long lane, against the same with no long job, in one consortium
   (benchmarks/lanes_bench.py).
7. ``watchlist``: a watchlist's overlap (``--watchlist-keys`` LEIs) with every member's
   alerts (``--watchlist-alerts`` counterparties each), through the full path, against a
   plain hash join over the pooled alerts (benchmarks/watchlist_bench.py).
8. ``sources`` (not run unless named): one node's local pre-aggregation with its rows
   in PostgreSQL beside Parquet, at each ``--source-rows``, with the node's memory
   (benchmarks/sources.py).
9. ``train`` (not run unless named): the joint training program alone (3 party
   processes), logistic regression at each ``--train-sizes`` ``ROWSxFEATURES``, against
   statsmodels on the pooled rows (benchmarks/train_bench.py).
10. ``netns`` (not run unless named; needs root, skipped without): the aggregate with
   every node in its own network namespace, directly and through delaying relays at
   each ``--netns-rtts`` round-trip time, with the communication rounds it needs
   (benchmarks/netns_bench.py).

11. ``oprf``: persons' pseudonyms under the nodes' joint key (a threshold OPRF), per id
   against a keyed HMAC under one shared key, then through the gateway: one person's
   pseudonym, its check, and a thousand ids in a request (benchmarks/oprf_bench.py).

Prints tables and writes every figure, with the machine it ran on, as JSON
(``--output``, default ``benchmarks/results/latest.json``). The defaults (10k and 100k
rows per node) took 77 s on a busy 2-core machine, and the two risk scenarios about 100 s
more; the full sizes, for a quiet one::

    python -m benchmarks.run --rows 10000,100000,1000000 --duration 30 --risk-sizes 1000,10000

A quick check: ``python -m benchmarks.run --rows 2000 --repeats 5 --duration 3``.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.lanes_bench import lanes_scenario
from benchmarks.machine import load_average, machine_info
from benchmarks.netns_bench import netns_scenario
from benchmarks.oprf_bench import oprf_entries
from benchmarks.report import note, print_report, write_json
from benchmarks.risk_bench import risk_scoring_scenario
from benchmarks.risk_gateway import risk_gateway_scenario
from benchmarks.scenarios import latency_scenario, parties_scenario
from benchmarks.sources import sources_scenario
from benchmarks.throughput import throughput_scenario
from benchmarks.train_bench import train_scenario
from benchmarks.watchlist_bench import watchlist_scenario

__all__ = ["main", "SCENARIOS"]

METHOD = {
    "query": "count, mean(exposure), stddev(exposure) by sector (10 groups) where exposure > 1000",
    "full_path": "analyst client -> gateway (mTLS, audit log) -> nodes -> MPC worker sessions; "
    "wall time at the client; untimed first answer and --warmup queries before",
    "duckdb": "the same query over every node's rows in one in-memory DuckDB table, loaded "
    "from the Parquet files as they are, default threads; no privacy",
    "local_scan": "one node's pre-aggregation as the node runs it (LocalDataset, 1 thread)",
    "naive": "benchmarks/naive_mpyc.py: one process per party launched per query, MPyC over "
    "plain TCP on loopback (no TLS), secure fixed-point arrays; wall time launch to exit",
    "throughput": "analyst threads in this process, each with its own GatewayClient",
    "cpu_ms_per_query": "utime+stime from /proc over the measured interval, per reply",
    "risk_mpc": "entity_scores alone in 3 MPyC party processes (TLS off), MPC time inside the "
    "parties; naive: fixed-point lists and a loop over entities, run once at --risk-naive-max "
    "entities and extrapolated linearly (~) above",
    "risk": "analyst client -> gateway -> nodes -> MPC workers, wall time at the client, one "
    "untimed run per kind first; decisions checked against the pooled plaintext",
    "lanes": "the benchmark query back to back from one analyst, wall time at the client: first "
    "with nothing else running, then while another analyst's scoring batch (3 secure maxima "
    "per entity) runs in the long lane; 'during' counts only queries that started once every "
    "node had the batch's order and ended before its answer",
    "watchlist": "mpcgw check --keys FILE --overlap from one analyst: every node joins the keys "
    "against its alerts (DuckDB) and inputs a bit per key, the MPC ORs and sums them; wall time "
    "at the client; hash join: DuckDB, the keys against the pooled alerts, no privacy",
    "netns": "the benchmark query back to back from one analyst, wall time at the client; every "
    "node in its own network namespace; relays hold each chunk RTT/2 each way in front of every "
    "node's gRPC and MPC ports; hops: per query the longest chain of relayed messages each sent "
    "by the receiver of the one before once it arrived (an upper bound on its sequential one-way "
    "trips), the fewest over the queries",
}

SCENARIOS: dict[str, Callable[[argparse.Namespace], list[dict[str, Any]]]] = {
    "latency": latency_scenario,
    "throughput": throughput_scenario,
    "parties": parties_scenario,
    "risk_mpc": lambda args: risk_scoring_scenario(_risk_mpc_args(args)),
    "train": train_scenario,
    "risk": risk_gateway_scenario,
    "lanes": lanes_scenario,
    "watchlist": watchlist_scenario,
    "oprf": oprf_entries,
    "sources": sources_scenario,
    "netns": netns_scenario,
}
DEFAULT_SCENARIOS = [
    "latency",
    "throughput",
    "parties",
    "risk_mpc",
    "risk",
    "lanes",
    "watchlist",
    "oprf",
]


def _risk_mpc_args(args: argparse.Namespace) -> argparse.Namespace:
    """The options of benchmarks.risk_bench, from this suite's."""
    return argparse.Namespace(
        sizes=args.risk_sizes,
        repeats=args.risk_repeats,
        large=2000,
        large_repeats=1,
        naive_max=args.risk_naive_max,
        naive_repeats=1,
        seed=17,
    )


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown scenario(s) {unknown}; known: {list(SCENARIOS)}")
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    p.add_argument("--scenarios", type=_names, default=DEFAULT_SCENARIOS, help="comma-separated")
    p.add_argument("--rows", type=_ints, default=[10_000, 100_000], help="rows per node (latency)")
    p.add_argument("--repeats", type=int, default=50, help="timed queries per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed queries after the first")
    p.add_argument("--naive-repeats", type=int, default=5, help="naive MPyC runs (0: skip)")
    p.add_argument("--naive-max-rows", type=int, default=1_000_000, help="skip naive above this")
    p.add_argument("--naive-timeout", type=float, default=600.0, help="seconds per naive run")
    p.add_argument("--concurrency", type=_ints, default=[1, 8, 32], help="analyst threads")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency level")
    p.add_argument("--count", type=int, default=0, help="queries per analyst instead of duration")
    p.add_argument("--throughput-rows", type=int, default=10_000, help="rows per node")
    p.add_argument(
        "--batch-max", type=_ints, default=[16, 1], help="gateway batch sizes (1: no batching)"
    )
    p.add_argument("--parties", type=_ints, default=[3, 5, 7], help="node counts")
    p.add_argument("--parties-rows", type=int, default=10_000, help="rows per node")
    p.add_argument("--parties-repeats", type=int, default=20, help="timed queries per count")
    p.add_argument("--risk-sizes", type=_ints, default=[1000], help="entities scored (risk)")
    p.add_argument("--risk-repeats", type=int, default=3, help="timed runs per risk query")
    p.add_argument("--risk-rows", type=int, default=10_000, help="rows per node (risk)")
    p.add_argument("--risk-naive-max", type=int, default=300, help="entities for the naive run")
    p.add_argument("--lanes-rows", type=int, default=10_000, help="rows per node (lanes)")
    p.add_argument("--lanes-repeats", type=int, default=100, help="aggregates with no long job")
    p.add_argument("--lanes-entities", type=int, default=10_000, help="the long job's batch")
    p.add_argument("--watchlist-keys", type=int, default=1_000_000, help="keys (watchlist)")
    p.add_argument("--watchlist-alerts", type=int, default=1_000_000, help="alerts per member")
    p.add_argument("--watchlist-repeats", type=int, default=1, help="timed overlap checks")
    p.add_argument("--oprf-keys", type=int, default=2000, help="national ids (oprf)")
    p.add_argument("--oprf-repeats", type=int, default=5, help="timed runs per step (oprf)")
    p.add_argument(
        "--source-rows", type=_ints, default=[1_000_000, 10_000_000], help="rows (sources)"
    )
    p.add_argument(
        "--train-sizes",
        type=lambda s: s.split(","),
        default=["100000x10"],
        help="rows per party x features (train)",
    )
    p.add_argument("--train-repeats", type=int, default=1, help="timed fits per size (train)")
    p.add_argument("--netns-rtts", type=_ints, default=[0, 10, 50], help="round trips, ms")
    p.add_argument("--netns-repeats", type=int, default=30, help="aggregates per RTT (netns)")
    p.add_argument("--netns-rows", type=int, default=10_000, help="rows per node (netns)")
    p.add_argument(
        "--netns-each", type=int, default=1, help="1: also time every other computation once"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workdir", type=Path, default=Path("var/bench"), help="consortia go here")
    p.add_argument("--output", type=Path, default=Path("benchmarks/results/latest.json"))
    return p


def _check(args: argparse.Namespace) -> None:
    if min(args.parties, default=3) < 3:
        raise SystemExit("--parties: at least 3 nodes (with 2, secret sharing gives no privacy)")
    if args.repeats < 1 or args.parties_repeats < 1:
        raise SystemExit("--repeats and --parties-repeats must be at least 1")


def _run_scenario(name: str, args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Run one scenario; a failure is recorded and the next scenario still runs."""
    try:
        results["scenarios"][name] = SCENARIOS[name](args)
    except Exception as err:  # noqa: BLE001 - reported in the output and the JSON
        results["failures"][name] = "".join(traceback.format_exception_only(err)).strip()
        note(f"[red]{name} failed[/]: {results['failures'][name]}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _check(args)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])]),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(),
        "method": METHOD,
        "scenarios": {},
        "failures": {},
    }
    try:
        for name in args.scenarios:
            _run_scenario(name, args, results)
    finally:  # whatever was measured before ^C is still written
        results["load_average_at_end"] = load_average()
        results["duration_s"] = round(time.perf_counter() - started, 1)
        write_json(results, args.output)
        note(f"wrote {args.output} ({results['duration_s']} s in all)")
    print_report(results)
    failed_entries = [
        e for entries in results["scenarios"].values() for e in entries if "error" in e
    ]
    return 1 if results["failures"] or failed_entries else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Joint training benchmark: ``python -m benchmarks.train_bench [--sizes 100000x10,1000000x30]``.

A logistic regression (12 Newton steps, l2 = 1) of a 0/1 label on F numeric
features, three parties (three processes on loopback, plain TCP) each holding
``rows`` rows, run by the training program alone (``train:fit``: local
statistics in each party, the exact solve over the prime field); the time is
measured inside the parties, from the first input to the receiver's shares
(process start, connection set-up and the handing over of the rows excluded),
median of the runs. Against it: statsmodels fitted on the pooled rows (the
no-privacy floor, the oracle of the tests) and the largest relative difference
of the coefficients. With ``--gateway-rows N``, first a full fit through a
gateway and three nodes (N seeded loans each, 10 design columns, open
policies), timed at the client. Not measured: a straightforward MPyC script
that secret-shares the rows (one secure logistic function per row and step: at
the ~3 ms of a secure comparison per element measured in MPYC_NOTES.md, 3M rows
x 12 steps is days).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.consortium import client_for, running_consortium
from benchmarks.stats import summary
from mpc_gateway.computations.train import TrainOutcome
from mpc_gateway.computations.train_layout import TrainLayout, train_layout
from mpc_gateway.query.schema import DatasetSchema, NumericColumn
from tests.mpc.harness import open_blocks, run_calls
from tests.train_oracle import pooled_fit, relative_error

__all__ = ["main", "train_scenario"]

PARTIES = 3
NODES = ("bank-a", "bank-b", "broker-c")
BOUND = 10


def _schema(features: int, rows: int) -> DatasetSchema:
    numeric = NumericColumn(scale=4, min=Decimal(-BOUND), max=Decimal(BOUND))
    columns: dict[str, Any] = {f"x{j}": numeric for j in range(features)}
    columns["y"] = NumericColumn(scale=0, min=Decimal(0), max=Decimal(1))
    return DatasetSchema(name="bench", max_rows_per_node=rows, columns=columns)


def _data(rows: int, features: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, 0.5, features + 1)
    parts = []
    for party in range(PARTIES):
        x = np.round(np.clip(rng.normal(party * 0.2, 2.0, (rows, features)), -BOUND, BOUND), 4)
        design = np.column_stack([np.ones(rows), x])
        label = (rng.random(rows) < 1 / (1 + np.exp(-(design @ truth)))).astype(np.float64)
        parts.append((design, label))
    return parts


def _layout(rows: int, features: int) -> TrainLayout:
    names = tuple(f"x{j}" for j in range(features))
    schema = _schema(features, rows)
    return train_layout(schema, PARTIES, "y", names, True, Decimal(1), 12, 1, 1)


def _one(rows: int, features: int, repeats: int, seed: int) -> dict[str, Any]:
    layout = _layout(rows, features)
    parts = _data(rows, features, seed)
    calls = [[("train:fit", layout.program_args(d, y))] * repeats for d, y in parts]
    outcomes = run_calls(calls, timeout=3600)
    seconds = [max(party[i].seconds for party in outcomes) for i in range(repeats)]
    opened = open_blocks([party[-1].result for party in outcomes])
    found = np.array([float(c) for c in layout.coefficients(opened["coefficients"])])
    design = np.vstack([d for d, _ in parts])
    label = np.concatenate([y for _, y in parts])
    started = time.perf_counter()
    expected = pooled_fit(design, label, "logistic", Decimal(1))
    pooled_s = time.perf_counter() - started
    mpc = summary([s * 1000 for s in seconds])
    return {
        "rows_per_party": rows,
        "features": features,
        "field_bits": layout.modulus.bit_length(),
        "mpc": mpc,
        "statsmodels_ms": pooled_s * 1000,
        "ratio": mpc["median_ms"] / (pooled_s * 1000),
        "max_relative_error": relative_error(found, expected),
    }


GATEWAY_FEATURES = ("exposure", "lgd", "days_past_due", "rating")  # 10 design columns


def gateway_fit(rows: int, workdir: Path, seed: int) -> dict[str, Any]:
    """A full logistic fit through the gateway: 3 nodes x ``rows`` seeded loans, open policies."""
    with running_consortium(workdir, NODES, rows, seed, query_timeout_s=600.0) as running:
        with client_for(running.files) as client:
            started = time.perf_counter()
            released = client.train(
                "loans", "defaulted", GATEWAY_FEATURES, l2="1", purpose="benchmark"
            )
            seconds = time.perf_counter() - started
    assert isinstance(released.outcome, TrainOutcome)
    return {
        "rows_per_node": rows,
        "design_columns": len(released.outcome.columns),
        "gateway_s": seconds,
        "mpc_s": released.mpc_ms / 1000,
        "local_s": released.local_ms / 1000,
        "converged": released.outcome.converged,
    }


def train_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    entries = []
    for size in args.train_sizes:
        rows, features = (int(v) for v in size.split("x"))
        entries.append(_one(rows, features, args.train_repeats, args.seed))
        print(json.dumps(entries[-1]), file=sys.stderr, flush=True)
    return entries


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes", dest="train_sizes", type=lambda s: s.split(","), default=["100000x10"]
    )
    p.add_argument("--repeats", dest="train_repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--gateway-rows", type=int, default=0, help="also fit through a gateway")
    p.add_argument("--workdir", type=Path, default=Path("var/bench/train"))
    args = p.parse_args(argv)
    if args.gateway_rows:
        print(json.dumps(gateway_fit(args.gateway_rows, args.workdir, args.seed)), flush=True)
    entries = train_scenario(args)
    for e in entries:
        print(
            f"3 x {e['rows_per_party']:,} rows x {e['features']} features: MPC "
            f"{e['mpc']['median_ms'] / 1000:.1f} s, statsmodels pooled "
            f"{e['statsmodels_ms'] / 1000:.1f} s, ratio {e['ratio']:.1f}, field "
            f"{e['field_bits']} bits, max relative error {e['max_relative_error']:.1e}"
        )
    if args.output:
        args.output.write_text(json.dumps(entries, indent=2))


if __name__ == "__main__":
    main()

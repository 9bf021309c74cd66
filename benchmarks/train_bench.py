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
policies; ``--gateway-features all``: every feature of the loans schema, 23
design columns), timed at the client. With ``--naive-sizes``, first the naive
baseline (:mod:`benchmarks.naive_train`: a straightforward MPyC script that
secret-shares the rows, the same 12 Newton steps over them) at those small
sizes, its fixed point sized for the largest of ``--sizes``, each fit against
statsmodels; then extrapolated to every size of ``--sizes`` (linear in rows,
the solves apart; :func:`benchmarks.naive_train.extrapolate`), as a ratio to
the MPC fit.
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
from benchmarks.naive_train import NaiveFit, extrapolate, naive_fit
from benchmarks.stats import summary
from mpc_gateway.computations.train import TrainOutcome
from mpc_gateway.computations.train_layout import TrainLayout, train_layout
from mpc_gateway.query.schema import DatasetSchema, NumericColumn
from tests.mpc.harness import open_blocks, run_calls
from tests.train_oracle import pooled_fit, relative_error

__all__ = ["main", "naive_scenario", "party_rows", "train_scenario"]

PARTIES = 3
NODES = ("bank-a", "bank-b", "broker-c")
BOUND = 10
STEPS, L2 = 12, 1


def _schema(features: int, rows: int) -> DatasetSchema:
    numeric = NumericColumn(scale=4, min=Decimal(-BOUND), max=Decimal(BOUND))
    columns: dict[str, Any] = {f"x{j}": numeric for j in range(features)}
    columns["y"] = NumericColumn(scale=0, min=Decimal(0), max=Decimal(1))
    return DatasetSchema(name="bench", max_rows_per_node=rows, columns=columns)


def party_rows(rows: int, features: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every party's seeded (design with intercept, 0/1 label): ``rows`` rows x ``features``."""
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
    return train_layout(schema, PARTIES, "y", names, True, Decimal(L2), STEPS, 1, 1)


def _pooled(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, float]:
    """statsmodels' coefficients on the pooled rows, and the seconds that fit took."""
    design = np.vstack([d for d, _ in parts])
    label = np.concatenate([y for _, y in parts])
    started = time.perf_counter()
    expected = pooled_fit(design, label, "logistic", Decimal(L2))
    return expected, time.perf_counter() - started


def _one(rows: int, features: int, repeats: int, seed: int) -> dict[str, Any]:
    layout = _layout(rows, features)
    parts = party_rows(rows, features, seed)
    calls = [[("train:fit", layout.program_args(d, y))] * repeats for d, y in parts]
    outcomes = run_calls(calls, timeout=3600)
    seconds = [max(party[i].seconds for party in outcomes) for i in range(repeats)]
    opened = open_blocks([party[-1].result for party in outcomes])
    found = np.array([float(c) for c in layout.coefficients(opened["coefficients"])])
    expected, pooled_s = _pooled(parts)
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


GATEWAY_FEATURES = {
    "rated": ("exposure", "lgd", "days_past_due", "rating"),  # 10 design columns
    "all": ("exposure", "lgd", "days_past_due", "rating", "sector", "region"),  # 23
}


def gateway_fit(rows: int, workdir: Path, seed: int, features: str = "rated") -> dict[str, Any]:
    """A full logistic fit through the gateway: 3 nodes x ``rows`` seeded loans, open policies."""
    with running_consortium(workdir, NODES, rows, seed, query_timeout_s=600.0) as running:
        with client_for(running.files, timeout_s=600.0) as client:
            started = time.perf_counter()
            released = client.train(
                "loans", "defaulted", GATEWAY_FEATURES[features], l2="1", purpose="benchmark"
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


def _size(text: str) -> tuple[int, int]:
    rows, features = (int(v) for v in text.split("x"))
    return rows, features


def train_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    entries = []
    for size in args.train_sizes:
        entries.append(_one(*_size(size), args.train_repeats, args.seed))
        print(json.dumps(entries[-1]), file=sys.stderr, flush=True)
    return entries


def naive_scenario(args: argparse.Namespace) -> tuple[list[NaiveFit], list[dict[str, Any]]]:
    """The naive script at each ``--naive-sizes``, its numbers sized for the largest --sizes."""
    bits_rows = PARTIES * max(_size(size)[0] for size in args.train_sizes)
    fits, entries = [], []
    for size in args.naive_sizes:
        rows, features = _size(size)
        parts = party_rows(rows, features, args.seed)
        log = args.workdir / "naive_train.log"
        fit = naive_fit(parts, STEPS, L2, args.naive_timeout, log, bits_rows, BOUND)
        fits.append(fit)
        expected = _pooled(parts)[0]
        entries.append(
            {
                "rows_per_party": rows,
                "features": features,
                "bit_length": fit.bit_length,
                "mpc_s": fit.timings["mpc_s"],
                "party0_cpu_s": fit.timings["mpc_cpu_s"],
                "solve_s": fit.solve_s,
                "per_row_s": fit.rows_s / fit.rows,
                "wall_s": fit.wall_s,
                "max_relative_error": relative_error(fit.coefficients, expected),
                "max_absolute_error": float(np.max(np.abs(fit.coefficients - expected))),
            }
        )
        print(json.dumps(entries[-1]), file=sys.stderr, flush=True)
    return fits, entries


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds:,.0f} s"
    return f"{seconds / 3600:,.1f} h" if seconds < 86400 else f"{seconds / 86400:,.1f} days"


def _print(entries: list[dict[str, Any]], naive: list[dict[str, Any]]) -> None:
    for n in naive:
        print(
            f"naive MPyC, 3 x {n['rows_per_party']:,} rows x {n['features']} features "
            f"({n['bit_length']}-bit fixed point): {n['mpc_s']:.1f} s ({n['solve_s']:.1f} s "
            f"solving; party 0's CPU {n['party0_cpu_s']:.1f} s), {n['per_row_s']:.3f} s per "
            f"joint row, max relative error {n['max_relative_error']:.1e} (absolute "
            f"{n['max_absolute_error']:.1e})"
        )
    for e in entries:
        line = (
            f"3 x {e['rows_per_party']:,} rows x {e['features']} features: MPC "
            f"{e['mpc']['median_ms'] / 1000:.1f} s, statsmodels pooled "
            f"{e['statsmodels_ms'] / 1000:.1f} s, ratio {e['ratio']:.1f}, field "
            f"{e['field_bits']} bits, max relative error {e['max_relative_error']:.1e}"
        )
        if "naive" in e:
            line += (
                f"; naive MPyC {_duration(e['naive']['seconds'])} (extrapolated), "
                f"{e['naive_ratio']:,.0f} x the MPC"
            )
        print(line)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes", dest="train_sizes", type=lambda s: s.split(","), default=["100000x10"]
    )
    p.add_argument("--repeats", dest="train_repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--gateway-rows", type=int, default=0, help="also fit through a gateway")
    p.add_argument(
        "--gateway-features",
        choices=sorted(GATEWAY_FEATURES),
        default="rated",
        help="the gateway fit's features: rated (10 design columns) or all (23)",
    )
    p.add_argument(
        "--naive-sizes",
        type=lambda s: s.split(","),
        default=[],
        help="also run the naive MPyC script at these sizes (e.g. 100x10,200x10,50x30)",
    )
    p.add_argument("--naive-timeout", type=float, default=1800.0, help="seconds per naive fit")
    p.add_argument("--workdir", type=Path, default=Path("var/bench/train"))
    args = p.parse_args(argv)
    if args.gateway_rows:
        fit = gateway_fit(args.gateway_rows, args.workdir, args.seed, args.gateway_features)
        print(json.dumps(fit), flush=True)
    fits, naive = naive_scenario(args) if args.naive_sizes else ([], [])
    entries = train_scenario(args)
    for e in entries if fits else []:
        e["naive"] = {
            **extrapolate(fits, PARTIES * e["rows_per_party"], e["features"] + 1),
            "measured": naive,
        }
        e["naive_ratio"] = e["naive"]["seconds"] / (e["mpc"]["median_ms"] / 1000)
    _print(entries, naive)
    if args.output:
        args.output.write_text(json.dumps(entries, indent=2))


if __name__ == "__main__":
    main()

"""Risk-scoring benchmark: ``python -m benchmarks.risk_bench [--sizes 1000,10000]``.

Scores n entities on all ten registered cross-institution features (six sums,
four maxima: three secure comparisons and one 0/1 OR) with a logistic model,
decision ``sigmoid(score) >= p`` per entity, across three parties (three
processes on loopback, plain TCP), and reports the MPC time measured inside the
parties (from the first input to the receiver's shares or the opened output;
process start and connection set-up excluded), median of the runs:

* ``entity_scores`` with public weights, and with secret (additively shared)
  weights: secure integer arrays, exact, bit lengths from the declared bounds;
* a plain MPyC program written the straightforward way for the same
  computation: secure fixed-point numbers (``SecFxp(64)``, 32 fraction bits) in
  lists, features scaled locally before input, a Python loop over entities with
  ``mpc.max`` and ``>=`` per entity, decisions opened with ``mpc.output``.

The naive program costs ~140 ms per entity on 2 cores (1,000 entities: about
2.5 minutes for one run), so by default it runs once at ``--naive-max`` = 300
entities (``entity_scores`` is measured at that size too, for a direct ratio)
and is extrapolated linearly to the larger sizes (marked ``~``). Sizes up to
``--large`` get ``--repeats`` runs, larger ones ``--large-repeats``; the
defaults finish in under 3 minutes on 2 cores. ``--naive-max 1000
--large-repeats 3`` gives the full comparison (about 8 minutes).

All runs of a size share the same inputs; the table counts decisions that differ
from the plaintext reference (fixed point may flip a score within ~2**-32 of
the threshold).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stats import ratio, summary
from mpc_gateway.computations.features import FEATURES
from mpc_gateway.computations.scoring import ModelFeature, ScoringModel, score_layout
from mpc_gateway.devnet import reference
from mpc_gateway.devnet.localnet import schema_path
from mpc_gateway.pki.sealing import split_secret_weights
from mpc_gateway.query.schema import load_schema
from tests.mpc.harness import open_blocks, run_calls

__all__ = ["main", "risk_scoring_scenario", "naive_scores"]

PARTIES = 3
FRAC_BITS = 16
THRESHOLD = "0.2"
# (public scale, real weight) per registered feature: exposures in EUR millions
MODEL = {
    "total_exposure": (100_000_000, 0.01),
    "lenders": (1, 0.3),
    "loans": (1, 0.05),
    "max_days_past_due": (30, 0.2),
    "any_default": (1, 1.5),
    "defaulted_exposure": (100_000_000, 0.02),
    "largest_loan": (100_000_000, 0.01),
    "worst_rating": (1, 0.25),
    "sub_investment_grade_exposure": (100_000_000, 0.015),
    "lgd_weighted_exposure": (1_000_000_000_000, 0.03),
}
INTERCEPT = -4.0
# the model's actual weights: fixed point with FRAC_BITS fraction bits (every variant uses these)
FIXED = [round(w * (1 << FRAC_BITS)) for _, w in MODEL.values()]
FIXED_INTERCEPT = round(INTERCEPT * (1 << FRAC_BITS))


def _model(secret: bool) -> ScoringModel:
    return ScoringModel(
        owner="bench",
        name="bench-pd",
        kind="logistic",
        features=tuple(ModelFeature(name=n, scale=s) for n, (s, _) in MODEL.items()),
        frac_bits=FRAC_BITS,
        weight_bits=24,
        weights_secret=secret,
        weights=None if secret else tuple(FIXED),
        intercept=None if secret else FIXED_INTERCEPT,
        threshold=THRESHOLD,  # type: ignore[arg-type]
        output="decisions",
    )


def local_features(n: int, seed: int) -> list[np.ndarray]:
    """Each party's [n, 10] local features: entities known to 0..3 parties, plausible values."""
    rng = np.random.default_rng(seed)
    known = rng.random((PARTIES, n)) < 0.55
    out = []
    for party in range(PARTIES):
        exposure = rng.integers(0, 2_000_000_000, n)
        columns = {
            "total_exposure": exposure,
            "lenders": np.ones(n, dtype=np.int64),
            "loans": rng.integers(1, 6, n),
            "max_days_past_due": rng.choice([0, 0, 0, 30, 90, 200], n),
            "any_default": (rng.random(n) < 0.1).astype(np.int64),
            "defaulted_exposure": exposure // rng.integers(1, 10, n) * (rng.random(n) < 0.1),
            "largest_loan": exposure // rng.integers(1, 4, n),
            "worst_rating": rng.integers(0, 7, n),
            "sub_investment_grade_exposure": exposure // rng.integers(1, 5, n),
            "lgd_weighted_exposure": exposure * rng.integers(0, 10_001, n),
        }
        matrix = np.array([columns[name] for name in MODEL], dtype=object).T
        out.append(matrix * known[party][:, None])
    return out


def _reference_decisions(parts: list[np.ndarray]) -> list[int]:
    """Plaintext: combine, exact rational score, sigmoid against the threshold."""
    scoring = _model(secret=False)
    combined = np.zeros_like(parts[0])
    for j, name in enumerate(MODEL):
        column = [p[:, j] for p in parts]
        combined[:, j] = (
            np.maximum.reduce(column) if FEATURES[name].combine == "max" else sum(column)
        )
    scores = reference.real_scores(scoring, FIXED, FIXED_INTERCEPT, combined)
    return reference.decisions(scoring, scores)


async def naive_scores(
    features: list[list[float]],
    combine: list[str],
    weights: list[float],
    intercept: float,
    cut: float,
) -> list[int]:
    """The straightforward MPyC program: fixed-point lists and a loop over entities."""
    from mpyc.runtime import mpc  # noqa: TID251 - a party process, argv already set

    secfxp = mpc.SecFxp(64)
    k = len(combine)
    mine = [secfxp(v, integral=False) for row in features for v in row]
    parts = mpc.input(mine, senders=list(range(len(mpc.parties))))
    decisions = []
    for e in range(len(features)):
        score = secfxp(intercept, integral=False)
        for j in range(k):
            values = [party[e * k + j] for party in parts]
            x = mpc.max(*values) if combine[j] == "max" else mpc.sum(values)
            score = score + x * weights[j]
        decisions.append(score >= cut)
    return [int(v) for v in await mpc.output(decisions)]


def _naive_args(parts: list[np.ndarray]) -> list[dict[str, Any]]:
    scales = [s for s, _ in MODEL.values()]
    p = float(THRESHOLD)
    shared = {
        "combine": [FEATURES[name].combine for name in MODEL],
        "weights": [w / (1 << FRAC_BITS) for w in FIXED],
        "intercept": FIXED_INTERCEPT / (1 << FRAC_BITS),
        "cut": math.log(p / (1 - p)),
    }
    return [
        {"features": [[int(v) / s for v, s in zip(row, scales)] for row in part], **shared}
        for part in parts
    ]


def _ours_args(parts: list[np.ndarray], secret: bool) -> list[dict[str, Any]]:
    schema = load_schema(schema_path())
    plan = score_layout(_model(secret), schema, PARTIES)
    if not secret:
        return [plan.program_args(p) for p in parts]
    shares = split_secret_weights([*FIXED, FIXED_INTERCEPT], PARTIES, 24)
    return [plan.program_args(p, s) for p, s in zip(parts, shares)]


def _timed(program: str, args: list[dict[str, Any]], repeats: int) -> tuple[list[float], Any]:
    """Run ``program`` ``repeats`` times in one session; per run the slowest party's ms."""
    calls = [[(program, a)] * repeats for a in args]
    outcomes = run_calls(calls, timeout=1800)
    samples = [max(party[i].seconds for party in outcomes) * 1000 for i in range(repeats)]
    return samples, [party[0].result for party in outcomes]


def _ours(parts: list[np.ndarray], expected: list[int], repeats: int) -> dict[str, Any]:
    entry = {}
    for name, secret in (("public", False), ("secret", True)):
        samples, results = _timed(
            "mpc_gateway.mpc.programs.score:entity_scores", _ours_args(parts, secret), repeats
        )
        got = open_blocks(results)["decisions"]
        entry[name] = {**summary(samples), "wrong": sum(a != b for a, b in zip(got, expected))}
    return entry


def _naive(parts: list[np.ndarray], expected: list[int], repeats: int) -> dict[str, Any]:
    samples, results = _timed("benchmarks.risk_bench:naive_scores", _naive_args(parts), repeats)
    wrong = sum(a != b for a, b in zip(results[0], expected))
    return {**summary(samples), "entities": len(expected), "wrong": wrong}


def risk_scoring_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Scenario 4 for :mod:`benchmarks.run`: one dict per entity count.

    The naive program runs once, at ``min(--naive-max, smallest size)`` entities,
    and that size is also measured for ``entity_scores`` (a direct ratio). For
    larger sizes the naive figure is its measured time per entity times n (it is
    a loop over entities: linear, a little pessimistic for it), marked
    ``extrapolated``.
    """
    naive_size = min(args.naive_max, min(args.sizes))
    entries, naive = [], None
    for n in sorted({naive_size, *args.sizes}):
        parts = local_features(n, args.seed)
        expected = _reference_decisions(parts)
        repeats = args.repeats if n <= args.large else args.large_repeats
        entry: dict[str, Any] = {"entities": n, "features": len(MODEL), "parties": PARTIES}
        entry.update(_ours(parts, expected, repeats))
        if n == naive_size:
            naive = _naive(parts, expected, args.naive_repeats)
            entry["naive"] = {**naive, "extrapolated": False}
        else:
            assert naive is not None
            scaled = naive["median_ms"] * n / naive["entities"]
            entry["naive"] = {"median_ms": round(scaled, 3), "extrapolated": True}
        entry["naive_vs_public"] = ratio(entry["naive"], entry["public"])
        entry["secret_vs_public"] = ratio(entry["secret"], entry["public"])
        entries.append(entry)
    return entries


def print_table(entries: list[dict[str, Any]]) -> None:
    header = ("entities", "runs", "public ms", "secret ms", "naive ms", "naive/public")
    header += ("secret/public", "wrong p/s/n")
    print(" | ".join(f"{h:>13}" for h in header))
    for e in entries:
        naive = e["naive"]
        wrong = "/".join(str(e[k].get("wrong", "-")) for k in ("public", "secret", "naive"))
        approx = "~" if naive["extrapolated"] else ""
        cells = (
            f"{e['entities']:,}",
            str(e["public"]["n"]),
            f"{e['public']['median_ms']:,.0f}",
            f"{e['secret']['median_ms']:,.0f}",
            f"{approx}{naive['median_ms']:,.0f}",
            f"{approx}{e['naive_vs_public']:.1f}x",
            f"{e['secret_vs_public']:.2f}x",
            wrong,
        )
        print(" | ".join(f"{c:>13}" for c in cells))
    print("~ naive extrapolated linearly from its measured size; '-' not run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="entity counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size up to --large")
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--large-repeats", type=int, default=1, help="runs per larger size")
    parser.add_argument("--naive-max", type=int, default=300, help="entities for the naive run")
    parser.add_argument("--naive-repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    entries = risk_scoring_scenario(args)
    print(f"3 parties, {len(MODEL)} features, logistic decisions; MPC ms (median of the runs)")
    print_table(entries)
    if args.json:
        args.json.write_text(json.dumps(entries, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

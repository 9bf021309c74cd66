"""Scenario 5: risk queries through the full path (client, gateway, nodes, MPC workers).

One consortium (three nodes, open policies, ``--risk-rows`` loans each). Per
query kind, the median wall time at the analyst's client over ``--risk-repeats``
runs, next to the MPC time the nodes report (slowest node, summed over a
quantile search's rounds). Scoring uses the 10-feature logistic model of
:mod:`benchmarks.risk_bench` (public weights, then the same weights sealed per
node), decisions only, over ``--risk-sizes`` counterparties; every reply's
decisions are compared with the plaintext reference over the pooled rows.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from benchmarks.consortium import client_for, running_consortium
from benchmarks.report import note
from benchmarks.risk_bench import FIXED, FIXED_INTERCEPT, MODEL, THRESHOLD
from benchmarks.stats import summary
from mpc_gateway.client import GatewayClient, Released
from mpc_gateway.computations.scoring import ModelFeature, ScoringModel, seal_for_consortium
from mpc_gateway.devnet import reference
from mpc_gateway.devnet.localnet import DEFAULT_NODES, ConsortiumFiles, schema_path
from mpc_gateway.devnet.risk_demo import institution_frames
from mpc_gateway.query.schema import load_schema

__all__ = ["risk_gateway_scenario"]

PURPOSE = "benchmark"


def _model(secret: bool) -> ScoringModel:
    return ScoringModel(
        owner="analyst/alice",
        name=f"bench-pd-{'secret' if secret else 'public'}",
        kind="logistic",
        features=tuple(ModelFeature(name=n, scale=s) for n, (s, _) in MODEL.items()),
        frac_bits=16,
        weight_bits=24,
        weights_secret=secret,
        weights=None if secret else tuple(FIXED),
        intercept=None if secret else FIXED_INTERCEPT,
        threshold=THRESHOLD,
        output="decisions",  # type: ignore[arg-type]
    )


def _register(client: GatewayClient, files: ConsortiumFiles, secret: bool) -> str:
    model = _model(secret)
    if not secret:
        return client.register_model(model)
    # sealed to the node certificates the consortium CA issued, as a model owner does
    sealed = seal_for_consortium(model, FIXED, FIXED_INTERCEPT, files.pki_dir)
    return client.register_model(model, sealed)


def _expected(files: ConsortiumFiles, keys: list[str]) -> list[bool]:
    schema = load_schema(schema_path())
    joint = reference.joint_features(
        institution_frames(files, schema, keys), schema, keys, list(MODEL)
    )
    scores = reference.real_scores(_model(False), FIXED, FIXED_INTERCEPT, joint)
    return [bool(d) for d in reference.decisions(_model(False), scores)]


def _measure(
    query: str,
    run: Callable[[], Released],
    repeats: int,
    check: Callable[[Released], bool] = lambda r: True,
) -> dict[str, Any]:
    run()  # untimed: the first run of a kind pays for connections and caches
    walls, mpc, wrong, result = [], [], 0, None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        walls.append((time.perf_counter() - started) * 1000)
        mpc.append(result.mpc_ms)
        wrong += not check(result)
    assert result is not None
    note(f"risk: {query}: median {summary(walls)['median_ms']:,.0f} ms")
    return {
        "query": query,
        "full_path": summary(walls),
        "mpc_reported": summary(mpc),
        "rounds": result.rounds,
        "wrong_results": wrong,
    }


def _scoring(
    client: GatewayClient, files: ConsortiumFiles, model_id: str, n: int, secret: bool, repeats: int
) -> dict[str, Any]:
    keys = [f"5493{c:012d}MPCG{c % 97:02d}" for c in range(n)]
    expected = _expected(files, keys)
    weights = "secret" if secret else "public"
    entry = _measure(
        f"score {n:,} entities, 10 features, {weights} weights",
        lambda: client.score("loans", model_id, keys, purpose=PURPOSE),
        repeats,
        lambda r: r.outcome.decisions == expected,
    )
    return {**entry, "entities": n, "weights": weights}


def risk_gateway_scenario(args: argparse.Namespace) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    root = args.workdir / "risk"
    note(f"risk: {len(DEFAULT_NODES)} nodes, {args.risk_rows:,} rows each")
    with running_consortium(root, DEFAULT_NODES, args.risk_rows, args.seed) as running:
        files = running.files
        with client_for(files) as client:
            for secret in (False, True):
                model_id = _register(client, files, secret)
                entries += [
                    _scoring(client, files, model_id, n, secret, args.risk_repeats)
                    for n in args.risk_sizes
                ]
            entries.append(
                _measure(
                    "concentration: HHI and limit flags over 10 sectors",
                    lambda: client.concentration(
                        "loans", group_by="sector", limit="1000000000", purpose=PURPOSE
                    ),
                    args.risk_repeats,
                )
            )
            entries.append(
                _measure(
                    "quantiles: median and p99 of exposure (grid 64)",
                    lambda: client.quantiles("loans", "exposure", ["0.5", "0.99"], purpose=PURPOSE),
                    args.risk_repeats,
                )
            )
            edges = [str(10**e) for e in range(9)]
            entries.append(
                _measure(
                    "histogram of exposure, 8 bins",
                    lambda: client.histogram(
                        "loans", "exposure", ["0", *edges[1:]], purpose=PURPOSE
                    ),
                    args.risk_repeats,
                )
            )
    return entries

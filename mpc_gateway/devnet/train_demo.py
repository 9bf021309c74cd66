"""The demo's training run: a PD model trained across the institutions, checked in the clear.

analyst/alice trains a logistic probability-of-default model of ``defaulted`` on
exposure, LGD, days past due and rating across every institution, through the
gateway like any query, each node holding out a fifth of its rows; the joint
AUC on them comes from per-label histograms. For the demo only, the released
coefficients and AUC are compared with the same penalised fit over the pooled
training rows, by Newton's method in numpy on the standardised design
(:func:`pooled_logistic`), and its AUC on the pooled held-out rows; the tests
compare with statsmodels. Then alice scores a batch of 200 loan applications with
the released model (:meth:`TrainOutcome.predict`, as ``mpcgw model train --score``
does), beside the pooled fit's probabilities. The model cannot score through ``mpcgw
risk score``: scoring models take entity features (docs/risk.md), not loan rows.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import numpy as np

from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.train import TrainOutcome
from mpc_gateway.computations.train_layout import VALIDATION_BINS, local_rows, train_layout
from mpc_gateway.computations.train_validation import (
    Validation,
    local_histogram,
    split_rows,
    validation,
)
from mpc_gateway.devnet.localnet import ConsortiumFiles, schema_path
from mpc_gateway.devnet.risk_demo import RiskCheck
from mpc_gateway.devnet.synth import loan_book, write_loan_book
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.query.schema import load_schema
from mpc_gateway.tables import read_rows, records

__all__ = ["DEMO_FEATURES", "pooled_logistic", "training_check"]

DEMO_FEATURES = ("exposure", "lgd", "days_past_due", "rating")
L2 = Decimal(1)
HOLDOUT = Decimal("0.2")  # each node holds out a fifth of its rows for the joint AUC
SEED = 7
STEPS = 20  # Newton steps: rare defaults in a small demo book converge slowly
APPLICANTS = 200  # loan applications alice scores with the released model
WATCHED = Decimal("0.05")  # applicants above this probability of default are counted


def pooled_logistic(
    design: np.ndarray, label: np.ndarray, l2: float, steps: int = 50
) -> np.ndarray:
    """The penalised logistic fit (docs/training.md) of the pooled rows, intercept first."""
    mean, deviation = design[:, 1:].mean(axis=0), design[:, 1:].std(axis=0)
    z = np.column_stack([np.ones(len(label)), (design[:, 1:] - mean) / deviation])
    penalty = np.diag([0.0] + [l2] * len(mean))
    beta = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 0.5 * (1 + np.tanh(0.5 * (z @ beta)))
        gradient = z.T @ (label - p) - penalty @ beta
        hessian = z.T @ (z * (p * (1 - p))[:, None]) + penalty
        beta = beta + np.linalg.solve(hessian, gradient)
    slopes = beta[1:] / deviation
    return np.concatenate(([beta[0] - float(slopes @ mean)], slopes))


def _applicants(files: ConsortiumFiles) -> tuple[Path, np.ndarray]:
    """A file of loan applications (any institution's shape), and their design rows."""
    path = write_loan_book(files.root / "applicants.parquet", loan_book("applicants", APPLICANTS))
    schema = load_schema(schema_path())
    layout = train_layout(schema, 3, "defaulted", DEMO_FEATURES, True, L2, 1, 1, 1)
    design, _ = local_rows(LocalDataset(schema, path).cursor(), layout, ("TRUE", []))
    return path, design


def _batch(probabilities: list[float]) -> dict[str, str | int]:
    """A scored batch in brief: the mean probability (6 digits) and how many are above WATCHED."""
    return {
        "mean_pd": f"{sum(probabilities) / len(probabilities):.6g}",
        "above": sum(p >= float(WATCHED) for p in probabilities),
    }


def _pooled(files: ConsortiumFiles, round_to: int) -> tuple[np.ndarray, Validation]:
    """The pooled fit on every node's training rows, and its validation on the held-out ones.

    From the held-out histogram rounded as the released one is (the policies'
    ``round_counts_to``).
    """
    schema = load_schema(schema_path())
    layout = train_layout(schema, 3, "defaulted", DEMO_FEATURES, True, L2, STEPS, 1, 1)
    train, held = [], []
    for name in files.institutions:
        design, label = local_rows(
            LocalDataset(schema, files.data_file(name)).cursor(), layout, ("TRUE", [])
        )
        mask = split_rows(len(label), HOLDOUT, SEED)
        train.append((design[~mask], label[~mask]))
        held.append((design[mask], label[mask]))
    beta = pooled_logistic(
        np.vstack([d for d, _ in train]), np.concatenate([y for _, y in train]), float(L2)
    )
    design, label = np.vstack([d for d, _ in held]), np.concatenate([y for _, y in held])
    counts = local_histogram(design, label, beta, VALIDATION_BINS)
    rounded = [(int(c) + round_to // 2) // round_to * round_to for c in counts]
    return beta, validation(rounded)


def _summary(v: Validation | None) -> tuple[str | None, list[tuple[int, int]]]:
    """The AUC to four places, and the calibration table's rows and positives per band."""
    if v is None:
        return None, []
    return (None if v.auc is None else f"{v.auc:.4f}"), [
        (b.rows, b.positives) for b in v.calibration()
    ]


def training_check(client: GatewayClient, files: ConsortiumFiles) -> RiskCheck:
    """Train the PD model through the gateway; the pooled fit beside it (6 significant digits)."""
    started = time.perf_counter()
    released = client.train(
        "loans",
        "defaulted",
        DEMO_FEATURES,
        kind="logistic",
        l2=str(L2),
        iterations=STEPS,
        holdout=str(HOLDOUT),
        seed=SEED,
    )
    seconds = time.perf_counter() - started
    outcome = released.outcome
    assert isinstance(outcome, TrainOutcome)
    secure = [f"{v:.6g}" for v in outcome.values()]
    beta, pooled = _pooled(files, released.controls.round_counts_to)
    plain = [f"{v:.6g}" for v in beta]
    (secure_auc, secure_bands), (pooled_auc, pooled_bands) = map(
        _summary, (outcome.validation, pooled)
    )
    path, design = _applicants(files)
    scored = _batch(outcome.predict(records(read_rows(path))))
    pooled_scored = _batch([float(p) for p in 1 / (1 + np.exp(-(design @ beta)))])
    state = "converged" if outcome.converged else "NOT converged"
    return RiskCheck(
        f"PD model trained across the institutions (logistic, l2 {L2}, {outcome.steps} "
        f"Newton steps, {state}; coefficients released to analyst/alice, who then scores "
        f"{APPLICANTS} loan applications with them)",
        {"computation": "train", "label": "defaulted", "features": list(DEMO_FEATURES)},
        {
            "coefficients": dict(zip(outcome.columns, secure)),
            "held_out_auc": secure_auc,
            "calibration": secure_bands,
            "applicants": scored,
        },
        {
            "coefficients": dict(zip(outcome.columns, plain)),
            "held_out_auc": pooled_auc,
            "calibration": pooled_bands,
            "applicants": pooled_scored,
        },
        seconds,
        f"held-out AUC {secure_auc} (counts rounded to {released.controls.round_counts_to}); "
        + ", ".join(f"{n} {v}" for n, v in zip(outcome.columns, secure))
        + _said(scored),
        f"held-out AUC {pooled_auc}; "
        + ", ".join(f"{n} {v}" for n, v in zip(outcome.columns, plain))
        + _said(pooled_scored),
    )


def _said(batch: dict[str, str | int]) -> str:
    return (
        f"; {APPLICANTS} applications scored: mean PD {batch['mean_pd']}, "
        f"{batch['above']} above {WATCHED}"
    )

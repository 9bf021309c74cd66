"""Joint training run by three real parties, against statsmodels on the pooled rows.

Each party reads its own seeded loan book through the node's SQL
(:func:`local_rows`) and runs ``train:fit``; the test plays the receiver,
recovers the exact coefficients, and compares them with the pooled fit: on
ordinary books, on rare events (default rates of 0.02% to 15%), on books whose
exposures are 10,000,000 plus a multiple of 0.1 (a column nearly collinear with
the intercept), and with one party holding no rows (a helper).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from mpc_gateway.computations.train_layout import (
    VALIDATION_BINS,
    TrainLayout,
    local_rows,
    train_layout,
)
from mpc_gateway.computations.train_validation import local_histogram, split_rows
from mpc_gateway.devnet.localnet import schema_path
from mpc_gateway.devnet.synth import loan_book, write_loan_book
from mpc_gateway.node.data import LocalDataset
from mpc_gateway.query.schema import load_schema
from tests.mpc.harness import open_blocks, run_parties
from tests.train_oracle import pooled_fit, relative_error

pytestmark = pytest.mark.mpc

NAMES = ("bank-a", "bank-b", "broker-c")
SCHEMA = load_schema(schema_path("loans"))


def _rows(
    tmp: Path, layout: TrainLayout, rows: tuple[int, ...], ill: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for name, count in zip(NAMES, rows):
        source = None
        if count:
            book = loan_book(name, count, seed=11, ill_conditioned=ill)
            source = write_loan_book(tmp / f"{name}.parquet", book)
        dataset = LocalDataset(SCHEMA, source)
        out.append(local_rows(dataset.cursor(), layout, ("TRUE", [])))
    return out


def _train(layout: TrainLayout, parts: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, list[int]]:
    args = [layout.program_args(design, label) for design, label in parts]
    return open_blocks(run_parties("train:fit", args, timeout=240))


def _check(layout: TrainLayout, parts: list[tuple[np.ndarray, np.ndarray]], l2: str) -> float:
    opened = _train(layout, parts)
    assert opened["enough"] == [1] and opened["singular"] == [0]
    found = np.array([float(c) for c in layout.coefficients(opened["coefficients"])])
    design = np.vstack([d for d, _ in parts])
    label = np.concatenate([y for _, y in parts])
    family = "logistic" if layout.logistic else "linear"
    return relative_error(found, pooled_fit(design, label, family, Decimal(l2)))


FEATURES = ("exposure", "lgd", "days_past_due", "rating", "sector")


def test_logistic_regression_matches_statsmodels_on_rare_events(tmp_path: Path) -> None:
    layout = train_layout(SCHEMA, 3, "defaulted", FEATURES, True, Decimal(1), 10, 100, 2)
    parts = _rows(tmp_path, layout, (4000, 3000, 2000))
    assert 0 < np.concatenate([y for _, y in parts]).mean() < 0.05  # rare events
    assert _check(layout, parts, "1") < 1e-6


def test_ridge_matches_statsmodels_with_a_data_less_party(tmp_path: Path) -> None:
    features = ("exposure", "days_past_due", "defaulted", "sector")
    layout = train_layout(SCHEMA, 3, "lgd", features, False, Decimal("0.5"), 1, 100, 2)
    parts = _rows(tmp_path, layout, (3000, 2500, 0))
    assert _check(layout, parts, "0.5") < 1e-6


def test_ill_conditioned_books_are_fitted_exactly_as_statsmodels_does(tmp_path: Path) -> None:
    features = ("exposure", "lgd", "rating")
    layout = train_layout(SCHEMA, 3, "defaulted", features, True, Decimal("0.1"), 25, 100, 2)
    parts = _rows(tmp_path, layout, (3000, 3000, 3000), ill=True)
    assert _check(layout, parts, "0.1") < 1e-6


def test_too_few_institutions_release_nothing_but_the_refusal(tmp_path: Path) -> None:
    layout = train_layout(SCHEMA, 3, "lgd", ("exposure",), False, Decimal(1), 1, 100, 2)
    opened = _train(layout, _rows(tmp_path, layout, (500, 0, 0)))
    assert opened["enough"] == [0]
    assert opened["coefficients"] == [0, 0]


def test_the_held_out_histogram_is_the_pooled_one_of_the_released_model(tmp_path: Path) -> None:
    features = ("exposure", "lgd", "days_past_due", "rating")
    layout = train_layout(SCHEMA, 3, "defaulted", features, True, Decimal(1), 8, 100, 2)
    parts = _rows(tmp_path, layout, (3000, 3000, 3000))
    held = [split_rows(len(y), Decimal("0.3"), 5) for _, y in parts]
    args = [layout.program_args(d[~h], y[~h], (d[h], y[h])) for (d, y), h in zip(parts, held)]
    opened = open_blocks(run_parties("train:fit", args, timeout=240))
    beta = np.array([float(c) for c in layout.coefficients(opened["coefficients"])])
    pooled = [local_histogram(d[h], y[h], beta, VALIDATION_BINS) for (d, y), h in zip(parts, held)]
    assert opened["histogram"] == [int(v) for v in sum(pooled)]
    assert sum(opened["histogram"]) == sum(int(h.sum()) for h in held)

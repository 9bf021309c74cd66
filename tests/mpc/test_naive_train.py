"""The naive training baseline, run by three real parties, against statsmodels on the pooled rows.

benchmarks/naive_train_mpyc.py secret-shares every row and runs Newton's method
on them with an approximate logistic function (largest error 5.5e-4) in
secure fixed point, so it is close to the pooled fit, not exact: ~5e-4 off
here, the tolerance 5e-3. A wrong step, sign or penalty moves the coefficients
by far more. Three Newton steps: exact Newton on these rows is within 3e-9 of
statsmodels after three.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from benchmarks.naive_train import extrapolate, naive_fit
from benchmarks.train_bench import party_rows
from tests.train_oracle import pooled_fit, relative_error

pytestmark = pytest.mark.mpc

L2 = 20.0  # strong: without the penalty a coefficient moves by more than 10%


def test_naive_baseline_fits_close_to_statsmodels_on_the_pooled_rows(tmp_path: Path) -> None:
    parts = party_rows(50, 3, seed=7)
    fit = naive_fit(parts, steps=3, l2=L2, timeout_s=120, log=tmp_path / "naive.log")
    design, label = np.vstack([d for d, _ in parts]), np.concatenate([y for _, y in parts])
    expected = pooled_fit(design, label, "logistic", Decimal(L2))
    unpenalised = pooled_fit(design, label, "logistic", Decimal(0))
    assert relative_error(unpenalised, expected) > 0.1  # the penalty matters here
    error = relative_error(fit.coefficients, expected)
    assert error < 5e-3, f"{error:.1e} from statsmodels: {fit.coefficients} vs {expected}"
    assert fit.rows == 150 and fit.columns == 4 and 0 < fit.solve_s < fit.timings["mpc_s"]
    same = extrapolate([fit], fit.rows, fit.columns)["seconds"]
    assert same == pytest.approx(fit.timings["mpc_s"])

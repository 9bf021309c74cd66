"""Goodness of fit of integer draws to a declared distribution (scipy as the oracle)."""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["discrete_gaussian_pmf", "goodness_of_fit"]


def discrete_gaussian_pmf(scale: float, support: np.ndarray) -> np.ndarray:
    """P(X = x) ∝ exp(-x² / 2σ²) over the integers (normalised over a ±40σ window)."""
    window = np.arange(-int(40 * scale) - 1, int(40 * scale) + 2)
    weights = np.exp(-(window.astype(float) ** 2) / (2 * scale * scale))
    total = weights.sum()
    return np.exp(-(support.astype(float) ** 2) / (2 * scale * scale)) / total


def goodness_of_fit(samples: np.ndarray, pmf: dict[int, float]) -> float:
    """Chi-square p-value of integer ``samples`` against ``pmf``, tails pooled to >= 5 expected."""
    n = len(samples)
    values = sorted(pmf)
    counts = {v: 0 for v in values}
    for s in samples:
        counts[int(s)] = counts.get(int(s), 0) + 1
    observed, expected, o, e = [], [], 0.0, 0.0
    for v in values:  # merge neighbouring values until each pooled bin expects >= 5
        o, e = o + counts[v], e + n * pmf[v]
        if e >= 5:
            observed.append(o)
            expected.append(e)
            o = e = 0.0
    observed[-1] += o + (n - sum(counts[v] for v in values))  # anything outside the window
    expected[-1] += e + n * (1 - sum(pmf.values()))
    return float(stats.chisquare(observed, expected).pvalue)

"""Plaintext references for every risk computation, over pooled data (tests, demos only).

Written independently of the node-side SQL and of the integer plans: row by row
over pandas frames in the schema's integer encoding, exact rational arithmetic
for scores, floating-point sigmoid for logistic decisions, numpy's own
``inverted_cdf`` quantile and histogram rules. Nothing here may run on a node or
the gateway in production: it needs every institution's rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from mpc_gateway.computations.scoring import ScoringModel
from mpc_gateway.computations.train import sigmoid
from mpc_gateway.query.schema import DatasetSchema

__all__ = [
    "local_features",
    "joint_features",
    "real_scores",
    "decisions",
    "concentration",
    "quantile",
    "histogram",
]


def _row_feature(name: str, row: Any, schema: DatasetSchema) -> int:
    domain = schema.categorical("rating").domain if "rating" in schema.columns else ()
    below = domain[domain.index("BBB") + 1 :] if "BBB" in domain else ()
    values: dict[str, Callable[[], int]] = {
        "total_exposure": lambda: int(row.exposure),
        "lenders": lambda: 1,
        "loans": lambda: 1,
        "max_days_past_due": lambda: int(row.days_past_due),
        "any_default": lambda: int(row.defaulted),
        "defaulted_exposure": lambda: int(row.exposure) * int(row.defaulted),
        "largest_loan": lambda: int(row.exposure),
        "worst_rating": lambda: domain.index(str(row.rating)),
        "sub_investment_grade_exposure": lambda: (
            int(row.exposure) if str(row.rating) in below else 0
        ),
        "lgd_weighted_exposure": lambda: int(row.exposure) * int(row.lgd),
    }
    return values[name]()


_LOCAL_MAX = {"lenders", "max_days_past_due", "any_default", "largest_loan", "worst_rating"}
_JOINT_MAX = {"max_days_past_due", "any_default", "largest_loan", "worst_rating"}


def local_features(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    keys: Sequence[str],
    features: Sequence[str],
    key_column: str = "counterparty_lei",
) -> np.ndarray:
    """One institution's [n, k] local features, row by row (encoded frame)."""
    per_key: dict[str, list[int]] = {}
    for row in frame.itertuples(index=False):
        key = str(getattr(row, key_column))
        values = [_row_feature(name, row, schema) for name in features]
        if key not in per_key:
            per_key[key] = values
            continue
        old = per_key[key]
        per_key[key] = [
            max(a, b) if name in _LOCAL_MAX else a + b for name, a, b in zip(features, old, values)
        ]
    zeros = [0] * len(features)
    return np.array([per_key.get(k, zeros) for k in keys], dtype=object).reshape(len(keys), -1)


def joint_features(
    frames: Sequence[pd.DataFrame],
    schema: DatasetSchema,
    keys: Sequence[str],
    features: Sequence[str],
    key_column: str = "counterparty_lei",
) -> np.ndarray:
    """The cross-institution [n, k] features over every institution's frame."""
    locals_ = [local_features(f, schema, keys, features, key_column) for f in frames]
    joint = np.zeros((len(keys), len(features)), dtype=object)
    for j, name in enumerate(features):
        column = [local[:, j] for local in locals_]
        joint[:, j] = np.maximum.reduce(column) if name in _JOINT_MAX else sum(column)
    return joint


def real_scores(
    model: ScoringModel, weights: Sequence[int], intercept: int, joint: np.ndarray
) -> list[Fraction]:
    """Exact real scores: sum_j (w_j / 2**f) * (x_j / scale_j) + c / 2**f."""
    unit = Fraction(1, 1 << model.frac_bits)
    scales = [f.scale for f in model.features]
    return [
        sum(
            (
                Fraction(int(w)) * unit * Fraction(int(x), s)
                for w, x, s in zip(weights, row, scales)
            ),
            Fraction(int(intercept)) * unit,
        )
        for row in joint
    ]


def decisions(model: ScoringModel, scores: Sequence[Fraction]) -> list[int]:
    """Linear: score >= threshold, exactly. Logistic: sigmoid(score) >= p in floating point."""
    assert model.threshold is not None
    if model.kind == "linear":
        threshold = Fraction(model.threshold)
        return [int(s >= threshold) for s in scores]
    p = float(model.threshold)
    return [int(sigmoid(s) >= p) for s in scores]


def concentration(
    exposures: Sequence[np.ndarray], limit: int | None, hhi_limit: int | None = None
) -> dict[str, Any]:
    """Joint exposures per unit, flags above ``limit``, and HHI numerator/denominator."""
    joint = [int(v) for v in np.sum(np.array(exposures, dtype=object), axis=0)]
    numerator, denominator = sum(s * s for s in joint), sum(joint) ** 2
    result: dict[str, Any] = {"joint": joint, "hhi": [numerator, denominator]}
    if limit is not None:
        result["over_limit"] = [int(s > limit) for s in joint]
    if hhi_limit is not None:
        result["hhi_over_limit"] = [int(10000 * numerator > hhi_limit * denominator)]
    return result


def quantile(values: Sequence[int], level: Fraction) -> int | None:
    """The smallest value x with #(values <= x) >= level * N (numpy's ``inverted_cdf``)."""
    if not len(values):
        return None
    ordered = sorted(int(v) for v in values)
    rank = math.ceil(level * len(ordered))
    return ordered[max(rank, 1) - 1]


def interpolated_quantile(values: Sequence[int], level: Fraction) -> Fraction | None:
    """``x_lo + w (x_hi - x_lo)`` at ``h = (N - 1) level`` (numpy's ``linear``), exactly."""
    if not len(values):
        return None
    ordered = sorted(int(v) for v in values)
    h = (len(ordered) - 1) * level
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def histogram(values: Sequence[int], edges: Sequence[int]) -> list[int]:
    """Counts per bin ``[e_i, e_{i+1})``, the last bin closed (numpy's rule)."""
    counts, _ = np.histogram(np.array(values, dtype=float), bins=np.array(edges, dtype=float))
    return [int(c) for c in counts]

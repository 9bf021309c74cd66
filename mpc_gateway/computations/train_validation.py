"""Joint validation of a trained model on a held-out split, from per-label score histograms.

Each node holds out a fraction of its own rows (a seeded draw per row, the seed
from the request), scores them with the trained coefficients, and counts them
per (label, bin of the predicted probability); the MPC sums the counts (rounded
as the plan's controls round counts) and only the joint histogram is released.
From it the receiver computes the AUC (the Mann-Whitney statistic, ties within
a bin counted one half: exact for the binned scores), the Gini coefficient
``2 AUC - 1``, and the confusion counts at the threshold 0.5 (a bin edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

__all__ = ["Validation", "local_histogram", "split_rows", "validation"]


@dataclass(frozen=True)
class Validation:
    """What the joint held-out histogram says about the model."""

    negatives: list[int]  # held-out rows with label 0, per probability bin
    positives: list[int]

    @property
    def auc(self) -> float | None:
        pos, neg = sum(self.positives), sum(self.negatives)
        if not pos or not neg:
            return None
        below, wins = 0, 0.0
        for n, p in zip(self.negatives, self.positives):
            wins += p * (below + n / 2)
            below += n
        return wins / (pos * neg)

    @property
    def gini(self) -> float | None:
        return None if self.auc is None else 2 * self.auc - 1

    def confusion(self) -> dict[str, int]:
        """Counts at the threshold 0.5: predicted positive where the probability is >= 0.5."""
        half = len(self.positives) // 2
        return {
            "true_positive": sum(self.positives[half:]),
            "false_negative": sum(self.positives[:half]),
            "false_positive": sum(self.negatives[half:]),
            "true_negative": sum(self.negatives[:half]),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": sum(self.positives) + sum(self.negatives),
            "auc": self.auc,
            "gini": self.gini,
            "confusion_at_0.5": self.confusion(),
            "histogram": {"label_0": self.negatives, "label_1": self.positives},
        }


def local_histogram(
    design: np.ndarray, label: np.ndarray, beta: np.ndarray, bins: int
) -> np.ndarray:
    """Held-out rows per (label, bin of the predicted probability): label 0's bins, then 1's."""
    p = 0.5 * (1.0 + np.tanh(0.5 * (design @ beta)))
    index = np.minimum((p * bins).astype(np.int64), bins - 1) + bins * label.astype(np.int64)
    counts = np.bincount(index, minlength=2 * bins)
    return np.array([int(c) for c in counts], dtype=object)


def validation(histogram: list[int]) -> Validation:
    bins = len(histogram) // 2
    return Validation(list(histogram[:bins]), list(histogram[bins:]))


def split_rows(rows: int, fraction: Decimal, seed: int) -> np.ndarray:
    """The held-out mask of a node's ``rows`` (in its table's order): one seeded draw per row."""
    mask: np.ndarray = np.random.default_rng(seed).random(rows) < float(fraction)
    return mask

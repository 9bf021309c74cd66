"""Joint validation of a trained model on a held-out split, from per-label score histograms.

Each node holds out a fraction of its own rows (a seeded draw per row, the seed
from the request), scores them with the trained coefficients, and counts them
per (label, bin of the predicted probability); the MPC sums the counts (rounded
as the plan's controls round counts) and only the joint histogram is released.
From it the receiver computes the AUC (the Mann-Whitney statistic, ties within
a bin counted one half: exact for the binned scores), the Gini coefficient
``2 AUC - 1``, the confusion counts at the threshold 0.5 (a bin edge), and a
calibration table: per band of predicted probability (ten by default, each a run
of whole bins), the rows, the positives, the observed rate, and the mean predicted
probability (each row at its bin's midpoint: within half a bin's width, 0.005).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

__all__ = ["Band", "Validation", "local_histogram", "split_rows", "validation"]


@dataclass(frozen=True)
class Band:
    """One row of a calibration table: held-out rows predicted in ``[low, high)``."""

    low: float
    high: float
    rows: int
    positives: int
    predicted: float | None  # the mean predicted probability (bin midpoints); None: no rows

    @property
    def observed(self) -> float | None:
        """The share of positives among the band's rows; None when it has none."""
        return self.positives / self.rows if self.rows else None

    def to_json(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "rows": self.rows,
            "positives": self.positives,
            "observed": self.observed,
            "predicted": self.predicted,
        }


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

    def calibration(self, bands: int = 10) -> list[Band]:
        """Observed against predicted, per band of ``len(bins) / bands`` adjacent bins."""
        bins = len(self.positives)
        if bands < 1 or bins % bands:
            raise ValueError(f"{bins} bins do not split into {bands} bands")
        width = bins // bands
        table = []
        for k in range(bands):
            span = range(k * width, (k + 1) * width)
            counts = [self.negatives[b] + self.positives[b] for b in span]
            rows = sum(counts)
            mass = sum(c * (b + 0.5) / bins for c, b in zip(counts, span))
            table.append(
                Band(
                    low=span[0] / bins,
                    high=(span[-1] + 1) / bins,
                    rows=rows,
                    positives=sum(self.positives[b] for b in span),
                    predicted=mass / rows if rows else None,
                )
            )
        return table

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": sum(self.positives) + sum(self.negatives),
            "auc": self.auc,
            "gini": self.gini,
            "confusion_at_0.5": self.confusion(),
            "calibration": [band.to_json() for band in self.calibration()],
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
